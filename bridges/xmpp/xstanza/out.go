package xstanza

import (
	"encoding/xml"
	"strconv"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
)

// Outgoing stanzas, written with encoding/xml. Stanza elements have no namespace and so inherit
// the stream's (jabber:component:accept); payloads carry their own.

// OutEmpty is an outgoing empty element.
type OutEmpty struct{}

// OutID is an outgoing id element.
type OutID struct {
	ID string `xml:"id,attr"`
}

// OutStanzaID is an outgoing stanzaid element.
type OutStanzaID struct {
	ID string `xml:"id,attr"`
	By string `xml:"by,attr"`
}

// OutReactions is an outgoing reactions element.
type OutReactions struct {
	ID       string   `xml:"id,attr"`
	Reaction []string `xml:"reaction"`
}

// OutReply is an outgoing reply element.
type OutReply struct {
	To string `xml:"to,attr,omitempty"`
	ID string `xml:"id,attr"`
}

// OutFallbackBody is an outgoing fallback body element.
type OutFallbackBody struct {
	Start int `xml:"start,attr"`
	End   int `xml:"end,attr"`
}

// OutFallback is an outgoing fallback element.
type OutFallback struct {
	XMLName xml.Name         `xml:"urn:xmpp:fallback:0 fallback"`
	For     string           `xml:"for,attr"`
	Body    *OutFallbackBody `xml:"body"`
}

// OutOOB is an outgoing oob element.
type OutOOB struct {
	URL  string `xml:"url"`
	Desc string `xml:"desc,omitempty"`
}

// OutDelay is an outgoing delay element.
type OutDelay struct {
	From  string `xml:"from,attr,omitempty"`
	Stamp string `xml:"stamp,attr"`
}

// OutItem is an outgoing item element.
type OutItem struct {
	Affiliation string `xml:"affiliation,attr"`
	Role        string `xml:"role,attr"`
	JID         string `xml:"jid,attr,omitempty"`
	Nick        string `xml:"nick,attr,omitempty"`
}

// OutStatus is an outgoing status element.
type OutStatus struct {
	Code int `xml:"code,attr"`
}

// OutInvite is an outgoing invite element.
type OutInvite struct {
	From   string `xml:"from,attr,omitempty"`
	Reason string `xml:"reason,omitempty"`
}

// OutMUCUser is an outgoing muc user element.
type OutMUCUser struct {
	XMLName xml.Name    `xml:"http://jabber.org/protocol/muc#user x"`
	Invite  *OutInvite  `xml:"invite"`
	Item    *OutItem    `xml:"item"`
	Status  []OutStatus `xml:"status"`
}

// OutCondition is an outgoing condition element.
type OutCondition struct {
	XMLName xml.Name
}

// OutErrorText is an outgoing error text element.
type OutErrorText struct {
	XMLName xml.Name `xml:"urn:ietf:params:xml:ns:xmpp-stanzas text"`
	Text    string   `xml:",chardata"`
}

// OutError is an outgoing error element.
type OutError struct {
	XMLName   xml.Name `xml:"error"`
	Type      string   `xml:"type,attr"`
	By        string   `xml:"by,attr,omitempty"`
	Condition OutCondition
	Text      *OutErrorText
}

// StanzaError builds an RFC 6120 stanza error.
func StanzaError(typ stanza.ErrorType, condition stanza.Condition, text string) *OutError {
	e := &OutError{Type: string(typ), Condition: OutCondition{XMLName: xml.Name{Space: NSStanzas, Local: string(condition)}}}
	if text != "" {
		e.Text = &OutErrorText{Text: text}
	}
	return e
}

// OutMessage is an outgoing message element.
type OutMessage struct {
	XMLName xml.Name `xml:"message"`
	From    string   `xml:"from,attr"`
	To      string   `xml:"to,attr"`
	ID      string   `xml:"id,attr,omitempty"`
	Type    string   `xml:"type,attr,omitempty"`
	Subject *string  `xml:"subject"`
	Body    *string  `xml:"body"`

	Request   *OutEmpty     `xml:"urn:xmpp:receipts request"`
	Received  *OutID        `xml:"urn:xmpp:receipts received"`
	Markable  *OutEmpty     `xml:"urn:xmpp:chat-markers:0 markable"`
	Displayed *OutID        `xml:"urn:xmpp:chat-markers:0 displayed"`
	Reactions *OutReactions `xml:"urn:xmpp:reactions:0 reactions"`
	Reply     *OutReply     `xml:"urn:xmpp:reply:0 reply"`
	Fallback  []OutFallback
	Replace   *OutID       `xml:"urn:xmpp:message-correct:0 replace"`
	Retract   *OutID       `xml:"urn:xmpp:message-retract:1 retract"`
	OOB       *OutOOB      `xml:"jabber:x:oob x"`
	OriginID  *OutID       `xml:"urn:xmpp:sid:0 origin-id"`
	StanzaID  *OutStanzaID `xml:"urn:xmpp:sid:0 stanza-id"`
	Occupant  *OutID       `xml:"urn:xmpp:occupant-id:0 occupant-id"`
	Delay     *OutDelay    `xml:"urn:xmpp:delay delay"`
	Store     *OutEmpty    `xml:"urn:xmpp:hints store"`
	MUCUser   *OutMUCUser
	Error     *OutError
}

