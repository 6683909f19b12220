// Package dendritetest starts a real Matrix homeserver (Dendrite v0.13.8, installed by
// .ci/install-dendrite) on a random loopback port in a test's temporary directory, with any
// server name and appservice registrations; it can be killed and restarted on the same data.
//
// When the binaries are missing the test FAILS and names the install script: integration tests
// never skip silently.
package dendritetest

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/mimi-gateway/mimi-gateway/bridges/servertest"
)

// Version is the Dendrite version the harness expects.
const Version = "v0.13.8"

// SharedSecret is the registration shared secret of test homeservers.
const SharedSecret = "dendrite-test-shared-secret"

// ServerName is the server name of test homeservers started with Start.
const ServerName = "localhost"

// BinDir returns where .ci/install-dendrite puts the binaries.
func BinDir() string {
	if d := os.Getenv("MIMI_DENDRITE_BIN"); d != "" {
		return d
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache")
	}
	return filepath.Join(cache, "mimi-gateway", "dendrite-"+Version, "bin")
}

// Server is a running Dendrite.
type Server struct {
	// URL is the client-server API base URL.
	URL string
	// Dir holds the config, keys, databases and the log (dendrite.log).
	Dir string
	// ServerName is the homeserver's server name (@alice:<ServerName>).
	ServerName string

	bin     string
	cfgPath string
	addr    string
	mu      sync.Mutex
	proc    *servertest.Process
}

// Options describe the homeserver StartWith starts.
type Options struct {
	// ServerName is the server name; empty means ServerName ("localhost").
	ServerName string
	// Registrations are appservice registration files to load.
	Registrations []string
	// Addr is the loopback host:port to listen on; empty picks a free port.
	Addr string
}

// Start writes a loopback homeserver config (server name "localhost") registering the given
// appservice registration files, starts Dendrite and waits until it answers. The server is
// stopped when the test ends.
func Start(t testing.TB, registrations ...string) *Server {
	t.Helper()
	return StartWith(t, Options{Registrations: registrations})
}

// StartWith is Start with options. The log tail is printed when the test failed.
func StartWith(t testing.TB, o Options) *Server {
	t.Helper()
	if o.ServerName == "" {
		o.ServerName = ServerName
	}
	bin := BinDir()
	for _, tool := range []string{"dendrite", "generate-config", "generate-keys", "create-account"} {
		if _, err := os.Stat(filepath.Join(bin, tool)); err != nil {
			t.Fatalf("Dendrite %s is not installed (%s missing): run .ci/install-dendrite from the repository root "+
				"(needs Go and a C compiler; set MIMI_DENDRITE_BIN to use another directory)", Version, filepath.Join(bin, tool))
		}
	}
	dir := t.TempDir()
	s := &Server{Dir: dir, ServerName: o.ServerName, bin: bin, cfgPath: filepath.Join(dir, "dendrite.yaml")}
	run := func(name string, args ...string) []byte {
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.Dir = dir
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("dendritetest: %s %v: %v", name, args, err)
		}
		return out
	}
	run("generate-keys", "--private-key", filepath.Join(dir, "matrix_key.pem"))
	raw := run("generate-config", "-dir", dir, "-server", o.ServerName)
	cfg, err := patchConfig(raw, o.Registrations)
	if err != nil {
		t.Fatalf("dendritetest: patch config: %v", err)
	}
	if err := os.WriteFile(s.cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	s.addr = o.Addr
	if s.addr == "" {
		s.addr = freeAddr(t)
	}
	s.URL = "http://" + s.addr
	// Registered before the start, so a server that starts but never answers is stopped too.
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("dendrite %s output (tail):\n%s", s.ServerName, s.LogTail())
		}
	})
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
	return s
}

// LogTail returns the end of Dendrite's output.
func (s *Server) LogTail() string { return servertest.Tail(filepath.Join(s.Dir, "dendrite.log"), 8000) }

func freeAddr(t testing.TB) string { t.Helper(); return servertest.FreeAddr(t) }

// FreeAddr returns a loopback address that was free a moment ago (for an appservice listener).
func FreeAddr(t testing.TB) string { t.Helper(); return servertest.FreeAddr(t) }

func (s *Server) start() error {
	cmd := exec.Command(filepath.Join(s.bin, "dendrite"), "--config", s.cfgPath, "--http-bind-address", s.addr)
	cmd.Dir = s.Dir
	p, err := servertest.Start(cmd, filepath.Join(s.Dir, "dendrite.log"), "dendritetest: start "+s.ServerName)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
	deadline := time.Now().Add(servertest.Scale(60 * time.Second))
	for time.Now().Before(deadline) {
		if !p.Running() {
			return fmt.Errorf("dendritetest: dendrite exited at start:\n%s", s.LogTail())
		}
		resp, err := http.Get(s.URL + "/_matrix/client/versions")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("dendritetest: dendrite did not answer on %s within 60s", s.URL)
}

func (s *Server) process() *servertest.Process {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc
}

// Stop kills Dendrite (SIGKILL) and waits for it. Its data stays for Restart.
func (s *Server) Stop() { s.process().Kill() }

// Kill is Stop: Dendrite is always ended with SIGKILL, as a crash would end it.
func (s *Server) Kill() { s.Stop() }

// Running reports whether the process runs.
func (s *Server) Running() bool { return s.process().Running() }

// Restart stops the homeserver if it runs and starts it on the same address and data.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
}

// Addr is the client-server API's host:port.
func (s *Server) Addr() string { return s.addr }

// CreateUser registers a user with the shared secret.
func (s *Server) CreateUser(t testing.TB, name, password string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin, "create-account"), "--config", s.cfgPath, "-url", s.URL,
		"-username", name, "-password", password)
	cmd.Dir = s.Dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dendritetest: create-account %s: %v\n%s", name, err, out)
	}
}

// patchConfig turns generate-config's output into a loopback test config.
func patchConfig(raw []byte, registrations []string) ([]byte, error) {
	var cfg map[string]any
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		return nil, err
	}
	section := func(name string) map[string]any {
		m, ok := cfg[name].(map[string]any)
		if !ok {
			m = map[string]any{}
			cfg[name] = m
		}
		return m
	}
	g := section("global")
	g["disable_federation"] = true
	g["trusted_third_party_id_servers"] = []string{}
	g["report_stats"] = map[string]any{"enabled": false}
	g["presence"] = map[string]any{"enable_inbound": false, "enable_outbound": false}
	section("federation_api")["key_perspectives"] = []any{}
	ca := section("client_api")
	ca["registration_shared_secret"] = SharedSecret
	ca["rate_limiting"] = map[string]any{"enabled": false}
	abs := make([]string, 0, len(registrations))
	for _, r := range registrations {
		a, err := filepath.Abs(r)
		if err != nil {
			return nil, err
		}
		abs = append(abs, a)
	}
	section("app_service_api")["config_files"] = abs
	cfg["logging"] = []any{map[string]any{"type": "std", "level": "warn"}}
	return yaml.Marshal(cfg)
}
