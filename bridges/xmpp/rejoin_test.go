package xmpp

import (
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/xstanza"
	"github.com/mimi-gateway/mimi-gateway/core/content"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// TestRejoinAfterProsodyKill: Prosody is killed and restarted while bob (MIMI) keeps writing
// into ward7. Alice's client comes back at once and sends one join, as a plain client does, which
// Prosody bounces while the gateway's rooms component is still reconnecting (its backoff is
// 3 s here). The gateway recovers by itself: it sends her the join sequence again (self-presence,
// then the subject) once her new session answers its ping, or, for a client that does not answer
// pings, once she writes; it re-sends bob's messages that bounced from her gone session (every one
// of them reaches her, each once) and takes her message instead of refusing it as not joined;
// membership does not churn. The gateway reaches Prosody's component port through a gate that
// the test keeps shut from the kill until her join has bounced, so that the component cannot
// reconnect first (on a loaded machine it did, and her join was answered by the gateway).
func TestRejoinAfterProsodyKill(t *testing.T) {
	for _, tc := range []struct {
		name string
		deaf bool // the client does not answer pings: it writes before it is rejoined
	}{
		{"client answers pings", false},
		{"client writes first", true},
	} {
		t.Run(tc.name, func(t *testing.T) { rejoinAfterKill(t, tc.deaf) })
	}
}

func rejoinAfterKill(t *testing.T, deaf bool) {
	p := startProsody(t)
	g := newGate(t, p.ComponentAddr())
	e := newEnvOn(t, p, func(c *Config) {
		c.Server = g.addr()
		c.ReconnectMin, c.ReconnectMax = 3*time.Second, 3*time.Second
	})
	alice := dialClient(t, e.p, "alice", "phone")
	joinRoom(t, alice, ward7, "Alice")

	// Bob writes every 200 ms until stopped; sent lists his texts.
	var (
		mu   sync.Mutex
		sent []string
	)
	stop := make(chan struct{})
	done := make(chan struct{})
	var stopOnce sync.Once
	halt := func() { stopOnce.Do(func() { close(stop) }); <-done }
	t.Cleanup(halt)
	go func() {
		defer close(done)
		b := &content.Builder{SenderURI: string(testBob), RoomURI: string(ward7URI)}
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			text := fmt.Sprintf("Bob %03d", i)
			m, err := b.Text(text)
			if err != nil {
				t.Error(err)
				return
			}
			in, _ := mimiEnv(t, event.KindMessage, ward7URI, testBob, m)
			if err := e.bus.PublishIn(t.Context(), event.NetworkXMPP, in); err != nil {
				if t.Context().Err() == nil {
					t.Error(err)
				}
				return
			}
			mu.Lock()
			sent = append(sent, text)
			mu.Unlock()
		}
	}()
	waitFor(t, 10*time.Second, "bob's first message", func() bool { return len(bobTexts([]*client{alice})) > 0 })

	clients := []*client{alice}
	lastAt := time.Now().Add(-2 * time.Second) // about when her last message before the kill came
	g.shut()
	e.p.Kill(t)
	e.p.Restart(t)
	c := dialClient(t, e.p, "alice", "phone")
	c.deaf.Store(deaf)
	clients = append(clients, c)
	// As clients do, it asks for the history since the last message it received.
	c.send(`<presence to='` + ward7 + `/Alice' id='rejoin'><x xmlns='http://jabber.org/protocol/muc'><history since='` +
		xstanza.Stamp(lastAt) + `'/></x></presence>`)
	// Prosody bounces the join: the component is away (the gate is shut).
	first := c.expect("an answer to the join", and(named("presence"), from(ward7+"/Alice")))
	if first.attr("type") != "error" {
		t.Fatalf("the join after the restart was answered, not bounced: %s", first)
	}
	alice = c
	g.open()
	if deaf {
		// She writes although her join bounced (the client thinks it is still in the room).
		waitFor(t, 15*time.Second, "the rooms component to reconnect", func() bool { return e.a.Ready(t.Context()) == nil })
		alice.send(`<message to='` + ward7 + `' type='groupchat' id='nachher'><body>wieder da</body></message>`)
	}
	// She ends up joined: the gateway's self-presence and the subject.
	alice.expect("self-presence sent by the gateway", and(named("presence"), from(ward7+"/Alice"), isSelfPresence))
	alice.expect("subject", and(named("message"), from(ward7), hasChild("", "subject")))
	if !deaf {
		alice.send(`<message to='` + ward7 + `' type='groupchat' id='nachher'><body>wieder da</body></message>`)
	}

	// Her message is taken (not refused as not joined), reflected and published.
	alice.none("refusal of her message", isError("nachher"))
	alice.expect("reflection of her message", and(named("message"), from(ward7+"/Alice"), bodyIs("wieder da")))
	alice.none("refusal of her message", isError("nachher"))
	e.out.wait(t, "her message on the bus", func(x *event.Envelope) bool { return x.Origin.Event == "nachher" })

	// Every one of bob's messages reached her, each once, over her sessions (a message that
	// arrives again carries the same stanza-id and is shown once, as by a client).
	halt()
	mu.Lock()
	want := append([]string(nil), sent...)
	mu.Unlock()
	var seen map[string]int
	waitFor(t, 20*time.Second, "all of bob's messages at alice's", func() bool {
		seen = bobTexts(clients)
		for _, w := range want {
			if seen[w] == 0 {
				return false
			}
		}
		return true
	})
	for _, w := range want {
		if seen[w] != 1 {
			t.Logf("bob's messages at alice's: %v", seen)
			t.Errorf("%q reached alice %d times", w, seen[w])
		}
	}
	if n := e.out.count(isKind(event.KindMembership)); n != 1 {
		t.Fatalf("%d membership envelopes, want 1: a rejoin must not churn membership", n)
	}
}

