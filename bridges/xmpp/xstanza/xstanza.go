// Package xstanza is the XMPP adapter's wire vocabulary for what it reads: the namespaces of the
// XEPs it speaks, the incoming stanza structs, bounded decoding, and the checks on IDs, fallbacks and
// timestamps. It knows nothing of MIMI or the bus (bridges/xmpp does the bridging).
package xstanza

import (
	"crypto/rand"
	"encoding/hex"
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
	NSReceipts   = "urn:xmpp:receipts"                      // XEP-0184
	NSMarkers    = "urn:xmpp:chat-markers:0"                // XEP-0333
	NSReactions  = "urn:xmpp:reactions:0"                   // XEP-0444
	NSReply      = "urn:xmpp:reply:0"                       // XEP-0461
	NSFallback   = "urn:xmpp:fallback:0"                    // XEP-0428
	NSCorrect    = "urn:xmpp:message-correct:0"             // XEP-0308
	NSRetract    = "urn:xmpp:message-retract:1"             // XEP-0424
	NSOOB        = "jabber:x:oob"                           // XEP-0066
	NSSID        = "urn:xmpp:sid:0"                         // XEP-0359
	NSOccupantID = "urn:xmpp:occupant-id:0"                 // XEP-0421
	NSDelay      = "urn:xmpp:delay"                         // XEP-0203
	NSChatStates = "http://jabber.org/protocol/chatstates"  // XEP-0085
	NSMUC        = "http://jabber.org/protocol/muc"         // XEP-0045
	NSMUCUser    = "http://jabber.org/protocol/muc#user"    // XEP-0045
	NSDiscoInfo  = "http://jabber.org/protocol/disco#info"  // XEP-0030
	NSDiscoItems = "http://jabber.org/protocol/disco#items" // XEP-0030
	NSPing       = "urn:xmpp:ping"                          // XEP-0199
	NSCommands   = "http://jabber.org/protocol/commands"    // XEP-0050
	NSStanzas    = "urn:ietf:params:xml:ns:xmpp-stanzas"    // RFC 6120 stanza errors
	NSHints      = "urn:xmpp:hints"                         // XEP-0334
	NSOMEMO      = "eu.siacs.conversations.axolotl"         // XEP-0384 (legacy namespace)
	NSOMEMO2     = "urn:xmpp:omemo:2"                       // XEP-0384
	NSMUCStable  = "http://jabber.org/protocol/muc#stable_id"
	NSStanzaID   = "urn:xmpp:sid:0"
)

// Limits on what a stanza may carry before the adapter refuses it.
const (
	// MaxStanzaBytes bounds the text (character data and attribute values) of one stanza the
	// adapter decodes; the rest of a larger stanza is skipped.
	MaxStanzaBytes = 512 << 10
	// MaxIDLen bounds stanza IDs and referenced IDs.
	MaxIDLen = 256
	// MaxReactions bounds the reactions of one XEP-0444 element.
	MaxReactions = 32
	// MaxReactionLen bounds one reaction's text.
	MaxReactionLen = 64
	// MaxURLLen bounds OOB URLs.
	MaxURLLen = 2048
	// MaxNickLen bounds MUC nicknames (the resourcepart limit of RFC 7622).
	MaxNickLen = 1023
)

// ErrTooLarge is returned by the limited reader when a stanza exceeds MaxStanzaBytes.
var ErrTooLarge = errors.New("stanza too large")

// IDElem is an element whose id attribute is all that matters (origin-id, replace, retract, receipts, markers).
type IDElem struct {
	ID string `xml:"id,attr"`
}

// InBody is a message body with its language.
type InBody struct {
	Lang string `xml:"http://www.w3.org/XML/1998/namespace lang,attr"`
	Text string `xml:",chardata"`
}

// InFallbackBody is the range of a body that a fallback covers.
type InFallbackBody struct {
	Start *int `xml:"start,attr"`
	End   *int `xml:"end,attr"`
}

// InFallback is an XEP-0428 fallback indication.
type InFallback struct {
	For  string           `xml:"for,attr"`
	Body []InFallbackBody `xml:"body"`
}

// InReactions is an XEP-0444 reactions element: the sender's full set on a message.
type InReactions struct {
	ID       string   `xml:"id,attr"`
	Reaction []string `xml:"reaction"`
}

// InReply is an XEP-0461 reply reference.
type InReply struct {
	To string `xml:"to,attr"`
	ID string `xml:"id,attr"`
}

// InOOB is an XEP-0066 out-of-band link.
type InOOB struct {
	URL  string `xml:"url"`
	Desc string `xml:"desc"`
}

// InStanzaID is an XEP-0359 stanza-id.
type InStanzaID struct {
	ID string `xml:"id,attr"`
	By string `xml:"by,attr"`
}

