package config

import (
	"strings"
	"testing"
)

// FuzzRedact feeds arbitrary files to Redact and Unredact: no panic, the line count is kept, no
// secret value is left in a redacted file, and a redacted file's secrets come back unchanged
// when the placeholder is left in place.
func FuzzRedact(f *testing.F) {
	f.Add([]byte("store:\n  postgres:\n    dsn: 'postgres://u:p@h/d' # c\n"))
	f.Add([]byte("bridges:\n  xmpp:\n    users:\n      secret: \"a#b\"\n"))
	f.Add([]byte("admin_ui:\n  oidc:\n    client_secret: |\n      multi\n"))
	f.Add([]byte("partners: [{domain: b.example}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			return
		}
		red, err := Redact("f.yaml", data)
		if err != nil {
			return
		}
		if strings.Count(string(red), "\n") != strings.Count(string(data), "\n") {
			t.Fatalf("line count changed:\n%q\n%q", data, red)
		}
		if _, secrets, err := fileSecrets("f.yaml", red); err == nil {
			for _, s := range secrets {
				if s.n.Value != "" && s.n.Value != RedactedValue {
					t.Fatalf("secret %s still shows %q:\n%q", s.path, s.n.Value, red)
				}
			}
		}
		back, err := Unredact("f.yaml", red, data)
		if err != nil {
			return // a placeholder typed where the file has no secret, or similar
		}
		again, err := Redact("f.yaml", back)
		if err != nil {
			t.Fatalf("the restored file no longer redacts: %v\n%q", err, back)
		}
		if string(again) != string(red) {
			t.Fatalf("redact(unredact(redact(x))) != redact(x):\n%q\n%q", red, again)
		}
	})
}
