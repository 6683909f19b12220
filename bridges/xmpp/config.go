package xmpp

import (
	"fmt"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/mimi-gateway/mimi-gateway/bridges"
	"github.com/mimi-gateway/mimi-gateway/core/confschema"
	"github.com/mimi-gateway/mimi-gateway/core/content"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// ComponentConfig is one XEP-0114 component connection.
type ComponentConfig struct {
	// Domain is the component's domain, as configured on the XMPP server.
	Domain string `yaml:"domain"`
	// Secret is the component's shared secret. It is never logged.
	Secret string `yaml:"secret"`
	// SecretFile is a file whose content is the secret (read by the config package).
	SecretFile string `yaml:"secret_file"`
}

// Config configures the XMPP adapter: the bridges.xmpp section (yaml keys, defaults in config/example.yaml);
// the config package fills in Provider, and Domain when empty, from the top level.
type Config struct {
	// Enabled starts the adapter (the run command reads it).
	Enabled bool `yaml:"enabled"`
	// Server is the host:port of the XMPP server's component listener (Prosody: component_ports,
	// ejabberd: an ejabberd_service listener). Keep it on loopback or a private network: the
	// XEP-0114 handshake is a SHA-1 digest over an unencrypted stream.
	Server string `yaml:"server"`
	// Domain is the XMPP domain of the organisation's users (alice@Domain).
	Domain string `yaml:"domain"`
	// Provider is the users' MIMI provider domain: alice@Domain is mimi://Provider/u/alice. Default: Domain.
	Provider event.Domain `yaml:"-"`
	// Users is the component that carries one JID per MIMI user of a partner provider.
	Users ComponentConfig `yaml:"users"`
	// Rooms is the component that hosts one MUC room per MIMI room.
	Rooms ComponentConfig `yaml:"rooms"`
	// HistoryOnJoin is how many recent messages a joining user gets (XEP-0045); 0: none, negative
	// is invalid. Default (nil) 20.
	HistoryOnJoin *int `yaml:"history_on_join"`
	// HistoryKeep is how many messages per room are kept for history, at most 10000; 0: none,
	// negative is invalid. Default (nil) 200.
	HistoryKeep *int `yaml:"history_keep"`
	// MaxBodyBytes bounds a message body; a longer one is refused with a stanza error. It must be
	// positive (0 would refuse every message). Default (nil) 64 KiB.
	MaxBodyBytes *confschema.ByteSize `yaml:"max_body"`
	// AllowRoomCreation lets local users create MIMI rooms by joining a new MUC. Default (nil) true.
	AllowRoomCreation *bool `yaml:"allow_room_creation"`
	// ReconnectMin and ReconnectMax bound the component reconnect backoff. Defaults 100ms and 5s.
	ReconnectMin time.Duration `yaml:"reconnect_min"`
	ReconnectMax time.Duration `yaml:"reconnect_max"`
	// DialTimeout bounds connecting and the component handshake. Default 10s.
	DialTimeout time.Duration `yaml:"-"`
	// SendTimeout bounds writing one stanza. Default 10s.
	SendTimeout time.Duration `yaml:"-"`
	// Workers is the number of goroutines that process incoming stanzas; stanzas of one room or
	// conversation are always handled by the same worker, in order. 1 to 256 (0 is invalid: no
	// stanza would be handled). Default (nil) 4.
	Workers *int `yaml:"workers"`
	// IDVersion selects the MIMI message ID construction. Default content.DefaultIDVersion.
	IDVersion content.IDVersion `yaml:"-"`
	// UploadHosts are the hosts (host or host:port) of the XMPP server's upload service (XEP-0363) whose
	// links are stored encrypted in the asset store (WithAssets), as partners cannot reach them; others pass.
	UploadHosts []string `yaml:"upload_hosts"`
	// MaxUploadBytes bounds a file downloaded, or uploaded to UploadService. Default 16 MiB.
	MaxUploadBytes confschema.ByteSize `yaml:"max_upload"`
	// UploadService is the JID of the XMPP server's upload service (XEP-0363) that partners' attachments are
	// decrypted and uploaded to as the users component; XMPP users get the link. Empty: announced as text.
	UploadService string `yaml:"upload_service"`
	// KnownUsers lists the localparts of users whom partners may reach before they have used the gateway
	// ("*": every localpart of Domain): UserExists confirms them to the MIMI provider.
	KnownUsers []string `yaml:"known_users"`
	// Language is the notices' language for a user whose client has not said its own: "en" (default) or "de".
	Language string `yaml:"language"`
}

// Defaults applied by withDefaults.
const (
	DefaultHistoryOnJoin = 20
	DefaultHistoryKeep   = 200
	DefaultMaxBodyBytes  = 64 << 10
	DefaultReconnectMin  = 100 * time.Millisecond
	DefaultReconnectMax  = 5 * time.Second
	DefaultDialTimeout   = 10 * time.Second
	DefaultSendTimeout   = 10 * time.Second
	DefaultWorkers       = 4
	DefaultMaxUpload     = 16 << 20
)

func (c Config) withDefaults() Config {
	if c.Provider == "" {
		c.Provider = event.Domain(c.Domain)
	}
	bridges.Default(&c.HistoryOnJoin, new(DefaultHistoryOnJoin))
	bridges.Default(&c.HistoryKeep, new(DefaultHistoryKeep))
	bridges.Default(&c.MaxBodyBytes, new(confschema.ByteSize(DefaultMaxBodyBytes)))
	bridges.Default(&c.ReconnectMin, DefaultReconnectMin)
	bridges.Default(&c.ReconnectMax, DefaultReconnectMax)
	bridges.Default(&c.DialTimeout, DefaultDialTimeout)
	bridges.Default(&c.SendTimeout, DefaultSendTimeout)
	bridges.Default(&c.Workers, new(DefaultWorkers))
	bridges.Default(&c.IDVersion, content.DefaultIDVersion)
	bridges.Default(&c.MaxUploadBytes, DefaultMaxUpload)
	return c
}

func (c *Config) roomCreation() bool { return c.AllowRoomCreation == nil || *c.AllowRoomCreation }

// Validate returns every problem of c with defaults, each a *confschema.Problem naming its key.
func (c Config) Validate() error {
	const k = "bridges.xmpp."
	c = c.withDefaults()
	var p confschema.Problems
	if p.Required(k+"server", c.Server, "(the XMPP server's component port)") {
		p.HostPort(k+"server", c.Server)
	}
	for _, d := range [][2]string{{"domain", c.Domain}, {"users.domain", c.Users.Domain}, {"rooms.domain", c.Rooms.Domain}} {
		if j, err := jid.New("", d[1], ""); p.Required(k+d[0], d[1], "") && err != nil {
			p.Errorf(k+d[0], "%q is not a valid XMPP domain", d[1])
		} else if d[1] != "" && j.String() != d[1] {
			p.Errorf(k+d[0], "%q is not in canonical form (want %q)", d[1], j.String())
		}
	}
	p.If(c.Users.Domain != "" && c.Users.Domain == c.Rooms.Domain, k+"rooms.domain", "must differ from users.domain: each is its own component")
	p.If(c.Users.Domain == c.Domain || c.Rooms.Domain == c.Domain, k+"users.domain", "the component domains must differ from the users' domain")
	p.Required(k+"users.secret", c.Users.Secret, "(or set secret_file)")
	p.Required(k+"rooms.secret", c.Rooms.Secret, "(or set secret_file)")
	_, err := event.ParseUserURI(string(event.NewUserURI(c.Provider, "x")))
	p.If(err != nil, k+"domain", "provider %q (the domain key): %v", c.Provider, err)
	p.If(*c.MaxBodyBytes <= 0 || *c.MaxBodyBytes > content.MaxContentSize/2, k+"max_body", "max body %d bytes: want 1 to %d", *c.MaxBodyBytes, content.MaxContentSize/2)
	p.If(*c.HistoryOnJoin < 0, k+"history_on_join", "history on join %d: want 0 (none) or more", *c.HistoryOnJoin)
	p.If(*c.HistoryKeep < 0 || *c.HistoryKeep > 10000, k+"history_keep", "history keep %d: want 0 (none) to 10000", *c.HistoryKeep)
	p.If(c.ReconnectMin <= 0 || c.ReconnectMax < c.ReconnectMin, k+"reconnect_max", "reconnect backoff %s..%s: reconnect_min must be positive and reconnect_max at least reconnect_min", c.ReconnectMin, c.ReconnectMax)
	p.If(*c.Workers < 1 || *c.Workers > 256, k+"workers", "workers %d: want 1 to 256", *c.Workers)
	for i, h := range c.UploadHosts {
		p.If(h == "" || strings.ContainsAny(h, "/?#@ "), fmt.Sprintf("%supload_hosts[%d]", k, i), "%q is not a host or host:port", h)
	}
	if c.UploadService != "" {
		j, err := jid.Parse(c.UploadService)
		p.If(err != nil || j.Localpart() != "" || j.Resourcepart() != "", k+"upload_service", "%q is not a domain JID (e.g. upload.hospital.example)", c.UploadService)
	}
	p.If(c.MaxUploadBytes < 0 || c.MaxUploadBytes > 1<<30, k+"max_upload", "max upload %d bytes: want at most 1GiB", c.MaxUploadBytes)
	for i, u := range c.KnownUsers {
		p.If(u == "" || (u != "*" && strings.ContainsAny(u, "@/ \"\t")), fmt.Sprintf("%sknown_users[%d]", k, i), "%q is not a localpart (alice, not alice@domain) or \"*\"", u)
	}
	_, ok := bridges.ParseLanguage(c.Language)
	p.If(!ok && c.Language != "", k+"language", "%q is not one of %v", c.Language, bridges.Languages)
	p.If(c.IDVersion != content.IDDraft08 && c.IDVersion != content.IDDraft07, k+"id_version", "message ID version %d: want 7 or 8", int(c.IDVersion))
	return p.Err()
}
