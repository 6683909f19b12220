package bus

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/confschema"
)

// Mode selects where the NATS server runs.
type Mode string

// Bus modes.
const (
	// ModeEmbedded runs nats-server in the gateway process, with JetStream on a file store in the
	// data dir. This is the default and needs no other service.
	ModeEmbedded Mode = "embedded"
	// ModeExternal dials an existing NATS cluster (JetStream enabled) and creates replicated streams.
	ModeExternal Mode = "external"
)

// Defaults applied by Config.WithDefaults to zero fields.
const (
	DefaultMaxMemory          = 64 << 20           // 64 MiB of JetStream memory storage (embedded)
	DefaultMaxStore           = 10 << 30           // 10 GiB of JetStream file storage (embedded)
	DefaultReplicas           = 3                  // stream replicas in external mode
	DefaultDedupeWindow       = time.Hour          // Nats-Msg-Id duplicate window
	DefaultAckWait            = 30 * time.Second   // redelivery after this long without ack or progress
	DefaultMaxDeliveries      = 10                 // deliveries before dead-lettering
	DefaultPartitions         = 16                 // room partitions per stream (per network for mimi.in)
	DefaultMaxAge             = 7 * 24 * time.Hour // retention of mimi.out and mimi.in
	DefaultMaxBytes           = 2 << 30            // 2 GiB per stream (mimi.out, mimi.in)
	DefaultDeadLetterMaxAge   = 30 * 24 * time.Hour
	DefaultDeadLetterMaxBytes = 1 << 30 // 1 GiB
	DefaultHandlerTimeout     = 5 * time.Minute
	DefaultPinnedTTL          = 5 * time.Second
	DefaultReadyTimeout       = 30 * time.Second
)

// DefaultBackoff is the redelivery delay schedule after a failed handler: the n-th failed delivery
// is redelivered after DefaultBackoff[n-1] (the last entry repeats).
var DefaultBackoff = []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second, time.Minute}

// Config configures the bus: it is the bus section of the gateway's configuration (the yaml tags
// are its keys; config/example.yaml documents each with its default), which the config package
// completes with the paths below data_dir (config.Config.BusConfig). Zero values mean "default"
// (see WithDefaults) for a Config built in code.
type Config struct {
	// Mode is "embedded" (default) or "external".
	Mode Mode `yaml:"mode"`
	// Embedded configures the in-process server (mode embedded).
	Embedded EmbeddedConfig `yaml:"embedded"`
	// External configures the connection to a NATS cluster (mode external).
	External ExternalConfig `yaml:"external"`

	// DedupeWindow is how long JetStream remembers a Nats-Msg-Id (the envelope ID): a republished
	// envelope within the window is stored once. Default 1h; must not exceed MaxAge. Consumers still
	// dedupe by event ID in the store, because redelivery can happen after the window, and after a
	// server restart once the first copy was acknowledged and removed (the server rebuilds its
	// window from the messages it still holds).
	DedupeWindow time.Duration `yaml:"dedupe_window"`
	// AckWait is how long a delivered message may stay unacknowledged before it is redelivered.
	// A running handler extends it automatically (progress acks), so it only bounds crashed or
	// disconnected consumers. Default 30s.
	AckWait time.Duration `yaml:"ack_wait"`
	// MaxDeliveries is how many times a message is delivered before it goes to the dead-letter
	// stream. Default 10.
	MaxDeliveries int `yaml:"max_deliveries"`
	// Backoff is the delay before redelivery after a handler error, indexed by the number of
	// deliveries so far (the last entry repeats). Default 1s, 2s, 5s, 10s, 30s, 1m. While a
	// message waits, its partition (not only its room) waits too: see Partitions.
	Backoff []time.Duration `yaml:"backoff"`
	// HandlerTimeout bounds one handler call; its context is cancelled after it. Default 5m.
	HandlerTimeout time.Duration `yaml:"handler_timeout"`
	// Partitions is the number of room partitions per stream (for mimi.in: per network). Messages
	// of a room always land in the same partition and are handled one at a time, in order;
	// partitions are handled in parallel. Default 16, at most 1024. Changing it re-maps rooms:
	// drain the streams first (messages stored under a partition number that no longer exists
	// are not consumed).
	Partitions int `yaml:"partitions"`
	// PinnedTTL is how long a pinned consumer (one gateway replica holding a partition) may stay
	// silent before another replica takes the partition over. Default 5s. Zero or negative values
	// mean the default; set NoPinning to turn pinning off.
	PinnedTTL time.Duration `yaml:"pinned_ttl"`
	// NoPinning turns pinned priority groups off (for servers older than 2.11). Several replicas
	// then pull from every partition in turn; per-room order still holds (one message in flight
	// per partition), but partitions move between replicas all the time.
	NoPinning bool `yaml:"no_pinning"`
	// MaxAge is how long mimi.out and mimi.in keep a message that is not acknowledged. An
	// acknowledged message is removed at once (interest retention: once every consumer group
	// whose subjects it matches has acknowledged it). Default 7 days.
	MaxAge time.Duration `yaml:"max_age"`
	// MaxBytes bounds each of the mimi.out and mimi.in streams; the oldest messages are discarded
	// beyond it. Default 2 GiB.
	MaxBytes confschema.ByteSize `yaml:"max_bytes"`
	// DeadLetterMaxAge is how long the dead-letter stream keeps messages. Default 30 days.
	DeadLetterMaxAge time.Duration `yaml:"dead_letter_max_age"`
	// DeadLetterMaxBytes bounds the dead-letter stream. Default 1 GiB.
	DeadLetterMaxBytes confschema.ByteSize `yaml:"dead_letter_max_bytes"`
	// ReadyTimeout bounds Open's wait for the embedded server, or for the first successful stream
	// setup in external mode. Default 30s.
	ReadyTimeout time.Duration `yaml:"ready_timeout"`
	// Sealer, if set, encrypts the envelope a dead letter keeps (its data), so that the dead-letter
	// stream holds metadata in headers and only an encrypted envelope; the gateway passes the
	// store's keyring. Without one, dead letters keep the original data.
	Sealer Sealer `yaml:"-"`
}

