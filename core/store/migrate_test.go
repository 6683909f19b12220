package store_test

import (
	"context"
	"errors"
	"io/fs"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/mimi-gateway/mimi-gateway/core/store"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

// widgetFiles are a test component's migrations, per version, for both
// dialects. Version 2 adds a table with a foreign key to version 1's.
var widgetFiles = map[store.Dialect][]string{
	store.SQLite: {
		`CREATE TABLE widget (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);`,
		`CREATE TABLE widget_part (widget_id INTEGER NOT NULL REFERENCES widget (id), part TEXT NOT NULL);
		 CREATE INDEX widget_part_widget ON widget_part (widget_id);`,
	},
	store.Postgres: {
		`CREATE TABLE widget (id BIGINT PRIMARY KEY, name TEXT NOT NULL UNIQUE);`,
		`CREATE TABLE widget_part (widget_id BIGINT NOT NULL REFERENCES widget (id), part TEXT NOT NULL);
		 CREATE INDEX widget_part_widget ON widget_part (widget_id);`,
	},
}

var widgetNames = []string{"0001_widget.sql", "0002_widget_part.sql"}

// widgets returns the "widget" component with its first n versions, plus
// extra files appended to both dialects.
func widgets(n int, extra ...string) store.Migrations {
	m := store.Migrations{Component: "widget", Dialects: map[store.Dialect]fs.FS{}}
	for d, files := range widgetFiles {
		fsys := fstest.MapFS{}
		for i := 0; i < n; i++ {
			fsys[widgetNames[i]] = &fstest.MapFile{Data: []byte(files[i])}
		}
		for i := 0; i+1 < len(extra); i += 2 {
			fsys[extra[i]] = &fstest.MapFile{Data: []byte(extra[i+1])}
		}
		m.Dialects[d] = fsys
	}
	return m
}

func TestMigrationsUpAndIdempotentReopen(t *testing.T) {
	storetest.EachConfig(t, func(t *testing.T, cfg store.Config) {
		ctx := t.Context()
		s := storetest.Open(t, cfg, store.WithMigrations(widgets(1)))
		if v, err := s.SchemaVersion(ctx, "widget"); err != nil || v != 1 {
			t.Fatalf("widget version = %d, %v; want 1", v, err)
		}
		if _, err := s.ExecContext(ctx, `INSERT INTO widget (id, name) VALUES (?, ?)`, 1, "a"); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}

		// Reopen with the same set: nothing to do, data kept.
		s = storetest.Open(t, cfg, store.WithMigrations(widgets(1)))
		var name string
		if err := s.QueryRowContext(ctx, `SELECT name FROM widget WHERE id = ?`, 1).Scan(&name); err != nil || name != "a" {
			t.Fatalf("after reopen: name = %q, %v", name, err)
		}
		// Upgrade to version 2 on an open store, twice.
		for range 2 {
			if err := s.Migrate(ctx, widgets(2)); err != nil {
				t.Fatal(err)
			}
		}
		if v, err := s.SchemaVersion(ctx, "widget"); err != nil || v != 2 {
			t.Fatalf("widget version = %d, %v; want 2", v, err)
		}
		if v, err := s.SchemaVersion(ctx, store.CoreComponent); err != nil || v != 2 {
			t.Fatalf("core version = %d, %v; want 2 (independent of widget)", v, err)
		}
		if v, err := s.SchemaVersion(ctx, "nothing"); err != nil || v != 0 {
			t.Fatalf("unknown component version = %d, %v; want 0", v, err)
		}
		var n int
		if err := s.QueryRowContext(ctx, `SELECT COUNT(*) FROM store_schema_migrations WHERE component = ?`, "widget").Scan(&n); err != nil || n != 2 {
			t.Fatalf("widget migration rows = %d, %v; want 2", n, err)
		}
	})
}

