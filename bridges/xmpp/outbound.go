package xmpp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"mellium.im/xmpp/jid"

	"github.com/mimi-gateway/mimi-gateway/bridges"
	"github.com/mimi-gateway/mimi-gateway/bridges/idmap"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/occupants"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/portals"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/xcontent"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/xstanza"
	"github.com/mimi-gateway/mimi-gateway/core/bus"
	"github.com/mimi-gateway/mimi-gateway/core/content"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// processedScope records MIMI → XMPP envelopes that have no message mapping of their own
// (deletes, reactions, receipts), so a redelivery is not rendered twice.
const processedScope store.Scope = "xmpp.in"

// retractFallback is the body XEP-0424 recommends for clients without retraction support.
const retractFallback = "This person attempted to retract a previous message, but it's unsupported by your client."

// portal returns the room of an envelope, once the components are connected (the core has
// already dropped echoes of XMPP's own events).
func (a *Adapter) portal(ctx context.Context, env *event.Envelope) (portals.Room, error) {
	r, err := a.db.portals().Room(ctx, env.Room)
	if errors.Is(err, portals.ErrNoRoom) {
		return portals.Room{}, bus.Permanent(fmt.Errorf("xmpp: envelope %s: %w", env.ID, err))
	}
	if err != nil {
		return portals.Room{}, err
	}
	// During a short reconnect, wait instead of failing at once (which would use up deliveries).
	wctx, cancel := context.WithTimeout(ctx, connectWait)
	defer cancel()
	if err := a.WaitConnected(wctx); err != nil {
		return portals.Room{}, fmt.Errorf("%w: %w", ErrNotConnected, err)
	}
	return r, nil
}

// connectWait is how long a MIMI → XMPP handler waits for the components to reconnect before it
// fails and leaves the envelope to the bus's redelivery.
const connectWait = 10 * time.Second

// HandleMessage implements bridges.Adapter: a MIMI message shown in a MUC or a 1:1 chat.
func (a *Adapter) HandleMessage(ctx context.Context, ev *bridges.Event) error {
	r, err := a.portal(ctx, ev.Envelope)
	if err != nil {
		return err
	}
	if err := a.shareAttachments(ctx, ev.Envelope, ev.Msg); err != nil {
		return err
	}
	body, oob := xcontent.Render(ev.Msg)
	if body == "" {
		return nil
	}
	out := &xstanza.OutMessage{Body: &body, OOB: oob}
	if ev.InReplyTo != nil {
		a.addReply(ctx, r, out, ev.InReplyTo.NativeID)
	}
	return a.deliver(ctx, r, ev, out, true)
}

// addReply adds an XEP-0461 reference and, in rooms, a quote of the original with its XEP-0428
// fallback range.
func (a *Adapter) addReply(ctx context.Context, r portals.Room, out *xstanza.OutMessage, target event.NativeEventID) {
	out.Reply = &xstanza.OutReply{ID: string(target)}
	if r.Kind != portals.KindMUC {
		return
	}
	h, err := a.hist.Payload(ctx, r.URI, string(target))
	if err != nil {
		return
	}
	var p xstanza.Payload
	if decodeXMLString(h.Payload, &p) != nil || p.Body == nil {
		return
	}
	quoted := *p.Body
	if len(quoted) > 200 {
		quoted = strings.ToValidUTF8(quoted[:200], "") + "…"
	}
	var q strings.Builder
	for _, line := range strings.Split(quoted, "\n") {
		q.WriteString("> " + line + "\n")
	}
	quote := q.String()
	body := quote + *out.Body
	out.Body = &body
	out.Fallback = append(out.Fallback, xstanza.OutFallback{For: xstanza.NSReply, Body: &xstanza.OutFallbackBody{Start: 0, End: utf8.RuneCountInString(quote)}})
	if roomJID, err := a.m.RoomJID(r.MUCLocal); err == nil {
		out.Reply.To = roomJID.String() + "/" + h.Nick
	}
}

