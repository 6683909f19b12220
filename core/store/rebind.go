package store

import (
	"strconv"
	"strings"
)

// Rebind rewrites the '?' placeholders of query for dialect d. SQLite
// queries are returned unchanged; for PostgreSQL each '?' becomes $1, $2, ...
// in order, and SQLite's numbered form "?NNN" becomes "$NNN" (a bare '?'
// after it continues from the largest number so far, as in SQLite). Question marks inside single-quoted string literals,
// double-quoted identifiers, "--" line comments and "/* */" block comments
// are left alone. PostgreSQL's jsonb operators ?, ?| and ?& cannot be
// written in shared SQL; use jsonb_exists() and friends instead.
func Rebind(d Dialect, query string) string {
	if d != Postgres || strings.IndexByte(query, '?') < 0 {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 8)
	n := 0
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case c == '\'' || c == '"':
			// Copy the quoted section verbatim; a doubled quote is an
			// escaped quote and keeps us inside.
			j := i + 1
			for j < len(query) {
				if query[j] == c {
					if j+1 < len(query) && query[j+1] == c {
						j += 2
						continue
					}
					break
				}
				j++
			}
			end := min(j+1, len(query))
			b.WriteString(query[i:end])
			i = end - 1
		case c == '-' && i+1 < len(query) && query[i+1] == '-':
			j := strings.IndexByte(query[i:], '\n')
			if j < 0 {
				b.WriteString(query[i:])
				return b.String()
			}
			b.WriteString(query[i : i+j+1])
			i += j
		case c == '/' && i+1 < len(query) && query[i+1] == '*':
			j := strings.Index(query[i+2:], "*/")
			if j < 0 {
				b.WriteString(query[i:])
				return b.String()
			}
			b.WriteString(query[i : i+2+j+2])
			i += 2 + j + 1
		case c == '?':
			// "?NNN" is SQLite's numbered parameter: keep its number. A bare
			// "?" takes one more than the largest number so far, as SQLite
			// numbers it.
			j := i + 1
			for j < len(query) && query[j] >= '0' && query[j] <= '9' {
				j++
			}
			b.WriteByte('$')
			if j > i+1 {
				num := query[i+1 : j]
				b.WriteString(num)
				if v, err := strconv.Atoi(num); err == nil && v > n {
					n = v
				}
				i = j - 1
				continue
			}
			n++
			b.WriteString(strconv.Itoa(n))
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
