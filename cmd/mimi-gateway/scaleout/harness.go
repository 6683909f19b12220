package scaleout

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	_ "modernc.org/sqlite" // reading B's SQLite store

	"github.com/mimi-gateway/mimi-gateway/bridges/servertest"
	"github.com/mimi-gateway/mimi-gateway/cmd/mimi-gateway/internal/gatewaytest"
	"github.com/mimi-gateway/mimi-gateway/core/bus"
	"github.com/mimi-gateway/mimi-gateway/core/content"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/lease"
	"github.com/mimi-gateway/mimi-gateway/core/protocol/protocoltest"
	"github.com/mimi-gateway/mimi-gateway/core/store"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

// Main runs the tests of a package that uses the harness and removes the binaries it built (the
// gateway and nats-server). Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if natsBin != "" {
		_ = os.RemoveAll(filepath.Dir(natsBin))
	}
	if gatewayBin != "" {
		_ = os.RemoveAll(filepath.Dir(gatewayBin))
	}
	os.Exit(code)
}

// gatewayBin is the gateway binary gatewaytest built for this test process.
var gatewayBin string

// Rate paces the tests' load (messages per second, both sides together) so that faults land
// in the middle of it.
const Rate = 40

const (
	domainA = "klinik-a.example"
	domainB = "amt-b.example"
	// leaseTTL is the replicas' ha.lease_ttl: short, so takeovers come quickly in tests.
	leaseTTL = 4 * time.Second
	// Deadline bounds every wait for the system (a loaded machine, faults in between).
	Deadline = 4 * time.Minute
)

// ---- NATS cluster ----

var (
	natsOnce sync.Once
	natsBin  string
	natsErr  error
)

// natsServer builds nats-server from the module in go.mod once per test process.
func natsServer(t testing.TB) string {
	t.Helper()
	natsOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mimi-scaleout-nats-")
		if err != nil {
			natsErr = err
			return
		}
		natsBin = filepath.Join(dir, "nats-server")
		cmd := exec.Command("go", "build", "-o", natsBin, "github.com/nats-io/nats-server/v2")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			natsErr = fmt.Errorf("go build nats-server: %w\n%s", err, out)
		}
	})
	if natsErr != nil {
		t.Fatal(natsErr)
	}
	return natsBin
}

// NATSNode is one nats-server process of the cluster.
type NATSNode struct {
	// Name is the node's server name (n1, n2, n3).
	Name           string
	dir, conf, log string
	port           int
	mu             sync.Mutex
	proc           *servertest.Process
}

// NATSCluster is a three-node NATS JetStream cluster on loopback ports.
type NATSCluster struct {
	t     testing.TB
	bin   string
	Nodes []*NATSNode
}

// startNATS starts a three-node JetStream cluster, one process per node.
func startNATS(t testing.TB) *NATSCluster {
	t.Helper()
	c := &NATSCluster{t: t, bin: natsServer(t)}
	var routes []string
	cports := make([]int, 3)
	for i := range 3 {
		cports[i] = servertest.FreePort(t)
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", cports[i]))
	}
	for i := range 3 {
		n := &NATSNode{Name: fmt.Sprintf("n%d", i+1), dir: t.TempDir(), port: servertest.FreePort(t)}
		n.conf, n.log = filepath.Join(n.dir, "nats.conf"), filepath.Join(n.dir, "nats.log")
		conf := fmt.Sprintf(`server_name: %s
listen: 127.0.0.1:%d
jetstream { store_dir: %q }
cluster {
  name: mimi
  listen: 127.0.0.1:%d
  routes: [%s]
}
`, n.Name, n.port, filepath.Join(n.dir, "js"), cports[i], strings.Join(routes, ", "))
		if err := os.WriteFile(n.conf, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		c.Nodes = append(c.Nodes, n)
	}
	for i := range c.Nodes {
		c.Start(i)
	}
	t.Cleanup(func() {
		for _, n := range c.Nodes {
			n.Process().Kill()
			if t.Failed() {
				t.Logf("nats %s log (tail):\n%s", n.Name, servertest.Tail(n.log, 4000))
			}
		}
	})
	for _, n := range c.Nodes {
		if err := n.Process().WaitListening(time.Minute, fmt.Sprintf("127.0.0.1:%d", n.port)); err != nil {
			t.Fatal(err)
		}
	}
	c.waitJetStream()
	return c
}

// waitJetStream waits until the cluster's JetStream answers (its meta leader is elected).
func (c *NATSCluster) waitJetStream() {
	c.t.Helper()
	nc, err := nats.Connect(strings.Join(c.urls(), ","), nats.MaxReconnects(-1))
	if err != nil {
		c.t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		c.t.Fatal(err)
	}
	gatewaytest.Eventually(c.t, Deadline, "the NATS cluster's JetStream", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := js.AccountInfo(ctx)
		return err
	})
}

