package e2e

import (
	"bufio"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"

	gt "github.com/mimi-gateway/mimi-gateway/cmd/mimi-gateway/internal/gatewaytest"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// noticeWithin is how soon after a failure is known the person who caused it must see a notice.
const noticeWithin = 15 * time.Second

// partnerDownFor is how long the partner stays down in the partner-down scenario.
const partnerDownFor = 2 * time.Minute

// absent is a user of a partner who does not exist there.
type absent struct{ uri event.UserURI }

func (p absent) Name() string       { return p.uri.Local() }
func (p absent) URI() event.UserURI { return p.uri }
func (p absent) startChat(t *testing.T, _ bool, _ string, _ ...person) chat {
	t.Fatal("a user who does not exist starts nothing")
	return nil
}
func (p absent) acceptChat(t *testing.T, _ person, _ bool, _ string) chat {
	t.Fatal("a user who does not exist accepts nothing")
	return nil
}

// unknownUser: starter invites a partner's user who does not exist (1:1, then into a group):
// the starter sees a notice within 15 s.
func unknownUser(t *testing.T, starter person, partner event.Domain) {
	nobody := absent{uri: event.NewUserURI(partner, "niemand")}
	for _, group := range []bool{false, true} {
		at := time.Now()
		c := starter.startChat(t, group, "Unbekannt", nobody)
		if _, ok := c.(*xmppChat); ok && !group {
			c.send(t, "Hallo?") // an XMPP 1:1 chat starts with its first message
		}
		seen := c.waitNotice(t, noticeWithin+wait, "niemand")
		t.Logf("notice about the unknown user %s (group %v) seen %.1f s after the invitation", nobody.uri, group, seen.Sub(at).Seconds())
		if d := seen.Sub(at); d > noticeWithin {
			t.Errorf("the notice about %s came %.1f s after the invitation (more than %s)", nobody.uri, d.Seconds(), noticeWithin)
		}
	}
}

// thirdPerson: the Matrix user who started a 1:1 invites a third person (a partner's user) into
// it, by inviting her ghost (appservice) or with the invite command (TI-Messenger); the 1:1's
// fixed membership refuses her, and the starter is told so in words within 15 s.
func thirdPerson(t *testing.T, c *conv, third person) {
	mc, ok := c.cs.(*matrixChat)
	if !ok {
		t.Fatalf("%s's 1:1 is not a Matrix room: only a Matrix user can invite into a 1:1", c.starter.Name())
	}
	at := time.Now()
	if mc.p.org.Mode == gt.ModeClient {
		mc.cl().SendText(t, mc.room, "!mimi invite "+string(third.URI()))
	} else if _, err := mc.cl().InviteUser(t.Context(), mc.room, &mautrix.ReqInviteUser{UserID: mc.p.ghost(third.URI())}); err != nil {
		t.Fatal(err)
	}
	seen := mc.waitNotice(t, noticeWithin+wait, "one-to-one", "zu zweit")
	t.Logf("notice about %s in the 1:1 seen %.1f s after the invitation", third.URI(), seen.Sub(at).Seconds())
	if d := seen.Sub(at); d > noticeWithin {
		t.Errorf("the notice about %s came %.1f s after the invitation (more than %s)", third.URI(), d.Seconds(), noticeWithin)
	}
}

// logLine is a line of a gateway's log and its time.
type logLine struct {
	at   time.Time
	text string
}

// logLines returns g's log lines written after since for which keep holds, in order.
func logLines(g *gt.Gateway, since time.Time, keep func(line string) bool) []logLine {
	var out []logLine
	sc := bufio.NewScanner(strings.NewReader(g.Log()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if !keep(l) {
			continue
		}
		ts, ok := strings.CutPrefix(l, "time=")
		if !ok {
			continue
		}
		ts, _, _ = strings.Cut(ts, " ")
		at, err := time.Parse(time.RFC3339Nano, ts)
		if err == nil && at.After(since) {
			out = append(out, logLine{at: at, text: l})
		}
	}
	return out
}
