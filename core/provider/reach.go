package provider

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/bus"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
)

// A partner that does not answer holds up what we send it: /notify bodies wait in the outbox,
// and a mimi.out envelope for a room the partner hosts (or an invite of its user) waits in its
// handler, which keeps the room's order. Neither waits for a timer: the protocol client tells
// us the moment the partner answers again (any exchange, also its own request to us), the outbox
// retries the partner's queues at once and the waiting handlers try again. Past
// Config.UnreachableNotice the local users of the rooms held up are told that the partner does
// not answer, and told again when it does.

// Defaults of the waiting.
const (
	// DefaultUnreachableNotice is how long a partner may not answer before the users whose
	// messages wait for it are told.
	DefaultUnreachableNotice = 10 * time.Second
	// waitMin and waitMax bound the pause between attempts of a waiting handler when no answer
	// of the partner wakes it earlier.
	waitMin, waitMax = 100 * time.Millisecond, 5 * time.Second
	// waitReserve is the part of the handler's deadline kept for a last attempt.
	waitReserve = 35 * time.Second
)

// waiter is a mimi.out envelope whose handler waits for partner.
type waiter struct {
	partner event.Domain
	env     *event.Envelope
}

// reachState is the provider's view of partners that hold things up.
type reachState struct {
	mu      sync.Mutex
	waiting map[*waiter]struct{}
	// told lists, per partner, the rooms whose users were told it does not answer, with the
	// user and network each notice went to.
	told map[event.Domain]map[event.RoomURI][]noticeTo
}

// noticeTo is one recipient of a room-level notice.
type noticeTo struct {
	user    event.UserURI
	network event.Network
	origin  event.Origin
	event   event.EventID // the envelope that waits, if any
}

// unreachablePartner returns the partner that err says does not answer, if any.
func (p *Provider) unreachablePartner(env *event.Envelope, err error) (event.Domain, bool) {
	if err == nil || reasonOf(err) != "unreachable" {
		return "", false
	}
	d := p.noticeOf(env, err, false).Partner
	return d, d != "" && d != p.cfg.Domain
}

// outWaiting handles env; while it fails only because a partner does not answer, it waits for
// the partner (woken when the partner answers again, else after a pause of up to waitMax) and
// tries again, as long as the handler's deadline leaves room for another attempt.
func (p *Provider) outWaiting(ctx context.Context, d bus.Delivery) error {
	var w *waiter
	defer func() {
		if w != nil {
			p.reach.mu.Lock()
			delete(p.reach.waiting, w)
			p.reach.mu.Unlock()
		}
	}()
	pause := waitMin
	for {
		err := p.out(ctx, d)
		partner, down := p.unreachablePartner(d.Envelope, err)
		if !down || errors.Is(err, bus.ErrPermanent) {
			return err
		}
		if w == nil {
			w = &waiter{partner: partner, env: d.Envelope}
			p.reach.mu.Lock()
			p.reach.waiting[w] = struct{}{}
			p.reach.mu.Unlock()
			p.log.Info("waiting for a partner that does not answer", "partner", partner, "room", d.Envelope.Room, "event_id", d.Envelope.ID, "err", err)
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < waitReserve+pause {
			return err
		}
		back := p.client.PartnerBack(partner)
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		case <-back:
			t.Stop()
			// Let the request that found the partner back finish its work first.
			time.Sleep(waitMin)
		}
		pause = min(pause*2, waitMax)
	}
}

// partnerBack is called when partner d answers again after it was down: its outbox queues are
// retried at once, and the users told that it did not answer are told that it does.
func (p *Provider) partnerBack(ctx context.Context, d event.Domain) {
	if err := p.outbox.WakeFollower(ctx, d); err != nil && ctx.Err() == nil {
		p.log.Warn("outbox not woken for a partner that answers again", "partner", d, "err", err)
	}
	p.reach.mu.Lock()
	told := p.reach.told[d]
	delete(p.reach.told, d)
	p.reach.mu.Unlock()
	for room, tos := range told {
		for _, to := range tos {
			n := event.Notice{Code: event.NoticePartnerReachable, Partner: d, Reason: "reachable",
				Correlation: correlation("reachable", string(d), string(room), string(to.user), p.now().Format(time.RFC3339Nano))}
			p.publishNotice(ctx, to.network, room, to.user, to.origin, n, nil)
		}
	}
}

// runReach tells the local users of the rooms held up by a partner that has not answered for
// Config.UnreachableNotice, once per room and outage, checking every second until ctx ends.
func (p *Provider) runReach(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, r := range p.client.Down() {
			if p.now().Sub(r.DownSince) < p.cfg.UnreachableNotice {
				continue
			}
			if err := p.tellUnreachable(ctx, r); err != nil && ctx.Err() == nil {
				p.log.Warn("users not told about an unreachable partner", "partner", r.Domain, "err", err)
			}
		}
	}
}

