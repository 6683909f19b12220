package matrix

import (
	"net/url"
	"strings"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/bridges"
	"github.com/mimi-gateway/mimi-gateway/core/content"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// Mode selects how the adapter attaches to the homeserver.
type Mode string

// Modes.
const (
	// ModeAppservice runs as an application service: ghosts for MIMI users and a portal room per
	// MIMI room (BundesMessenger, or any homeserver whose operator consents).
	ModeAppservice Mode = "appservice"
	// ModeClient logs one functional account in as an ordinary client with its own E2EE device and
	// relays with per-message sender attribution (TI-Messenger, where server-side bridging is
	// forbidden).
	ModeClient Mode = "client"
)

// Config configures the adapter (the bridges.matrix section of the gateway configuration).
type Config struct {
	// Mode is "appservice" or "client".
	Mode Mode `mapstructure:"mode" yaml:"mode"`
	// HomeserverURL is the client-server API base URL, e.g. https://matrix.klinik-a.example.
	HomeserverURL string `mapstructure:"homeserver_url" yaml:"homeserver_url"`
	// ServerName is the homeserver's server name (the part after ':' in user IDs).
	ServerName string `mapstructure:"server_name" yaml:"server_name"`
	// GatewayDomain is the MIMI provider domain: rooms that Matrix users start are hosted as
	// mimi://<GatewayDomain>/r/<room>.
	GatewayDomain event.Domain `mapstructure:"gateway_domain" yaml:"gateway_domain"`
	// Appservice configures appservice mode.
	Appservice AppserviceConfig `mapstructure:"appservice" yaml:"appservice"`
	// Client configures client mode.
	Client ClientConfig `mapstructure:"client" yaml:"client"`
	// Encryption configures end-to-end encryption.
	Encryption EncryptionConfig `mapstructure:"encryption" yaml:"encryption"`
	// MaxMediaSize bounds a file the adapter downloads or uploads. Default 100 MiB.
	MaxMediaSize int64 `mapstructure:"max_media_size" yaml:"max_media_size"`
	// DecryptWait is how long an incoming encrypted event waits for its room key before it is
	// parked in the store until the key arrives. Default 5s.
	DecryptWait time.Duration `mapstructure:"decrypt_wait" yaml:"decrypt_wait"`
	// UnreadableNoticeAfter is how long a parked encrypted event waits for its room key before its
	// sender is told that the gateway cannot read it. Default 30s.
	UnreadableNoticeAfter time.Duration `mapstructure:"-" yaml:"-"`
	// KeyRequestInterval is how often the room key of a parked encrypted event is asked for
	// again (a request, or the key itself, may be lost while the homeserver restarts).
	// Default 60s.
	KeyRequestInterval time.Duration `mapstructure:"-" yaml:"-"`
	// Language is the language of the gateway's notices and command answers: "en" (the default)
	// or "de" (see bridges.Languages).
	Language string `mapstructure:"language" yaml:"language"`
	// IDVersion selects the MIMI message-ID construction. Default content.DefaultIDVersion.
	IDVersion content.IDVersion `mapstructure:"-" yaml:"-"`
}

// AppserviceConfig configures appservice mode.
type AppserviceConfig struct {
	// ID is the registration ID. Default "mimi-gateway".
	ID string `mapstructure:"id" yaml:"id"`
	// Listen is the address the transaction endpoint listens on, e.g. 127.0.0.1:29333.
	Listen string `mapstructure:"listen" yaml:"listen"`
	// URL is how the homeserver reaches Listen, e.g. http://gateway:29333. Default http://<Listen>.
	URL string `mapstructure:"url" yaml:"url"`
	// RegistrationFile is the registration YAML (with the as/hs tokens) written by
	// `mimi-gateway matrix registration` and given to the homeserver.
	RegistrationFile string `mapstructure:"registration_file" yaml:"registration_file"`
	// BotLocalpart is the appservice bot's localpart. Default "mimibot".
	BotLocalpart string `mapstructure:"bot_localpart" yaml:"bot_localpart"`
	// GhostPrefix starts every ghost's localpart. Default "mimi_".
	GhostPrefix string `mapstructure:"ghost_prefix" yaml:"ghost_prefix"`
	// MaxTransactionSize bounds a transaction body. Default 32 MiB.
	MaxTransactionSize int64 `mapstructure:"max_transaction_size" yaml:"max_transaction_size"`
}

// ClientConfig configures client mode.
type ClientConfig struct {
	// UserID is the functional account, e.g. @mimi-bot:klinik-a.example.
	UserID id.UserID `mapstructure:"user_id" yaml:"user_id"`
	// Password logs the account in (m.login.password) when AccessToken is empty.
	Password string `mapstructure:"password" yaml:"password"`
	// AccessToken is used instead of a password login; DeviceID must be its device.
	AccessToken string `mapstructure:"access_token" yaml:"access_token"`
	// DeviceID is the device of AccessToken.
	DeviceID id.DeviceID `mapstructure:"device_id" yaml:"device_id"`
	// DisplayName is set on the account; TI-Messenger requires bots to be labelled, so
	// " (Chatbot)" is appended when missing. Default "MIMI Gateway".
	DisplayName string `mapstructure:"display_name" yaml:"display_name"`
	// PermissionCheck honours the account's TI-Messenger invite permissions
	// (de.gematik.tim.account.permissionconfig.pro.v1). Default true.
	PermissionCheck *bool `mapstructure:"permission_check" yaml:"permission_check"`
}

// EncryptionConfig configures end-to-end encryption.
type EncryptionConfig struct {
	// Default encrypts the portal rooms the adapter creates. Default true.
	Default *bool `mapstructure:"default" yaml:"default"`
	// PickleKey encrypts the Olm account and sessions in the store. Required whenever
	// encryption is possible (always, in practice); keep it secret.
	PickleKey string `mapstructure:"pickle_key" yaml:"pickle_key"`
	// Require refuses to bridge rooms that are not end-to-end encrypted, in both directions.
	Require bool `mapstructure:"require" yaml:"require"`
}

// Defaults.
const (
	DefaultAppserviceID          = "mimi-gateway"
	DefaultBotLocalpart          = "mimibot"
	DefaultGhostPrefix           = "mimi_"
	DefaultMaxMediaSize          = 100 << 20
	DefaultMaxTransaction        = 32 << 20
	DefaultDecryptWait           = 5 * time.Second
	DefaultUnreadableNoticeAfter = 30 * time.Second
	DefaultKeyRequestInterval    = 60 * time.Second
	DefaultClientName            = "MIMI Gateway"
	botLabel                     = "(Chatbot)"
	permissionConfigType         = "de.gematik.tim.account.permissionconfig.pro.v1"
	permissionConfigBasic        = "de.gematik.tim.account.permissionconfig.v1"
	minPickleKeyLength           = 16
	maxDisplayNameLength         = 256
	maxAttributionNameRunes      = 64
)

// WithDefaults returns c with defaults filled in.
func (c Config) WithDefaults() Config {
	bridges.Default(&c.IDVersion, content.DefaultIDVersion)
	bridges.Default(&c.Appservice.ID, DefaultAppserviceID)
	bridges.Default(&c.Appservice.BotLocalpart, DefaultBotLocalpart)
	bridges.Default(&c.Appservice.GhostPrefix, DefaultGhostPrefix)
	if c.Appservice.URL == "" && c.Appservice.Listen != "" {
		c.Appservice.URL = "http://" + c.Appservice.Listen
	}
	bridges.Default(&c.Appservice.MaxTransactionSize, DefaultMaxTransaction)
	bridges.Default(&c.MaxMediaSize, DefaultMaxMediaSize)
	bridges.Default(&c.DecryptWait, DefaultDecryptWait)
	bridges.Default(&c.UnreadableNoticeAfter, DefaultUnreadableNoticeAfter)
	bridges.Default(&c.KeyRequestInterval, DefaultKeyRequestInterval)
	bridges.Default(&c.Client.DisplayName, DefaultClientName)
	if !strings.Contains(c.Client.DisplayName, botLabel) {
		c.Client.DisplayName += " " + botLabel
	}
	if c.Encryption.Default == nil {
		t := true
		c.Encryption.Default = &t
	}
	if c.Client.PermissionCheck == nil {
		t := true
		c.Client.PermissionCheck = &t
	}
	return c
}

// Validate reports every problem of c (after WithDefaults) joined.
func (c Config) Validate() error {
	p := bridges.NewProblems("matrix: ", "")
	switch c.Mode {
	case ModeAppservice, ModeClient:
	default:
		p.If(true, "mode %q: want appservice or client", c.Mode)
	}
	if u, err := url.Parse(c.HomeserverURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		p.If(true, "homeserver_url %q: want an http(s) URL", c.HomeserverURL)
	}
	p.If(c.ServerName == "" || strings.ContainsAny(c.ServerName, "/@!# "), "server_name %q: want the homeserver's server name", c.ServerName)
	if _, err := event.ParseRoomURI(string(event.NewRoomURI(c.GatewayDomain, "x"))); err != nil || c.GatewayDomain == "" ||
		strings.ToLower(string(c.GatewayDomain)) != string(c.GatewayDomain) {
		p.If(true, "gateway_domain %q: want a lower-case DNS name", c.GatewayDomain)
	}
	p.If(len(c.Encryption.PickleKey) < minPickleKeyLength, "encryption.pickle_key: want at least %d characters", minPickleKeyLength)
	switch c.Mode {
	case ModeAppservice:
		p.If(c.Appservice.Listen == "", "appservice.listen: required in appservice mode")
		p.If(c.Appservice.RegistrationFile == "", "appservice.registration_file: required in appservice mode")
		p.If(!validLocalpart(c.Appservice.BotLocalpart), "appservice.bot_localpart %q: not a valid Matrix localpart", c.Appservice.BotLocalpart)
		p.If(!validLocalpart(c.Appservice.GhostPrefix), "appservice.ghost_prefix %q: not a valid Matrix localpart prefix", c.Appservice.GhostPrefix)
		p.If(strings.HasPrefix(c.Appservice.BotLocalpart, c.Appservice.GhostPrefix), "appservice.bot_localpart %q must not start with the ghost prefix %q", c.Appservice.BotLocalpart, c.Appservice.GhostPrefix)
	case ModeClient:
		if _, _, err := c.Client.UserID.Parse(); err != nil {
			p.If(true, "client.user_id %q: %v", c.Client.UserID, err)
		}
		p.If(c.Client.Password == "" && c.Client.AccessToken == "", "client: password or access_token required")
		p.If(c.Client.AccessToken != "" && c.Client.DeviceID == "", "client.device_id: required with access_token")
	}
	if _, ok := bridges.ParseLanguage(c.Language); !ok && c.Language != "" {
		p.If(true, "language %q: want one of %v", c.Language, bridges.Languages)
	}
	p.If(c.MaxMediaSize < 0 || c.Appservice.MaxTransactionSize < 0 || c.DecryptWait < 0, "sizes and durations must not be negative")
	return p.Err()
}

func validLocalpart(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("._=-/", c) >= 0) {
			return false
		}
	}
	return true
}
