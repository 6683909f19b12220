package ops

import (
	"crypto/subtle"
	"fmt"
	"io"
	"log/slog"
)

const redacted = "[redacted]"

// Secret holds a credential (appservice token, component secret, database
// password). Every way of printing it — String, fmt verbs including %#v,
// slog, JSON and text marshalling — yields "[redacted]"; only Reveal returns
// the value. Decoding into a Secret (YAML, env) works like a plain string.
type Secret string

// Compile-time interface guards.
var (
	_ fmt.Stringer   = Secret("")
	_ fmt.GoStringer = Secret("")
	_ fmt.Formatter  = Secret("")
	_ slog.LogValuer = Secret("")
)

// Reveal returns the secret value. Call it only where the value is used
// (an HTTP header, a handshake), never to log it.
func (s Secret) Reveal() string { return string(s) }

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s == "" }

// Equal compares the secret with a presented value in constant time (for
// the length of the shorter input; lengths are not secret).
func (s Secret) Equal(presented string) bool {
	return subtle.ConstantTimeCompare([]byte(s), []byte(presented)) == 1
}

// String implements fmt.Stringer.
func (s Secret) String() string { return redacted }

// GoString implements fmt.GoStringer (%#v).
func (s Secret) GoString() string { return `ops.Secret("` + redacted + `")` }

// Format implements fmt.Formatter so every verb (%s, %v, %q, %x, %d...)
// prints the redaction marker.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = io.WriteString(f, s.GoString())
		return
	}
	_, _ = io.WriteString(f, redacted)
}

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText implements encoding.TextMarshaler (JSON, YAML, config print):
// secrets are never serialised.
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// UnmarshalText implements encoding.TextUnmarshaler: it stores the text.
func (s *Secret) UnmarshalText(b []byte) error {
	*s = Secret(b)
	return nil
}
