package matrix

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// EraseUser deletes what the adapter's tables hold about user u (Matrix ID mxid when u is a
// local user): its ghost (for a partner's user), its parked events, its entry in the stored
// power levels, and the device and cross-signing keys the crypto store keeps of it. It returns
// how many rows it deleted or changed.
func EraseUser(ctx context.Context, st *store.Store, u event.UserURI, mxid id.UserID) (int64, error) {
	total, err := st.DeleteWhere(ctx, "matrix_ghost", []string{"user_id"}, `mimi_user = ?`, string(u))
	if err != nil {
		return total, fmt.Errorf("matrix: erase ghost: %w", err)
	}
	n, err := erasePending(ctx, st, mxid)
	total += n
	if err != nil {
		return total, err
	}
	n, err = erasePowerLevels(ctx, st, mxid)
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

// erasePending deletes the parked events mxid sent.
func erasePending(ctx context.Context, st *store.Store, mxid id.UserID) (int64, error) {
	rows, err := st.QueryContext(ctx, `SELECT event_id, raw FROM matrix_pending`)
	if err != nil {
		return 0, fmt.Errorf("matrix: erase parked events: %w", err)
	}
	var ids []string
	for rows.Next() {
		var evID string
		var raw []byte
		if err := rows.Scan(&evID, &raw); err != nil {
			rows.Close()
			return 0, err
		}
		pt, err := st.Unseal(sealedPending, raw, evID)
		if err != nil {
			continue
		}
		var e struct {
			Sender id.UserID `json:"sender"`
		}
		if json.Unmarshal(pt, &e) == nil && e.Sender == mxid {
			ids = append(ids, evID)
		}
	}
	rows.Close()
	var total int64
	for _, evID := range ids {
		res, err := st.ExecContext(ctx, `DELETE FROM matrix_pending WHERE event_id = ?`, evID)
		if err != nil {
			return total, fmt.Errorf("matrix: erase parked event: %w", err)
		}
		if c, err := res.RowsAffected(); err == nil {
			total += c
		}
	}
	return total, rows.Err()
}

// erasePowerLevels removes mxid from the users map of every stored power-levels content.
func erasePowerLevels(ctx context.Context, st *store.Store, mxid id.UserID) (int64, error) {
	rows, err := st.QueryContext(ctx, `SELECT mx_room, content FROM matrix_power_levels`)
	if err != nil {
		return 0, fmt.Errorf("matrix: erase power levels: %w", err)
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
	var total int64
	for _, u := range todo {
		if _, err := st.ExecContext(ctx, `UPDATE matrix_power_levels SET content = ? WHERE mx_room = ?`, u.content, u.room); err != nil {
			return total, fmt.Errorf("matrix: erase power levels: %w", err)
		}
		total++
	}
	return total, rows.Err()
}
