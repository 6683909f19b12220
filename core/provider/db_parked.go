package provider

import (
	"context"
	"fmt"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// Parked envelopes: provider_parked (park.go).

// parkedPartner returns the partner the room's parked envelopes wait for, if any are parked.
func (d db) parkedPartner(ctx context.Context, room event.RoomURI) (event.Domain, bool, error) {
	var partner string
	err := d.q.QueryRowContext(ctx, `SELECT partner FROM provider_parked WHERE room = ? ORDER BY id LIMIT 1`, string(room)).Scan(&partner)
	if isNoRows(err) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("provider: parked envelopes of %s: %w", room, err)
	}
	return event.Domain(partner), true, nil
}

// insertParked stores a sealed envelope behind room's other parked envelopes (once per event ID).
func (d db) insertParked(ctx context.Context, room event.RoomURI, partner event.Domain, id event.EventID, sealed []byte, now time.Time) error {
	_, err := d.q.ExecContext(ctx, `INSERT INTO provider_parked (room, partner, event_id, envelope, created_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (event_id) DO NOTHING`, string(room), string(partner), string(id), sealed, now.UnixMilli())
	return err
}

// parkedHeads lists the first parked envelope's room and partner of every room whose lease has
// run out at now.
func (d db) parkedHeads(ctx context.Context, now time.Time) ([]parkedRow, error) {
	rows, err := d.q.QueryContext(ctx, `SELECT room, partner FROM provider_parked
		WHERE id IN (SELECT MIN(id) FROM provider_parked GROUP BY room) AND claimed_until < ? ORDER BY id LIMIT 256`, now.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("provider: parked rooms: %w", err)
	}
	defer rows.Close()
	var out []parkedRow
	for rows.Next() {
		var r, partner string
		if err := rows.Scan(&r, &partner); err != nil {
			return nil, err
		}
		out = append(out, parkedRow{room: event.RoomURI(r), partner: event.Domain(partner)})
	}
	return out, rows.Err()
}

// claimParked takes the lease on room's parked envelopes until now+lease, unless another replica
// holds it.
func (d db) claimParked(ctx context.Context, room event.RoomURI, now time.Time, lease time.Duration) (bool, error) {
	ms := now.UnixMilli()
	res, err := d.q.ExecContext(ctx, `UPDATE provider_parked SET claimed_until = ? WHERE room = ? AND claimed_until < ?`,
		ms+lease.Milliseconds(), string(room), ms)
	if err != nil {
		return false, fmt.Errorf("provider: claim parked envelopes of %s: %w", room, err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// releaseOrphanedParked gives up every lease on parked envelopes and returns how many rows held
// one. Only the provider that starts calls it: a lease found then was left by a process killed
// (or stopped) while it delivered them, since only one process runs a store's provider.
func (d db) releaseOrphanedParked(ctx context.Context) (int64, error) {
	res, err := d.q.ExecContext(ctx, `UPDATE provider_parked SET claimed_until = 0 WHERE claimed_until <> 0`)
	if err != nil {
		return 0, fmt.Errorf("provider: release the leases of parked envelopes: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// releaseParked gives up the lease on room's parked envelopes.
func (d db) releaseParked(ctx context.Context, room event.RoomURI) error {
	_, err := d.q.ExecContext(ctx, `UPDATE provider_parked SET claimed_until = 0 WHERE room = ?`, string(room))
	return err
}

// nextParked loads the first parked envelope of room with its sealed envelope and event ID; ok
// is false when none is parked.
func (d db) nextParked(ctx context.Context, room event.RoomURI) (r parkedRow, id string, sealed []byte, ok bool, err error) {
	var partner string
	var createdAt int64
	err = d.q.QueryRowContext(ctx, `SELECT id, partner, event_id, envelope, created_at FROM provider_parked WHERE room = ? ORDER BY id LIMIT 1`,
		string(room)).Scan(&r.id, &partner, &id, &sealed, &createdAt)
	if isNoRows(err) {
		return r, "", nil, false, nil
	}
	if err != nil {
		return r, "", nil, false, fmt.Errorf("provider: parked envelope of %s: %w", room, err)
	}
	r.room, r.partner, r.createdAt = room, event.Domain(partner), time.UnixMilli(createdAt)
	return r, id, sealed, true, nil
}

// deleteParked removes the parked envelope with row id.
func (d db) deleteParked(ctx context.Context, id int64) error {
	_, err := d.q.ExecContext(ctx, `DELETE FROM provider_parked WHERE id = ?`, id)
	return err
}

// parkedRooms lists the rooms with envelopes parked for partner.
func (d db) parkedRooms(ctx context.Context, partner event.Domain) ([]event.RoomURI, error) {
	rows, err := d.q.QueryContext(ctx, `SELECT DISTINCT room FROM provider_parked WHERE partner = ?`, string(partner))
	if err != nil {
		return nil, fmt.Errorf("provider: rooms parked for %s: %w", partner, err)
	}
	defer rows.Close()
	var rooms []event.RoomURI
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			return nil, err
		}
		rooms = append(rooms, event.RoomURI(r))
	}
	return rooms, rows.Err()
}

// parkedStat is how many envelopes are parked for a partner and since when.
type parkedStat struct {
	partner string
	count   int64
	oldest  time.Time
}

// parkedStats counts the parked envelopes per partner.
func (d db) parkedStats(ctx context.Context) ([]parkedStat, error) {
	rows, err := d.q.QueryContext(ctx, `SELECT partner, COUNT(*), MIN(created_at) FROM provider_parked GROUP BY partner`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []parkedStat
	for rows.Next() {
		var s parkedStat
		var oldest int64
		if err := rows.Scan(&s.partner, &s.count, &oldest); err != nil {
			return nil, err
		}
		s.oldest = time.UnixMilli(oldest)
		out = append(out, s)
	}
	return out, rows.Err()
}
