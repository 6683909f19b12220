package xmpp

import (
	"context"
	"errors"
	"slices"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/ping"
	"mellium.im/xmpp/stanza"

	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/occupants"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/portals"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/xhistory"
)

// The recovery of occupants across an outage of their session is occupants.Tracker's; these are
// the adapter's parts of it: what makes an occupant absent or unconfirmed, its ping, and its
// rejoin or removal on the room's worker.

const (
	// pingWait bounds the wait for a ping's answer.
	pingWait = 5 * time.Second
	// owedMax bounds how many messages of the room history an occupant is sent again.
	owedMax = 1000
	// inFlight is how long before a connection to the server ended a stanza may have been taken
	// by the server without reaching the client.
	inFlight = 5 * time.Second
)

// occupantBounced is called for an error stanza from an occupant's full JID in answer to one the
// room sent it (id): its session is gone. A bounce for an earlier session of a resource that
// joined again within bounceGrace is ignored.
func (a *Adapter) occupantBounced(ctx context.Context, r portals.Room, full, id string, at time.Time) {
	joined, ok, err := a.db.occ().JoinedAt(ctx, r.URI, full)
	if err != nil || !ok || joined.After(at.Add(-bounceGrace)) {
		return
	}
	owed := at.Add(-bounceGrace) // what may have been sent to the gone session before this bounce
	if id != "" {
		if h, err := a.hist.Payload(ctx, r.URI, id); err == nil {
			owed = h.SentAt
		}
	}
	a.log.Info("occupant's session is gone; waiting for it to come back", "room", string(r.URI), "occupant", full)
	a.rec.Watch(occupants.Key{Room: r.URI, Full: full}, true, owed, at)
}

// recheckOccupants makes every occupant unconfirmed after the rooms component reconnected: the
// server may have restarted, and a client's join may have been bounced meanwhile. When the server
// was down (it refused connections meanwhile), every session of before is gone: the occupants
// are absent. One that the gateway has to rejoin is owed what was sent in the last inFlight
// before the connection ended (a server that was killed may have taken it without passing it
// on).
func (a *Adapter) recheckOccupants(ctx context.Context, down time.Time, serverWasDown bool) {
	all, err := a.db.occ().All(ctx)
	if err != nil {
		a.log.Warn("occupants not checked after the reconnect", "err", err)
		return
	}
	// A join after the connection ended is the client's own: the gateway need not rejoin it.
	since, owed := a.now(), time.Time{}
	if !down.IsZero() {
		since, owed = down, down.Add(-inFlight)
	}
	for _, o := range all {
		a.rec.Watch(o, serverWasDown, owed, since)
	}
}

// probeOccupant prepares the pings of an occupant from its room (occupants.Probe): when its session
// answers, the room's worker rejoins it; an absent one that does not answer is removed there.
func (a *Adapter) probeOccupant(ctx context.Context, k occupants.Key) (func(context.Context) bool, func(bool), error) {
	r, err := a.db.portals().Room(ctx, k.Room)
	if err != nil {
		return nil, nil, err
	}
	roomJID, err1 := a.m.RoomJID(r.MUCLocal)
	to, err2 := jid.Parse(k.Full)
	if err := errors.Join(err1, err2); err != nil {
		return nil, nil, err
	}
	ping := func(ctx context.Context) bool {
		back, gone := a.pingOccupant(ctx, roomJID, to)
		if gone {
			// The server answered for the session: it is gone (also after a restart of the
			// server too quick for the reconnect to see it down). Nothing more is sent to it,
			// and it is removed unless it comes back within the window.
			a.rec.Watch(k, true, time.Time{}, time.Time{})
		}
		return back
	}
	done := func(back bool) {
		fn := a.dropOccupant
		if back {
			fn = a.rejoinOccupant
		}
		a.enqueue(roomJID.String(), job{fn: func(ctx context.Context) { fn(ctx, k) }})
	}
	return ping, done, nil
}

