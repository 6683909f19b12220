package xmpp

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/occupants"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/portals"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/xhistory"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/xstanza"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// MUC status codes (XEP-0045 §15.6).
const (
	statusNonAnonymous = 100
	statusSelf         = 110
	statusCreated      = 201
	statusBanned       = 301
	statusKicked       = 307
)

// bounceGrace protects an occupant who joined recently from bounces of messages that were sent to
// an earlier session with the same full JID (after a server restart the client comes back with
// its old resource, while bounces for the dead session are still arriving).
const bounceGrace = 10 * time.Second

// roomPresence handles presence to the rooms component: joins, presence updates and leaves.
func (a *Adapter) roomPresence(ctx context.Context, p *xstanza.InPresence) {
	from, err1 := jid.Parse(p.From)
	to, err2 := jid.Parse(p.To)
	if err1 != nil || err2 != nil || to.Localpart() == "" || from.Resourcepart() == "" {
		a.met.dropped.WithLabelValues("bad_address").Inc()
		return
	}
	switch p.Type {
	case "":
		a.join(ctx, from, to, p)
	case "unavailable":
		a.leave(ctx, from, to)
	case "error":
		// A presence the room sent bounced: the occupant's session is gone (for now).
		if r, err := a.db.portals().ByLocal(ctx, to.Localpart()); err == nil {
			a.occupantBounced(ctx, r, from.String(), p.ID, a.now())
		}
	default:
		// subscriptions and probes to rooms mean nothing here
	}
}

func (a *Adapter) presenceError(ctx context.Context, from, to jid.JID, id string, se *xstanza.OutError) {
	if !xstanza.ValidID(id) {
		id = ""
	}
	out := &xstanza.OutPresence{From: to.String(), To: from.String(), ID: id, Type: "error", Error: se}
	if err := a.rooms.Send(ctx, out); err != nil {
		a.log.Info("could not send a presence error", "err", err)
	}
}

// occupantPresence is the presence of a room participant as other occupants see it.
func (a *Adapter) occupantPresence(r portals.Room, roomJID jid.JID, nick, realJID string, user event.UserURI, to string, typ string, codes ...int) *xstanza.OutPresence {
	aff, role := a.presenceAffiliation(r.URI, user)
	if typ == "unavailable" {
		role = "none"
	}
	p := &xstanza.OutPresence{From: roomJID.String() + "/" + nick, To: to, Type: typ,
		MUCUser:  &xstanza.OutMUCUser{Item: &xstanza.OutItem{Affiliation: aff, Role: role, JID: realJID}},
		Occupant: &xstanza.OutID{ID: a.occupantID(r.URI, user)}}
	for _, c := range codes {
		p.MUCUser.Status = append(p.MUCUser.Status, xstanza.OutStatus{Code: c})
	}
	return p
}

