package xstanza

import (
	"encoding/xml"
	"time"
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
func StanzaError(typ, condition, text string) *OutError {
	e := &OutError{Type: typ, Condition: OutCondition{XMLName: xml.Name{Space: NSStanzas, Local: condition}}}
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
	Name string `xml:"name,attr,omitempty"`
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
	Error   *OutError
}

// Stamp formats t as an XEP-0082 date-time in UTC with milliseconds.
func Stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }
