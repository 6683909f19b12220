package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// Stream names.
const (
	// StreamOut holds legacy → MIMI envelopes (subjects mimi.out.<room-token>).
	StreamOut = "MIMI_OUT"
	// StreamIn holds MIMI → legacy envelopes (subjects mimi.in.<network>.<room-token>).
	StreamIn = "MIMI_IN"
	// StreamDeadLetter holds dead letters (subjects mimi.dlq.<original subject>).
	StreamDeadLetter = "MIMI_DLQ"
)

// publishAckTimeout bounds the wait for an asynchronous publish's acknowledgement (nats.go's
// default for a synchronous one is 5 s; the larger bound spares a loaded server's slow answer).
const publishAckTimeout = 15 * time.Second

// priorityGroup is the pinned priority group every partition consumer uses.
const priorityGroup = "mimi"

// NATS is the bus on NATS JetStream, with an embedded server or an external cluster.
//
// Layout. Three file-backed streams, created or updated idempotently by every Open:
//
//	MIMI_OUT  subjects mimi.out.<room>       stored as mimi.out.<p>.<room>
//	MIMI_IN   subjects mimi.in.<net>.<room>  stored as mimi.in.<net>.<p>.<room>
//	MIMI_DLQ  subjects mimi.dlq.>            dead letters, kept DeadLetterMaxAge
//
// where p = partition(Config.Partitions, room token) is inserted by a stream subject transform.
// MIMI_OUT and MIMI_IN use interest retention: a message is removed as soon as every consumer
// group whose subjects it matches has acknowledged it (and after MaxAge when none does), so
// decrypted content stays on the bus only while delivery needs it; a message no consumer group
// matches is not kept. MIMI_DLQ uses limits retention (DeadLetterMaxAge). All three bound
// MaxBytes (discard old), use the dedupe window Config.DedupeWindow on Nats-Msg-Id = envelope ID
// (a removed message's ID is forgotten when the server restarts: consumers dedupe by event ID in
// the store), and Replicas 1 (embedded) or ExternalConfig.Replicas. An existing stream with
// limits retention is switched in place. The embedded store is encrypted at rest (atrest.go).
//
// Consumers. ConsumeOut(name) / ConsumeIn(name, net) create one durable pull consumer per
// partition ("<name>_p<i>", "<name>_<net>_p<i>"), DeliverAll, explicit acks, MaxAckPending 1,
// no server-side MaxDeliver (the handler wrapper counts deliveries and dead-letters, so nothing
// is dropped silently), and a pinned priority group unless Config.NoPinning. A new consumer group
// starts at the beginning of what the stream retains.
//
// Replicas. Every gateway replica starts the same consumer groups. With pinning, the server pins
// each partition to one replica's subscription; another replica takes over when it stops (at
// once: Stop unpins) or dies (after PinnedTTL). Without pinning, replicas take turns. Either way
// MaxAckPending 1 keeps one message per partition in flight, so per-room order holds across
// replicas; a handler still running when its AckWait passes is kept alive by progress acks.
//
// Concurrency: all methods are safe for concurrent use. mu guards subs and closed; it is never
// held while calling into NATS or waiting.
type NATS struct {
	cfg Config
	log *slog.Logger
	met *metrics

	ns       *server.Server // embedded mode only
	storeKey string         // embedded mode: the JetStream encryption key
	nc       *nats.Conn
	js       jetstream.JetStream

	connClosed chan struct{} // closed by the connection's ClosedHandler

	mu     sync.Mutex
	subs   map[*subscription]struct{}
	closed bool
	// consumed lists the durable consumers this bus has consumed from (releaseOrphans).
	consumed map[string]bool
}

var _ Bus = (*NATS)(nil)

