package storetest_test

import (
	"context"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/mimi-gateway/mimi-gateway/core/store"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

// envChild marks the child process of TestUnreachablePostgres.
const envChild = "MIMI_STORETEST_CHILD"

func TestEachRunsBothBackends(t *testing.T) {
	var ran []string
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ran = append(ran, string(s.Dialect()))
		if err := s.Ping(t.Context()); err != nil {
			t.Fatal(err)
		}
	})
	if os.Getenv(storetest.EnvNoPostgres) == "1" {
		t.Logf("%s=1: only sqlite expected", storetest.EnvNoPostgres)
		return
	}
	if !slices.Equal(ran, []string{"sqlite", "postgres"}) {
		t.Fatalf("ran %v, want [sqlite postgres]", ran)
	}
}

func TestPostgresSchemaIsPrivateAndDropped(t *testing.T) {
	var schemas []string
	for range 2 {
		t.Run("inner", func(t *testing.T) {
			cfg := storetest.PostgresConfig(t)
			u, err := url.Parse(cfg.DSN)
			if err != nil {
				t.Fatal(err)
			}
			schemas = append(schemas, u.Query().Get("search_path"))
			s := storetest.Open(t, cfg)
			var cur string
			if err := s.QueryRowContext(t.Context(), `SELECT current_schema()`).Scan(&cur); err != nil || cur != schemas[len(schemas)-1] {
				t.Fatalf("current_schema = %q, %v; want %q", cur, err, schemas[len(schemas)-1])
			}
		})
	}
	if len(schemas) != 2 || schemas[0] == schemas[1] || !strings.HasPrefix(schemas[0], "mimi_t_") {
		t.Fatalf("schemas %v: want two distinct random names", schemas)
	}
	// After the subtests ended their schemas are gone.
	cfg := storetest.PostgresConfig(t)
	s := storetest.Open(t, cfg)
	for _, name := range schemas {
		var n int
		if err := s.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = ?`, name).Scan(&n); err != nil || n != 0 {
			t.Errorf("schema %s still exists (%d, %v)", name, n, err)
		}
	}
}

// TestChildEach is the body run by TestUnreachablePostgres in a child
// process with a PostgreSQL DSN that cannot be reached.
func TestChildEach(t *testing.T) {
	if os.Getenv(envChild) != "1" {
		t.Skip("helper process for TestUnreachablePostgres; runs only as its child")
	}
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		if err := s.Ping(t.Context()); err != nil {
			t.Fatal(err)
		}
	})
}

// TestUnreachablePostgres checks that an unreachable PostgreSQL fails the
// test loudly with instructions, and that MIMI_TEST_NO_POSTGRES=1 turns that
// into a visible skip while SQLite still runs.
func TestUnreachablePostgres(t *testing.T) {
	run := func(extraEnv ...string) (string, error) {
		cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestChildEach$", "-test.v")
		env := []string{}
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, storetest.EnvNoPostgres+"=") && !strings.HasPrefix(kv, storetest.EnvPostgresDSN+"=") {
				env = append(env, kv)
			}
		}
		cmd.Env = append(env, envChild+"=1",
			storetest.EnvPostgresDSN+"=postgres://postgres@127.0.0.1:1/test?sslmode=disable&connect_timeout=3")
		cmd.Env = append(cmd.Env, extraEnv...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	out, err := run()
	if err == nil {
		t.Fatalf("child passed without PostgreSQL:\n%s", out)
	}
	for _, want := range []string{"--- PASS: TestChildEach/sqlite", "--- FAIL: TestChildEach/postgres", "cannot reach PostgreSQL", "docker run", storetest.EnvNoPostgres + "=1"} {
		if !strings.Contains(out, want) {
			t.Errorf("failing child output lacks %q:\n%s", want, out)
		}
	}

	out, err = run(storetest.EnvNoPostgres + "=1")
	if err != nil {
		t.Fatalf("child with %s=1 failed: %v\n%s", storetest.EnvNoPostgres, err, out)
	}
	for _, want := range []string{"--- PASS: TestChildEach/sqlite", "--- SKIP: TestChildEach/postgres", "NOT testing PostgreSQL"} {
		if !strings.Contains(out, want) {
			t.Errorf("skipping child output lacks %q:\n%s", want, out)
		}
	}
}
