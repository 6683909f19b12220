package scaleout

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/bridges/servertest"
	"github.com/mimi-gateway/mimi-gateway/core/store"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

// PrivatePG is a PostgreSQL server of the test's own (initdb in a temporary directory, its own
// loopback port), so that restarting it disturbs no other test on the machine's PostgreSQL.
type PrivatePG struct {
	t         testing.TB
	bin, dir  string
	data, log string
	port      int
	asUser    []string // runuser prefix when the test runs as root (initdb refuses root)
}

// pgBin finds PostgreSQL's server programs: the newest /usr/lib/postgresql/<v>/bin, else PATH.
func pgBin(t testing.TB) string {
	t.Helper()
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.Sort(dirs)
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "pg_ctl")); err == nil {
			return dirs[i]
		}
	}
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		return filepath.Dir(p)
	}
	t.Fatal("PostgreSQL's pg_ctl and initdb are needed (apt-get install postgresql): not in /usr/lib/postgresql/*/bin nor on PATH")
	return ""
}

// StartPrivatePG creates (initdb) and starts a PostgreSQL server for the test; it is stopped and
// removed when the test ends.
func StartPrivatePG(t testing.TB) *PrivatePG {
	t.Helper()
	dir, err := os.MkdirTemp("", "mimi-scaleout-pg-")
	if err != nil {
		t.Fatal(err)
	}
	p := &PrivatePG{t: t, bin: pgBin(t), dir: dir, data: filepath.Join(dir, "data"), log: filepath.Join(dir, "pg.log"), port: servertest.FreePort(t)}
	if os.Geteuid() == 0 {
		p.asUser = []string{"runuser", "-u", "postgres", "--"}
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("chown", "postgres:", dir).CombinedOutput(); err != nil {
			t.Fatalf("chown %s to postgres: %v\n%s", dir, err, out)
		}
	}
	t.Cleanup(func() {
		_ = p.cmd("pg_ctl", "-D", p.data, "-m", "immediate", "-w", "stop").Run()
		if t.Failed() {
			t.Logf("private PostgreSQL log (tail):\n%s", servertest.Tail(p.log, 4000))
		}
		_ = os.RemoveAll(dir)
	})
	p.run("initdb", "-D", p.data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
	p.start()
	return p
}

func (p *PrivatePG) cmd(prog string, args ...string) *exec.Cmd {
	argv := append(append(slices.Clone(p.asUser), filepath.Join(p.bin, prog)), args...)
	return exec.Command(argv[0], argv[1:]...)
}

func (p *PrivatePG) run(prog string, args ...string) {
	p.t.Helper()
	if out, err := p.cmd(prog, args...).CombinedOutput(); err != nil {
		p.t.Fatalf("%s %s: %v\n%s", prog, strings.Join(args, " "), err, out)
	}
}

// start starts the server and waits until it accepts connections.
func (p *PrivatePG) start() {
	p.t.Helper()
	p.run("pg_ctl", "-D", p.data, "-l", p.log, "-w", "-t", "120", "-o",
		fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c max_connections=200", p.port, p.dir), "start")
}

// Restart is a fast shutdown (open transactions are rolled back, connections end) and a start.
func (p *PrivatePG) Restart() {
	p.t.Helper()
	began := time.Now()
	p.run("pg_ctl", "-D", p.data, "-m", "fast", "-w", "-t", "120", "stop")
	p.start()
	p.t.Logf("PostgreSQL restarted (fast shutdown, start) in %s", time.Since(began).Round(time.Millisecond))
}

// Config is a store configuration on the server's database postgres.
func (p *PrivatePG) Config(t testing.TB) store.Config {
	return store.Config{Driver: store.Postgres, DSN: fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", p.port),
		MaxOpenConns: 4, Keys: storetest.Key(t)}
}
