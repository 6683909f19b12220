package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/mimi-gateway/mimi-gateway/bridges/servertest"
	"github.com/mimi-gateway/mimi-gateway/cmd/mimi-gateway/internal/gatewaytest"
	"github.com/mimi-gateway/mimi-gateway/config"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/ops"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

// checkFor polls f until it returns nil or timeout (scaled for the machine, servertest.Scale)
// passes.
func checkFor(t *testing.T, timeout, every time.Duration, f func() error) {
	t.Helper()
	timeout = servertest.Scale(timeout)
	deadline := time.Now().Add(timeout)
	var err error
	for {
		if err = f(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still failing after %s: %v", timeout, err)
		}
		time.Sleep(every)
	}
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string { t.Helper(); return gatewaytest.FreeAddr(t) }

func get(url string) (int, string, string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(b), err
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader in different goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) waitFor(t *testing.T, substr string) {
	t.Helper()
	checkFor(t, 60*time.Second, 20*time.Millisecond, func() error {
		if strings.Contains(s.String(), substr) {
			return nil
		}
		return fmt.Errorf("log lacks %q", substr)
	})
}

func (s *syncBuffer) count(substr string) int { return strings.Count(s.String(), substr) }

// waitStarted waits until runGateway reports started, failing with the log when it ends or
// does not start within a minute.
func waitStarted(t *testing.T, started <-chan struct{}, done <-chan error, logs *syncBuffer) {
	t.Helper()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("run ended: %v\n%s", err, logs.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("not started:\n%s", logs.String())
	}
}

// writeConfig replaces the file at path with s atomically (write, then rename), as an admin's
// editor would, so a reload never reads a half-written file.
func writeConfig(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path+".tmp", []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

// TestMain removes the binary that gatewaytest.Binary built for the tests that run it.
func TestMain(m *testing.M) { gatewaytest.Main(m) }

// buildBinary builds the gateway as a CI or a user would (once per test run).
func buildBinary(t *testing.T) string { t.Helper(); return gatewaytest.Binary(t) }

// TestBinaryRunsOnDefaults is the fresh-machine experience: the binary, started with no
// configuration file in an empty directory, runs on embedded NATS and SQLite in ./data, answers
// /livez, /readyz and /metrics, reloads on SIGHUP and exits 0 on SIGTERM within 10 s, leaving no
// process behind.
func TestBinaryRunsOnDefaults(t *testing.T) {
	bin := buildBinary(t)
	work := t.TempDir()
	admin := freeAddr(t)
	var logs syncBuffer
	cmd := exec.Command(bin, "run")
	cmd.Dir = work
	// A clean environment, but for the admin port: CI machines may have 9464 taken.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + work, "MIMI_GATEWAY_ADMIN_ADDRESS=" + admin}
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		t.Logf("gateway log:\n%s", logs.String())
	})

	logs.waitFor(t, "gateway started")
	dataDir := filepath.Join(work, "data")
	if !strings.Contains(logs.String(), "data_dir="+dataDir) {
		t.Errorf("the log does not name the data dir %s", dataDir)
	}
	for _, f := range []string{"mimi-gateway.db", "nats/jetstream"} {
		if _, err := os.Stat(filepath.Join(dataDir, f)); err != nil {
			t.Errorf("embedded state not in the data dir: %v", err)
		}
	}
	if !strings.Contains(logs.String(), `domain is \"localhost\"`) {
		t.Error("no warning about the local domain")
	}
	base := "http://" + admin
	for _, path := range []string{"/livez", "/readyz"} {
		code, _, body, err := get(base + path)
		if err != nil || code != http.StatusOK {
			t.Errorf("GET %s: %d %v %q", path, code, err, body)
		}
	}
	code, ctype, body, err := get(base + "/metrics")
	if err != nil || code != http.StatusOK || !strings.HasPrefix(ctype, "text/plain") ||
		!strings.Contains(body, "# TYPE mimi_gateway_build_info gauge") || !strings.Contains(body, "go_goroutines") {
		t.Errorf("GET /metrics: %d %q %v", code, ctype, err)
	}

	// The healthcheck subcommand of the same binary sees it ready.
	hc := exec.Command(bin, "healthcheck")
	hc.Env = []string{"MIMI_GATEWAY_ADMIN_ADDRESS=" + admin}
	if out, err := hc.CombinedOutput(); err != nil || string(out) != "ready\n" {
		t.Errorf("healthcheck: %v %q", err, out)
	}

	// SIGHUP without a file reloads defaults and environment: nothing changes.
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	logs.waitFor(t, "configuration reloaded")

	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		took := time.Since(start)
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
		t.Logf("SIGTERM to exit: %s", took)
		if took > 10*time.Second {
			t.Errorf("shutdown took %s, want under 10s", took)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no exit within 15s of SIGTERM")
	}
	if !strings.Contains(logs.String(), "shutdown complete") {
		t.Error("log lacks shutdown complete")
	}
	// No process of the group is left (the gateway starts no helper processes; check anyway).
	if err := syscall.Kill(-cmd.Process.Pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("process group still has members: %v", err)
	}
	if _, err := net.DialTimeout("tcp", admin, time.Second); err == nil {
		t.Error("admin listener still accepts connections")
	}
}