// join handles available presence to room/nick (XEP-0045 §7.2).
func (a *Adapter) join(ctx context.Context, from, to jid.JID, p *xstanza.InPresence) {
	nick := to.Resourcepart()
	if nick == "" || len(nick) > xstanza.MaxNickLen {
		a.presenceError(ctx, from, to, p.ID, xstanza.StanzaError(stanza.Modify, stanza.JIDMalformed, "a nickname is required"))
		return
	}
	if !a.m.IsLocal(from) {
		a.presenceError(ctx, from, to, p.ID, xstanza.StanzaError(stanza.Auth, stanza.RegistrationRequired, "only users of "+a.cfg.Domain+" can join MIMI rooms"))
		return
	}
	user, err := a.m.LocalUserURI(from)
	if err != nil {
		a.presenceError(ctx, from, to, p.ID, xstanza.StanzaError(stanza.Auth, stanza.Forbidden, ""))
		return
	}
	at := a.now()
	created := false
	r, err := a.db.portals().ByLocal(ctx, to.Localpart())
	if errors.Is(err, portals.ErrNoRoom) {
		r, created, err = a.createRoomByJoin(ctx, from, to, user, at)
	}
	if err != nil {
		var be *bridgeError
		if errors.As(err, &be) {
			a.presenceError(ctx, from, to, p.ID, xstanza.StanzaError(be.typ, be.cond, be.text))
		} else {
			a.log.Warn("join failed", "err", err)
			a.presenceError(ctx, from, to, p.ID, xstanza.StanzaError(stanza.Wait, stanza.InternalServerError, ""))
		}
		return
	}
	if r.Kind != portals.KindMUC {
		a.presenceError(ctx, from, to, p.ID, xstanza.StanzaError(stanza.Cancel, stanza.ItemNotFound, ""))
		return
	}
	roomJID, _ := a.m.RoomJID(r.MUCLocal)
	occ, err1 := a.db.occ().List(ctx, r.URI)
	mem, err2 := a.db.occ().Members(ctx, r.URI)
	if err := errors.Join(err1, err2); err != nil {
		a.log.Warn("join failed", "err", err)
		a.presenceError(ctx, from, to, p.ID, xstanza.StanzaError(stanza.Wait, stanza.InternalServerError, ""))
		return
	}
	full := from.String()
	firstResource := true
	for _, o := range occ {
		if o.Full == full {
			if o.Nick != nick {
				a.presenceError(ctx, from, to, p.ID, xstanza.StanzaError(stanza.Cancel, stanza.NotAcceptable, "nickname changes are not supported"))
				return
			}
			if p.MUC == nil {
				// A presence update from a joined occupant: confirm it to the occupant.
				self := a.occupantPresence(r, roomJID, nick, full, user, full, "", statusNonAnonymous, statusSelf)
				_ = a.rooms.Send(ctx, self)
				return
			}
			// A join from a resource we think is joined already: the client lost its session
			// (a server restart) and joins again; it gets the whole join sequence.
			continue
		}
		if o.Nick == nick && o.Bare != from.Bare().String() {
			a.presenceError(ctx, from, to, p.ID, xstanza.StanzaError(stanza.Cancel, stanza.Conflict, "nickname in use"))
			return
		}
		if o.Bare == from.Bare().String() {
			firstResource = false
		}
	}
	for _, m := range mem {
		if m.Nick == nick && m.User != user {
			a.presenceError(ctx, from, to, p.ID, xstanza.StanzaError(stanza.Cancel, stanza.Conflict, "nickname in use"))
			return
		}
	}
	// MIMI membership is persistent: the first join of a user publishes a MIMI join; presence
	// coming and going afterwards (clients reconnecting) does not churn the MLS group.
	added, err := a.db.occ().AddMember(ctx, r.URI, occupants.Member{User: user, Nick: from.Bare().String()})
	if err != nil {
		a.log.Warn("join failed", "err", err)
		a.presenceError(ctx, from, to, p.ID, xstanza.StanzaError(stanza.Wait, stanza.InternalServerError, ""))
		return
	}
	if added && !created {
		if err := a.publishMembership(ctx, r, roomJID, from, user, user, event.MembershipJoin, "join", at); err != nil {
			_, _ = a.db.occ().RemoveMember(ctx, r.URI, user)
			a.log.Warn("join failed", "err", err)
			a.presenceError(ctx, from, to, p.ID, xstanza.StanzaError(stanza.Wait, stanza.InternalServerError, ""))
			return
		}
	}
	if err := a.db.occ().Add(ctx, r.URI, occupants.Occupant{Full: full, Bare: from.Bare().String(), Nick: nick}); err != nil {
		a.log.Warn("join failed", "err", err)
		a.presenceError(ctx, from, to, p.ID, xstanza.StanzaError(stanza.Wait, stanza.InternalServerError, ""))
		return
	}

	owed := time.Time{}
	if rec := a.rec.Take(occupants.Key{Room: r.URI, Full: full}); rec != nil {
		owed = rec.Owed // it joins again by itself: what bounced comes with the history
	}
	a.joinSequence(ctx, r, roomJID, full, nick, user, occ, mem, firstResource, created, p.MUC, true, owed, at)
}