// Open starts (embedded) or dials (external) NATS, creates the streams idempotently and returns
// the bus. cfg gets defaults for zero fields and is validated first. ctx bounds the start-up.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*NATS, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("bus: invalid config: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := &NATS{
		cfg:        cfg,
		log:        log.With("component", "bus"),
		met:        newMetrics(),
		connClosed: make(chan struct{}),
		subs:       make(map[*subscription]struct{}),
	}
	var err error
	switch cfg.Mode {
	case ModeEmbedded:
		err = b.startEmbedded()
	case ModeExternal:
		err = b.dialExternal()
	}
	if err != nil {
		b.shutdownServer()
		return nil, err
	}
	// An asynchronous publish (PublishInBatch) whose acknowledgement is lost while the
	// connection stays up (the stream's leader died with the message in flight) would wait
	// forever: it fails after publishAckTimeout instead, like a synchronous publish, and is
	// published again (its Nats-Msg-Id deduplicates it if it was stored after all).
	b.js, err = jetstream.New(b.nc, jetstream.WithPublishAsyncTimeout(publishAckTimeout))
	if err != nil {
		b.abort()
		return nil, fmt.Errorf("bus: jetstream: %w", err)
	}
	sctx, cancel := context.WithTimeout(ctx, cfg.ReadyTimeout)
	defer cancel()
	if err := b.ensureStreams(sctx); err != nil {
		b.abort()
		return nil, err
	}
	switch {
	case cfg.Mode == ModeEmbedded:
		if err := recordKeyCheck(cfg.Embedded.StoreDir, b.storeKey); err != nil {
			b.abort()
			return nil, err
		}
	case !cfg.External.EncryptedAtRest:
		b.log.Warn("cannot tell whether the NATS servers encrypt JetStream at rest: message content may be stored in the clear on them; " +
			"enable jetstream encryption (cipher, key) on every server, then set bus.external.encrypted_at_rest (docs/privacy.md)")
	}
	b.log.Info("bus ready", "mode", string(cfg.Mode), "partitions", cfg.Partitions)
	return b, nil
}

// Collectors returns the bus's Prometheus collectors, for the ops registry.
func (b *NATS) Collectors() []prometheus.Collector { return b.met.collectors() }

// Server returns the embedded server, or nil in external mode. Health checks may use its Healthz
// and Jsz methods.
func (b *NATS) Server() *server.Server { return b.ns }

func (b *NATS) startEmbedded() error {
	ec := b.cfg.Embedded
	if err := os.MkdirAll(ec.StoreDir, 0o700); err != nil {
		return fmt.Errorf("bus: store dir: %w", err)
	}
	key, err := embeddedKey(ec)
	if err != nil {
		return err
	}
	b.storeKey = key
	opts := &server.Options{
		ServerName:         ec.ServerName,
		JetStreamKey:       key,
		JetStreamCipher:    storeCipher(ec.Cipher),
		JetStream:          true,
		StoreDir:           ec.StoreDir,
		JetStreamMaxMemory: int64(ec.MaxMemory),
		JetStreamMaxStore:  int64(ec.MaxStore),
		NoSigs:             true,
		DontListen:         true,
		SyncAlways:         ec.SyncInterval == 0,
		SyncInterval:       ec.SyncInterval,
		// The HTTP monitor stays off; health and stats come from Healthz/Jsz in-process.
	}
	if ec.Listen != "" {
		host, port, _ := net.SplitHostPort(ec.Listen) // validated
		opts.DontListen = false
		opts.Host = host
		opts.Port, _ = strconv.Atoi(port)
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("bus: embedded server: %w", err)
	}
	ns.SetLoggerV2(&serverLogger{log: b.log.With("nats", "server")}, b.log.Enabled(context.Background(), slog.LevelDebug), false, false)
	b.ns = ns
	ns.Start()
	if !ns.ReadyForConnections(b.cfg.ReadyTimeout) {
		return fmt.Errorf("bus: embedded server not ready after %s", b.cfg.ReadyTimeout)
	}
	nc, err := nats.Connect("", nats.InProcessServer(ns), nats.Name("mimi-gateway"),
		nats.ClosedHandler(func(*nats.Conn) { close(b.connClosed) }),
		nats.ErrorHandler(b.asyncErr))
	if err != nil {
		return fmt.Errorf("bus: connect to embedded server: %w", err)
	}
	b.nc = nc
	return nil
}

