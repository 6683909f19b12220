package console

import (
	"context"
	"fmt"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// PruneAudit deletes the audit log entries written before `before` (retention of the audit log)
// and returns how many it deleted.
func PruneAudit(ctx context.Context, st *store.Store, before time.Time) (int64, error) {
	n, err := st.DeleteWhere(ctx, "console_audit", []string{"id"}, `at < ?`, before.UnixMilli())
	if err != nil {
		return n, fmt.Errorf("console: prune audit log: %w", err)
	}
	return n, nil
}
