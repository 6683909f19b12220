// Package mgmtrooms keeps the Matrix adapter's management rooms. A management room is a 1:1 room
// of a local user with the gateway's own account (the bot in appservice mode, the functional
// account in client mode) that is not a portal: her commands (search, start, consent,
// reachability, help) are answered there, and requests for her consent are shown there. In
// appservice mode a user makes one by inviting the bot into a direct chat; in both modes the
// gateway makes one when a partner's user asks for her consent and she has none. Stored in the
// adapter's KV scope: "mgmt:room:<room>" = user, "mgmt:user:<user>" = room.
package mgmtrooms

import (
	"context"
	"errors"
	"fmt"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/core/store"
)

func roomKey(r id.RoomID) string { return "mgmt:room:" + string(r) }
func userKey(u id.UserID) string { return "mgmt:user:" + string(u) }

// Rooms are the management rooms recorded in Store under Scope.
type Rooms struct {
	Store *store.Store
	Scope store.Scope
}

// UserOf returns the user whose management room r is, if it is one.
func (m Rooms) UserOf(ctx context.Context, r id.RoomID) (id.UserID, bool, error) {
	e, err := m.Store.KV(m.Scope).Get(ctx, roomKey(r))
	if errors.Is(err, store.ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("matrix: management room %s: %w", r, err)
	}
	return id.UserID(e.Value), true, nil
}

// Put records r as u's management room.
func (m Rooms) Put(ctx context.Context, r id.RoomID, u id.UserID) error {
	return m.Store.InTx(ctx, func(tx *store.Tx) error {
		kv := tx.KV(m.Scope)
		if _, err := kv.Put(ctx, roomKey(r), []byte(u)); err != nil {
			return err
		}
		_, err := kv.Put(ctx, userKey(u), []byte(r))
		return err
	})
}

// CreateFunc creates a room as the gateway's own account; encrypted says whether it is encrypted
// from its first event.
type CreateFunc func(ctx context.Context, req *mautrix.ReqCreateRoom, encrypted bool) (*mautrix.RespCreateRoom, error)

// For returns u's management room, creating it with create (a direct chat of the gateway's
// account with her, encrypted when asked) and recording it when she has none.
func (m Rooms) For(ctx context.Context, u id.UserID, create CreateFunc, encrypted bool) (id.RoomID, error) {
	e, err := m.Store.KV(m.Scope).Get(ctx, userKey(u))
	if err == nil {
		return id.RoomID(e.Value), nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return "", fmt.Errorf("matrix: management room of %s: %w", u, err)
	}
	req := &mautrix.ReqCreateRoom{Preset: "trusted_private_chat", IsDirect: true, Invite: []id.UserID{u}, Name: "MIMI"}
	resp, err := create(ctx, req, encrypted)
	if err != nil {
		return "", fmt.Errorf("matrix: create a management room for %s: %w", u, err)
	}
	if err := m.Put(ctx, resp.RoomID, u); err != nil {
		return "", err
	}
	return resp.RoomID, nil
}
