package bridgetest

import (
	"bytes"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/content"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// Fixture is an adapter under test, started and consuming its mimi.in subjects, with a MIMI room
// bridged to a native room in which a local user reads and writes.
type Fixture struct {
	// Room is the MIMI room; Local is the network's user in it (as MIMI names her); Remote is a
	// partner's user who writes from the MIMI side.
	Room          event.RoomURI
	Local, Remote event.UserURI
	// In publishes a MIMI → network envelope for the adapter (mimi.in.<network>).
	In func(t testing.TB, env *event.Envelope)
	// Out waits for the network → MIMI envelope of the native event with that ID.
	Out func(t testing.TB, native string) *event.Envelope
	// Native acts and looks as the local user.
	Native Native
}

// Native is the local user's side of the network.
type Native interface {
	// Send writes a text message, in reply to the native message replyTo if it is set; Edit
	// corrects, React reacts to and Delete deletes a native message. Each returns the native ID
	// of the event it sent (the ID Out finds its envelope by).
	Send(t testing.TB, text, replyTo string) string
	Edit(t testing.TB, target, text string) string
	React(t testing.TB, target, key string) string
	Delete(t testing.TB, target string) string
	// Expect waits until the local user sees an event of Remote like want and returns the native
	// ID under which she can refer to it. A Target compares with the IDs Send and Expect return.
	Expect(t testing.TB, want Seen) string
}

// Seen is what the local user sees: a message (Target: the message it replies to, if any), an
// edit (the edited message, with its new Text), a reaction (Text is the key) or a delete.
type Seen struct {
	Kind   event.Kind
	Text   string
	Target string
}

func (s Seen) String() string { return fmt.Sprintf("%s %q on %q", s.Kind, s.Text, s.Target) }

var seq atomic.Int64

// Conformance runs the shared adapter tests: text, reply, edit, reaction and delete, from MIMI
// to the network and from the network to MIMI, with the references between them. An adapter
// passes when its Fixture does.
func Conformance(t *testing.T, f Fixture) {
	n := f.Native
	// Network → MIMI: a text.
	aID := n.Send(t, "hello from the network", "")
	a := f.Out(t, aID)
	check(t, a, event.KindMessage, f.Local, "hello from the network")

	// MIMI → network: a reply to it.
	b, bMID := f.mimi(t, event.KindMessage, func(bl *content.Builder) (*content.Message, error) {
		return bl.New(content.PlainText("hello from MIMI"), content.InReplyTo(mid(a)))
	})
	f.In(t, b)
	bID := n.Expect(t, Seen{Kind: event.KindMessage, Text: "hello from MIMI", Target: aID})

	// Network → MIMI: a reply to that.
	cID := n.Send(t, "a reply", bID)
	c := check(t, f.Out(t, cID), event.KindMessage, f.Local, "a reply")
	if c.InReplyTo == nil || *c.InReplyTo != bMID {
		t.Fatalf("reply: in reply to %v, want %x", c.InReplyTo, bMID)
	}

	// Edits both ways.
	e, _ := f.mimi(t, event.KindEdit, func(bl *content.Builder) (*content.Message, error) {
		return bl.Edit(bMID, content.PlainText("hello again from MIMI"))
	})
	f.In(t, e)
	n.Expect(t, Seen{Kind: event.KindEdit, Text: "hello again from MIMI", Target: bID})
	eID := n.Edit(t, aID, "hello again from the network")
	ed := check(t, f.Out(t, eID), event.KindEdit, f.Local, "hello again from the network")
	if ed.Replaces == nil || *ed.Replaces != mid(a) {
		t.Fatalf("edit: replaces %v, want %x", ed.Replaces, mid(a))
	}

	// Reactions both ways.
	r, _ := f.mimi(t, event.KindReaction, func(bl *content.Builder) (*content.Message, error) { return bl.Reaction(mid(a), "👍") })
	f.In(t, r)
	n.Expect(t, Seen{Kind: event.KindReaction, Text: "👍", Target: aID})
	rID := n.React(t, bID, "❤️")
	rm := check(t, f.Out(t, rID), event.KindReaction, f.Local, "")
	if !rm.IsReaction() || rm.InReplyTo == nil || *rm.InReplyTo != bMID || text(rm) != "❤️" {
		t.Fatalf("reaction: %q in reply to %v, want ❤️ on %x", text(rm), rm.InReplyTo, bMID)
	}

	// Deletes both ways.
	d, _ := f.mimi(t, event.KindDelete, func(bl *content.Builder) (*content.Message, error) { return bl.Delete(bMID) })
	f.In(t, d)
	n.Expect(t, Seen{Kind: event.KindDelete, Target: bID})
	dID := n.Delete(t, aID)
	dm := check(t, f.Out(t, dID), event.KindDelete, f.Local, "")
	if dm.Replaces == nil || *dm.Replaces != mid(a) {
		t.Fatalf("delete: replaces %v, want %x", dm.Replaces, mid(a))
	}
}

// mimi builds a MIMI → network envelope of Remote, as the endpoint publishes it.
func (f Fixture) mimi(t testing.TB, kind event.Kind, build func(*content.Builder) (*content.Message, error)) (*event.Envelope, content.MessageID) {
	t.Helper()
	n := seq.Add(1)
	bl := &content.Builder{SenderURI: string(f.Remote), RoomURI: string(f.Room), Rand: bytes.NewReader(bytes.Repeat([]byte{byte(n)}, 64))}
	msg, err := build(bl)
	if err != nil {
		t.Fatal(err)
	}
	data, id, err := msg.EncodeWithID(content.DefaultIDVersion)
	if err != nil {
		t.Fatal(err)
	}
	return &event.Envelope{ID: event.EventID(fmt.Sprintf("mimi:conformance-%d-%d", time.Now().UnixNano(), n)), Kind: kind, Room: f.Room,
		Sender: f.Remote, Content: data, MessageID: id[:], Timestamp: time.Now().UTC().Truncate(time.Millisecond),
		Origin: event.Origin{Network: event.NetworkMIMI}}, id
}

// check decodes env and checks its kind, room-independent sender and (if want is set) text.
func check(t testing.TB, env *event.Envelope, kind event.Kind, sender event.UserURI, want string) *content.Message {
	t.Helper()
	if env.Kind != kind || env.Sender != sender {
		t.Fatalf("envelope %s: kind %s from %s, want %s from %s", env.ID, env.Kind, env.Sender, kind, sender)
	}
	msg, err := content.Decode(env.Content)
	if err != nil {
		t.Fatalf("envelope %s: %v", env.ID, err)
	}
	if want != "" && text(msg) != want {
		t.Fatalf("envelope %s: text %q, want %q", env.ID, text(msg), want)
	}
	return msg
}

func text(msg *content.Message) string { return plain(msg) }

func mid(env *event.Envelope) content.MessageID {
	var id content.MessageID
	copy(id[:], env.MessageID)
	return id
}
