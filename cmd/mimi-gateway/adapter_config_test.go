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

func TestXMPPConfig(t *testing.T) {
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
	got := c.XMPPConfig()
	if err := got.Validate(); err != nil {
		t.Fatalf("mapped config invalid: %v", err)
	}
	want := xmpp.Config{Server: "127.0.0.1:5347", Domain: "hospital.example", Provider: "hospital.example",
		Users: xmpp.ComponentConfig{Domain: "mimi.hospital.example", Secret: "u-secret"}, Rooms: xmpp.ComponentConfig{Domain: "rooms.mimi.hospital.example", Secret: "r-secret"},
		HistoryOnJoin: 20, HistoryKeep: 200, MaxBodyBytes: 64 << 10, ReconnectMin: 100 * time.Millisecond, ReconnectMax: 5 * time.Second, Workers: 4}
	want.MaxUploadBytes, want.UploadHosts, want.Language = 16<<20, []string{}, "en"
	// The section is xmpp.Config itself: it carries enabled, allow_room_creation and known_users
	// as the file says them.
	want.Enabled, want.AllowRoomCreation, want.KnownUsers = true, new(true), []string{}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("XMPPConfig() =\n%+v\nwant\n%+v", got, want)
	}
}
