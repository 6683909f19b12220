// Package config is the gateway's configuration: one typed schema, loaded strictly from YAML with
// environment overrides, validated with file:line:column positions, and reloaded atomically.
//
// The embedded example.yaml is the single source of truth for defaults: Load parses it first and
// then layers the user's file and the MIMI_GATEWAY_* environment variables on top. Nothing in Go
// repeats a default value.
//
// Layers, lowest first:
//
//	example.yaml (embedded defaults)  <  the config file  <  MIMI_GATEWAY_<PATH> env vars  <  *_file secrets
//
// Decoding is strict: unknown keys, wrong types, duplicate keys and missing required values are
// errors, and Load reports all of them at once as Errors, each with its position (file:line:column
// or the environment variable) and the key path (e.g. "store.postgres.dsn", "partners[1].domain").
//
// A loaded *Config is immutable by convention: readers take the current snapshot from a Manager
// and never modify it; Manager.Reload builds a new one and swaps it atomically.
package config

import (
	"cmp"
	"path/filepath"
	"slices"
	"time"

	"github.com/mimi-gateway/mimi-gateway/bridges/matrix"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp"
	"github.com/mimi-gateway/mimi-gateway/core/assets"
	"github.com/mimi-gateway/mimi-gateway/core/bus"
	"github.com/mimi-gateway/mimi-gateway/core/confschema"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// Config is the complete gateway configuration. The yaml tags are the key names; the reload tag
// marks subtrees that take effect without a restart (see Manager.Reload).
type Config struct {
	// Domain is the provider's DNS domain: the authority of every MIMI URI the gateway issues.
	Domain string `yaml:"domain"`
	// DataDir holds the embedded NATS store and the SQLite database unless those are set elsewhere.
	DataDir string `yaml:"data_dir"`
	// ShutdownTimeout bounds the graceful shutdown after SIGTERM/SIGINT.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// Log configures log/slog.
	Log Log `yaml:"log"`
	// Admin is the operations listener: /livez, /readyz, /metrics.
	Admin Admin `yaml:"admin"`
	// AdminUI is the admin console and the admin CLI's socket.
	AdminUI AdminUI `yaml:"admin_ui"`
	// Bus selects the embedded NATS server or an external cluster (core/bus owns the schema).
	Bus bus.Config `yaml:"bus"`
	// Store selects SQLite or PostgreSQL.
	Store Store `yaml:"store"`
	// MIMI is the server-to-server listener partners connect to (mutual TLS).
	MIMI MIMI `yaml:"mimi"`
	// Partners are the MIMI providers the gateway talks to.
	Partners []Partner `yaml:"partners" reload:"hot"`
	// Bridges configures the network adapters.
	Bridges Bridges `yaml:"bridges"`
	// Retention is how long the gateway keeps each kind of record about people.
	Retention Retention `yaml:"retention"`
	// HA configures how several replicas share the work (bus.mode external, store.driver postgres).
	HA HA `yaml:"ha"`

	// source is the file the configuration was loaded from ("" for embedded defaults only).
	source string
	// warnings are non-fatal findings of validation (e.g. a local-only domain).
	warnings []string
}

// Log configures logging.
type Log struct {
	// Level is debug, info, warn or error. It can change on reload.
	Level string `yaml:"level" reload:"hot"`
	// Format is text or json.
	Format string `yaml:"format"`
}

// Admin is the operations HTTP listener.
type Admin struct {
	// Address is host:port of the admin listener.
	Address string `yaml:"address"`
}

// Store configures the SQL store.
type Store struct {
	// Driver is sqlite or postgres (store.SQLite, store.Postgres).
	Driver store.Dialect `yaml:"driver"`
	// MaxOpenConns bounds the connection pool (the SQLite reader pool; SQLite has one writer).
	MaxOpenConns int `yaml:"max_open_conns"`
	// SQLite configures the embedded database.
	SQLite StoreSQLite `yaml:"sqlite"`
	// Postgres configures PostgreSQL.
	Postgres StorePostgres `yaml:"postgres"`
	// Encryption names the keyring that seals secrets and message content in the store.
	Encryption StoreEncryption `yaml:"encryption"`
}

// StoreEncryption names the store's encryption keyring (core/store.ParseKeyring).
type StoreEncryption struct {
	// Key is the keyring text: base64 keys, the first seals. Secret.
	Key string `yaml:"key"`
	// KeyFile is a file whose content is the keyring.
	KeyFile string `yaml:"key_file"`
}

// StoreSQLite configures SQLite.
type StoreSQLite struct {
	// Path is the database file; empty means <data_dir>/mimi-gateway.db.
	Path string `yaml:"path"`
	// Synchronous is PRAGMA synchronous: full, normal or extra.
	Synchronous string `yaml:"synchronous"`
	// BusyTimeout is how long a connection waits for a lock.
	BusyTimeout time.Duration `yaml:"busy_timeout"`
}

// StorePostgres configures PostgreSQL.
type StorePostgres struct {
	// DSN is the connection string (URL or key=value form). Secret.
	DSN string `yaml:"dsn"`
	// DSNFile is a file whose content is the DSN (e.g. a mounted secret).
	DSNFile string `yaml:"dsn_file"`
}

// Retention is the maximum age per category of record (core/retention).
type Retention struct {
	// IDMappings bounds native ↔ MIMI message ID mappings and reaction records.
	IDMappings time.Duration `yaml:"id_mappings"`
	// DedupeMarks bounds the records of processed events (redelivery detection).
	DedupeMarks time.Duration `yaml:"dedupe_marks"`
	// MUCHistory bounds the XMPP rooms' history.
	MUCHistory time.Duration `yaml:"muc_history"`
	// Assets bounds stored attachments (together with mimi.assets.expiry).
	Assets time.Duration `yaml:"assets"`
	// DeadLetters bounds dead letters (together with bus.dead_letter_max_age).
	DeadLetters time.Duration `yaml:"dead_letters"`
	// AuditLog bounds the admin console's audit log.
	AuditLog time.Duration `yaml:"audit_log"`
	// ConsentRecords bounds records of consent that is no longer in force.
	ConsentRecords time.Duration `yaml:"consent_records"`
	// AbuseReports bounds the abuse reports kept for the admin.
	AbuseReports time.Duration `yaml:"abuse_reports"`
	// Interval is how often the sweeper runs.
	Interval time.Duration `yaml:"interval"`
}

// MIMI is the server-to-server listener.
type MIMI struct {
	// Address is host:port of the MIMI HTTPS listener; empty disables it.
	Address string `yaml:"address"`
	// CertFile is the server certificate chain (PEM); it also serves as the client certificate
	// towards partners.
	CertFile string `yaml:"cert_file"`
	// KeyFile is its private key (PEM).
	KeyFile string `yaml:"key_file"`
	// ClientCAFile holds the CAs that verify partners' client certificates.
	ClientCAFile string `yaml:"client_ca_file"`
	// UsersOnDemand lets a partner's KeyPackage claim create the MIMI client of a local user
	// whom an adapter knows but who has not used the gateway yet.
	UsersOnDemand bool `yaml:"users_on_demand"`
	// UnreachableNotice is how long a partner may not answer before the users whose messages
	// wait for it are told.
	UnreachableNotice time.Duration `yaml:"unreachable_notice"`
	// Assets configures the attachment store (core/assets owns the schema).
	Assets assets.Config `yaml:"assets"`
	// Reachability is who may reach a local user from outside the organisation unless she chose
	// otherwise: partners, consent or nobody (core/consent).
	Reachability string `yaml:"reachability"`
	// Directory is what partners may find out about local users (identifier queries).
	Directory MIMIDirectory `yaml:"directory"`
	// KeyPackages bounds the KeyPackages kept for partners' claims.
	KeyPackages MIMIKeyPackages `yaml:"key_packages"`
	// Limits bound what partners can make the MIMI endpoint hold and do.
	Limits MIMILimits `yaml:"limits"`
}

// MIMIDirectory is the published directory of local users (core/directory).
type MIMIDirectory struct {
	// Publish lists the fields partners may search and see: handle, nick, email, phone,
	// partialName.
	Publish []string `yaml:"publish"`
	// Entries are the listed users.
	Entries []DirectoryEntry `yaml:"entries"`
}

// DirectoryEntry is one listed user and her fields.
type DirectoryEntry struct {
	// User is her local part or MIMI URI.
	User  string `yaml:"user"`
	Name  string `yaml:"name"`
	Nick  string `yaml:"nick"`
	Email string `yaml:"email"`
	Phone string `yaml:"phone"`
}

// MIMIKeyPackages bounds the KeyPackages of local users that partners claimed.
type MIMIKeyPackages struct {
	// ClaimedExpiry is how long a claimed KeyPackage (with its private keys) is kept for the
	// Welcome that uses it.
	ClaimedExpiry time.Duration `yaml:"claimed_expiry"`
	// MaxClaimed bounds the claimed, unused KeyPackages kept per user (the oldest go first).
	MaxClaimed int `yaml:"max_claimed"`
}

// MIMILimits are the MIMI endpoint's resource limits (core/protocol limits.go).
type MIMILimits struct {
	// BodyBudget bounds the request body bytes held at once over all partners.
	BodyBudget ByteSize `yaml:"body_budget"`
	// PartnerConcurrency bounds one partner's requests in flight.
	PartnerConcurrency int `yaml:"partner_concurrency"`
	// KeyMaterial limits KeyPackage claims.
	KeyMaterial MIMIKeyMaterialLimits `yaml:"key_material"`
}

// MIMIKeyMaterialLimits are token buckets for KeyPackage claims: one claim every interval, at
// most burst at once.
type MIMIKeyMaterialLimits struct {
	PartnerInterval time.Duration `yaml:"partner_interval"`
	PartnerBurst    int           `yaml:"partner_burst"`
	TargetInterval  time.Duration `yaml:"target_interval"`
	TargetBurst     int           `yaml:"target_burst"`
}

// HA configures the leader election of several replicas (core/lease): one replica, the leader,
// runs the MIMI endpoint, the adapters and the sweeps; the others stand by and forward
// partners' connections to it.
type HA struct {
	// LeaseTTL is how long the leader's lease lasts without renewal: a standby takes over at most
	// this long after the leader stopped.
	LeaseTTL time.Duration `yaml:"lease_ttl"`
	// AdvertiseAddress is host:port at which the other replicas reach this replica's MIMI
	// listener while it leads; empty means mimi.address (which then must name a host).
	AdvertiseAddress string `yaml:"advertise_address"`
}

// HAEnabled reports whether c runs as one of several replicas: an external bus and PostgreSQL.
func (c *Config) HAEnabled() bool {
	return c.Bus.Mode == "external" && c.Store.Driver == store.Postgres
}

// ByteSize is a size in bytes, written with a unit such as MiB (core/confschema).
type ByteSize = confschema.ByteSize

// Partner is one partner MIMI provider (core/protocol owns the schema).
type Partner = protocol.PartnerConfig

// Bridges holds one section per network adapter; each adapter package owns its section's type.
type Bridges struct {
	// Matrix configures bridges/matrix (which owns the schema).
	Matrix matrix.Config `yaml:"matrix"`
	// XMPP configures bridges/xmpp (which owns the schema).
	XMPP xmpp.Config `yaml:"xmpp"`
}

// Source returns the file the configuration was loaded from, or "" if it consists of the
// embedded defaults and environment variables only.
func (c *Config) Source() string { return c.source }

// Warnings returns non-fatal findings of validation, such as a domain that is only usable locally.
func (c *Config) Warnings() []string { return append([]string(nil), c.warnings...) }

// DataDirAbs returns the data directory as an absolute path.
func (c *Config) DataDirAbs() string { return abs(c.DataDir) }

// NATSStoreDir returns the embedded JetStream store directory: bus.embedded.store_dir, or
// <data_dir>/nats.
func (c *Config) NATSStoreDir() string {
	if c.Bus.Embedded.StoreDir != "" {
		return abs(c.Bus.Embedded.StoreDir)
	}
	return filepath.Join(c.DataDirAbs(), "nats")
}

// SQLitePath returns the SQLite database file: store.sqlite.path, or <data_dir>/mimi-gateway.db.
func (c *Config) SQLitePath() string {
	if c.Store.SQLite.Path != "" {
		return abs(c.Store.SQLite.Path)
	}
	return filepath.Join(c.DataDirAbs(), "mimi-gateway.db")
}

// NATSKeyFile returns the embedded JetStream store's key file: bus.embedded.key_file, or
// <data_dir>/nats.key (created on first start when it is the default).
func (c *Config) NATSKeyFile() string {
	if c.Bus.Embedded.KeyFile != "" {
		return abs(c.Bus.Embedded.KeyFile)
	}
	return filepath.Join(c.DataDirAbs(), "nats.key")
}

// BusConfig returns the bus section as core/bus takes it: the store directory and key file
// resolved below data_dir (the key file created on first start only when it is the default),
// and dead letters kept no longer than retention.dead_letters. The caller adds the Sealer.
func (c *Config) BusConfig() bus.Config {
	b := c.Bus
	b.Backoff = slices.Clone(b.Backoff)
	b.External.URLs = slices.Clone(b.External.URLs)
	b.Embedded.StoreDir = c.NATSStoreDir()
	b.Embedded.CreateKeyFile = b.Embedded.KeyFile == ""
	b.Embedded.KeyFile = c.NATSKeyFile()
	b.DeadLetterMaxAge = shorter(b.DeadLetterMaxAge, c.Retention.DeadLetters)
	return b
}

// MatrixConfig returns the bridges.matrix section as bridges/matrix takes it: the gateway's
// domain filled in, then the adapter's defaults for what the file cannot set.
func (c *Config) MatrixConfig() matrix.Config { return c.matrix().WithDefaults() }

// matrix is the bridges.matrix section with what it takes from the top level: the gateway's
// domain, server_name (default: the domain) and registration_file (default: in data_dir). It is
// what validation checks, before the adapter's defaults could hide a value set to zero.
func (c *Config) matrix() matrix.Config {
	m := c.Bridges.Matrix
	m.GatewayDomain = event.Domain(c.Domain)
	m.ServerName = cmp.Or(m.ServerName, c.Domain)
	m.Appservice.RegistrationFile = cmp.Or(m.Appservice.RegistrationFile, filepath.Join(c.DataDirAbs(), matrix.DefaultRegistrationFile))
	if m.DecryptWait == 0 {
		m.DecryptWait = time.Nanosecond // 0s in the file means "do not wait"; 0 in matrix.Config means the default
	}
	return m
}

// XMPPConfig returns the bridges.xmpp section as bridges/xmpp takes it: the gateway's domain as
// the provider of local users and, unless domain says otherwise, as their XMPP domain. The
// section's values mean in the file what they mean in xmpp.Config (0 in history_on_join is none,
// 0 in workers is invalid), so nothing else is translated.
func (c *Config) XMPPConfig() xmpp.Config {
	x := c.Bridges.XMPP
	x.Provider = event.Domain(c.Domain)
	x.Domain = cmp.Or(x.Domain, c.Domain)
	return x
}

// AssetsConfig returns the mimi.assets section as core/assets takes it: the directory resolved
// (default <data_dir>/assets) and attachments kept no longer than retention.assets.
func (c *Config) AssetsConfig() assets.Config {
	a := c.MIMI.Assets
	if a.Dir == "" {
		a.Dir = filepath.Join(c.DataDirAbs(), "assets")
	}
	a.Expiry = shorter(a.Expiry, c.Retention.Assets)
	return a
}

// shorter returns the shorter of a maximum age and a retention period (0: for ever).
func shorter(d, retention time.Duration) time.Duration {
	if retention > 0 && (d <= 0 || retention < d) {
		return retention
	}
	return d
}

// StoreKeyFile returns the store's default keyring file, <data_dir>/store.key, used (and created
// on first start) when store.encryption sets neither key nor key_file.
func (c *Config) StoreKeyFile() string {
	return filepath.Join(c.DataDirAbs(), "store.key")
}

func abs(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
