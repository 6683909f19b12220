package xmpp

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/ping"
	"mellium.im/xmpp/stanza"

	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/xhistory"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// Occupants across an outage of their session. When Prosody restarts, every client session ends
// and the clients come back with new sessions, often under the same full JID. A client's own
// rejoin may be bounced by Prosody while the rooms component is still reconnecting, which would
// leave the user out of the room while the gateway keeps sending to a session that is gone. So
// the gateway does not rely on the client's rejoin alone:
//
//   - A stanza to an occupant that bounces (the session is gone) marks the occupant absent:
//     nothing more is sent to it, and what it missed is owed from the room history.
//   - After the rooms component reconnects, every occupant is unconfirmed; absent, if the server
//     was down meanwhile (it restarted: the sessions of before are gone).
//   - An absent or unconfirmed occupant is pinged (XEP-0199, from the room) with backoff until its
//     session answers; then, unless the client has joined again by itself, the gateway sends it
//     the join sequence again (occupants' presence, self-presence, what it is owed, the subject):
//     the gateway rejoins it. A join or a message of the occupant itself ends the wait at once,
//     and a message from it is accepted (it is still an occupant), never refused as not joined.
//   - An absent occupant whose session does not answer within rejoinWindow is removed, as
//     before; an unconfirmed one that never bounced stays.

const (
	// rejoinWindow is how long an absent occupant is waited for before it is removed.
	rejoinWindow = 2 * time.Minute
	// rejoinFirst and rejoinMaxBackoff bound the pause between two pings of an occupant.
	rejoinFirst      = 250 * time.Millisecond
	rejoinMaxBackoff = 4 * time.Second
	// pingWait bounds the wait for a ping's answer.
	pingWait = 5 * time.Second
	// owedMax bounds how many messages of the room history an occupant is sent again.
	owedMax = 1000
	// inFlight is how long before a connection to the server ended a stanza may have been taken
	// by the server without reaching the client.
	inFlight = 5 * time.Second
)

// occKey names an occupant: a resource (full JID) in a room.
type occKey struct {
	room event.RoomURI
	full string
}

// recovery is the state of an occupant the gateway is not sure about.
type recovery struct {
	// absent: a stanza to its session bounced; nothing is sent to it until it is back.
	absent bool
	// owed: the room history from this time on did not reach it (zero: nothing owed).
	owed time.Time
	// since: it needs the join sequence unless it joined again after this time.
	since  time.Time
	cancel context.CancelFunc
}

// recoveries are the occupants being recovered.
type recoveries struct {
	mu     sync.Mutex
	m      map[occKey]*recovery
	wg     sync.WaitGroup
	window time.Duration // rejoinWindow (tests shorten it)
}

// isAbsent reports whether a stanza to the occupant would bounce (its session is gone).
func (a *Adapter) isAbsent(uri event.RoomURI, full string) bool {
	a.rec.mu.Lock()
	defer a.rec.mu.Unlock()
	r := a.rec.m[occKey{uri, full}]
	return r != nil && r.absent
}

// present filters the occupants a stanza can reach now.
func (a *Adapter) present(uri event.RoomURI, occ []occupant) []occupant {
	a.rec.mu.Lock()
	defer a.rec.mu.Unlock()
	if len(a.rec.m) == 0 {
		return occ
	}
	return slices.DeleteFunc(slices.Clone(occ), func(o occupant) bool {
		r := a.rec.m[occKey{uri, o.Full}]
		return r != nil && r.absent
	})
}

// watch starts (or extends) the recovery of an occupant: absent when a stanza to it bounced,
// owed the history from owed on (zero: nothing), since the time after which its own join makes
// the gateway's unnecessary.
func (a *Adapter) watch(k occKey, absent bool, owed, since time.Time) {
	a.rec.mu.Lock()
	defer a.rec.mu.Unlock()
	if r := a.rec.m[k]; r != nil {
		r.absent = r.absent || absent
		if !owed.IsZero() && (r.owed.IsZero() || owed.Before(r.owed)) {
			r.owed = owed
		}
		return
	}
	if a.runCtx == nil {
		return // not started
	}
	ctx, cancel := context.WithCancel(a.runCtx)
	a.rec.m[k] = &recovery{absent: absent, owed: owed, since: since, cancel: cancel}
	a.rec.wg.Go(func() { a.pingUntilBack(ctx, k) })
}

// take ends the recovery of an occupant and returns its state (nil when there was none).
func (a *Adapter) take(k occKey) *recovery {
	a.rec.mu.Lock()
	defer a.rec.mu.Unlock()
	r := a.rec.m[k]
	if r != nil {
		delete(a.rec.m, k)
		r.cancel()
	}
	return r
}

// occupantBounced is called for an error stanza from an occupant's full JID in answer to one the
// room sent it (id): its session is gone. A bounce for an earlier session of a resource that
// joined again within bounceGrace is ignored.
func (a *Adapter) occupantBounced(ctx context.Context, r room, full, id string, at time.Time) {
	joined, ok, err := a.db.occupantJoinedAt(ctx, r.URI, full)
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
	a.watch(occKey{r.URI, full}, true, owed, at)
}

