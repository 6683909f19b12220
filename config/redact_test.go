package config

import (
	"strings"
	"testing"
)

// TestRedact hides secret values in a file and in the effective configuration, keeps every
// other line, and puts the secrets back into an edited text that kept the placeholder.
func TestRedact(t *testing.T) {
	file := "domain: a.example # ours\nstore:\n  driver: sqlite\n  postgres:\n    dsn: 'postgres://u:hunter2-secret@db/x' # the DB\n" +
		"bridges:\n  xmpp:\n    users:\n      secret: s3cr3t-users\n      domain: u.a.example\n"
	red, err := Redact("f.yaml", []byte(file))
	if err != nil {
		t.Fatal(err)
	}
	rs := string(red)
	for _, s := range []string{"hunter2-secret", "s3cr3t-users"} {
		if strings.Contains(rs, s) {
			t.Errorf("redacted text shows %q:\n%s", s, rs)
		}
	}
	if strings.Count(rs, RedactedValue) != 2 || !strings.Contains(rs, "# the DB") || !strings.Contains(rs, "domain: a.example # ours") ||
		strings.Count(rs, "\n") != strings.Count(file, "\n") {
		t.Errorf("redacted text:\n%s", rs)
	}
	edited := strings.Replace(rs, "a.example # ours", "b.example # ours", 1)
	back, err := Unredact("f.yaml", []byte(edited), []byte(file))
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Replace(file, "a.example # ours", "b.example # ours", 1); string(back) != want {
		t.Errorf("unredacted:\n%s\nwant:\n%s", back, want)
	}
	// A placeholder where the file has no secret is an error at its line.
	_, err = Unredact("f.yaml", []byte("bridges:\n  xmpp:\n    rooms:\n      secret: \""+RedactedValue+"\"\n"), []byte(file))
	if err == nil || !strings.Contains(err.Error(), "f.yaml:4:") {
		t.Errorf("placeholder without a secret: %v", err)
	}
	cfg, err := Parse("f.yaml", []byte(file))
	if err != nil {
		t.Fatal(err)
	}
	eff, err := cfg.Effective()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"hunter2-secret", "s3cr3t-users"} {
		if strings.Contains(string(eff), s) {
			t.Errorf("effective configuration shows %q", s)
		}
	}
	if !strings.Contains(string(eff), "domain: a.example") || !strings.Contains(string(eff), "max_bytes: 2GiB") {
		t.Errorf("effective configuration:\n%s", eff)
	}
}

// TestRedactMultiLine refuses secrets written over several lines, which cannot be replaced in
// place without showing their rest.
func TestRedactMultiLine(t *testing.T) {
	for _, f := range []string{
		"store:\n  postgres:\n    dsn: abc\n      def\n",
		"store:\n  postgres:\n    dsn: \"abc\n      def\"\n",
		"store:\n  postgres:\n    dsn: |\n      abc\n",
	} {
		if red, err := Redact("f.yaml", []byte(f)); err == nil {
			t.Errorf("%q redacted to %q", f, red)
		}
	}
	if _, err := Redact("f.yaml", []byte("store:\n  postgres:\n    dsn: 'a''b' # c\n")); err != nil {
		t.Errorf("one-line quoted secret: %v", err)
	}
}
