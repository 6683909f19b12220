package matrix

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"maunium.net/go/mautrix/id"

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
	total, err := st.DeleteWhere(ctx, "matrix_ghost", []string{"user_id"}, `mimi_user = ?`, string(u))
	if err != nil {
		return total, fmt.Errorf("matrix: erase ghost: %w", err)
	}
	n, err := e2ee.ErasePending(ctx, st, mxid)
	total += n
	if err != nil {
		return total, err
	}
	// The adapter's base power levels, and the state store's cache of the rooms' power levels.
	for _, pl := range []struct{ table, key, col string }{
		{"matrix_power_levels", "mx_room", "content"},
		{"mx_room_state", "room_id", "power_levels"},
	} {
		n, err = erasePowerLevels(ctx, st, mxid, pl.table, pl.key, pl.col)
		total += n
		if err != nil {
			return total, err
		}
	}
	// The state store's cached m.room.create events of rooms the user created: the adapter does
	// not read them (mautrix would for the creators' power in rooms of version 12, where the
	// homeserver tells it again), and they name the creator.
	n, err = eraseCreateEvents(ctx, st, mxid)
	total += n
	if err != nil {
		return total, err
	}
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
		res, err := st.ExecContext(ctx, q, args...)
		if err != nil {
			if missingTable(err) {
				continue
			}
			return total, fmt.Errorf("matrix: erase crypto store rows: %w", err)
		}
		if c, err := res.RowsAffected(); err == nil {
			total += c
		}
	}
	return total, nil
}

func missingTable(err error) bool {
	m := err.Error()
	return strings.Contains(m, "no such table") || strings.Contains(m, "does not exist")
}

// eraseCreateEvents forgets the cached create events that mxid sent.
func eraseCreateEvents(ctx context.Context, st *store.Store, mxid id.UserID) (int64, error) {
	rows, err := st.QueryContext(ctx, `SELECT room_id, create_event FROM mx_room_state WHERE create_event IS NOT NULL`)
	if err != nil {
		if missingTable(err) {
			return 0, nil
		}
		return 0, fmt.Errorf("matrix: erase cached create events: %w", err)
	}
	var rooms []string
	for rows.Next() {
		var room, content string
		if err := rows.Scan(&room, &content); err != nil {
			rows.Close()
			return 0, err
		}
		var e struct {
			Sender id.UserID `json:"sender"`
		}
		if json.Unmarshal([]byte(content), &e) == nil && e.Sender == mxid || strings.Contains(content, `"`+string(mxid)+`"`) {
			rooms = append(rooms, room)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	var total int64
	for _, room := range rooms {
		if _, err := st.ExecContext(ctx, `UPDATE mx_room_state SET create_event = NULL WHERE room_id = ?`, room); err != nil {
			return total, fmt.Errorf("matrix: erase cached create event: %w", err)
		}
		total++
	}
	return total, nil
}

// erasePowerLevels removes mxid from the users map of every power-levels content stored in
// column col of table (keyed by column key); a missing table (the state store before the adapter
// first ran) is nothing to erase.
func erasePowerLevels(ctx context.Context, st *store.Store, mxid id.UserID, table, key, col string) (int64, error) {
	rows, err := st.QueryContext(ctx, `SELECT `+key+`, `+col+` FROM `+table+` WHERE `+col+` IS NOT NULL`)
	if err != nil {
		if missingTable(err) {
			return 0, nil
		}
		return 0, fmt.Errorf("matrix: erase power levels in %s: %w", table, err)
	}
	type upd struct{ room, content string }
	var todo []upd
	for rows.Next() {
		var room, content string
		if err := rows.Scan(&room, &content); err != nil {
			rows.Close()
			return 0, err
		}
		if !strings.Contains(content, string(mxid)) {
			continue
		}
		var pl map[string]json.RawMessage
		if err := json.Unmarshal([]byte(content), &pl); err != nil {
			continue
		}
		var users map[string]json.RawMessage
		if raw, ok := pl["users"]; ok && json.Unmarshal(raw, &users) == nil {
			delete(users, string(mxid))
			b, _ := json.Marshal(users)
			pl["users"] = b
		}
		b, err := json.Marshal(pl)
		if err != nil {
			continue
		}
		todo = append(todo, upd{room, string(b)})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	var total int64
	for _, u := range todo {
		if _, err := st.ExecContext(ctx, `UPDATE `+table+` SET `+col+` = ? WHERE `+key+` = ?`, u.content, u.room); err != nil {
			return total, fmt.Errorf("matrix: erase power levels in %s: %w", table, err)
		}
		total++
	}
	return total, nil
}