// Process is the node's running process (nil before its first start).
func (n *NATSNode) Process() *servertest.Process {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc
}

// Start starts node i (again, on its store).
func (c *NATSCluster) Start(i int) {
	c.t.Helper()
	n := c.Nodes[i]
	p, err := servertest.Start(exec.Command(c.bin, "-c", n.conf), n.log, "nats "+n.Name)
	if err != nil {
		c.t.Fatal(err)
	}
	n.mu.Lock()
	n.proc = p
	n.mu.Unlock()
}

func (c *NATSCluster) urls() []string {
	var out []string
	for _, n := range c.Nodes {
		out = append(out, fmt.Sprintf("nats://127.0.0.1:%d", n.port))
	}
	return out
}

// ---- the front: a loopback TCP balancer over A's replicas ----

// front accepts partners' connections and passes each to the next replica that accepts a
// connection (round robin), as a Service in front of the replicas would.
type front struct {
	ln       net.Listener
	backends func() []string
	next     atomic.Uint64
}

func startFront(t testing.TB, backends func() []string) *front {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &front{ln: ln, backends: backends}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go f.serve(c)
		}
	}()
	return f
}

func (f *front) addr() string { return f.ln.Addr().String() }

func (f *front) serve(c net.Conn) {
	defer c.Close()
	bs := f.backends()
	start := int(f.next.Add(1))
	for i := range bs {
		up, err := net.DialTimeout("tcp", bs[(start+i)%len(bs)], 2*time.Second)
		if err != nil {
			continue
		}
		defer up.Close()
		done := make(chan struct{}, 2)
		go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
		go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
		<-done
		return
	}
}

// ---- the deployment ----

// Cluster is one deployment: NATS, PostgreSQL, A's replicas behind a front, B, and the test's
// bus clients recording both sides' mimi.in.
type Cluster struct {
	t  testing.TB
	ca *protocoltest.CA
	// NATS is A's bus: a three-node cluster.
	NATS     *NATSCluster
	pg       store.Config
	assetDir string
	// A are the replicas of provider A (the hub of the load's rooms); B is the partner.
	A        []*gatewaytest.Gateway
	B        *gatewaytest.Gateway
	bListen  string
	front    *front
	busA     *bus.NATS
	busB     *bus.NATS
	inA, inB *recorder
}

// NewCluster starts NATS, n replicas of A (the first becomes the leader) and B, connects the
// test's bus clients and records both mimi.in streams as the Matrix adapters would consume
// them.
func NewCluster(t testing.TB, replicas int) *Cluster {
	t.Helper()
	return NewClusterOn(t, replicas, storetest.PostgresConfig(t))
}

