package matrix

import (
	"cmp"
	"net/url"
	"regexp"
	"strings"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/bridges"
	"github.com/mimi-gateway/mimi-gateway/core/confschema"
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

// Config configures the adapter: it is the bridges.matrix section of the gateway's configuration
// (the yaml tags are its keys; config/example.yaml documents each with its default). The config
// package fills in what comes from the top level (GatewayDomain, and ServerName and
// RegistrationFile when empty) and validates it where the file says it.
type Config struct {
	// Enabled starts the adapter (the run command reads it).
	Enabled bool `yaml:"enabled"`
	// Mode is "appservice" or "client".
	Mode Mode `yaml:"mode"`
	// HomeserverURL is the client-server API base URL, e.g. https://matrix.klinik-a.example.
	HomeserverURL string `yaml:"homeserver_url"`
	// ServerName is the homeserver's server name (the part after ':' in user IDs).
	ServerName string `yaml:"server_name"`
	// GatewayDomain is the MIMI provider domain: rooms that Matrix users start are hosted as
	// mimi://<GatewayDomain>/r/<room>.
	GatewayDomain event.Domain `yaml:"-"`
	// Appservice configures appservice mode.
	Appservice AppserviceConfig `yaml:"appservice"`
	// Client configures client mode.
	Client ClientConfig `yaml:"client"`
	// Encryption configures end-to-end encryption.
	Encryption EncryptionConfig `yaml:"encryption"`
	// MaxMediaSize bounds a file the adapter downloads or uploads. Default 100 MiB.
	MaxMediaSize confschema.ByteSize `yaml:"max_media_size"`
	// DecryptWait is how long an incoming encrypted event waits for its room key before it is
	// parked in the store until the key arrives. Default 5s.
	DecryptWait time.Duration `yaml:"decrypt_wait"`
	// UnreadableNoticeAfter is how long a parked encrypted event waits for its room key before its
	// sender is told that the gateway cannot read it. Default 30s.
	UnreadableNoticeAfter time.Duration `yaml:"-"`
	// KeyRequestInterval is how often the room key of a parked encrypted event is asked for
	// again (a request, or the key itself, may be lost while the homeserver restarts).
	// Default 60s.
	KeyRequestInterval time.Duration `yaml:"-"`
	// Language is the language of the gateway's notices and command answers: "en" (the default)
	// or "de" (see bridges.Languages).
	Language string `yaml:"language"`
	// IDVersion selects the MIMI message-ID construction. Default content.DefaultIDVersion.
	IDVersion content.IDVersion `yaml:"-"`
}

// AppserviceConfig configures appservice mode.
type AppserviceConfig struct {
	// ID is the registration ID. Default "mimi-gateway".
	ID string `yaml:"id"`
	// Listen is the address the transaction endpoint listens on, e.g. 127.0.0.1:29333.
	Listen string `yaml:"listen"`
	// URL is how the homeserver reaches Listen, e.g. http://gateway:29333. Default http://<Listen>.
	URL string `yaml:"url"`
	// RegistrationFile is the registration YAML (with the as/hs tokens) written by
	// `mimi-gateway matrix registration` and given to the homeserver.
	RegistrationFile string `yaml:"registration_file"`
	// BotLocalpart is the appservice bot's localpart. Default "mimibot".
	BotLocalpart string `yaml:"bot_localpart"`
	// GhostPrefix starts every ghost's localpart. Default "mimi_".
	GhostPrefix string `yaml:"ghost_prefix"`
	// MaxTransactionSize bounds a transaction body. Default 32 MiB.
	MaxTransactionSize int64 `yaml:"-"`
}

// ClientConfig configures client mode.
type ClientConfig struct {
	// UserID is the functional account, e.g. @mimi-bot:klinik-a.example.
	UserID id.UserID `yaml:"user_id"`
	// Password logs the account in (m.login.password) when AccessToken is empty. Secret.
	Password string `yaml:"password"`
	// PasswordFile is a file whose content is the password (read by the config package).
	PasswordFile string `yaml:"password_file"`
	// AccessToken is used instead of a password login; DeviceID must be its device. Secret.
	AccessToken string `yaml:"access_token"`
	// AccessTokenFile is a file whose content is the access token.
	AccessTokenFile string `yaml:"access_token_file"`
	// DeviceID is the device of AccessToken.
	DeviceID id.DeviceID `yaml:"device_id"`
	// DisplayName is set on the account; TI-Messenger requires bots to be labelled, so
	// " (Chatbot)" is appended when missing. Default "MIMI Gateway".
	DisplayName string `yaml:"display_name"`
	// PermissionCheck honours the account's TI-Messenger invite permissions
	// (de.gematik.tim.account.permissionconfig.pro.v1). Default true.
	PermissionCheck *bool `yaml:"permission_check"`
}

// EncryptionConfig configures end-to-end encryption.
type EncryptionConfig struct {
	// Default encrypts the portal rooms the adapter creates. Default true.
	Default *bool `yaml:"default"`
	// PickleKey encrypts the Olm account and sessions in the store. Required whenever
	// encryption is possible (always, in practice); keep it secret.
	PickleKey string `yaml:"pickle_key"`
	// PickleKeyFile is a file whose content is the pickle key.
	PickleKeyFile string `yaml:"pickle_key_file"`
	// Require refuses to bridge rooms that are not end-to-end encrypted, in both directions.
	Require bool `yaml:"require"`
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
	c.Encryption.Default = cmp.Or(c.Encryption.Default, new(true))
	c.Client.PermissionCheck = cmp.Or(c.Client.PermissionCheck, new(true))
	return c
}

// Validate reports every problem of c joined, each a *confschema.Problem naming its key under
// bridges.matrix.
func (c Config) Validate() error {
	const k = "bridges.matrix."
	var p confschema.Problems
	p.OneOf(k+"mode", string(c.Mode), string(ModeAppservice), string(ModeClient))
	if u, err := url.Parse(c.HomeserverURL); p.Required(k+"homeserver_url", c.HomeserverURL, "") && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "") {
		p.Errorf(k+"homeserver_url", "%q is not an http(s) URL", c.HomeserverURL)
	}
	p.If(c.ServerName == "" || strings.ContainsAny(c.ServerName, "/@!# "), k+"server_name", "%q is not a Matrix server name", c.ServerName)
	_, err := event.ParseRoomURI(string(event.NewRoomURI(c.GatewayDomain, "x")))
	p.If(err != nil || c.GatewayDomain == "" || strings.ToLower(string(c.GatewayDomain)) != string(c.GatewayDomain), k+"gateway_domain", "%q: want a lower-case DNS name (the domain key)", c.GatewayDomain)
	if p.Required(k+"encryption.pickle_key", c.Encryption.PickleKey, "(or set pickle_key_file)") {
		p.If(len(c.Encryption.PickleKey) < minPickleKeyLength, k+"encryption.pickle_key", "must be at least %d characters", minPickleKeyLength)
	}
	switch a := c.Appservice; c.Mode {
	case ModeAppservice:
		if p.Required(k+"appservice.listen", a.Listen, "(appservice mode)") {
			p.HostPort(k+"appservice.listen", a.Listen)
		}
		p.Required(k+"appservice.registration_file", a.RegistrationFile, "(appservice mode)")
		p.If(!localpartRE.MatchString(a.BotLocalpart), k+"appservice.bot_localpart", "%q is not a valid Matrix localpart (a-z, 0-9, ._=-/)", a.BotLocalpart)
		p.If(!localpartRE.MatchString(a.GhostPrefix), k+"appservice.ghost_prefix", "%q is not a valid Matrix localpart prefix (a-z, 0-9, ._=-/)", a.GhostPrefix)
		p.If(a.GhostPrefix != "" && strings.HasPrefix(a.BotLocalpart, a.GhostPrefix), k+"appservice.bot_localpart", "%q must not start with the ghost prefix %q", a.BotLocalpart, a.GhostPrefix)
	case ModeClient:
		if _, _, err := c.Client.UserID.Parse(); p.Required(k+"client.user_id", string(c.Client.UserID), "(client mode)") && err != nil {
			p.Errorf(k+"client.user_id", "%q is not a Matrix user ID: %v", c.Client.UserID, err)
		}
		p.Required(k+"client.password", c.Client.Password+c.Client.AccessToken, "(password or access_token, or their _file keys)")
		p.If(c.Client.AccessToken != "" && c.Client.DeviceID == "", k+"client.device_id", "required with access_token")
	}
	_, ok := bridges.ParseLanguage(c.Language)
	p.If(!ok && c.Language != "", k+"language", "%q is not one of %v", c.Language, bridges.Languages)
	p.If(c.MaxMediaSize <= 0 || c.MaxMediaSize > 1<<30, k+"max_media_size", "must be between 1 byte and 1GiB")
	p.If(c.DecryptWait < 0 || c.DecryptWait > 25*time.Second, k+"decrypt_wait", "must be between 0 and 25s (homeservers time transactions out after 30s)")
	p.If(c.Appservice.MaxTransactionSize < 0, k+"appservice", "the transaction size must not be negative")
	return p.Err()
}

// localpartRE matches the localparts the gateway accepts for its bot and ghosts: a-z, 0-9 and ._=-/.
var localpartRE = regexp.MustCompile(`^[a-z0-9._=\-/]+$`)