// Sealer encrypts and decrypts data bound to an ID (core/store's keyring in the gateway).
type Sealer interface {
	// Seal encrypts plaintext, bound to id.
	Seal(plaintext []byte, id string) ([]byte, error)
	// Unseal decrypts what Seal returned for the same id.
	Unseal(sealed []byte, id string) ([]byte, error)
}

// EmbeddedConfig configures the in-process nats-server.
type EmbeddedConfig struct {
	// StoreDir is the JetStream file store directory, normally <data_dir>/nats. Required: an
	// empty store dir would make nats-server use a temporary directory and lose data on reboot.
	StoreDir string `yaml:"store_dir"`
	// MaxMemory bounds JetStream memory storage in bytes. Default 64 MiB.
	MaxMemory confschema.ByteSize `yaml:"max_memory"`
	// MaxStore bounds JetStream file storage in bytes. Default 10 GiB.
	MaxStore confschema.ByteSize `yaml:"max_store"`
	// SyncInterval is how often the file store fsyncs. Zero (the default) means sync_always: every
	// write is fsynced before it is acknowledged, so an acknowledged publish survives a power loss
	// (a single node has no replicas to fall back on). A positive value trades that for throughput:
	// up to SyncInterval of acknowledged messages can be lost on power loss (not on a process crash).
	SyncInterval time.Duration `yaml:"sync_interval"`
	// Listen is an optional loopback address (e.g. "127.0.0.1:4222") on which the embedded server
	// also accepts TCP clients, for the nats CLI. Empty (the default) means no listener at all.
	// Only loopback addresses are accepted: the listener has no authentication.
	Listen string `yaml:"listen"`
	// ServerName names the embedded server in logs and in the store. Default "mimi-gateway".
	ServerName string `yaml:"server_name"`
	// KeyFile holds the key with which the server encrypts the JetStream store at rest (every
	// message block, index and consumer state; nats-server's own encryption, Cipher). Default
	// <StoreDir>/../nats.key with CreateKeyFile. An existing unencrypted store is converted on the
	// first start with a key. A wrong key, or a missing key file for an encrypted store, stops Open.
	KeyFile string `yaml:"key_file"`
	// CreateKeyFile lets Open create KeyFile (mode 0600) with a new random key when it does not
	// exist and the store was never encrypted.
	CreateKeyFile bool `yaml:"-"`
	// Cipher is the store cipher: "chacha" (ChaCha20-Poly1305, the default) or "aes" (AES-GCM).
	Cipher string `yaml:"cipher"`
}

