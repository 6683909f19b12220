package provider

import (
	"context"
	"fmt"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/abuse"
	"github.com/mimi-gateway/mimi-gateway/core/bus"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// Dedupe retention. The provider marks three kinds of redeliverable input processed: /notify
// bodies (protocol.NotifyScope), application messages resubmitted to our hub (submitScope) and
// mimi.out envelopes that changed a room (outScope). A record may go once no copy of its input
// can arrive any more:
//
//   - a /notify body is resent by the hub's outbox until outboxExpire after it was queued (ours
//     drops it then, and the follower recovers by an external join), and never after;
//   - a resubmission or a mimi.out redelivery comes from an envelope still on mimi.out, which the
//     bus keeps for bus.DefaultMaxAge at most.
//
// DefaultDedupeRetention is the longer of the two plus a day (partners' clocks and a queue that
// starts a little after our record).
const (
	outboxExpire           = 72 * time.Hour
	DefaultDedupeRetention = max(outboxExpire, bus.DefaultMaxAge) + 24*time.Hour
	// DefaultPruneInterval is how often old dedupe records are deleted.
	DefaultPruneInterval = time.Hour
)

// dedupeScopes are the store.MarkProcessed scopes the provider prunes.
var dedupeScopes = []store.Scope{protocol.NotifyScope, submitScope, outScope}

// runPrune deletes dedupe records older than DedupeRetention at once and then every
// PruneInterval until ctx ends.
func (p *Provider) runPrune(ctx context.Context) {
	t := time.NewTicker(p.cfg.PruneInterval)
	defer t.Stop()
	for {
		if err := p.prune(ctx); err != nil && ctx.Err() == nil {
			p.log.Warn("prune dedupe records", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// prune deletes the provider's dedupe records processed before now - DedupeRetention.
func (p *Provider) prune(ctx context.Context) error {
	before := p.now().Add(-p.cfg.DedupeRetention)
	var total int64
	for _, s := range dedupeScopes {
		n, err := p.st.PruneProcessedScope(ctx, s, before)
		total += n
		if err != nil {
			return err
		}
	}
	if total > 0 {
		p.log.Debug("pruned dedupe records", "rows", total, "before", before)
	}
	if err := p.pruneKeyPackages(ctx); err != nil {
		return err
	}
	// Received messages kept for abuse reports (franking.go).
	if _, err := abuse.PruneEvidence(ctx, p.st, p.now().Add(-abuse.EvidenceRetention)); err != nil {
		return err
	}
	return p.pruneRoutes(ctx)
}

// PruneMessageMap deletes the records of outgoing messages (envelope ID → MIMI message ID, with
// the MLS ciphertext kept for resubmission) created before `before` (retention of ID mappings)
// and returns how many it deleted.
func PruneMessageMap(ctx context.Context, st *store.Store, before time.Time) (int64, error) {
	n, err := st.DeleteWhere(ctx, "provider_msgmap", []string{"event_id"}, `created_at < ?`, before.UnixMilli())
	if err != nil {
		return n, fmt.Errorf("provider: prune message map: %w", err)
	}
	return n, nil
}
