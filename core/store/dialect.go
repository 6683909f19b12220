package store

import (
	"bytes"
	"fmt"
	"strings"
)

// Dialect markers let one migration file serve both dialects where they
// differ only slightly. Rendering a file for a dialect does
// two things:
//
// Placeholders, anywhere in a line, stand for the few type names and
// clauses that differ:
//
//	{{blob}}           BLOB                               BYTEA
//	{{bigint}}         INTEGER                            BIGINT
//	{{autoid}}         INTEGER PRIMARY KEY AUTOINCREMENT  BIGSERIAL PRIMARY KEY
//	{{without_rowid}}  " WITHOUT ROWID"                   (nothing)
//
// Blocks keep lines for one dialect only. A line that is exactly
// "-- dialect: sqlite" or "-- dialect: postgres" (surrounding blanks
// allowed) starts the lines for that dialect, also right after the other
// dialect's lines (like an "else"), and "-- dialect: end" returns to lines
// for both; the marker lines themselves are dropped:
//
//	CREATE TABLE t (
//	-- dialect: sqlite
//		name TEXT    NOT NULL,
//	-- dialect: postgres
//		name TEXT   NOT NULL,
//	-- dialect: end
//		body {{blob}} NOT NULL
//	){{without_rowid}};
//
// Every block must end with "-- dialect: end". A file without markers is
// used as it is, for every dialect.
//
// A file's checksum in store_schema_migrations is that of its rendered
// text, so a file written with markers that renders to the same bytes as
// an earlier per-dialect file keeps that file's checksum.
const markerPrefix = "-- dialect:"

// placeholders maps each placeholder to its text per dialect.
var placeholders = map[string]map[Dialect]string{
	"blob":          {SQLite: "BLOB", Postgres: "BYTEA"},
	"bigint":        {SQLite: "INTEGER", Postgres: "BIGINT"},
	"autoid":        {SQLite: "INTEGER PRIMARY KEY AUTOINCREMENT", Postgres: "BIGSERIAL PRIMARY KEY"},
	"without_rowid": {SQLite: " WITHOUT ROWID", Postgres: ""},
}

// maxPlaceholderLen bounds the name between "{{" and "}}".
const maxPlaceholderLen = 32

// renderDialect returns the text of a migration file with dialect markers
// for dialect d (see the markers above). It returns an error wrapping
// ErrInvalidArgument, naming the line, for an unknown dialect or
// placeholder, a block opened inside itself, an unopened or unclosed block, or a "{{" without its
// "}}".
func renderDialect(src []byte, d Dialect) ([]byte, error) {
	if d != SQLite && d != Postgres {
		return nil, fmt.Errorf("%w: unknown dialect %q", ErrInvalidArgument, d)
	}
	out := make([]byte, 0, len(src))
	var block Dialect // "" outside a block
	for n, rest := 1, src; len(rest) > 0; n++ {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i+1], rest[i+1:]
		} else {
			rest = nil
		}
		if m, ok := marker(line); ok {
			switch {
			case m == "end" && block == "":
				return nil, fmt.Errorf("%w: line %d: %q without an open block", ErrInvalidArgument, n, markerPrefix+" end")
			case m == "end":
				block = ""
			case m != string(SQLite) && m != string(Postgres):
				return nil, fmt.Errorf("%w: line %d: unknown dialect %q in marker (want sqlite, postgres or end)", ErrInvalidArgument, n, m)
			case Dialect(m) == block:
				return nil, fmt.Errorf("%w: line %d: block %q opened again inside itself", ErrInvalidArgument, n, m)
			default:
				block = Dialect(m)
			}
			continue
		}
		var err error
		out, err = expand(out, line, d, block != "" && block != d)
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %w", ErrInvalidArgument, n, err)
		}
	}
	if block != "" {
		return nil, fmt.Errorf("%w: block %q is not closed with %q", ErrInvalidArgument, block, markerPrefix+" end")
	}
	return out, nil
}

// marker reports whether line is a marker line and returns its word.
func marker(line []byte) (string, bool) {
	s := strings.TrimSpace(string(line))
	word, ok := strings.CutPrefix(s, markerPrefix)
	if !ok {
		return "", false
	}
	return strings.TrimSpace(word), true
}

// expand appends line to out with its placeholders replaced for d. When
// skip is set the line belongs to another dialect's block: it is checked
// the same way but not appended.
func expand(out, line []byte, d Dialect, skip bool) ([]byte, error) {
	for {
		i := bytes.Index(line, []byte("{{"))
		if i < 0 {
			if !skip {
				out = append(out, line...)
			}
			return out, nil
		}
		j := bytes.Index(line[i+2:], []byte("}}"))
		if j < 0 || j > maxPlaceholderLen {
			return nil, fmt.Errorf("%q without a closing %q", "{{", "}}")
		}
		name := string(line[i+2 : i+2+j])
		texts, ok := placeholders[name]
		if !ok {
			return nil, fmt.Errorf("unknown placeholder {{%s}}", name)
		}
		if !skip {
			out = append(out, line[:i]...)
			out = append(out, texts[d]...)
		}
		line = line[i+2+j+2:]
	}
}