// joinSequence sends the MUC join sequence (XEP-0045 §7.2) to the occupant full: the presence of
// the MIMI members and the other occupants, its own presence to the others (firstResource: its
// user's first resource in the room), its self-presence, the history (what its join asked for,
// when ask is set, and the history since owed, unless zero) and the subject.
func (a *Adapter) joinSequence(ctx context.Context, r portals.Room, roomJID jid.JID, full, nick string, user event.UserURI, occ []occupants.Occupant, mem []occupants.Member,
	firstResource, created bool, muc *xstanza.InMUC, ask bool, owed, at time.Time) {
	// 1. Presence of the MIMI members and the other occupants, to the new occupant.
	for _, m := range mem {
		if m.User.Domain() == a.cfg.Provider {
			continue // local users appear through their own occupant presence
		}
		pj, err := a.m.UserJID(ctx, m.User)
		if err != nil {
			continue
		}
		_ = a.rooms.Send(ctx, a.occupantPresence(r, roomJID, m.Nick, pj.String(), m.User, full, ""))
	}
	seenNick := map[string]bool{}
	for _, o := range occ {
		if seenNick[o.Nick] || o.Full == full {
			continue
		}
		seenNick[o.Nick] = true
		ou, _ := a.m.LocalUserURI(jid.MustParse(o.Bare))
		_ = a.rooms.Send(ctx, a.occupantPresence(r, roomJID, o.Nick, o.Full, ou, full, ""))
	}
	// 2. The new occupant's presence, to the others.
	if firstResource {
		for _, o := range a.rec.Present(r.URI, occ) {
			if o.Full != full {
				_ = a.rooms.Send(ctx, a.occupantPresence(r, roomJID, nick, full, user, o.Full, ""))
			}
		}
	}
	// 3. Self-presence.
	codes := []int{statusNonAnonymous, statusSelf}
	if created {
		codes = append(codes, statusCreated)
	}
	_ = a.rooms.Send(ctx, a.occupantPresence(r, roomJID, nick, full, user, full, "", codes...))
	// 4. History from the gateway's store.
	a.sendHistory(ctx, r, roomJID, full, muc, ask, owed)
	// 5. The subject, always last: clients finish joining when they see it.
	subj := r.Subject
	_ = a.rooms.Send(ctx, &xstanza.OutMessage{From: roomJID.String(), To: full, Type: "groupchat", ID: "subject-" + strconv.FormatInt(at.UnixNano(), 36), Subject: &subj})
}

// createRoomByJoin creates a MIMI room, hosted by this gateway, for a local user who joins a MUC
// that does not exist yet.
func (a *Adapter) createRoomByJoin(ctx context.Context, from, to jid.JID, user event.UserURI, at time.Time) (portals.Room, bool, error) {
	if !a.cfg.roomCreation() {
		return portals.Room{}, false, refuse(stanza.Cancel, stanza.ItemNotFound, "no such room")
	}
	uri, err := a.m.NewRoomURI(to.Localpart())
	if err != nil {
		return portals.Room{}, false, refuse(stanza.Cancel, stanza.ItemNotFound, "this name cannot be used for a room")
	}
	if local, err := a.m.RoomLocal(ctx, uri); err != nil || local != to.Localpart() {
		return portals.Room{}, false, refuse(stanza.Cancel, stanza.ItemNotFound, "this name cannot be used for a room")
	}
	r := portals.Room{URI: uri, MUCLocal: to.Localpart(), Kind: portals.KindMUC}
	roomJID, _ := a.m.RoomJID(r.MUCLocal)
	// Publish first: the join creates the MIMI room on the provider (the gateway is its hub).
	if err := a.publishMembership(ctx, r, roomJID, from, user, user, event.MembershipJoin, "create", at); err != nil {
		return portals.Room{}, false, err
	}
	created, err := a.db.portals().Create(ctx, r)
	if err != nil {
		return portals.Room{}, false, err
	}
	if !created {
		r, err = a.db.portals().ByLocal(ctx, to.Localpart())
		return r, false, err
	}
	return r, true, nil
}

