package xmpp

import (
	"fmt"
	"testing"

	"github.com/mimi-gateway/mimi-gateway/core/content"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

func BenchmarkEscape(b *testing.B) {
	for b.Loop() {
		e, _ := Escape("dr.o'neil@clinic-b.example")
		_ = Unescape(e)
	}
}

func BenchmarkDecodeMessageStanza(b *testing.B) {
	s := stanzaSeeds[1]
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		var m inMessage
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