// recheckOccupants makes every occupant unconfirmed after the rooms component reconnected: the
// server may have restarted, and a client's join may have been bounced meanwhile. When the server
// was down (it refused connections meanwhile), every session of before is gone: the occupants
// are absent. One that the gateway has to rejoin is owed what was sent in the last inFlight
// before the connection ended (a server that was killed may have taken it without passing it
// on).
func (a *Adapter) recheckOccupants(ctx context.Context, down time.Time, serverWasDown bool) {
	all, err := a.db.allOccupants(ctx)
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
		a.watch(o, serverWasDown, owed, since)
	}
}

// pingUntilBack pings the occupant from its room with backoff until its session answers, then
// hands it to the room's worker to be rejoined; an absent occupant that does not answer within
// rejoinWindow is removed.
func (a *Adapter) pingUntilBack(ctx context.Context, k occKey) {
	r, err := a.db.room(ctx, k.room)
	if err != nil {
		a.take(k)
		return
	}
	roomJID, err1 := a.m.roomJID(r)
	to, err2 := jid.Parse(k.full)
	if err := errors.Join(err1, err2); err != nil {
		a.take(k)
		return
	}
	deadline := time.Now().Add(a.rec.window)
	pause := rejoinFirst
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		pause = min(2*pause, rejoinMaxBackoff)
		if a.pingOccupant(ctx, roomJID, to) {
			a.enqueue(roomJID.String(), job{fn: func(ctx context.Context) { a.rejoinOccupant(ctx, k) }})
			return
		}
		if time.Now().After(deadline) {
			a.enqueue(roomJID.String(), job{fn: func(ctx context.Context) { a.dropOccupant(ctx, k) }})
			return
		}
	}
}

// pingOccupant reports whether the client's session at to answered a ping from the room (a
// result: the server answers for a session that is gone with an error).
func (a *Adapter) pingOccupant(ctx context.Context, roomJID, to jid.JID) bool {
	sess, err := a.rooms.Session()
	if err != nil {
		return false
	}
	pctx, cancel := context.WithTimeout(ctx, pingWait)
	defer cancel()
	err = sess.UnmarshalIQ(pctx, ping.IQ{IQ: stanza.IQ{Type: stanza.GetIQ, From: roomJID, To: to}}.TokenReader(), nil)
	a.log.Debug("ping of an occupant", "room", roomJID.String(), "occupant", to.String(), "err", err)
	return err == nil
}

// rejoinOccupant runs on the room's worker when an occupant's session answers again (or sends
// something): unless the client joined again by itself since, it gets the
// join sequence (with what it is owed) as if it had just joined.
func (a *Adapter) rejoinOccupant(ctx context.Context, k occKey) {
	rec := a.take(k)
	if rec == nil {
		return
	}
	joined, ok, err := a.db.occupantJoinedAt(ctx, k.room, k.full)
	if err != nil || !ok || joined.After(rec.since) {
		return // gone, or joined again by itself
	}
	r, err := a.db.room(ctx, k.room)
	if err != nil || r.Kind != kindMUC {
		return
	}
	from, err := jid.Parse(k.full)
	if err != nil {
		return
	}
	user, err := a.m.localUserURI(from)
	if err != nil {
		return
	}
	roomJID, _ := a.m.roomJID(r)
	occ, err1 := a.db.occupants(ctx, r.URI)
	mem, err2 := a.db.members(ctx, r.URI)
	if err := errors.Join(err1, err2); err != nil {
		a.log.Warn("occupant not rejoined", "room", string(r.URI), "err", err)
		return
	}
	var nick string
	for _, o := range occ {
		if o.Full == k.full {
			nick = o.Nick
		}
	}
	if nick == "" {
		return
	}
	if err := a.db.addOccupant(ctx, r.URI, occupant{Full: k.full, Bare: from.Bare().String(), Nick: nick}); err != nil {
		a.log.Warn("occupant not rejoined", "room", string(r.URI), "err", err)
		return
	}
	a.log.Info("occupant rejoined by the gateway", "room", string(r.URI), "occupant", k.full, "owed_since", rec.owed)
	a.joinSequence(ctx, r, roomJID, k.full, nick, user, occ, mem, false, false, nil, false, rec.owed, a.now())
}

// dropOccupant runs on the room's worker when an occupant did not answer within rejoinWindow:
// an absent one is removed (the others see it leave); an unconfirmed one stays.
func (a *Adapter) dropOccupant(ctx context.Context, k occKey) {
	rec := a.take(k)
	if rec == nil || !rec.absent {
		return
	}
	r, err := a.db.room(ctx, k.room)
	if err != nil {
		return
	}
	from, err1 := jid.Parse(k.full)
	roomJID, err2 := a.m.roomJID(r)
	if errors.Join(err1, err2) != nil {
		return
	}
	a.log.Info("occupant's session did not come back; removed", "room", string(r.URI), "occupant", k.full)
	a.removeOccupantOf(ctx, r, roomJID, from, false)
}

// owedHistory adds the room history since owed (zero: nothing) to the entries a joining occupant
// asked for, each once, oldest first.
func (a *Adapter) owedHistory(ctx context.Context, r room, asked []xhistory.Entry, owed time.Time) []xhistory.Entry {
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