// TestAbsentOccupantRemoved: alice's session ends with Prosody and does not come back; carol
// rejoins. Prosody was down (it refused the component's connections), so the sessions of before
// are gone and both are absent until they answer; carol does, by joining. Alice's session does not
// answer the room's pings within the window (2 s here, 2 min by default), and she is removed:
// carol, who meanwhile gets bob's message, sees her leave, and she is no longer an occupant.
func TestAbsentOccupantRemoved(t *testing.T) {
	e := newEnvWith(t, func(c *Config) { c.ReconnectMin, c.ReconnectMax = 100*time.Millisecond, 100*time.Millisecond },
		func(a *Adapter) { a.rec.Window = 2 * time.Second })
	alice := dialClient(t, e.p, "alice", "phone")
	joinRoom(t, alice, ward7, "Alice")
	carol := dialClient(t, e.p, "carol", "laptop")
	joinRoom(t, carol, ward7, "Carol")
	aliceFull := alice.jid

	e.p.Kill(t)
	e.p.Restart(t)
	waitFor(t, 15*time.Second, "the components to reconnect", func() bool { return e.a.Ready(t.Context()) == nil })
	carol = dialClient(t, e.p, "carol", "laptop")
	waitFor(t, 15*time.Second, "carol back in ward7", func() bool {
		carol.send(`<presence to='` + ward7 + `/Carol'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x></presence>`)
		answer := carol.expect("an answer to the join", and(named("presence"), from(ward7+"/Carol")))
		return answer.attr("type") != "error"
	})

	b := &content.Builder{SenderURI: string(testBob), RoomURI: string(ward7URI)}
	m, err := b.Text("an alle")
	if err != nil {
		t.Fatal(err)
	}
	in, _ := mimiEnv(t, event.KindMessage, ward7URI, testBob, m)
	e.publishIn(in)
	carol.expect("bob's message", and(named("message"), bodyIs("an alle")))
	carol.expect("alice leaving", and(named("presence"), from(ward7+"/Alice"), func(n *node) bool { return n.attr("type") == "unavailable" }))
	if _, ok, err := e.a.db.occ().JoinedAt(t.Context(), ward7URI, aliceFull); err != nil || ok {
		t.Fatalf("alice (%s) is still an occupant (%v)", aliceFull, err)
	}
}

// isSelfPresence matches an occupant's own presence (status 110).
func isSelfPresence(n *node) bool {
	x := n.child(xstanza.NSMUCUser, "x")
	if x == nil || n.attr("type") != "" {
		return false
	}
	for _, s := range x.Nodes {
		if s.XMLName.Local == "status" && s.attr("code") == "110" {
			return true
		}
	}
	return false
}

// bobTexts counts bob's messages in ward7 that the clients received and did not consume, by text;
// a message that arrives again (the same stanza-id) counts once, as a client shows it once.
func bobTexts(clients []*client) map[string]int {
	seen := map[string]int{}
	ids := map[string]bool{}
	for _, c := range clients {
		c.mu.Lock()
		buf := append([]*node(nil), c.buf...)
		c.mu.Unlock()
		for _, n := range buf {
			b := n.child("", "body")
			if n.XMLName.Local != "message" || n.attr("from") != ward7+"/"+bobNickMU || b == nil {
				continue
			}
			sid := n.child(xstanza.NSSID, "stanza-id")
			if sid == nil || ids[sid.attr("id")] {
				continue
			}
			ids[sid.attr("id")] = true
			seen[b.Text]++
		}
	}
	return seen
}

// gate is a loopback TCP forwarder to a server's port that the test can shut: while shut, it
// closes every connection it accepts at once, as a server that is away would.
type gate struct {
	l      net.Listener
	to     string
	closed atomic.Bool
}

// newGate starts an open gate to the address to; it stops with the test.
func newGate(t testing.TB, to string) *gate {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{l: l, to: to}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			go g.forward(in)
		}
	}()
	t.Cleanup(func() { _ = l.Close(); <-done })
	return g
}

func (g *gate) addr() string { return g.l.Addr().String() }
func (g *gate) shut()        { g.closed.Store(true) }
func (g *gate) open()        { g.closed.Store(false) }

// forward copies both ways between in and a new connection to the server until either ends.
func (g *gate) forward(in net.Conn) {
	defer in.Close()
	if g.closed.Load() {
		return
	}
	out, err := net.Dial("tcp", g.to)
	if err != nil {
		return
	}
	defer out.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(out, in); done <- struct{}{} }()
	go func() { _, _ = io.Copy(in, out); done <- struct{}{} }()
	<-done
}
