package consent

import (
	"context"
	"fmt"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// Setting is a user's own reachability setting.
type Setting struct {
	User    event.UserURI
	Setting Reachability
	Updated time.Time
}

// Grant is a requester a user has accepted.
type Grant struct {
	Target, Requester event.UserURI
	Granted           time.Time
}

// List returns up to limit users' own settings and up to limit grants, newest first, for
// operators (the admin console). It reads only the store.
func List(ctx context.Context, st *store.Store, limit int) ([]Setting, []Grant, error) {
	rows, err := st.QueryContext(ctx, `SELECT user_uri, setting, updated_at FROM consent_reachability ORDER BY updated_at DESC LIMIT ?`, limit)
	if err != nil {
		return nil, nil, fmt.Errorf("consent: list settings: %w", err)
	}
	var settings []Setting
	for rows.Next() {
		var u, s string
		var at int64
		if err := rows.Scan(&u, &s, &at); err != nil {
			rows.Close()
			return nil, nil, fmt.Errorf("consent: list settings: %w", err)
		}
		settings = append(settings, Setting{User: event.UserURI(u), Setting: Reachability(s), Updated: time.UnixMilli(at).UTC()})
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return nil, nil, fmt.Errorf("consent: list settings: %w", err)
	}
	grows, err := st.QueryContext(ctx, `SELECT target, requester, granted_at FROM consent_grants ORDER BY granted_at DESC LIMIT ?`, limit)
	if err != nil {
		return nil, nil, fmt.Errorf("consent: list grants: %w", err)
	}
	defer grows.Close()
	var grants []Grant
	for grows.Next() {
		var t, r string
		var at int64
		if err := grows.Scan(&t, &r, &at); err != nil {
			return nil, nil, fmt.Errorf("consent: list grants: %w", err)
		}
		grants = append(grants, Grant{Target: event.UserURI(t), Requester: event.UserURI(r), Granted: time.UnixMilli(at).UTC()})
	}
	return settings, grants, grows.Err()
}