func (a *Adapter) publishMembership(ctx context.Context, r portals.Room, roomJID, from jid.JID, sender, target event.UserURI, action event.MembershipAction, what string, at time.Time) error {
	o := origin{nativeRoom: event.NativeRoomID(roomJID.String()), sender: from.Bare(), senderURI: sender, room: r.URI}
	env := &event.Envelope{
		ID: o.eventID(what + " " + string(target) + " " + strconv.FormatInt(at.UnixNano(), 10)), Kind: event.KindMembership,
		Room: r.URI, Sender: sender, Membership: &event.Membership{Action: action, Target: target},
		Origin:    event.Origin{Network: event.NetworkXMPP, Room: o.nativeRoom, Sender: event.NativeUserID(from.Bare().String())},
		Timestamp: at,
	}
	return a.publishEnvelope(ctx, env)
}

// sendHistory replays recent messages to a new occupant within every limit its history request
// sets (XEP-0045 §7.2.15): maxstanzas, maxchars (counted over the complete stanzas), seconds and
// since; never more than HistoryOnJoin. A limit with an unusable value is ignored. Without ask
// nothing is replayed for the request; the history since owed (unless zero), which did not reach
// the occupant's session, is sent in any case (owedHistory).
func (a *Adapter) sendHistory(ctx context.Context, r portals.Room, roomJID jid.JID, to string, muc *xstanza.InMUC, ask bool, owed time.Time) {
	var hist []xhistory.Entry
	if ask {
		hist = a.askedHistory(ctx, r, roomJID, to, muc)
	}
	for _, h := range a.owedHistory(ctx, r, hist, owed) {
		if out := a.historyStanza(h, roomJID, to); out != nil {
			_ = a.rooms.Send(ctx, out)
		}
	}
}

// askedHistory returns the history entries a join's history request asks for.
func (a *Adapter) askedHistory(ctx context.Context, r portals.Room, roomJID jid.JID, to string, muc *xstanza.InMUC) []xhistory.Entry {
	n, maxChars := *a.cfg.HistoryOnJoin, -1
	since := time.Time{}
	if muc != nil && muc.History != nil {
		h := muc.History
		if v, ok := xstanza.HistoryLimit(h.MaxStanzas); ok {
			n = min(n, v)
		}
		if v, ok := xstanza.HistoryLimit(h.MaxChars); ok {
			maxChars = v
		}
		if v, ok := xstanza.HistoryLimit(h.Seconds); ok {
			since = a.now().Add(-time.Duration(v) * time.Second)
		}
		if t, err := xstanza.ParseStamp(h.Since); err == nil && t.After(since) {
			since = t
		}
	}
	if maxChars == 0 {
		return nil
	}
	hist, err := a.hist.Recent(ctx, r.URI, n, since)
	if err != nil {
		a.log.Warn("could not read room history", "err", err)
		return nil
	}
	if maxChars < 0 {
		return hist
	}
	sizes := make([]int, 0, len(hist))
	for _, h := range hist {
		size := 0
		if out := a.historyStanza(h, roomJID, to); out != nil {
			b, _ := xml.Marshal(out)
			size = utf8.RuneCount(b)
		}
		sizes = append(sizes, size)
	}
	return hist[xstanza.NewestWithin(sizes, maxChars):]
}

// historyStanza is a history entry as the message sent to the occupant to (nil if unreadable).
func (a *Adapter) historyStanza(h xhistory.Entry, roomJID jid.JID, to string) *xstanza.OutMessage {
	var p xstanza.Payload
	if err := xml.NewDecoder(strings.NewReader(h.Payload)).Decode(&p); err != nil {
		return nil
	}
	out := &xstanza.OutMessage{From: roomJID.String() + "/" + h.Nick, To: to, Type: "groupchat", ID: h.StanzaID,
		StanzaID: &xstanza.OutStanzaID{ID: h.StanzaID, By: roomJID.String()},
		Delay:    &xstanza.OutDelay{From: roomJID.String(), Stamp: xstanza.Stamp(h.SentAt)}}
	p.Apply(out)
	return out
}

// leave handles unavailable presence: the occupant goes offline. MIMI membership stays.
func (a *Adapter) leave(ctx context.Context, from, to jid.JID) {
	r, err := a.db.portals().ByLocal(ctx, to.Localpart())
	if err != nil {
		return
	}
	a.rec.Take(occupants.Key{Room: r.URI, Full: from.String()})
	roomJID, _ := a.m.RoomJID(r.MUCLocal)
	a.removeOccupantOf(ctx, r, roomJID, from, true)
}

