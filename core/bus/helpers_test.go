package bus

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/testwait"
)

// serverBin is the nats-server binary built from the module in go.mod, once per test binary.
var (
	serverBinOnce sync.Once
	serverBin     string
	serverBinErr  error
	serverBinDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if serverBinDir != "" {
		os.RemoveAll(serverBinDir)
	}
	os.Exit(code)
}

// natsServerBinary builds github.com/nats-io/nats-server/v2 (the version in go.mod) into a
// temporary directory the first time it is needed. It needs only the Go toolchain and the module
// cache (or the module proxy).
func natsServerBinary(t testing.TB) string {
	t.Helper()
	serverBinOnce.Do(func() {
		serverBinDir, serverBinErr = os.MkdirTemp("", "mimi-bus-nats-server-")
		if serverBinErr != nil {
			return
		}
		bin := filepath.Join(serverBinDir, "nats-server")
		cmd := exec.Command("go", "build", "-o", bin, "github.com/nats-io/nats-server/v2")
		out, err := cmd.CombinedOutput()
		if err != nil {
			serverBinErr = fmt.Errorf("go build nats-server: %w\n%s", err, out)
			return
		}
		serverBin = bin
	})
	if serverBinErr != nil {
		t.Fatalf("cannot build nats-server: %v", serverBinErr)
	}
	return serverBin
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// externalServer is a nats-server process on a loopback port.
type externalServer struct {
	url string
	cmd *exec.Cmd
}

// startExternalServer runs a separate nats-server with JetStream on a random loopback port and a
// store in a temp dir, and kills it at cleanup.
func startExternalServer(t testing.TB) *externalServer {
	t.Helper()
	bin := natsServerBinary(t)
	port := freePort(t)
	sd := t.TempDir()
	cmd := exec.Command(bin, "-a", "127.0.0.1", "-p", strconv.Itoa(port), "-js", "-sd", sd)
	logf, err := os.Create(filepath.Join(sd, "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start nats-server: %v", err)
	}
	waited := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(waited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-waited
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	checkFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	})
	return &externalServer{url: "nats://" + addr, cmd: cmd}
}

// checkFor polls f every sleep until it returns nil, failing the test with f's last error after
// total (scaled for the machine, testwait.Scale).
func checkFor(t testing.TB, total, sleep time.Duration, f func() error) {
	t.Helper()
	total = testwait.Scale(total)
	deadline := time.Now().Add(total)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(sleep)
	}
	t.Fatalf("condition not met after %s: %v", total, err)
}

// testConfig is a configuration with short timers for tests.
func testConfig() Config {
	return Config{
		AckWait:       time.Second,
		MaxDeliveries: 3,
		Backoff:       []time.Duration{20 * time.Millisecond, 40 * time.Millisecond},
		Partitions:    4,
		PinnedTTL:     time.Second,
		ReadyTimeout:  15 * time.Second,
	}
}

// backend opens buses of one mode.
type backend struct {
	name string
	// config returns a configuration for a fresh server (embedded: a new store dir; external: a
	// new nats-server process).
	config func(t testing.TB) Config
}

var backends = []backend{
	{name: "embedded", config: func(t testing.TB) Config {
		c := testConfig()
		c.Mode = ModeEmbedded
		c.Embedded.StoreDir = filepath.Join(t.TempDir(), "nats")
		return c
	}},
	{name: "external", config: func(t testing.TB) Config {
		srv := startExternalServer(t)
		c := testConfig()
		c.Mode = ModeExternal
		c.External.URLs = []string{srv.url}
		c.External.Replicas = 1
		return c
	}},
}

// forEachBackend runs f as a subtest against each backend.
func forEachBackend(t *testing.T, f func(t *testing.T, cfg Config)) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) { f(t, be.config(t)) })
	}
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.DiscardHandler)
}

// openBus opens a bus and closes it at cleanup.
func openBus(t testing.TB, cfg Config) *NATS {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := Open(ctx, cfg, testLogger(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

func testRoom(i int) event.RoomURI {
	return event.NewRoomURI("klinik-a.example", "room-"+strconv.Itoa(i))
}

// testEnvelope returns a valid message envelope; id makes its event ID.
func testEnvelope(room event.RoomURI, id string, content []byte) *event.Envelope {
	if content == nil {
		content = []byte(id)
	}
	return &event.Envelope{
		ID:        event.NewEventID(event.NetworkMatrix, event.NativeRoomID(room), event.NativeEventID(id)),
		Kind:      event.KindMessage,
		Room:      room,
		Sender:    event.NewUserURI("klinik-a.example", "alice"),
		Content:   content,
		Origin:    event.Origin{Network: event.NetworkMatrix, Room: event.NativeRoomID(room), Event: event.NativeEventID(id)},
		Timestamp: time.Unix(1_700_000_000, 0).UTC(),
	}
}

// recorder collects deliveries.
type recorder struct {
	mu   sync.Mutex
	got  []Delivery
	byID map[event.EventID]int
}

func newRecorder() *recorder { return &recorder{byID: map[event.EventID]int{}} }

func (r *recorder) add(d Delivery) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, d)
	r.byID[d.Envelope.ID]++
}

func (r *recorder) count(id event.EventID) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byID[id]
}

func (r *recorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

func (r *recorder) snapshot() []Delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Delivery(nil), r.got...)
}

// waitCount waits until id was delivered n times.
func (r *recorder) waitCount(t testing.TB, id event.EventID, n int) {
	t.Helper()
	checkFor(t, 20*time.Second, 10*time.Millisecond, func() error {
		if c := r.count(id); c != n {
			return fmt.Errorf("%s delivered %d times, want %d", id, c, n)
		}
		return nil
	})
}

// counterValue reads a counter.
func counterValue(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