// deliver sends a message from the envelope's sender into the room: a groupchat message from the
// sender's nick to every occupant, or a chat message from the sender's puppet to the local user.
// The mapping (stanza ID → MIMI ID) is recorded before sending, so a receipt or reaction that a
// client sends at once finds it; the envelope counts as processed only after sending, so a
// redelivery after a failed send sends again.
func (a *Adapter) deliver(ctx context.Context, r portals.Room, ev *bridges.Event, out *xstanza.OutMessage, keepHistory bool) error {
	env := ev.Envelope
	sid := stanzaIDOf(ev.MessageID)
	out.ID = sid
	var (
		sender string
		send   func() error
	)
	switch r.Kind {
	case portals.KindMUC:
		roomJID, err := a.m.RoomJID(r.MUCLocal)
		if err != nil {
			return bus.Permanent(err)
		}
		nick, err := a.memberNick(ctx, r, env.Sender)
		if err != nil {
			return err
		}
		sender = roomJID.String() + "/" + nick
		out.From, out.Type = sender, "groupchat"
		out.StanzaID = &xstanza.OutStanzaID{ID: sid, By: roomJID.String()}
		out.Occupant = &xstanza.OutID{ID: a.occupantID(r.URI, env.Sender)}
		send = func() error {
			// History first: a user who joins while the message is being sent gets it from there.
			if keepHistory {
				ts := env.Timestamp
				if ts.IsZero() || ts.After(a.now()) {
					ts = a.now()
				}
				if err := a.storeHistory(ctx, r, sid, nick, out, ts); err != nil {
					a.log.Warn("could not store history", "err", err)
				}
			}
			occ, err := a.db.occ().List(ctx, r.URI)
			if err != nil {
				return err
			}
			for _, o := range a.rec.Present(r.URI, occ) { // an absent one gets it when it is back
				out.To = o.Full
				if err := a.rooms.Send(ctx, out); err != nil {
					return err
				}
			}
			return nil
		}
	case portals.KindDM:
		c, err := a.db.portals().PairOf(ctx, r.URI)
		if err != nil {
			return bus.Permanent(err)
		}
		if env.Sender != c.Peer {
			// Only the peer speaks through the puppet; the local user's own messages (from another
			// client of theirs on MIMI) are not echoed.
			return nil
		}
		if err := a.db.portals().UseDM(ctx, c, r.URI); err != nil { // the answer goes where the peer writes
			return err
		}
		pj, err := a.m.UserJID(ctx, env.Sender)
		if err != nil {
			return bus.Permanent(err)
		}
		sender = pj.String()
		out.From, out.To, out.Type = sender, c.Local, "chat"
		out.Markable, out.Request = &xstanza.OutEmpty{}, &xstanza.OutEmpty{}
		send = func() error { return a.users.Send(ctx, out) }
	default:
		return nil
	}
	if err := ev.MapNow(ctx, bridges.Native{Room: a.nativeRoomOf(r), ID: event.NativeEventID(sid), Sender: event.NativeUserID(sender)}); err != nil {
		return err
	}
	return send()
}

// nativeRoomOf is the native room ID under which the room's messages are mapped.
func (a *Adapter) nativeRoomOf(r portals.Room) event.NativeRoomID {
	if r.Kind == portals.KindMUC {
		j, _ := a.m.RoomJID(r.MUCLocal)
		return event.NativeRoomID(j.String())
	}
	c, err := a.db.portals().PairOf(context.Background(), r.URI)
	if err != nil {
		return event.NativeRoomID("dm:?")
	}
	local, _ := jid.Parse(c.Local)
	pj, err := a.m.UserJID(context.Background(), c.Peer)
	if err != nil {
		return event.NativeRoomID("dm:?")
	}
	return dmNativeRoom(local, pj)
}

// memberNick returns the nick of a MIMI sender in a room, adding the sender as a member (with
// presence to the occupants) when the room did not know them yet.
func (a *Adapter) memberNick(ctx context.Context, r portals.Room, u event.UserURI) (string, error) {
	nick, err := a.db.occ().MemberNick(ctx, r.URI, u)
	if err == nil {
		return nick, nil
	}
	if !errors.Is(err, occupants.ErrNoMember) {
		return "", err
	}
	if err := a.addRemoteMember(ctx, r, u); err != nil {
		return "", err
	}
	return a.db.occ().MemberNick(ctx, r.URI, u)
}

