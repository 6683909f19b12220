package matrix

import (
	"path/filepath"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/config"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// DefaultRegistrationFile is the registration file name in the data directory.
const DefaultRegistrationFile = "matrix-registration.yaml"

// FromConfig maps the bridges.matrix configuration section onto Config. gatewayDomain is the
// gateway's MIMI domain (the top-level domain key), dataDir its data directory.
func FromConfig(c config.MatrixBridge, gatewayDomain, dataDir string) Config {
	out := Config{
		Mode: Mode(c.Mode), HomeserverURL: c.HomeserverURL, ServerName: c.ServerName,
		GatewayDomain: event.Domain(gatewayDomain),
		Appservice: AppserviceConfig{ID: c.Appservice.ID, Listen: c.Appservice.Listen, URL: c.Appservice.URL,
			RegistrationFile: c.Appservice.RegistrationFile, BotLocalpart: c.Appservice.BotLocalpart, GhostPrefix: c.Appservice.GhostPrefix},
		Client: ClientConfig{UserID: id.UserID(c.Client.UserID), Password: c.Client.Password, AccessToken: c.Client.AccessToken,
			DeviceID: id.DeviceID(c.Client.DeviceID), DisplayName: c.Client.DisplayName, PermissionCheck: &c.Client.PermissionCheck},
		Encryption:   EncryptionConfig{Default: &c.Encryption.Default, PickleKey: c.Encryption.PickleKey, Require: c.Encryption.Require},
		MaxMediaSize: int64(c.MaxMediaSize),
		DecryptWait:  c.DecryptWait,
		Language:     c.Language,
	}
	if out.ServerName == "" {
		out.ServerName = gatewayDomain
	}
	if out.Appservice.RegistrationFile == "" && dataDir != "" {
		out.Appservice.RegistrationFile = filepath.Join(dataDir, DefaultRegistrationFile)
	}
	if out.DecryptWait == 0 {
		out.DecryptWait = time.Nanosecond // 0 in the file means "do not wait"; 0 here would mean the default
	}
	return out.WithDefaults()
}