func TestMigrationsRefuseNewerDatabase(t *testing.T) {
	storetest.EachConfig(t, func(t *testing.T, cfg store.Config) {
		ctx := t.Context()
		s := storetest.Open(t, cfg, store.WithMigrations(widgets(2)))
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		// An older binary knows only version 1 of widget.
		_, err := store.Open(ctx, cfg, store.WithMigrations(widgets(1)))
		var tooNew *store.SchemaTooNewError
		if !errors.Is(err, store.ErrSchemaTooNew) || !errors.As(err, &tooNew) {
			t.Fatalf("Open with older widget migrations: err = %v, want ErrSchemaTooNew", err)
		}
		if tooNew.Component != "widget" || tooNew.DatabaseVersion != 2 || tooNew.BinaryVersion != 1 {
			t.Fatalf("SchemaTooNewError = %+v", tooNew)
		}

		// The store's own component is guarded the same way.
		s = storetest.Open(t, cfg)
		if _, err := s.ExecContext(ctx, `INSERT INTO store_schema_migrations (component, version, name, checksum, applied_at) VALUES (?, ?, ?, ?, ?)`,
			store.CoreComponent, 99, "0099_future.sql", "x", 0); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := store.Open(ctx, cfg); !errors.Is(err, store.ErrSchemaTooNew) {
			t.Fatalf("Open with core at version 99: err = %v, want ErrSchemaTooNew", err)
		}
	})
}

func TestMigrationFailureRollsBackTheSet(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		bad := widgets(2, "0003_broken.sql", "CREATE TABLE widget_extra (x INTEGER); THIS IS NOT SQL;")
		if err := s.Migrate(ctx, bad); err == nil {
			t.Fatal("broken migration applied")
		}
		if v, err := s.SchemaVersion(ctx, "widget"); err != nil || v != 0 {
			t.Fatalf("after failed set: version = %d, %v; want 0 (whole set rolled back)", v, err)
		}
		// Tables of the earlier versions in the same set were rolled back too.
		if _, err := s.ExecContext(ctx, `INSERT INTO widget (id, name) VALUES (1, 'a')`); err == nil {
			t.Fatal("table widget exists after rollback")
		}
		// The store still works and the good versions apply.
		if err := s.Migrate(ctx, widgets(2)); err != nil {
			t.Fatal(err)
		}
	})
}

func TestConcurrentMigrate(t *testing.T) {
	storetest.EachConfig(t, func(t *testing.T, cfg store.Config) {
		ctx := t.Context()
		// Two processes' worth of stores on one database migrate at once.
		stores := []*store.Store{storetest.Open(t, cfg), storetest.Open(t, cfg), storetest.Open(t, cfg)}
		var wg sync.WaitGroup
		errs := make([]error, len(stores))
		for i, s := range stores {
			wg.Go(func() { errs[i] = s.Migrate(ctx, widgets(2)) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("store %d: %v", i, err)
			}
		}
		if v, err := stores[0].SchemaVersion(ctx, "widget"); err != nil || v != 2 {
			t.Fatalf("version = %d, %v; want 2", v, err)
		}
	})
}

func TestForeignKeysEnforced(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		_, err := s.ExecContext(ctx, `INSERT INTO widget_part (widget_id, part) VALUES (?, ?)`, 42, "wheel")
		if !store.IsForeignKeyViolation(err) {
			t.Fatalf("insert with dangling reference: err = %v, want a foreign-key violation", err)
		}
		if _, err := s.ExecContext(ctx, `INSERT INTO widget (id, name) VALUES (?, ?)`, 1, "a"); err != nil {
			t.Fatal(err)
		}
		_, err = s.ExecContext(ctx, `INSERT INTO widget (id, name) VALUES (?, ?)`, 2, "a")
		if !store.IsUniqueViolation(err) || store.IsForeignKeyViolation(err) {
			t.Fatalf("duplicate name: err = %v, want a unique violation", err)
		}
		if store.IsUniqueViolation(errors.New("UNIQUE constraint failed")) || store.IsUniqueViolation(nil) {
			t.Fatal("IsUniqueViolation matched a plain error")
		}
	}, store.WithMigrations(widgets(2)))
}

