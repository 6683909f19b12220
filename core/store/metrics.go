package store

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Transaction results used as the "result" label.
const (
	txResultCommit     = "commit"
	txResultRollback   = "rollback"
	txResultBeginError = "begin_error"
)

// metrics are per Store (not global), so tests can open many stores and the
// process registers exactly the stores it runs. Labels are bounded: result
// names, component names and dialects, never IDs.
type metrics struct {
	transactions  *prometheus.CounterVec
	txDuration    prometheus.Histogram
	processed     *prometheus.CounterVec
	casConflicts  prometheus.Counter
	busy          prometheus.Counter
	schemaVersion *prometheus.GaugeVec
	resealed      prometheus.Counter
	autocommits   prometheus.Counter
	dbStats       []prometheus.Collector
}

func newMetrics(s *Store) *metrics {
	constLabels := prometheus.Labels{"dialect": string(s.dialect)}
	m := &metrics{
		transactions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mimi_gateway_store_transactions_total", ConstLabels: constLabels,
			Help: "Transactions run through InTx, by result (commit, rollback, begin_error).",
		}, []string{"result"}),
		txDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "mimi_gateway_store_transaction_duration_seconds", ConstLabels: constLabels,
			Help:    "Duration of InTx transactions from begin to commit or rollback, including waiting for the SQLite writer.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		processed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mimi_gateway_store_processed_events_total", ConstLabels: constLabels,
			Help: "MarkProcessed calls by result: first (new event) or duplicate (redelivery).",
		}, []string{"result"}),
		casConflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mimi_gateway_store_kv_cas_conflicts_total", ConstLabels: constLabels,
			Help: "Key-value compare-and-swap or compare-and-delete calls that lost on version.",
		}),
		busy: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mimi_gateway_store_sqlite_busy_errors_total", ConstLabels: constLabels,
			Help: "SQLITE_BUSY or SQLITE_LOCKED errors seen (expected 0: only another process holding the lock past busy_timeout causes them).",
		}),
		schemaVersion: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "mimi_gateway_store_schema_version", ConstLabels: constLabels,
			Help: "Applied schema version per migration component.",
		}, []string{"component"}),
		resealed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mimi_gateway_store_resealed_total", ConstLabels: constLabels,
			Help: "Sealed values re-encrypted with the primary encryption key (key rotation).",
		}),
		autocommits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mimi_gateway_store_autocommit_statements_total", ConstLabels: constLabels,
			Help: "Statements run through the Store's ExecContext outside a transaction (each commits on its own).",
		}),
	}
	for _, r := range []string{txResultCommit, txResultRollback, txResultBeginError} {
		m.transactions.WithLabelValues(r)
	}
	m.processed.WithLabelValues("first")
	m.processed.WithLabelValues("duplicate")
	if s.reader != s.writer {
		m.dbStats = []prometheus.Collector{
			collectors.NewDBStatsCollector(s.writer, "writer"),
			collectors.NewDBStatsCollector(s.reader, "reader"),
		}
	} else {
		m.dbStats = []prometheus.Collector{collectors.NewDBStatsCollector(s.writer, "main")}
	}
	return m
}

func (m *metrics) all() []prometheus.Collector {
	return append([]prometheus.Collector{m.transactions, m.txDuration, m.processed, m.casConflicts, m.busy, m.schemaVersion, m.resealed, m.autocommits}, m.dbStats...)
}

func (m *metrics) observeTx(result string, d time.Duration, err error) {
	m.transactions.WithLabelValues(result).Inc()
	m.txDuration.Observe(d.Seconds())
	m.observeErr(err)
}

func (m *metrics) observeErr(err error) {
	if err != nil && isBusy(err) {
		m.busy.Inc()
	}
}

func (m *metrics) observeProcessed(first bool) {
	if first {
		m.processed.WithLabelValues("first").Inc()
	} else {
		m.processed.WithLabelValues("duplicate").Inc()
	}
}

func (m *metrics) observeCASConflict() { m.casConflicts.Inc() }

func (m *metrics) setSchemaVersion(component string, v int) {
	m.schemaVersion.WithLabelValues(component).Set(float64(v))
}

// Describe implements prometheus.Collector: register the store with the
// admin registry (ops.Admin.MustRegister(st)).
func (s *Store) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range s.metrics.all() {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (s *Store) Collect(ch chan<- prometheus.Metric) {
	for _, c := range s.metrics.all() {
		c.Collect(ch)
	}
}

var _ prometheus.Collector = (*Store)(nil)
