package store_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/store"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

// envCrashChild carries the store Config (JSON) to the child process of
// TestCrashRecovery.
const envCrashChild = "MIMI_STORE_TEST_CRASH_CHILD"

const crashCommitted = 50

// TestMain lets the test binary act as the crashing child process.
func TestMain(m *testing.M) {
	if v := os.Getenv(envCrashChild); v != "" {
		os.Exit(crashChild(v))
	}
	os.Exit(m.Run())
}

// crashChild commits some work, then opens a transaction with uncommitted
// work, tells the parent it is ready, and waits to be killed.
func crashChild(cfgJSON string) int {
	var cfg store.Config
	if err := json.Unmarshal([]byte(cfgJSON), &cfg); err != nil {
		fmt.Println("ERR", err)
		return 2
	}
	ctx := context.Background()
	s, err := store.Open(ctx, cfg)
	if err != nil {
		fmt.Println("ERR", err)
		return 2
	}
	for i := range crashCommitted {
		if _, err := s.MarkProcessed(ctx, "crash", fmt.Sprintf("c-%d", i)); err != nil {
			fmt.Println("ERR", err)
			return 2
		}
	}
	if _, err := s.KV("crash").Put(ctx, "k", []byte("committed")); err != nil {
		fmt.Println("ERR", err)
		return 2
	}
	_ = s.InTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.MarkProcessed(ctx, "crash", "uncommitted"); err != nil {
			fmt.Println("ERR", err)
			return err
		}
		if _, err := tx.KV("crash").Put(ctx, "k", []byte("uncommitted")); err != nil {
			fmt.Println("ERR", err)
			return err
		}
		fmt.Println("READY")
		select {} // killed here, inside the transaction, without Close
	})
	return 3
}

// TestCrashRecovery kills a process (SIGKILL) that holds the store open
// with committed work and a transaction in progress, then reopens: committed
// work is there, the open transaction is not, and SQLite's file is intact.
func TestCrashRecovery(t *testing.T) {
	storetest.EachConfig(t, func(t *testing.T, cfg store.Config) {
		cfgJSON, err := json.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), envCrashChild+"="+string(cfgJSON))
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil || strings.TrimSpace(line) != "READY" {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("child said %q, %v", line, err)
		}
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err == nil {
			t.Fatal("killed child exited cleanly")
		}

		s := storetest.Open(t, cfg)
		for i := range crashCommitted {
			if ok, err := s.IsProcessed(ctx, "crash", fmt.Sprintf("c-%d", i)); err != nil || !ok {
				t.Fatalf("committed event c-%d lost: %v, %v", i, ok, err)
			}
		}
		if ok, err := s.IsProcessed(ctx, "crash", "uncommitted"); err != nil || ok {
			t.Fatalf("uncommitted event visible after crash: %v, %v", ok, err)
		}
		e, err := s.KV("crash").Get(ctx, "k")
		if err != nil || string(e.Value) != "committed" || e.Version != 1 {
			t.Fatalf("KV after crash = %q v%d, %v", e.Value, e.Version, err)
		}
		// The writer works (no stale lock left behind).
		if first, err := s.MarkProcessed(ctx, "crash", "uncommitted"); err != nil || !first {
			t.Fatalf("MarkProcessed after crash = %v, %v", first, err)
		}
		if s.Dialect() == store.SQLite {
			var res string
			if err := s.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&res); err != nil || res != "ok" {
				t.Fatalf("integrity_check = %q, %v", res, err)
			}
		}
	})
}

func TestSQLiteFileModeAndPragmas(t *testing.T) {
	cfg := storetest.SQLiteConfig(t)
	s := storetest.Open(t, cfg)
	fi, err := os.Stat(cfg.Path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("database file mode = %o, want 600", perm)
	}
	ctx := t.Context()
	checks := []struct {
		pragma string
		want   string
	}{
		{"journal_mode", "wal"},
		{"foreign_keys", "1"},
		{"synchronous", "2"}, // FULL
		{"busy_timeout", "10000"},
	}
	for _, c := range checks {
		var got string
		if err := s.DB().QueryRowContext(ctx, "PRAGMA "+c.pragma).Scan(&got); err != nil || got != c.want {
			t.Errorf("writer PRAGMA %s = %q, %v; want %q", c.pragma, got, err, c.want)
		}
	}
	var qo string
	if err := s.ReadDB().QueryRowContext(ctx, "PRAGMA query_only").Scan(&qo); err != nil || qo != "1" {
		t.Errorf("reader query_only = %q, %v", qo, err)
	}
	if _, err := s.ReadDB().ExecContext(ctx, `DELETE FROM store_kv`); err == nil {
		t.Error("reader pool accepted a write")
	}
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		cfg  store.Config
		ok   bool
		want store.Dialect
	}{
		{"sqlite default driver", store.Config{Path: "/tmp/x.db"}, true, store.SQLite},
		{"sqlite explicit", store.Config{Driver: "sqlite", Path: "x.db", SQLiteSynchronous: "normal"}, true, store.SQLite},
		{"postgres", store.Config{Driver: "postgres", DSN: "postgres://h/db", KeyFile: "/etc/k"}, true, store.Postgres},
		{"postgresql alias", store.Config{Driver: "PostgreSQL", DSN: "host=h", Keys: "k"}, true, store.Postgres},
		{"postgres without key", store.Config{Driver: "postgres", DSN: "postgres://h/db"}, false, store.Postgres},
		{"unknown driver", store.Config{Driver: "mysql", DSN: "x"}, false, ""},
		{"sqlite without path", store.Config{Driver: "sqlite"}, false, store.SQLite},
		{"sqlite memory", store.Config{Path: ":memory:"}, false, store.SQLite},
		{"sqlite uri", store.Config{Path: "file:x.db?mode=ro"}, false, store.SQLite},
		{"sqlite query in path", store.Config{Path: "x.db?_pragma=foo"}, false, store.SQLite},
		{"bad synchronous", store.Config{Path: "x.db", SQLiteSynchronous: "off"}, false, store.SQLite},
		{"postgres without dsn", store.Config{Driver: "postgres"}, false, store.Postgres},
		{"negative conns", store.Config{Path: "x.db", MaxOpenConns: -1}, false, store.SQLite},
		{"negative busy", store.Config{Path: "x.db", BusyTimeout: -time.Second}, false, store.SQLite},
	}
	for _, c := range cases {
		err := c.cfg.Validate()
		if (err == nil) != c.ok {
			t.Errorf("%s: Validate() = %v, want ok=%v", c.name, err, c.ok)
		}
		if err != nil && !errors.Is(err, store.ErrInvalidArgument) {
			t.Errorf("%s: %v does not wrap ErrInvalidArgument", c.name, err)
		}
		if d, _ := c.cfg.Dialect(); d != c.want {
			t.Errorf("%s: Dialect() = %q, want %q", c.name, d, c.want)
		}
	}
	if _, err := store.Open(t.Context(), store.Config{Driver: "postgres"}); err == nil {
		t.Error("Open accepted an invalid config")
	}
}

func TestOpenUnreachablePostgres(t *testing.T) {
	// Port 1 on loopback refuses connections; the DSN's password must not
	// appear in the error.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	_, err := store.Open(ctx, store.Config{Driver: "postgres", DSN: "postgres://u:sup3rsecret@127.0.0.1:1/db?sslmode=disable&connect_timeout=5", Keys: "unused"})
	if err == nil {
		t.Fatal("Open succeeded against a closed port")
	}
	if strings.Contains(err.Error(), "sup3rsecret") {
		t.Fatalf("error leaks the password: %v", err)
	}
}