// tellUnreachable tells the users of every room held up by partner r (not told yet in this
// outage) that it does not answer: the senders of waiting envelopes, and the local users of the
// rooms with fanout queued for r.
func (p *Provider) tellUnreachable(ctx context.Context, r protocol.PartnerReachability) error {
	d := r.Domain
	targets := map[event.RoomURI][]noticeTo{}
	p.reach.mu.Lock()
	told := p.reach.told[d]
	for w := range p.reach.waiting {
		if w.partner == d && told[w.env.Room] == nil && w.env.Origin.Network.Valid() && w.env.Origin.Network != event.NetworkMIMI {
			targets[w.env.Room] = append(targets[w.env.Room], noticeTo{user: w.env.Sender, network: w.env.Origin.Network, origin: w.env.Origin, event: w.env.ID})
		}
	}
	p.reach.mu.Unlock()
	rooms, err := p.queuedRooms(ctx, d)
	if err != nil {
		return err
	}
	for _, room := range rooms {
		if told[room] != nil || targets[room] != nil {
			continue
		}
		tos, err := p.localRecipients(ctx, room)
		if err != nil {
			return err
		}
		targets[room] = tos
	}
	// Recorded before the notices go out, so that a partner answering meanwhile is told about.
	p.reach.mu.Lock()
	if p.reach.told[d] == nil {
		p.reach.told[d] = map[event.RoomURI][]noticeTo{}
	}
	for room, tos := range targets {
		p.reach.told[d][room] = tos
	}
	p.reach.mu.Unlock()
	select {
	case <-p.client.PartnerBack(d): // it answered since Down: nothing to tell
		p.reach.mu.Lock()
		for room := range targets {
			delete(p.reach.told[d], room)
		}
		p.reach.mu.Unlock()
		return nil
	default:
	}
	for room, tos := range targets {
		for _, to := range tos {
			n := event.Notice{Code: event.NoticePartnerUnreachable, Partner: d, Reason: "unreachable", Event: to.event, Native: to.origin.Event,
				Correlation: correlation("unreachable", string(d), string(room), string(to.user), r.DownSince.Format(time.RFC3339Nano))}
			p.publishNotice(ctx, to.network, room, to.user, to.origin, n, fmt.Errorf("no answer since %s: %s", r.DownSince.Format(time.RFC3339), r.LastErrorText))
		}
	}
	return nil
}

// queuedRooms lists the rooms with /notify bodies queued for follower d.
func (p *Provider) queuedRooms(ctx context.Context, d event.Domain) ([]event.RoomURI, error) {
	rows, err := p.st.QueryContext(ctx, `SELECT DISTINCT room FROM protocol_outbox WHERE follower = ? ORDER BY room`, string(d))
	if err != nil {
		return nil, fmt.Errorf("provider: rooms queued for %s: %w", d, err)
	}
	defer rows.Close()
	var out []event.RoomURI
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			return nil, err
		}
		out = append(out, event.RoomURI(r))
	}
	return out, rows.Err()
}

// localRecipients returns, for a room-level notice, one local user with a client in room per
// network that serves local users there.
func (p *Provider) localRecipients(ctx context.Context, room event.RoomURI) ([]noticeTo, error) {
	rows, err := p.st.QueryContext(ctx, `SELECT u.network, MIN(c.user_uri) FROM provider_clients c JOIN provider_users u ON u.user_uri = c.user_uri
		WHERE c.room = ? GROUP BY u.network ORDER BY u.network`, string(room))
	if err != nil {
		return nil, fmt.Errorf("provider: local users of %s: %w", room, err)
	}
	defer rows.Close()
	var out []noticeTo
	for rows.Next() {
		var n, u string
		if err := rows.Scan(&n, &u); err != nil {
			return nil, err
		}
		out = append(out, noticeTo{user: event.UserURI(u), network: event.Network(n), origin: event.Origin{Network: event.NetworkMIMI}})
	}
	return out, rows.Err()
}

// fanoutExpired tells the local users of room that messages of the room could not be delivered
// to partner d: the outbox gave up on them after Expire.
func (p *Provider) fanoutExpired(ctx context.Context, d event.Domain, room event.RoomURI, bodies int) {
	tos, err := p.localRecipients(ctx, room)
	if err != nil {
		p.log.Warn("users not told about messages the outbox gave up on", "partner", d, "room", room, "err", err)
		return
	}
	for _, to := range tos {
		n := event.Notice{Code: event.NoticeUndelivered, Partner: d, Reason: "unreachable",
			Correlation: correlation("expired", string(d), string(room), string(to.user), p.now().Format(time.RFC3339Nano))}
		p.publishNotice(ctx, to.network, room, to.user, to.origin, n, fmt.Errorf("%d queued /notify bodies expired undelivered", bodies))
	}
}
