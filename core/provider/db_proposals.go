package provider

import (
	"context"
	"fmt"

	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// Proposals a hub accepted (proposals.go: provider_proposals) and the public view of hosted
// rooms (publicview.go: provider_public_groups).

// proposalRow is a stored proposal: its reference, encoded message, acceptance time and target.
type proposalRow struct {
	ref      []byte
	message  []byte
	accepted int64
	target   string
}

// proposalRows reads room's stored proposals of epoch in acceptance order.
func (d db) proposalRows(ctx context.Context, room event.RoomURI, epoch uint64) ([]proposalRow, error) {
	rows, err := d.q.QueryContext(ctx, `SELECT ref, message, accepted, target FROM provider_proposals WHERE room = ? AND epoch = ? ORDER BY id`,
		string(room), int64(epoch))
	if err != nil {
		return nil, fmt.Errorf("provider: load proposals: %w", err)
	}
	defer rows.Close()
	var out []proposalRow
	for rows.Next() {
		var r proposalRow
		if err := rows.Scan(&r.ref, &r.message, &r.accepted, &r.target); err != nil {
			return nil, fmt.Errorf("provider: scan proposal: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// insertProposal stores an encoded proposal of room's epoch under its hash (a second insert of
// the same bytes is a no-op).
func (d db) insertProposal(ctx context.Context, room event.RoomURI, epoch uint64, hash string, r proposalRow) error {
	_, err := d.q.ExecContext(ctx, `INSERT INTO provider_proposals (room, epoch, hash, ref, message, accepted, target) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (room, hash) DO NOTHING`,
		string(room), int64(epoch), hash, r.ref, r.message, r.accepted, r.target)
	if err != nil {
		return fmt.Errorf("provider: store proposal: %w", err)
	}
	return nil
}

// clearProposals forgets room's proposals of epochs before epoch.
func (d db) clearProposals(ctx context.Context, room event.RoomURI, epoch uint64) error {
	if _, err := d.q.ExecContext(ctx, `DELETE FROM provider_proposals WHERE room = ? AND epoch < ?`, string(room), int64(epoch)); err != nil {
		return fmt.Errorf("provider: clear proposals: %w", err)
	}
	return nil
}

// proposalAccepted returns when the proposal with hash was accepted in room; ok is false when it
// is not stored.
func (d db) proposalAccepted(ctx context.Context, room event.RoomURI, hash string) (accepted uint64, ok bool, err error) {
	var acc int64
	err = d.q.QueryRowContext(ctx, `SELECT accepted FROM provider_proposals WHERE room = ? AND hash = ?`, string(room), hash).Scan(&acc)
	switch {
	case err == nil:
		return uint64(acc), true, nil
	case isNoRows(err):
		return 0, false, nil
	}
	return 0, false, fmt.Errorf("provider: proposal dedupe: %w", err)
}

// publicViewRow reads room's stored public state and GroupInfo; ok is false when none is stored.
func (d db) publicViewRow(ctx context.Context, room event.RoomURI) (state, groupInfo []byte, ok bool, err error) {
	err = d.q.QueryRowContext(ctx, `SELECT state, group_info FROM provider_public_groups WHERE room = ?`, string(room)).Scan(&state, &groupInfo)
	switch {
	case isNoRows(err):
		return nil, nil, false, nil
	case err != nil:
		return nil, nil, false, fmt.Errorf("provider: load public view: %w", err)
	}
	return state, groupInfo, true, nil
}

// savePublicViewRow stores room's public view at epoch, compare-and-set: the stored view (if
// any) must be at epoch before or older (a view never goes back); ErrConflict otherwise.
func (d db) savePublicViewRow(ctx context.Context, room event.RoomURI, before, epoch uint64, state, groupInfo []byte) error {
	var cur int64
	err := d.q.QueryRowContext(ctx, `SELECT epoch FROM provider_public_groups WHERE room = ?`, string(room)).Scan(&cur)
	switch {
	case isNoRows(err):
		_, err = d.q.ExecContext(ctx, `INSERT INTO provider_public_groups (room, epoch, state, group_info) VALUES (?, ?, ?, ?)`,
			string(room), int64(epoch), state, groupInfo)
		if err != nil {
			return fmt.Errorf("provider: store public view: %w", err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("provider: load public view epoch: %w", err)
	case uint64(cur) > before:
		return fmt.Errorf("%w: public view of %s at epoch %d, commit of epoch %d", ErrConflict, room, cur, before)
	}
	res, err := d.q.ExecContext(ctx, `UPDATE provider_public_groups SET epoch = ?, state = ?, group_info = ? WHERE room = ? AND epoch = ?`,
		int64(epoch), state, groupInfo, string(room), cur)
	if err != nil {
		return fmt.Errorf("provider: store public view: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return ErrConflict
	}
	return nil
}
