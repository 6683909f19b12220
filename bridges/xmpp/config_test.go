package xmpp

import (
	"strings"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/confschema"
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
		{"huge body", func(c *Config) { c.MaxBodyBytes = new(confschema.ByteSize(1 << 30)) }, "max body"},
		{"no body", func(c *Config) { c.MaxBodyBytes = new(confschema.ByteSize(0)) }, "max body 0 bytes: want 1 to"},
		{"negative history on join", func(c *Config) { c.HistoryOnJoin = new(-1) }, "history on join -1: want 0 (none) or more"},
		{"negative history keep", func(c *Config) { c.HistoryKeep = new(-1) }, "history keep -1: want 0 (none) to 10000"},
		{"backoff", func(c *Config) { c.ReconnectMin, c.ReconnectMax = time.Second, time.Millisecond }, "backoff"},
		{"workers", func(c *Config) { c.Workers = new(1000) }, "workers"},
		{"no workers", func(c *Config) { c.Workers = new(0) }, "workers 0: want 1 to 256"},
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
