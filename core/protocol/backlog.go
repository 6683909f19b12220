package protocol

import (
	"context"
	"fmt"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// Backlog is the durable outbox's queue for one follower and room: /notify bodies not yet
// accepted by the follower.
type Backlog struct {
	Follower event.Domain  `json:"follower"`
	Room     event.RoomURI `json:"room"`
	// Pending is the number of queued bodies.
	Pending int `json:"pending"`
	// Oldest is when the oldest queued body was enqueued.
	Oldest time.Time `json:"oldest"`
	// Attempts and LastStatus are those of the queue's head (0: no answer yet).
	Attempts   int       `json:"attempts"`
	LastStatus int       `json:"last_status"`
	NextTry    time.Time `json:"next_try"`
}

// ListBacklog returns the outbox's queues, largest first. It reads only the store.
func ListBacklog(ctx context.Context, st *store.Store) ([]Backlog, error) {
	rows, err := st.QueryContext(ctx, `SELECT g.follower, g.room, g.n, g.oldest, h.attempts, h.last_status, h.next_attempt_at
		FROM (SELECT follower, room, COUNT(*) AS n, MIN(created_at) AS oldest, MIN(id) AS head
		      FROM protocol_outbox GROUP BY follower, room) g
		JOIN protocol_outbox h ON h.id = g.head
		ORDER BY g.n DESC, g.follower, g.room`)
	if err != nil {
		return nil, fmt.Errorf("protocol: outbox backlog: %w", err)
	}
	defer rows.Close()
	var out []Backlog
	for rows.Next() {
		var f, r string
		var b Backlog
		var oldest, next int64
		if err := rows.Scan(&f, &r, &b.Pending, &oldest, &b.Attempts, &b.LastStatus, &next); err != nil {
			return nil, fmt.Errorf("protocol: outbox backlog: %w", err)
		}
		b.Follower, b.Room = event.Domain(f), event.RoomURI(r)
		b.Oldest, b.NextTry = time.UnixMilli(oldest).UTC(), time.UnixMilli(next).UTC()
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("protocol: outbox backlog: %w", err)
	}
	return out, nil
}
