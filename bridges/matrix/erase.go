package matrix

import (
	"context"
	"encoding/json"
	"strings"

	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/bridges"
	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/e2ee"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// EraseUser deletes what the adapter's tables hold about user u (Matrix ID mxid when u is a
// local user): its ghost (for a partner's user), its parked events, its entry in the stored
// power levels (the adapter's and the state store's cache), the room keys its devices sent, and
// the device and cross-signing keys the crypto store keeps of it. It returns
// how many rows it deleted or changed.
func EraseUser(ctx context.Context, st *store.Store, u event.UserURI, mxid id.UserID) (int64, error) {
	e := bridges.NewErasure(st, "matrix: erase")
	e.Delete(ctx, "matrix_ghost", []string{"user_id"}, `mimi_user = ?`, string(u))
	e.Add(e2ee.ErasePending(ctx, st, mxid))
	// The adapter's base power levels, and the state store's cache of the rooms' power levels.
	withoutUser := func(content string) (any, bool) { return powerLevelsWithout(content, mxid) }
	e.Rewrite(ctx, "matrix_power_levels", "mx_room", "content", withoutUser)
	e.Rewrite(ctx, "mx_room_state", "room_id", "power_levels", withoutUser)
	// The state store's cached m.room.create events of rooms the user created: the adapter does
	// not read them (mautrix would for the creators' power in rooms of version 12, where the
	// homeserver tells it again), and they name the creator.
	e.Rewrite(ctx, "mx_room_state", "room_id", "create_event", func(content string) (any, bool) {
		var c struct {
			Sender id.UserID `json:"sender"`
		}
		return nil, json.Unmarshal([]byte(content), &c) == nil && c.Sender == mxid || strings.Contains(content, `"`+string(mxid)+`"`)
	})
	// The crypto and state store's tables (mautrix); they exist once the adapter has run. The
	// state store learns a user's membership again from the homeserver while the user is still
	// in a Matrix room.
	for _, q := range []string{
		`DELETE FROM crypto_device WHERE user_id = ?`,
		`DELETE FROM crypto_tracked_user WHERE user_id = ?`,
		`DELETE FROM crypto_cross_signing_keys WHERE user_id = ?`,
		`DELETE FROM crypto_cross_signing_signatures WHERE signed_user_id = ? OR signer_user_id = ?`,
		`DELETE FROM mx_user_profile WHERE user_id = ?`,
		// Room keys the user's devices sent: they decrypt the user's messages.
		`DELETE FROM crypto_megolm_inbound_session WHERE source_user = ?`,
	} {
		args := []any{string(mxid)}
		if strings.Count(q, "?") == 2 {
			args = append(args, string(mxid))
		}
		e.Exec(ctx, q, args...)
	}
	return e.Result()
}

// powerLevelsWithout is a power-levels content without mxid in its users map; false when it
// does not name mxid (or is not JSON).
func powerLevelsWithout(content string, mxid id.UserID) (string, bool) {
	if !strings.Contains(content, string(mxid)) {
		return "", false
	}
	var pl map[string]json.RawMessage
	if err := json.Unmarshal([]byte(content), &pl); err != nil {
		return "", false
	}
	var users map[string]json.RawMessage
	if raw, ok := pl["users"]; ok && json.Unmarshal(raw, &users) == nil {
		delete(users, string(mxid))
		b, _ := json.Marshal(users)
		pl["users"] = b
	}
	b, err := json.Marshal(pl)
	if err != nil {
		return "", false
	}
	return string(b), true
}
