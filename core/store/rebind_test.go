package store

import (
	"strconv"
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

// FuzzRebind checks that Rebind never panics, changes nothing but '?'
// characters, and numbers the placeholders 1..n in order.
func FuzzRebind(f *testing.F) {
	for _, s := range []string{`SELECT ?`, `'?'`, `"?"`, "-- ?\n?", `/* ? */?`, `'`, `/*`, `--`, `??`, `''''?`, `?-?/?`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		out := Rebind(Postgres, q)
		if strings.IndexByte(q, '$') >= 0 {
			return // the inverse below would be ambiguous
		}
		var back strings.Builder
		next := 1
		for i := 0; i < len(out); i++ {
			if out[i] != '$' {
				back.WriteByte(out[i])
				continue
			}
			j := i + 1
			for j < len(out) && out[j] >= '0' && out[j] <= '9' {
				j++
			}
			n, err := strconv.Atoi(out[i+1 : j])
			if err != nil || n != next {
				t.Fatalf("placeholder %q at %d, want $%d: %q -> %q", out[i:j], i, next, q, out)
			}
			next++
			back.WriteByte('?')
			i = j - 1
		}
		if back.String() != q {
			t.Fatalf("Rebind changed more than placeholders: %q -> %q", q, out)
		}
	})
}
