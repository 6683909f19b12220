package xmpp

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"mellium.im/xmlstream"
)

// Namespaces of the XEPs the adapter speaks.
const (
	nsReceipts   = "urn:xmpp:receipts"                      // XEP-0184
	nsMarkers    = "urn:xmpp:chat-markers:0"                // XEP-0333
	nsReactions  = "urn:xmpp:reactions:0"                   // XEP-0444
	nsReply      = "urn:xmpp:reply:0"                       // XEP-0461
	nsFallback   = "urn:xmpp:fallback:0"                    // XEP-0428
	nsCorrect    = "urn:xmpp:message-correct:0"             // XEP-0308
	nsRetract    = "urn:xmpp:message-retract:1"             // XEP-0424
	nsOOB        = "jabber:x:oob"                           // XEP-0066
	nsSID        = "urn:xmpp:sid:0"                         // XEP-0359
	nsOccupantID = "urn:xmpp:occupant-id:0"                 // XEP-0421
	nsDelay      = "urn:xmpp:delay"                         // XEP-0203
	nsChatStates = "http://jabber.org/protocol/chatstates"  // XEP-0085
	nsMUC        = "http://jabber.org/protocol/muc"         // XEP-0045
	nsMUCUser    = "http://jabber.org/protocol/muc#user"    // XEP-0045
	nsDiscoInfo  = "http://jabber.org/protocol/disco#info"  // XEP-0030
	nsDiscoItems = "http://jabber.org/protocol/disco#items" // XEP-0030
	nsPing       = "urn:xmpp:ping"                          // XEP-0199
	nsStanzas    = "urn:ietf:params:xml:ns:xmpp-stanzas"    // RFC 6120 stanza errors
	nsHints      = "urn:xmpp:hints"                         // XEP-0334
	nsOMEMO      = "eu.siacs.conversations.axolotl"         // XEP-0384 (legacy namespace)
	nsOMEMO2     = "urn:xmpp:omemo:2"                       // XEP-0384
	nsMUCStable  = "http://jabber.org/protocol/muc#stable_id"
	nsStanzaID   = "urn:xmpp:sid:0"
)

// Limits on what a stanza may carry before the adapter refuses it.
const (
	// maxStanzaBytes bounds the text (character data and attribute values) of one stanza the
	// adapter decodes; the rest of a larger stanza is skipped.
	maxStanzaBytes = 512 << 10
	// maxIDLen bounds stanza IDs and referenced IDs.
	maxIDLen = 256
	// maxReactions bounds the reactions of one XEP-0444 element.
	maxReactions = 32
	// maxReactionLen bounds one reaction's text.
	maxReactionLen = 64
	// maxURLLen bounds OOB URLs.
	maxURLLen = 2048
	// maxNickLen bounds MUC nicknames (the resourcepart limit of RFC 7622).
	maxNickLen = 1023
)

// errStanzaTooLarge is returned by the limited reader when a stanza exceeds maxStanzaBytes.
var errStanzaTooLarge = errors.New("stanza too large")

type idElem struct {
	ID string `xml:"id,attr"`
}

type inBody struct {
	Lang string `xml:"http://www.w3.org/XML/1998/namespace lang,attr"`
	Text string `xml:",chardata"`
}

type inFallbackBody struct {
	Start *int `xml:"start,attr"`
	End   *int `xml:"end,attr"`
}

type inFallback struct {
	For  string           `xml:"for,attr"`
	Body []inFallbackBody `xml:"body"`
}

type inReactions struct {
	ID       string   `xml:"id,attr"`
	Reaction []string `xml:"reaction"`
}

type inReply struct {
	To string `xml:"to,attr"`
	ID string `xml:"id,attr"`
}

type inOOB struct {
	URL  string `xml:"url"`
	Desc string `xml:"desc"`
}

type inStanzaID struct {
	ID string `xml:"id,attr"`
	By string `xml:"by,attr"`
}

type inDelay struct {
	Stamp string `xml:"stamp,attr"`
}

type present struct{}

type inError struct {
	Type string `xml:"type,attr"`
}

