package ops_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/mimi-gateway/mimi-gateway/core/ops"
)

func TestParseLevel(t *testing.T) {
	cases := []struct {
		in      string
		want    slog.Level
		wantErr bool
	}{
		{"", slog.LevelInfo, false},
		{"debug", slog.LevelDebug, false},
		{"INFO", slog.LevelInfo, false},
		{"warn", slog.LevelWarn, false},
		{"warning", slog.LevelWarn, false},
		{"error", slog.LevelError, false},
		{"debug-4", slog.LevelDebug - 4, false},
		{"verbose", 0, true},
		{"42", 0, true},
	}
	for _, c := range cases {
		got, err := ops.ParseLevel(c.in)
		if (err != nil) != c.wantErr || (!c.wantErr && got != c.want) {
			t.Errorf("ParseLevel(%q) = %v, %v; want %v, err %v", c.in, got, err, c.want, c.wantErr)
		}
	}
}

func TestNewLoggerJSONLevelAndRedaction(t *testing.T) {
	var buf bytes.Buffer
	log, lv, err := ops.NewLogger(ops.LogConfig{Format: "json", Level: "info"}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	log.Debug("hidden")
	log.Info("login", "as_token", "tok-123", "user", "bot", "pw", ops.Secret("hunter2"),
		slog.Group("db", "dsn", "postgres://u:pw@h/db", "pool", 4))
	lv.Set(slog.LevelDebug)
	log.Debug("now visible")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want 2:\n%s", len(lines), buf.String())
	}
	out := buf.String()
	for _, leak := range []string{"tok-123", "hunter2", "u:pw"} {
		if strings.Contains(out, leak) {
			t.Errorf("secret %q leaked into log:\n%s", leak, out)
		}
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatal(err)
	}
	db, _ := rec["db"].(map[string]any)
	if rec["as_token"] != "[redacted]" || rec["pw"] != "[redacted]" || rec["user"] != "bot" || db["dsn"] != "[redacted]" || db["pool"] != float64(4) {
		t.Errorf("record = %v", rec)
	}
	if !strings.Contains(lines[1], `"msg":"now visible"`) {
		t.Errorf("level change not applied: %s", lines[1])
	}
}

func TestNewLoggerText(t *testing.T) {
	var buf bytes.Buffer
	log, _, err := ops.NewLogger(ops.LogConfig{Format: "text", Level: "warn"}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("dropped")
	log.Warn("kept", "password", "p4ss")
	if got := buf.String(); !strings.Contains(got, "level=WARN msg=kept password=[redacted]") || strings.Contains(got, "dropped") {
		t.Errorf("text output = %q", got)
	}
}

func TestNewLoggerInvalid(t *testing.T) {
	for _, c := range []ops.LogConfig{{Format: "xml"}, {Level: "loud"}} {
		if _, _, err := ops.NewLogger(c, nil); err == nil {
			t.Errorf("NewLogger(%+v) succeeded", c)
		}
	}
}

func TestSecretNeverPrints(t *testing.T) {
	s := ops.Secret("hunter2")
	type cfg struct {
		Token ops.Secret `json:"token"`
		Name  string     `json:"name"`
	}
	cases := map[string]string{
		"%s":       fmt.Sprintf("%s", s),
		"%v":       fmt.Sprintf("%v", s),
		"%+v":      fmt.Sprintf("%+v", cfg{s, "n"}),
		"%#v":      fmt.Sprintf("%#v", cfg{s, "n"}),
		"%q":       fmt.Sprintf("%q", s),
		"%x":       fmt.Sprintf("%x", s),
		"%X":       fmt.Sprintf("%X", s),
		"%d":       fmt.Sprintf("%d", s),
		"Sprint":   fmt.Sprint(s),
		"String()": s.String(),
		"Errorf":   fmt.Errorf("bad token %v", s).Error(),
	}
	js, err := json.Marshal(cfg{s, "n"})
	if err != nil {
		t.Fatal(err)
	}
	cases["json"] = string(js)
	for name, got := range cases {
		if strings.Contains(got, "hunter2") || strings.Contains(got, "68756e74657232") || strings.Contains(got, "68756E74657232") {
			t.Errorf("%s leaked: %s", name, got)
		}
		if !strings.Contains(got, "[redacted]") {
			t.Errorf("%s = %q, want the redaction marker", name, got)
		}
	}
	if s.Reveal() != "hunter2" || !s.Equal("hunter2") || s.Equal("hunter3") || s.Equal("hunter") || s.IsZero() {
		t.Error("Reveal/Equal/IsZero wrong")
	}
	var back cfg
	if err := json.Unmarshal([]byte(`{"token":"t0k","name":"x"}`), &back); err != nil || back.Token.Reveal() != "t0k" {
		t.Errorf("unmarshal = %v, %v", back, err)
	}
}
