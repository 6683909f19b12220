package provider

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/bus"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
	"github.com/mimi-gateway/mimi-gateway/core/protocol/protocoltest"
	"github.com/mimi-gateway/mimi-gateway/core/store"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

// envKillChild carries a killChildConfig (JSON) to the child process of TestFollowerKilled.
const envKillChild = "MIMI_PROVIDER_TEST_KILL_CHILD"

// killChildConfig is everything provider B needs to run in the child process.
type killChildConfig struct {
	Domain   event.Domain
	User     event.UserURI
	Store    store.Config
	NATSDir  string
	Listen   string // fixed loopback address, so that A's partner entry stays valid
	CertFile string
	KeyFile  string
	CAFile   string
	Partner  event.Domain // the other provider's domain
	HubAddr  string       // the other provider's listener
	// Rooms, for a child that is the hub: rooms of its domain in which User invites Invite
	// (published on the child's own mimi.out at start; deduplicated when started again).
	Rooms  []event.RoomURI
	Invite event.UserURI
	// StopInGroupCommit makes the child report "GROUP <n>" and stop (until it is killed) in the
	// first shared transaction of at least two callers, just before its commit.
	StopInGroupCommit bool
}

// killBusConfig is B's bus configuration, the same in the child and in the parent's final check.
func killBusConfig(dir string) bus.Config {
	return bus.Config{
		Mode:          bus.ModeEmbedded,
		Embedded:      bus.EmbeddedConfig{StoreDir: dir},
		AckWait:       2 * time.Second,
		MaxDeliveries: 50,
		Backoff:       []time.Duration{50 * time.Millisecond, 200 * time.Millisecond},
		Partitions:    2,
		ReadyTimeout:  15 * time.Second,
	}
}

