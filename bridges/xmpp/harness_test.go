package xmpp

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/bridges"
	"github.com/mimi-gateway/mimi-gateway/bridges/servertest"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/prosodytest"
	"github.com/mimi-gateway/mimi-gateway/core/bus"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// The integration tests start their own Prosody (installed by .ci/install-prosody) on random
// loopback ports with a configuration in t.TempDir(), an embedded NATS bus and a SQLite store,
// and talk to it with a raw c2s client. Without Prosody they fail and name the install script.

const (
	testDomain    = "localhost"
	testUsers     = "mimi.localhost"
	testRooms     = "rooms.localhost"
	testSecretU   = "users-secret"
	testSecretR   = "rooms-secret"
	testPartner   = event.Domain("clinic-b.example")
	testBob       = event.UserURI("mimi://clinic-b.example/u/bob")
	testBobPuppet = `bob\40clinic-b.example@mimi.localhost`
)

// startProsody starts Prosody with the two component domains. Users alice, carol and mallory
// (password "pw") exist.
func startProsody(t testing.TB) *prosodytest.Server {
	t.Helper()
	return prosodytest.Start(t, prosodytest.Config{
		Domain:     testDomain,
		Components: []prosodytest.Component{{Domain: testUsers, Secret: testSecretU}, {Domain: testRooms, Secret: testSecretR}},
		Users:      map[string]string{"alice": "pw", "carol": "pw", "mallory": "pw"},
	})
}

// patience is how long the tests wait for an answer of Prosody or the adapter: 10 s on a quiet
// machine, scaled for a loaded one (servertest.Scale).
var patience = servertest.Scale(10 * time.Second)

// waitFor polls cond until it holds or the timeout (scaled for the machine, servertest.Scale)
// passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	timeout = servertest.Scale(timeout)
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// node is a generic XML element for assertions.
type node struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Text    string     `xml:",chardata"`
	Nodes   []node     `xml:",any"`
}

func (n *node) attr(name string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == name && (a.Name.Space == "" || a.Name.Space == "xml") {
			return a.Value
		}
	}
	return ""
}

// child returns the first child with the namespace (empty matches any) and local name.
func (n *node) child(space, local string) *node {
	for i := range n.Nodes {
		c := &n.Nodes[i]
		if c.XMLName.Local == local && (space == "" || c.XMLName.Space == space) {
			return c
		}
	}
	return nil
}

func (n *node) String() string {
	b, _ := xml.Marshal(n)
	return string(b)
}

// client is a minimal c2s client: SASL PLAIN without TLS (loopback test server only), resource
// binding, and raw XML out; stanzas in are collected for expect.
type client struct {
	t    testing.TB
	jid  string // full JID after binding
	conn net.Conn
	mu   sync.Mutex
	buf  []*node
	wake chan struct{}
	done chan struct{}
	// deaf: the client does not answer pings (answering is what client apps do).
	deaf atomic.Bool
}

func dialClient(t testing.TB, p *prosodytest.Server, user, resource string) *client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", p.C2SAddr(), 5*time.Second)
	if err != nil {
		t.Fatalf("dial c2s: %v", err)
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	dec := xml.NewDecoder(r)
	openStream := func() {
		fmt.Fprintf(conn, `<?xml version='1.0'?><stream:stream to='%s' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>`, testDomain)
		for {
			tok, err := dec.Token()
			if err != nil {
				t.Fatalf("read stream header: %v", err)
			}
			if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "stream" {
				break
			}
		}
		var features node
		nextElement(t, dec, &features)
	}
	openStream()
	auth := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00pw"))
	fmt.Fprintf(conn, `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>`, auth)
	var res node
	nextElement(t, dec, &res)
	if res.XMLName.Local != "success" {
		t.Fatalf("SASL for %s failed: %s", user, res.String())
	}
	dec = xml.NewDecoder(r)
	openStream()
	fmt.Fprintf(conn, `<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>%s</resource></bind></iq>`, resource)
	var bound node
	nextElement(t, dec, &bound)
	j := bound.child("", "bind")
	if j == nil || j.child("", "jid") == nil {
		t.Fatalf("bind failed: %s", bound.String())
	}
	c := &client{t: t, jid: j.child("", "jid").Text, conn: conn, wake: make(chan struct{}, 1), done: make(chan struct{})}
	_ = conn.SetDeadline(time.Time{})
	go c.read(dec)
	c.send(`<presence/>`)
	t.Cleanup(c.close)
	return c
}

