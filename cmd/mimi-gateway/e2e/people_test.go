package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	neturl "net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/attachment"
	mevent "maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/bridges/matrix"
	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/sendonce"
	gt "github.com/mimi-gateway/mimi-gateway/cmd/mimi-gateway/internal/gatewaytest"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// wait bounds how long one expected thing may take to arrive: generous, since the machine may be
// loaded; the suite polls, so a fast run is not slowed down.
const wait = 60 * time.Second

// person is someone on one organisation's network with a real client.
type person interface {
	// Name is the user's local name (alice).
	Name() string
	// URI is the user's MIMI URI.
	URI() event.UserURI
	// startChat opens a conversation with users of a partner: a 1:1 chat, or a group.
	startChat(t *testing.T, group bool, topic string, peers ...person) chat
	// acceptChat waits for the conversation from started with this user (an invitation; for an
	// XMPP 1:1 chat, its first message, whose text is first) and joins it.
	acceptChat(t *testing.T, from person, group bool, first string) chat
}

// msg is a message as one side sees it: its native ID there and its text. In an XMPP group
// chat a message has two IDs (the sender's message ID and the room's stanza-id); alt is the other.
type msg struct {
	id   string
	alt  string
	text string
}

// is reports whether an ID in a reference names m.
func (m msg) is(ref string) bool { return ref != "" && (ref == m.id || ref == m.alt) }

// chat is one person's view of one conversation.
type chat interface {
	send(t *testing.T, text string) msg
	reply(t *testing.T, to msg, text string) msg
	edit(t *testing.T, m msg, text string)
	react(t *testing.T, to msg, key string)
	del(t *testing.T, m msg)
	sendFile(t *testing.T, name string, data []byte) msg
	markRead(t *testing.T, m msg)

	// waitText waits for a message with the text from the person; it returns it as this side
	// sees it.
	waitText(t *testing.T, from person, text string) msg
	// waitReply waits for a reply with the text to the message (as this side sees it).
	waitReply(t *testing.T, from person, text string, to msg) msg
	waitEdit(t *testing.T, from person, orig msg, text string)
	waitReaction(t *testing.T, from person, to msg, key string)
	waitDeleted(t *testing.T, from person, m msg)
	waitFile(t *testing.T, from person, name string, data []byte) msg
	// waitRead waits for by's read receipt or displayed marker on m; networks without one make
	// it a no-op (hasReadReceipts).
	waitRead(t *testing.T, by person, m msg)
	hasReadReceipts() bool
	// showsDelivered reports whether this view shows that a message reached the peer's client
	// (XEP-0184 in an XMPP 1:1 chat; Matrix has no such receipt).
	showsDelivered() bool
	// sendsDelivered reports whether this side's client says that a message reached it (XMPP:
	// XEP-0184 in a 1:1 chat, an XEP-0333 received marker in a group chat).
	sendsDelivered() bool
	// markDelivered is the client's delivery receipt of a received message (as a client sends
	// it for a message that asks for one).
	markDelivered(t *testing.T, m msg)
	// waitDeliveredBy waits for the peer's delivery receipt of m, relayed from the peer's client
	// (not the gateway's own confirmation that it took the message).
	waitDeliveredBy(t *testing.T, by person, m msg)
	// checkEncrypted fails the test when m, which this side received, did not arrive encrypted
	// in a Matrix room (a no-op where the network has no end-to-end encryption here).
	checkEncrypted(t *testing.T, m msg)
	// waitNotice waits up to timeout for a notice of the gateway containing every string of
	// any (one of the alternatives, e.g. English or German wording).
	waitNotice(t *testing.T, timeout time.Duration, any ...string) time.Time
	// texts returns the texts of messages from the person, in order (for the kill stream).
	texts(from person) []textAt
	// sendStream sends text as a client with an outbox does: it retries (idempotently: the
	// same transaction or stanza ID) until its server accepted it or deadline passes. It is safe
	// to call from a goroutine.
	sendStream(text, key string, deadline time.Time) error
}

// textAt is a received text and when it arrived.
type textAt struct {
	text string
	at   time.Time
}

// ---- Matrix ----

type matrixPerson struct {
	org  *gt.MatrixOrg
	name string
	c    *gt.MatrixClient

	mu       sync.Mutex
	accepted map[id.RoomID]bool
}

func newMatrixPerson(t *testing.T, org *gt.MatrixOrg, name string) *matrixPerson {
	t.Helper()
	return &matrixPerson{org: org, name: name, c: org.User(t, name), accepted: map[id.RoomID]bool{}}
}

func (p *matrixPerson) Name() string { return p.name }
func (p *matrixPerson) URI() event.UserURI {
	return event.NewUserURI(event.Domain(p.org.Domain), p.name)
}

// address is how this Matrix user's homeserver shows a partner's user: a ghost (appservice).
func (p *matrixPerson) ghost(u event.UserURI) id.UserID {
	return matrix.Ghosts{Prefix: "mimi_", Server: p.org.Domain}.UserID(u)
}

