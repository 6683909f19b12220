package console

import (
	"context"
	"fmt"
	"time"
)

// AuditEntry is one line of the audit log.
type AuditEntry struct {
	ID      int64     `json:"id"`
	Time    time.Time `json:"time"`
	Actor   string    `json:"actor"`
	Action  string    `json:"action"`
	Target  string    `json:"target,omitempty"`
	Outcome string    `json:"outcome,omitempty"`
	// Before and After are the changed configuration lines (secrets redacted).
	Before string `json:"before,omitempty"`
	After  string `json:"after,omitempty"`
}

// maxAuditField bounds the before/after texts of one entry.
const maxAuditField = 64 << 10

// audit appends an entry to the audit log. A failure is logged: the action itself has happened.
func (c *Console) audit(ctx context.Context, actor, action, target, outcome, before, after string) {
	_, err := c.st.ExecContext(context.WithoutCancel(ctx),
		`INSERT INTO console_audit (at, actor, action, target, outcome, before, after) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		c.cfg.Now().UnixMilli(), clip(actor, 200), action, clip(target, 512), clip(outcome, 1024),
		clip(before, maxAuditField), clip(after, maxAuditField))
	if err != nil {
		c.log.Error("console: audit log write failed", "action", action, "err", err)
		return
	}
	c.log.Info("console: audit", "actor", clip(actor, 200), "action", action, "target", clip(target, 512))
}

// AuditLog returns up to limit entries older than before (0: the newest), newest first.
func (c *Console) AuditLog(ctx context.Context, before int64, limit int) ([]AuditEntry, error) {
	if before <= 0 {
		before = 1<<63 - 1
	}
	rows, err := c.st.QueryContext(ctx, `SELECT id, at, actor, action, target, outcome, before, after FROM console_audit
		WHERE id < ? ORDER BY id DESC LIMIT ?`, before, limit)
	if err != nil {
		return nil, fmt.Errorf("console: audit log: %w", err)
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		var e AuditEntry
		var at int64
		if err := rows.Scan(&e.ID, &at, &e.Actor, &e.Action, &e.Target, &e.Outcome, &e.Before, &e.After); err != nil {
			return nil, fmt.Errorf("console: audit log: %w", err)
		}
		e.Time = time.UnixMilli(at).UTC()
		out = append(out, e)
	}
	return out, rows.Err()
}
