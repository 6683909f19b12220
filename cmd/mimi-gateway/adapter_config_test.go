package main

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/bridges/matrix"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp"
	"github.com/mimi-gateway/mimi-gateway/config"
	"github.com/mimi-gateway/mimi-gateway/core/confschema"
)

func TestMatrixConfig(t *testing.T) {
	yaml := string(config.Example())
	yaml = strings.Replace(yaml, "    # Start the Matrix adapter (docs/matrix.md: BundesMessenger and TI-Messenger set-up).\n    enabled: false",
		"    enabled: true", 1)
	yaml = strings.Replace(yaml, "    homeserver_url: \"\"", "    homeserver_url: https://matrix.klinik-a.example", 1)
	yaml = strings.Replace(yaml, "      pickle_key: \"\"", "      pickle_key: a-long-enough-pickle-key", 1)
	yaml = strings.Replace(yaml, "\ndomain: localhost\n", "\ndomain: klinik-a.example\n", 1)
	yaml = strings.Replace(yaml, "\ndata_dir: ./data\n", "\ndata_dir: /var/lib/mimi\n", 1)
	c, err := config.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	got := c.MatrixConfig()
	if err := got.Validate(); err != nil {
		t.Fatalf("mapped config invalid: %v", err)
	}
	if got.Mode != matrix.ModeAppservice || got.ServerName != "klinik-a.example" || got.GatewayDomain != "klinik-a.example" ||
		got.Appservice.Listen != "127.0.0.1:29333" || got.Appservice.URL != "http://127.0.0.1:29333" ||
		got.Appservice.RegistrationFile != filepath.Join("/var/lib/mimi", matrix.DefaultRegistrationFile) ||
		got.Appservice.GhostPrefix != "mimi_" || got.Appservice.BotLocalpart != "mimibot" ||
		!*got.Encryption.Default || got.MaxMediaSize != 100<<20 || got.DecryptWait != 5*time.Second ||
		got.Client.DisplayName != "MIMI Gateway (Chatbot)" || !*got.Client.PermissionCheck {
		t.Errorf("MatrixConfig() = %+v", got)
	}
}

// xmppExample is the example configuration with the XMPP adapter enabled for hospital.example.
func xmppExample() string {
	yaml := string(config.Example())
	yaml = strings.Replace(yaml, "  xmpp:\n    # Start the XMPP adapter (docs/xmpp.md: Prosody and ejabberd set-up).\n    enabled: false",
		"  xmpp:\n    enabled: true", 1)
	yaml = strings.Replace(yaml, "      # bob\\40clinic-b.example@mimi.hospital.example; required when enabled.\n      domain: \"\"",
		"      domain: mimi.hospital.example", 1)
	yaml = strings.Replace(yaml, "      # when enabled, and different from users.domain.\n      domain: \"\"", "      domain: rooms.mimi.hospital.example", 1)
	yaml = strings.Replace(yaml, "secret: \"\"\n      # File whose content is the users", "secret: u-secret\n      # File whose content is the users", 1)
	yaml = strings.Replace(yaml, "secret: \"\"\n      # File whose content is the rooms", "secret: r-secret\n      # File whose content is the rooms", 1)
	return strings.Replace(yaml, "\ndomain: localhost\n", "\ndomain: hospital.example\n", 1)
}

func TestXMPPConfig(t *testing.T) {
	c, err := config.Parse("test.yaml", []byte(xmppExample()))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	got := c.XMPPConfig()
	if err := got.Validate(); err != nil {
		t.Fatalf("mapped config invalid: %v", err)
	}
	want := xmpp.Config{Server: "127.0.0.1:5347", Domain: "hospital.example", Provider: "hospital.example",
		Users: xmpp.ComponentConfig{Domain: "mimi.hospital.example", Secret: "u-secret"}, Rooms: xmpp.ComponentConfig{Domain: "rooms.mimi.hospital.example", Secret: "r-secret"},
		HistoryOnJoin: new(20), HistoryKeep: new(200), MaxBodyBytes: new(confschema.ByteSize(64 << 10)), ReconnectMin: 100 * time.Millisecond, ReconnectMax: 5 * time.Second, Workers: new(4)}
	want.MaxUploadBytes, want.UploadHosts, want.Language = 16<<20, []string{}, "en"
	// The section is xmpp.Config itself: it carries enabled, allow_room_creation and known_users
	// as the file says them.
	want.Enabled, want.AllowRoomCreation, want.KnownUsers = true, new(true), []string{}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("XMPPConfig() =\n%+v\nwant\n%+v", got, want)
	}
}

// TestXMPPConfigZero: a 0 or a negative number written in the file means what the key's comment
// says (history_on_join 0 is no history), or is refused at its line with the key named; it never
// silently becomes the default.
func TestXMPPConfigZero(t *testing.T) {
	tests := []struct {
		name, from, to string
		err            string // "" when valid
		check          func(xmpp.Config) bool
	}{
		{"no history on join", "history_on_join: 20", "history_on_join: 0", "",
			func(x xmpp.Config) bool { return *x.HistoryOnJoin == 0 && *x.HistoryKeep == 200 }},
		{"no history kept", "history_keep: 200", "history_keep: 0", "",
			func(x xmpp.Config) bool { return *x.HistoryKeep == 0 && *x.HistoryOnJoin == 20 }},
		{"negative history on join", "history_on_join: 20", "history_on_join: -5", "bridges.xmpp.history_on_join: history on join -5: want 0 (none) or more", nil},
		{"negative history keep", "history_keep: 200", "history_keep: -1", "bridges.xmpp.history_keep: history keep -1: want 0 (none) to 10000", nil},
		{"no workers", "workers: 4", "workers: 0", "bridges.xmpp.workers: workers 0: want 1 to 256", nil},
		{"no body", "max_body: 64KiB", "max_body: 0", "bridges.xmpp.max_body: max body 0 bytes: want 1 to", nil},
		{"default", "", "", "",
			func(x xmpp.Config) bool {
				return *x.HistoryOnJoin == 20 && *x.HistoryKeep == 200 && *x.Workers == 4 && *x.MaxBodyBytes == confschema.ByteSize(64<<10)
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			yaml := xmppExample()
			if tc.from != "" {
				if !strings.Contains(yaml, "\n    "+tc.from+"\n") {
					t.Fatalf("the example has no line %q", tc.from)
				}
				yaml = strings.Replace(yaml, "\n    "+tc.from+"\n", "\n    "+tc.to+"\n", 1)
			}
			c, err := config.Parse("test.yaml", []byte(yaml))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), "test.yaml:") || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Parse: %v; want an error at a line of test.yaml with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			x := c.XMPPConfig()
			if err := x.Validate(); err != nil || !tc.check(x) {
				t.Fatalf("XMPPConfig() = %+v (history %d/%d, workers %d, max body %d), Validate: %v", x, *x.HistoryOnJoin, *x.HistoryKeep, *x.Workers, *x.MaxBodyBytes, err)
			}
		})
	}
}