// NewClusterOn is NewCluster with A's store on pg.
func NewClusterOn(t testing.TB, replicas int, pg store.Config) *Cluster {
	t.Helper()
	gatewayBin = gatewaytest.Binary(t)
	c := &Cluster{t: t, ca: protocoltest.NewCA(t), NATS: startNATS(t), pg: pg, assetDir: t.TempDir()}
	c.bListen = gatewaytest.FreeAddr(t)
	c.B = gatewaytest.New(t, c.ca, gatewaytest.Options{Domain: domainB, Layers: []string{fmt.Sprintf(`
bus:
  embedded:
    listen: %q
mimi:
  limits:
    key_material:
      target_burst: 100
      partner_burst: 1000
`, c.bListen)}})
	for i := range replicas {
		c.A = append(c.A, gatewaytest.New(t, c.ca, gatewaytest.Options{Domain: domainA, Layers: []string{c.layerA(i)}}))
	}
	c.front = startFront(t, func() []string {
		var out []string
		for _, g := range c.A {
			out = append(out, g.MIMIAddr)
		}
		return out
	})
	for _, g := range c.A {
		g.SetPartners(c.B)
	}
	c.B.AddPartner(domainA, c.front.addr(), c.ca.File)
	c.A[0].StartReady(t)
	c.waitLeader(c.A[0])
	for _, g := range c.A[1:] {
		g.StartReady(t)
	}
	c.B.StartReady(t)

	ctx := t.Context()
	log := slog.New(slog.DiscardHandler)
	var err error
	c.busA, err = bus.Open(ctx, bus.Config{Mode: bus.ModeExternal, External: bus.ExternalConfig{URLs: c.NATS.urls(), Replicas: 3, Name: "scaleout-driver-a"}}, log)
	if err != nil {
		t.Fatalf("bus client for A: %v", err)
	}
	c.busB, err = bus.Open(ctx, bus.Config{Mode: bus.ModeExternal, External: bus.ExternalConfig{URLs: []string{"nats://" + c.bListen}, Replicas: 1, Name: "scaleout-driver-b"}}, log)
	if err != nil {
		t.Fatalf("bus client for B: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = c.busA.Close(ctx)
		_ = c.busB.Close(ctx)
	})
	c.inA, c.inB = c.record(c.busA, "A"), c.record(c.busB, "B")
	c.captureInboxes()
	return c
}

// layerA is the configuration of A's replica i; its PostgreSQL connections carry the
// application name a<i> (traceWrites tells the replicas' writes apart by it).
func (c *Cluster) layerA(i int) string {
	u, err := url.Parse(c.pg.DSN)
	if err != nil {
		c.t.Fatal(err)
	}
	q := u.Query()
	q.Set("application_name", fmt.Sprintf("a%d", i))
	u.RawQuery = q.Encode()
	var urls []string
	for _, u := range c.NATS.urls() {
		urls = append(urls, fmt.Sprintf("%q", u))
	}
	return fmt.Sprintf(`
bus:
  mode: external
  ready_timeout: 3m
  external:
    urls: [%s]
    replicas: 3
store:
  driver: postgres
  postgres:
    dsn: %q
  encryption:
    key: %q
ha:
  lease_ttl: %s
mimi:
  assets:
    dir: %q
  limits:
    key_material:
      target_burst: 100
      partner_burst: 1000
`, strings.Join(urls, ", "), u.String(), c.pg.Keys, leaseTTL, c.assetDir)
}

// db opens A's PostgreSQL schema for the checkers.
func (c *Cluster) db() *sql.DB {
	c.t.Helper()
	db, err := sql.Open("pgx", c.pg.DSN)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { _ = db.Close() })
	return db
}

// Leader returns the lease as stored.
func (c *Cluster) Leader() (lease.Info, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := store.Open(ctx, c.pg)
	if err != nil {
		return lease.Info{}, err
	}
	defer st.Close()
	return lease.Current(ctx, st, "gateway")
}

// waitLeader waits until g's replica holds the lease (by its advertised MIMI address) and has
// started everything a leader runs.
func (c *Cluster) waitLeader(g *gatewaytest.Gateway) lease.Info {
	c.t.Helper()
	var in lease.Info
	gatewaytest.Eventually(c.t, Deadline, "replica "+g.MIMIAddr+" leads", func() error {
		var err error
		if in, err = c.Leader(); err != nil {
			return err
		}
		if in.Address != g.MIMIAddr || !strings.Contains(g.Log(), "gateway started") {
			return fmt.Errorf("leader is %s (%s)", in.Holder, in.Address)
		}
		return nil
	})
	return in
}

