package e2e

import (
	"regexp"
	"strings"
	"testing"
	"time"

	mevent "maunium.net/go/mautrix/event"

	gt "github.com/mimi-gateway/mimi-gateway/cmd/mimi-gateway/internal/gatewaytest"
)

// The notice tests: a message into a room whose partner stays down for two minutes. The person
// who wrote it sees the gateway's notice that the partner cannot be reached (the Matrix user the
// bot's m.notice, the XMPP user a message from the gateway) within 15 s of the failure being
// known: the partner is down before the message is typed, so the gateway's first attempt fails
// and is retried; once the partner has not answered for mimi.unreachable_notice (10 s) the
// gateway logs the failure at WARN under the notice's correlation ID and tells the user. Both
// delays are printed (from typing the message, and from that line). After the partner is back the
// message arrives, once: nothing is silently dropped. (Unknown users are the scenarios "unknown
// user from A/B" of TestPairings.)

// unreachableWords are the partner_unreachable notice's words (English or German) that name
// the outage; the notice also names the partner.
var unreachableWords = []string{"cannot be reached", "nicht erreichbar"}

// partnerStaysDown kills the partner's gateway, has the writer write into the chat, waits for
// this outage's notice, keeps the partner down for two minutes and checks that the message
// arrives once after it is back.
func partnerStaysDown(t *testing.T, f *faultPair, writerIsA bool) {
	writer, reader, cw, cr, own, partner := f.p.a, f.p.b, f.ca, f.cb, f.p.gwA, f.p.gwB
	if !writerIsA {
		writer, reader, cw, cr, own, partner = f.p.b, f.p.a, f.cb, f.ca, f.p.gwB, f.p.gwA
	}
	partner.Kill()
	killed := time.Now()
	text := "Nachricht, während " + partner.Domain + " nicht erreichbar ist"
	typed := time.Now()
	cw.send(t, text)
	n := waitOutageNotice(t, cw, own, partner.Domain, killed, partnerDownFor)
	t.Logf("partner %s down: %s saw the notice (reference %s) %.1f s after typing the message, %.1f s after %s logged the failure (its WARN line, once the partner has not answered for mimi.unreachable_notice)",
		partner.Domain, writer.URI(), n.ref, n.seen.Sub(typed).Seconds(), n.seen.Sub(n.known).Seconds(), own.Domain)
	// The failure is known when the gateway says so (its WARN line under the notice's
	// correlation ID): before that, attempts that fail are retried within milliseconds.
	if d := n.seen.Sub(n.known); d > noticeWithin {
		t.Errorf("the notice came %.1f s after %s logged the failure (more than %s)", d.Seconds(), own.Domain, noticeWithin)
	}
	// Nothing goes out while the partner is down; then it comes back and the message arrives
	// exactly once.
	time.Sleep(time.Until(killed.Add(partnerDownFor)))
	if n := countTexts(cr, writer, text); n != 0 {
		t.Fatalf("%s saw the message %d times while %s was down", reader.URI(), n, partner.Domain)
	}
	partner.StartReady(t)
	back := time.Now()
	cr.waitText(t, writer, text)
	t.Logf("partner %s back after %s: the message arrived %.1f s later", partner.Domain, partnerDownFor, time.Since(back).Seconds())
	// A later message comes after it, and the earlier one was not repeated.
	after := cw.send(t, "Und noch eine danach")
	cr.waitText(t, writer, after.text)
	if n := countTexts(cr, writer, text); n != 1 {
		t.Errorf("%s saw the message %d times, want once", reader.URI(), n)
	}
}

// outageNotice is the notice of one outage as the writer's client showed it.
type outageNotice struct {
	ref   string    // its correlation ID
	seen  time.Time // when the client received it
	known time.Time // when the writer's gateway logged the failure under that correlation ID
}

// referenceRE finds the correlation ID at the end of a notice (English or German).
var referenceRE = regexp.MustCompile(`\((?:reference|Referenz) ([0-9a-f]+)\)`)