// InDelay is an XEP-0203 delay stamp.
type InDelay struct {
	Stamp string `xml:"stamp,attr"`
}

// Present is an empty element whose presence is the information.
type Present struct{}

// InError is a stanza error.
type InError struct {
	Type string `xml:"type,attr"`
}

// InMessage is what the adapter reads from a <message/>. Unknown children are ignored; children in
// a namespace other than the one expected do not match and are ignored too.
// InMessage is an incoming message stanza, bounded to what the adapter reads.
type InMessage struct {
	XMLName xml.Name
	Lang    string   `xml:"http://www.w3.org/XML/1998/namespace lang,attr"`
	From    string   `xml:"from,attr"`
	To      string   `xml:"to,attr"`
	ID      string   `xml:"id,attr"`
	Type    string   `xml:"type,attr"`
	Body    []InBody `xml:"body"`
	Subject *string  `xml:"subject"`

	ReceiptRequest *Present `xml:"urn:xmpp:receipts request"`
	Received       *IDElem  `xml:"urn:xmpp:receipts received"`

	Markable     *Present `xml:"urn:xmpp:chat-markers:0 markable"`
	Displayed    *IDElem  `xml:"urn:xmpp:chat-markers:0 displayed"`
	MarkReceived *IDElem  `xml:"urn:xmpp:chat-markers:0 received"`
	Acknowledged *IDElem  `xml:"urn:xmpp:chat-markers:0 acknowledged"`

	Reactions *InReactions `xml:"urn:xmpp:reactions:0 reactions"`
	Reply     *InReply     `xml:"urn:xmpp:reply:0 reply"`
	Fallback  []InFallback `xml:"urn:xmpp:fallback:0 fallback"`
	Replace   *IDElem      `xml:"urn:xmpp:message-correct:0 replace"`
	Retract   *IDElem      `xml:"urn:xmpp:message-retract:1 retract"`
	OOB       []InOOB      `xml:"jabber:x:oob x"`
	OriginID  *IDElem      `xml:"urn:xmpp:sid:0 origin-id"`
	StanzaID  []InStanzaID `xml:"urn:xmpp:sid:0 stanza-id"`
	Delay     *InDelay     `xml:"urn:xmpp:delay delay"`

	Active    *Present `xml:"http://jabber.org/protocol/chatstates active"`
	Composing *Present `xml:"http://jabber.org/protocol/chatstates composing"`
	Paused    *Present `xml:"http://jabber.org/protocol/chatstates paused"`
	Inactive  *Present `xml:"http://jabber.org/protocol/chatstates inactive"`
	Gone      *Present `xml:"http://jabber.org/protocol/chatstates gone"`

	OMEMO  *Present `xml:"eu.siacs.conversations.axolotl encrypted"`
	OMEMO2 *Present `xml:"urn:xmpp:omemo:2 encrypted"`

	MUCUser *InMUCUser `xml:"http://jabber.org/protocol/muc#user x"`
	Error   *InError   `xml:"error"`
}

// InMUCInvite is a mediated MUC invitation.
type InMUCInvite struct {
	To     string `xml:"to,attr"`
	Reason string `xml:"reason"`
}

// InMUCUser is the MUC user element of a message.
type InMUCUser struct {
	Invite []InMUCInvite `xml:"invite"`
}

// InHistory is the history request of a MUC join.
type InHistory struct {
	MaxStanzas string `xml:"maxstanzas,attr"`
	MaxChars   string `xml:"maxchars,attr"`
	Seconds    string `xml:"seconds,attr"`
	Since      string `xml:"since,attr"`
}

// InMUC is the MUC element of a join presence.
type InMUC struct {
	History  *InHistory `xml:"history"`
	Password string     `xml:"password"`
}

// InPresence is what the adapter reads from a <presence/>.
// InPresence is an incoming presence stanza.
type InPresence struct {
	XMLName xml.Name
	Lang    string   `xml:"http://www.w3.org/XML/1998/namespace lang,attr"`
	From    string   `xml:"from,attr"`
	To      string   `xml:"to,attr"`
	ID      string   `xml:"id,attr"`
	Type    string   `xml:"type,attr"`
	MUC     *InMUC   `xml:"http://jabber.org/protocol/muc x"`
	Error   *InError `xml:"error"`
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
		return nil, ErrTooLarge
	}
	return t, nil
}

// Decode decodes the stanza that starts with start and continues in r into v, reading at
// most MaxStanzaBytes of text. On error the caller's handler returns nil and mellium skips the
// rest of the stanza.
func Decode(r xml.TokenReader, start *xml.StartElement, v any) error {
	lr := &limitedReader{r: xmlstream.MultiReader(xmlstream.Token(*start), r), max: MaxStanzaBytes}
	if err := xml.NewTokenDecoder(lr).Decode(v); err != nil {
		if errors.Is(err, ErrTooLarge) {
			return err
		}
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("decode %s: truncated: %w", start.Name.Local, err)
		}
		return fmt.Errorf("decode %s: %w", start.Name.Local, err)
	}
	return nil
}