func TestMigrationsValidate(t *testing.T) {
	one := fstest.MapFS{"0001_a.sql": {Data: []byte("SELECT 1;")}}
	cases := []struct {
		name string
		m    store.Migrations
		ok   bool
	}{
		{"valid", store.Migrations{Component: "matrix", Dialects: map[store.Dialect]fs.FS{store.SQLite: one, store.Postgres: one}}, true},
		{"one dialect is allowed", store.Migrations{Component: "x.y-z_1", Dialects: map[store.Dialect]fs.FS{store.SQLite: one}}, true},
		{"empty component", store.Migrations{Component: "", Dialects: map[store.Dialect]fs.FS{store.SQLite: one}}, false},
		{"uppercase component", store.Migrations{Component: "Matrix", Dialects: map[store.Dialect]fs.FS{store.SQLite: one}}, false},
		{"no dialects", store.Migrations{Component: "m"}, false},
		{"files with markers", store.Migrations{Component: "m", Files: fstest.MapFS{"0001_a.sql": {Data: []byte("x {{blob}}")}}}, true},
		{"files and dialects", store.Migrations{Component: "m", Files: one, Dialects: map[store.Dialect]fs.FS{store.SQLite: one}}, false},
		{"bad marker", store.Migrations{Component: "m", Files: fstest.MapFS{"0001_a.sql": {Data: []byte("x {{nope}}")}}}, false},
		{"unknown dialect", store.Migrations{Component: "m", Dialects: map[store.Dialect]fs.FS{"mysql": one}}, false},
		{"nil fs", store.Migrations{Component: "m", Dialects: map[store.Dialect]fs.FS{store.SQLite: nil}}, false},
		{"gap", store.Migrations{Component: "m", Dialects: map[store.Dialect]fs.FS{store.SQLite: fstest.MapFS{
			"0001_a.sql": {Data: []byte("x")}, "0003_c.sql": {Data: []byte("x")}}}}, false},
		{"duplicate version", store.Migrations{Component: "m", Dialects: map[store.Dialect]fs.FS{store.SQLite: fstest.MapFS{
			"0001_a.sql": {Data: []byte("x")}, "1-b.sql": {Data: []byte("x")}}}}, false},
		{"starts at 0", store.Migrations{Component: "m", Dialects: map[store.Dialect]fs.FS{store.SQLite: fstest.MapFS{
			"0000_a.sql": {Data: []byte("x")}}}}, false},
		{"no version", store.Migrations{Component: "m", Dialects: map[store.Dialect]fs.FS{store.SQLite: fstest.MapFS{
			"init.sql": {Data: []byte("x")}}}}, false},
		{"dialects disagree", store.Migrations{Component: "m", Dialects: map[store.Dialect]fs.FS{store.SQLite: one, store.Postgres: fstest.MapFS{
			"0001_a.sql": {Data: []byte("x")}, "0002_b.sql": {Data: []byte("x")}}}}, false},
		{"non-sql files ignored", store.Migrations{Component: "m", Dialects: map[store.Dialect]fs.FS{store.SQLite: fstest.MapFS{
			"0001_a.sql": {Data: []byte("x")}, "README.md": {Data: []byte("x")}}}}, true},
		{"too large", store.Migrations{Component: "m", Dialects: map[store.Dialect]fs.FS{store.SQLite: fstest.MapFS{
			"0001_a.sql": {Data: make([]byte, 1<<20+1)}}}}, false},
	}
	for _, c := range cases {
		err := c.m.Validate()
		if (err == nil) != c.ok {
			t.Errorf("%s: Validate() = %v, want ok=%v", c.name, err, c.ok)
		}
		if err != nil && !errors.Is(err, store.ErrInvalidArgument) {
			t.Errorf("%s: error %v does not wrap ErrInvalidArgument", c.name, err)
		}
	}
}