// TestFollowerKilledChild is provider B of TestFollowerKilled when run as its child process
// (envKillChild set); otherwise it returns at once. It reports on stdout "READY" once its
// listener is up and "IN <kind> <envelope id>" for every delivery on its mimi.in.matrix, then
// blocks until it is killed.
func TestFollowerKilledChild(t *testing.T) {
	v := os.Getenv(envKillChild)
	if v == "" {
		return
	}
	fail := func(what string, err error) {
		fmt.Printf("ERR %s: %v\n", what, err)
		os.Exit(2)
	}
	var cfg killChildConfig
	if err := json.Unmarshal([]byte(v), &cfg); err != nil {
		fail("config", err)
	}
	ctx := context.Background()
	cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
	if err != nil {
		fail("certificate", err)
	}
	caPEM, err := os.ReadFile(cfg.CAFile)
	if err != nil {
		fail("CA", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		fail("CA", fmt.Errorf("no certificate in %s", cfg.CAFile))
	}
	var mu sync.Mutex // one line at a time on stdout
	var opts []store.Option
	if cfg.StopInGroupCommit {
		opts = append(opts, store.WithBeforeGroupCommit(func(n int) {
			if n < 2 {
				return
			}
			mu.Lock()
			fmt.Printf("GROUP %d\n", n)
			mu.Unlock()
			select {} // until SIGKILL, with the shared transaction open
		}))
	}
	st, err := store.Open(ctx, cfg.Store, opts...)
	if err != nil {
		fail("store", err)
	}
	if err := st.Migrate(ctx, protocol.Schema); err != nil {
		fail("migrate", err)
	}
	b, err := bus.Open(ctx, killBusConfig(cfg.NATSDir), testLogger())
	if err != nil {
		fail("bus", err)
	}
	// The parent reads B's mimi.in afterwards with the consumer group "verify": the stream keeps
	// messages only for groups that exist (interest retention).
	if err := b.DeclareIn(ctx, "verify", event.NetworkMatrix); err != nil {
		fail("declare", err)
	}
	p, err := New(ctx, Config{Domain: cfg.Domain, Store: st, Bus: b, Logger: testLogger().With("domain", cfg.Domain)})
	if err != nil {
		fail("provider", err)
	}
	if err := p.EnsureUser(ctx, cfg.User, event.NetworkMatrix); err != nil {
		fail("user", err)
	}
	n := protocoltest.NewNetwork()
	n.Set(string(cfg.Partner), cfg.HubAddr)
	partners := protocol.NewPartners()
	partners.Set([]protocol.Partner{{Domain: cfg.Partner, BaseURL: &url.URL{Scheme: "https", Host: string(cfg.Partner), Path: "/"}, RootCAs: pool}})
	cl, err := protocol.NewClient(protocol.ClientConfig{Domain: cfg.Domain, Certificate: cert, Partners: partners, DialContext: n.DialContext, Timeout: 10 * time.Second})
	if err != nil {
		fail("client", err)
	}
	srv, err := protocol.NewServer(protocol.ServerConfig{
		Domain: cfg.Domain, Certificate: cert, ClientCAs: pool,
		Partners: partners, Handler: p, Store: st,
	})
	if err != nil {
		fail("server", err)
	}
	if _, err := srv.Listen(cfg.Listen); err != nil {
		fail("listen", err)
	}
	if err := p.Start(ctx, cl); err != nil {
		fail("start", err)
	}
	for _, r := range cfg.Rooms {
		env := membership(r, cfg.User, event.MembershipInvite, cfg.Invite)
		env.ID = event.NewEventID(event.NetworkMatrix, "!room", event.NativeEventID("invite "+r))
		if err := publishEnvelope(&node{bus: b}, env); err != nil {
			fail("invite", err)
		}
	}
	if _, err := b.ConsumeIn(ctx, "test-matrix", event.NetworkMatrix, func(_ context.Context, d bus.Delivery) error {
		mu.Lock()
		defer mu.Unlock()
		fmt.Printf("IN %s %s\n", d.Envelope.Kind, d.Envelope.ID)
		return nil
	}); err != nil {
		fail("consume", err)
	}
	mu.Lock()
	fmt.Println("READY")
	mu.Unlock()
	select {} // until SIGKILL
}

// killChild is one running child process of TestFollowerKilled.
type killChild struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when stdout is exhausted
}

// startKillChild starts provider B in a child process, forwards its "IN" lines to in and waits
// for "READY".
func startKillChild(t *testing.T, cfg killChildConfig, in chan<- string) *killChild {
	t.Helper()
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestFollowerKilledChild$", "-test.count=1")
	if testing.Verbose() {
		cmd.Args = append(cmd.Args, "-test.v")
	}
	cmd.Env = append(os.Environ(), envKillChild+"="+string(cfgJSON))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &killChild{cmd: cmd, done: make(chan struct{})}
	t.Cleanup(func() { c.kill(t) })
	ready := make(chan string, 1)
	go func() {
		defer close(c.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "IN "):
				in <- strings.TrimPrefix(line, "IN ")
			case strings.HasPrefix(line, "GROUP "):
				in <- line
			case line == "READY" || strings.HasPrefix(line, "ERR "):
				ready <- line
			}
		}
	}()
	select {
	case line := <-ready:
		if line != "READY" {
			t.Fatalf("child: %s", line)
		}
	case <-c.done:
		t.Fatal("child exited before it was ready")
	case <-time.After(30 * time.Second):
		t.Fatal("child not ready after 30s")
	}
	return c
}

// kill sends SIGKILL (no clean shutdown of anything) and reaps the process.
func (c *killChild) kill(t *testing.T) {
	t.Helper()
	if c.cmd.ProcessState != nil {
		return
	}
	if err := c.cmd.Process.Kill(); err != nil {
		t.Errorf("kill: %v", err)
	}
	<-c.done
	_ = c.cmd.Wait()
}