// Payload is the part of a groupchat message kept for history: everything but the addressing.
type Payload struct {
	XMLName   xml.Name      `xml:"p"`
	Body      *string       `xml:"body"`
	Reactions *OutReactions `xml:"urn:xmpp:reactions:0 reactions"`
	Reply     *OutReply     `xml:"urn:xmpp:reply:0 reply"`
	Fallback  []OutFallback
	Replace   *OutID  `xml:"urn:xmpp:message-correct:0 replace"`
	OOB       *OutOOB `xml:"jabber:x:oob x"`
	Occupant  *OutID  `xml:"urn:xmpp:occupant-id:0 occupant-id"`
}

// Apply copies the payload into m.
func (p *Payload) Apply(m *OutMessage) {
	m.Body, m.Reactions, m.Reply, m.Fallback, m.Replace, m.OOB, m.Occupant = p.Body, p.Reactions, p.Reply, p.Fallback, p.Replace, p.OOB, p.Occupant
}

// PayloadOf is the payload of m.
func PayloadOf(m *OutMessage) Payload {
	return Payload{Body: m.Body, Reactions: m.Reactions, Reply: m.Reply, Fallback: m.Fallback, Replace: m.Replace, OOB: m.OOB, Occupant: m.Occupant}
}

// OutPresence is an outgoing presence element.
type OutPresence struct {
	XMLName  xml.Name `xml:"presence"`
	From     string   `xml:"from,attr"`
	To       string   `xml:"to,attr"`
	ID       string   `xml:"id,attr,omitempty"`
	Type     string   `xml:"type,attr,omitempty"`
	MUCUser  *OutMUCUser
	Occupant *OutID `xml:"urn:xmpp:occupant-id:0 occupant-id"`
	Error    *OutError
}

// OutIdentity is an outgoing identity element.
type OutIdentity struct {
	Category string `xml:"category,attr"`
	Type     string `xml:"type,attr"`
	Name     string `xml:"name,attr,omitempty"`
}

// OutFeature is an outgoing feature element.
type OutFeature struct {
	Var string `xml:"var,attr"`
}

// OutDiscoInfo is an outgoing disco info element.
type OutDiscoInfo struct {
	XMLName    xml.Name      `xml:"http://jabber.org/protocol/disco#info query"`
	Node       string        `xml:"node,attr,omitempty"`
	Identities []OutIdentity `xml:"identity"`
	Features   []OutFeature  `xml:"feature"`
}

// OutDiscoItem is an outgoing disco item element.
type OutDiscoItem struct {
	JID  string `xml:"jid,attr"`
	Node string `xml:"node,attr,omitempty"`
	Name string `xml:"name,attr,omitempty"`
}

// OutCommand is an outgoing XEP-0050 command element.
type OutCommand struct {
	XMLName   xml.Name  `xml:"http://jabber.org/protocol/commands command"`
	Node      string    `xml:"node,attr"`
	SessionID string    `xml:"sessionid,attr,omitempty"`
	Status    string    `xml:"status,attr"`
	Note      *OutNote  `xml:"note"`
	Form      *OutXForm `xml:"jabber:x:data x"`
}

// OutNote is a command's note.
type OutNote struct {
	Type string `xml:"type,attr"`
	Text string `xml:",chardata"`
}

// OutXForm is an outgoing XEP-0004 data form.
type OutXForm struct {
	Type         string         `xml:"type,attr"`
	Title        string         `xml:"title,omitempty"`
	Instructions string         `xml:"instructions,omitempty"`
	Fields       []OutFormField `xml:"field"`
}

// OutFormField is a data form field.
type OutFormField struct {
	Var      string   `xml:"var,attr"`
	Type     string   `xml:"type,attr,omitempty"`
	Label    string   `xml:"label,attr,omitempty"`
	Required *Present `xml:"required"`
	Value    string   `xml:"value,omitempty"`
}