// Text returns the message body: the body without xml:lang, else the first body. ok is false when
// the message has no body.
func (m *InMessage) Text() (string, bool) {
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

// IsChatStateOnly reports whether the message carries nothing but XEP-0085 chat states (and
// maybe hints), which the adapter drops without an error.
func (m *InMessage) IsChatStateOnly() bool {
	hasState := m.Active != nil || m.Composing != nil || m.Paused != nil || m.Inactive != nil || m.Gone != nil
	return hasState && len(m.Body) == 0 && m.Reactions == nil && m.Retract == nil && m.Displayed == nil &&
		m.Received == nil && m.MarkReceived == nil && len(m.OOB) == 0 && m.Subject == nil
}

// NativeID returns the ID the client gave the message: its XEP-0359 origin-id, else its id, else
// a random one (such a stanza cannot be referenced later anyway).
func (m *InMessage) NativeID() string {
	if m.OriginID != nil && ValidID(m.OriginID.ID) {
		return m.OriginID.ID
	}
	if ValidID(m.ID) {
		return m.ID
	}
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "gw-" + hex.EncodeToString(b[:])
}

// SentAt returns when the message was sent: at, when it arrived, or an XEP-0203 delay stamp that
// is valid, not in the future and at most a day old.
func (m *InMessage) SentAt(at time.Time) time.Time {
	if m.Delay == nil {
		return at
	}
	t, err := ParseStamp(m.Delay.Stamp)
	if err != nil || t.After(at) || at.Sub(t) > 24*time.Hour {
		return at
	}
	return t
}

// StripFallback removes the XEP-0428 fallback ranges for namespace ns from body. Ranges are in
// Unicode code points (XEP-0426); invalid or overlapping ranges leave the body unchanged, since a
// visible quote is better than a lost message.
func StripFallback(body string, fbs []InFallback, ns string) string {
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

// ParseStamp parses an XEP-0082 DateTime. Anything else is an error; callers then use the time the
// stanza arrived.
func ParseStamp(s string) (time.Time, error) {
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

// ValidID reports whether a stanza ID or referenced ID is usable: non-empty, bounded, UTF-8
// without control characters.
func ValidID(s string) bool {
	if s == "" || len(s) > MaxIDLen || !utf8.ValidString(s) {
		return false
	}
	for _, c := range s {
		if c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

// Unmarshal decodes XML the gateway wrote itself (stored history payloads).
func Unmarshal(b []byte, v any) error { return xml.Unmarshal(b, v) }

// InIQ is what the adapter reads from an <iq/>.
type InIQ struct {
	XMLName xml.Name
	From    string `xml:"from,attr"`
	To      string `xml:"to,attr"`
	ID      string `xml:"id,attr"`
	Type    string `xml:"type,attr"`
	Info    *struct {
		Node string `xml:"node,attr"`
	} `xml:"http://jabber.org/protocol/disco#info query"`
	Items *struct {
		Node string `xml:"node,attr"`
	} `xml:"http://jabber.org/protocol/disco#items query"`
	Ping    *Present      `xml:"urn:xmpp:ping ping"`
	Admin   *InAdminQuery `xml:"http://jabber.org/protocol/muc#admin query"`
	Command *InCommand    `xml:"http://jabber.org/protocol/commands command"`
}

// InCommand is an incoming XEP-0050 command element.
type InCommand struct {
	Node      string `xml:"node,attr"`
	Action    string `xml:"action,attr"`
	SessionID string `xml:"sessionid,attr"`
	Form      *struct {
		Type   string `xml:"type,attr"`
		Fields []struct {
			Var    string   `xml:"var,attr"`
			Values []string `xml:"value"`
		} `xml:"field"`
	} `xml:"jabber:x:data x"`
}

// InAdminQuery is a muc#admin query (XEP-0045 §9, §10).
type InAdminQuery struct {
	Items []InAdminItem `xml:"item"`
}

// InAdminItem is one item of a muc#admin query.
type InAdminItem struct {
	Affiliation string `xml:"affiliation,attr"`
	Role        string `xml:"role,attr"`
	JID         string `xml:"jid,attr"`
	Nick        string `xml:"nick,attr"`
	Reason      string `xml:"reason"`
}

// Addressing returns the from, to, id and type attributes of a stanza's start element, for an
// error answer to a stanza that could not be decoded.
func Addressing(start *xml.StartElement) (from, to, id, typ string) {
	for _, at := range start.Attr {
		switch at.Name.Local {
		case "from":
			from = at.Value
		case "to":
			to = at.Value
		case "id":
			id = at.Value
		case "type":
			typ = at.Value
		}
	}
	return from, to, id, typ
}
