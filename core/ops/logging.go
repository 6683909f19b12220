package ops

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

// LogConfig is the logging section of the configuration.
type LogConfig struct {
	// Format is "json" (default; for production and log shippers) or
	// "text" (slog's key=value format, for terminals).
	Format string
	// Level is "debug", "info" (default), "warn" or "error".
	Level string
}

// Validate checks Format and Level.
func (c LogConfig) Validate() error {
	if _, err := ParseLevel(c.Level); err != nil {
		return err
	}
	switch strings.ToLower(c.Format) {
	case "", "json", "text":
		return nil
	default:
		return fmt.Errorf("ops: log format %q (want json or text)", c.Format)
	}
}

// ParseLevel parses "debug", "info", "warn"/"warning" or "error" (any case;
// empty means info). Offsets such as "debug-4" or "info+2" are accepted as
// slog.Level.UnmarshalText does.
func ParseLevel(s string) (slog.Level, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return slog.LevelInfo, nil
	}
	if strings.EqualFold(s, "warning") {
		return slog.LevelWarn, nil
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("ops: log level %q (want debug, info, warn or error): %w", s, err)
	}
	return l, nil
}

// NewLogger builds the process logger from cfg, writing to w (os.Stderr
// when nil). It returns the LevelVar so the level can be changed on reload
// without rebuilding the logger. Attributes whose key names a secret
// (see IsSecretKey) are redacted whatever their type; values of type
// Secret are always redacted.
func NewLogger(cfg LogConfig, w io.Writer) (*slog.Logger, *slog.LevelVar, error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	if w == nil {
		w = os.Stderr
	}
	lvl, _ := ParseLevel(cfg.Level)
	lv := new(slog.LevelVar)
	lv.Set(lvl)
	hopts := &slog.HandlerOptions{Level: lv, ReplaceAttr: RedactAttr}
	var h slog.Handler
	if strings.EqualFold(cfg.Format, "text") {
		h = slog.NewTextHandler(w, hopts)
	} else {
		h = slog.NewJSONHandler(w, hopts)
	}
	return slog.New(h), lv, nil
}

// secretKeyParts are substrings of attribute keys whose values are never
// logged.
var secretKeyParts = []string{"password", "passwd", "secret", "token", "authorization", "cookie", "private_key", "privkey", "credential", "dsn"}

// IsSecretKey reports whether an attribute key names a secret (password,
// token, secret, authorization, cookie, private key, credentials or a DSN,
// case-insensitively, anywhere in the key).
func IsSecretKey(key string) bool {
	k := strings.ToLower(key)
	for _, p := range secretKeyParts {
		if strings.Contains(k, p) {
			return true
		}
	}
	return false
}

// RedactAttr is a slog ReplaceAttr function that replaces the value of any
// attribute whose key names a secret with "[redacted]". NewLogger installs
// it; use it in hand-built handlers too.
func RedactAttr(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() != slog.KindGroup && IsSecretKey(a.Key) {
		return slog.String(a.Key, redacted)
	}
	return a
}
