package provider

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/bus"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// A mimi.out envelope that needs a partner that does not answer (a message or change in a room
// the partner hosts, an invite of its user) is parked: stored durably (sealed), acknowledged on
// the bus, and delivered by runParked when the partner answers again. Every later envelope of the
// same room is parked behind it, so the room keeps its order, while the other rooms of its bus
// partition go on. A parked envelope that is refused is told to its sender like any other; one
// that could not be delivered for parkExpire is told as undelivered and dropped.

const (
	// parkExpire is how long a parked envelope is kept.
	parkExpire = outboxExpire
	// parkLease is how long a replica may work on a room's parked envelopes before another may.
	parkLease = 2 * time.Minute
)

// sealedParked is a parked envelope (MIMI content in the clear), bound to its event ID.
var sealedParked = store.SealedColumn{Table: "provider_parked", Column: "envelope", Key: []string{"event_id"}}

// park stores env behind the room's other parked envelopes, waiting for partner (idempotent: a
// redelivery of a parked envelope is parked once).
func (p *Provider) park(ctx context.Context, env *event.Envelope, partner event.Domain) error {
	raw, err := event.Marshal(env)
	if err != nil {
		return bus.Permanent(fmt.Errorf("provider: park %s: %w", env.ID, err))
	}
	err = p.st.InTx(ctx, func(tx *store.Tx) error {
		sealed, err := tx.Seal(sealedParked, raw, string(env.ID))
		if err != nil {
			return err
		}
		return dbOf(tx).insertParked(ctx, env.Room, partner, env.ID, sealed, p.now())
	})
	if err != nil {
		return fmt.Errorf("provider: park %s: %w", env.ID, err)
	}
	p.met.parked.Inc()
	return nil
}

// kickParked wakes runParked.
func (p *Provider) kickParked() {
	select {
	case p.parkWake <- struct{}{}:
	default:
	}
}

// runParked delivers parked envelopes when woken (a partner answers again) and every waitMax,
// until ctx ends.
func (p *Provider) runParked(ctx context.Context) {
	t := time.NewTicker(waitMax)
	defer t.Stop()
	for {
		if err := p.parkedOnce(ctx); err != nil && ctx.Err() == nil {
			p.log.Warn("parked envelopes", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-p.parkWake:
		case <-t.C:
		}
	}
}

// parkedRow is one parked envelope.
type parkedRow struct {
	id        int64
	room      event.RoomURI
	partner   event.Domain
	env       *event.Envelope
	createdAt time.Time
}

// parkedOnce works through the rooms with parked envelopes: each room's envelopes in order until
// one fails; a partner found down is not tried again in this pass.
func (p *Provider) parkedOnce(ctx context.Context) error {
	heads, err := p.db().parkedHeads(ctx, p.now())
	if err != nil {
		return err
	}
	down := map[event.Domain]bool{}
	for _, h := range heads {
		if ctx.Err() != nil {
			return nil
		}
		if down[h.partner] {
			continue
		}
		if ok, err := p.db().claimParked(ctx, h.room, p.now(), parkLease); err != nil || !ok {
			if err != nil {
				return err
			}
			continue
		}
		partnerDown, err := p.drainRoom(ctx, h.room)
		if partnerDown {
			down[h.partner] = true
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// nextParked loads the first parked envelope of room, or nil.
func (p *Provider) nextParked(ctx context.Context, room event.RoomURI) (*parkedRow, error) {
	r, id, sealed, ok, err := p.db().nextParked(ctx, room)
	if err != nil || !ok {
		return nil, err
	}
	raw, err := p.st.Unseal(sealedParked, sealed, id)
	if err != nil {
		return nil, fmt.Errorf("provider: parked envelope %s: %w", id, err)
	}
	if r.env, err = event.Unmarshal(raw); err != nil {
		return nil, fmt.Errorf("provider: parked envelope %s: %w", id, err)
	}
	return &r, nil
}

// drainRoom delivers room's parked envelopes in order (its lease held) until none is left or one
// cannot go yet; partnerDown reports that the partner still does not answer.
func (p *Provider) drainRoom(ctx context.Context, room event.RoomURI) (partnerDown bool, err error) {
	defer func() {
		if rerr := p.db().releaseParked(context.WithoutCancel(ctx), room); rerr != nil && err == nil {
			err = rerr
		}
	}()
	for {
		r, err := p.nextParked(ctx, room)
		if err != nil || r == nil {
			return false, err
		}
		herr := p.out(ctx, bus.Delivery{Envelope: r.env})
		_, unreachable := p.unreachablePartner(r.env, herr)
		expired := p.now().Sub(r.createdAt) > parkExpire
		switch {
		case herr == nil:
		case unreachable && !expired:
			return true, nil
		case errors.Is(herr, bus.ErrPermanent) || permanent(herr) || expired:
			p.met.givenUp.WithLabelValues(r.env.Kind.String(), reasonLabel(reasonOf(herr))).Inc()
			p.noticeFailed(ctx, r.env, herr, !errors.Is(herr, bus.ErrPermanent) && !permanent(herr))
		default:
			p.log.Info("parked envelope not delivered yet", "room", room, "event_id", r.env.ID, "err", herr)
			return false, nil
		}
		if err := p.db().deleteParked(ctx, r.id); err != nil {
			return false, fmt.Errorf("provider: unpark %s: %w", r.env.ID, err)
		}
	}
}