// LeaderGateway is the replica that holds the lease now.
func (c *Cluster) LeaderGateway() *gatewaytest.Gateway {
	c.t.Helper()
	var g *gatewaytest.Gateway
	gatewaytest.Eventually(c.t, Deadline, "a leader", func() error {
		in, err := c.Leader()
		if err != nil {
			return err
		}
		for _, r := range c.A {
			if r.MIMIAddr == in.Address && r.Running() && in.ExpiresAt.After(time.Now()) {
				g = r
				return nil
			}
		}
		return fmt.Errorf("lease held by %s (%s), not a running replica", in.Holder, in.Address)
	})
	return g
}

// ---- recording mimi.in ----

type arrival struct {
	env *event.Envelope
	seq uint64
}

// recorder keeps every envelope a provider published on its mimi.in (network matrix), by
// stream sequence: a redelivery of one stream message counts once, two stream messages with
// the same content are a duplicate.
type recorder struct {
	mu       sync.Mutex
	name     string
	seqs     map[uint64]bool
	arrivals []arrival
}

func (c *Cluster) record(b *bus.NATS, name string) *recorder {
	c.t.Helper()
	r := &recorder{name: name, seqs: map[uint64]bool{}}
	sub, err := b.ConsumeIn(c.t.Context(), "scaleout-matrix", event.NetworkMatrix, func(_ context.Context, d bus.Delivery) error {
		r.mu.Lock()
		defer r.mu.Unlock()
		if !r.seqs[d.StreamSeq] {
			r.seqs[d.StreamSeq] = true
			r.arrivals = append(r.arrivals, arrival{env: d.Envelope, seq: d.StreamSeq})
		}
		return nil
	})
	if err != nil {
		c.t.Fatalf("consume %s's mimi.in: %v", name, err)
	}
	c.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = sub.Stop(ctx)
	})
	return r
}

func (r *recorder) snapshot() []arrival {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.arrivals)
}

// ---- the load ----

// sent is one message of the load.
type sent struct {
	env   *event.Envelope
	room  int
	seq   int
	fromA bool
}

// Load is the rooms and messages of one run.
type Load struct {
	rooms []event.RoomURI
	bobs  []event.UserURI
	alice event.UserURI
	Msgs  []*sent
	byKey map[string]*sent
}

const (
	rooms       = 20
	perRoomSide = 50 // 20 rooms × 50 × 2 directions = 2,000 messages
)

var idSeq atomic.Int64

