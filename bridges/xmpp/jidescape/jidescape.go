// Package jidescape is XEP-0106 JID escaping of localparts, which mellium.im/xmpp's jid.Unescape
// gets wrong: the XMPP adapter names partner users' puppets with it (bridges/xmpp).
package jidescape

import (
	"errors"
	"fmt"
	"strings"
)

// XEP-0106 (JID Escaping) maps ten characters that a JID localpart cannot hold to "\xx" sequences.
// mellium.im/xmpp's jid.Unescape decodes them wrongly and can panic, so the
// gateway carries its own implementation, tested against the XEP's §5 examples and fuzzed.

// escapes lists the characters XEP-0106 escapes, with their lower-case escape sequences.
var escapes = [...]struct {
	c   byte
	seq string
}{
	{' ', `\20`}, {'"', `\22`}, {'&', `\26`}, {'\'', `\27`}, {'/', `\2f`},
	{':', `\3a`}, {'<', `\3c`}, {'>', `\3e`}, {'@', `\40`}, {'\\', `\5c`},
}

// ErrEscape is returned (wrapped) when a string cannot be escaped into a localpart.
var ErrEscape = errors.New("xep-0106 escape")

func escapeSeq(c byte) (string, bool) {
	for _, e := range escapes {
		if e.c == c {
			return e.seq, true
		}
	}
	return "", false
}

// isEscapeSeq reports whether s starts with one of the ten escape sequences (lower-case hex, as
// XEP-0106 writes them) and returns the character it stands for.
func isEscapeSeq(s string) (byte, bool) {
	if len(s) < 3 || s[0] != '\\' {
		return 0, false
	}
	for _, e := range escapes {
		if s[:3] == e.seq {
			return e.c, true
		}
	}
	return 0, false
}

// Escape applies XEP-0106 §4.2 to s: the characters space " & ' / : < > @ are replaced by their
// escape sequences, and a backslash only where it starts something that would otherwise read as an
// escape sequence. A leading or trailing space cannot be escaped (the XEP forbids \20 at either
// end), nor can an empty string: both are ErrEscape.
func Escape(s string) (string, error) {
	if s == "" {
		return "", fmt.Errorf("%w: empty string", ErrEscape)
	}
	if s[0] == ' ' || s[len(s)-1] == ' ' {
		return "", fmt.Errorf("%w: leading or trailing space", ErrEscape)
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' {
			if _, ok := isEscapeSeq(s[i:]); ok {
				b.WriteString(`\5c`)
			} else {
				b.WriteByte('\\')
			}
			continue
		}
		if seq, ok := escapeSeq(c); ok {
			b.WriteString(seq)
			continue
		}
		b.WriteByte(c)
	}
	return b.String(), nil
}

// Unescape reverses Escape: each of the ten escape sequences becomes its character; every other
// backslash is kept as it is. It never fails and never panics; whether the result is a valid
// identifier is for the caller to check.
func Unescape(s string) string {
	if strings.IndexByte(s, '\\') < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if c, ok := isEscapeSeq(s[i:]); ok {
			b.WriteByte(c)
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