// ExternalConfig configures the connection to an external NATS cluster.
type ExternalConfig struct {
	// URLs are the cluster's client URLs (nats:// or tls://). Required in external mode.
	URLs []string `yaml:"urls"`
	// CredsFile is an optional NATS credentials file (JWT and NKey seed).
	CredsFile string `yaml:"creds_file"`
	// NKeySeedFile is an optional NKey seed file (instead of a credentials file).
	NKeySeedFile string `yaml:"nkey_seed_file"`
	// TLS configures TLS to the servers; empty means the system roots and no client certificate.
	TLS TLSConfig `yaml:"tls"`
	// Replicas is the number of stream replicas (1, 3 or 5). Default 3.
	Replicas int `yaml:"replicas"`
	// Name is the connection name shown in the server's monitoring. Default "mimi-gateway".
	Name string `yaml:"name"`
	// EncryptedAtRest is the operator's statement that every server of the cluster encrypts its
	// JetStream store (jetstream { cipher, key }): a client cannot tell, so without it Open logs a
	// warning that message content may be stored in the clear on the servers.
	EncryptedAtRest bool `yaml:"encrypted_at_rest"`
}

// TLSConfig names PEM files for TLS to external NATS servers.
type TLSConfig struct {
	// CAFile holds the CA certificates that sign the servers' certificates.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile hold the client certificate and key for mutual TLS.
	CertFile string `yaml:"cert_file"`
	// KeyFile holds the client key for CertFile.
	KeyFile string `yaml:"key_file"`
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Mode == "" {
		c.Mode = ModeEmbedded
	}
	setDur := func(d *time.Duration, def time.Duration) {
		if *d <= 0 {
			*d = def
		}
	}
	setDur(&c.DedupeWindow, DefaultDedupeWindow)
	setDur(&c.AckWait, DefaultAckWait)
	setDur(&c.HandlerTimeout, DefaultHandlerTimeout)
	setDur(&c.PinnedTTL, DefaultPinnedTTL)
	setDur(&c.MaxAge, DefaultMaxAge)
	setDur(&c.DeadLetterMaxAge, DefaultDeadLetterMaxAge)
	setDur(&c.ReadyTimeout, DefaultReadyTimeout)
	if c.MaxDeliveries <= 0 {
		c.MaxDeliveries = DefaultMaxDeliveries
	}
	if len(c.Backoff) == 0 {
		c.Backoff = append([]time.Duration(nil), DefaultBackoff...)
	}
	if c.Partitions <= 0 {
		c.Partitions = DefaultPartitions
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.DeadLetterMaxBytes <= 0 {
		c.DeadLetterMaxBytes = DefaultDeadLetterMaxBytes
	}
	if c.Embedded.MaxMemory <= 0 {
		c.Embedded.MaxMemory = DefaultMaxMemory
	}
	if c.Embedded.MaxStore <= 0 {
		c.Embedded.MaxStore = DefaultMaxStore
	}
	if c.Embedded.ServerName == "" {
		c.Embedded.ServerName = "mimi-gateway"
	}
	if c.Embedded.KeyFile == "" && c.Embedded.StoreDir != "" {
		c.Embedded.KeyFile = filepath.Join(filepath.Dir(filepath.Clean(c.Embedded.StoreDir)), "nats.key")
		c.Embedded.CreateKeyFile = true
	}
	if c.Embedded.Cipher == "" {
		c.Embedded.Cipher = "chacha"
	}
	if c.External.Replicas <= 0 {
		c.External.Replicas = DefaultReplicas
	}
	if c.External.Name == "" {
		c.External.Name = "mimi-gateway"
	}
	return c
}

// MaxPartitions bounds Config.Partitions.
const MaxPartitions = 1024

// Validate checks a configuration (the loaded bus section, or one after WithDefaults) and returns
// every problem at once, each a *confschema.Problem naming its key under bus.
func (c Config) Validate() error {
	var p confschema.Problems
	p.OneOf("bus.mode", string(c.Mode), string(ModeEmbedded), string(ModeExternal))
	switch c.Mode {
	case ModeEmbedded:
		c.Embedded.validate(&p)
	case ModeExternal:
		c.External.validate(&p)
	}
	p.Positive("bus.dedupe_window", int64(c.DedupeWindow))
	if c.DedupeWindow > c.MaxAge {
		p.Errorf("bus.dedupe_window", "%s exceeds max_age %s", c.DedupeWindow, c.MaxAge)
	}
	if c.AckWait > 0 && c.AckWait < 100*time.Millisecond {
		p.Errorf("bus.ack_wait", "%s is below 100ms", c.AckWait)
	}
	p.Positive("bus.ack_wait", int64(c.AckWait))
	p.Positive("bus.max_deliveries", int64(c.MaxDeliveries))
	for i, d := range c.Backoff {
		p.NotNegative("bus.backoff["+strconv.Itoa(i)+"]", int64(d))
	}
	p.Positive("bus.partitions", int64(c.Partitions))
	if c.Partitions > MaxPartitions {
		p.Errorf("bus.partitions", "%d: use 1 to %d", c.Partitions, MaxPartitions)
	}
	p.Positive("bus.max_age", int64(c.MaxAge))
	p.Positive("bus.max_bytes", int64(c.MaxBytes))
	return p.Err()
}

func (e *EmbeddedConfig) validate(p *confschema.Problems) {
	if e.StoreDir == "" {
		p.Errorf("bus.embedded.store_dir", "required in embedded mode (normally <data_dir>/nats)")
	} else if !filepath.IsAbs(e.StoreDir) {
		p.Errorf("bus.embedded.store_dir", "%q is not an absolute path", e.StoreDir)
	}
	p.NotNegative("bus.embedded.sync_interval", int64(e.SyncInterval))
	if e.Listen != "" {
		if err := checkLoopback(e.Listen); err != nil {
			p.Errorf("bus.embedded.listen", "%v", err)
		}
	}
	p.Positive("bus.embedded.max_memory", int64(e.MaxMemory))
	p.Positive("bus.embedded.max_store", int64(e.MaxStore))
	if !validName.MatchString(e.ServerName) {
		p.Errorf("bus.embedded.server_name", "%q: use 1-64 characters from [A-Za-z0-9_-]", e.ServerName)
	}
	p.OneOf("bus.embedded.cipher", e.Cipher, "chacha", "aes")
}

func (e *ExternalConfig) validate(p *confschema.Problems) {
	if len(e.URLs) == 0 {
		p.Errorf("bus.external.urls", "missing required value (bus.mode is external)")
	}
	for i, u := range e.URLs {
		key := "bus.external.urls[" + strconv.Itoa(i) + "]"
		// Messages never repeat a URL's user information: it may hold a password.
		pu, err := url.Parse(u)
		if err != nil || pu.Host == "" {
			p.Errorf(key, "not a URL such as nats://host:4222")
			continue
		}
		switch pu.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			p.Errorf(key, "%q: scheme must be nats, tls, ws or wss", pu.Redacted())
		}
	}
	switch e.Replicas {
	case 1, 3, 5:
	default:
		p.Errorf("bus.external.replicas", "%d is not one of 1, 3, 5", e.Replicas)
	}
	if e.CredsFile != "" && e.NKeySeedFile != "" {
		p.Errorf("bus.external.nkey_seed_file", "set either creds_file or nkey_seed_file, not both")
	}
	if (e.TLS.CertFile == "") != (e.TLS.KeyFile == "") {
		p.Errorf("bus.external.tls", "cert_file and key_file go together")
	}
}

// validName restricts server names and durable consumer group names. Consumer group names
// exclude '_', which separates the parts of the per-partition consumer names.
var (
	validName     = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	validConsumer = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)
)

func checkLoopback(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: %w", addr, err)
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%q: only loopback IP addresses are allowed (the listener has no authentication)", addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("%q: bad port", addr)
	}
	return nil
}
