package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mimi-gateway/mimi-gateway/bridges/idmap"
	"github.com/mimi-gateway/mimi-gateway/bridges/matrix"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp"
	"github.com/mimi-gateway/mimi-gateway/core/abuse"
	"github.com/mimi-gateway/mimi-gateway/core/consent"
	"github.com/mimi-gateway/mimi-gateway/core/console"
	"github.com/mimi-gateway/mimi-gateway/core/erasure"
	"github.com/mimi-gateway/mimi-gateway/core/lease"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
	"github.com/mimi-gateway/mimi-gateway/core/provider"
	"github.com/mimi-gateway/mimi-gateway/core/store"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

var updateMigrationChecksums = flag.Bool("update-migration-checksums", false, "rewrite testdata/migration-checksums-<dialect>.txt (only for a new migration version)")

// TestMigrationChecksumsStable migrates a fresh database with every component's schema and
// compares what store_schema_migrations records (component, version, file name, checksum) with
// the list in testdata, which was taken from databases migrated by earlier releases. A database
// migrated before stays up to date only while these rows do not change: a changed checksum of an
// applied version is logged as an edited migration, a changed version number means a different
// schema. Adding a version adds rows (run the test with -update-migration-checksums); changing
// an existing row is a mistake.
func TestMigrationChecksumsStable(t *testing.T) {
	sets := []store.Migrations{idmap.Schema, matrix.Schema, xmpp.Schema, abuse.Schema, consent.Schema,
		console.Schema, erasure.Schema, lease.Schema, protocol.Schema, provider.Schema}
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		rows, err := s.QueryContext(t.Context(), `SELECT component, version, name, checksum FROM store_schema_migrations ORDER BY component, version`)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for rows.Next() {
			var comp, name, sum string
			var v int
			if err := rows.Scan(&comp, &v, &name, &sum); err != nil {
				t.Fatal(err)
			}
			got = append(got, fmt.Sprintf("%s %d %s %s", comp, v, name, sum))
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		_ = rows.Close()
		file := filepath.Join("testdata", "migration-checksums-"+string(s.Dialect())+".txt")
		if *updateMigrationChecksums {
			if err := os.WriteFile(file, []byte(strings.Join(got, "\n")+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		want := readLines(t, file)
		recorded := make(map[string]bool, len(want))
		for _, w := range want {
			recorded[w] = true
		}
		migrated := make(map[string]bool, len(got))
		for _, g := range got {
			migrated[g] = true
			if !recorded[g] {
				t.Errorf("migrated %q, which %s does not list: a new version is added with -update-migration-checksums; a changed one is a mistake", g, file)
			}
		}
		for _, w := range want {
			if !migrated[w] {
				t.Errorf("recorded by earlier releases %q, but not migrated so now: an applied migration was changed or removed", w)
			}
		}
	}, store.WithMigrations(sets...))
}

func readLines(t *testing.T, file string) []string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			out = append(out, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