// TestBinaryReloadsOnSIGHUP checks reload on the real binary: an invalid file keeps the running
// configuration (and the reload metric drops to 0), a valid one is applied.
func TestBinaryReloadsOnSIGHUP(t *testing.T) {
	bin := buildBinary(t)
	work := t.TempDir()
	admin := freeAddr(t)
	cfgPath := filepath.Join(work, "gw.yaml")
	writeConfig := func(s string) {
		t.Helper()
		tmp := cfgPath + ".tmp"
		if err := os.WriteFile(tmp, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, cfgPath); err != nil {
			t.Fatal(err)
		}
	}
	base := "domain: klinik-a.example\ndata_dir: " + filepath.Join(work, "state") + "\nadmin:\n  address: " + admin + "\nlog:\n  format: json\n"
	writeConfig(base + "  level: info\n")
	var logs syncBuffer
	cmd := exec.Command(bin, "run", "--config", cfgPath)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		t.Logf("gateway log:\n%s", logs.String())
	})
	logs.waitFor(t, `"msg":"gateway started"`)
	reloadMetric := func() string {
		_, _, body, err := get("http://" + admin + "/metrics")
		if err != nil {
			return err.Error()
		}
		sc := bufio.NewScanner(strings.NewReader(body))
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "mimi_gateway_config_last_reload_successful ") {
				return sc.Text()
			}
		}
		return "missing"
	}

	writeConfig(base + "  level: debug\n  colour: true\n")
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	logs.waitFor(t, "configuration reload failed")
	if !strings.Contains(logs.String(), `gw.yaml:8:3: log.colour: unknown key`) {
		t.Error("the failed reload does not log the positioned error")
	}
	if got := reloadMetric(); got != "mimi_gateway_config_last_reload_successful 0" {
		t.Errorf("after a failed reload: %s", got)
	}
	if strings.Contains(logs.String(), `"level":"DEBUG"`) {
		t.Error("the invalid file changed the log level")
	}

	writeConfig(strings.Replace(base, "klinik-a", "klinik-b", 1) + "  level: debug\n")
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	logs.waitFor(t, `"msg":"configuration reloaded"`)
	logs.waitFor(t, `"keys":["domain"]`) // reported as needing a restart
	if got := reloadMetric(); got != "mimi_gateway_config_last_reload_successful 1" {
		t.Errorf("after a good reload: %s", got)
	}
	if !strings.Contains(logs.String(), `"applied":["log.level"]`) {
		t.Error("log.level not reported as applied")
	}
	logs.waitFor(t, `"level":"DEBUG","msg":"log level changed"`) // the new level is in force

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no exit within 15s of SIGTERM")
	}
}

