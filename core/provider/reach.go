package provider

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
)

// A partner that does not answer holds up what we send it: /notify bodies wait in the outbox,
// and a mimi.out envelope for a room the partner hosts (or an invite of its user) is parked with
// the room's later ones behind it (park.go). Neither waits for a timer: the protocol client tells
// us the moment the partner answers again (any exchange, also its own request to us), the outbox
// retries the partner's queues at once and the parked envelopes go out. Past
// Config.UnreachableNotice the local users of the rooms held up are told that the partner does
// not answer, and told again when it does.

// Defaults of the waiting.
const (
	// DefaultUnreachableNotice is how long a partner may not answer before the users whose
	// messages wait for it are told.
	DefaultUnreachableNotice = 10 * time.Second
	// waitMax is the longest pause between attempts to deliver parked envelopes when no answer
	// of the partner wakes their worker earlier.
	waitMax = 5 * time.Second
)

// reachState is the provider's view of partners that hold things up.
type reachState struct {
	mu sync.Mutex
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

// partnerBack is called when partner d answers again after it was down: its outbox queues are
// retried at once, and the users told that it did not answer are told that it does.
func (p *Provider) partnerBack(ctx context.Context, d event.Domain) {
	if err := p.outbox.WakeFollower(ctx, d); err != nil && ctx.Err() == nil {
		p.log.Warn("outbox not woken for a partner that answers again", "partner", d, "err", err)
	}
	p.kickParked()
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
// outage) that it does not answer: the senders of the first envelope parked for r in each room,
// and the local users of the rooms with fanout queued for r.
func (p *Provider) tellUnreachable(ctx context.Context, r protocol.PartnerReachability) error {
	d := r.Domain
	targets, err := p.parkedSenders(ctx, d)
	if err != nil {
		return err
	}
	p.reach.mu.Lock()
	told := p.reach.told[d]
	for room := range targets {
		if told[room] != nil {
			delete(targets, room)
		}
	}
	p.reach.mu.Unlock()
	rooms, err := p.db().queuedRooms(ctx, d)
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

// localRecipients returns, for a room-level notice, one local user with a client in room per
// network that serves local users there.
func (p *Provider) localRecipients(ctx context.Context, room event.RoomURI) ([]noticeTo, error) {
	users, nets, err := p.db().clientPerNetwork(ctx, room)
	if err != nil {
		return nil, err
	}
	out := make([]noticeTo, 0, len(nets))
	for _, n := range nets {
		out = append(out, noticeTo{user: users[n], network: n, origin: event.Origin{Network: event.NetworkMIMI}})
	}
	return out, nil
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

// parkedSenders returns, per room with envelopes parked for partner d, the sender of the first.
func (p *Provider) parkedSenders(ctx context.Context, d event.Domain) (map[event.RoomURI][]noticeTo, error) {
	rooms, err := p.db().parkedRooms(ctx, d)
	if err != nil {
		return nil, err
	}
	out := map[event.RoomURI][]noticeTo{}
	for _, room := range rooms {
		r, err := p.nextParked(ctx, room)
		if err != nil {
			return nil, err
		}
		if r != nil && r.env.Origin.Network.Valid() && r.env.Origin.Network != event.NetworkMIMI {
			out[room] = []noticeTo{{user: r.env.Sender, network: r.env.Origin.Network, origin: r.env.Origin, event: r.env.ID}}
		}
	}
	return out, nil
}
