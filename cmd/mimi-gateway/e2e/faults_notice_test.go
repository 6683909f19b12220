package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	mevent "maunium.net/go/mautrix/event"

	gt "github.com/mimi-gateway/mimi-gateway/cmd/mimi-gateway/internal/gatewaytest"
)

// The notice tests: a message into a room whose partner stays down for two minutes. The person
// who wrote it sees the gateway's notice that the partner cannot be reached (the Matrix user the
// bot's m.notice, the XMPP user a message from the gateway) within 15 s of the failure being
// known, which is at once: the partner is down before the message is typed, so the gateway's
// first attempt fails. After the partner is back the message arrives, once: nothing is silently
// dropped. (Unknown users are the scenarios "unknown user from A/B" of TestPairings.)

// unreachableWords are the partner_unreachable notice's words (English or German) that name
// the outage; the notice also names the partner.
var unreachableWords = []string{"cannot be reached", "nicht erreichbar"}

// partnerStaysDown kills the partner's gateway, has the writer write into the chat, waits for
// the notice, keeps the partner down for two minutes and checks that the message arrives once
// after it is back.
func partnerStaysDown(t *testing.T, f *faultPair, writerIsA bool) {
	writer, reader, cw, cr, partner := f.p.a, f.p.b, f.ca, f.cb, f.p.gwB
	if !writerIsA {
		writer, reader, cw, cr, partner = f.p.b, f.p.a, f.cb, f.ca, f.p.gwA
	}
	partner.Kill()
	killed := time.Now()
	text := "Nachricht, während " + partner.Domain + " nicht erreichbar ist"
	typed := time.Now()
	cw.send(t, text)
	seen := waitNoticeWords(t, cw, partnerDownFor, typed, partner.Domain, unreachableWords)
	t.Logf("partner %s down: %s saw the notice %.1f s after typing the message (the first attempt to reach the partner fails at once)",
		partner.Domain, writer.URI(), seen.Sub(typed).Seconds())
	if d := seen.Sub(typed); d > noticeWithin {
		t.Errorf("the notice came %.1f s after the message was typed into a room whose partner was down (more than %s)", d.Seconds(), noticeWithin)
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

// waitNoticeWords waits for a notice of the gateway in c that arrived after since, names the
// partner and has one of words, and returns when it arrived. A notice that arrived before since
// (about an earlier outage of the same partner) does not count.
func waitNoticeWords(t *testing.T, c chat, timeout time.Duration, since time.Time, partner string, words []string) time.Time {
	t.Helper()
	ok := func(body string) bool { return strings.Contains(body, partner) && containsAny(body, words) }
	what := fmt.Sprintf("a notice naming %s with one of %q that arrived after %s", partner, words, since.Format("15:04:05.000"))
	switch c := c.(type) {
	case *matrixChat:
		e := c.cl().WaitEvent(t, timeout, what, func(e *mevent.Event) bool {
			m, isMsg := e.Content.Parsed.(*mevent.MessageEventContent)
			return isMsg && e.RoomID == c.room && m.MsgType == mevent.MsgNotice && e.Sender == c.p.org.Bot && ok(m.Body) &&
				!time.UnixMilli(e.Timestamp).Before(since.Truncate(time.Millisecond)) // sent by the homeserver after since
		})
		return c.cl().ArrivedAt(e)
	case *xmppChat:
		st := c.cl().Expect(t, timeout, what, func(st *gt.Stanza) bool {
			if st.XMLName.Local != "message" || st.At.Before(since) {
				return false
			}
			if st.Attr("type") == "error" {
				e := st.Child("", "error")
				return e != nil && ok(e.String())
			}
			from := bare(st.Attr("from"))
			fromGateway := from == c.p.org.UsersDomain || from == c.p.org.RoomsDomain || from == c.to
			return fromGateway && ok(st.Body())
		})
		return st.At
	}
	t.Fatalf("no notices in %T", c)
	return time.Time{}
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
