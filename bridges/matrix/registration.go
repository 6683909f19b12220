package matrix

import (
	"maunium.net/go/mautrix/appservice"

	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/registration"
)

// DefaultRegistrationFile is the registration file name in the data directory.
const DefaultRegistrationFile = registration.DefaultFile

// registrationSpec is what the registration of cfg (after WithDefaults) says.
func (c Config) registrationSpec() registration.Spec {
	c = c.WithDefaults()
	g := Ghosts{Prefix: c.Appservice.GhostPrefix, Server: c.ServerName}
	return registration.Spec{ID: c.Appservice.ID, URL: c.Appservice.URL, BotLocalpart: c.Appservice.BotLocalpart,
		GhostPrefix: c.Appservice.GhostPrefix, GhostRegex: g.Regex(), ServerName: c.ServerName}
}

// NewRegistration builds the appservice registration for cfg (registration.New).
func NewRegistration(cfg Config, prev *appservice.Registration) (*appservice.Registration, error) {
	return registration.New(cfg.registrationSpec(), prev)
}

// LoadRegistration reads a registration file written by WriteRegistration (registration.Load).
func LoadRegistration(path string) (*appservice.Registration, error) { return registration.Load(path) }

// WriteRegistration writes (or rewrites, keeping its tokens) the registration file for cfg with
// mode 0600 and returns it (registration.Write).
func WriteRegistration(cfg Config, path string) (*appservice.Registration, error) {
	return registration.Write(cfg.registrationSpec(), path)
}