// publish publishes env on b's mimi.out as the Matrix adapter would, retrying (same ID: the
// bus dedupes) while a NATS node or the cluster's leader changes.
func publish(t testing.TB, b *bus.NATS, env *event.Envelope) {
	t.Helper()
	if env.ID == "" {
		env.ID = event.NewEventID(event.NetworkMatrix, "!scaleout", event.NativeEventID(fmt.Sprintf("$ev%d-%d", time.Now().UnixNano(), idSeq.Add(1))))
	}
	env.Origin = event.Origin{Network: event.NetworkMatrix, Room: "!scaleout", Event: event.NativeEventID(env.ID)}
	if env.Timestamp.IsZero() {
		env.Timestamp = time.Now()
	}
	end := time.Now().Add(Deadline)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := b.PublishOut(ctx, env)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("publish %s: %v", env.ID, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func text(t testing.TB, room event.RoomURI, sender event.UserURI, body string) []byte {
	t.Helper()
	b := content.Builder{SenderURI: string(sender), RoomURI: string(room)}
	m, err := b.New(content.PlainText(body))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// Setup creates the rooms: Alice (A, the hub) invites a Bob of B into each; it returns when B
// has the portal request of every room (Bob is a member).
func (c *Cluster) Setup() *Load {
	t := c.t
	t.Helper()
	l := &Load{alice: event.NewUserURI(domainA, "alice"), byKey: map[string]*sent{}}
	bdb := c.bStore()
	for i := range rooms {
		bob := event.NewUserURI(domainB, fmt.Sprintf("bob%02d", i))
		l.bobs = append(l.bobs, bob)
		// Bob uses the gateway once (as his adapter would when he writes), so B knows him.
		publish(t, c.busB, &event.Envelope{Kind: event.KindPortalRequest, Room: event.NewRoomURI(domainB, "hello"), Sender: bob})
	}
	gatewaytest.Eventually(t, Deadline, "B knows every Bob", func() error {
		var n int
		if err := bdb.QueryRow(`SELECT COUNT(*) FROM provider_users WHERE user_uri LIKE 'mimi://` + domainB + `/u/bob%'`).Scan(&n); err != nil {
			return err
		}
		if n < rooms {
			return fmt.Errorf("%d of %d", n, rooms)
		}
		return nil
	})
	for i := range rooms {
		var b [12]byte
		copy(b[:], fmt.Sprintf("scaleout%04d", i))
		room := event.NewRoomURI(domainA, hex.EncodeToString(b[:]))
		l.rooms = append(l.rooms, room)
		publish(t, c.busA, &event.Envelope{Kind: event.KindMembership, Room: room, Sender: l.alice,
			Membership: &event.Membership{Action: event.MembershipInvite, Target: l.bobs[i]}})
	}
	gatewaytest.Eventually(t, Deadline, "B's portal request of every room", func() error {
		got := map[event.RoomURI]bool{}
		for _, a := range c.inB.snapshot() {
			if a.env.Kind == event.KindPortalRequest {
				got[a.env.Room] = true
			}
		}
		for _, r := range l.rooms {
			if !got[r] {
				return fmt.Errorf("%d of %d rooms", len(got), rooms)
			}
		}
		return nil
	})
	for s := range perRoomSide {
		for i, room := range l.rooms {
			for _, fromA := range []bool{true, false} {
				sender, side := l.alice, "a"
				if !fromA {
					sender, side = l.bobs[i], "b"
				}
				raw := text(t, room, sender, fmt.Sprintf("room %02d %s message %03d", i, side, s))
				m := &sent{env: &event.Envelope{Kind: event.KindMessage, Room: room, Sender: sender, Content: raw}, room: i, seq: s, fromA: fromA}
				l.Msgs = append(l.Msgs, m)
				l.byKey[string(raw)] = m
			}
		}
	}
	return l
}

// Run publishes the load at about rate messages per second (both sides together) and calls
// during(i) after message i was published (faults are injected there). It returns how long
// publishing took.
func (c *Cluster) Run(l *Load, rate float64, during func(i int)) {
	c.t.Helper()
	start := time.Now()
	for i, m := range l.Msgs {
		if rate > 0 {
			if d := time.Until(start.Add(time.Duration(float64(i) / rate * float64(time.Second)))); d > 0 {
				time.Sleep(d)
			}
		}
		b := c.busB
		if m.fromA {
			b = c.busA
		}
		publish(c.t, b, m.env)
		if during != nil {
			during(i)
		}
	}
}

// WaitDelivered waits until every message of l arrived on its receiver's mimi.in and returns
// when the last did.
func (c *Cluster) WaitDelivered(l *Load) time.Time {
	c.t.Helper()
	var last time.Time
	gatewaytest.Eventually(c.t, Deadline, "every message delivered", func() error {
		n := 0
		for _, a := range append(c.inA.snapshot(), c.inB.snapshot()...) {
			if a.env.Kind == event.KindMessage && l.byKey[string(a.env.Content)] != nil {
				n++
			}
		}
		if n < len(l.Msgs) {
			return fmt.Errorf("%d of %d delivered", n, len(l.Msgs))
		}
		last = time.Now()
		return nil
	})
	return last
}

// Check runs the checkers over what was recorded: exactly once on both buses, each room's
// order per sender, nothing unexpected, and every room at the same epoch at the hub (A) and at
// the follower (B).
func (c *Cluster) Check(l *Load) {
	t := c.t
	t.Helper()
	c.WaitDelivered(l)
	for _, side := range []struct {
		r     *recorder
		fromA bool
	}{{c.inB, true}, {c.inA, false}} {
		count := map[*sent]int{}
		last := map[int]int{}
		stored := map[int][]storedAt{}
		for _, a := range side.r.snapshot() {
			if a.env.Kind != event.KindMessage {
				continue
			}
			m := l.byKey[string(a.env.Content)]
			if m == nil {
				t.Errorf("%s's mimi.in: a message that was not sent (room %s, sender %s)", side.r.name, a.env.Room, a.env.Sender)
				continue
			}
			if m.fromA != side.fromA {
				t.Errorf("%s's mimi.in: its own side's message came back: room %d seq %d", side.r.name, m.room, m.seq)
				continue
			}
			count[m]++
			if p, ok := last[m.room]; ok && m.seq <= p {
				t.Errorf("%s's mimi.in: room %d out of order: message %d after %d", side.r.name, m.room, m.seq, p)
			}
			stored[m.room] = append(stored[m.room], storedAt{msg: m.seq, stream: a.seq})
			last[m.room] = max(last[m.room], m.seq)
			if a.env.Room != l.rooms[m.room] {
				t.Errorf("%s's mimi.in: message of room %d delivered for room %s", side.r.name, m.room, a.env.Room)
			}
		}
		// Delivery order (above) and stream order apart: a room stored out of order was
		// published out of order; one delivered out of order only was misdelivered.
		for room, list := range stored {
			slices.SortFunc(list, func(a, b storedAt) int { return cmp.Compare(a.stream, b.stream) })
			for i := 1; i < len(list); i++ {
				if list[i].msg <= list[i-1].msg {
					t.Errorf("%s's mimi.in: room %d stored out of order: message %d at stream sequence %d, message %d at %d", side.r.name, room, list[i].msg, list[i].stream, list[i-1].msg, list[i-1].stream)
				}
			}
		}
		for _, m := range l.Msgs {
			if m.fromA == side.fromA && count[m] != 1 {
				t.Errorf("%s's mimi.in: room %d message %d delivered %d times, want exactly once", side.r.name, m.room, m.seq, count[m])
			}
		}
	}
	// The hub's epochs never forked: the follower is at the hub's epoch in every room (after a
	// fork one of them would be on another branch and the other's messages could not be read;
	// every message was read above).
	hub := epochs(t, c.db(), `SELECT epoch FROM provider_rooms WHERE room = $1`, l.rooms)
	fol := epochs(t, c.bStore(), `SELECT epoch FROM provider_rooms WHERE room = ?`, l.rooms)
	for _, r := range l.rooms {
		if hub[r] != fol[r] {
			t.Errorf("room %s: hub (A) at epoch %d, follower (B) at %d", r, hub[r], fol[r])
		}
	}
	c.checkGenerations(l)
}

// storedAt is a message of the load (its number in its room) at its mimi.in stream sequence.
type storedAt struct {
	msg    int
	stream uint64
}

func epochs(t testing.TB, db *sql.DB, q string, rooms []event.RoomURI) map[event.RoomURI]int64 {
	t.Helper()
	out := map[event.RoomURI]int64{}
	for _, r := range rooms {
		var e int64
		if err := db.QueryRow(q, string(r)).Scan(&e); err != nil {
			t.Fatalf("epoch of %s: %v", r, err)
		}
		out[r] = e
	}
	return out
}

// bStore opens B's SQLite store for reading (its plain columns).
func (c *Cluster) bStore() *sql.DB {
	c.t.Helper()
	path := filepath.Join(c.B.DataDir, "mimi-gateway.db")
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { _ = db.Close() })
	return db
}

// Signal sends sig to the process pid.
func Signal(t testing.TB, pid int, sig syscall.Signal) {
	t.Helper()
	if err := syscall.Kill(pid, sig); err != nil {
		t.Fatalf("signal %v to %d: %v", sig, pid, err)
	}
}

// Summary is a short description of the recorded traffic for logs.
func (c *Cluster) Summary() string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "A's mimi.in %d envelopes, B's mimi.in %d envelopes", len(c.inA.snapshot()), len(c.inB.snapshot()))
	return b.String()
}

