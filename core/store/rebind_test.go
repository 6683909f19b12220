package store

import (
	"strings"
	"testing"
)

func TestRebind(t *testing.T) {
	cases := []struct {
		name, in, want string
	}{
		{"none", `SELECT 1`, `SELECT 1`},
		{"simple", `SELECT a FROM t WHERE b = ? AND c = ?`, `SELECT a FROM t WHERE b = $1 AND c = $2`},
		{"ten+", `VALUES (?,?,?,?,?,?,?,?,?,?,?)`, `VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)`},
		{"string literal", `SELECT '?', ? FROM t`, `SELECT '?', $1 FROM t`},
		{"escaped quote", `SELECT 'it''s ?', ?`, `SELECT 'it''s ?', $1`},
		{"quoted identifier", `SELECT "we?ird" FROM t WHERE x = ?`, `SELECT "we?ird" FROM t WHERE x = $1`},
		{"line comment", "SELECT ? -- why?\n, ?", "SELECT $1 -- why?\n, $2"},
		{"line comment at end", "SELECT ? -- why?", "SELECT $1 -- why?"},
		{"block comment", `SELECT /* ? */ ?`, `SELECT /* ? */ $1`},
		{"unterminated block comment", `SELECT ? /* ?`, `SELECT $1 /* ?`},
		{"unterminated string", `SELECT ?, 'abc?`, `SELECT $1, 'abc?`},
		{"minus not comment", `SELECT ? - ?`, `SELECT $1 - $2`},
		{"slash not comment", `SELECT ? / ?`, `SELECT $1 / $2`},
		{"numbered", `SELECT ?2, ?1, ?2`, `SELECT $2, $1, $2`},
		{"bare after numbered", `SELECT ?3, ?, ?1, ?`, `SELECT $3, $4, $1, $5`},
		{"numbered in string", `SELECT '?1', ?`, `SELECT '?1', $1`},
	}
	for _, c := range cases {
		if got := Rebind(Postgres, c.in); got != c.want {
			t.Errorf("%s: Rebind(postgres, %q) = %q, want %q", c.name, c.in, got, c.want)
		}
		if got := Rebind(SQLite, c.in); got != c.in {
			t.Errorf("%s: Rebind(sqlite) changed the query: %q", c.name, got)
		}
	}
}

// normalizePlaceholders replaces "$NNN" and "?NNN" by "?".
func normalizePlaceholders(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' && s[i] != '?' {
			b.WriteByte(s[i])
			continue
		}
		b.WriteByte('?')
		for i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9' {
			i++
		}
	}
	return b.String()
}

// FuzzRebind checks that Rebind never panics and changes nothing but
// placeholders: with every "$NNN"/"?NNN" normalised to "?", input and
// output are equal.
func FuzzRebind(f *testing.F) {
	for _, s := range []string{`SELECT ?`, `'?'`, `"?"`, "-- ?\n?", `/* ? */?`, `'`, `/*`, `--`, `??`, `''''?`, `?-?/?`, `?1?`, `'?1'?2`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		out := Rebind(Postgres, q)
		if strings.IndexByte(q, '$') >= 0 {
			return // normalisation would be ambiguous
		}
		if got, want := normalizePlaceholders(out), normalizePlaceholders(q); got != want {
			t.Fatalf("Rebind changed more than placeholders: %q -> %q", q, out)
		}
	})
}