// removeOccupantOf removes the occupant from from room r; the other occupants see it leave
// (unless another resource of the same nick stays), and so does the occupant itself when self is
// set (its session is there to see it).
func (a *Adapter) removeOccupantOf(ctx context.Context, r portals.Room, roomJID, from jid.JID, self bool) {
	occ, err := a.db.occ().List(ctx, r.URI)
	if err != nil {
		return
	}
	full := from.String()
	var me *occupants.Occupant
	nickStays := false
	for i, o := range occ {
		if o.Full == full {
			me = &occ[i]
		}
	}
	if me == nil {
		return
	}
	for _, o := range occ {
		if o.Full != full && o.Nick == me.Nick {
			nickStays = true
		}
	}
	if err := a.db.occ().Remove(ctx, r.URI, full); err != nil {
		a.log.Warn("could not remove occupant", "err", err)
	}
	user, _ := a.m.LocalUserURI(from)
	if self {
		_ = a.rooms.Send(ctx, a.occupantPresence(r, roomJID, me.Nick, full, user, full, "unavailable", statusSelf))
	}
	if nickStays {
		return
	}
	for _, o := range a.rec.Present(r.URI, occ) {
		if o.Full != full {
			_ = a.rooms.Send(ctx, a.occupantPresence(r, roomJID, me.Nick, full, user, o.Full, "unavailable"))
		}
	}
}