func (b *NATS) dialExternal() error {
	ec := b.cfg.External
	opts := []nats.Option{
		nats.Name(ec.Name),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.CustomReconnectDelay(reconnectDelay),
		nats.ClosedHandler(func(*nats.Conn) { close(b.connClosed) }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			b.log.Warn("bus disconnected", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			b.log.Info("bus reconnected", "server", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(b.asyncErr),
	}
	if ec.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(ec.CredsFile))
	}
	if ec.NKeySeedFile != "" {
		o, err := nats.NkeyOptionFromSeed(ec.NKeySeedFile)
		if err != nil {
			return fmt.Errorf("bus: nkey seed file: %w", err)
		}
		opts = append(opts, o)
	}
	if ec.TLS.CAFile != "" {
		opts = append(opts, nats.RootCAs(ec.TLS.CAFile))
	}
	if ec.TLS.CertFile != "" {
		opts = append(opts, nats.ClientCert(ec.TLS.CertFile, ec.TLS.KeyFile))
	}
	nc, err := nats.Connect(strings.Join(ec.URLs, ","), opts...)
	if err != nil {
		return fmt.Errorf("bus: connect: %w", err)
	}
	b.nc = nc
	return nil
}

// reconnectDelay is exponential backoff from 250ms up to 30s, with jitter, forever.
func reconnectDelay(attempts int) time.Duration {
	d := 250 * time.Millisecond << min(attempts, 7)
	d = min(d, 30*time.Second)
	return d/2 + rand.N(d/2+1)
}

func (b *NATS) asyncErr(_ *nats.Conn, sub *nats.Subscription, err error) {
	if sub != nil {
		b.log.Error("bus async error", "subject", sub.Subject, "err", err)
		return
	}
	b.log.Error("bus async error", "err", err)
}

// replicas is the stream replica count for the mode.
func (b *NATS) replicas() int {
	if b.cfg.Mode == ModeEmbedded {
		return 1
	}
	return b.cfg.External.Replicas
}

// streamConfigs returns the three stream definitions.
//
// Partitioning: a stream subject transform rewrites mimi.out.<token> to mimi.out.<p>.<token> and
// mimi.in.<net>.<token> to mimi.in.<net>.<p>.<token>, where p = partition(N, token) is a hash of
// the room token. The stored subjects have one token more than the ingest subjects, so nothing
// published directly on a stored subject is captured.
func (b *NATS) streamConfigs() []jetstream.StreamConfig {
	n := strconv.Itoa(b.cfg.Partitions)
	common := func(name, subject string, tr *jetstream.SubjectTransformConfig) jetstream.StreamConfig {
		return jetstream.StreamConfig{
			Name:             name,
			Subjects:         []string{subject},
			SubjectTransform: tr,
			Retention:        jetstream.LimitsPolicy,
			Discard:          jetstream.DiscardOld,
			Storage:          jetstream.FileStorage,
			Replicas:         b.replicas(),
			MaxAge:           b.cfg.MaxAge,
			MaxBytes:         int64(b.cfg.MaxBytes),
			MaxMsgSize:       event.MaxEnvelopeSize,
			Duplicates:       b.cfg.DedupeWindow,
		}
	}
	out := common(StreamOut, "mimi.out.*", &jetstream.SubjectTransformConfig{
		Source: "mimi.out.*", Destination: "mimi.out.{{partition(" + n + ",1)}}.{{wildcard(1)}}",
	})
	out.Description = "legacy → MIMI envelopes, partitioned by room"
	out.Retention = jetstream.InterestPolicy
	// PublishOutBatch's atomic batches (one sync per batch): the embedded server supports them;
	// an external cluster's servers may not.
	out.AllowAtomicPublish = b.cfg.Mode == ModeEmbedded
	in := common(StreamIn, "mimi.in.*.*", &jetstream.SubjectTransformConfig{
		Source: "mimi.in.*.*", Destination: "mimi.in.{{wildcard(1)}}.{{partition(" + n + ",2)}}.{{wildcard(2)}}",
	})
	in.Description = "MIMI → legacy envelopes, per network, partitioned by room"
	in.Retention = jetstream.InterestPolicy
	dlq := common(StreamDeadLetter, SubjectDeadLetterPrefix+">", nil)
	dlq.Description = "dead letters: mimi.dlq.<original subject>"
	dlq.MaxAge = b.cfg.DeadLetterMaxAge
	dlq.MaxBytes = int64(b.cfg.DeadLetterMaxBytes)
	dlq.MaxMsgSize = 0 // a dead letter may be an oversized or undecodable original
	dlq.Duplicates = min(b.cfg.DedupeWindow, dlq.MaxAge)
	return []jetstream.StreamConfig{out, in, dlq}
}

// ensureStreams creates or updates the streams, retrying until ctx ends (an external cluster may
// still be electing a leader or the connection may still be coming up).
func (b *NATS) ensureStreams(ctx context.Context) error {
	var lastErr error
	for attempt := 0; ; attempt++ {
		lastErr = nil
		for _, sc := range b.streamConfigs() {
			if _, err := b.js.CreateOrUpdateStream(ctx, sc); err != nil {
				lastErr = fmt.Errorf("bus: stream %s: %w", sc.Name, err)
				break
			}
		}
		if lastErr == nil {
			return nil
		}
		b.log.Warn("bus stream setup failed, retrying", "err", lastErr)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (gave up: %w)", lastErr, ctx.Err())
		case <-time.After(reconnectDelay(attempt)):
		}
	}
}

