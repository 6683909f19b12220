package xmpp

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	good := Config{Server: "127.0.0.1:5347", Domain: "hospital.example", Users: ComponentConfig{Domain: "mimi.hospital.example", Secret: "s"},
		Rooms: ComponentConfig{Domain: "rooms.hospital.example", Secret: "s"}}
	if err := good.Validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	tests := []struct {
		name string
		mut  func(*Config)
		want string
	}{
		{"no server", func(c *Config) { c.Server = "" }, "server"},
		{"same components", func(c *Config) { c.Rooms.Domain = c.Users.Domain }, "must differ"},
		{"component is user domain", func(c *Config) { c.Users.Domain = c.Domain }, "must differ"},
		{"no secret", func(c *Config) { c.Rooms.Secret = "" }, "secret"},
		{"bad domain", func(c *Config) { c.Users.Domain = "a b" }, "users.domain"},
		{"upper-case domain", func(c *Config) { c.Rooms.Domain = "Rooms.example" }, "canonical"},
		{"huge body", func(c *Config) { c.MaxBodyBytes = 1 << 30 }, "max body"},
		{"backoff", func(c *Config) { c.ReconnectMin, c.ReconnectMax = time.Second, time.Millisecond }, "backoff"},
		{"workers", func(c *Config) { c.Workers = 1000 }, "workers"},
		{"id version", func(c *Config) { c.IDVersion = 5 }, "message ID version"},
	}
	for _, tc := range tests {
		c := good
		tc.mut(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to mention %q", tc.name, err, tc.want)
		}
	}
}