var ErrStillRunning = fmt.Errorf("still running")

// LeaderGatewayOtherThan waits until a replica other than old holds the lease.
func (c *Cluster) LeaderGatewayOtherThan(old *gatewaytest.Gateway) *gatewaytest.Gateway {
	c.t.Helper()
	var g *gatewaytest.Gateway
	gatewaytest.Eventually(c.t, Deadline, "another replica leads", func() error {
		in, err := c.Leader()
		if err != nil {
			return err
		}
		for _, r := range c.A {
			if r != old && r.MIMIAddr == in.Address && r.Running() {
				g = r
				return nil
			}
		}
		return fmt.Errorf("lease held by %s (%s)", in.Holder, in.Address)
	})
	return g
}

// Supervise restarts every replica of A that exits, as an orchestrator would (a replica that
// lost its lease exits with status 3 and comes back as a standby), except while paused(g)
// says the test stopped it on purpose. It runs until the test ends.
func (c *Cluster) Supervise(paused func(*gatewaytest.Gateway) bool) {
	stop := make(chan struct{})
	done := make(chan struct{})
	c.t.Cleanup(func() { close(stop); <-done })
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(500 * time.Millisecond):
			}
			for _, g := range c.A {
				if !g.Running() && !paused(g) {
					c.t.Logf("supervisor: replica %s exited (%v); starting it again", g.MIMIAddr, g.ExitError())
					g.Start(c.t)
				}
			}
		}
	}()
}