func TestMigrateMissingDialect(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		other := store.SQLite
		if s.Dialect() == store.SQLite {
			other = store.Postgres
		}
		m := store.Migrations{Component: "onlyother", Dialects: map[store.Dialect]fs.FS{
			other: fstest.MapFS{"0001_a.sql": {Data: []byte("SELECT 1;")}},
		}}
		if err := s.Migrate(context.Background(), m); !errors.Is(err, store.ErrInvalidArgument) {
			t.Fatalf("Migrate without files for %s: err = %v", s.Dialect(), err)
		}
	})
}

func TestMigrationsFromFS(t *testing.T) {
	fsys := fstest.MapFS{
		"db/0001_a.sql": {Data: []byte("CREATE TABLE a (b {{blob}});")},
		"db/README.md":  {Data: []byte("not a migration")},
	}
	m, err := store.MigrationsFromFS("thing", fsys, "db")
	if err != nil {
		t.Fatal(err)
	}
	if m.Files == nil || m.Dialects != nil {
		t.Fatalf("Files = %v, Dialects = %v", m.Files, m.Dialects)
	}
	if _, err := store.MigrationsFromFS("thing", fsys, "nope"); err == nil {
		t.Fatal("missing directory accepted")
	}
	// The layout with one directory per dialect has no files at the top.
	old := fstest.MapFS{"db/sqlite/0001_a.sql": {Data: []byte("SELECT 1;")}, "db/postgres/0001_a.sql": {Data: []byte("SELECT 1;")}}
	if _, err := store.MigrationsFromFS("thing", old, "db"); !errors.Is(err, store.ErrInvalidArgument) {
		t.Fatalf("directory without .sql files: err = %v", err)
	}
	fsys["db/0002_b.sql"] = &fstest.MapFile{Data: []byte("-- dialect: sqlite\nSELECT 1;\n")}
	if _, err := store.MigrationsFromFS("thing", fsys, "db"); !errors.Is(err, store.ErrInvalidArgument) {
		t.Fatalf("unclosed dialect block: err = %v", err)
	}
	fsys["db/0002_b.sql"] = &fstest.MapFile{Data: []byte("x")}
	fsys["db/0004_d.sql"] = &fstest.MapFile{Data: []byte("x")}
	if _, err := store.MigrationsFromFS("thing", fsys, "db"); err == nil {
		t.Fatal("gap in versions accepted")
	}
}

// TestMigrationsWithMarkers applies one file with placeholders and blocks on
// both backends: each gets its own rendering.
func TestMigrationsWithMarkers(t *testing.T) {
	m, err := store.MigrationsFromFS("marked", fstest.MapFS{"m/0001_t.sql": {Data: []byte(
		"CREATE TABLE marked (id {{autoid}}, body {{blob}} NOT NULL, n {{bigint}} NOT NULL);\n" +
			"-- dialect: sqlite\nINSERT INTO marked (body, n) VALUES (x'01', 1);\n" +
			"-- dialect: postgres\nINSERT INTO marked (body, n) VALUES ('\\x0102'::bytea, 2);\n-- dialect: end\n")}}, "m")
	if err != nil {
		t.Fatal(err)
	}
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		var body []byte
		var n int64
		if err := s.QueryRowContext(t.Context(), `SELECT body, n FROM marked WHERE id = 1`).Scan(&body, &n); err != nil {
			t.Fatal(err)
		}
		want := map[store.Dialect]int64{store.SQLite: 1, store.Postgres: 2}[s.Dialect()]
		if n != want || len(body) != int(want) {
			t.Fatalf("%s: body %x, n %d; want the %s block's row", s.Dialect(), body, n, s.Dialect())
		}
	}, store.WithMigrations(m))
}
