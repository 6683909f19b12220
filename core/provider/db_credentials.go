package provider

import (
	"context"
	"fmt"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// Our users' signature keys and the alerts about leaves that claim them with another key
// (credentials.go): provider_users.sig_public, provider_leaf_keys, provider_credential_alerts.

// ownKey reports whether key is a signature key we created for our user u: its own key, or a
// leaf key made for it.
func (d db) ownKey(ctx context.Context, u event.UserURI, key []byte) (bool, error) {
	var n int
	err := d.q.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM provider_users WHERE user_uri = ? AND sig_public = ?)
		+ (SELECT COUNT(*) FROM provider_leaf_keys WHERE signature_key = ? AND user_uri = ?)`, string(u), key, key, string(u)).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("provider: signature keys of %s: %w", u, err)
	}
	return n > 0, nil
}

// insertLeafKey records key as a leaf signature key made for u (once).
func (d db) insertLeafKey(ctx context.Context, u event.UserURI, key []byte, now time.Time) error {
	_, err := d.q.ExecContext(ctx, `INSERT INTO provider_leaf_keys (signature_key, user_uri, created_at) VALUES (?, ?, ?)
		ON CONFLICT (signature_key) DO NOTHING`, key, string(u), now.UnixMilli())
	if err != nil {
		return fmt.Errorf("provider: record leaf key: %w", err)
	}
	return nil
}

// credentialAlerts reads the newest limit credential alerts, newest first.
func (d db) credentialAlerts(ctx context.Context, limit int) ([]CredentialAlert, error) {
	rows, err := d.q.QueryContext(ctx, `SELECT id, room, hub, user_uri, reason, signature_key, seen_at
		FROM provider_credential_alerts ORDER BY id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("provider: credential alerts: %w", err)
	}
	defer rows.Close()
	var out []CredentialAlert
	for rows.Next() {
		var (
			a               CredentialAlert
			room, hub, user string
			seen            int64
		)
		if err := rows.Scan(&a.ID, &room, &hub, &user, &a.Reason, &a.SignatureKey, &seen); err != nil {
			return nil, fmt.Errorf("provider: scan credential alert: %w", err)
		}
		a.Room, a.Hub, a.User, a.SeenAt = event.RoomURI(room), event.Domain(hub), event.UserURI(user), time.UnixMilli(seen)
		out = append(out, a)
	}
	return out, rows.Err()
}

// insertCredentialAlert records an alert about a leaf of u in room (hub: the room's domain).
func (d db) insertCredentialAlert(ctx context.Context, room event.RoomURI, u event.UserURI, reason string, key []byte, now time.Time) error {
	_, err := d.q.ExecContext(ctx, `INSERT INTO provider_credential_alerts (room, hub, user_uri, reason, signature_key, seen_at) VALUES (?, ?, ?, ?, ?, ?)`,
		string(room), string(room.Domain()), string(u), reason, key, now.UnixMilli())
	if err != nil {
		return fmt.Errorf("provider: record credential alert: %w", err)
	}
	return nil
}
