// Package mxlog forwards what mautrix logs (with zerolog) to the gateway's log/slog logger:
// mautrix's errors and warnings at their level, everything else at debug, never a token.
package mxlog

import (
	"context"
	"encoding/json"
	"log/slog"

	"github.com/rs/zerolog"
)

// Zerolog returns a zerolog logger (what mautrix logs with) that forwards to log: mautrix's
// errors and warnings at their level, everything else at debug.
func Zerolog(log *slog.Logger) zerolog.Logger {
	return zerolog.New(slogWriter{log}).Level(zerolog.DebugLevel).With().Timestamp().Logger()
}

type slogWriter struct{ log *slog.Logger }

// Write implements io.Writer for zerolog's JSON lines.
func (w slogWriter) Write(p []byte) (int, error) {
	var rec map[string]any
	if err := json.Unmarshal(p, &rec); err != nil {
		w.log.Debug("mautrix", "line", string(p))
		return len(p), nil
	}
	lvl := slog.LevelDebug
	switch rec["level"] {
	case "warn":
		lvl = slog.LevelWarn
	case "error", "fatal", "panic":
		lvl = slog.LevelError
	}
	if !w.log.Enabled(context.Background(), lvl) {
		return len(p), nil
	}
	msg, _ := rec["message"].(string)
	delete(rec, "message")
	delete(rec, "level")
	delete(rec, "time")
	attrs := make([]slog.Attr, 0, len(rec))
	for k, v := range rec {
		// Never forward tokens that mautrix might put into a log line.
		if k == "access_token" || k == "as_token" || k == "hs_token" || k == "password" {
			continue
		}
		attrs = append(attrs, slog.Any(k, v))
	}
	w.log.LogAttrs(context.Background(), lvl, "mautrix: "+msg, attrs...)
	return len(p), nil
}