// TestRunReload drives runGateway in-process through the reload API: the running configuration
// is swapped only for a valid file, and restart-only keys keep their values.
func TestRunReload(t *testing.T) {
	work := t.TempDir()
	cfgPath := filepath.Join(work, "gw.yaml")
	write := func(s string) { t.Helper(); writeConfig(t, cfgPath, s) }
	admin := freeAddr(t)
	base := "domain: klinik-a.example\ndata_dir: " + work + "\nadmin: {address: \"" + admin + "\"}\n"
	write(base)

	sigs := make(chan os.Signal, 1)
	startedCh := make(chan *config.Manager, 1)
	reloads := make(chan error, 1)
	var logs syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- runGateway(context.Background(), runOptions{
			config:   config.Options{Path: cfgPath},
			signals:  sigs,
			logOut:   &logs,
			started:  func(_ string, m *config.Manager) { startedCh <- m },
			reloaded: func(_ config.ReloadReport, err error) { reloads <- err },
		})
	}()
	var m *config.Manager
	select {
	case m = <-startedCh:
	case err := <-done:
		t.Fatalf("run ended early: %v\n%s", err, logs.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("not started:\n%s", logs.String())
	}
	first := m.Current()

	write(base + "bus: {mode: satellite}\n")
	sigs <- syscall.SIGHUP
	if err := <-reloads; err == nil || !strings.Contains(err.Error(), "gw.yaml:4:13: bus.mode:") {
		t.Errorf("invalid reload: %v", err)
	}
	if m.Current() != first {
		t.Error("an invalid file replaced the running configuration")
	}

	write(strings.Replace(base, "klinik-a", "klinik-b", 1) + "log: {level: debug}\npartners: [{domain: p.example, discovery: true}]\n")
	sigs <- syscall.SIGHUP
	if err := <-reloads; err != nil {
		t.Fatalf("valid reload: %v", err)
	}
	cur := m.Current()
	if cur == first || cur.Log.Level != "debug" || len(cur.Partners) != 1 || cur.Domain != "klinik-a.example" {
		t.Errorf("after reload: level %q partners %d domain %q", cur.Log.Level, len(cur.Partners), cur.Domain)
	}

	sigs <- syscall.SIGTERM
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no return within 15s of SIGTERM")
	}
	if !strings.Contains(logs.String(), "level=DEBUG msg=\"log level changed\"") {
		t.Error("no debug line logged after the level was reloaded to debug")
	}
}