func nextElement(t testing.TB, dec *xml.Decoder, v *node) {
	t.Helper()
	for {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("read element: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if err := dec.DecodeElement(v, &se); err != nil {
				t.Fatalf("decode element: %v", err)
			}
			return
		}
	}
}

func (c *client) read(dec *xml.Decoder) {
	defer close(c.done)
	for {
		tok, err := dec.Token()
		if err != nil {
			return
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		n := &node{}
		if err := dec.DecodeElement(n, &se); err != nil {
			return
		}
		if n.XMLName.Local == "iq" && n.attr("type") == "get" && n.child("urn:xmpp:ping", "ping") != nil && !c.deaf.Load() {
			// Answer pings, as client apps do (XEP-0199).
			_, _ = fmt.Fprintf(c.conn, `<iq type='result' id='%s' to='%s'/>`, xmlEscape(n.attr("id")), xmlEscape(n.attr("from")))
		}
		c.mu.Lock()
		c.buf = append(c.buf, n)
		c.mu.Unlock()
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

func (c *client) send(raw string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, raw); err != nil {
		c.t.Fatalf("client %s send: %v", c.jid, err)
	}
}

func (c *client) close() {
	_, _ = io.WriteString(c.conn, `</stream:stream>`)
	_ = c.conn.Close()
	<-c.done
}

// expect waits for a stanza matching pred and removes it (and nothing else) from the buffer.
func (c *client) expect(what string, pred func(n *node) bool) *node {
	c.t.Helper()
	deadline := time.Now().Add(patience)
	for {
		c.mu.Lock()
		for i, n := range c.buf {
			if pred(n) {
				c.buf = append(c.buf[:i:i], c.buf[i+1:]...)
				c.mu.Unlock()
				return n
			}
		}
		var seen []string
		for _, n := range c.buf {
			seen = append(seen, n.String())
		}
		c.mu.Unlock()
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: timed out waiting for %s; received:\n%s", c.jid, what, strings.Join(seen, "\n"))
		}
		select {
		case <-c.wake:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// none asserts that no buffered stanza matches pred.
func (c *client) none(what string, pred func(n *node) bool) {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.buf {
		if pred(n) {
			c.t.Fatalf("%s: unexpected %s: %s", c.jid, what, n.String())
		}
	}
}

// collector records the envelopes the adapter published (mimi.out), in order.
type collector struct {
	mu   sync.Mutex
	envs []*event.Envelope
}

func (c *collector) add(e *event.Envelope) {
	c.mu.Lock()
	c.envs = append(c.envs, e)
	c.mu.Unlock()
}

func (c *collector) all() []*event.Envelope {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*event.Envelope(nil), c.envs...)
}

// wait returns the first envelope (after skipping n matches) that matches pred.
func (c *collector) wait(t testing.TB, what string, pred func(e *event.Envelope) bool) *event.Envelope {
	t.Helper()
	var got *event.Envelope
	waitFor(t, 10*time.Second, what, func() bool {
		for _, e := range c.all() {
			if pred(e) {
				got = e
				return true
			}
		}
		return false
	})
	return got
}

func (c *collector) count(pred func(e *event.Envelope) bool) int {
	n := 0
	for _, e := range c.all() {
		if pred(e) {
			n++
		}
	}
	return n
}

// recordingPublisher wraps the real bus and records each envelope once PublishOut returned: what
// is recorded is on the bus.
type recordingPublisher struct {
	bus.Publisher
	onBus collector
	// failBatches is the number of batches to fail after publishing them (a failure between
	// the bus and the store); failedBatches counts them.
	failBatches, failedBatches atomic.Int32
}

func (r *recordingPublisher) PublishOut(ctx context.Context, env *event.Envelope) error {
	if err := r.Publisher.PublishOut(ctx, env); err != nil {
		return err
	}
	r.onBus.add(env)
	return nil
}

// PublishOutBatch publishes envs as one batch of the real bus (the embedded bus is a
// bus.OutBatchPublisher) and records them once it returned.
func (r *recordingPublisher) PublishOutBatch(ctx context.Context, envs []*event.Envelope) error {
	if err := r.Publisher.(bus.OutBatchPublisher).PublishOutBatch(ctx, envs); err != nil {
		return err
	}
	for _, env := range envs {
		r.onBus.add(env)
	}
	if r.failBatches.Add(-1) >= 0 {
		r.failedBatches.Add(1)
		return fmt.Errorf("simulated failure after publishing a batch of %d", len(envs))
	}
	return nil
}

// env is one integration test environment: Prosody, bus, store, adapter, and the consumer that
// plays the MIMI endpoint.
type env struct {
	t       testing.TB
	p       *prosodytest.Server
	bus     *bus.NATS
	st      *store.Store
	a       *Adapter
	pub     *recordingPublisher
	out     collector // envelopes consumed from mimi.out
	cfg     Config
	dataDir string
	extra   map[string]*client
	inSub   bus.Subscription // the adapter's mimi.in consumer
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("XMPP_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func newEnv(t testing.TB) *env { t.Helper(); return newEnvWith(t, nil) }

// newEnvWith is newEnv with a change to the adapter's configuration and extra adapter options.
func newEnvWith(t testing.TB, mut func(*Config), opts ...Option) *env {
	t.Helper()
	return newEnvOn(t, startProsody(t), mut, opts...)
}

// newEnvOn is newEnvWith on a Prosody the test started.
func newEnvOn(t testing.TB, p *prosodytest.Server, mut func(*Config), opts ...Option) *env {
	t.Helper()
	e := &env{t: t, p: p, dataDir: t.TempDir()}
	ctx := t.Context()
	var err error
	e.bus, err = bus.Open(ctx, bus.Config{Mode: bus.ModeEmbedded, Embedded: bus.EmbeddedConfig{StoreDir: filepath.Join(e.dataDir, "nats")},
		AckWait: 2 * time.Second, MaxDeliveries: 20, Backoff: []time.Duration{100 * time.Millisecond, 300 * time.Millisecond, time.Second},
		Partitions: 2, ReadyTimeout: 15 * time.Second}, testLogger(t))
	if err != nil {
		t.Fatalf("bus: %v", err)
	}
	t.Cleanup(func() { _ = e.bus.Close(context.Background()) })
	e.st, err = store.Open(ctx, store.Config{Path: filepath.Join(e.dataDir, "gw.db")})
	if err != nil {
		t.Fatalf("store: %v", err)
	}
	t.Cleanup(func() { _ = e.st.Close() })
	sub, err := e.bus.ConsumeOut(ctx, "test-endpoint", func(_ context.Context, d bus.Delivery) error {
		e.out.add(d.Envelope)
		return nil
	})
	if err != nil {
		t.Fatalf("consume out: %v", err)
	}
	t.Cleanup(func() { _ = sub.Stop(context.Background()) })
	e.cfg = Config{
		Server: e.p.ComponentAddr(), Domain: testDomain,
		Users: ComponentConfig{Domain: testUsers, Secret: testSecretU}, Rooms: ComponentConfig{Domain: testRooms, Secret: testSecretR},
		ReconnectMin: 50 * time.Millisecond, ReconnectMax: 300 * time.Millisecond, DialTimeout: 3 * time.Second, Workers: new(2),
	}
	if mut != nil {
		mut(&e.cfg)
	}
	e.pub = &recordingPublisher{Publisher: e.bus}
	e.a, err = New(ctx, e.cfg, bridges.Deps{Store: e.st, Bus: e.pub, Logger: testLogger(t)}, opts...)
	if err != nil {
		t.Fatalf("adapter: %v", err)
	}
	if err := e.a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.a.Stop(sctx); err != nil {
			t.Errorf("stop adapter: %v", err)
		}
	})
	wctx, cancel := context.WithTimeout(ctx, patience)
	defer cancel()
	if err := e.a.WaitConnected(wctx); err != nil {
		t.Fatalf("%v\nprosody log:\n%s", err, e.p.LogTail())
	}
	insub, err := bridges.Run(ctx, e.bus, "xmpp-test", e.a, testLogger(t))
	if err != nil {
		t.Fatalf("run adapter consumer: %v", err)
	}
	t.Cleanup(func() { _ = insub.Stop(context.Background()) })
	e.inSub = insub
	return e
}

// publishIn plays the MIMI endpoint: it publishes a MIMI → XMPP envelope for the adapter.
func (e *env) publishIn(env *event.Envelope) {
	e.t.Helper()
	if err := e.bus.PublishIn(e.t.Context(), event.NetworkXMPP, env); err != nil {
		e.t.Fatalf("publish in: %v", err)
	}
}

// take removes and returns every buffered stanza matching pred.
func (c *client) take(pred func(n *node) bool) []*node {
	c.mu.Lock()
	defer c.mu.Unlock()
	var got, rest []*node
	for _, n := range c.buf {
		if pred(n) {
			got = append(got, n)
		} else {
			rest = append(rest, n)
		}
	}
	c.buf = rest
	return got
}

// withAssets gives the adapter an asset store (bridges.Deps.Assets).
func withAssets(s bridges.AssetStore) Option { return func(a *Adapter) { a.assets = s } }