func (p *matrixPerson) startChat(t *testing.T, group bool, topic string, peers ...person) chat {
	t.Helper()
	if p.org.Mode == gt.ModeClient {
		room := p.c.CreateRoom(t, topic, true, !group, p.org.Bot)
		p.c.WaitJoined(t, wait, room, p.org.Bot)
		ch := &matrixChat{p: p, room: room}
		for _, peer := range peers {
			p.c.SendText(t, room, "invite "+string(peer.URI()))
		}
		return ch
	}
	var invite []id.UserID
	for _, peer := range peers {
		invite = append(invite, p.ghost(peer.URI()))
	}
	room := p.c.CreateRoom(t, topic, true, !group, invite...)
	for i, g := range invite {
		if _, ok := peers[i].(absent); !ok {
			p.c.WaitJoined(t, wait, room, g)
		}
	}
	// The ghost joins first and then brings in the bot, whose device decrypts for the gateway;
	// a person types after that (a message encrypted before the bot's device was in the room
	// cannot be read by the gateway).
	p.c.WaitJoined(t, wait, room, p.org.Bot)
	return &matrixChat{p: p, room: room}
}

func (p *matrixPerson) acceptChat(t *testing.T, from person, group bool, first string) chat {
	t.Helper()
	// A conversation that a partner's user starts reaches her as an invitation from the gateway:
	// in client mode from the functional account, in appservice mode from the bot or the
	// starter's ghost.
	inviters := []id.UserID{p.org.Bot}
	if p.org.Mode != gt.ModeClient {
		inviters = append(inviters, p.ghost(from.URI()))
	}
	room := p.c.WaitInvite(t, wait, func(e *mevent.Event) bool {
		if !slices.Contains(inviters, e.Sender) {
			return false
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		return !p.accepted[e.RoomID]
	})
	p.mu.Lock()
	p.accepted[room] = true
	p.mu.Unlock()
	p.c.Join(t, room)
	ch := &matrixChat{p: p, room: room}
	if first != "" {
		ch.waitText(t, from, first)
	}
	return ch
}

type matrixChat struct {
	p    *matrixPerson
	room id.RoomID
}

func (c *matrixChat) cl() *gt.MatrixClient { return c.p.c }

func (c *matrixChat) send(t *testing.T, text string) msg {
	t.Helper()
	return msg{id: string(c.cl().SendText(t, c.room, text)), text: text}
}

func (c *matrixChat) reply(t *testing.T, to msg, text string) msg {
	t.Helper()
	content := &mevent.MessageEventContent{MsgType: mevent.MsgText, Body: text,
		RelatesTo: &mevent.RelatesTo{InReplyTo: &mevent.InReplyTo{EventID: id.EventID(to.id)}}}
	return msg{id: string(c.cl().Send(t, c.room, mevent.EventMessage, content)), text: text}
}

func (c *matrixChat) edit(t *testing.T, m msg, text string) {
	t.Helper()
	content := &mevent.MessageEventContent{MsgType: mevent.MsgText, Body: "* " + text,
		NewContent: &mevent.MessageEventContent{MsgType: mevent.MsgText, Body: text},
		RelatesTo:  &mevent.RelatesTo{Type: mevent.RelReplace, EventID: id.EventID(m.id)}}
	c.cl().Send(t, c.room, mevent.EventMessage, content)
}

func (c *matrixChat) react(t *testing.T, to msg, key string) {
	t.Helper()
	c.cl().Send(t, c.room, mevent.EventReaction, &mevent.ReactionEventContent{
		RelatesTo: mevent.RelatesTo{Type: mevent.RelAnnotation, EventID: id.EventID(to.id), Key: key}})
}

func (c *matrixChat) del(t *testing.T, m msg) {
	t.Helper()
	if _, err := c.cl().RedactEvent(context.Background(), c.room, id.EventID(m.id)); err != nil {
		t.Fatalf("%s: redact %s: %v", c.cl().UserID, m.id, err)
	}
}

func (c *matrixChat) sendFile(t *testing.T, name string, data []byte) msg {
	t.Helper()
	ef := attachment.NewEncryptedFile()
	ct := ef.Encrypt(data)
	up, err := c.cl().UploadBytes(context.Background(), ct, "application/octet-stream")
	if err != nil {
		t.Fatalf("%s: upload: %v", c.cl().UserID, err)
	}
	content := &mevent.MessageEventContent{MsgType: mevent.MsgFile, Body: name, FileName: name,
		Info: &mevent.FileInfo{MimeType: "text/plain", Size: len(data)},
		File: &mevent.EncryptedFileInfo{EncryptedFile: *ef, URL: up.ContentURI.CUString()}}
	return msg{id: string(c.cl().Send(t, c.room, mevent.EventMessage, content)), text: name}
}

func (c *matrixChat) markRead(t *testing.T, m msg) {
	t.Helper()
	if err := c.cl().SendReceipt(context.Background(), c.room, id.EventID(m.id), mevent.ReceiptTypeRead, nil); err != nil {
		t.Fatalf("%s: read receipt: %v", c.cl().UserID, err)
	}
}

// fromPerson reports whether e was sent on behalf of the partner's user: by their ghost
// (appservice mode) or by the functional account with their per-message profile (client mode).
func (c *matrixChat) fromPerson(e *mevent.Event, from person) bool {
	if mp, ok := from.(*matrixPerson); ok && mp.org == c.p.org {
		return e.Sender == mp.c.UserID // a colleague on the same homeserver
	}
	if c.p.org.Mode == gt.ModeClient {
		return e.Sender == c.p.org.Bot && strings.Contains(string(e.Content.VeryRaw), string(from.URI()))
	}
	return e.Sender == c.p.ghost(from.URI())
}

// plain strips client mode's attribution prefix ("Name (domain): ").
func (c *matrixChat) plain(body string, from person) string {
	if c.p.org.Mode == gt.ModeClient {
		if i := strings.Index(body, ": "); i >= 0 {
			return body[i+2:]
		}
	}
	return body
}

func (c *matrixChat) waitMessage(t *testing.T, what string, from person, f func(*mevent.MessageEventContent, *mevent.Event) bool) *mevent.Event {
	t.Helper()
	return c.cl().WaitEvent(t, wait, what, func(e *mevent.Event) bool {
		m, ok := e.Content.Parsed.(*mevent.MessageEventContent)
		return ok && e.RoomID == c.room && e.Type == mevent.EventMessage && c.fromPerson(e, from) && f(m, e)
	})
}

func (c *matrixChat) waitText(t *testing.T, from person, text string) msg {
	t.Helper()
	e := c.waitMessage(t, fmt.Sprintf("%q from %s", text, from.URI()), from, func(m *mevent.MessageEventContent, _ *mevent.Event) bool {
		return m.MsgType != mevent.MsgNotice && c.plain(stripReplyFallback(m.Body), from) == text && (m.RelatesTo == nil || m.RelatesTo.Type != mevent.RelReplace)
	})
	return msg{id: string(e.ID), text: text}
}

// stripReplyFallback removes the "> quoted" lines of a Matrix reply fallback.
func stripReplyFallback(body string) string {
	if !strings.HasPrefix(body, "> ") {
		return body
	}
	if i := strings.Index(body, "\n\n"); i >= 0 {
		return body[i+2:]
	}
	return body
}

func (c *matrixChat) waitReply(t *testing.T, from person, text string, to msg) msg {
	t.Helper()
	e := c.waitMessage(t, fmt.Sprintf("reply %q to %s", text, to.id), from, func(m *mevent.MessageEventContent, _ *mevent.Event) bool {
		return c.plain(stripReplyFallback(m.Body), from) == text && m.RelatesTo != nil && m.RelatesTo.GetReplyTo() == id.EventID(to.id)
	})
	return msg{id: string(e.ID), text: text}
}

func (c *matrixChat) waitEdit(t *testing.T, from person, orig msg, text string) {
	t.Helper()
	c.waitMessage(t, fmt.Sprintf("edit of %s to %q", orig.id, text), from, func(m *mevent.MessageEventContent, _ *mevent.Event) bool {
		return m.RelatesTo != nil && m.RelatesTo.Type == mevent.RelReplace && m.RelatesTo.EventID == id.EventID(orig.id) &&
			m.NewContent != nil && c.plain(m.NewContent.Body, from) == text
	})
}

func (c *matrixChat) waitReaction(t *testing.T, from person, to msg, key string) {
	t.Helper()
	c.cl().WaitEvent(t, wait, fmt.Sprintf("reaction %s on %s", key, to.id), func(e *mevent.Event) bool {
		if e.RoomID != c.room {
			return false
		}
		if r, ok := e.Content.Parsed.(*mevent.ReactionEventContent); ok {
			return c.p.org.Mode != gt.ModeClient && e.Sender == c.p.ghost(from.URI()) &&
				r.RelatesTo.EventID == id.EventID(to.id) && r.RelatesTo.Key == key
		}
		// In client mode a partner's reaction is the functional account's notice in reply to the
		// message, saying who reacted with what (a reaction of the account itself would look like
		// its own), with the reacting user's profile.
		m, ok := e.Content.Parsed.(*mevent.MessageEventContent)
		return ok && c.p.org.Mode == gt.ModeClient && e.Sender == c.p.org.Bot && m.MsgType == mevent.MsgNotice &&
			m.RelatesTo != nil && m.RelatesTo.GetReplyTo() == id.EventID(to.id) &&
			m.BeeperPerMessageProfile != nil && m.BeeperPerMessageProfile.ID == string(from.URI()) &&
			strings.Contains(m.Body, key) && strings.Contains(m.Body, from.Name())
	})
}

func (c *matrixChat) waitDeleted(t *testing.T, from person, m msg) {
	t.Helper()
	// The redaction says whose deletion it is: the partner's ghost redacts (appservice mode), or
	// the functional account with a reason naming the partner's user (client mode).
	c.cl().WaitEvent(t, wait, fmt.Sprintf("redaction of %s by %s", m.id, from.URI()), func(e *mevent.Event) bool {
		if e.RoomID != c.room || e.Type != mevent.EventRedaction || e.Redacts != id.EventID(m.id) {
			return false
		}
		if mp, ok := from.(*matrixPerson); ok && mp.org == c.p.org {
			return e.Sender == mp.c.UserID
		}
		if c.p.org.Mode != gt.ModeClient {
			return e.Sender == c.p.ghost(from.URI())
		}
		r, ok := e.Content.Parsed.(*mevent.RedactionEventContent)
		return ok && e.Sender == c.p.org.Bot && strings.Contains(r.Reason, from.Name()) && strings.Contains(r.Reason, string(from.URI().Domain()))
	})
}

func (c *matrixChat) waitFile(t *testing.T, from person, name string, data []byte) msg {
	t.Helper()
	e := c.waitMessage(t, "file "+name, from, func(m *mevent.MessageEventContent, _ *mevent.Event) bool {
		return (m.MsgType == mevent.MsgFile || m.MsgType == mevent.MsgImage) && (m.FileName == name || m.Body == name)
	})
	m := e.Content.AsMessage()
	var got []byte
	var err error
	if m.File != nil {
		uri, perr := m.File.URL.Parse()
		if perr != nil {
			t.Fatalf("file URL %q: %v", m.File.URL, perr)
		}
		ct, derr := c.cl().DownloadBytes(context.Background(), uri)
		if derr != nil {
			t.Fatalf("download %s: %v", uri, derr)
		}
		got, err = m.File.Decrypt(ct)
	} else {
		uri, perr := m.URL.Parse()
		if perr != nil {
			t.Fatalf("file URL %q: %v", m.URL, perr)
		}
		got, err = c.cl().DownloadBytes(context.Background(), uri)
	}
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("file %s: %d bytes, want %d (err %v)", name, len(got), len(data), err)
	}
	return msg{id: string(e.ID), text: name}
}