// inMessage is what the adapter reads from a <message/>. Unknown children are ignored; children in
// a namespace other than the one expected do not match and are ignored too.
type inMessage struct {
	XMLName xml.Name
	Lang    string   `xml:"http://www.w3.org/XML/1998/namespace lang,attr"`
	From    string   `xml:"from,attr"`
	To      string   `xml:"to,attr"`
	ID      string   `xml:"id,attr"`
	Type    string   `xml:"type,attr"`
	Body    []inBody `xml:"body"`
	Subject *string  `xml:"subject"`

	ReceiptRequest *present `xml:"urn:xmpp:receipts request"`
	Received       *idElem  `xml:"urn:xmpp:receipts received"`

	Markable     *present `xml:"urn:xmpp:chat-markers:0 markable"`
	Displayed    *idElem  `xml:"urn:xmpp:chat-markers:0 displayed"`
	MarkReceived *idElem  `xml:"urn:xmpp:chat-markers:0 received"`
	Acknowledged *idElem  `xml:"urn:xmpp:chat-markers:0 acknowledged"`

	Reactions *inReactions `xml:"urn:xmpp:reactions:0 reactions"`
	Reply     *inReply     `xml:"urn:xmpp:reply:0 reply"`
	Fallback  []inFallback `xml:"urn:xmpp:fallback:0 fallback"`
	Replace   *idElem      `xml:"urn:xmpp:message-correct:0 replace"`
	Retract   *idElem      `xml:"urn:xmpp:message-retract:1 retract"`
	OOB       []inOOB      `xml:"jabber:x:oob x"`
	OriginID  *idElem      `xml:"urn:xmpp:sid:0 origin-id"`
	StanzaID  []inStanzaID `xml:"urn:xmpp:sid:0 stanza-id"`
	Delay     *inDelay     `xml:"urn:xmpp:delay delay"`

	Active    *present `xml:"http://jabber.org/protocol/chatstates active"`
	Composing *present `xml:"http://jabber.org/protocol/chatstates composing"`
	Paused    *present `xml:"http://jabber.org/protocol/chatstates paused"`
	Inactive  *present `xml:"http://jabber.org/protocol/chatstates inactive"`
	Gone      *present `xml:"http://jabber.org/protocol/chatstates gone"`

	OMEMO  *present `xml:"eu.siacs.conversations.axolotl encrypted"`
	OMEMO2 *present `xml:"urn:xmpp:omemo:2 encrypted"`

	MUCUser *inMUCUser `xml:"http://jabber.org/protocol/muc#user x"`
	Error   *inError   `xml:"error"`
}

type inMUCInvite struct {
	To     string `xml:"to,attr"`
	Reason string `xml:"reason"`
}

type inMUCUser struct {
	Invite []inMUCInvite `xml:"invite"`
}

type inHistory struct {
	MaxStanzas string `xml:"maxstanzas,attr"`
	MaxChars   string `xml:"maxchars,attr"`
	Seconds    string `xml:"seconds,attr"`
	Since      string `xml:"since,attr"`
}

type inMUC struct {
	History  *inHistory `xml:"history"`
	Password string     `xml:"password"`
}

// inPresence is what the adapter reads from a <presence/>.
type inPresence struct {
	XMLName xml.Name
	Lang    string   `xml:"http://www.w3.org/XML/1998/namespace lang,attr"`
	From    string   `xml:"from,attr"`
	To      string   `xml:"to,attr"`
	ID      string   `xml:"id,attr"`
	Type    string   `xml:"type,attr"`
	MUC     *inMUC   `xml:"http://jabber.org/protocol/muc x"`
	Error   *inError `xml:"error"`
}

// limitedReader passes tokens through and fails once the stanza's text exceeds max bytes.
type limitedReader struct {
	r   xml.TokenReader
	n   int
	max int
}