// PublishOut implements Publisher.
func (b *NATS) PublishOut(ctx context.Context, env *event.Envelope) error {
	if env == nil {
		return errors.New("bus: publish out: nil envelope")
	}
	return b.publish(ctx, "out", env.Origin.Network, SubjectOut(env.Room), StreamOut, env)
}

// PublishIn implements Publisher.
func (b *NATS) PublishIn(ctx context.Context, n event.Network, env *event.Envelope) error {
	if env == nil {
		return errors.New("bus: publish in: nil envelope")
	}
	if !n.Valid() {
		return fmt.Errorf("bus: publish in: invalid network %q", n)
	}
	return b.publish(ctx, "in", n, SubjectIn(n, env.Room), StreamIn, env)
}

func (b *NATS) publish(ctx context.Context, dir string, n event.Network, subject, stream string, env *event.Envelope) error {
	data, err := event.Marshal(env) // validates the envelope (room URI, ID, ...)
	if err != nil {
		return fmt.Errorf("bus: publish %s: %w", dir, err)
	}
	netLabel := networkLabel(n)
	msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
	ack, err := b.js.PublishMsg(ctx, msg, jetstream.WithMsgID(string(env.ID)), jetstream.WithExpectStream(stream))
	if err != nil {
		b.met.publishErrs.WithLabelValues(dir, netLabel).Inc()
		return fmt.Errorf("bus: publish %s %s: %w", dir, env.ID, err)
	}
	if ack.Duplicate {
		b.met.duplicates.WithLabelValues(dir, netLabel).Inc()
	} else {
		b.met.published.WithLabelValues(dir, netLabel).Inc()
	}
	return nil
}

// Ready implements Bus: the connection is up and the three streams exist.
func (b *NATS) Ready(ctx context.Context) error {
	if st := b.nc.Status(); st != nats.CONNECTED {
		return fmt.Errorf("bus: connection %s", st)
	}
	for _, name := range []string{StreamOut, StreamIn, StreamDeadLetter} {
		if _, err := b.js.Stream(ctx, name); err != nil {
			return fmt.Errorf("bus: stream %s: %w", name, err)
		}
	}
	return nil
}

// Close implements Bus: it stops every subscription (waiting for handlers until ctx ends), drains
// the connection and, in embedded mode, shuts the server down and waits for it. Close is
// idempotent; later calls return nil.
func (b *NATS) Close(ctx context.Context) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	subs := make([]*subscription, 0, len(b.subs))
	for s := range b.subs {
		subs = append(subs, s)
	}
	b.mu.Unlock()

	var errs []error
	for _, s := range subs {
		if err := s.Stop(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if err := b.nc.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		errs = append(errs, fmt.Errorf("bus: drain: %w", err))
		b.nc.Close()
	}
	select {
	case <-b.connClosed:
	case <-ctx.Done():
		b.nc.Close()
		errs = append(errs, fmt.Errorf("bus: drain: %w", ctx.Err()))
	}
	if b.ns != nil {
		done := make(chan struct{})
		go func() { b.shutdownServer(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("bus: embedded server shutdown: %w", ctx.Err()))
		}
	}
	return errors.Join(errs...)
}

// abort closes what Open set up after a failure.
func (b *NATS) abort() {
	if b.nc != nil {
		b.nc.Close()
	}
	b.shutdownServer()
}

func (b *NATS) shutdownServer() {
	if b.ns != nil {
		b.ns.Shutdown()
		b.ns.WaitForShutdown()
	}
}

// serverLogger routes nats-server logs into slog.
type serverLogger struct{ log *slog.Logger }

var _ server.Logger = (*serverLogger)(nil)

func (l *serverLogger) Noticef(format string, v ...any) { l.log.Info(fmt.Sprintf(format, v...)) }
func (l *serverLogger) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l *serverLogger) Fatalf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l *serverLogger) Errorf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l *serverLogger) Debugf(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *serverLogger) Tracef(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