func (c *matrixChat) hasReadReceipts() bool { return true }

func (c *matrixChat) showsDelivered() bool { return false }

func (c *matrixChat) sendsDelivered() bool { return false }

func (c *matrixChat) markDelivered(t *testing.T, m msg) { t.Fatal("Matrix has no delivery receipts") }

func (c *matrixChat) waitDeliveredBy(t *testing.T, by person, m msg) {
	t.Fatal("Matrix has no delivery receipts")
}

// checkEncrypted: the room is encrypted (m.room.encryption) and m arrived as an m.room.encrypted
// event that this user's device decrypted.
func (c *matrixChat) checkEncrypted(t *testing.T, m msg) {
	t.Helper()
	var enc mevent.EncryptionEventContent
	if err := c.cl().StateEvent(context.Background(), c.room, mevent.StateEncryption, "", &enc); err != nil || enc.Algorithm != id.AlgorithmMegolmV1 {
		t.Errorf("%s: room %s is not encrypted (m.room.encryption %+v, %v)", c.cl().UserID, c.room, enc, err)
	}
	evs := c.cl().Events(func(e *mevent.Event) bool { return e.ID == id.EventID(m.id) })
	if len(evs) == 0 {
		t.Fatalf("%s: event %s was not received", c.cl().UserID, m.id)
	}
	if !evs[0].Mautrix.WasEncrypted {
		t.Errorf("%s: %q (%s) arrived unencrypted in room %s", c.cl().UserID, m.text, m.id, c.room)
	}
}