// freeLoopbackAddr returns a loopback address with a port nobody listens on now.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// killReports tallies the "IN <kind> <envelope id>" lines of TestFollowerKilled's children. A
// restarted child's durable consumer may deliver again what the killed one had already handled:
// JetStream stores a consumer's acknowledgements asynchronously, so a SIGKILL can lose the last
// ones (at-least-once; the stream itself holds each envelope once). So every envelope counts
// once, by ID, and only message envelopes count as messages: a redelivered portal request is
// not one of them.
type killReports struct {
	portal   bool            // the portal request for bob arrived
	messages map[string]bool // envelope IDs of the messages that arrived
	all      map[string]bool // envelope IDs of every report
	again    int             // reports of an envelope that had arrived before
}

func newKillReports() *killReports {
	return &killReports{messages: map[string]bool{}, all: map[string]bool{}}
}

func (r *killReports) add(line string) {
	kind, id, _ := strings.Cut(line, " ")
	if r.all[id] {
		r.again++
	}
	r.all[id] = true
	switch kind {
	case event.KindMessage.String():
		r.messages[id] = true
	case event.KindPortalRequest.String():
		r.portal = true
	}
}

// TestKillReportsRedelivery: what a restarted child delivers again (here the portal request and
// the messages the killed child had reported) does not count as a new message, so
// TestFollowerKilled does not stop waiting one message early.
func TestKillReportsRedelivery(t *testing.T) {
	portal := event.KindPortalRequest.String() + " mimi:portal"
	msg := func(i int) string { return fmt.Sprintf("%s mimi:m%d", event.KindMessage, i) }
	r := newKillReports()
	r.add(portal)
	for i := range 3 { // the first child, killed
		r.add(msg(i))
	}
	if !r.portal || len(r.messages) != 3 {
		t.Fatalf("first child: portal %v, %d messages, want true, 3", r.portal, len(r.messages))
	}
	r.add(portal) // the second child: redelivery of what the first had handled, then the rest but one
	for i := range 29 {
		r.add(msg(i))
	}
	if len(r.messages) != 29 || r.again != 4 {
		t.Fatalf("second child: %d messages before the last arrived, %d reported again, want 29, 4", len(r.messages), r.again)
	}
	r.add(msg(29))
	if len(r.messages) != 30 {
		t.Fatalf("second child: %d messages after the last arrived, want 30", len(r.messages))
	}
}

