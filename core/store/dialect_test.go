package store

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestRenderDialect(t *testing.T) {
	cases := []struct {
		name     string
		src      string
		sqlite   string
		postgres string
		err      string // substring of the error; "" means no error
	}{
		{name: "no markers", src: "CREATE TABLE t (a TEXT);\n", sqlite: "CREATE TABLE t (a TEXT);\n", postgres: "CREATE TABLE t (a TEXT);\n"},
		{name: "empty", src: "", sqlite: "", postgres: ""},
		{name: "no final newline", src: "SELECT 1;", sqlite: "SELECT 1;", postgres: "SELECT 1;"},
		{name: "placeholders", src: "a {{blob}}, b {{bigint}} NOT NULL, c {{blob}}\n",
			sqlite: "a BLOB, b INTEGER NOT NULL, c BLOB\n", postgres: "a BYTEA, b BIGINT NOT NULL, c BYTEA\n"},
		{name: "autoid and without rowid", src: "CREATE TABLE t (id {{autoid}}){{without_rowid}};",
			sqlite: "CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT) WITHOUT ROWID;", postgres: "CREATE TABLE t (id BIGSERIAL PRIMARY KEY);"},
		{name: "blocks", src: "A\n-- dialect: sqlite\nS1\nS2\n-- dialect: postgres\nP1\n-- dialect: end\nB\n",
			sqlite: "A\nS1\nS2\nB\n", postgres: "A\nP1\nB\n"},
		{name: "marker with blanks and CRLF", src: "A\r\n  -- dialect:   postgres  \r\nP\r\n\t-- dialect: end\r\n",
			sqlite: "A\r\n", postgres: "A\r\nP\r\n"},
		{name: "placeholder inside a block", src: "-- dialect: postgres\nx {{blob}}\n-- dialect: end\n", sqlite: "", postgres: "x BYTEA\n"},
		{name: "ordinary comment kept", src: "-- dialects differ here\n", sqlite: "-- dialects differ here\n", postgres: "-- dialects differ here\n"},
		{name: "unknown dialect", src: "-- dialect: mysql\nX\n-- dialect: end\n", err: `line 1: unknown dialect "mysql"`},
		{name: "empty marker", src: "-- dialect:\n", err: "line 1: unknown dialect"},
		{name: "switch without lines", src: "-- dialect: sqlite\n-- dialect: postgres\n-- dialect: end\n", sqlite: "", postgres: ""},
		{name: "switch back", src: "-- dialect: sqlite\nS\n-- dialect: postgres\nP\n-- dialect: sqlite\nT\n-- dialect: end\n", sqlite: "S\nT\n", postgres: "P\n"},
		{name: "same dialect nested", src: "-- dialect: sqlite\n-- dialect: sqlite\n", err: "line 2: block"},
		{name: "end without block", src: "A\n-- dialect: end\n", err: "line 2:"},
		{name: "unclosed block", src: "-- dialect: sqlite\nA\n", err: "not closed"},
		{name: "unknown placeholder", src: "a {{text}}\n", err: "line 1: unknown placeholder {{text}}"},
		{name: "unknown placeholder in the other dialect's block", src: "-- dialect: sqlite\na {{nope}}\n-- dialect: end\n", err: "line 2: unknown placeholder"},
		{name: "unclosed placeholder", src: "ok\na {{blob\n", err: "line 2:"},
		{name: "placeholder split over lines", src: "a {{bl\nob}}\n", err: "line 1:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, d := range []Dialect{SQLite, Postgres} {
				got, err := renderDialect([]byte(c.src), d)
				if c.err != "" {
					if err == nil || !strings.Contains(err.Error(), c.err) || !errors.Is(err, ErrInvalidArgument) {
						t.Fatalf("%s: err = %v, want one containing %q and wrapping ErrInvalidArgument", d, err, c.err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("%s: %v", d, err)
				}
				want := c.sqlite
				if d == Postgres {
					want = c.postgres
				}
				if string(got) != want {
					t.Errorf("%s: got %q, want %q", d, got, want)
				}
			}
		})
	}
	if _, err := renderDialect([]byte("SELECT 1;"), "mysql"); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("unknown target dialect: err = %v", err)
	}
}

// FuzzRenderDialect checks the marker decoder on arbitrary files: it never
// panics, what it renders has no markers or placeholders left and is never
// longer than the source with every placeholder expanded, and a file
// without "{{" or marker lines renders unchanged.
func FuzzRenderDialect(f *testing.F) {
	for _, s := range []string{"", "SELECT 1;", "a {{blob}} {{bigint}}\n", "{{autoid}}{{without_rowid}}",
		"-- dialect: sqlite\nS\n-- dialect: postgres\nP\n-- dialect: end\n", "-- dialect: end", "{{", "}}{{}}",
		"-- dialect: sqlite", "--dialect: sqlite\n", "-- dialect: postgres\r\n{{blob}}\r\n-- dialect: end\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		plain := !bytes.Contains(src, []byte("{{"))
		for line := range strings.Lines(string(src)) {
			if _, ok := marker([]byte(line)); ok {
				plain = false
			}
		}
		for _, d := range []Dialect{SQLite, Postgres} {
			out, err := renderDialect(src, d)
			if err != nil {
				if !errors.Is(err, ErrInvalidArgument) {
					t.Fatalf("%s: error %v does not wrap ErrInvalidArgument", d, err)
				}
				if plain {
					t.Fatalf("%s: plain file refused: %v", d, err)
				}
				continue
			}
			if plain && !bytes.Equal(out, src) {
				t.Fatalf("%s: plain file changed: %q -> %q", d, src, out)
			}
			if bytes.Contains(out, []byte("{{")) {
				t.Fatalf("%s: placeholder left in %q", d, out)
			}
			for line := range strings.Lines(string(out)) {
				if _, ok := marker([]byte(line)); ok {
					t.Fatalf("%s: marker line %q left in the output", d, line)
				}
			}
			// Each placeholder is at least 8 bytes ("{{blob}}") and expands to
			// at most 33 ("INTEGER PRIMARY KEY AUTOINCREMENT").
			if limit := len(src) + 33*bytes.Count(src, []byte("{{")); len(out) > limit {
				t.Fatalf("%s: output of %d bytes from %d", d, len(out), len(src))
			}
		}
	})
}