// waitOutageNotice waits for the notice of this outage in c: a notice of the gateway naming the
// partner with the words of partner_unreachable whose reference is the correlation ID of a line
// "telling the user: partner_unreachable" that own logged about the partner after since. A notice
// of an earlier outage (another correlation ID) does not count.
func waitOutageNotice(t *testing.T, c chat, own *gt.Gateway, partner string, since time.Time, timeout time.Duration) outageNotice {
	t.Helper()
	var notices []outageNotice // the partner_unreachable notices in c so far (known unset)
	var logged map[string]time.Time
	deadline := time.Now().Add(timeout)
	for {
		notices = unreachableNotices(t, c, partner)
		logged = loggedNotices(own, partner, since)
		for _, n := range notices {
			if at, ok := logged[n.ref]; ok {
				n.known = at
				return n
			}
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no notice of this outage of %s in the writer's chat within %s: notices there %+v; correlation IDs %s logged since %s: %v",
		partner, timeout, notices, own.Domain, since.Format(time.RFC3339Nano), logged)
	return outageNotice{}
}

// unreachableNotices lists the gateway's partner_unreachable notices about partner in c, with
// their correlation IDs and when they arrived.
func unreachableNotices(t *testing.T, c chat, partner string) []outageNotice {
	t.Helper()
	var out []outageNotice
	add := func(body string, at time.Time) {
		if !strings.Contains(body, partner) || !containsAny(body, unreachableWords) {
			return
		}
		if m := referenceRE.FindStringSubmatch(body); m != nil {
			out = append(out, outageNotice{ref: m[1], seen: at})
		}
	}
	switch c := c.(type) {
	case *matrixChat:
		for _, e := range c.cl().Events(func(e *mevent.Event) bool {
			m, isMsg := e.Content.Parsed.(*mevent.MessageEventContent)
			return isMsg && e.RoomID == c.room && m.MsgType == mevent.MsgNotice && e.Sender == c.p.org.Bot
		}) {
			add(e.Content.AsMessage().Body, c.cl().ArrivedAt(e))
		}
	case *xmppChat:
		for _, st := range c.cl().Received(func(st *gt.Stanza) bool { return st.XMLName.Local == "message" }) {
			if st.Attr("type") == "error" {
				if e := st.Child("", "error"); e != nil {
					add(e.String(), st.At)
				}
				continue
			}
			from := bare(st.Attr("from"))
			if from == c.p.org.UsersDomain || from == c.p.org.RoomsDomain || from == c.to {
				add(st.Body(), st.At)
			}
		}
	default:
		t.Fatalf("no notices in %T", c)
	}
	return out
}

// loggedNotices returns the correlation IDs of the partner_unreachable notices about partner
// that g logged after since, with the time of each line.
func loggedNotices(g *gt.Gateway, partner string, since time.Time) map[string]time.Time {
	out := map[string]time.Time{}
	for _, l := range logLines(g, since, func(l string) bool {
		return strings.Contains(l, "telling the user: partner_unreachable") && strings.Contains(l, "partner="+partner)
	}) {
		if _, rest, ok := strings.Cut(l.text, "correlation="); ok {
			corr, _, _ := strings.Cut(rest, " ")
			if _, seen := out[corr]; !seen {
				out[corr] = l.at
			}
		}
	}
	return out
}

// countTexts counts the messages with the text from the person in c.
func countTexts(c chat, from person, text string) int {
	n := 0
	for _, x := range c.texts(from) {
		if x.text == text {
			n++
		}
	}
	return n
}

func TestPartnerDownMatrixWrites(t *testing.T) {
	t.Parallel()
	partnerStaysDown(t, matrixXMPPPair(t), true)
}

func TestPartnerDownXMPPWrites(t *testing.T) {
	t.Parallel()
	partnerStaysDown(t, matrixXMPPPair(t), false)
}
