// Package hostile tests the gateway against a hostile but authenticated partner on real
// binaries: hub.example and good.example are gateway processes (cmd/mimi-gateway, built as it
// ships), evil.example is Go code in the test that holds a valid certificate from the same CA,
// speaks the protocol with core/protocol and builds MLS messages with core/mls. The tests play
// the gateways' adapters on each gateway's bus (its embedded NATS, listening on loopback).
package hostile

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	_ "modernc.org/sqlite"

	"github.com/mimi-gateway/mimi-gateway/cmd/mimi-gateway/internal/gatewaytest"
	"github.com/mimi-gateway/mimi-gateway/core/bus"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/protocol/protocoltest"
)

func TestMain(m *testing.M) { gatewaytest.Main(m) }

// node is a gateway process and a connection to its bus.
type node struct {
	*gatewaytest.Gateway
	nc *nats.Conn
	js jetstream.JetStream
	in chan *event.Envelope // everything the gateway publishes on mimi.in
}

// world is the test's providers: the gateways it asked for and evil.example.
type world struct {
	ca   *protocoltest.CA
	evil *evil
	gws  map[string]*node
}

// newWorld starts a gateway for each domain (with its own YAML layers, partners of each other
// and of evil.example) and evil.example; before they start, each setup function may add to
// each gateway's configuration.
func newWorld(t *testing.T, layers map[string]string, setup ...func(*gatewaytest.Gateway)) *world {
	t.Helper()
	w := &world{ca: protocoltest.NewCA(t), gws: map[string]*node{}}
	w.evil = newEvil(t, w.ca)
	var gws []*gatewaytest.Gateway
	natsAddr := map[string]string{}
	for domain, layer := range layers {
		natsAddr[domain] = gatewaytest.FreeAddr(t)
		g := gatewaytest.New(t, w.ca, gatewaytest.Options{Domain: domain, Layers: []string{
			fmt.Sprintf("bus: {embedded: {listen: %q}}\n", natsAddr[domain]), layer}})
		gws = append(gws, g)
		w.gws[domain] = &node{Gateway: g}
	}
	gatewaytest.Connect(gws...)
	w.evil.setPartners(gws...)
	for _, g := range gws {
		for _, f := range setup {
			f(g)
		}
		g.Start(t)
	}
	for _, g := range gws {
		g.WaitReady(t, 2*time.Minute)
		n := w.gws[g.Domain]
		nc, err := nats.Connect("nats://"+natsAddr[g.Domain], nats.Name("hostile-test"))
		if err != nil {
			t.Fatalf("NATS of %s: %v", g.Domain, err)
		}
		t.Cleanup(nc.Close)
		if n.js, err = jetstream.New(nc); err != nil {
			t.Fatal(err)
		}
		n.nc, n.in = nc, make(chan *event.Envelope, 1024)
		if _, err := nc.Subscribe("mimi.in.>", func(m *nats.Msg) {
			if env, err := event.Unmarshal(m.Data); err == nil {
				n.in <- env
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

var seq int

// publishOut publishes env on the gateway's mimi.out as its Matrix adapter would.
func (n *node) publishOut(t testing.TB, env *event.Envelope) {
	t.Helper()
	seq++
	env.ID = event.NewEventID(event.NetworkMatrix, "!room:hostile", event.NativeEventID(fmt.Sprintf("$ev%d-%d", seq, time.Now().UnixNano())))
	env.Origin = event.Origin{Network: event.NetworkMatrix, Room: "!room:hostile", Event: event.NativeEventID(env.ID)}
	env.Timestamp = time.Now()
	data, err := event.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := n.js.PublishMsg(ctx, &nats.Msg{Subject: bus.SubjectOut(env.Room), Data: data},
		jetstream.WithMsgID(string(env.ID)), jetstream.WithExpectStream(bus.StreamOut)); err != nil {
		t.Fatalf("publish on %s's mimi.out: %v", n.Domain, err)
	}
}

// appear makes u a user of the gateway with an MLS client, as the first event an adapter
// publishes for her does (a room name change for a room the gateway does not know: nothing else
// happens), and waits until the gateway has her.
func (n *node) appear(t testing.TB, u event.UserURI) {
	t.Helper()
	n.publishOut(t, &event.Envelope{Kind: event.KindRoomMetadata, Room: event.NewRoomURI(u.Domain(), "nowhere"), Sender: u,
		Metadata: &event.Metadata{Name: "x"}})
	gatewaytest.Eventually(t, time.Minute, fmt.Sprintf("%s at %s", u, n.Domain), func() error {
		if c := n.count(t, `SELECT COUNT(*) FROM provider_users WHERE user_uri = ?`, string(u)); c != 1 {
			return fmt.Errorf("not yet")
		}
		return nil
	})
}

// expect waits for an envelope on the gateway's mimi.in that matches.
func (n *node) expect(t testing.TB, what string, match func(*event.Envelope) bool) *event.Envelope {
	t.Helper()
	deadline := time.After(time.Minute)
	for {
		select {
		case env := <-n.in:
			if match(env) {
				return env
			}
		case <-deadline:
			t.Fatalf("%s: nothing on %s's mimi.in", what, n.Domain)
			return nil
		}
	}
}

// db opens the gateway's SQLite store read-only (the gateway keeps running).
func (n *node) db(t testing.TB) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(n.DataDir, "mimi-gateway.db")+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// count runs a COUNT query on the gateway's store.
func (n *node) count(t testing.TB, q string, args ...any) int {
	t.Helper()
	db := n.db(t)
	var c int
	if err := db.QueryRow(q, args...).Scan(&c); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return c
}

// storeBytes is the size of the gateway's SQLite files (database and write-ahead log).
func (n *node) storeBytes(t testing.TB) int64 {
	t.Helper()
	var total int64
	for _, f := range []string{"mimi-gateway.db", "mimi-gateway.db-wal"} {
		if st, err := os.Stat(filepath.Join(n.DataDir, f)); err == nil {
			total += st.Size()
		}
	}
	return total
}

// liveBytes is the size of the pages in use in the gateway's SQLite store as its latest commit
// left it (page_count − freelist_count, read through the write-ahead log): what the data
// occupies, unlike the files, which keep freed pages and a write-ahead log of reused frames.
func (n *node) liveBytes(t testing.TB) int64 {
	t.Helper()
	db := n.db(t)
	var pages, free, size int64
	for q, v := range map[string]*int64{"PRAGMA page_count": &pages, "PRAGMA freelist_count": &free, "PRAGMA page_size": &size} {
		if err := db.QueryRow(q).Scan(v); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return (pages - free) * size
}

// metric returns the value of the /metrics sample whose name and labels start with prefix
// (0 when there is none).
func (n *node) metric(t testing.TB, prefix string) float64 {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(n.Metrics(t)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, prefix) {
			f := strings.Fields(line)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err != nil {
				t.Fatalf("metric line %q", line)
			}
			return v
		}
	}
	return 0
}

// spread calls f(i) for every i in [from, to) on workers goroutines and waits for them.
func spread(from, to, workers int, f func(i int)) {
	var (
		mu   sync.Mutex
		next = from
		wg   sync.WaitGroup
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= to {
					return
				}
				f(i)
			}
		}()
	}
	wg.Wait()
}

// memory returns the process's VmRSS and VmHWM (bytes) from /proc.
func memory(t testing.TB, pid int) (rss, hwm int64) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("memory of %d: %v", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = kb << 10
		case "VmHWM:":
			hwm = kb << 10
		}
	}
	return rss, hwm
}