// pingOccupant reports whether the client's session at to answered a ping from the room (back: a
// result), and whether it is gone (an error answer: the server answers so for a session that is
// gone; a session that does not answer at all is neither).
func (a *Adapter) pingOccupant(ctx context.Context, roomJID, to jid.JID) (back, gone bool) {
	sess, err := a.rooms.Session()
	if err != nil {
		return false, false
	}
	pctx, cancel := context.WithTimeout(ctx, pingWait)
	defer cancel()
	err = sess.UnmarshalIQ(pctx, ping.IQ{IQ: stanza.IQ{Type: stanza.GetIQ, From: roomJID, To: to}}.TokenReader(), nil)
	a.log.Debug("ping of an occupant", "room", roomJID.String(), "occupant", to.String(), "err", err)
	var se stanza.Error
	return err == nil, errors.As(err, &se)
}

// rejoinOccupant runs on the room's worker when an occupant's session answers again (or sends
// something): unless the client joined again by itself since, it gets the
// join sequence (with what it is owed) as if it had just joined.
func (a *Adapter) rejoinOccupant(ctx context.Context, k occupants.Key) {
	rec := a.rec.Take(k)
	if rec == nil {
		return
	}
	joined, ok, err := a.db.occ().JoinedAt(ctx, k.Room, k.Full)
	if err != nil || !ok || joined.After(rec.Since) {
		return // gone, or joined again by itself
	}
	r, err := a.db.portals().Room(ctx, k.Room)
	if err != nil || r.Kind != portals.KindMUC {
		return
	}
	from, err := jid.Parse(k.Full)
	if err != nil {
		return
	}
	user, err := a.m.LocalUserURI(from)
	if err != nil {
		return
	}
	roomJID, _ := a.m.RoomJID(r.MUCLocal)
	occ, err1 := a.db.occ().List(ctx, r.URI)
	mem, err2 := a.db.occ().Members(ctx, r.URI)
	if err := errors.Join(err1, err2); err != nil {
		a.log.Warn("occupant not rejoined", "room", string(r.URI), "err", err)
		return
	}
	var nick string
	for _, o := range occ {
		if o.Full == k.Full {
			nick = o.Nick
		}
	}
	if nick == "" {
		return
	}
	if err := a.db.occ().Add(ctx, r.URI, occupants.Occupant{Full: k.Full, Bare: from.Bare().String(), Nick: nick}); err != nil {
		a.log.Warn("occupant not rejoined", "room", string(r.URI), "err", err)
		return
	}
	a.log.Info("occupant rejoined by the gateway", "room", string(r.URI), "occupant", k.Full, "owed_since", rec.Owed)
	a.joinSequence(ctx, r, roomJID, k.Full, nick, user, occ, mem, false, false, nil, false, rec.Owed, a.now())
}

// dropOccupant runs on the room's worker when an occupant did not answer within the tracker's
// Window: an absent one is removed (the others see it leave); an unconfirmed one stays.
func (a *Adapter) dropOccupant(ctx context.Context, k occupants.Key) {
	rec := a.rec.Take(k)
	if rec == nil || !rec.Absent {
		return
	}
	r, err := a.db.portals().Room(ctx, k.Room)
	if err != nil {
		return
	}
	from, err1 := jid.Parse(k.Full)
	roomJID, err2 := a.m.RoomJID(r.MUCLocal)
	if errors.Join(err1, err2) != nil {
		return
	}
	a.log.Info("occupant's session did not come back; removed", "room", string(r.URI), "occupant", k.Full)
	a.removeOccupantOf(ctx, r, roomJID, from, false)
}

// owedHistory adds the room history since owed (zero: nothing) to the entries a joining occupant
// asked for, each once, oldest first.
func (a *Adapter) owedHistory(ctx context.Context, r portals.Room, asked []xhistory.Entry, owed time.Time) []xhistory.Entry {
	if owed.IsZero() {
		return asked
	}
	more, err := a.hist.Recent(ctx, r.URI, owedMax, owed)
	if err != nil {
		a.log.Warn("could not read room history", "err", err)
		return asked
	}
	have := map[string]bool{}
	for _, h := range asked {
		have[h.StanzaID] = true
	}
	out := slices.Clone(asked)
	for _, h := range more {
		if !have[h.StanzaID] {
			out = append(out, h)
		}
	}
	slices.SortStableFunc(out, func(x, y xhistory.Entry) int { return x.SentAt.Compare(y.SentAt) })
	return out
}
