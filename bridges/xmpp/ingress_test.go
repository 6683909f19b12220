package xmpp

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/xstanza"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// TestIngressBatch: groupchat messages queued together are bridged as one batch, and a failure
// in the middle of it (after the bus stored the batch, before the store recorded it) loses
// nothing and duplicates nothing. The room's worker is held while alice sends 12 messages, so
// all of them are queued when it goes on: they form one batch, whose publishing fails after
// the bus stored it. Alice gets an error for each (none is reflected, so none is acknowledged),
// sends them again with the same IDs, and gets each reflected once; the bus holds each exactly
// once, in order, and the room history has each.
func TestIngressBatch(t *testing.T) {
	e := newEnv(t)
	alice := dialClient(t, e.p, "alice", "phone")
	joinRoom(t, alice, ward7, "Alice")
	const n = 12
	send := func(i int) {
		alice.send(fmt.Sprintf(`<message to='%s' type='groupchat' id='b%d'><body>batch %d</body></message>`, ward7, i, i))
	}

	release := make(chan struct{})
	held := make(chan struct{})
	e.a.enqueue(e.a.queueKey(e.a.rooms, "", ward7), job{fn: func(context.Context) { close(held); <-release }})
	<-held
	e.pub.failBatches.Store(1)
	for i := range n {
		send(i)
	}
	q := e.a.queues[e.a.queueIndex(e.a.queueKey(e.a.rooms, "", ward7))]
	waitFor(t, 10*time.Second, "the messages queued for the room's worker", func() bool { return len(q) == n })
	close(release)
	for i := range n {
		alice.expect(fmt.Sprint("error for b", i), and(named("message"), func(x *node) bool {
			return x.attr("type") == "error" && x.attr("id") == fmt.Sprint("b", i)
		}))
	}
	if got := e.pub.failedBatches.Load(); got != 1 {
		t.Fatalf("%d batches failed, want 1", got)
	}
	alice.none("a reflection of a failed message", and(named("message"), from(ward7+"/Alice")))

	for i := range n {
		send(i)
	}
	for i := range n {
		alice.expect(fmt.Sprint("reflection of b", i), and(named("message"), from(ward7+"/Alice"), bodyIs(fmt.Sprint("batch ", i))))
	}
	// A last message: the room's envelopes reach the bus in order, so once it is there a
	// duplicate of any earlier one would be too.
	alice.send(`<message to='` + ward7 + `' type='groupchat' id='end'><body>end</body></message>`)
	e.out.wait(t, "the last message", func(x *event.Envelope) bool { return x.Origin.Event == "end" })
	// Reflected once its batch is durable, history entry included.
	alice.expect("reflection of the last message", and(named("message"), from(ward7+"/Alice"), bodyIs("end")))
	var order []event.NativeEventID
	for _, x := range e.out.all() {
		if x.Kind == event.KindMessage {
			order = append(order, x.Origin.Event)
		}
	}
	want := []event.NativeEventID{}
	for i := range n {
		want = append(want, event.NativeEventID(fmt.Sprint("b", i)))
	}
	want = append(want, "end")
	if fmt.Sprint(order) != fmt.Sprint(want) {
		t.Fatalf("messages on the bus: %v, want each once in order: %v", order, want)
	}
	hist, err := e.a.hist.Recent(t.Context(), ward7URI, 2*n, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != n+1 {
		t.Fatalf("room history has %d entries, want %d", len(hist), n+1)
	}
}

// TestIngressBatchDirect is TestIngressBatch for 1:1 messages to a puppet: 8 chat messages
// queued together form one batch, which fails after the bus stored it; alice gets an error and
// no delivery receipt for each, sends them again and gets each receipt once; the bus holds each
// message once, in order.
func TestIngressBatchDirect(t *testing.T) {
	e := newEnv(t)
	alice := dialClient(t, e.p, "alice", "phone")
	send := func(id string) {
		alice.send(fmt.Sprintf(`<message to='%s' type='chat' id='%s'><body>%s</body><request xmlns='urn:xmpp:receipts'/></message>`, testBobPuppet, id, id))
	}
	receipt := func(id string) func(n *node) bool {
		return and(named("message"), from(testBobPuppet), func(n *node) bool {
			r := n.child(xstanza.NSReceipts, "received")
			return r != nil && r.attr("id") == id
		})
	}
	send("d-first") // creates the 1:1 room
	alice.expect("receipt of the first message", receipt("d-first"))

	const n = 8
	key := e.a.queueKey(e.a.users, alice.jid, testBobPuppet)
	release := make(chan struct{})
	held := make(chan struct{})
	e.a.enqueue(key, job{fn: func(context.Context) { close(held); <-release }})
	<-held
	e.pub.failBatches.Store(1)
	for i := range n {
		send(fmt.Sprint("d", i))
	}
	q := e.a.queues[e.a.queueIndex(key)]
	waitFor(t, 10*time.Second, "the messages queued for the conversation's worker", func() bool { return len(q) == n })
	close(release)
	for i := range n {
		alice.expect(fmt.Sprint("error for d", i), and(named("message"), func(x *node) bool {
			return x.attr("type") == "error" && x.attr("id") == fmt.Sprint("d", i)
		}))
	}
	if got := e.pub.failedBatches.Load(); got != 1 {
		t.Fatalf("%d batches failed, want 1", got)
	}
	alice.none("a receipt of a failed message", and(named("message"), from(testBobPuppet), hasChild(xstanza.NSReceipts, "received")))

	for i := range n {
		send(fmt.Sprint("d", i))
	}
	for i := range n {
		alice.expect(fmt.Sprint("receipt of d", i), receipt(fmt.Sprint("d", i)))
	}
	send("d-end")
	alice.expect("receipt of the last message", receipt("d-end"))
	e.out.wait(t, "the last message", func(x *event.Envelope) bool { return x.Origin.Event == "d-end" })
	var order []event.NativeEventID
	for _, x := range e.out.all() {
		if x.Kind == event.KindMessage {
			order = append(order, x.Origin.Event)
		}
	}
	want := []event.NativeEventID{"d-first"}
	for i := range n {
		want = append(want, event.NativeEventID(fmt.Sprint("d", i)))
	}
	want = append(want, "d-end")
	if fmt.Sprint(order) != fmt.Sprint(want) {
		t.Fatalf("messages on the bus: %v, want each once in order: %v", order, want)
	}
}