// OutDiscoItems is an outgoing disco items element.
type OutDiscoItems struct {
	XMLName xml.Name       `xml:"http://jabber.org/protocol/disco#items query"`
	Node    string         `xml:"node,attr,omitempty"`
	Items   []OutDiscoItem `xml:"item"`
}

// OutIQ is an outgoing iq element.
type OutIQ struct {
	XMLName xml.Name `xml:"iq"`
	From    string   `xml:"from,attr"`
	To      string   `xml:"to,attr,omitempty"`
	ID      string   `xml:"id,attr"`
	Type    string   `xml:"type,attr"`
	Info    *OutDiscoInfo
	Items   *OutDiscoItems
	Command *OutCommand
	Error   *OutError
}

// Stamp formats t as an XEP-0082 date-time in UTC with milliseconds.
func Stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// Features advertised through XEP-0030.
var (
	UserFeatures = []string{NSDiscoInfo, NSDiscoItems, NSReceipts, NSMarkers, NSReactions, NSReply, NSFallback,
		NSCorrect, NSRetract, NSOOB, NSSID, NSPing}
	RoomsServiceFeatures = []string{NSDiscoInfo, NSDiscoItems, NSMUC, NSPing}
	RoomFeatures         = []string{NSDiscoInfo, NSDiscoItems, NSMUC, "muc_persistent", "muc_membersonly", "muc_nonanonymous",
		"muc_unsecured", NSSID, NSMUCStable, NSOccupantID, NSReactions, NSReply, NSFallback, NSCorrect, NSRetract, NSMarkers, NSOOB, NSPing}
)

// Features is vars as disco#info features.
func Features(vars []string) []OutFeature {
	out := make([]OutFeature, len(vars))
	for i, v := range vars {
		out[i] = OutFeature{Var: v}
	}
	return out
}

// Reflection copies what the gateway understood of an occupant's message, for the other
// occupants. Unknown payloads are not reflected.
func Reflection(m *InMessage) *OutMessage {
	out := &OutMessage{ID: m.ID}
	if !ValidID(m.ID) {
		out.ID = ""
	}
	if body, ok := m.Text(); ok {
		out.Body = &body
	}
	if m.OriginID != nil && ValidID(m.OriginID.ID) {
		out.OriginID = &OutID{ID: m.OriginID.ID}
	}
	if m.Reply != nil && ValidID(m.Reply.ID) {
		out.Reply = &OutReply{To: m.Reply.To, ID: m.Reply.ID}
		if _, err := jid.Parse(m.Reply.To); err != nil {
			out.Reply.To = ""
		}
	}
	for _, fb := range m.Fallback {
		if fb.For != NSReply && fb.For != NSRetract {
			continue
		}
		f := OutFallback{For: fb.For}
		if len(fb.Body) > 0 && fb.Body[0].Start != nil && fb.Body[0].End != nil {
			f.Body = &OutFallbackBody{Start: *fb.Body[0].Start, End: *fb.Body[0].End}
		}
		out.Fallback = append(out.Fallback, f)
	}
	if m.Replace != nil && ValidID(m.Replace.ID) {
		out.Replace = &OutID{ID: m.Replace.ID}
	}
	if m.Retract != nil && ValidID(m.Retract.ID) {
		out.Retract = &OutID{ID: m.Retract.ID}
	}
	if m.Reactions != nil && ValidID(m.Reactions.ID) {
		rs := &OutReactions{ID: m.Reactions.ID}
		for i, r := range m.Reactions.Reaction {
			if i >= MaxReactions {
				break
			}
			rs.Reaction = append(rs.Reaction, r)
		}
		out.Reactions = rs
	}
	if m.Displayed != nil && ValidID(m.Displayed.ID) {
		out.Displayed = &OutID{ID: m.Displayed.ID}
	}
	if len(m.OOB) > 0 {
		out.OOB = &OutOOB{URL: m.OOB[0].URL, Desc: m.OOB[0].Desc}
	}
	return out
}

// HistoryLimit reads a non-negative history limit attribute.
func HistoryLimit(s string) (int, bool) {
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 {
		return 0, false
	}
	return min(v, 1<<30), true
}

// NewestWithin returns the index of the oldest of the newest stanzas whose sizes (oldest first)
// add up to at most max: history is cut from the old end.
func NewestWithin(sizes []int, max int) int {
	total := 0
	for i := len(sizes) - 1; i >= 0; i-- {
		total += sizes[i]
		if total > max {
			return i + 1
		}
	}
	return 0
}
