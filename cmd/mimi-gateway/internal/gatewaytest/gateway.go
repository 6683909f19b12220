// Package gatewaytest runs real mimi-gateway processes for end-to-end tests: the binary is built
// once per test run (CGO_ENABLED=0, -tags goolm, as it ships), and each gateway is a separate OS
// process with its own working directory, data dir, configuration file, certificate from a
// throw-away CA and log file, listening on loopback ports. Gateways can be killed (SIGKILL) and
// restarted on the same data; their logs are printed when a test fails.
//
// Beside the gateways the package starts the organisations' real servers (Dendrite, Prosody;
// see org.go) and drives real clients (a mautrix-go E2EE Matrix client, an XMPP c2s client).
//
// A test package that uses it calls Main from its TestMain, so the binary is removed afterwards.
package gatewaytest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/mimi-gateway/mimi-gateway/bridges/servertest"
	"github.com/mimi-gateway/mimi-gateway/core/protocol/protocoltest"
)

// The binary is built once per test process.
var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Main runs the tests of a package that uses the harness and removes the built binary.
func Main(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		_ = os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// Binary builds the gateway as it ships (CGO_ENABLED=0, -tags goolm) once per test process and
// returns the path of the executable.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			buildErr = fmt.Errorf("gatewaytest: the go tool is needed to build the gateway: %w", err)
			return
		}
		dir, err := os.MkdirTemp("", "mimi-gateway-e2e-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "mimi-gateway")
		cmd := exec.Command(goTool, "build", "-tags", "goolm", "-o", binPath, "github.com/mimi-gateway/mimi-gateway/cmd/mimi-gateway")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("gatewaytest: go build: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// FreeAddr returns a loopback address whose port was free a moment ago.
func FreeAddr(t testing.TB) string { t.Helper(); return servertest.FreeAddr(t) }

// Options describe one gateway.
type Options struct {
	// Domain is the gateway's MIMI domain (and its certificate's name).
	Domain string
	// Layers are YAML configuration documents applied in order, e.g. a snippet of the
	// walkthrough and then a test's own keys. The harness's keys (data_dir, admin and mimi
	// listeners, certificate files, partners) are applied on top of them.
	Layers []string
	// Env is added to the process's environment (PATH and HOME are always set).
	Env []string
}

// Gateway is one gateway process.
type Gateway struct {
	Domain string
	// Dir is the gateway's working directory: configuration, certificate, log and data dir.
	Dir string
	// DataDir is its data dir.
	DataDir string
	// ConfigFile is its configuration file.
	ConfigFile string
	// AdminAddr is the admin listener (/livez, /readyz, /metrics); MIMIAddr the MIMI listener.
	AdminAddr, MIMIAddr string
	// CertFile and KeyFile are its certificate for Domain, issued by CA.
	CertFile, KeyFile string
	CA                *protocoltest.CA
	// LogFile receives the process's output across restarts.
	LogFile string

	t        testing.TB
	bin      string
	layers   []string
	env      []string
	partners []*Gateway

	// extraPartners are partner entries of providers that are not Gateways (AddPartner).
	extraPartners []map[string]any

	mu     sync.Mutex
	proc   *servertest.Process
	starts int
}

// New prepares a gateway: ports, certificate and directories. Nothing runs until Start.
func New(t testing.TB, ca *protocoltest.CA, o Options) *Gateway {
	t.Helper()
	if o.Domain == "" {
		t.Fatal("gatewaytest: Options.Domain is required")
	}
	dir := t.TempDir()
	g := &Gateway{Domain: o.Domain, Dir: dir, DataDir: filepath.Join(dir, "data"), ConfigFile: filepath.Join(dir, "mimi-gateway.yaml"),
		AdminAddr: FreeAddr(t), MIMIAddr: FreeAddr(t), CA: ca, LogFile: filepath.Join(dir, "gateway.log"),
		t: t, bin: Binary(t), layers: o.Layers, env: o.Env}
	g.CertFile, g.KeyFile = protocoltest.WriteFiles(t, ca.Issue(t, o.Domain))
	t.Cleanup(func() {
		var metrics string
		if t.Failed() && g.Running() {
			metrics = g.mimiMetrics()
			if os.Getenv("MIMI_E2E_LOG_DIR") != "" {
				// Someone looks into the failure: the Go runtime writes every goroutine's
				// stack into the log on SIGQUIT (a stuck gateway shows where it waits).
				g.process().Signal(syscall.SIGQUIT, 10*time.Second)
			}
		}
		g.Kill()
		keepLog(t, g.LogFile, "gateway-"+g.Domain+".log")
		if t.Failed() {
			t.Logf("gateway %s log (%s, tail):\n%s", g.Domain, g.LogFile, g.LogTail(40000))
			if metrics != "" {
				t.Logf("gateway %s metrics at the end (mimi_*, non-zero):\n%s", g.Domain, metrics)
			}
		}
	})
	return g
}

// AddLayer appends a YAML configuration layer (applied at the next WriteConfig or Start).
func (g *Gateway) AddLayer(doc string) { g.layers = append(g.layers, doc) }

// SetPartners makes the other gateways g's partners: each on its MIMI listener's loopback
// address, verified with the CA.
func (g *Gateway) SetPartners(others ...*Gateway) { g.partners = others }

// Connect makes every gateway a partner of every other one.
func Connect(gws ...*Gateway) {
	for _, g := range gws {
		var others []*Gateway
		for _, o := range gws {
			if o != g {
				others = append(others, o)
			}
		}
		g.SetPartners(others...)
	}
}

// AddPartner adds a partner that is not a Gateway (e.g. a provider the test runs in-process):
// domain, reached at https://<addr>/ and verified with caFile.
func (g *Gateway) AddPartner(domain, addr, caFile string) {
	g.extraPartners = append(g.extraPartners, map[string]any{"domain": domain, "base_url": "https://" + addr + "/", "ca_file": caFile})
}

// PartnerYAML is how a gateway lists g as a partner (a loopback `partners` entry).
func (g *Gateway) PartnerYAML() map[string]any {
	return map[string]any{"domain": g.Domain, "base_url": "https://" + g.MIMIAddr + "/", "ca_file": g.CA.File}
}

// Config returns the configuration file's content: the layers, then the harness's keys.
func (g *Gateway) Config() (string, error) {
	partners := make([]any, 0, len(g.partners))
	for _, p := range g.partners {
		partners = append(partners, p.PartnerYAML())
	}
	for _, p := range g.extraPartners {
		partners = append(partners, p)
	}
	own := map[string]any{
		"domain":   g.Domain,
		"log":      map[string]any{"level": logLevel()},
		"data_dir": g.DataDir,
		"admin":    map[string]any{"address": g.AdminAddr},
		"mimi": map[string]any{"address": g.MIMIAddr, "cert_file": g.CertFile, "key_file": g.KeyFile,
			"client_ca_file": g.CA.File},
		"partners": partners,
	}
	ownYAML, err := yaml.Marshal(own)
	if err != nil {
		return "", err
	}
	return MergeYAML(append(append([]string(nil), g.layers...), string(ownYAML))...)
}

// WriteConfig writes the configuration file (atomically, so a running gateway's reload never
// reads half a file).
func (g *Gateway) WriteConfig(t testing.TB) {
	t.Helper()
	cfg, err := g.Config()
	if err != nil {
		t.Fatalf("gatewaytest: configuration of %s: %v", g.Domain, err)
	}
	if err := os.WriteFile(g.ConfigFile+".tmp", []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(g.ConfigFile+".tmp", g.ConfigFile); err != nil {
		t.Fatal(err)
	}
}

func (g *Gateway) environ() []string {
	return append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + g.Dir}, g.env...)
}

// Command runs a subcommand of the binary with g's configuration (e.g. "matrix",
// "registration") and returns its combined output.
func (g *Gateway) Command(t testing.TB, args ...string) string {
	t.Helper()
	g.WriteConfig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, g.bin, append([]string{"--config", g.ConfigFile}, args...)...)
	cmd.Dir, cmd.Env = g.Dir, g.environ()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("gatewaytest: mimi-gateway %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Start writes the configuration and starts the process; it does not wait for readiness.
func (g *Gateway) Start(t testing.TB) {
	t.Helper()
	g.WriteConfig(t)
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.proc.Running() {
		t.Fatalf("gatewaytest: %s is already running", g.Domain)
	}
	g.starts++
	cmd := exec.Command(g.bin, "run", "--config", g.ConfigFile)
	cmd.Dir, cmd.Env = g.Dir, g.environ()
	p, err := servertest.Start(cmd, g.LogFile, fmt.Sprintf("gatewaytest: start %d of %s", g.starts, g.Domain))
	if err != nil {
		t.Fatal(err)
	}
	g.proc = p
}

func (g *Gateway) process() *servertest.Process {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.proc
}

// Pid is the process ID of the running gateway (0 when it has not started).
func (g *Gateway) Pid() int { return g.process().Pid() }

// Running reports whether the process runs.
func (g *Gateway) Running() bool { return g.process().Running() }

// Ready reports whether /readyz answers 200, with the body when it does not.
func (g *Gateway) Ready() (bool, string) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + g.AdminAddr + "/readyz?verbose")
	if err != nil {
		return false, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode == http.StatusOK, string(b)
}

// WaitReady polls /readyz until it answers 200; it fails the test when the process exits or
// is not ready within timeout (scaled for the machine, servertest.Scale).
func (g *Gateway) WaitReady(t testing.TB, timeout time.Duration) {
	t.Helper()
	timeout = servertest.Scale(timeout)
	deadline := time.Now().Add(timeout)
	for {
		ok, body := g.Ready()
		if ok {
			return
		}
		if p := g.process(); !p.Running() {
			t.Fatalf("gatewaytest: %s exited before it was ready (%v); log:\n%s", g.Domain, p.Err(), g.LogTail(20000))
		}
		if time.Now().After(deadline) {
			t.Fatalf("gatewaytest: %s not ready after %s: %s", g.Domain, timeout, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// StartReady starts the gateway and waits until it is ready (at most two minutes: the machine
// may be loaded).
func (g *Gateway) StartReady(t testing.TB) {
	t.Helper()
	g.Start(t)
	g.WaitReady(t, defaultReady)
}

// Kill ends the process with SIGKILL, as a crash would, and waits for it.
func (g *Gateway) Kill() { g.process().Kill() }

// Stop ends the process with SIGTERM (the graceful shutdown) and waits for it; SIGKILL after
// 30 s.
func (g *Gateway) Stop() { g.process().Signal(syscall.SIGTERM, 30*time.Second) }

// ExitError is how the last run ended (nil for exit status 0 or while it runs).
func (g *Gateway) ExitError() error {
	if p := g.process(); p != nil {
		return p.Err()
	}
	return nil
}

// Restart kills the gateway (SIGKILL) and starts it again on the same data and ports, then
// waits until it is ready.
func (g *Gateway) Restart(t testing.TB) {
	t.Helper()
	g.Kill()
	g.StartReady(t)
}

// Log returns the whole log file.
func (g *Gateway) Log() string {
	b, _ := os.ReadFile(g.LogFile)
	return string(b)
}

// LogTail returns the last n bytes of the log.
func (g *Gateway) LogTail(n int) string { return servertest.Tail(g.LogFile, n) }

// WaitLog polls the log until it contains substr.
func (g *Gateway) WaitLog(t testing.TB, timeout time.Duration, substr string) {
	t.Helper()
	Eventually(t, timeout, fmt.Sprintf("%s log line %q", g.Domain, substr), func() error {
		if strings.Contains(g.Log(), substr) {
			return nil
		}
		return errors.New("not logged yet")
	})
}

// Metrics returns the /metrics text.
func (g *Gateway) Metrics(t testing.TB) string {
	t.Helper()
	resp, err := http.Get("http://" + g.AdminAddr + "/metrics")
	if err != nil {
		t.Fatalf("gatewaytest: metrics of %s: %v", g.Domain, err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = io.Copy(&b, io.LimitReader(resp.Body, 16<<20))
	return b.String()
}

// mimiMetrics returns the gateway's own metrics (mimi_*) whose value is not zero.
func (g *Gateway) mimiMetrics() string {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + g.AdminAddr + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	var out strings.Builder
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "mimi_") && !strings.HasSuffix(l, " 0") {
			out.WriteString(l)
			out.WriteByte('\n')
		}
	}
	return out.String()
}

// Eventually polls f until it returns nil; after timeout it fails the test with what and f's
// last error.
func Eventually(t testing.TB, timeout time.Duration, what string, f func() error) {
	t.Helper()
	servertest.Eventually(t, timeout, what, f)
}

// keepLog copies a log file into $MIMI_E2E_LOG_DIR, when set, as <test name>/<name>, so the whole
// log of a run can be read after the test's temporary directory is gone.
func keepLog(t testing.TB, file, name string) {
	dir := os.Getenv("MIMI_E2E_LOG_DIR")
	if dir == "" {
		return
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return
	}
	dst := filepath.Join(dir, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()))
	if err := os.MkdirAll(dst, 0o700); err == nil {
		_ = os.WriteFile(filepath.Join(dst, name), b, 0o600)
	}
}

// logLevel is the gateways' log level: $MIMI_E2E_LOG_LEVEL (e.g. debug, to look into a failure),
// else info.
func logLevel() string {
	if l := os.Getenv("MIMI_E2E_LOG_LEVEL"); l != "" {
		return l
	}
	return "info"
}

// defaultReady bounds the wait for readiness: start-up includes opening stores and, with the
// Matrix adapter, the bot's first sync, on a machine that may be loaded.
const defaultReady = 2 * time.Minute
