package xmpp

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/config"
)

func TestFromConfig(t *testing.T) {
	yaml := string(config.Example())
	yaml = strings.Replace(yaml, "  xmpp:\n    # Start the XMPP adapter (docs/xmpp.md: Prosody and ejabberd set-up).\n    enabled: false",
		"  xmpp:\n    enabled: true", 1)
	yaml = strings.Replace(yaml, "      # bob\\40clinic-b.example@mimi.hospital.example; required when enabled.\n      domain: \"\"",
		"      domain: mimi.hospital.example", 1)
	yaml = strings.Replace(yaml, "      # when enabled, and different from users.domain.\n      domain: \"\"", "      domain: rooms.mimi.hospital.example", 1)
	yaml = strings.Replace(yaml, "secret: \"\"\n      # File whose content is the users", "secret: u-secret\n      # File whose content is the users", 1)
	yaml = strings.Replace(yaml, "secret: \"\"\n      # File whose content is the rooms", "secret: r-secret\n      # File whose content is the rooms", 1)
	yaml = strings.Replace(yaml, "\ndomain: localhost\n", "\ndomain: hospital.example\n", 1)
	c, err := config.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	got := FromConfig(c.Bridges.XMPP, c.Domain)
	if err := got.Validate(); err != nil {
		t.Fatalf("mapped config invalid: %v", err)
	}
	want := Config{Server: "127.0.0.1:5347", Domain: "hospital.example", Provider: "hospital.example",
		Users: ComponentConfig{"mimi.hospital.example", "u-secret"}, Rooms: ComponentConfig{"rooms.mimi.hospital.example", "r-secret"},
		HistoryOnJoin: 20, HistoryKeep: 200, MaxBodyBytes: 64 << 10, ReconnectMin: 100 * time.Millisecond, ReconnectMax: 5 * time.Second, Workers: 4}
	want.MaxUploadBytes, want.UploadHosts, want.Language = 16<<20, []string{}, "en"
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("FromConfig =\n%+v\nwant\n%+v", got, want)
	}
}

func TestConfigValidate(t *testing.T) {
	good := Config{Server: "127.0.0.1:5347", Domain: "hospital.example", Users: ComponentConfig{"mimi.hospital.example", "s"},
		Rooms: ComponentConfig{"rooms.hospital.example", "s"}}
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
