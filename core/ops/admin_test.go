package ops_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mimi-gateway/mimi-gateway/core/ops"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

// startAdmin starts an admin server on a random loopback port and stops it
// at the end of the test.
func startAdmin(t *testing.T, opts ...ops.AdminOption) (*ops.Admin, string) {
	t.Helper()
	a := ops.NewAdmin(opts...)
	addr, err := a.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := a.Shutdown(ctx); err != nil {
			t.Errorf("admin shutdown: %v", err)
		}
	})
	return a, addr.String()
}

func get(t *testing.T, url string, hdr ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestLivez(t *testing.T) {
	_, addr := startAdmin(t)
	code, body := get(t, "http://"+addr+"/livez")
	if code != http.StatusOK || body != "ok\n" {
		t.Fatalf("/livez = %d %q, want 200 ok", code, body)
	}
}

func TestReadinessTransitions(t *testing.T) {
	a, addr := startAdmin(t, ops.WithCheckTimeout(200*time.Millisecond))
	url := "http://" + addr + "/readyz"

	var storeErr atomic.Pointer[error]
	setStore := func(err error) { storeErr.Store(&err) }
	setStore(nil)
	if err := a.AddReadiness("store", func(context.Context) error { return *storeErr.Load() }); err != nil {
		t.Fatal(err)
	}
	busReady := atomic.Bool{}
	if err := a.AddReadiness("bus", func(context.Context) error {
		if !busReady.Load() {
			return errors.New("not connected")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	steps := []struct {
		name     string
		act      func()
		wantCode int
		wantBody []string
	}{
		{"starting", func() {}, 503, []string{"[-]lifecycle starting", "[+]store ok", "[-]bus failed: not connected", "readyz check failed"}},
		{"started but bus down", a.MarkStarted, 503, []string{"[+]store ok", "[-]bus failed: not connected"}},
		{"all ready", func() { busReady.Store(true) }, 200, []string{"[+]store ok", "[+]bus ok", "readyz check passed"}},
		{"store fails", func() { setStore(errors.New("database is locked\nsecond line")) }, 503, []string{"[-]store failed: database is locked second line", "[+]bus ok"}},
		{"store back", func() { setStore(nil) }, 200, []string{"readyz check passed"}},
		{"stopping", a.MarkStopping, 503, []string{"[-]lifecycle stopping", "[+]store ok", "[+]bus ok"}},
		{"started again is ignored", a.MarkStarted, 503, []string{"[-]lifecycle stopping"}},
	}
	for _, st := range steps {
		st.act()
		code, body := get(t, url)
		if code != st.wantCode {
			t.Errorf("%s: /readyz = %d, want %d; body:\n%s", st.name, code, st.wantCode, body)
		}
		for _, w := range st.wantBody {
			if !strings.Contains(body, w) {
				t.Errorf("%s: body lacks %q:\n%s", st.name, w, body)
			}
		}
	}
}

func TestReadyzJSON(t *testing.T) {
	a, addr := startAdmin(t)
	a.MarkStarted()
	if err := a.AddReadiness("bus", func(context.Context) error { return errors.New("stream missing") }); err != nil {
		t.Fatal(err)
	}
	for _, variant := range []struct {
		name string
		url  string
		hdr  []string
	}{
		{"query", "http://" + addr + "/readyz?format=json", nil},
		{"accept", "http://" + addr + "/readyz", []string{"Accept", "application/json"}},
	} {
		code, body := get(t, variant.url, variant.hdr...)
		if code != 503 {
			t.Fatalf("%s: code %d, want 503", variant.name, code)
		}
		var rep ops.Readiness
		if err := json.Unmarshal([]byte(body), &rep); err != nil {
			t.Fatalf("%s: body is not JSON: %v\n%s", variant.name, err, body)
		}
		if rep.Ready || rep.State != "running" || len(rep.Checks) != 1 || rep.Checks[0].Name != "bus" || rep.Checks[0].OK || rep.Checks[0].Error != "stream missing" {
			t.Fatalf("%s: report = %+v", variant.name, rep)
		}
	}
}

func TestReadinessCheckIgnoringContextTimesOut(t *testing.T) {
	a, addr := startAdmin(t, ops.WithCheckTimeout(50*time.Millisecond))
	a.MarkStarted()
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	if err := a.AddReadiness("stuck", func(context.Context) error { <-block; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := a.AddReadiness("panicky", func(context.Context) error { panic("boom") }); err != nil {
		t.Fatal(err)
	}
	code, body := get(t, "http://"+addr+"/readyz")
	if code != 503 || !strings.Contains(body, "[-]stuck failed: check did not finish within 50ms") || !strings.Contains(body, "[-]panicky failed: check panicked: boom") {
		t.Fatalf("/readyz = %d\n%s", code, body)
	}
}

func TestAddReadinessValidation(t *testing.T) {
	a := ops.NewAdmin()
	ok := func(context.Context) error { return nil }
	cases := []struct {
		name    string
		check   string
		fn      ops.CheckFunc
		wantErr bool
	}{
		{"valid", "store", ok, false},
		{"duplicate", "store", ok, true},
		{"uppercase", "Store", ok, true},
		{"empty", "", ok, true},
		{"room id", "!abc:example.org", ok, true},
		{"too long", strings.Repeat("a", 65), ok, true},
		{"nil func", "bus", nil, true},
		{"dotted", "bridge.matrix", ok, false},
	}
	for _, c := range cases {
		err := a.AddReadiness(c.check, c.fn)
		if (err != nil) != c.wantErr {
			t.Errorf("%s: AddReadiness(%q) err = %v, wantErr %v", c.name, c.check, err, c.wantErr)
		}
	}
	a.RemoveReadiness("store")
	if err := a.AddReadiness("store", ok); err != nil {
		t.Errorf("re-adding after RemoveReadiness: %v", err)
	}
}

func TestMetricsEndpoint(t *testing.T) {
	a, addr := startAdmin(t, ops.WithBuildInfo(ops.BuildInfo{Version: "1.2.3", Commit: "abc"}))
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "mimi_gateway_test_things_total", Help: "Test counter."})
	c.Add(3)
	if err := a.Register(c); err != nil {
		t.Fatal(err)
	}
	if err := a.Register(c); err == nil {
		t.Fatal("registering the same collector twice succeeded")
	}
	// A real store's collector, on SQLite.
	st := storetest.Open(t, storetest.SQLiteConfig(t))
	a.MustRegister(st)
	if _, err := st.MarkProcessed(t.Context(), "test", "e1"); err != nil {
		t.Fatal(err)
	}
	if err := a.AddReadiness("store", st.Ping); err != nil {
		t.Fatal(err)
	}
	a.MarkStarted()
	coreVersion, err := st.SchemaVersion(t.Context(), "core")
	if err != nil || coreVersion < 1 {
		t.Fatalf("core schema version = %d, %v", coreVersion, err)
	}

	code, body := get(t, "http://"+addr+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics = %d", code)
	}
	for _, want := range []string{
		"go_goroutines ",
		"go_gc_duration_seconds",
		"process_start_time_seconds ",
		`mimi_gateway_build_info{commit="abc",goversion="go`,
		`version="1.2.3"} 1`,
		"mimi_gateway_test_things_total 3",
		"mimi_gateway_lifecycle_running 1",
		`mimi_gateway_store_processed_events_total{dialect="sqlite",result="first"} 1`,
		fmt.Sprintf(`mimi_gateway_store_schema_version{component="core",dialect="sqlite"} %d`, coreVersion),
		`go_sql_open_connections{db_name="writer"}`,
		"promhttp_metric_handler_requests_total",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if code, body := get(t, "http://"+addr+"/readyz"); code != 200 {
		t.Errorf("/readyz with a real store = %d\n%s", code, body)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, "http://"+addr+"/readyz"); code != 503 || !strings.Contains(body, "[-]store failed") {
		t.Errorf("/readyz with a closed store = %d\n%s", code, body)
	}
}

func TestAdminServeTwice(t *testing.T) {
	a, _ := startAdmin(t)
	if _, err := a.Start("127.0.0.1:0"); err == nil {
		t.Fatal("second Start succeeded")
	}
}

func TestUnknownPathAndMethod(t *testing.T) {
	_, addr := startAdmin(t)
	if code, _ := get(t, "http://"+addr+"/debug/pprof/"); code != 404 {
		t.Errorf("unknown path = %d, want 404", code)
	}
	resp, err := http.Post("http://"+addr+"/readyz", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /readyz = %d, want 405", resp.StatusCode)
	}
}

func TestAdminHandle(t *testing.T) {
	a := ops.NewAdmin()
	reloaded := make(chan struct{}, 1)
	if err := a.Handle("POST /admin/reload", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		reloaded <- struct{}{}
		w.WriteHeader(http.StatusNoContent)
	})); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"GET /livez", "no spaces allowed here", "POST /admin/reload"} {
		if err := a.Handle(bad, http.NotFoundHandler()); err == nil {
			t.Errorf("Handle(%q) accepted a bad or conflicting pattern", bad)
		}
	}
	if err := a.Handle("GET /x", nil); err == nil {
		t.Error("nil handler accepted")
	}
	addr, err := a.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Shutdown(context.Background()) })
	if err := a.Handle("GET /late", http.NotFoundHandler()); err == nil {
		t.Error("Handle after Start accepted")
	}
	resp, err := http.Post("http://"+addr.String()+"/admin/reload", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("POST /admin/reload = %d", resp.StatusCode)
	}
	select {
	case <-reloaded:
	default:
		t.Fatal("reload handler not called")
	}
	if code, _ := get(t, "http://"+addr.String()+"/livez"); code != 200 {
		t.Fatalf("/livez = %d", code)
	}
}
