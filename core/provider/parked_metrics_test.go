package provider

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
	"github.com/mimi-gateway/mimi-gateway/core/store"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

// TestParkedMetrics: what waits for each partner in rooms it hosts is exported per partner (count
// and age of the oldest), 0 for a configured partner for whom nothing waits; labels are partner
// domains only.
func TestParkedMetrics(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		if err := st.Migrate(t.Context(), protocol.Schema, Schema); err != nil {
			t.Fatal(err)
		}
		c := newParkedCollector(st)
		reg := prometheus.NewRegistry()
		reg.MustRegister(c)
		old := time.Now().Add(-90 * time.Second).UnixMilli()
		for i, d := range []string{"amt-b.example", "amt-b.example", "amt-c.example"} {
			if _, err := st.ExecContext(t.Context(), `INSERT INTO provider_parked (room, partner, event_id, envelope, created_at) VALUES (?, ?, ?, ?, ?)`,
				"mimi://"+d+"/r/x", d, "ev"+string(rune('0'+i)), []byte{1}, old+int64(i)); err != nil {
				t.Fatal(err)
			}
		}
		c.setPartners(func() []event.Domain { return []event.Domain{"amt-b.example", "amt-c.example", "amt-d.example"} })
		want := `
# HELP mimi_gateway_provider_parked Envelopes parked for a partner that did not answer (rooms the partner hosts, invites of its users), waiting to go out in order.
# TYPE mimi_gateway_provider_parked gauge
mimi_gateway_provider_parked{partner="amt-b.example"} 2
mimi_gateway_provider_parked{partner="amt-c.example"} 1
mimi_gateway_provider_parked{partner="amt-d.example"} 0
`
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "mimi_gateway_provider_parked"); err != nil {
			t.Error(err)
		}
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		ages := map[string]float64{}
		for _, mf := range mfs {
			if mf.GetName() != "mimi_gateway_provider_parked_oldest_age_seconds" {
				continue
			}
			for _, m := range mf.GetMetric() {
				ages[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
			}
		}
		if a := ages["amt-b.example"]; a < 89 || a > 3600 {
			t.Errorf("oldest age for amt-b.example = %v s, want about 90", a)
		}
		if a, ok := ages["amt-d.example"]; !ok || a != 0 {
			t.Errorf("oldest age for amt-d.example = %v (present %v), want 0", a, ok)
		}
	})
}
