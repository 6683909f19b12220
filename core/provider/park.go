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

// parkedPartner returns the partner the room's parked envelopes wait for, if any are parked.
func (p *Provider) parkedPartner(ctx context.Context, room event.RoomURI) (event.Domain, bool, error) {
	var d string
	err := p.st.QueryRowContext(ctx, `SELECT partner FROM provider_parked WHERE room = ? ORDER BY id LIMIT 1`, string(room)).Scan(&d)
	if isNoRows(err) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("provider: parked envelopes of %s: %w", room, err)
	}
	return event.Domain(d), true, nil
}

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
		_, err = tx.ExecContext(ctx, `INSERT INTO provider_parked (room, partner, event_id, envelope, created_at) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (event_id) DO NOTHING`, string(env.Room), string(partner), string(env.ID), sealed, p.now().UnixMilli())
		return err
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
	heads, err := p.parkedHeads(ctx)
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
		if ok, err := p.claimParked(ctx, h.room); err != nil || !ok {
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

// parkedHeads lists the first parked envelope's room and partner of every room no replica works on.
func (p *Provider) parkedHeads(ctx context.Context) ([]parkedRow, error) {
	rows, err := p.st.QueryContext(ctx, `SELECT room, partner FROM provider_parked
		WHERE id IN (SELECT MIN(id) FROM provider_parked GROUP BY room) AND claimed_until < ? ORDER BY id LIMIT 256`, p.now().UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("provider: parked rooms: %w", err)
	}
	defer rows.Close()
	var out []parkedRow
	for rows.Next() {
		var r, d string
		if err := rows.Scan(&r, &d); err != nil {
			return nil, err
		}
		out = append(out, parkedRow{room: event.RoomURI(r), partner: event.Domain(d)})
	}
	return out, rows.Err()
}

// claimParked takes the lease on room's parked envelopes.
func (p *Provider) claimParked(ctx context.Context, room event.RoomURI) (bool, error) {
	now := p.now().UnixMilli()
	res, err := p.st.ExecContext(ctx, `UPDATE provider_parked SET claimed_until = ? WHERE room = ? AND claimed_until < ?`,
		now+parkLease.Milliseconds(), string(room), now)
	if err != nil {
		return false, fmt.Errorf("provider: claim parked envelopes of %s: %w", room, err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// releaseParked gives up the lease on room's parked envelopes.
func (p *Provider) releaseParked(ctx context.Context, room event.RoomURI) error {
	_, err := p.st.ExecContext(ctx, `UPDATE provider_parked SET claimed_until = 0 WHERE room = ?`, string(room))
	return err
}

// nextParked loads the first parked envelope of room, or nil.
func (p *Provider) nextParked(ctx context.Context, room event.RoomURI) (*parkedRow, error) {
	var (
		r         parkedRow
		d, id     string
		sealed    []byte
		createdAt int64
	)
	err := p.st.QueryRowContext(ctx, `SELECT id, partner, event_id, envelope, created_at FROM provider_parked WHERE room = ? ORDER BY id LIMIT 1`,
		string(room)).Scan(&r.id, &d, &id, &sealed, &createdAt)
	if isNoRows(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("provider: parked envelope of %s: %w", room, err)
	}
	raw, err := p.st.Unseal(sealedParked, sealed, id)
	if err != nil {
		return nil, fmt.Errorf("provider: parked envelope %s: %w", id, err)
	}
	if r.env, err = event.Unmarshal(raw); err != nil {
		return nil, fmt.Errorf("provider: parked envelope %s: %w", id, err)
	}
	r.room, r.partner, r.createdAt = room, event.Domain(d), time.UnixMilli(createdAt)
	return &r, nil
}

// drainRoom delivers room's parked envelopes in order (its lease held) until none is left or one
// cannot go yet; partnerDown reports that the partner still does not answer.
func (p *Provider) drainRoom(ctx context.Context, room event.RoomURI) (partnerDown bool, err error) {
	defer func() {
		if rerr := p.releaseParked(context.WithoutCancel(ctx), room); rerr != nil && err == nil {
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
		if _, err := p.st.ExecContext(ctx, `DELETE FROM provider_parked WHERE id = ?`, r.id); err != nil {
			return false, fmt.Errorf("provider: unpark %s: %w", r.env.ID, err)
		}
	}
}