// TraceWrites makes PostgreSQL record every row that A's replicas insert, update or delete in
// any of A's tables (a row trigger on each), with the writing connection's application name
// (a<i>, see layerA) and the database's clock.
func (c *Cluster) TraceWrites() {
	c.t.Helper()
	db := c.db()
	ctx := c.t.Context()
	stmts := []string{
		`CREATE TABLE scaleout_writes (app TEXT NOT NULL, tbl TEXT NOT NULL, at TIMESTAMPTZ NOT NULL)`,
		`CREATE FUNCTION scaleout_trace() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			INSERT INTO scaleout_writes VALUES (current_setting('application_name'), TG_TABLE_NAME, clock_timestamp());
			RETURN NULL;
		END $$`,
	}
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			c.t.Fatalf("trace writes: %v", err)
		}
	}
	rows, err := db.QueryContext(ctx, `SELECT table_name FROM information_schema.tables
		WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' AND table_name <> 'scaleout_writes'`)
	if err != nil {
		c.t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			c.t.Fatal(err)
		}
		tables = append(tables, n)
	}
	if err := rows.Close(); err != nil {
		c.t.Fatal(err)
	}
	for _, tb := range tables {
		if _, err := db.ExecContext(ctx, `CREATE TRIGGER scaleout_trace AFTER INSERT OR UPDATE OR DELETE ON `+tb+
			` FOR EACH ROW EXECUTE FUNCTION scaleout_trace()`); err != nil {
			c.t.Fatalf("trace writes on %s: %v", tb, err)
		}
	}
	c.t.Logf("tracing writes on %d tables of A's store", len(tables))
}

// WritesBy counts the rows replica app wrote after since, by table.
func (c *Cluster) WritesBy(app string, since time.Time) map[string]int {
	c.t.Helper()
	rows, err := c.db().QueryContext(c.t.Context(), `SELECT tbl, COUNT(*) FROM scaleout_writes WHERE app = $1 AND at > $2 GROUP BY tbl`, app, since)
	if err != nil {
		c.t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var (
			tbl string
			n   int
		)
		if err := rows.Scan(&tbl, &n); err != nil {
			c.t.Fatal(err)
		}
		out[tbl] = n
	}
	return out
}

// AppOf is the application name of replica g.
func (c *Cluster) AppOf(g *gatewaytest.Gateway) string {
	return fmt.Sprintf("a%d", slices.Index(c.A, g))
}
