// Package ghost names the appservice's ghosts: a MIMI user of another provider appears on Matrix
// as @<prefix><domain>_<user>:<hs>, where domain and user are escaped so that the mapping is
// reversible and the localpart stays within the Matrix grammar: characters [a-z0-9.-] stand for
// themselves and every other byte is "=xx" (lower-case hex). '_' therefore never occurs inside
// the escaped parts and separates them.
package ghost

import (
	"regexp"
	"strings"

	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/core/event"
)

func escapeLocal(s string) string {
	const hex = "0123456789abcdef"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('=')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

func unescapeLocal(s string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '=' {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
				return "", false
			}
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(s) {
			return "", false
		}
		hi, ok1 := unhex(s[i+1])
		lo, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			return "", false
		}
		b.WriteByte(hi<<4 | lo)
		i += 2
	}
	return b.String(), true
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// Namespace names and recognises ghost users.
type Namespace struct {
	// Prefix starts every ghost localpart, e.g. "mimi_".
	Prefix string
	// Server is the homeserver's server name.
	Server string
}

// UserID returns the ghost of a MIMI user.
func (g Namespace) UserID(u event.UserURI) id.UserID {
	return id.NewUserID(g.Prefix+escapeLocal(string(u.Domain()))+"_"+escapeLocal(u.Local()), g.Server)
}

// IsGhost reports whether u is in the ghost namespace.
func (g Namespace) IsGhost(u id.UserID) bool {
	local, server, err := u.Parse()
	return err == nil && server == g.Server && strings.HasPrefix(local, g.Prefix)
}

// URI returns the MIMI user a ghost stands for. Only the ghost's own ID (UserID of that user)
// is one: a localpart that escapes what need not be escaped, such as "=61" for "a", names no
// ghost, so that one MIMI user has one ghost (the homeserver asks whether any ID of the
// namespace exists, and the gateway registers those that are ghosts).
func (g Namespace) URI(u id.UserID) (event.UserURI, bool) {
	local, server, err := u.Parse()
	if err != nil || server != g.Server {
		return "", false
	}
	rest, ok := strings.CutPrefix(local, g.Prefix)
	if !ok {
		return "", false
	}
	ed, eu, ok := strings.Cut(rest, "_")
	if !ok {
		return "", false
	}
	d, ok1 := unescapeLocal(ed)
	l, ok2 := unescapeLocal(eu)
	if !ok1 || !ok2 || d == "" || l == "" {
		return "", false
	}
	uri, err := event.ParseUserURI(string(event.NewUserURI(event.Domain(d), l)))
	if err != nil || g.UserID(uri) != u {
		return "", false
	}
	return uri, true
}

// Regex is the registration namespace regex of the ghosts.
func (g Namespace) Regex() string {
	return "@" + regexp.QuoteMeta(g.Prefix) + ".*:" + regexp.QuoteMeta(g.Server)
}
