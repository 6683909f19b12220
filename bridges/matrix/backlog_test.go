package matrix

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	mevent "maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/bridges"
	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/dendritetest"
	"github.com/mimi-gateway/mimi-gateway/core/content"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// hsCounter is a reverse proxy in front of the real homeserver that counts the gateway's
// requests by route (method and path with IDs replaced).
type hsCounter struct {
	srv *httptest.Server
	mu  sync.Mutex
	n   map[string]int
	// receipts lists the event IDs of the read receipts that the homeserver accepted, in order.
	receipts []id.EventID
}

var routeIDs = regexp.MustCompile(`/(![^/]+|@[^/]+|\$[^/]+|mimi\.[^/]+|[0-9]+)`)

func newHSCounter(t testing.TB, target string) *hsCounter {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	c := &hsCounter{n: map[string]int{}}
	proxy := httputil.NewSingleHostReverseProxy(u)
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := r.URL.EscapedPath()
		if p, err := url.PathUnescape(path); err == nil {
			path = p
		}
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		proxy.ServeHTTP(rec, r)
		c.mu.Lock()
		defer c.mu.Unlock()
		c.n[r.Method+" "+routeIDs.ReplaceAllString(path, "/*")]++
		if i := strings.Index(path, "/receipt/m.read/"); i >= 0 && rec.status == http.StatusOK {
			c.receipts = append(c.receipts, id.EventID(path[i+len("/receipt/m.read/"):]))
		}
	}))
	t.Cleanup(c.srv.Close)
	return c
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) { r.status = code; r.ResponseWriter.WriteHeader(code) }

// reset forgets the counts so far.
func (c *hsCounter) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n, c.receipts = map[string]int{}, nil
}

// snapshot returns the counts by route (without the bot's long-polling /sync) and the total.
func (c *hsCounter) snapshot() (map[string]int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out, total := map[string]int{}, 0
	for k, v := range c.n {
		if strings.HasSuffix(k, "/sync") {
			continue
		}
		out[k] = v
		total += v
	}
	return out, total
}

func (c *hsCounter) lastReceipt() id.EventID {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.receipts) == 0 {
		return ""
	}
	return c.receipts[len(c.receipts)-1]
}

// TestRenderBacklog renders a backlog of n partner messages, each followed by the partner's read
// receipt on it (as a chat stream brings them), into a real Dendrite in appservice mode, as after
// an outage: the envelopes wait on the bus while the adapter's consumer is stopped, then it
// starts. It logs the homeserver requests per message by route and the time to drain, and
// checks that every message arrives once and in order and that the homeserver ends with the
// receipt on the last message. Unencrypted and encrypted portal.
func TestRenderBacklog(t *testing.T) {
	for _, encrypted := range []bool{false, true} {
		t.Run(fmt.Sprint("encrypted=", encrypted), func(t *testing.T) { renderBacklog(t, encrypted) })
	}
}

func renderBacklog(t *testing.T, encrypted bool) {
	const n = 60
	dir := t.TempDir()
	cfg := appserviceConfig(t, dir)
	if _, err := WriteRegistration(cfg, cfg.Appservice.RegistrationFile); err != nil {
		t.Fatal(err)
	}
	e := &asEnv{dir: dir, cfg: cfg}
	e.hs = dendritetest.Start(t, cfg.Appservice.RegistrationFile)
	hs := newHSCounter(t, e.hs.URL)
	e.cfg.HomeserverURL = hs.srv.URL
	e.st = openStore(t, dir)
	e.bus = openBus(t, dir)
	e.out = collectOut(t, e.bus)
	e.startAdapter(t)

	alice := newE2EEClient(t, e.hs, "alice", "alicepassword123")
	ghost := e.adapter.ghosts.UserID(bobURI)
	room := alice.CreateRoom(t, "", encrypted, false, ghost)
	alice.waitJoined(t, room, ghost)
	roomURI, _ := RoomURIOf("localhost", room)
	waitPortal(t, e, roomURI)
	warm := mimiMessage(t, event.KindMessage, roomURI, bobURI, 0, func(m *content.Message) { m.Body = textBody(content.TypePlain, "warm-up") })
	publishIn(t, e.bus, warm)
	alice.waitEvent(t, "the warm-up", func(ev *mevent.Event) bool { return ev.Sender == ghost && dendritetest.Body(ev) == "warm-up" })

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	if err := e.sub.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	for i := 1; i <= n; i++ {
		msg := mimiMessage(t, event.KindMessage, roomURI, bobURI, 2*i, func(m *content.Message) { m.Body = textBody(content.TypePlain, fmt.Sprint("backlog ", i)) })
		rep, err := content.StatusReport{{MessageID: content.MessageID(msg.MessageID), Status: content.StatusRead}}.Encode()
		if err != nil {
			t.Fatal(err)
		}
		rcpt := mimiMessage(t, event.KindReceipt, roomURI, bobURI, 2*i+1, func(m *content.Message) {
			m.Body = content.NestedPart{Disposition: content.DispUnspecified, Body: content.SinglePart{ContentType: content.StatusMediaType, Content: rep}}
		})
		rcpt.MessageID = nil
		publishIn(t, e.bus, msg, rcpt)
	}
	hs.reset()
	start := time.Now()
	sub, err := bridges.Run(context.Background(), e.bus, "matrix-test", e.adapter, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	e.sub = sub
	last := alice.waitEvent(t, "the last message", func(ev *mevent.Event) bool { return dendritetest.Body(ev) == fmt.Sprint("backlog ", n) })
	messages := time.Since(start)
	waitFor(t, time.Minute, "the read receipt on the last message", func() bool { return hs.lastReceipt() == last.ID })
	elapsed := time.Since(start)

	got := alice.Events(func(ev *mevent.Event) bool { return strings.HasPrefix(dendritetest.Body(ev), "backlog ") })
	if len(got) != n {
		t.Fatalf("alice got %d backlog messages, want %d", len(got), n)
	}
	for i, ev := range got {
		if want := fmt.Sprint("backlog ", i+1); dendritetest.Body(ev) != want {
			t.Fatalf("message %d is %q, want %q", i, dendritetest.Body(ev), want)
		}
	}
	routes, total := hs.snapshot()
	keys := make([]string, 0, len(routes))
	for k := range routes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		t.Logf("%-70s %4d  %.2f/message", k, routes[k], float64(routes[k])/n)
	}
	t.Logf("backlog of %d messages + %d read receipts: %d homeserver requests (%.2f per message, /sync not counted); last message shown after %s, its receipt after %s",
		n, n, total, float64(total)/n, messages.Round(time.Millisecond), elapsed.Round(time.Millisecond))
}
