package config

import (
	"net/url"
	"strings"
	"time"
)

// MatrixBridge is the bridges.matrix section; cmd/mimi-gateway maps it onto bridges/matrix's own
// Config (matrixConfig). Every key is documented with its default in example.yaml.
type MatrixBridge struct {
	// Enabled starts the Matrix adapter.
	Enabled bool `yaml:"enabled"`
	// Mode is "appservice" (ghosts and portal rooms) or "client" (one functional account).
	Mode string `yaml:"mode"`
	// HomeserverURL is the homeserver's client-server API base URL.
	HomeserverURL string `yaml:"homeserver_url"`
	// ServerName is the homeserver's server name; empty means the gateway's domain.
	ServerName string `yaml:"server_name"`
	// Appservice configures appservice mode.
	Appservice MatrixAppservice `yaml:"appservice"`
	// Client configures client mode.
	Client MatrixClient `yaml:"client"`
	// Encryption configures end-to-end encryption.
	Encryption MatrixEncryption `yaml:"encryption"`
	// MaxMediaSize bounds one attachment.
	MaxMediaSize ByteSize `yaml:"max_media_size"`
	// DecryptWait is how long an encrypted event waits for its room key before it is parked.
	DecryptWait time.Duration `yaml:"decrypt_wait"`
	// Language is the language (en or de) of the gateway's notices and command answers.
	Language string `yaml:"language"`
}

// MatrixAppservice configures appservice mode.
type MatrixAppservice struct {
	// ID is the registration ID.
	ID string `yaml:"id"`
	// Listen is host:port of the transaction endpoint.
	Listen string `yaml:"listen"`
	// URL is how the homeserver reaches the endpoint; empty means http://<listen>.
	URL string `yaml:"url"`
	// RegistrationFile is the registration with the tokens; empty means
	// <data_dir>/matrix-registration.yaml.
	RegistrationFile string `yaml:"registration_file"`
	// BotLocalpart is the appservice bot's localpart.
	BotLocalpart string `yaml:"bot_localpart"`
	// GhostPrefix starts every ghost's localpart.
	GhostPrefix string `yaml:"ghost_prefix"`
}

// MatrixClient configures client mode.
type MatrixClient struct {
	// UserID is the functional account.
	UserID string `yaml:"user_id"`
	// Password logs the account in. Secret: prefer password_file.
	Password string `yaml:"password"`
	// PasswordFile is a file whose content is the password.
	PasswordFile string `yaml:"password_file"`
	// AccessToken is used instead of a password. Secret: prefer access_token_file.
	AccessToken string `yaml:"access_token"`
	// AccessTokenFile is a file whose content is the access token.
	AccessTokenFile string `yaml:"access_token_file"`
	// DeviceID is the device of the access token.
	DeviceID string `yaml:"device_id"`
	// DisplayName is the account's display name; " (Chatbot)" is appended when missing.
	DisplayName string `yaml:"display_name"`
	// PermissionCheck honours the account's TI-Messenger invite permissions.
	PermissionCheck bool `yaml:"permission_check"`
}

// MatrixEncryption configures end-to-end encryption.
type MatrixEncryption struct {
	// Require refuses to bridge rooms that are not end-to-end encrypted (TI-Messenger A_22793).
	Require bool `yaml:"require"`
	// Default encrypts the portal rooms the gateway creates.
	Default bool `yaml:"default"`
	// PickleKey encrypts the Olm account and sessions in the store. Secret: prefer pickle_key_file.
	PickleKey string `yaml:"pickle_key"`
	// PickleKeyFile is a file whose content is the pickle key.
	PickleKeyFile string `yaml:"pickle_key_file"`
}

// validate checks the section. It is called for every load, enabled or not, so details are
// checked only when b.Enabled.
func (b *MatrixBridge) validate(v *validator) {
	if !b.Enabled {
		return
	}
	v.OneOf("bridges.matrix.mode", b.Mode, "appservice", "client")
	v.OneOf("bridges.matrix.language", b.Language, "en", "de")
	// Required values (homeserver_url, pickle_key, client.user_id, ...) are checked when the
	// adapter starts (matrix.Config.Validate); here only the format of what is set.
	if b.HomeserverURL != "" {
		if u, err := url.Parse(b.HomeserverURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.Errorf("bridges.matrix.homeserver_url", "%q is not an http(s) URL", b.HomeserverURL)
		}
	}
	if b.ServerName != "" && strings.ContainsAny(b.ServerName, "/@!# ") {
		v.Errorf("bridges.matrix.server_name", "%q is not a Matrix server name", b.ServerName)
	}
	if b.Encryption.PickleKey != "" && len(b.Encryption.PickleKey) < 16 {
		v.Errorf("bridges.matrix.encryption.pickle_key", "must be at least 16 characters")
	}
	switch b.Mode {
	case "appservice":
		if v.Required("bridges.matrix.appservice.listen", b.Appservice.Listen, "") {
			v.HostPort("bridges.matrix.appservice.listen", b.Appservice.Listen)
		}
		for path, lp := range map[string]string{"bridges.matrix.appservice.bot_localpart": b.Appservice.BotLocalpart,
			"bridges.matrix.appservice.ghost_prefix": b.Appservice.GhostPrefix} {
			if !matrixLocalpart(lp) {
				v.Errorf(path, "%q is not a valid Matrix localpart (a-z, 0-9, ._=-/)", lp)
			}
		}
		if b.Appservice.GhostPrefix != "" && strings.HasPrefix(b.Appservice.BotLocalpart, b.Appservice.GhostPrefix) {
			v.Errorf("bridges.matrix.appservice.bot_localpart", "must not start with ghost_prefix %q", b.Appservice.GhostPrefix)
		}
	case "client":
		if b.Client.UserID != "" && (!strings.HasPrefix(b.Client.UserID, "@") || !strings.Contains(b.Client.UserID, ":")) {
			v.Errorf("bridges.matrix.client.user_id", "%q is not a Matrix user ID", b.Client.UserID)
		}
		if b.Client.AccessToken != "" && b.Client.DeviceID == "" {
			v.Errorf("bridges.matrix.client.device_id", "required with access_token")
		}
	}
	if b.MaxMediaSize <= 0 || b.MaxMediaSize > 1<<30 {
		v.Errorf("bridges.matrix.max_media_size", "must be between 1 byte and 1GiB")
	}
	if b.DecryptWait < 0 || b.DecryptWait > 25*time.Second {
		v.Errorf("bridges.matrix.decrypt_wait", "must be between 0 and 25s (homeservers time transactions out after 30s)")
	}
}

func matrixLocalpart(s string) bool {
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
