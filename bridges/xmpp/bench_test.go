package xmpp

import (
	"fmt"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/bridges/bridgetest"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/jidescape"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/xstanza"
	"github.com/mimi-gateway/mimi-gateway/core/content"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

func BenchmarkEscape(b *testing.B) {
	for b.Loop() {
		e, _ := jidescape.Escape("dr.o'neil@clinic-b.example")
		_ = jidescape.Unescape(e)
	}
}

func BenchmarkDecodeMessageStanza(b *testing.B) {
	s := stanzaSeeds[1]
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		var m xstanza.InMessage
		if err := decodeFromString(s, &m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMUCMessageToBus measures one groupchat message from a real client through Prosody and
// the adapter onto the bus (PublishOut returned) and back as the reflection, one at a time.
func BenchmarkMUCMessageToBus(b *testing.B) {
	e := newEnv(b)
	alice := dialClient(b, e.p, "alice", "bench")
	joinRoomTB(b, alice, ward7, "Alice")
	i := 0
	for b.Loop() {
		i++
		body := fmt.Sprintf("m%d", i)
		alice.send(`<message to='` + ward7 + `' type='groupchat' id='` + body + `'><body>` + body + `</body></message>`)
		alice.expect("reflection", and(named("message"), bodyIs(body)))
	}
}

// BenchmarkMIMIToMUC measures one MIMI message from the bus through the adapter and Prosody to a
// real client in the room, one at a time.
func BenchmarkMIMIToMUC(b *testing.B) {
	e := newEnv(b)
	alice := dialClient(b, e.p, "alice", "bench")
	joinRoomTB(b, alice, ward7, "Alice")
	bobB := &content.Builder{SenderURI: string(testBob), RoomURI: string(ward7URI)}
	i := 0
	for b.Loop() {
		i++
		body := fmt.Sprintf("b%d", i)
		m, _ := bobB.Text(body)
		data, id, _ := m.EncodeWithID(content.DefaultIDVersion)
		e.publishIn(&event.Envelope{ID: event.EventID(fmt.Sprintf("mimi:bench-%d", i)), Kind: event.KindMessage, Room: ward7URI, Sender: testBob,
			Content: data, MessageID: id[:], Origin: event.Origin{Network: event.NetworkMIMI}})
		alice.expect("bob's message", and(named("message"), bodyIs(body)))
	}
}

func joinRoomTB(tb testing.TB, c *client, room, nick string) {
	tb.Helper()
	c.send(fmt.Sprintf(`<presence to='%s/%s'><x xmlns='http://jabber.org/protocol/muc'/></presence>`, room, nick))
	c.expect("subject", and(named("message"), from(room), hasChild("", "subject")))
}

// BenchmarkMUCIngress measures groupchat messages from real clients through Prosody and the
// adapter onto the bus with pipelined senders: alice and carol each send their half of b.N
// messages back to back into a room of their own (each room on its own worker), without waiting
// for anything; the clock stops when the bus holds all of them (each stored by JetStream, its ID
// mappings and the room's history written before the adapter went on). It reports msgs/s,
// cpu-ms/msg (process CPU: adapter, Prosody excluded, embedded NATS included), tx/msg (store
// transactions committed per message) and fsync/msg (the process's fsyncs, where perf events are
// permitted).
func BenchmarkMUCIngress(b *testing.B) {
	e := newEnv(b)
	rooms := []string{"ingress-a@" + testRooms, "ingress-c@" + testRooms}
	var clients []*client
	for i, name := range []string{"alice", "carol"} {
		c := dialClient(b, e.p, name, "bench")
		joinRoomTB(b, c, rooms[i], name)
		clients = append(clients, c)
	}
	count := func() int {
		n := 0
		for _, env := range e.out.all() {
			if env.Kind == event.KindMessage {
				n++
			}
		}
		return n
	}
	before := count()
	b.ResetTimer()
	m := bridgetest.StartMeter(b, e.st)
	for i := range b.N {
		c := clients[i%len(clients)]
		c.send(fmt.Sprintf(`<message to='%s' type='groupchat' id='in%d'><body>ingress %d</body></message>`, rooms[i%len(rooms)], i, i))
	}
	waitFor(b, 10*time.Minute, "every message on the bus", func() bool { return count() >= before+b.N })
	b.StopTimer()
	m.Report(b, b.N)
}