// Token implements xml.TokenReader.
func (l *limitedReader) Token() (xml.Token, error) {
	t, err := l.r.Token()
	if err != nil {
		return t, err
	}
	switch v := t.(type) {
	case xml.CharData:
		l.n += len(v)
	case xml.StartElement:
		l.n += len(v.Name.Local) + len(v.Name.Space)
		for _, a := range v.Attr {
			l.n += len(a.Name.Local) + len(a.Name.Space) + len(a.Value)
		}
	}
	if l.n > l.max {
		return nil, errStanzaTooLarge
	}
	return t, nil
}

// decodeStanza decodes the stanza that starts with start and continues in r into v, reading at
// most maxStanzaBytes of text. On error the caller's handler returns nil and mellium skips the
// rest of the stanza.
func decodeStanza(r xml.TokenReader, start *xml.StartElement, v any) error {
	lr := &limitedReader{r: xmlstream.MultiReader(xmlstream.Token(*start), r), max: maxStanzaBytes}
	if err := xml.NewTokenDecoder(lr).Decode(v); err != nil {
		if errors.Is(err, errStanzaTooLarge) {
			return err
		}
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("decode %s: truncated: %w", start.Name.Local, err)
		}
		return fmt.Errorf("decode %s: %w", start.Name.Local, err)
	}
	return nil
}

// text returns the message body: the body without xml:lang, else the first body. ok is false when
// the message has no body.
func (m *inMessage) text() (string, bool) {
	if len(m.Body) == 0 {
		return "", false
	}
	for _, b := range m.Body {
		if b.Lang == "" {
			return b.Text, true
		}
	}
	return m.Body[0].Text, true
}

// isChatStateOnly reports whether the message carries nothing but XEP-0085 chat states (and
// maybe hints), which the adapter drops without an error.
func (m *inMessage) isChatStateOnly() bool {
	hasState := m.Active != nil || m.Composing != nil || m.Paused != nil || m.Inactive != nil || m.Gone != nil
	return hasState && len(m.Body) == 0 && m.Reactions == nil && m.Retract == nil && m.Displayed == nil &&
		m.Received == nil && m.MarkReceived == nil && len(m.OOB) == 0 && m.Subject == nil
}

// stripFallback removes the XEP-0428 fallback ranges for namespace ns from body. Ranges are in
// Unicode code points (XEP-0426); invalid or overlapping ranges leave the body unchanged, since a
// visible quote is better than a lost message.
func stripFallback(body string, fbs []inFallback, ns string) string {
	type rng struct{ s, e int }
	var rs []rng
	for _, fb := range fbs {
		if fb.For != ns {
			continue
		}
		for _, b := range fb.Body {
			if b.Start == nil || b.End == nil {
				// A fallback element without range covers the whole body (XEP-0428 §4).
				return ""
			}
			rs = append(rs, rng{*b.Start, *b.End})
		}
	}
	if len(rs) == 0 {
		return body
	}
	runes := []rune(body)
	keep := make([]bool, len(runes))
	for i := range keep {
		keep[i] = true
	}
	for _, r := range rs {
		if r.s < 0 || r.e < r.s || r.e > len(runes) {
			return body
		}
		for i := r.s; i < r.e; i++ {
			keep[i] = false
		}
	}
	var b strings.Builder
	for i, c := range runes {
		if keep[i] {
			b.WriteRune(c)
		}
	}
	return b.String()
}

// parseStamp parses an XEP-0082 DateTime. Anything else is an error; callers then use the time the
// stanza arrived.
func parseStamp(s string) (time.Time, error) {
	if len(s) > 64 {
		return time.Time{}, errors.New("timestamp too long")
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("parse XEP-0082 timestamp: %w", err)
	}
	if t.Year() < 1970 || t.Year() > 9999 {
		return time.Time{}, fmt.Errorf("timestamp %q out of range", s)
	}
	return t, nil
}

// validID reports whether a stanza ID or referenced ID is usable: non-empty, bounded, UTF-8
// without control characters.
func validID(s string) bool {
	if s == "" || len(s) > maxIDLen || !utf8.ValidString(s) {
		return false
	}
	for _, c := range s {
		if c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

// xmlUnmarshal decodes XML the gateway wrote itself (stored history payloads).
func xmlUnmarshal(b []byte, v any) error { return xml.Unmarshal(b, v) }
