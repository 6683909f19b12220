package xmpp

import (
	"net"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/mimi-gateway/mimi-gateway/bridges"
	"github.com/mimi-gateway/mimi-gateway/core/content"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// ComponentConfig is one XEP-0114 component connection.
type ComponentConfig struct {
	// Domain is the component's domain, as configured on the XMPP server.
	Domain string
	// Secret is the component's shared secret. It is never logged.
	Secret string
}

// Config configures the XMPP adapter.
type Config struct {
	// Server is the host:port of the XMPP server's component listener (Prosody: component_ports,
	// ejabberd: an ejabberd_service listener). Keep it on loopback or a private network: the
	// XEP-0114 handshake is a SHA-1 digest over an unencrypted stream.
	Server string
	// Domain is the XMPP domain of the organisation's users (alice@Domain).
	Domain string
	// Provider is the MIMI provider domain the users belong to: alice@Domain is
	// mimi://Provider/u/alice. Default: Domain.
	Provider event.Domain
	// Users is the component that carries one JID per MIMI user of a partner provider.
	Users ComponentConfig
	// Rooms is the component that hosts one MUC room per MIMI room.
	Rooms ComponentConfig
	// HistoryOnJoin is how many recent messages a user who joins a room gets (XEP-0045 history).
	// Default 20; negative disables history.
	HistoryOnJoin int
	// HistoryKeep is how many messages per room the adapter keeps for history. Default 200;
	// negative keeps none.
	HistoryKeep int
	// MaxBodyBytes bounds a message body; longer messages are refused with a stanza error.
	// Default 64 KiB.
	MaxBodyBytes int
	// DisableRoomCreation stops local users from creating MIMI rooms by joining a MUC that does
	// not exist yet.
	DisableRoomCreation bool
	// ReconnectMin and ReconnectMax bound the component reconnect backoff. Defaults 100ms and 5s.
	ReconnectMin, ReconnectMax time.Duration
	// DialTimeout bounds connecting and the component handshake. Default 10s.
	DialTimeout time.Duration
	// SendTimeout bounds writing one stanza. Default 10s.
	SendTimeout time.Duration
	// Workers is the number of goroutines that process incoming stanzas; stanzas of one room or
	// conversation are always handled by the same worker, in order. Default 4.
	Workers int
	// IDVersion selects the MIMI message ID construction. Default content.DefaultIDVersion.
	IDVersion content.IDVersion
	// UploadHosts lists the hosts ("host" or "host:port") of the XMPP server's upload service
	// (XEP-0363, e.g. Prosody's mod_http_file_share). Links to them are downloaded and stored,
	// encrypted, in the asset store (WithAssets), because partner providers cannot reach an
	// internal upload service. Links to other hosts are passed on unchanged. Empty: no downloads.
	UploadHosts []string
	// MaxUploadBytes bounds one downloaded file, and one file uploaded to UploadService. Default
	// 16 MiB.
	MaxUploadBytes int64
	// UploadService is the JID of the XMPP server's upload service (XEP-0363). When set, an
	// encrypted MIMI attachment is decrypted from the asset store and uploaded there as the users
	// component, and XMPP users get its link (XEP-0066). Empty: it is announced as text.
	UploadService string
	// KnownUsers lists the localparts of the XMPP server's users whom partners may reach before
	// they have used the gateway ("*": every localpart of Domain). The MIMI provider creates such
	// a user's MLS client when a partner first asks for it (UserExists).
	KnownUsers []string
	// Language is the language of the gateway's notices to a user whose client has not said its
	// own (xml:lang): "en" (the default) or "de" (see bridges.Languages).
	Language string
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
	bridges.Default(&c.HistoryOnJoin, DefaultHistoryOnJoin)
	bridges.Default(&c.HistoryKeep, DefaultHistoryKeep)
	bridges.Default(&c.MaxBodyBytes, DefaultMaxBodyBytes)
	bridges.Default(&c.ReconnectMin, DefaultReconnectMin)
	bridges.Default(&c.ReconnectMax, DefaultReconnectMax)
	bridges.Default(&c.DialTimeout, DefaultDialTimeout)
	bridges.Default(&c.SendTimeout, DefaultSendTimeout)
	bridges.Default(&c.Workers, DefaultWorkers)
	bridges.Default(&c.IDVersion, content.DefaultIDVersion)
	bridges.Default(&c.MaxUploadBytes, DefaultMaxUpload)
	return c
}

// Validate checks the configuration and returns every problem found.
func (c Config) Validate() error {
	c = c.withDefaults()
	p := bridges.NewProblems("", "xmpp config: %w")
	_, _, err := net.SplitHostPort(c.Server)
	p.If(err != nil, "server %q: want host:port: %w", c.Server, err)
	checkDomain := func(name, d string) {
		j, err := jid.New("", d, "")
		if err != nil || d == "" {
			p.If(true, "%s %q is not a valid XMPP domain", name, d)
			return
		}
		p.If(j.String() != d, "%s %q is not in canonical form (want %q)", name, d, j.String())
	}
	checkDomain("domain", c.Domain)
	checkDomain("users.domain", c.Users.Domain)
	checkDomain("rooms.domain", c.Rooms.Domain)
	p.If(c.Users.Domain != "" && c.Users.Domain == c.Rooms.Domain, "users.domain and rooms.domain must differ (each is its own component)")
	p.If(c.Users.Domain == c.Domain || c.Rooms.Domain == c.Domain, "the component domains must differ from the users' domain")
	p.If(c.Users.Secret == "" || c.Rooms.Secret == "", "users.secret and rooms.secret are required")
	_, err = event.ParseUserURI(string(event.NewUserURI(c.Provider, "x")))
	p.If(err != nil, "provider %q: %w", c.Provider, err)
	p.If(c.MaxBodyBytes < 0 || c.MaxBodyBytes > content.MaxContentSize/2, "max body bytes %d: want 1 to %d", c.MaxBodyBytes, content.MaxContentSize/2)
	p.If(c.HistoryKeep > 10000, "history keep %d: want at most 10000", c.HistoryKeep)
	p.If(c.ReconnectMin <= 0 || c.ReconnectMax < c.ReconnectMin, "reconnect backoff %s..%s is not a valid range", c.ReconnectMin, c.ReconnectMax)
	p.If(c.Workers < 1 || c.Workers > 256, "workers %d: want 1 to 256", c.Workers)
	for _, h := range c.UploadHosts {
		p.If(h == "" || strings.ContainsAny(h, "/?#@ "), "upload host %q: want host or host:port", h)
	}
	if c.UploadService != "" {
		j, err := jid.Parse(c.UploadService)
		p.If(err != nil || j.Localpart() != "" || j.Resourcepart() != "", "upload service %q: want a domain JID", c.UploadService)
	}
	p.If(c.MaxUploadBytes < 0 || c.MaxUploadBytes > 1<<30, "max upload bytes %d: want at most 1 GiB", c.MaxUploadBytes)
	_, ok := bridges.ParseLanguage(c.Language)
	p.If(!ok && c.Language != "", "language %q: want one of %v", c.Language, bridges.Languages)
	p.If(c.IDVersion != content.IDDraft08 && c.IDVersion != content.IDDraft07, "message ID version %d: want 7 or 8", int(c.IDVersion))
	return p.Err()
}
