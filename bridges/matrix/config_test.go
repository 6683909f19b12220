package matrix

import (
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	base := func() Config {
		return Config{Mode: ModeClient, HomeserverURL: "https://hs.example", ServerName: "hs.example", GatewayDomain: "hs.example",
			Client: ClientConfig{UserID: "@gw:hs.example", Password: "pw"}, Encryption: EncryptionConfig{PickleKey: testPickleKey}}.WithDefaults()
	}
	tests := []struct {
		name string
		mod  func(*Config)
		want string // substring of the error, "" for valid
	}{
		{"valid client", func(*Config) {}, ""},
		{"bad mode", func(c *Config) { c.Mode = "bridge" }, "mode"},
		{"bad url", func(c *Config) { c.HomeserverURL = "ftp://x" }, "homeserver_url"},
		{"short pickle key", func(c *Config) { c.Encryption.PickleKey = "short" }, "pickle_key"},
		{"no credentials", func(c *Config) { c.Client.Password = "" }, "password or access_token"},
		{"token without device", func(c *Config) { c.Client.Password, c.Client.AccessToken = "", "tok" }, "device_id"},
		{"bad user", func(c *Config) { c.Client.UserID = "gw" }, "user_id"},
		{"appservice needs listen", func(c *Config) { c.Mode = ModeAppservice; c.Appservice.RegistrationFile = "r.yaml" }, "listen"},
		{"bot in ghost namespace", func(c *Config) {
			c.Mode, c.Appservice.Listen, c.Appservice.RegistrationFile, c.Appservice.BotLocalpart = ModeAppservice, "127.0.0.1:1", "r", "mimi_bot"
		}, "ghost prefix"},
		{"uppercase gateway domain", func(c *Config) { c.GatewayDomain = "Klinik.example" }, "gateway_domain"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.mod(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}
