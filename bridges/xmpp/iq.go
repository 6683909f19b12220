package xmpp

import (
	"context"
	"encoding/xml"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/jidescape"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/portals"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/xconn"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/xstanza"
)

// handleIQ answers an IQ on the read loop: every get or set gets a result or
// an error whose from is the addressed JID, so that strict servers (Prosody 13) keep the stream.
func (a *Adapter) handleIQ(c *xconn.Conn, w xmlstream.TokenReadEncoder, start *xml.StartElement) {
	var iq xstanza.InIQ
	if err := xstanza.Decode(w, start, &iq); err != nil {
		a.refuseUndecodableIQ(w, start)
		return
	}
	if iq.Type != "get" && iq.Type != "set" {
		return // results and errors for IQs we never sent
	}
	reply := &xstanza.OutIQ{From: iq.To, To: iq.From, ID: iq.ID, Type: "result"}
	to, err := jid.Parse(iq.To)
	if err != nil || !xstanza.ValidID(iq.ID) && iq.ID != "" {
		reply.Type, reply.Error = "error", xstanza.StanzaError(stanza.Modify, stanza.BadRequest, "")
		a.writeIQ(w, reply)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	switch {
	case iq.Type == "get" && iq.Ping != nil:
		if to.Resourcepart() != "" && c == a.rooms && !a.isOccupantNick(ctx, iq.From, to) {
			// XEP-0410: a client pinging itself in a room learns whether it is still joined.
			reply.Type, reply.Error = "error", xstanza.StanzaError(stanza.Cancel, stanza.NotAcceptable, "not joined")
		}
	case iq.Type == "get" && iq.Info != nil && iq.Info.Node == "":
		reply.Info = a.discoInfo(ctx, c, to)
		if reply.Info == nil {
			reply.Type, reply.Error = "error", xstanza.StanzaError(stanza.Cancel, stanza.ItemNotFound, "")
		}
	case iq.Type == "get" && iq.Items != nil && iq.Items.Node == "":
		reply.Items = &xstanza.OutDiscoItems{}
	case c == a.users && to.Localpart() == "" && iq.Type == "get" && iq.Items != nil && iq.Items.Node == xstanza.NSCommands:
		if from, err := jid.Parse(iq.From); err == nil && a.m.IsLocal(from) {
			reply.Items = a.commandItems(a.langOf(from)) // commands.go
		} else {
			reply.Items = &xstanza.OutDiscoItems{Node: xstanza.NSCommands}
		}
	case c == a.users && to.Localpart() == "" && iq.Type == "set" && iq.Command != nil:
		from, err := jid.Parse(iq.From)
		if err != nil || !a.m.IsLocal(from) {
			reply.Type, reply.Error = "error", xstanza.StanzaError(stanza.Auth, stanza.Forbidden, "")
			break
		}
		if reply = a.adhocCommand(from, iq.ID, iq.Command); reply == nil {
			return // answered when the command has run
		}
		reply.From = iq.To
	case iq.Type == "set" && iq.Admin != nil && c == a.rooms:
		if from, err := jid.Parse(iq.From); err != nil {
			reply.Type, reply.Error = "error", xstanza.StanzaError(stanza.Modify, stanza.BadRequest, "")
		} else if e := a.adminSet(ctx, from, to, iq.ID, iq.Admin); e != nil {
			reply.Type, reply.Error = "error", e
		}
	default:
		reply.Type, reply.Error = "error", xstanza.StanzaError(stanza.Cancel, stanza.ServiceUnavailable, "")
	}
	a.writeIQ(w, reply)
}

func (a *Adapter) writeIQ(w xmlstream.TokenReadEncoder, reply *xstanza.OutIQ) {
	if err := w.Encode(reply); err != nil {
		a.log.Info("could not answer an IQ", "err", err)
	}
}

// refuseUndecodableIQ answers an IQ whose payload could not be decoded, so mellium does not send
// its own answer without a from attribute.
func (a *Adapter) refuseUndecodableIQ(w xmlstream.TokenReadEncoder, start *xml.StartElement) {
	a.met.dropped.WithLabelValues("malformed").Inc()
	from, to, id, typ := xstanza.Addressing(start)
	if typ != "get" && typ != "set" {
		return
	}
	if _, err := jid.Parse(to); err != nil {
		return
	}
	if _, err := jid.Parse(from); err != nil {
		return
	}
	a.writeIQ(w, &xstanza.OutIQ{From: to, To: from, ID: id, Type: "error", Error: xstanza.StanzaError(stanza.Modify, stanza.BadRequest, "")})
}

func (a *Adapter) discoInfo(ctx context.Context, c *xconn.Conn, to jid.JID) *xstanza.OutDiscoInfo {
	switch {
	case c == a.users && to.Localpart() == "":
		return &xstanza.OutDiscoInfo{Identities: []xstanza.OutIdentity{{Category: "gateway", Type: "mimi", Name: "MIMI gateway"}},
			Features: xstanza.Features(append(append([]string(nil), xstanza.UserFeatures...), xstanza.NSCommands))}
	case c == a.users:
		if _, err := a.m.PuppetURI(ctx, to); err != nil {
			return nil
		}
		return &xstanza.OutDiscoInfo{Identities: []xstanza.OutIdentity{{Category: "account", Type: "registered"}}, Features: xstanza.Features(xstanza.UserFeatures)}
	case to.Localpart() == "":
		return &xstanza.OutDiscoInfo{Identities: []xstanza.OutIdentity{{Category: "conference", Type: "text", Name: "MIMI rooms"}}, Features: xstanza.Features(xstanza.RoomsServiceFeatures)}
	case to.Resourcepart() == "":
		r, err := a.db.portals().ByLocal(ctx, to.Localpart())
		if err != nil || r.Kind != portals.KindMUC {
			return nil
		}
		name := r.Name
		if name == "" {
			name = jidescape.Unescape(r.MUCLocal)
		}
		return &xstanza.OutDiscoInfo{Identities: []xstanza.OutIdentity{{Category: "conference", Type: "text", Name: name}}, Features: xstanza.Features(xstanza.RoomFeatures)}
	}
	return nil
}

// isOccupantNick reports whether from is joined to the room of occupant JID to under to's nick.
func (a *Adapter) isOccupantNick(ctx context.Context, from string, to jid.JID) bool {
	r, err := a.db.portals().ByLocal(ctx, to.Localpart())
	if err != nil {
		return false
	}
	occ, err := a.db.occ().List(ctx, r.URI)
	if err != nil {
		return false
	}
	for _, o := range occ {
		if o.Full == from && o.Nick == to.Resourcepart() {
			return true
		}
	}
	return false
}
