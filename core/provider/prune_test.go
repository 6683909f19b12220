package provider

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/bus"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
	"github.com/mimi-gateway/mimi-gateway/core/protocol/protocoltest"
	"github.com/mimi-gateway/mimi-gateway/core/store"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

// TestPruneDedupe moves the store's and the provider's clock (no sleeps): the provider deletes
// its dedupe records older than DedupeRetention when it starts and again every PruneInterval,
// keeps recent ones and other components' records, and deletes expired KeyPackageRef routes; Close waits for the pruner to stop.
func TestPruneDedupe(t *testing.T) {
	ctx := context.Background()
	var now atomic.Int64
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	now.Store(t0.UnixMilli())
	clock := func() time.Time { return time.UnixMilli(now.Load()) }
	set := func(d time.Duration) { now.Store(t0.Add(d).UnixMilli()) }
	st := storetest.Open(t, storetest.SQLiteConfig(t), store.WithClock(clock))
	b, err := bus.Open(ctx, bus.Config{Mode: bus.ModeEmbedded, Embedded: bus.EmbeddedConfig{StoreDir: filepath.Join(t.TempDir(), "nats")}}, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	const retention = 8 * 24 * time.Hour
	p, err := New(ctx, Config{Domain: "a.example", Store: st, Bus: b, Logger: testLogger(), Now: clock,
		DedupeRetention: retention, PruneInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ca := protocoltest.NewCA(t)
	client, err := protocol.NewClient(protocol.ClientConfig{Domain: "a.example", Certificate: ca.Issue(t, "a.example"), Partners: protocol.NewPartners()})
	if err != nil {
		t.Fatal(err)
	}

	mark := func(tag string, scopes ...store.Scope) {
		t.Helper()
		for _, s := range scopes {
			if _, err := st.MarkProcessed(ctx, s, tag); err != nil {
				t.Fatal(err)
			}
		}
	}
	const other store.Scope = "matrix.txn" // another component's records: not ours to prune
	mark("old", append(dedupeScopes, other)...)
	set(retention - time.Hour)
	mark("recent", dedupeScopes...)
	set(retention + time.Hour) // "old" is now past the retention, "recent" is not

	processed := func(s store.Scope, id string) bool {
		t.Helper()
		ok, err := st.IsProcessed(ctx, s, id)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	gone := func(id string) func() error {
		return func() error {
			for _, s := range dedupeScopes {
				if processed(s, id) {
					return fmt.Errorf("%s/%s still there", s, id)
				}
			}
			return nil
		}
	}

	// KeyPackageRef routes (relay.go) go at their KeyPackage's not_after.
	for ref, exp := range map[string]time.Time{"expired": t0.Add(time.Hour), "valid": t0.Add(100 * retention)} {
		if _, err := st.ExecContext(ctx, `INSERT INTO provider_kp_routes (ref, room, provider, expires_at) VALUES (?, 'mimi://a.example/r/x', 'c.example', ?)`,
			ref, exp.UnixMilli()); err != nil {
			t.Fatal(err)
		}
	}
	routes := func() error {
		var refs []string
		rows, err := st.QueryContext(ctx, `SELECT ref FROM provider_kp_routes ORDER BY ref`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var r string
			if err := rows.Scan(&r); err != nil {
				return err
			}
			refs = append(refs, r)
		}
		if fmt.Sprint(refs) != "[valid]" {
			return fmt.Errorf("routes %v, want [valid]", refs)
		}
		return rows.Err()
	}

	if err := p.Start(ctx, client); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "old records pruned at start", gone("old"))
	waitFor(t, "expired KeyPackageRef routes pruned", routes)
	for _, s := range dedupeScopes {
		if !processed(s, "recent") {
			t.Errorf("%s/recent pruned within the retention", s)
		}
	}
	if !processed(other, "old") {
		t.Errorf("%s/old (another component's) pruned", other)
	}

	// The next rounds: "recent" passes the retention and goes too.
	set(2*retention + time.Minute)
	waitFor(t, "recent records pruned later", gone("recent"))

	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := p.Close(cctx); err != nil { // returns once the pruner has stopped
		t.Fatal(err)
	}
}

// TestDedupeRetentionCoversRetries checks the documented bound: the retention outlasts the
// outbox's retry window and the bus's redelivery window.
func TestDedupeRetentionCoversRetries(t *testing.T) {
	if DefaultDedupeRetention <= outboxExpire || DefaultDedupeRetention <= bus.DefaultMaxAge {
		t.Fatalf("retention %s, outbox expiry %s, bus max age %s", DefaultDedupeRetention, outboxExpire, bus.DefaultMaxAge)
	}
}