// TestFollowerKilled is TestFollowerRestart with a real crash: provider B runs in a child
// process that is SIGKILLed while the hub A streams 30 messages to it, then restarted on the
// same SQLite file and JetStream directory. A's outbox retries; in the end every message is on
// B's mimi.in stream exactly once.
func TestFollowerKilled(t *testing.T) {
	ctx := context.Background()
	n := protocoltest.NewNetwork()
	ca := protocoltest.NewCA(t)
	a := newNode(t, n, ca, "a.example", storetest.SQLiteConfig(t))

	const bDomain event.Domain = "b.example"
	bAddr := freeLoopbackAddr(t)
	certFile, keyFile := protocoltest.WriteFiles(t, ca.Issue(t, string(bDomain)))
	natsDir := filepath.Join(t.TempDir(), "nats")
	bob := event.NewUserURI(bDomain, "bob")
	cfg := killChildConfig{
		Domain: bDomain, User: bob, Store: storetest.SQLiteConfig(t), NATSDir: natsDir,
		Listen: bAddr, CertFile: certFile, KeyFile: keyFile, CAFile: ca.File,
		Partner: a.domain, HubAddr: a.tp.Addr,
	}
	n.Set(string(bDomain), bAddr)
	a.tp.Partners.Set([]protocol.Partner{{Domain: bDomain, BaseURL: &url.URL{Scheme: "https", Host: string(bDomain), Path: "/"}, RootCAs: ca.Pool}})
	a.start(t)

	in := make(chan string, 1024) // "<kind> <envelope id>" lines from both children
	child := startKillChild(t, cfg, in)

	alice := event.NewUserURI(a.domain, "alice")
	room := a.p.NewRoomID()
	publishOut(t, a, membership(room, alice, event.MembershipInvite, bob))
	reports := newKillReports()
	// next reads the children's reports until want holds or the deadline passes.
	next := func(what string, d time.Duration, want func() bool) {
		t.Helper()
		deadline := time.After(d)
		for !want() {
			select {
			case line := <-in:
				reports.add(line)
			case <-deadline:
				t.Fatalf("%s: not within %s", what, d)
			}
		}
	}
	next("portal request on B", 30*time.Second, func() bool { return reports.portal })

	const total = 30
	sent := make([]*event.Envelope, 0, total)
	send := func(i int) {
		m := message(t, room, alice, fmt.Sprintf("stream %d", i))
		publishOut(t, a, m)
		sent = append(sent, m)
	}
	for i := range total / 3 {
		send(i)
	}
	// Kill B as soon as a few have arrived, with the rest of the first third still in flight.
	next("first messages on B", 30*time.Second, func() bool { return len(reports.messages) >= 3 })
	child.kill(t)
	// The killed child's stdout is exhausted: what it reported is in in by now.
	next("drain reports of the killed child", time.Second, func() bool { return len(in) == 0 })
	t.Logf("killed B with %d of the first %d messages on its bus", len(reports.messages), total/3)
	for i := total / 3; i < total; i++ {
		send(i)
	}
	child = startKillChild(t, cfg, in)
	next("all messages reported by B", 90*time.Second, func() bool { return len(reports.messages) >= total })
	t.Logf("all %d messages on B's bus; envelopes delivered again to the restarted child's consumer: %d", total, reports.again)
	child.kill(t)

	// Read B's MIMI_IN stream from the start with a fresh consumer on B's own data.
	b, err := bus.Open(ctx, killBusConfig(natsDir), testLogger())
	if err != nil {
		t.Fatalf("bus: %v", err)
	}
	defer func() { _ = b.Close(context.Background()) }()
	type stored struct {
		env *event.Envelope
		seq uint64
	}
	got := make(chan stored, 1024)
	sub, err := b.ConsumeIn(ctx, "verify", event.NetworkMatrix, func(_ context.Context, d bus.Delivery) error {
		got <- stored{env: d.Envelope, seq: d.StreamSeq}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Stop(context.Background()) }()
	bySeq := map[uint64]*event.Envelope{}
	byID := map[event.EventID]uint64{}
	byContent := map[string]uint64{}
	collect := func(d time.Duration) {
		deadline := time.After(d)
		for {
			select {
			case s := <-got:
				if s.env.Kind != event.KindMessage {
					continue
				}
				if _, ok := bySeq[s.seq]; ok {
					continue // redelivery of one stored message to this consumer
				}
				bySeq[s.seq] = s.env
				if prev, ok := byID[s.env.ID]; ok {
					t.Errorf("envelope %s stored twice on B's mimi.in (stream seq %d and %d)", s.env.ID, prev, s.seq)
				}
				byID[s.env.ID] = s.seq
				if prev, ok := byContent[string(s.env.Content)]; ok {
					t.Errorf("same content stored twice on B's mimi.in (stream seq %d and %d)", prev, s.seq)
				}
				byContent[string(s.env.Content)] = s.seq
			case <-deadline:
				return
			}
		}
	}
	// All stored messages are there already: read until 30 came, then a short while more to
	// catch any extra copy.
	deadline := time.Now().Add(30 * time.Second)
	for len(bySeq) < total && time.Now().Before(deadline) {
		collect(100 * time.Millisecond)
	}
	collect(time.Second)
	if len(bySeq) != total {
		t.Errorf("B's mimi.in holds %d messages, want %d", len(bySeq), total)
	}
	for i, m := range sent {
		if _, ok := byContent[string(m.Content)]; !ok {
			t.Errorf("message %d (%q) missing from B's mimi.in", i, fmt.Sprintf("stream %d", i))
		}
	}
}
