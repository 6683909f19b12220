package retention

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestSweeperRegistrationAndFailures(t *testing.T) {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	sw := New(WithClock(func() time.Time { return now }))
	var gotBefore time.Time
	ok := Category{Name: "id_mappings", MaxAge: time.Hour, Sweep: func(_ context.Context, before time.Time) (int64, error) {
		gotBefore = before
		return 3, nil
	}}
	failing := Category{Name: "muc_history", MaxAge: time.Hour, Sweep: func(context.Context, time.Time) (int64, error) {
		return 1, errors.New("disk on fire")
	}}
	forever := Category{Name: "audit_log", MaxAge: 0, Sweep: func(context.Context, time.Time) (int64, error) {
		t.Error("a category kept for ever was swept")
		return 0, nil
	}}
	for _, c := range []Category{failing, ok, forever} {
		if err := sw.Register(c); err != nil {
			t.Fatal(err)
		}
	}
	for _, bad := range []Category{
		ok, // twice
		{Name: "Bad-Name", MaxAge: time.Hour, Sweep: ok.Sweep},
		{Name: "no_sweep", MaxAge: time.Hour},
	} {
		if err := sw.Register(bad); err == nil {
			t.Errorf("Register(%q) accepted", bad.Name)
		}
	}
	got, err := sw.SweepOnce(t.Context())
	if err == nil {
		t.Fatal("the failing category's error was not returned")
	}
	if got["id_mappings"] != 3 || got["muc_history"] != 1 {
		t.Fatalf("removed %v: a failing category must not stop the others", got)
	}
	if !gotBefore.Equal(now.Add(-time.Hour)) {
		t.Fatalf("swept before %v, want now - max age", gotBefore)
	}
	if v := testutil.ToFloat64(sw.removed.WithLabelValues("id_mappings")); v != 3 {
		t.Errorf("removed{id_mappings} = %v", v)
	}
	if v := testutil.ToFloat64(sw.failures.WithLabelValues("muc_history")); v != 1 {
		t.Errorf("failures{muc_history} = %v", v)
	}
	if v := testutil.ToFloat64(sw.lastRun.WithLabelValues("id_mappings")); v != float64(now.Unix()) {
		t.Errorf("last sweep of id_mappings = %v", v)
	}
	if n := testutil.CollectAndCount(sw.removed); n != 3 {
		t.Errorf("%d removed series, want one per category", n)
	}
}
