package jidescape

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// The examples of XEP-0106 §5 (localparts only; the domain is example.com there).
var xep0106Vectors = []struct{ unescaped, escaped string }{
	{`space cadet`, `space\20cadet`},
	{`call me "ishmael"`, `call\20me\20\22ishmael\22`},
	{`at&t guy`, `at\26t\20guy`},
	{`d'artagnan`, `d\27artagnan`},
	{`/.fanboy`, `\2f.fanboy`},
	{`::foo::`, `\3a\3afoo\3a\3a`},
	{`<foo>`, `\3cfoo\3e`},
	{`user@host`, `user\40host`},
	{`c:\net`, `c\3a\net`},
	{`c:\\net`, `c\3a\\net`},
	{`c:\cool stuff`, `c\3a\cool\20stuff`},
	{`c:\5commas`, `c\3a\5c5commas`},
}

func TestEscapeXEP0106Vectors(t *testing.T) {
	for _, v := range xep0106Vectors {
		got, err := Escape(v.unescaped)
		if err != nil || got != v.escaped {
			t.Errorf("Escape(%q) = %q, %v; want %q", v.unescaped, got, err, v.escaped)
		}
		if back := Unescape(v.escaped); back != v.unescaped {
			t.Errorf("Unescape(%q) = %q; want %q", v.escaped, back, v.unescaped)
		}
	}
}

func TestEscapeEdgeCases(t *testing.T) {
	for _, s := range []string{"", " lead", "trail ", " "} {
		if _, err := Escape(s); !errors.Is(err, ErrEscape) {
			t.Errorf("Escape(%q) err = %v, want ErrEscape", s, err)
		}
	}
	// The inputs that make mellium's jid.Unescape panic or decode wrongly.
	tests := []struct{ in, want string }{
		{`dr.smith\40clinic.example`, "dr.smith@clinic.example"},
		{`space\20cadet`, "space cadet"},
		{`\5c40`, `\40`},
		{`\`, `\`},
		{`\4`, `\4`},
		{`\40`, `@`},
		{`\2F`, `\2F`}, // upper-case hex is not an escape sequence
		{`\zz\`, `\zz\`},
	}
	for _, tc := range tests {
		if got := Unescape(tc.in); got != tc.want {
			t.Errorf("Unescape(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if e, _ := Escape(`\40`); Unescape(e) != `\40` {
		t.Errorf("round trip of \\40 via %q failed", e)
	}
}

func FuzzEscape(f *testing.F) {
	for _, v := range xep0106Vectors {
		f.Add(v.unescaped)
		f.Add(v.escaped)
	}
	f.Add(`\5c\5c\40\`)
	f.Add("bob@clinic-b.example")
	f.Fuzz(func(t *testing.T, s string) {
		u := Unescape(s) // must never panic
		if utf8.ValidString(s) && !utf8.ValidString(u) {
			t.Fatalf("Unescape(%q) = %q is not UTF-8", s, u)
		}
		e, err := Escape(s)
		if err != nil {
			return
		}
		if got := Unescape(e); got != s {
			t.Fatalf("Unescape(Escape(%q)) = %q (escaped %q)", s, got, e)
		}
		for _, c := range ` "&'/:<>@` {
			if strings.ContainsRune(e, c) {
				t.Fatalf("Escape(%q) = %q still contains %q", s, e, c)
			}
		}
	})
}
