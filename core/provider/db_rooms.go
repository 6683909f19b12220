package provider

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/room"
)

// Rooms and their participant index: provider_rooms, provider_participants.

// loadRoom reads room's hub and epoch; nil when the room is unknown.
func (d db) loadRoom(ctx context.Context, r event.RoomURI) (*roomRow, error) {
	var (
		hub   string
		epoch int64
	)
	err := d.q.QueryRowContext(ctx, `SELECT hub, epoch FROM provider_rooms WHERE room = ?`, string(r)).Scan(&hub, &epoch)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("provider: load room: %w", err)
	}
	return &roomRow{Hub: event.Domain(hub), Epoch: uint64(epoch)}, nil
}

// upsertRoom records room (its hub is its URI's domain) at epoch, or moves a known room forward
// to epoch; it never moves a room back.
func (d db) upsertRoom(ctx context.Context, r event.RoomURI, epoch uint64, now time.Time) error {
	_, err := d.q.ExecContext(ctx, `INSERT INTO provider_rooms (room, hub, epoch, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (room) DO UPDATE SET epoch = excluded.epoch WHERE provider_rooms.epoch < excluded.epoch`,
		string(r), string(r.Domain()), int64(epoch), now.UnixMilli())
	if err != nil {
		return fmt.Errorf("provider: upsert room: %w", err)
	}
	return nil
}

// setRoomEpoch sets room's epoch (the hub accepted a commit).
func (d db) setRoomEpoch(ctx context.Context, r event.RoomURI, epoch uint64) error {
	if _, err := d.q.ExecContext(ctx, `UPDATE provider_rooms SET epoch = ? WHERE room = ?`, int64(epoch), string(r)); err != nil {
		return fmt.Errorf("provider: advance room epoch: %w", err)
	}
	return nil
}

// roomsWithPendingProposals lists the rooms with proposals stored for their current epoch.
func (d db) roomsWithPendingProposals(ctx context.Context) ([]event.RoomURI, error) {
	rows, err := d.q.QueryContext(ctx, `SELECT DISTINCT r.room FROM provider_rooms r JOIN provider_proposals x ON x.room = r.room AND x.epoch = r.epoch`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var rooms []event.RoomURI
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err == nil {
			rooms = append(rooms, event.RoomURI(r))
		}
	}
	return rooms, nil
}

// queryNetworks reads the networks of the local users with a client in room.
func (d db) queryNetworks(ctx context.Context, r event.RoomURI) ([]event.Network, error) {
	rows, err := d.q.QueryContext(ctx, `SELECT DISTINCT u.network FROM provider_clients c JOIN provider_users u ON u.user_uri = c.user_uri
		WHERE c.room = ? ORDER BY u.network`, string(r))
	if err != nil {
		return nil, fmt.Errorf("provider: networks: %w", err)
	}
	defer rows.Close()
	var out []event.Network
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out = append(out, event.Network(n))
	}
	return out, rows.Err()
}

// roleOf reads u's role in room from the participant index (the hub's accepted state).
func (d db) roleOf(ctx context.Context, r event.RoomURI, u event.UserURI) (room.RoleIndex, bool, error) {
	var v int64
	err := d.q.QueryRowContext(ctx, `SELECT role FROM provider_participants WHERE room = ? AND user_uri = ?`, string(r), string(u)).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return room.RoleNone, false, nil
	}
	if err != nil {
		return room.RoleNone, false, fmt.Errorf("provider: role: %w", err)
	}
	return room.RoleIndex(v), true, nil
}

// activeParticipants lists the participants of room that are not banned.
func (d db) activeParticipants(ctx context.Context, r event.RoomURI) ([]event.UserURI, error) {
	rows, err := d.q.QueryContext(ctx, `SELECT user_uri FROM provider_participants WHERE room = ? AND role <> ?`, string(r), int64(room.RoleBanned))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []event.UserURI
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			return nil, err
		}
		out = append(out, event.UserURI(u))
	}
	return out, rows.Err()
}

// syncParticipants rewrites room's participant index from the accepted state st.
func (d db) syncParticipants(ctx context.Context, r event.RoomURI, st *room.State) error {
	if _, err := d.q.ExecContext(ctx, `DELETE FROM provider_participants WHERE room = ?`, string(r)); err != nil {
		return fmt.Errorf("provider: participant index: %w", err)
	}
	for _, pt := range st.Participants.Participants {
		if _, err := d.q.ExecContext(ctx, `INSERT INTO provider_participants (room, user_uri, role) VALUES (?, ?, ?)`,
			string(r), string(pt.User), int64(pt.Role)); err != nil {
			return fmt.Errorf("provider: participant index: %w", err)
		}
	}
	return nil
}