// TestRunRefusesInvalidConfig checks that run reports configuration errors with exit code 2 and
// starts nothing.
func TestRunRefusesInvalidConfig(t *testing.T) {
	f := filepath.Join(t.TempDir(), "f.yaml")
	if err := os.WriteFile(f, []byte("domain: a.example\nbus: {mode: x}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCLI(t, "", "run", "--config", f)
	if code != exitConfig || !strings.HasPrefix(stderr, f+":2:13: bus.mode:") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

// TestAdapterTable: every bridges.<name> section of the configuration has its adapter in the
// table, and enabling it starts that adapter and no other: an enabled bridge is never ignored.
func TestAdapterTable(t *testing.T) {
	sections := reflect.TypeFor[config.Bridges]()
	if sections.NumField() != len(adapters) {
		t.Fatalf("%d bridges sections, %d adapters", sections.NumField(), len(adapters))
	}
	for i := range sections.NumField() {
		f := sections.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		cfg := &config.Config{}
		reflect.ValueOf(&cfg.Bridges).Elem().Field(i).FieldByName("Enabled").SetBool(true)
		var started []string
		for _, a := range adapters {
			if a.enabled(cfg) {
				started = append(started, a.name)
			}
		}
		if len(started) != 1 || started[0] != name || !event.Network(name).Valid() {
			t.Errorf("bridges.%s.enabled starts %v", name, started)
		}
	}
	for _, a := range adapters {
		if a.enabled(&config.Config{}) {
			t.Errorf("%s starts without being enabled", a.name)
		}
	}
}

// TestRunSignalsDuringStartup checks that signals sent while the gateway starts are not lost: a
// SIGHUP is handled right after start-up, a SIGTERM aborts the start-up cleanly.
func TestRunSignalsDuringStartup(t *testing.T) {
	work := t.TempDir()
	env := []string{"MIMI_GATEWAY_DATA_DIR=" + work, "MIMI_GATEWAY_ADMIN_ADDRESS=" + freeAddr(t)}

	sigs := make(chan os.Signal, 2)
	sigs <- syscall.SIGHUP // queued before start-up begins
	reloads := make(chan error, 1)
	started := make(chan struct{})
	done := make(chan error, 1)
	var logs syncBuffer
	go func() {
		done <- runGateway(context.Background(), runOptions{
			config: config.Options{Environ: env}, signals: sigs, logOut: &logs,
			started:  func(string, *config.Manager) { close(started) },
			reloaded: func(_ config.ReloadReport, err error) { reloads <- err },
		})
	}()
	select {
	case err := <-reloads:
		if err != nil {
			t.Errorf("reload: %v", err)
		}
	case err := <-done:
		t.Fatalf("run ended: %v\n%s", err, logs.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("the SIGHUP sent during start-up was lost:\n%s", logs.String())
	}
	<-started
	sigs <- syscall.SIGTERM
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// A SIGTERM queued before start-up: the run stops cleanly, without error.
	sigs <- syscall.SIGTERM
	var logs2 syncBuffer
	err := runGateway(context.Background(), runOptions{
		config: config.Options{Environ: env}, signals: sigs, logOut: &logs2,
		started: func(string, *config.Manager) { t.Error("started despite SIGTERM") },
	})
	if err != nil || !strings.Contains(logs2.String(), "stopped during start-up") {
		t.Errorf("err %v, log:\n%s", err, logs2.String())
	}
}

// TestRunExternalMode runs the gateway as a scaled-out replica would: a separate NATS server
// (JetStream, on a loopback port) and PostgreSQL (a fresh schema at 127.0.0.1:5432; the test fails
// loudly without it), configured through environment variables only, as the README shows.
func TestRunExternalMode(t *testing.T) {
	ns, err := natsserver.NewServer(&natsserver.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	pg := storetest.PostgresConfig(t)
	env := []string{
		"MIMI_GATEWAY_DOMAIN=klinik-a.example",
		"MIMI_GATEWAY_DATA_DIR=" + t.TempDir(),
		"MIMI_GATEWAY_ADMIN_ADDRESS=" + freeAddr(t),
		"MIMI_GATEWAY_BUS_MODE=external",
		"MIMI_GATEWAY_BUS_EXTERNAL_URLS=[" + ns.ClientURL() + "]",
		"MIMI_GATEWAY_BUS_EXTERNAL_REPLICAS=1",
		"MIMI_GATEWAY_STORE_DRIVER=postgres",
		"MIMI_GATEWAY_STORE_POSTGRES_DSN=" + pg.DSN,
		"MIMI_GATEWAY_STORE_ENCRYPTION_KEY=" + pg.Keys,
	}
	sigs := make(chan os.Signal, 1)
	started := make(chan string, 1)
	done := make(chan error, 1)
	var logs syncBuffer
	go func() {
		done <- runGateway(context.Background(), runOptions{
			config: config.Options{Environ: env}, signals: sigs, logOut: &logs,
			started: func(addr string, _ *config.Manager) { started <- addr },
		})
	}()
	var admin string
	select {
	case admin = <-started:
	case err := <-done:
		t.Fatalf("run ended: %v\n%s", err, logs.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("not started:\n%s", logs.String())
	}
	code, _, body, err := get("http://" + admin + "/readyz")
	if err != nil || code != http.StatusOK {
		t.Errorf("readyz: %d %v %s", code, err, body)
	}
	for _, want := range []string{"bus=external store=postgres", "dialect=postgres", "bus ready"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q", want)
		}
	}
	// The streams live on the external server.
	if jsz, err := ns.Jsz(nil); err != nil || jsz.Streams < 3 {
		t.Errorf("external server: %v, streams %+v, want the gateway's 3", err, jsz)
	}
	sigs <- syscall.SIGTERM
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v\n%s", err, logs.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no return within 15s of SIGTERM")
	}
}

// TestRunComponentsAndShutdownOrder registers a core component and checks that run starts it
// after the store and the bus and stops it before them.
func TestRunComponentsAndShutdownOrder(t *testing.T) {
	var events []string
	var mu sync.Mutex
	record := func(e string) { mu.Lock(); events = append(events, e); mu.Unlock() }
	saved := components
	t.Cleanup(func() { components = saved })
	components = append(append([]componentSpec(nil), saved...), componentSpec{"endpoint-test", func(ctx context.Context, d adapterDeps) (ops.StopFunc, error) {
		if err := d.Bus.Ready(ctx); err != nil {
			return nil, fmt.Errorf("bus not ready when the component starts: %w", err)
		}
		if err := d.Store.Ping(ctx); err != nil {
			return nil, fmt.Errorf("store not ready when the component starts: %w", err)
		}
		record("start")
		return func(ctx context.Context) error {
			// The bus and the store must still be up while the endpoint stops.
			if err := d.Bus.Ready(ctx); err != nil {
				record("stop: bus already closed")
				return err
			}
			if err := d.Store.Ping(ctx); err != nil {
				record("stop: store already closed")
				return err
			}
			record("stop")
			return nil
		}, nil
	}})
	sigs := make(chan os.Signal, 1)
	started := make(chan struct{})
	done := make(chan error, 1)
	var logs syncBuffer
	go func() {
		done <- runGateway(context.Background(), runOptions{
			config:  config.Options{Environ: []string{"MIMI_GATEWAY_DATA_DIR=" + t.TempDir(), "MIMI_GATEWAY_ADMIN_ADDRESS=" + freeAddr(t)}},
			signals: sigs, logOut: &logs,
			started: func(string, *config.Manager) { close(started) },
		})
	}()
	waitStarted(t, started, done, &logs)
	sigs <- syscall.SIGTERM
	if err := <-done; err != nil {
		t.Fatalf("run: %v\n%s", err, logs.String())
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(events, ",") != "start,stop" {
		t.Errorf("events %q", events)
	}
	// The log lists the shutdown steps in order: the admin console's socket (no operator action
	// during shutdown), readiness, endpoint (the components in reverse order, then the asset
	// sweeper, which was started before them), bus, store, admin.
	var order []string
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "msg=stopping") {
			if i := strings.Index(line, "name="); i >= 0 {
				order = append(order, strings.Fields(line[i+5:])[0])
			}
		}
	}
	if got := strings.Join(order, ","); got != "console,readiness,endpoint-test,retention,erasure,asset-sweeper,bus,store,admin" {
		t.Errorf("shutdown order %s", got)
	}
}

// TestBinaryStopsWithItsLauncher: when the process that started the gateway is killed (as `go
// run` is by SIGTERM, which it does not pass on), the gateway gets SIGTERM and shuts down in
// order instead of running on unattended.
func TestBinaryStopsWithItsLauncher(t *testing.T) {
	bin := buildBinary(t)
	work := t.TempDir()
	admin := freeAddr(t)
	logFile := filepath.Join(work, "gateway.log")
	launcher := exec.Command("/bin/sh", "-c", `"$0" run > "$1" 2>&1 & wait`, bin, logFile)
	launcher.Dir = work
	launcher.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + work, "MIMI_GATEWAY_ADMIN_ADDRESS=" + admin}
	if err := launcher.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- launcher.Wait() }()
	logged := func() string { b, _ := os.ReadFile(logFile); return string(b) }
	t.Cleanup(func() { t.Logf("gateway log:\n%s", logged()) })
	checkFor(t, 60*time.Second, 20*time.Millisecond, func() error {
		if !strings.Contains(logged(), "gateway started") {
			return errors.New("not started")
		}
		return nil
	})
	if err := launcher.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-done
	checkFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		if !strings.Contains(logged(), "shutdown complete") {
			return errors.New("no orderly shutdown logged")
		}
		return nil
	})
	if !strings.Contains(logged(), `signal=terminated`) {
		t.Error("the shutdown was not caused by SIGTERM")
	}
	checkFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if c, err := net.DialTimeout("tcp", admin, time.Second); err == nil {
			c.Close()
			return errors.New("admin listener still accepts connections")
		}
		return nil
	})
}