func (c *matrixChat) waitRead(t *testing.T, by person, m msg) {
	t.Helper()
	c.cl().WaitEvent(t, wait, fmt.Sprintf("read receipt of %s on %s", by.URI(), m.id), func(e *mevent.Event) bool {
		if e.Type != mevent.EphemeralEventReceipt || e.RoomID != c.room {
			return false
		}
		rc, ok := e.Content.Parsed.(*mevent.ReceiptEventContent)
		if !ok {
			return false
		}
		// The partner's user has a ghost (appservice mode); in client mode the functional
		// account reads for the partner's side.
		reader := c.p.ghost(by.URI())
		if c.p.org.Mode == gt.ModeClient {
			reader = c.p.org.Bot
		}
		_, ok = (*rc)[id.EventID(m.id)][mevent.ReceiptTypeRead][reader]
		return ok
	})
}

func (c *matrixChat) waitNotice(t *testing.T, timeout time.Duration, any ...string) time.Time {
	t.Helper()
	start := time.Now()
	e := c.cl().WaitEvent(t, timeout, fmt.Sprintf("a notice containing one of %q", any), func(e *mevent.Event) bool {
		m, ok := e.Content.Parsed.(*mevent.MessageEventContent)
		return ok && e.RoomID == c.room && m.MsgType == mevent.MsgNotice && e.Sender == c.p.org.Bot && containsAny(m.Body, any)
	})
	_ = start
	return time.UnixMilli(e.Timestamp)
}

func (c *matrixChat) texts(from person) []textAt {
	var out []textAt
	for _, e := range c.cl().Events(func(e *mevent.Event) bool {
		m, ok := e.Content.Parsed.(*mevent.MessageEventContent)
		return ok && e.RoomID == c.room && e.Type == mevent.EventMessage && m.MsgType == mevent.MsgText && c.fromPerson(e, from)
	}) {
		out = append(out, textAt{text: c.plain(e.Content.AsMessage().Body, from), at: c.cl().ArrivedAt(e)})
	}
	return out
}

