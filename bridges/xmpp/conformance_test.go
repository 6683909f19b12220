package xmpp

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mimi-gateway/mimi-gateway/bridges/bridgetest"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/xstanza"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// TestConformance runs the shared adapter tests (bridges/bridgetest) against the adapter on
// Prosody: alice writes in the MUC ward7 that the gateway hosts, bob writes from MIMI.
func TestConformance(t *testing.T) {
	e := newEnv(t)
	alice := dialClient(t, e.p, "alice", "phone")
	joinRoom(t, alice, ward7, "Alice")
	e.out.wait(t, "membership join", func(env *event.Envelope) bool { return env.Kind == event.KindMembership && env.Room == ward7URI })
	bridgetest.Conformance(t, bridgetest.Fixture{
		Room: ward7URI, Local: aliceURI, Remote: testBob,
		In: func(t testing.TB, env *event.Envelope) { e.publishIn(env) },
		Out: func(t testing.TB, native string) *event.Envelope {
			return e.out.wait(t, "envelope of "+native, func(env *event.Envelope) bool { return string(env.Origin.Event) == native })
		},
		Native: &xmppUser{c: alice, stanzaID: map[string]string{}},
	})
}

// xmppUser is alice's client in ward7. She refers to her own messages by the IDs she gave them,
// to others' by the room's stanza-ids; stanzaID maps hers to the room's.
type xmppUser struct {
	c        *client
	n        atomic.Int64
	stanzaID map[string]string
}

func (u *xmppUser) groupchat(inner string) string {
	id := fmt.Sprintf("conf-%d", u.n.Add(1))
	u.c.send(fmt.Sprintf(`<message to='%s' type='groupchat' id='%s'>%s</message>`, ward7, id, inner))
	return id
}

func (u *xmppUser) Send(t testing.TB, text, replyTo string) string {
	inner := `<body>` + xmlEscape(text) + `</body>`
	if replyTo != "" {
		inner += fmt.Sprintf(`<reply xmlns='%s' to='%s/%s' id='%s'/>`, xstanza.NSReply, ward7, bobNickMU, replyTo)
	}
	id := u.groupchat(inner)
	refl := u.c.expect("reflection of "+id, and(named("message"), from(ward7+"/Alice"), func(n *node) bool { return n.attr("id") == id }))
	if s := refl.child(xstanza.NSSID, "stanza-id"); s != nil {
		u.stanzaID[id] = s.attr("id")
	}
	return id
}

func (u *xmppUser) Edit(t testing.TB, target, text string) string {
	return u.groupchat(fmt.Sprintf(`<body>%s</body><replace xmlns='%s' id='%s'/>`, xmlEscape(text), xstanza.NSCorrect, target))
}

func (u *xmppUser) React(t testing.TB, target, key string) string {
	return u.groupchat(fmt.Sprintf(`<reactions xmlns='%s' id='%s'><reaction>%s</reaction></reactions>`, xstanza.NSReactions, target, key))
}

func (u *xmppUser) Delete(t testing.TB, target string) string {
	return u.groupchat(fmt.Sprintf(`<retract xmlns='%s' id='%s'/><body>retracted</body><fallback xmlns='%s' for='%s'/>`, xstanza.NSRetract, target, xstanza.NSFallback, xstanza.NSRetract))
}

// is reports whether id names target (her ID of her message, or the room's).
func (u *xmppUser) is(id, target string) bool {
	return id == target || id != "" && id == u.stanzaID[target]
}

func (u *xmppUser) Expect(t testing.TB, want bridgetest.Seen) string {
	n := u.c.expect(want.String(), and(named("message"), from(ward7+"/"+bobNickMU), func(n *node) bool {
		body := ""
		if b := n.child("", "body"); b != nil {
			body = b.Text
		}
		switch want.Kind {
		case event.KindMessage:
			r := n.child(xstanza.NSReply, "reply")
			if n.child(xstanza.NSCorrect, "replace") != nil || (r == nil) != (want.Target == "") || r != nil && !u.is(r.attr("id"), want.Target) {
				return false
			}
			return body == want.Text || r != nil && strings.HasSuffix(body, "\n"+want.Text) // a reply quotes its original first
		case event.KindEdit:
			r := n.child(xstanza.NSCorrect, "replace")
			return r != nil && u.is(r.attr("id"), want.Target) && body == want.Text
		case event.KindReaction:
			r := n.child(xstanza.NSReactions, "reactions")
			return r != nil && u.is(r.attr("id"), want.Target) && r.child("", "reaction") != nil && r.child("", "reaction").Text == want.Text
		case event.KindDelete:
			r := n.child(xstanza.NSRetract, "retract")
			return r != nil && u.is(r.attr("id"), want.Target)
		}
		return false
	}))
	if s := n.child(xstanza.NSSID, "stanza-id"); s != nil {
		return s.attr("id")
	}
	return n.attr("id")
}
