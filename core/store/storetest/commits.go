package storetest

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// Commits returns the commits s has made so far, read from its metrics: the transactions it
// committed (mimi_gateway_store_transactions_total{result="commit"}) and the statements run
// outside a transaction (mimi_gateway_store_autocommit_statements_total; each commits on its
// own). Benchmarks report commits per operation with it: with SQLite's synchronous=FULL each
// that writes is one WAL fsync.
func Commits(t testing.TB, s *store.Store) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	if err := reg.Register(s); err != nil {
		t.Fatalf("storetest: register store metrics: %v", err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("storetest: gather store metrics: %v", err)
	}
	var n float64
	for _, mf := range mfs {
		switch mf.GetName() {
		case "mimi_gateway_store_autocommit_statements_total":
			for _, m := range mf.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		case "mimi_gateway_store_transactions_total":
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "result" && l.GetValue() == "commit" {
						n += m.GetCounter().GetValue()
					}
				}
			}
		}
	}
	return n
}