// sendStream sends as a client with an outbox does; like a client that reconciles its local echo,
// it does not send again what its homeserver already stored: after a failure that may have
// reached the homeserver (its answer lost when the homeserver died; Dendrite forgets transaction
// IDs when it restarts), it first looks for its own event with the transaction ID among the room's
// latest events.
func (c *matrixChat) sendStream(text, key string, deadline time.Time) error {
	txn := "stream-" + key
	content := sendonce.Mark(&mevent.MessageEventContent{MsgType: mevent.MsgText, Body: text}, txn)
	unsure := false
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var err error
		if unsure {
			var ev id.EventID
			if ev, err = sendonce.Find(ctx, c.cl().Client, c.room, c.cl().UserID, txn, c.cl().Crypto.Decrypt); err == nil && ev != "" {
				cancel()
				return nil
			}
		}
		if err == nil {
			_, err = c.cl().SendMessageEvent(ctx, c.room, mevent.EventMessage, content, mautrix.ReqSendEvent{TransactionID: txn})
		}
		cancel()
		if err == nil {
			return nil
		}
		unsure = unsure || sendonce.MayHaveArrived(err)
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %q not accepted: %w", c.cl().UserID, text, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// ---- XMPP ----

type xmppPerson struct {
	org  *gt.XMPPOrg
	name string
	c    *gt.XMPPClient
}

func newXMPPPerson(t *testing.T, org *gt.XMPPOrg, name string) *xmppPerson {
	t.Helper()
	return &xmppPerson{org: org, name: name, c: org.Client(t, name, "phone")}
}

func (p *xmppPerson) Name() string { return p.name }
func (p *xmppPerson) URI() event.UserURI {
	return event.NewUserURI(event.Domain(p.org.Domain), p.name)
}

// puppet is the address of a partner's user on this organisation's users component.
func (p *xmppPerson) puppet(u event.UserURI) string {
	return p.org.Puppet(u.Local(), string(u.Domain()))
}

// nick is how a partner's user appears in a MUC of this organisation's gateway.
func nick(u event.UserURI) string { return u.Local() + "@" + string(u.Domain()) }

func (p *xmppPerson) startChat(t *testing.T, group bool, topic string, peers ...person) chat {
	t.Helper()
	if !group {
		return &xmppChat{p: p, to: p.puppet(peers[0].URI()), typ: "chat"}
	}
	room := strings.ToLower(strings.ReplaceAll(topic, " ", "-")) + "@" + p.org.RoomsDomain
	ch := &xmppChat{p: p, to: room, typ: "groupchat"}
	ch.join(t)
	for _, peer := range peers {
		p.c.Send(t, fmt.Sprintf(`<message to='%s'><x xmlns='http://jabber.org/protocol/muc#user'><invite to='%s'/></x></message>`,
			room, gt.XMLEscape(p.puppet(peer.URI()))))
	}
	return ch
}

func (c *xmppChat) join(t *testing.T) {
	t.Helper()
	p := c.p
	p.c.Send(t, fmt.Sprintf(`<presence to='%s/%s'><x xmlns='http://jabber.org/protocol/muc'/></presence>`, c.to, p.name))
	st := p.c.Expect(t, wait, "own presence in "+c.to, func(s *gt.Stanza) bool {
		return s.XMLName.Local == "presence" && strings.HasPrefix(s.Attr("from"), c.to+"/")
	})
	if st.Attr("type") == "error" {
		t.Fatalf("%s: joining %s refused: %s", p.c.Bare, c.to, st.String())
	}
	// After a reconnect the client joins again and asks for what it missed (XEP-0045 history
	// since its last message from the room), as client apps do; a join the server bounces (the
	// gateway's component is not back yet) is tried again.
	p.c.OnReconnect(func() { go c.rejoin(2 * time.Minute) })
}

// rejoin sends the join presence until the room answers with the occupant's own presence.
func (c *xmppChat) rejoin(within time.Duration) {
	p := c.p
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		since := ""
		if last := c.lastAt(); !last.IsZero() {
			since = fmt.Sprintf(`<history since='%s'/>`, last.UTC().Format("2006-01-02T15:04:05.000Z"))
		}
		if err := p.c.TrySend(fmt.Sprintf(`<presence to='%s/%s'><x xmlns='http://jabber.org/protocol/muc'>%s</x></presence>`, c.to, p.name, since)); err != nil {
			// Not connected (yet, or again): try again shortly, as the client's reconnect
			// may be under way.
			time.Sleep(500 * time.Millisecond)
			continue
		}
		st, err := p.c.Wait(3*time.Second, func(s *gt.Stanza) bool {
			return s.XMLName.Local == "presence" && s.Attr("from") == c.to+"/"+p.name
		})
		if err == nil && st.Attr("type") != "error" {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// lastAt is when the last message from the room arrived (zero if none).
func (c *xmppChat) lastAt() time.Time {
	var last time.Time
	for _, st := range c.cl().Received(func(st *gt.Stanza) bool {
		return st.XMLName.Local == "message" && bare(st.Attr("from")) == c.to && st.Attr("type") == "groupchat"
	}) {
		last = st.At
	}
	return last
}

func (p *xmppPerson) acceptChat(t *testing.T, from person, group bool, first string) chat {
	t.Helper()
	puppet := p.puppet(from.URI())
	// A group invitation is a mediated invitation (XEP-0045). It names the starter (her puppet
	// here: a partner's group reaches the gateway as a portal request from the member whose
	// commit added the invited user), never nobody or the invited user herself.
	isInvite := func(s *gt.Stanza) bool {
		x := s.Child("http://jabber.org/protocol/muc#user", "x")
		if s.XMLName.Local != "message" || x == nil || x.Child("", "invite") == nil {
			return false
		}
		inviter := bare(x.Child("", "invite").Attr("from"))
		return inviter == puppet
	}
	// A 1:1 conversation reaches an XMPP user as a chat from the partner's address (whichever
	// side started it: the MIMI room says it is a 1:1), a group as an invitation into a group chat.
	st := p.c.Expect(t, wait, "an invitation or a chat from "+puppet, func(s *gt.Stanza) bool {
		return isInvite(s) || (!group && s.XMLName.Local == "message" && s.Attr("type") != "error" && bare(s.Attr("from")) == puppet && s.Body() != "")
	})
	if !group && isInvite(st) {
		t.Fatalf("a 1:1 from %s reached %s as a group chat invitation: %s", from.Name(), p.name, st.Attr("from"))
	}
	var ch *xmppChat
	if isInvite(st) {
		ch = &xmppChat{p: p, to: bare(st.Attr("from")), typ: "groupchat"}
		ch.join(t)
	} else {
		ch = &xmppChat{p: p, to: puppet, typ: "chat"}
		p.c.Unread(st) // the chat's first message stays for waitText
	}
	if first != "" {
		ch.waitText(t, from, first)
	}
	return ch
}

func bare(j string) string {
	if i := strings.IndexByte(j, '/'); i >= 0 {
		return j[:i]
	}
	return j
}

type xmppChat struct {
	p   *xmppPerson
	to  string // the peer's puppet (chat) or the room (groupchat)
	typ string
}

func (c *xmppChat) cl() *gt.XMPPClient { return c.p.c }

func (c *xmppChat) message(t *testing.T, idPrefix, inner string) string {
	t.Helper()
	mid := c.cl().NewID(idPrefix)
	c.cl().Send(t, fmt.Sprintf(`<message to='%s' type='%s' id='%s'>%s<origin-id xmlns='urn:xmpp:sid:0' id='%s'/></message>`,
		gt.XMLEscape(c.to), c.typ, mid, inner, mid))
	return mid
}

func body(text string) string { return "<body>" + gt.XMLEscape(text) + "</body>" }

func (c *xmppChat) send(t *testing.T, text string) msg {
	t.Helper()
	return c.sent(t, c.message(t, "m", body(text)+`<markable xmlns='urn:xmpp:chat-markers:0'/><request xmlns='urn:xmpp:receipts'/>`), text)
}

// sent completes a message this side sent: in a group chat the room reflects it with its
// stanza-id; in a 1:1 chat the gateway confirms it with a delivery receipt (XEP-0184) once it is
// on the bus.
func (c *xmppChat) sent(t *testing.T, mid, text string) msg {
	t.Helper()
	m := msg{id: mid, text: text}
	if c.typ == "groupchat" {
		st := c.cl().Expect(t, wait, "reflection of "+mid, func(st *gt.Stanza) bool {
			o := st.Child("urn:xmpp:sid:0", "origin-id")
			return st.XMLName.Local == "message" && bare(st.Attr("from")) == c.to && (st.Attr("id") == mid || (o != nil && o.Attr("id") == mid))
		})
		if st.Attr("type") == "error" {
			t.Fatalf("%s: message %s refused: %s", c.cl().Bare, mid, st.String())
		}
		m.alt = c.nativeID(st)
		return m
	}
	return m
}

// waitAccepted waits for the gateway's delivery receipt of a message this side sent (it took the
// message: it is on the bus).
func (c *xmppChat) waitAccepted(t *testing.T, m msg) {
	t.Helper()
	c.cl().Expect(t, wait, "delivery receipt of "+m.id, func(st *gt.Stanza) bool {
		r := st.Child("urn:xmpp:receipts", "received")
		return st.XMLName.Local == "message" && r != nil && r.Attr("id") == m.id && st.Attr("id") == "rcpt-"+m.id
	})
}

func (c *xmppChat) reply(t *testing.T, to msg, text string) msg {
	t.Helper()
	return c.sent(t, c.message(t, "r", body(text)+fmt.Sprintf(`<reply xmlns='urn:xmpp:reply:0' to='%s' id='%s'/>`, gt.XMLEscape(c.to), to.id)), text)
}

func (c *xmppChat) edit(t *testing.T, m msg, text string) {
	t.Helper()
	c.message(t, "e", body(text)+fmt.Sprintf(`<replace xmlns='urn:xmpp:message-correct:0' id='%s'/>`, m.id))
}

func (c *xmppChat) react(t *testing.T, to msg, key string) {
	t.Helper()
	c.message(t, "x", fmt.Sprintf(`<reactions xmlns='urn:xmpp:reactions:0' id='%s'><reaction>%s</reaction></reactions>`, to.id, key))
}

func (c *xmppChat) del(t *testing.T, m msg) {
	t.Helper()
	c.message(t, "d", fmt.Sprintf(`<retract xmlns='urn:xmpp:message-retract:1' id='%s'/><body>/me retracted a message</body>`, m.id))
}

func (c *xmppChat) sendFile(t *testing.T, name string, data []byte) msg {
	t.Helper()
	url := c.cl().Upload(t, name, "text/plain", data)
	return c.sent(t, c.message(t, "f", body(url)+fmt.Sprintf(`<x xmlns='jabber:x:oob'><url>%s</url></x>`, gt.XMLEscape(url))), name)
}

func (c *xmppChat) markRead(t *testing.T, m msg) {
	t.Helper()
	c.message(t, "rd", fmt.Sprintf(`<displayed xmlns='urn:xmpp:chat-markers:0' id='%s'/>`, m.id))
}

// fromPerson reports whether st came from the partner's user: their puppet (1:1) or their
// occupant in the room.
func (c *xmppChat) fromPerson(st *gt.Stanza, from person) bool {
	if st.XMLName.Local != "message" || st.Attr("type") == "error" {
		return false
	}
	if c.typ == "chat" {
		return bare(st.Attr("from")) == c.p.puppet(from.URI())
	}
	if xp, ok := from.(*xmppPerson); ok && xp.org == c.p.org {
		return st.Attr("from") == c.to+"/"+xp.name // a colleague in the room, under the nickname she chose
	}
	return st.Attr("from") == c.to+"/"+nick(from.URI())
}

// received is a received message as this side refers to it: by the room's stanza-id in a group
// chat (the message ID as alt), by the message ID in a 1:1 chat.
func (c *xmppChat) received(st *gt.Stanza, text string) msg {
	m := msg{id: c.nativeID(st), text: text}
	if m.id != st.Attr("id") {
		m.alt = st.Attr("id")
	}
	return m
}

// nativeID is the room's stanza-id in a group chat, else the message ID.
func (c *xmppChat) nativeID(st *gt.Stanza) string {
	if c.typ == "groupchat" {
		for _, ch := range st.Children {
			if ch.XMLName.Local == "stanza-id" && ch.Attr("by") == c.to {
				return ch.Attr("id")
			}
		}
	}
	return st.Attr("id")
}

// text is the body without a reply's quoted fallback.
func text(st *gt.Stanza) string {
	b := st.Body()
	for _, fb := range st.Children {
		if fb.XMLName.Local != "fallback" || fb.Attr("for") != "urn:xmpp:reply:0" {
			continue
		}
		if r := fb.Child("", "body"); r != nil {
			var start, end int
			if _, err := fmt.Sscan(r.Attr("start"), &start); err == nil {
				if _, err := fmt.Sscan(r.Attr("end"), &end); err == nil && start <= end && end <= len([]rune(b)) {
					rs := []rune(b)
					return string(rs[:start]) + string(rs[end:])
				}
			}
		}
	}
	return b
}

func (c *xmppChat) expect(t *testing.T, what string, from person, f func(*gt.Stanza) bool) *gt.Stanza {
	t.Helper()
	return c.cl().Expect(t, wait, what, func(st *gt.Stanza) bool { return c.fromPerson(st, from) && f(st) })
}

func (c *xmppChat) waitText(t *testing.T, from person, txt string) msg {
	t.Helper()
	st := c.expect(t, fmt.Sprintf("%q from %s", txt, from.URI()), from, func(st *gt.Stanza) bool {
		return text(st) == txt && st.Child("urn:xmpp:message-correct:0", "replace") == nil
	})
	return c.received(st, txt)
}

func (c *xmppChat) waitReply(t *testing.T, from person, txt string, to msg) msg {
	t.Helper()
	st := c.expect(t, fmt.Sprintf("reply %q to %s", txt, to.id), from, func(st *gt.Stanza) bool {
		r := st.Child("urn:xmpp:reply:0", "reply")
		return text(st) == txt && r != nil && to.is(r.Attr("id"))
	})
	return c.received(st, txt)
}

func (c *xmppChat) waitEdit(t *testing.T, from person, orig msg, txt string) {
	t.Helper()
	c.expect(t, fmt.Sprintf("correction of %s to %q", orig.id, txt), from, func(st *gt.Stanza) bool {
		r := st.Child("urn:xmpp:message-correct:0", "replace")
		return r != nil && orig.is(r.Attr("id")) && st.Body() == txt
	})
}

func (c *xmppChat) waitReaction(t *testing.T, from person, to msg, key string) {
	t.Helper()
	c.expect(t, fmt.Sprintf("reaction %s on %s", key, to.id), from, func(st *gt.Stanza) bool {
		r := st.Child("urn:xmpp:reactions:0", "reactions")
		if r == nil || !to.is(r.Attr("id")) {
			return false
		}
		for _, k := range r.Children {
			if k.Text == key {
				return true
			}
		}
		return false
	})
}

func (c *xmppChat) waitDeleted(t *testing.T, from person, m msg) {
	t.Helper()
	c.expect(t, "retraction of "+m.id, from, func(st *gt.Stanza) bool {
		r := st.Child("urn:xmpp:message-retract:1", "retract")
		return r != nil && m.is(r.Attr("id"))
	})
}

func (c *xmppChat) waitFile(t *testing.T, from person, name string, data []byte) msg {
	t.Helper()
	st := c.expect(t, "file "+name, from, func(st *gt.Stanza) bool {
		return st.Child("jabber:x:oob", "x") != nil || strings.Contains(st.Body(), name)
	})
	oob := st.Child("jabber:x:oob", "x")
	if oob == nil || oob.Child("", "url") == nil {
		t.Fatalf("%s: file %s arrived without a link: %s", c.cl().Bare, name, st.String())
	}
	url := oob.Child("", "url").Text
	// The file is on this user's own server's upload service (XEP-0363), which her client can
	// reach, not a link to the sender's server or to the gateway.
	if u, err := neturl.Parse(url); err != nil || u.Host != c.p.org.Prosody.UploadHost() {
		t.Fatalf("%s: file %s is at %s, not on %s's upload service %s (%v)", c.cl().Bare, name, url, c.p.org.Domain, c.p.org.Prosody.UploadHost(), err)
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("%s: GET %s: %v", c.cl().Bare, url, err)
	}
	got, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	resp.Body.Close()
	if !bytes.Equal(got, data) {
		t.Fatalf("%s: file %s from %s: %s, %d bytes, want %d", c.cl().Bare, name, url, resp.Status, len(got), len(data))
	}
	return c.received(st, name)
}

func (c *xmppChat) hasReadReceipts() bool { return true }

// showsDelivered: XEP-0184 receipts are shown in 1:1 chats (in a group chat a receipt would
// tell every occupant about every reader).
func (c *xmppChat) showsDelivered() bool { return c.typ == "chat" }

func (c *xmppChat) sendsDelivered() bool { return true }

// markDelivered: an XEP-0184 receipt in a 1:1 chat; in a group chat an XEP-0333 received marker
// naming the room's stanza-id.
func (c *xmppChat) markDelivered(t *testing.T, m msg) {
	t.Helper()
	if c.typ == "groupchat" {
		c.message(t, "dr", fmt.Sprintf(`<received xmlns='urn:xmpp:chat-markers:0' id='%s'/>`, gt.XMLEscape(m.id)))
		return
	}
	c.cl().Send(t, fmt.Sprintf(`<message to='%s' id='%s'><received xmlns='urn:xmpp:receipts' id='%s'/></message>`,
		gt.XMLEscape(c.to), c.cl().NewID("dr"), gt.XMLEscape(m.id)))
}

// waitDeliveredBy waits for a receipt of m from the peer's puppet other than the gateway's own
// confirmation (whose stanza ID is rcpt-<message ID>).
func (c *xmppChat) waitDeliveredBy(t *testing.T, by person, m msg) {
	t.Helper()
	c.expect(t, fmt.Sprintf("delivery receipt of %s by %s", m.id, by.URI()), by, func(st *gt.Stanza) bool {
		r := st.Child("urn:xmpp:receipts", "received")
		return r != nil && m.is(r.Attr("id")) && st.Attr("id") != "rcpt-"+m.id
	})
}

func (c *xmppChat) checkEncrypted(*testing.T, msg) {}

// sendStream sends with a fixed stanza ID until the gateway confirms (a delivery receipt in a
// 1:1 chat, the room's reflection in a group chat), reconnecting after the server went away.
func (c *xmppChat) sendStream(text, key string, deadline time.Time) error {
	mid := "stream-" + key
	stanza := fmt.Sprintf(`<message to='%s' type='%s' id='%s'>%s<request xmlns='urn:xmpp:receipts'/><origin-id xmlns='urn:xmpp:sid:0' id='%s'/></message>`,
		gt.XMLEscape(c.to), c.typ, mid, body(text), mid)
	confirmed := func(st *gt.Stanza) bool {
		if st.XMLName.Local != "message" {
			return false
		}
		if r := st.Child("urn:xmpp:receipts", "received"); r != nil && r.Attr("id") == mid {
			return true
		}
		if st.Attr("type") == "error" && st.Attr("id") == mid {
			return true // refused or bounced: see below
		}
		o := st.Child("urn:xmpp:sid:0", "origin-id")
		return c.typ == "groupchat" && bare(st.Attr("from")) == c.to && o != nil && o.Attr("id") == mid
	}
	var last error
	for time.Now().Before(deadline) {
		if err := c.cl().EnsureConnected(); err != nil {
			last = err
			time.Sleep(200 * time.Millisecond)
			continue
		}
		if err := c.cl().TrySend(stanza); err != nil {
			last = err
			continue
		}
		st, err := c.cl().Wait(5*time.Second, confirmed)
		switch {
		case err != nil:
			last = err
		case st.Attr("type") != "error":
			return nil
		case c.typ == "groupchat" && st.Child("", "error") != nil && st.Child("", "error").Child("", "not-acceptable") != nil:
			// The room does not know this session as an occupant (the server restarted and
			// the join after the reconnect was lost): join again, as clients do on this error
			// (XEP-0410), and send again.
			last = errors.New("not an occupant")
			c.rejoin(30 * time.Second)
		default:
			// Bounced (the gateway's component is not connected yet): send again shortly.
			last = fmt.Errorf("bounced: %s", st.String())
			time.Sleep(250 * time.Millisecond)
		}
	}
	return fmt.Errorf("%s: %q not confirmed: %v; the last stanzas it received:\n%s", c.cl().Bare, text, last, lastStanzas(c.cl(), 20))
}

// lastStanzas lists the last n stanzas the client received (for failure messages).
func lastStanzas(c *gt.XMPPClient, n int) string {
	all := c.Received(func(*gt.Stanza) bool { return true })
	var b strings.Builder
	for _, st := range all[max(0, len(all)-n):] {
		fmt.Fprintf(&b, "  %s %s\n", st.At.Format("15:04:05.000"), st.String())
	}
	return b.String()
}

func (c *xmppChat) waitRead(t *testing.T, by person, m msg) {
	t.Helper()
	c.expect(t, fmt.Sprintf("displayed marker of %s on %s", by.URI(), m.id), by, func(st *gt.Stanza) bool {
		d := st.Child("urn:xmpp:chat-markers:0", "displayed")
		return d != nil && m.is(d.Attr("id"))
	})
}

func (c *xmppChat) waitNotice(t *testing.T, timeout time.Duration, any ...string) time.Time {
	t.Helper()
	st := c.cl().Expect(t, timeout, fmt.Sprintf("a notice containing one of %q", any), func(st *gt.Stanza) bool {
		if st.XMLName.Local != "message" {
			return false
		}
		from := bare(st.Attr("from"))
		// A group chat's notice comes from its room; a 1:1 chat's from the gateway's users
		// component or the peer's puppet (a notice about another chat does not count).
		fromGateway := from == c.to
		if c.typ == "chat" {
			fromGateway = fromGateway || from == c.p.org.UsersDomain
		}
		if st.Attr("type") == "error" {
			e := st.Child("", "error")
			return e != nil && containsAny(e.String(), any)
		}
		return fromGateway && containsAny(st.Body(), any)
	})
	return st.At
}

// texts lists the messages from the person as a client shows them: a group chat message that
// comes again (history after a rejoin) has the same stanza-id and is shown once.
func (c *xmppChat) texts(from person) []textAt {
	var out []textAt
	seen := map[string]bool{}
	for _, st := range c.cl().Received(func(st *gt.Stanza) bool { return c.fromPerson(st, from) && st.Body() != "" }) {
		if c.typ == "groupchat" {
			sid := c.nativeID(st)
			if sid != "" && seen[sid] {
				continue
			}
			seen[sid] = true
		}
		out = append(out, textAt{text: text(st), at: st.At})
	}
	return out
}

func containsAny(s string, any []string) bool {
	for _, a := range any {
		if strings.Contains(strings.ToLower(s), strings.ToLower(a)) {
			return true
		}
	}
	return false
}

// Compile-time guards.
var (
	_ person = (*matrixPerson)(nil)
	_ person = (*xmppPerson)(nil)
	_ chat   = (*matrixChat)(nil)
	_ chat   = (*xmppChat)(nil)
)
