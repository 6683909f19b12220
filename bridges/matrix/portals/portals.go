// Package portals keeps what the Matrix adapter knows of its portals: which Matrix room shows
// which MIMI room (the matrix_portal table, one row per pair, kept however the room came to be:
// created for a MIMI room, an invite of a ghost or of the functional account, a start command),
// and the power levels last recorded for each portal room (matrix_power_levels), which are what
// the next m.room.power_levels event is compared with to find role changes.
package portals

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	mevent "maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/powerlevels"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// Table reads and writes the portal tables of the adapter's migrations in Q.
type Table struct {
	Q store.Querier
}

// ByMatrix returns the MIMI room of a Matrix portal room.
func (t Table) ByMatrix(ctx context.Context, room id.RoomID) (event.RoomURI, bool, error) {
	var uri string
	err := t.Q.QueryRowContext(ctx, `SELECT mimi_room FROM matrix_portal WHERE mx_room = ?`, string(room)).Scan(&uri)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("matrix: portal of %s: %w", room, err)
	}
	return event.RoomURI(uri), true, nil
}

// ByMIMI returns the Matrix portal room of a MIMI room.
func (t Table) ByMIMI(ctx context.Context, room event.RoomURI) (id.RoomID, bool, error) {
	var mx string
	err := t.Q.QueryRowContext(ctx, `SELECT mx_room FROM matrix_portal WHERE mimi_room = ?`, string(room)).Scan(&mx)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("matrix: portal for %s: %w", room, err)
	}
	return id.RoomID(mx), true, nil
}

// Put records mx as the portal of room. A pair already recorded for either room stays as it
// is, so the first portal of a MIMI room wins.
func (t Table) Put(ctx context.Context, room event.RoomURI, mx id.RoomID, encrypted bool) error {
	enc := 0
	if encrypted {
		enc = 1
	}
	if _, err := t.Q.ExecContext(ctx, `INSERT INTO matrix_portal (mimi_room, mx_room, encrypted, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT DO NOTHING`, string(room), string(mx), enc, time.Now().UnixMilli()); err != nil {
		return fmt.Errorf("matrix: store portal %s: %w", mx, err)
	}
	return nil
}

// Rooms lists the Matrix rooms of all portals.
func (t Table) Rooms(ctx context.Context) ([]id.RoomID, error) {
	rows, err := t.Q.QueryContext(ctx, `SELECT mx_room FROM matrix_portal`)
	if err != nil {
		return nil, fmt.Errorf("matrix: list portals: %w", err)
	}
	defer rows.Close()
	var rooms []id.RoomID
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			return nil, fmt.Errorf("matrix: list portals: %w", err)
		}
		rooms = append(rooms, id.RoomID(r))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("matrix: list portals: %w", err)
	}
	return rooms, nil
}

// PrevPowerLevels returns the content an m.room.power_levels event replaces: the content last
// recorded for the room (PutPowerLevels), else the homeserver's unsigned.prev_content, else nil
// (unknown: everyone had users_default).
func (t Table) PrevPowerLevels(ctx context.Context, evt *mevent.Event) (*mevent.PowerLevelsEventContent, error) {
	var raw string
	err := t.Q.QueryRowContext(ctx, `SELECT content FROM matrix_power_levels WHERE mx_room = ?`, string(evt.RoomID)).Scan(&raw)
	switch {
	case err == nil:
		return powerlevels.Decode([]byte(raw)), nil
	case !errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("matrix: power levels of %s: %w", evt.RoomID, err)
	}
	if pc := evt.Unsigned.PrevContent; pc != nil {
		if pl, ok := pc.Parsed.(*mevent.PowerLevelsEventContent); ok {
			return pl, nil
		}
		return powerlevels.Decode(pc.VeryRaw), nil
	}
	return nil, nil
}

// PutPowerLevels records pl as room's current power levels.
func (t Table) PutPowerLevels(ctx context.Context, room id.RoomID, pl *mevent.PowerLevelsEventContent) error {
	raw, err := json.Marshal(pl)
	if err != nil {
		return fmt.Errorf("matrix: encode power levels: %w", err)
	}
	if _, err := t.Q.ExecContext(ctx, `INSERT INTO matrix_power_levels (mx_room, content) VALUES (?, ?)
		ON CONFLICT (mx_room) DO UPDATE SET content = excluded.content`, string(room), string(raw)); err != nil {
		return fmt.Errorf("matrix: record power levels of %s: %w", room, err)
	}
	return nil
}