// sendAs sends a non-message payload (retraction, reactions, markers) from the envelope's sender
// into the room, like deliver but without a mapping or history.
func (a *Adapter) sendAs(ctx context.Context, r portals.Room, sender event.UserURI, out *xstanza.OutMessage) error {
	switch r.Kind {
	case portals.KindMUC:
		roomJID, err := a.m.RoomJID(r.MUCLocal)
		if err != nil {
			return bus.Permanent(err)
		}
		nick, err := a.memberNick(ctx, r, sender)
		if err != nil {
			return err
		}
		out.From, out.Type = roomJID.String()+"/"+nick, "groupchat"
		out.Occupant = &xstanza.OutID{ID: a.occupantID(r.URI, sender)}
		occ, err := a.db.occ().List(ctx, r.URI)
		if err != nil {
			return err
		}
		for _, o := range a.rec.Present(r.URI, occ) {
			out.To = o.Full
			if err := a.rooms.Send(ctx, out); err != nil {
				return err
			}
		}
	case portals.KindDM:
		c, err := a.db.portals().PairOf(ctx, r.URI)
		if err != nil {
			return bus.Permanent(err)
		}
		if sender != c.Peer {
			return nil
		}
		pj, err := a.m.UserJID(ctx, sender)
		if err != nil {
			return bus.Permanent(err)
		}
		out.From, out.To, out.Type = pj.String(), c.Local, "chat"
		return a.users.Send(ctx, out)
	}
	return nil
}

// HandleEdit implements bridges.EditHandler with an XEP-0308 correction.
func (a *Adapter) HandleEdit(ctx context.Context, ev *bridges.Event) error {
	r, err := a.portal(ctx, ev.Envelope)
	if err != nil {
		return err
	}
	if err := a.shareAttachments(ctx, ev.Envelope, ev.Msg); err != nil {
		return err
	}
	body, oob := xcontent.Render(ev.Msg)
	out := &xstanza.OutMessage{Body: &body, OOB: oob}
	if ev.Replaces != nil {
		out.Replace = &xstanza.OutID{ID: string(ev.Replaces.NativeID)}
	}
	// Without a known original the edit is shown as a new message.
	return a.deliver(ctx, r, ev, out, true)
}

// HandleDelete implements bridges.DeleteHandler with an XEP-0424 retraction.
func (a *Adapter) HandleDelete(ctx context.Context, ev *bridges.Event) error {
	r, err := a.portal(ctx, ev.Envelope)
	if err != nil {
		return err
	}
	if ev.Msg.Replaces == nil {
		return bus.Permanent(fmt.Errorf("xmpp: delete %s replaces nothing", ev.ID))
	}
	if ev.Replaces == nil {
		return nil // never shown on XMPP
	}
	nat := ev.Replaces.NativeID
	body := retractFallback
	out := &xstanza.OutMessage{ID: "retract-" + stanzaIDOf(ev.MessageID), Body: &body, Retract: &xstanza.OutID{ID: string(nat)},
		Fallback: []xstanza.OutFallback{{For: xstanza.NSRetract}}, Store: &xstanza.OutEmpty{}}
	if err := a.sendAs(ctx, r, ev.Sender, out); err != nil {
		return err
	}
	if r.Kind == portals.KindMUC {
		_ = a.hist.Delete(ctx, r.URI, string(nat))
	}
	return nil
}