// roomMessage handles a message to the rooms component. A plain new message joins the batch in
// (nil: none) and is reflected once the batch is durable; anything else is handled after the
// batch is durable (ingress.go).
func (a *Adapter) roomMessage(ctx context.Context, m *xstanza.InMessage, at time.Time, in *ingress) {
	if !batchable(m, true) {
		in.flush(ctx)
		in = nil
	}
	from, err1 := jid.Parse(m.From)
	to, err2 := jid.Parse(m.To)
	if m.Type == "error" {
		// A message bounced by an occupant's server means the occupant's session is gone
		// (XEP-0045 §7.2.1 lets services remove such occupants): it is absent until it comes
		// back, and removed if it does not (rejoin.go).
		if err1 == nil && err2 == nil && to.Resourcepart() != "" {
			if r, err := a.db.portals().ByLocal(ctx, to.Localpart()); err == nil {
				a.occupantBounced(ctx, r, from.String(), m.ID, at)
			}
		}
		return
	}
	if err1 != nil || err2 != nil || to.Localpart() == "" {
		a.met.dropped.WithLabelValues("bad_address").Inc()
		return
	}
	_, hasBody := m.Text()
	r, err := a.db.portals().ByLocal(ctx, to.Localpart())
	if err != nil || r.Kind != portals.KindMUC {
		if hasBody {
			a.replyError(ctx, a.rooms, m, refuse(stanza.Cancel, stanza.ItemNotFound, "no such room"))
		}
		return
	}
	if to.Resourcepart() != "" {
		if hasBody {
			a.replyError(ctx, a.rooms, m, refuse(stanza.Cancel, stanza.FeatureNotImplemented, "private messages in MIMI rooms are not supported"))
		}
		return
	}
	occ, err := a.db.occ().List(ctx, r.URI)
	if err != nil {
		a.replyError(ctx, a.rooms, m, err)
		return
	}
	var me *occupants.Occupant
	for i, o := range occ {
		if o.Full == from.String() {
			me = &occ[i]
		}
	}
	if me == nil {
		a.replyError(ctx, a.rooms, m, refuse(stanza.Modify, stanza.NotAcceptable, "join the room before sending to it"))
		return
	}
	// An occupant the gateway was waiting for (rejoin.go) is back: it is rejoined before its
	// message is handled.
	if k := (occupants.Key{Room: r.URI, Full: me.Full}); a.rec.Has(k) {
		in.flush(ctx) // the rejoin sends the room's history, the batch's too
		a.rejoinOccupant(ctx, k)
	}
	user, err := a.m.LocalUserURI(from)
	if err != nil {
		a.replyError(ctx, a.rooms, m, refuse(stanza.Auth, stanza.Forbidden, ""))
		return
	}
	roomJID, _ := a.m.RoomJID(r.MUCLocal)
	if m.MUCUser != nil && len(m.MUCUser.Invite) > 0 {
		a.invite(ctx, r, roomJID, from, user, m, at)
		return
	}
	if m.Type != "groupchat" {
		if hasBody {
			a.replyError(ctx, a.rooms, m, refuse(stanza.Modify, stanza.BadRequest, "send messages to the room as type groupchat"))
		}
		return
	}
	if m.Subject != nil && !hasBody {
		a.changeSubject(ctx, r, roomJID, from, user, *m.Subject, occ, m, at)
		return
	}
	o := origin{nativeRoom: event.NativeRoomID(roomJID.String()), sender: from.Bare(), senderURI: user, room: r.URI, muc: true, batch: in}
	res, err := a.bridgeMessage(ctx, o, m, at)
	if err != nil {
		a.replyError(ctx, a.rooms, m, err)
		return
	}
	if res.skip {
		return
	}
	// Reflect (XEP-0045 §7.4), once the message is on the bus.
	out := xstanza.Reflection(m)
	out.From, out.Type = roomJID.String()+"/"+me.Nick, "groupchat"
	out.Occupant = &xstanza.OutID{ID: a.occupantID(r.URI, user)}
	var hist *xhistory.Entry
	if res.kind == event.KindMessage || res.kind == event.KindEdit {
		sid := stanzaIDOf(res.id)
		out.StanzaID = &xstanza.OutStanzaID{ID: sid, By: roomJID.String()}
		if !res.duplicate {
			if hist, err = historyEntry(sid, me.Nick, out, at); err != nil {
				a.log.Warn("could not store history", "err", err)
			}
		}
	}
	targets := a.rec.Present(r.URI, occ)
	if res.duplicate {
		targets = []occupants.Occupant{*me}
	}
	reflect := func(ctx context.Context) {
		for _, o := range targets {
			out.To = o.Full
			if err := a.rooms.Send(ctx, out); err != nil {
				a.log.Info("could not reflect a message", "err", err)
			}
		}
	}
	if res.batched {
		if hist != nil {
			in.history(r.URI, *hist)
		}
		in.then(func(ctx context.Context, err error) {
			if err != nil {
				a.replyError(ctx, a.rooms, m, err)
				return
			}
			reflect(ctx)
		})
		return
	}
	if hist != nil {
		if err := a.hist.Add(ctx, r.URI, *hist, *a.cfg.HistoryKeep); err != nil {
			a.log.Warn("could not store history", "err", err)
		}
	}
	if res.kind == event.KindDelete && m.Retract != nil {
		_ = a.hist.Delete(ctx, r.URI, m.Retract.ID)
	}
	reflect(ctx)
}

// historyEntry is the room history entry of a reflected message.
func historyEntry(sid, nick string, out *xstanza.OutMessage, at time.Time) (*xhistory.Entry, error) {
	var buf bytes.Buffer
	p := xstanza.PayloadOf(out)
	if err := xml.NewEncoder(&buf).Encode(&p); err != nil {
		return nil, fmt.Errorf("xmpp: history entry: %w", err)
	}
	return &xhistory.Entry{StanzaID: sid, Nick: nick, Payload: buf.String(), SentAt: at}, nil
}

func (a *Adapter) storeHistory(ctx context.Context, r portals.Room, sid, nick string, out *xstanza.OutMessage, at time.Time) error {
	h, err := historyEntry(sid, nick, out, at)
	if err != nil {
		return err
	}
	return a.hist.Add(ctx, r.URI, *h, *a.cfg.HistoryKeep)
}

