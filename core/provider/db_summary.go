package provider

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/room"
)

// What operators see (summary.go): rooms with their participants and local clients, and the
// local users' KeyPackage pools, read in a few whole-table queries.

// roomSummaries reads every room with its participant and local client counts, ordered by room
// URI; domain (ours) decides Hosted.
func (d db) roomSummaries(ctx context.Context, domain event.Domain) ([]RoomSummary, error) {
	rows, err := d.q.QueryContext(ctx, `SELECT room, hub, epoch, created_at FROM provider_rooms ORDER BY room`)
	if err != nil {
		return nil, fmt.Errorf("provider: list rooms: %w", err)
	}
	var out []RoomSummary
	idx := map[event.RoomURI]int{}
	for rows.Next() {
		var r, hub string
		var epoch, created int64
		if err := rows.Scan(&r, &hub, &epoch, &created); err != nil {
			rows.Close()
			return nil, fmt.Errorf("provider: list rooms: %w", err)
		}
		idx[event.RoomURI(r)] = len(out)
		out = append(out, RoomSummary{Room: event.RoomURI(r), Hub: event.Domain(hub), Hosted: event.Domain(hub) == domain,
			Epoch: uint64(max(epoch, 0)), CreatedAt: time.UnixMilli(created).UTC(), Members: map[event.Domain]int{}})
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return nil, fmt.Errorf("provider: list rooms: %w", err)
	}
	prow, err := d.q.QueryContext(ctx, `SELECT room, user_uri, role FROM provider_participants`)
	if err != nil {
		return nil, fmt.Errorf("provider: list participants: %w", err)
	}
	for prow.Next() {
		var r, u string
		var role int64
		if err := prow.Scan(&r, &u, &role); err != nil {
			prow.Close()
			return nil, fmt.Errorf("provider: list participants: %w", err)
		}
		i, ok := idx[event.RoomURI(r)]
		if !ok {
			continue
		}
		switch room.RoleIndex(role) {
		case room.RoleNone:
		case room.RoleBanned:
			out[i].Banned++
		default:
			out[i].Members[event.UserURI(u).Domain()]++
		}
	}
	err = prow.Err()
	prow.Close()
	if err != nil {
		return nil, fmt.Errorf("provider: list participants: %w", err)
	}
	crow, err := d.q.QueryContext(ctx, `SELECT room, COUNT(*) FROM provider_clients GROUP BY room`)
	if err != nil {
		return nil, fmt.Errorf("provider: count clients: %w", err)
	}
	defer crow.Close()
	for crow.Next() {
		var r string
		var n int
		if err := crow.Scan(&r, &n); err != nil {
			return nil, fmt.Errorf("provider: count clients: %w", err)
		}
		if i, ok := idx[event.RoomURI(r)]; ok {
			out[i].LocalClients = n
		}
	}
	if err := crow.Err(); err != nil {
		return nil, fmt.Errorf("provider: count clients: %w", err)
	}
	return out, nil
}

// keyPackageStock reads every local user's KeyPackage pool at now, ordered by user.
func (d db) keyPackageStock(ctx context.Context, now time.Time) ([]KeyPackageStock, error) {
	rows, err := d.q.QueryContext(ctx, `SELECT u.user_uri, u.network, k.last_resort, k.claimed_at, k.expires_at
		FROM provider_users u LEFT JOIN provider_keypackages k ON k.user_uri = u.user_uri ORDER BY u.user_uri`)
	if err != nil {
		return nil, fmt.Errorf("provider: key package stock: %w", err)
	}
	defer rows.Close()
	ms := now.UnixMilli()
	var out []KeyPackageStock
	for rows.Next() {
		var u, n string
		var lastResort, claimed, expires *int64
		if err := rows.Scan(&u, &n, &lastResort, &claimed, &expires); err != nil {
			return nil, fmt.Errorf("provider: key package stock: %w", err)
		}
		if len(out) == 0 || out[len(out)-1].User != event.UserURI(u) {
			out = append(out, KeyPackageStock{User: event.UserURI(u), Network: event.Network(n)})
		}
		s := &out[len(out)-1]
		if lastResort == nil { // a user without any package
			continue
		}
		switch {
		case *claimed != 0:
			s.Claimed++
		case *expires <= ms:
			s.Expired++
		case *lastResort != 0:
			s.LastResort = true
		default:
			s.Available++
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("provider: key package stock: %w", err)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].User < out[j].User })
	return out, nil
}