// HandleReaction implements bridges.ReactionHandler: MIMI carries one reaction per message, XMPP
// (XEP-0444) the sender's full set, so the set is kept per message and sender and sent whole.
func (a *Adapter) HandleReaction(ctx context.Context, ev *bridges.Event) error {
	env, msg := ev.Envelope, ev.Msg
	r, err := a.portal(ctx, env)
	if err != nil {
		return err
	}
	var target content.MessageID
	switch {
	case msg.IsReaction() && msg.InReplyTo != nil:
		target = *msg.InReplyTo
		sp, ok := msg.Body.Body.(content.SinglePart)
		emoji := strings.TrimSpace(string(sp.Content))
		if !ok || emoji == "" || len(emoji) > xstanza.MaxReactionLen || !utf8.ValidString(emoji) {
			return bus.Permanent(fmt.Errorf("xmpp: reaction %s has no usable emoji", env.ID))
		}
		if _, err := a.ids.PutReaction(ctx, idmap.Reaction{Room: env.Room, Target: target[:], Reactor: env.Sender, Emoji: emoji,
			MessageID: ev.MessageID[:], EventID: env.ID}); err != nil {
			return err
		}
	case msg.IsUnreact():
		rx, err := a.ids.ReactionByMessageID(ctx, env.Room, msg.Replaces[:])
		if errors.Is(err, idmap.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		copy(target[:], rx.Target)
		if _, err := a.ids.DeleteReaction(ctx, env.Room, rx.Target, rx.Reactor, rx.Emoji); err != nil {
			return err
		}
	default:
		return bus.Permanent(fmt.Errorf("xmpp: envelope %s is neither a reaction nor an unreact", env.ID))
	}
	nat := ev.InReplyTo
	if nat == nil || !bytes.Equal(nat.MessageID, target[:]) {
		// An unreact names its reaction; the message reacted to is the reaction's.
		m, err := a.ids.Primary(ctx, event.NetworkXMPP, env.Room, target[:])
		if errors.Is(err, idmap.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		nat = &m
	}
	cur, err := a.ids.Reactions(ctx, env.Room, target[:], env.Sender)
	if err != nil {
		return err
	}
	set := &xstanza.OutReactions{ID: string(nat.NativeID)}
	for _, x := range cur {
		set.Reaction = append(set.Reaction, x.Emoji)
	}
	return a.sendAs(ctx, r, env.Sender, &xstanza.OutMessage{ID: "react-" + stanzaIDOf(ev.MessageID), Reactions: set, Store: &xstanza.OutEmpty{}})
}

// HandleReceipt implements bridges.ReceiptHandler: delivered becomes an XEP-0184 receipt (1:1),
// read an XEP-0333 displayed marker.
func (a *Adapter) HandleReceipt(ctx context.Context, ev *bridges.Event) error {
	r, err := a.portal(ctx, ev.Envelope)
	if err != nil {
		return err
	}
	for _, e := range ev.Receipts {
		var out *xstanza.OutMessage
		switch {
		case e.Status == content.StatusRead:
			out = &xstanza.OutMessage{ID: "mark-" + stanzaIDOf(ev.MessageID), Displayed: &xstanza.OutID{ID: string(e.Target.NativeID)}}
		case e.Status == content.StatusDelivered && r.Kind == portals.KindDM:
			out = &xstanza.OutMessage{ID: "rcpt-" + stanzaIDOf(ev.MessageID), Received: &xstanza.OutID{ID: string(e.Target.NativeID)}}
		default:
			continue
		}
		if err := a.sendAs(ctx, r, ev.Sender, out); err != nil {
			return err
		}
	}
	return nil
}

// HandleMembership implements bridges.MembershipHandler for MUC portals: MIMI members appear and
// disappear as occupants; a local user who is invited or added gets a mediated invitation, one
// who is removed is kicked.
func (a *Adapter) HandleMembership(ctx context.Context, ev *bridges.Event) error {
	env := ev.Envelope
	r, err := a.portal(ctx, env)
	if err != nil || r.Kind != portals.KindMUC {
		return err
	}
	target := env.Membership.Target
	roomJID, err := a.m.RoomJID(r.MUCLocal)
	if err != nil {
		return bus.Permanent(err)
	}
	local := target.Domain() == a.cfg.Provider
	switch env.Membership.Action {
	case event.MembershipJoin, event.MembershipInvite:
		if !local {
			return a.addRemoteMember(ctx, r, target)
		}
		tj, err := a.m.UserJID(ctx, target)
		if err != nil {
			return bus.Permanent(err)
		}
		added, err := a.db.occ().AddMember(ctx, r.URI, occupants.Member{User: target, Nick: tj.String()})
		if err != nil {
			return err
		}
		if !added {
			// Already a member. In the room: a duplicate, nothing to do. Not in the room: an
			// earlier delivery may have recorded the member and then failed to send the
			// invitation (or the gateway stopped in between), so it is sent again (same id).
			in, err := a.occupies(ctx, r.URI, tj.Bare().String())
			if err != nil || in {
				if in {
					a.log.Debug("no invitation: already in the room", "room", r.URI, "user", target, "envelope", env.ID)
				}
				return err
			}
			a.log.Debug("member not in the room yet: invitation sent (again)", "room", r.URI, "user", target, "envelope", env.ID)
		}
		// The invitation names who invited: the sender, unless that is the invitee herself (a
		// portal request that does not know the inviter), in which case it names nobody.
		inviter := ""
		if env.Sender != target {
			if pj, err := a.m.UserJID(ctx, env.Sender); err == nil {
				inviter = pj.String()
			}
		}
		return a.rooms.Send(ctx, &xstanza.OutMessage{From: roomJID.String(), To: tj.String(), ID: "inv-" + string(env.ID),
			MUCUser: &xstanza.OutMUCUser{Invite: &xstanza.OutInvite{From: inviter, Reason: env.Membership.Reason}}})
	case event.MembershipLeave, event.MembershipKick, event.MembershipBan:
		code := 0
		switch env.Membership.Action {
		case event.MembershipKick:
			code = statusKicked
		case event.MembershipBan:
			code = statusBanned
			if err := a.db.occ().SetRole(ctx, r.URI, target, bannedRole); err != nil {
				return err
			}
		}
		return a.removeMember(ctx, r, roomJID, target, local, code)
	case event.MembershipRole:
		return a.renderRole(ctx, r, roomJID, env)
	}
	return nil
}

func (a *Adapter) removeMember(ctx context.Context, r portals.Room, roomJID jid.JID, target event.UserURI, local bool, code int) error {
	nick, err := a.db.occ().MemberNick(ctx, r.URI, target)
	if errors.Is(err, occupants.ErrNoMember) {
		return nil
	}
	if err != nil {
		return err
	}
	if _, err := a.db.occ().RemoveMember(ctx, r.URI, target); err != nil {
		return err
	}
	occ, err := a.db.occ().List(ctx, r.URI)
	if err != nil {
		return err
	}
	var codes []int
	if code != 0 {
		codes = []int{code}
	}
	// A local user removed on the MIMI side leaves the MUC with all resources.
	a.memberPresence(ctx, r, roomJID, target, nick, local, occ, "unavailable", codes, func(o occupants.Occupant) {
		_ = a.db.occ().Remove(ctx, r.URI, o.Full)
	})
	return nil
}

// memberPresence sends target's presence (type typ, status codes) to every occupant: a MIMI
// user's as the occupant nick, a local user's for each of its resources (with status 110 to
// that resource); each, if set, runs first for every resource of a local target.
func (a *Adapter) memberPresence(ctx context.Context, r portals.Room, roomJID jid.JID, target event.UserURI, nick string, local bool, occ []occupants.Occupant, typ string, codes []int, each func(occupants.Occupant)) {
	if !local {
		pj, _ := a.m.UserJID(ctx, target)
		for _, o := range occ {
			_ = a.rooms.Send(ctx, a.occupantPresence(r, roomJID, nick, pj.String(), target, o.Full, typ, codes...))
		}
		return
	}
	tj, err := a.m.UserJID(ctx, target)
	if err != nil {
		return
	}
	for _, o := range occ {
		if o.Bare != tj.String() {
			continue
		}
		if each != nil {
			each(o)
		}
		for _, other := range occ {
			cs := codes
			if other.Full == o.Full {
				cs = append([]int{statusSelf}, codes...)
			}
			_ = a.rooms.Send(ctx, a.occupantPresence(r, roomJID, o.Nick, o.Full, target, other.Full, typ, cs...))
		}
	}
}

// HandleRoomMetadata implements bridges.MetadataHandler: the topic becomes the MUC subject.
func (a *Adapter) HandleRoomMetadata(ctx context.Context, ev *bridges.Event) error {
	env := ev.Envelope
	r, err := a.portal(ctx, env)
	if err != nil || r.Kind != portals.KindMUC {
		return err
	}
	md := env.Metadata
	var name, topic *string
	if md.Name != "" {
		name = &md.Name
	}
	if md.Topic != "" {
		topic = &md.Topic
	}
	if err := a.db.portals().SetMetadata(ctx, r.URI, name, topic); err != nil {
		return err
	}
	if topic == nil {
		return nil
	}
	roomJID, err := a.m.RoomJID(r.MUCLocal)
	if err != nil {
		return bus.Permanent(err)
	}
	occ, err := a.db.occ().List(ctx, r.URI)
	if err != nil {
		return err
	}
	for _, o := range occ {
		if err := a.rooms.Send(ctx, &xstanza.OutMessage{From: roomJID.String(), To: o.Full, Type: "groupchat", ID: "subj-" + string(env.ID), Subject: topic}); err != nil {
			return err
		}
	}
	return nil
}

// CreatePortal implements bridges.PortalCreator: a MUC for a MIMI room that a partner (or the
// provider) created; a local user named as the envelope's membership target is invited. A 1:1
// (Membership.Direct, from the peer) becomes a chat between the user and the peer's puppet
// instead, the same chat as the pair's other 1:1 rooms (the new room becomes the one her
// messages go to): nothing is sent until the first message.
func (a *Adapter) CreatePortal(ctx context.Context, ev *bridges.Event) error {
	env := ev.Envelope
	if _, err := a.db.portals().Room(ctx, env.Room); err == nil {
		return a.portalInvite(ctx, env)
	}
	local, err := a.m.RoomLocal(ctx, env.Room)
	if err != nil {
		return bus.Permanent(fmt.Errorf("xmpp: portal for %s: %w", env.Room, err))
	}
	if m := env.Membership; m != nil && m.Direct && env.Sender != m.Target && env.Sender.Domain() != a.cfg.Provider {
		user, err := a.m.UserJID(ctx, m.Target)
		if err != nil {
			return bus.Permanent(fmt.Errorf("xmpp: 1:1 portal for %s: %w", env.Room, err))
		}
		// A JID pair is one chat: a second 1:1 with the same peer joins it and becomes its
		// current room.
		return a.db.portals().CreateDM(ctx, portals.Room{URI: env.Room, MUCLocal: local, Kind: portals.KindDM}, portals.Pair{Local: user.String(), Peer: env.Sender})
	}
	r := portals.Room{URI: env.Room, MUCLocal: local, Kind: portals.KindMUC}
	if env.Metadata != nil {
		r.Name, r.Subject = env.Metadata.Name, env.Metadata.Topic
	}
	if _, err := a.db.portals().Create(ctx, r); err != nil {
		return err
	}
	return a.portalInvite(ctx, env)
}

// occupies reports whether the user (bare JID) is an occupant of the room.
func (a *Adapter) occupies(ctx context.Context, uri event.RoomURI, bare string) (bool, error) {
	occs, err := a.db.occ().List(ctx, uri)
	if err != nil {
		return false, err
	}
	for _, o := range occs {
		if o.Bare == bare {
			return true, nil
		}
	}
	return false, nil
}

func (a *Adapter) portalInvite(ctx context.Context, env *event.Envelope) error {
	if env.Membership == nil {
		return nil
	}
	inv := *env
	inv.Kind = event.KindMembership
	m := *env.Membership
	m.Action = event.MembershipInvite
	inv.Membership = &m
	inv.Origin.Network = event.NetworkMIMI
	return a.HandleMembership(ctx, &bridges.Event{Envelope: &inv})
}

func decodeXMLString(s string, v any) error {
	return xstanza.Unmarshal([]byte(s), v)
}
