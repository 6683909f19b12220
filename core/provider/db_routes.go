package provider

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// Where a hub's relayed KeyPackage claims came from (relay.go, credentials.go):
// provider_kp_routes.

// insertRoute records that KeyPackage refHex, claimed for room, came from provider (once).
func (d db) insertRoute(ctx context.Context, refHex string, room event.RoomURI, provider event.Domain, expires time.Time) error {
	_, err := d.q.ExecContext(ctx, `INSERT INTO provider_kp_routes (ref, room, provider, expires_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (ref, room) DO NOTHING`, refHex, string(room), string(provider), expires.UnixMilli())
	if err != nil {
		return fmt.Errorf("provider: record KeyPackageRef route: %w", err)
	}
	return nil
}

// routeOf returns the provider KeyPackage refHex of room came from; ok is false when none is
// recorded.
func (d db) routeOf(ctx context.Context, refHex string, room event.RoomURI) (event.Domain, bool, error) {
	var prov string
	err := d.q.QueryRowContext(ctx, `SELECT provider FROM provider_kp_routes WHERE ref = ? AND room = ?`, refHex, string(room)).Scan(&prov)
	switch {
	case err == nil:
		return event.Domain(prov), true, nil
	case errors.Is(err, sql.ErrNoRows):
		return "", false, nil
	}
	return "", false, fmt.Errorf("provider: KeyPackageRef route: %w", err)
}

// routeRecorded reports whether refHex of room is recorded as coming from provider.
func (d db) routeRecorded(ctx context.Context, refHex string, room event.RoomURI, provider event.Domain) (bool, error) {
	var n int
	err := d.q.QueryRowContext(ctx, `SELECT COUNT(*) FROM provider_kp_routes WHERE ref = ? AND room = ? AND provider = ?`,
		refHex, string(room), string(provider)).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("provider: KeyPackageRef route: %w", err)
	}
	return n > 0, nil
}

// deleteRoute forgets the route of refHex in room.
func (d db) deleteRoute(ctx context.Context, refHex string, room event.RoomURI) error {
	if _, err := d.q.ExecContext(ctx, `DELETE FROM provider_kp_routes WHERE ref = ? AND room = ?`, refHex, string(room)); err != nil {
		return fmt.Errorf("provider: drop KeyPackageRef route: %w", err)
	}
	return nil
}

// pruneRoutes deletes the routes whose KeyPackage expired before now.
func (d db) pruneRoutes(ctx context.Context, now time.Time) error {
	if _, err := d.q.ExecContext(ctx, `DELETE FROM provider_kp_routes WHERE expires_at < ?`, now.UnixMilli()); err != nil {
		return fmt.Errorf("provider: prune KeyPackageRef routes: %w", err)
	}
	return nil
}
