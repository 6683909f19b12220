package xmpp

import (
	"encoding/xml"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Outgoing stanzas, written with encoding/xml. Stanza elements have no namespace and so inherit
// the stream's (jabber:component:accept); payloads carry their own.

type outEmpty struct{}

type outID struct {
	ID string `xml:"id,attr"`
}

type outStanzaID struct {
	ID string `xml:"id,attr"`
	By string `xml:"by,attr"`
}

type outReactions struct {
	ID       string   `xml:"id,attr"`
	Reaction []string `xml:"reaction"`
}

type outReply struct {
	To string `xml:"to,attr,omitempty"`
	ID string `xml:"id,attr"`
}

type outFallbackBody struct {
	Start int `xml:"start,attr"`
	End   int `xml:"end,attr"`
}

type outFallback struct {
	XMLName xml.Name         `xml:"urn:xmpp:fallback:0 fallback"`
	For     string           `xml:"for,attr"`
	Body    *outFallbackBody `xml:"body"`
}

type outOOB struct {
	URL  string `xml:"url"`
	Desc string `xml:"desc,omitempty"`
}

type outDelay struct {
	From  string `xml:"from,attr,omitempty"`
	Stamp string `xml:"stamp,attr"`
}

type outItem struct {
	Affiliation string `xml:"affiliation,attr"`
	Role        string `xml:"role,attr"`
	JID         string `xml:"jid,attr,omitempty"`
	Nick        string `xml:"nick,attr,omitempty"`
}

type outStatus struct {
	Code int `xml:"code,attr"`
}

type outInvite struct {
	From   string `xml:"from,attr,omitempty"`
	Reason string `xml:"reason,omitempty"`
}

type outMUCUser struct {
	XMLName xml.Name    `xml:"http://jabber.org/protocol/muc#user x"`
	Invite  *outInvite  `xml:"invite"`
	Item    *outItem    `xml:"item"`
	Status  []outStatus `xml:"status"`
}

type outCondition struct {
	XMLName xml.Name
}

type outErrorText struct {
	XMLName xml.Name `xml:"urn:ietf:params:xml:ns:xmpp-stanzas text"`
	Text    string   `xml:",chardata"`
}

type outError struct {
	XMLName   xml.Name `xml:"error"`
	Type      string   `xml:"type,attr"`
	By        string   `xml:"by,attr,omitempty"`
	Condition outCondition
	Text      *outErrorText
}

// stanzaError builds an RFC 6120 stanza error.
func stanzaError(typ, condition, text string) *outError {
	e := &outError{Type: typ, Condition: outCondition{XMLName: xml.Name{Space: nsStanzas, Local: condition}}}
	if text != "" {
		e.Text = &outErrorText{Text: text}
	}
	return e
}

type outMessage struct {
	XMLName xml.Name `xml:"message"`
	From    string   `xml:"from,attr"`
	To      string   `xml:"to,attr"`
	ID      string   `xml:"id,attr,omitempty"`
	Type    string   `xml:"type,attr,omitempty"`
	Subject *string  `xml:"subject"`
	Body    *string  `xml:"body"`

	Request   *outEmpty     `xml:"urn:xmpp:receipts request"`
	Received  *outID        `xml:"urn:xmpp:receipts received"`
	Markable  *outEmpty     `xml:"urn:xmpp:chat-markers:0 markable"`
	Displayed *outID        `xml:"urn:xmpp:chat-markers:0 displayed"`
	Reactions *outReactions `xml:"urn:xmpp:reactions:0 reactions"`
	Reply     *outReply     `xml:"urn:xmpp:reply:0 reply"`
	Fallback  []outFallback
	Replace   *outID       `xml:"urn:xmpp:message-correct:0 replace"`
	Retract   *outID       `xml:"urn:xmpp:message-retract:1 retract"`
	OOB       *outOOB      `xml:"jabber:x:oob x"`
	OriginID  *outID       `xml:"urn:xmpp:sid:0 origin-id"`
	StanzaID  *outStanzaID `xml:"urn:xmpp:sid:0 stanza-id"`
	Occupant  *outID       `xml:"urn:xmpp:occupant-id:0 occupant-id"`
	Delay     *outDelay    `xml:"urn:xmpp:delay delay"`
	Store     *outEmpty    `xml:"urn:xmpp:hints store"`
	MUCUser   *outMUCUser
	Error     *outError
}

// payload is the part of a groupchat message kept for history: everything but the addressing.
type payload struct {
	XMLName   xml.Name      `xml:"p"`
	Body      *string       `xml:"body"`
	Reactions *outReactions `xml:"urn:xmpp:reactions:0 reactions"`
	Reply     *outReply     `xml:"urn:xmpp:reply:0 reply"`
	Fallback  []outFallback
	Replace   *outID  `xml:"urn:xmpp:message-correct:0 replace"`
	OOB       *outOOB `xml:"jabber:x:oob x"`
	Occupant  *outID  `xml:"urn:xmpp:occupant-id:0 occupant-id"`
}

func (p *payload) apply(m *outMessage) {
	m.Body, m.Reactions, m.Reply, m.Fallback, m.Replace, m.OOB, m.Occupant = p.Body, p.Reactions, p.Reply, p.Fallback, p.Replace, p.OOB, p.Occupant
}

func payloadOf(m *outMessage) payload {
	return payload{Body: m.Body, Reactions: m.Reactions, Reply: m.Reply, Fallback: m.Fallback, Replace: m.Replace, OOB: m.OOB, Occupant: m.Occupant}
}

type outPresence struct {
	XMLName  xml.Name `xml:"presence"`
	From     string   `xml:"from,attr"`
	To       string   `xml:"to,attr"`
	ID       string   `xml:"id,attr,omitempty"`
	Type     string   `xml:"type,attr,omitempty"`
	MUCUser  *outMUCUser
	Occupant *outID `xml:"urn:xmpp:occupant-id:0 occupant-id"`
	Error    *outError
}

type outIdentity struct {
	Category string `xml:"category,attr"`
	Type     string `xml:"type,attr"`
	Name     string `xml:"name,attr,omitempty"`
}

type outFeature struct {
	Var string `xml:"var,attr"`
}

type outDiscoInfo struct {
	XMLName    xml.Name      `xml:"http://jabber.org/protocol/disco#info query"`
	Node       string        `xml:"node,attr,omitempty"`
	Identities []outIdentity `xml:"identity"`
	Features   []outFeature  `xml:"feature"`
}

type outDiscoItem struct {
	JID  string `xml:"jid,attr"`
	Name string `xml:"name,attr,omitempty"`
}

type outDiscoItems struct {
	XMLName xml.Name       `xml:"http://jabber.org/protocol/disco#items query"`
	Node    string         `xml:"node,attr,omitempty"`
	Items   []outDiscoItem `xml:"item"`
}

type outIQ struct {
	XMLName xml.Name `xml:"iq"`
	From    string   `xml:"from,attr"`
	To      string   `xml:"to,attr,omitempty"`
	ID      string   `xml:"id,attr"`
	Type    string   `xml:"type,attr"`
	Info    *outDiscoInfo
	Items   *outDiscoItems
	Error   *outError
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// metrics are the adapter's Prometheus metrics. Labels never carry room or user IDs.
type metrics struct {
	connected  *prometheus.GaugeVec
	reconnects *prometheus.CounterVec
	sent       *prometheus.CounterVec
	received   *prometheus.CounterVec
	published  *prometheus.CounterVec
	outbound   *prometheus.CounterVec
	dropped    *prometheus.CounterVec
	panics     prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		connected: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "mimi", Subsystem: "xmpp", Name: "component_connected",
			Help: "1 while the component connection is up."}, []string{"component"}),
		reconnects: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "mimi", Subsystem: "xmpp", Name: "component_reconnects_total",
			Help: "Component connections that ended and were redialled."}, []string{"component"}),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "mimi", Subsystem: "xmpp", Name: "stanzas_sent_total",
			Help: "Stanzas written to the XMPP server."}, []string{"component"}),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "mimi", Subsystem: "xmpp", Name: "stanzas_received_total",
			Help: "Stanzas read from the XMPP server, by kind."}, []string{"kind"}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "mimi", Subsystem: "xmpp", Name: "events_published_total",
			Help: "Envelopes published to the bus, by kind."}, []string{"kind"}),
		outbound: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "mimi", Subsystem: "xmpp", Name: "outbound_envelopes_total",
			Help: "MIMI envelopes rendered on XMPP, by kind and result."}, []string{"kind", "result"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "mimi", Subsystem: "xmpp", Name: "stanzas_dropped_total",
			Help: "Incoming stanzas not bridged, by reason."}, []string{"reason"}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "mimi", Subsystem: "xmpp", Name: "handler_panics_total",
			Help: "Panics recovered while handling a stanza (a bug; the stanza was dropped)."}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.connected, m.reconnects, m.sent, m.received, m.published, m.outbound, m.dropped, m.panics} {
			_ = reg.Register(c)
		}
	}
	return m
}