// changeSubject publishes a subject change by an occupant and shows it to everyone.
func (a *Adapter) changeSubject(ctx context.Context, r portals.Room, roomJID, from jid.JID, user event.UserURI, subject string, occ []occupants.Occupant, m *xstanza.InMessage, at time.Time) {
	if len(subject) > 1024 {
		a.replyError(ctx, a.rooms, m, refuse(stanza.Modify, stanza.PolicyViolation, "subject too long"))
		return
	}
	o := origin{nativeRoom: event.NativeRoomID(roomJID.String()), sender: from.Bare(), senderURI: user, room: r.URI}
	env := &event.Envelope{ID: o.eventID("subject " + m.NativeID()), Kind: event.KindRoomMetadata, Room: r.URI, Sender: user,
		Metadata:  &event.Metadata{Topic: subject},
		Origin:    event.Origin{Network: event.NetworkXMPP, Room: o.nativeRoom, Event: event.NativeEventID(m.ID), Sender: event.NativeUserID(from.Bare().String())},
		Timestamp: at}
	if subject == "" {
		// MIMI metadata cannot express "no topic" (empty fields mean unchanged); keep it local.
		env = nil
	}
	if env != nil {
		if err := a.publishEnvelope(ctx, env); err != nil {
			a.replyError(ctx, a.rooms, m, err)
			return
		}
	}
	_ = a.db.portals().SetMetadata(ctx, r.URI, nil, &subject)
	nick := ""
	for _, o := range occ {
		if o.Full == from.String() {
			nick = o.Nick
		}
	}
	for _, o := range occ {
		_ = a.rooms.Send(ctx, &xstanza.OutMessage{From: roomJID.String() + "/" + nick, To: o.Full, Type: "groupchat", ID: m.ID, Subject: &subject})
	}
}

// invite handles a mediated invitation (XEP-0045 §7.8.2) from an occupant: inviting a puppet
// adds that MIMI user to the MIMI room; inviting a local user forwards the invitation.
func (a *Adapter) invite(ctx context.Context, r portals.Room, roomJID, from jid.JID, user event.UserURI, m *xstanza.InMessage, at time.Time) {
	for i, inv := range m.MUCUser.Invite {
		if i >= 16 {
			break
		}
		to, err := jid.Parse(inv.To)
		if err != nil {
			continue
		}
		reason := inv.Reason
		if len(reason) > 1024 {
			reason = ""
		}
		switch {
		case a.m.IsLocal(to):
			fwd := &xstanza.OutMessage{From: roomJID.String(), To: to.Bare().String(), ID: m.ID,
				MUCUser: &xstanza.OutMUCUser{Invite: &xstanza.OutInvite{From: from.Bare().String(), Reason: reason}}}
			_ = a.rooms.Send(ctx, fwd)
		case to.Domainpart() == a.cfg.Users.Domain:
			peer, err := a.m.PuppetURI(ctx, to)
			if err != nil {
				a.replyError(ctx, a.rooms, m, refuse(stanza.Cancel, stanza.ItemNotFound, "no such MIMI user"))
				continue
			}
			if err := a.publishMembership(ctx, r, roomJID, from, user, peer, event.MembershipInvite, "invite", at); err != nil {
				a.replyError(ctx, a.rooms, m, err)
				continue
			}
			if err := a.addRemoteMember(ctx, r, peer); err != nil {
				a.log.Warn("could not add an invited member", "err", err)
			}
		default:
			a.replyError(ctx, a.rooms, m, refuse(stanza.Cancel, stanza.NotAllowed, "only local users and MIMI users can be invited"))
		}
	}
}

// addRemoteMember records a MIMI user as a room member and shows their presence to the occupants.
func (a *Adapter) addRemoteMember(ctx context.Context, r portals.Room, u event.UserURI) error {
	nick := a.m.NickFor(u)
	added, err := a.db.occ().AddMember(ctx, r.URI, occupants.Member{User: u, Nick: nick})
	if err != nil || !added {
		return err
	}
	pj, err := a.m.UserJID(ctx, u)
	if err != nil {
		return err
	}
	roomJID, _ := a.m.RoomJID(r.MUCLocal)
	occ, err := a.db.occ().List(ctx, r.URI)
	if err != nil {
		return err
	}
	for _, o := range occ {
		_ = a.rooms.Send(ctx, a.occupantPresence(r, roomJID, nick, pj.String(), u, o.Full, ""))
	}
	return nil
}
