package xmpp

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/bridges"
	"github.com/mimi-gateway/mimi-gateway/bridges/servertest"
	"github.com/mimi-gateway/mimi-gateway/core/content"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// TestProsodyRestart restarts Prosody in the middle of a conversation: the components reconnect
// with backoff, a MIMI message sent while the server was down arrives after the restart, and a
// message the client sends again with the same ID is not published twice.
func TestProsodyRestart(t *testing.T) {
	e := newEnv(t)
	alice := dialClient(t, e.p, "alice", "phone")
	joinRoom(t, alice, ward7, "Alice")
	alice.send(`<message to='` + ward7 + `' type='groupchat' id='before'><body>vor dem Neustart</body></message>`)
	e.out.wait(t, "first message", func(x *event.Envelope) bool { return x.Origin.Event == "before" })
	alice.expect("reflection", and(named("message"), bodyIs("vor dem Neustart")))

	e.p.Stop(t)
	waitFor(t, 10*time.Second, "adapter to notice the disconnect", func() bool { return e.a.Ready(t.Context()) != nil })

	// While XMPP is down, a MIMI message waits on the bus (the handler fails, the bus redelivers).
	bobB := &content.Builder{SenderURI: string(testBob), RoomURI: string(ward7URI)}
	bm, _ := bobB.Text("während des Neustarts")
	in, _ := mimiEnv(t, event.KindMessage, ward7URI, testBob, bm)
	e.publishIn(in)

	e.p.Restart(t)
	waitFor(t, 15*time.Second, "both components to reconnect", func() bool {
		u, r := e.a.Connects()
		return u >= 2 && r >= 2 && e.a.Ready(t.Context()) == nil
	})

	alice2 := dialClient(t, e.p, "alice", "phone")
	joinRoom(t, alice2, ward7, "Alice")
	alice2.expect("bob's message sent during the restart", and(named("message"), from(ward7+"/"+bobNickMU), bodyIs("während des Neustarts")))

	// The client resends its last message (as clients with stream management do), then a new one.
	alice2.send(`<message to='` + ward7 + `' type='groupchat' id='before'><body>vor dem Neustart</body></message>`)
	alice2.send(`<message to='` + ward7 + `' type='groupchat' id='after'><body>nach dem Neustart</body></message>`)
	e.out.wait(t, "message after the restart", func(x *event.Envelope) bool { return x.Origin.Event == "after" })
	// The resent stanza is acknowledged to its sender only, as its original reflection.
	alice2.expect("reflection of the resent message", and(named("message"), bodyIs("vor dem Neustart")))

	// Both stanzas are handled in order by the room's worker, so the duplicate would be on the
	// bus before "after" if it had been published.
	if n := e.pub.onBus.count(func(x *event.Envelope) bool { return x.Kind == event.KindMessage && x.Origin.Event == "before" }); n != 1 {
		t.Fatalf("the first message was published %d times", n)
	}
	if n := e.out.count(isKind(event.KindMessage)); n != 2 {
		t.Fatalf("%d messages on the bus, want 2", n)
	}
	if n := e.out.count(isKind(event.KindMembership)); n != 1 {
		t.Fatalf("%d membership envelopes, want 1: rejoining after a restart must not churn membership", n)
	}
}

// TestAdapterRestart restarts the gateway's adapter (same database and bus) while a user stays
// joined: occupants and ID mappings survive, MIMI messages still reach the user, and a stanza
// resent after the restart is not published twice.
func TestAdapterRestart(t *testing.T) {
	e := newEnv(t)
	alice := dialClient(t, e.p, "alice", "phone")
	joinRoom(t, alice, ward7, "Alice")
	alice.send(`<message to='` + ward7 + `' type='groupchat' id='a1'><body>eins</body></message>`)
	e.out.wait(t, "first message", func(x *event.Envelope) bool { return x.Origin.Event == "a1" })

	ctx := t.Context()
	// Shutdown order: the bus consumer first, then the adapter.
	if err := e.inSub.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.a.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	a2, err := New(ctx, e.cfg, bridges.Deps{Store: e.st, Bus: e.pub, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := a2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a2.Stop(context.Background()) })
	// The old component connections may linger for a moment on the server (conflict): the new
	// supervisor retries until it gets them.
	wctx, cancel := context.WithTimeout(ctx, servertest.Scale(15*time.Second))
	defer cancel()
	if err := a2.WaitConnected(wctx); err != nil {
		t.Fatal(err)
	}
	sub, err := bridges.Run(ctx, e.bus, "xmpp-test", a2, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Stop(context.Background()) })

	bobB := &content.Builder{SenderURI: string(testBob), RoomURI: string(ward7URI)}
	bm, _ := bobB.Text("nach dem Neustart des Gateways")
	in, _ := mimiEnv(t, event.KindMessage, ward7URI, testBob, bm)
	e.publishIn(in)
	alice.expect("bob's message without rejoining", and(named("message"), bodyIs("nach dem Neustart des Gateways")))

	alice.send(`<message to='` + ward7 + `' type='groupchat' id='a1'><body>eins</body></message>`)
	alice.send(`<message to='` + ward7 + `' type='groupchat' id='a2'><body>zwei</body></message>`)
	e.out.wait(t, "second message", func(x *event.Envelope) bool { return x.Origin.Event == "a2" })
	if n := e.pub.onBus.count(func(x *event.Envelope) bool { return x.Origin.Event == "a1" }); n != 1 {
		t.Fatalf("a1 published %d times", n)
	}
}

// TestStopPublishesQueued: stanzas read from the server but still queued for their worker when
// the adapter stops are published before Stop returns, in order (the server does not send them
// again). The worker is held busy by a job of the gateway's own until Stop has disconnected the
// components.
func TestStopPublishesQueued(t *testing.T) {
	e := newEnvWith(t, func(c *Config) { c.Workers = new(1) })
	alice := dialClient(t, e.p, "alice", "phone")
	joinRoom(t, alice, ward7, "Alice")
	release, busy := make(chan struct{}), make(chan struct{})
	e.a.enqueue(ward7, job{fn: func(context.Context) { close(busy); <-release }})
	<-busy
	ids := []string{"q1", "q2", "q3"}
	for _, id := range ids {
		alice.send(`<message to='` + ward7 + `' type='groupchat' id='` + id + `'><body>` + id + `</body></message>`)
	}
	waitFor(t, 10*time.Second, "the three stanzas queued", func() bool { return len(e.a.queues[0]) == len(ids) })

	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), servertest.Scale(20*time.Second))
		defer cancel()
		stopped <- e.a.Stop(ctx)
	}()
	waitFor(t, 10*time.Second, "the components to disconnect", func() bool { return e.a.Ready(t.Context()) != nil })
	close(release)
	if err := <-stopped; err != nil {
		t.Fatalf("stop: %v", err)
	}
	var got []string
	for _, x := range e.pub.onBus.all() {
		if x.Kind == event.KindMessage {
			got = append(got, string(x.Origin.Event))
		}
	}
	if !slices.Equal(got, ids) {
		t.Errorf("messages on the bus when Stop returned: %v, want %v", got, ids)
	}
}
