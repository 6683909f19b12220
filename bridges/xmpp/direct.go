package xmpp

import (
	"context"
	"errors"
	"strconv"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/portals"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/xconn"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/xstanza"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// directMessage handles a message to the users component: a local user writing to a puppet.
func (a *Adapter) directMessage(ctx context.Context, m *xstanza.InMessage, at time.Time, in *ingress) {
	if !batchable(m, false) {
		in.flush(ctx)
		in = nil
	}
	if m.Type == "error" || m.Type == "groupchat" || m.Type == "headline" {
		a.met.dropped.WithLabelValues("message_type").Inc()
		return
	}
	from, err1 := jid.Parse(m.From)
	to, err2 := jid.Parse(m.To)
	if err1 != nil || err2 != nil {
		a.met.dropped.WithLabelValues("bad_address").Inc()
		return
	}
	_, hasBody := m.Text()
	if to.Localpart() == "" {
		in.flush(ctx) // a command comes after the batch
		switch {
		case hasBody && a.m.IsLocal(from) && to.Domainpart() == a.cfg.Users.Domain:
			a.gatewayCommand(ctx, m, from, to, at) // commands.go
		case hasBody:
			a.replyError(ctx, a.users, m, refuse(stanza.Cancel, stanza.ServiceUnavailable,
				"This is the MIMI gateway. Write to a MIMI user's address (user\\40provider@"+a.cfg.Users.Domain+") instead."))
		}
		return
	}
	if !a.m.IsLocal(from) {
		a.replyError(ctx, a.users, m, refuse(stanza.Auth, stanza.Forbidden, "only users of "+a.cfg.Domain+" can write to MIMI users"))
		return
	}
	peer, err := a.m.PuppetURI(ctx, to)
	if err != nil {
		a.replyError(ctx, a.users, m, refuse(stanza.Cancel, stanza.ItemNotFound, "no such MIMI user"))
		return
	}
	sender, err := a.m.LocalUserURI(from)
	if err != nil {
		a.replyError(ctx, a.users, m, refuse(stanza.Auth, stanza.Forbidden, "unknown sender"))
		return
	}
	o := origin{nativeRoom: dmNativeRoom(from, to), sender: from.Bare(), senderURI: sender}
	if o.room, err = a.ensureDM(ctx, o, to.Bare(), peer, at); err != nil {
		a.log.Warn("could not set up a 1:1 room", "err", err)
		a.replyError(ctx, a.users, m, err)
		return
	}
	if r := a.refRoom(ctx, o, m); r != "" {
		o.room = r // it refers to a message of another 1:1 room of the pair
	}
	o.batch = in
	res, err := a.bridgeMessage(ctx, o, m, at)
	if err != nil {
		a.replyError(ctx, a.users, m, err)
		return
	}
	if res.skip {
		return
	}
	// Only once the stanza is on the bus may the sender learn that it was received.
	receipt := func(ctx context.Context) {
		if m.ReceiptRequest != nil && xstanza.ValidID(m.ID) && (res.kind == event.KindMessage || res.kind == event.KindEdit) {
			rc := &xstanza.OutMessage{From: to.Bare().String(), To: from.String(), ID: "rcpt-" + m.ID, Received: &xstanza.OutID{ID: m.ID}}
			if err := a.users.Send(ctx, rc); err != nil {
				a.log.Info("could not send a delivery receipt", "err", err)
			}
		}
	}
	if res.batched {
		in.then(func(ctx context.Context, err error) {
			if err != nil {
				a.replyError(ctx, a.users, m, err)
				return
			}
			receipt(ctx)
		})
		return
	}
	receipt(ctx)
}

// ensureDM returns the MIMI room of the conversation between a local user and a MIMI user,
// creating it on first use: a room hosted by this gateway, created by the local user's invite of
// the peer (the provider creates a room on the first invite into it, with the inviter as its first
// member, so no join of the local user is published). Its URI is derived from the pair, so a retry
// after a crash publishes the same event (deduplicated on the bus) and finds the same room.
func (a *Adapter) ensureDM(ctx context.Context, o origin, puppet jid.JID, peer event.UserURI, at time.Time) (event.RoomURI, error) {
	if uri, err := a.db.portals().DMRoom(ctx, o.sender.String(), peer); err == nil {
		return uri, nil
	} else if !errors.Is(err, portals.ErrNoRoom) {
		return "", err
	}
	pair := portals.Pair{Local: o.sender.String(), Peer: peer}
	id := portals.DMLocal(a.key, pair)
	uri := event.NewRoomURI(a.cfg.Provider, id)
	o.room = uri
	env := &event.Envelope{
		ID: o.eventID("dm-create " + strconv.Itoa(int(event.MembershipInvite)) + " " + string(peer)), Kind: event.KindMembership,
		Room: uri, Sender: o.senderURI, Membership: &event.Membership{Action: event.MembershipInvite, Target: peer, Direct: true},
		Origin:    event.Origin{Network: event.NetworkXMPP, Room: o.nativeRoom, Sender: event.NativeUserID(o.sender.String())},
		Timestamp: at,
	}
	if err := a.publishEnvelope(ctx, env); err != nil {
		return "", err
	}
	if err := a.db.portals().CreateDM(ctx, portals.Room{URI: uri, MUCLocal: id, Kind: portals.KindDM}, pair); err != nil {
		return "", err
	}
	return uri, nil
}

// refRoom returns the 1:1 room of the message that m refers to (a correction, retraction,
// reaction, reply or marker), when that is one of the pair's rooms: the pair's chat shows all of
// them, and what refers to a message belongs in the message's room, whichever is current. "" when
// m refers to nothing known.
func (a *Adapter) refRoom(ctx context.Context, o origin, m *xstanza.InMessage) event.RoomURI {
	var ref string
	for _, e := range []*xstanza.IDElem{m.Replace, m.Retract, m.Received, m.Displayed, m.MarkReceived} {
		if e != nil && ref == "" {
			ref = e.ID
		}
	}
	switch {
	case ref != "":
	case m.Reactions != nil:
		ref = m.Reactions.ID
	case m.Reply != nil:
		ref = m.Reply.ID
	}
	if !xstanza.ValidID(ref) {
		return ""
	}
	ms, err := a.ids.NativeAny(ctx, event.NetworkXMPP, o.nativeRoom, event.NativeEventID(ref))
	if err != nil || len(ms) == 0 {
		return ""
	}
	r := ms[len(ms)-1].Room
	if c, err := a.db.portals().PairOf(ctx, r); err != nil || c.Local != o.sender.String() {
		return ""
	}
	return r
}

// replyError answers a message with a stanza error: the bridging refusal, or a temporary failure
// when the bus or the database failed (the user may resend).
func (a *Adapter) replyError(ctx context.Context, c *xconn.Conn, m *xstanza.InMessage, err error) {
	if m.Type == "error" {
		return
	}
	var be *bridgeError
	var se *xstanza.OutError
	if errors.As(err, &be) {
		se = xstanza.StanzaError(be.typ, be.cond, be.text)
		a.met.dropped.WithLabelValues("refused").Inc()
	} else {
		a.log.Warn("could not bridge a message", "err", err)
		se = xstanza.StanzaError(stanza.Wait, stanza.InternalServerError, "the gateway could not forward this message; please try again")
		a.met.dropped.WithLabelValues("internal").Inc()
	}
	out := &xstanza.OutMessage{From: m.To, To: m.From, ID: m.ID, Type: "error", Error: se}
	if len(out.ID) > xstanza.MaxIDLen {
		out.ID = ""
	}
	if err := c.Send(ctx, out); err != nil {
		a.log.Info("could not send a stanza error", "err", err)
	}
}

// puppetPresence answers presence to a puppet: subscriptions are approved and probes answered,
// so local users can put MIMI users on their roster.
func (a *Adapter) puppetPresence(ctx context.Context, p *xstanza.InPresence) {
	from, err1 := jid.Parse(p.From)
	to, err2 := jid.Parse(p.To)
	if err1 != nil || err2 != nil || !a.m.IsLocal(from) || to.Localpart() == "" {
		return
	}
	if _, err := a.m.PuppetURI(ctx, to); err != nil {
		return
	}
	send := func(typ string) {
		if err := a.users.Send(ctx, &xstanza.OutPresence{From: to.Bare().String(), To: from.Bare().String(), Type: typ}); err != nil {
			a.log.Info("could not answer presence", "err", err)
		}
	}
	switch p.Type {
	case "subscribe":
		send("subscribed")
		send("")
	case "probe":
		send("")
	case "unsubscribe":
		send("unsubscribed")
	}
}
