package bus

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// Headers set on dead letters (mimi.dlq.<original subject>). The message data is the original
// message data, sealed with Config.Sealer when one is set (HeaderDLQSealed), so that the
// dead-letter stream keeps metadata and an encrypted envelope only.
const (
	// HeaderDLQReason is why the message was dead-lettered: one of the DLQReason values.
	HeaderDLQReason = "Mimi-Dlq-Reason"
	// HeaderDLQError is the last handler or decoding error, truncated to 1 KiB.
	HeaderDLQError = "Mimi-Dlq-Error"
	// HeaderDLQSubject is the subject the original was published on.
	HeaderDLQSubject = "Mimi-Dlq-Subject"
	// HeaderDLQStream and HeaderDLQSeq locate the original in its stream.
	HeaderDLQStream = "Mimi-Dlq-Stream"
	// HeaderDLQSeq is the original's stream sequence number.
	HeaderDLQSeq = "Mimi-Dlq-Seq"
	// HeaderDLQConsumer is the durable consumer (group and partition) that gave up.
	HeaderDLQConsumer = "Mimi-Dlq-Consumer"
	// HeaderDLQDeliveries is how many times the original was delivered.
	HeaderDLQDeliveries = "Mimi-Dlq-Deliveries"
	// HeaderDLQMsgID is the original's Nats-Msg-Id (the envelope ID), if it had one.
	HeaderDLQMsgID = "Mimi-Dlq-Msg-Id"
	// HeaderDLQSealed is "1" when the data is the original sealed with Config.Sealer, bound to
	// the dead letter's Nats-Msg-Id; DeadLetterData opens it.
	HeaderDLQSealed = "Mimi-Dlq-Sealed"
)

// Dead-letter reasons (HeaderDLQReason and the reason label of mimi_bus_dead_lettered_total).
const (
	// DLQPermanent: the handler returned an error wrapping ErrPermanent.
	DLQPermanent = "permanent"
	// DLQMaxDeliveries: the message failed or timed out Config.MaxDeliveries times.
	DLQMaxDeliveries = "max_deliveries"
	// DLQUndecodable: the data is not a valid envelope (event.Unmarshal failed).
	DLQUndecodable = "undecodable"
)

// opTimeout bounds acks and dead-letter publishes.
const opTimeout = 10 * time.Second

// ConsumeOut implements Subscriber: one durable pull consumer "<name>_p<i>" per partition i of
// mimi.out. name may use [A-Za-z0-9-], at most 64 characters.
func (b *NATS) ConsumeOut(ctx context.Context, name string, h Handler) (Subscription, error) {
	return b.consume(ctx, name, "out", "", h)
}

// ConsumeIn implements Subscriber: one durable pull consumer "<name>_<network>_p<i>" per
// partition i of network n's mimi.in subjects.
func (b *NATS) ConsumeIn(ctx context.Context, name string, n event.Network, h Handler) (Subscription, error) {
	if !n.Valid() {
		return nil, fmt.Errorf("bus: consume in: invalid network %q", n)
	}
	return b.consume(ctx, name, "in", n, h)
}

// partition is one partition's consumer within a subscription.
type partition struct {
	durable string
	cons    jetstream.Consumer
	cc      jetstream.ConsumeContext
	pinID   atomic.Value // string: the Nats-Pin-Id this client was last delivered with
}

// subscription is a running consumer group: one consumer per partition.
type subscription struct {
	b       *NATS
	name    string
	dir     string // "out" or "in"
	network event.Network
	stream  jetstream.Stream
	h       Handler

	ctx    context.Context // parent of handler contexts; cancelled when Stop's ctx ends
	cancel context.CancelFunc

	stopping atomic.Bool
	parts    []*partition

	stopOnce sync.Once
	stopErr  error
}

var _ Subscription = (*subscription)(nil)

func (b *NATS) consume(ctx context.Context, name, dir string, n event.Network, h Handler) (Subscription, error) {
	if !validConsumer.MatchString(name) {
		return nil, fmt.Errorf("bus: consumer name %q: use 1-64 characters from [A-Za-z0-9-]", name)
	}
	if h == nil {
		return nil, errors.New("bus: nil handler")
	}
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return nil, errors.New("bus: closed")
	}
	streamName := StreamOut
	if dir == "in" {
		streamName = StreamIn
	}
	stream, err := b.js.Stream(ctx, streamName)
	if err != nil {
		return nil, fmt.Errorf("bus: stream %s: %w", streamName, err)
	}
	hctx, cancel := context.WithCancel(context.Background())
	s := &subscription{b: b, name: name, dir: dir, network: n, stream: stream, h: h, ctx: hctx, cancel: cancel}
	for p := 0; p < b.cfg.Partitions; p++ {
		part, err := s.startPartition(ctx, p)
		if err != nil {
			s.stopNow()
			return nil, err
		}
		s.parts = append(s.parts, part)
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		s.stopNow()
		return nil, errors.New("bus: closed")
	}
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	return s, nil
}

func (s *subscription) startPartition(ctx context.Context, p int) (*partition, error) {
	cfg := s.b.cfg
	cc := s.b.consumerConfig(s.dir, s.name, s.network, p)
	durable := cc.Durable
	cons, err := s.stream.CreateOrUpdateConsumer(ctx, cc)
	if err != nil {
		return nil, fmt.Errorf("bus: consumer %s: %w", durable, err)
	}
	if err := s.releaseOrphans(ctx, cons); err != nil {
		return nil, err
	}
	part := &partition{durable: durable, cons: cons}
	part.pinID.Store("")
	opts := []jetstream.PullConsumeOpt{
		jetstream.PullMaxMessages(4),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if s.stopping.Load() {
				return
			}
			s.b.log.Debug("bus consume", "consumer", durable, "err", err)
		}),
	}
	if !cfg.NoPinning {
		opts = append(opts, jetstream.PullPriorityGroup(priorityGroup))
	}
	part.cc, err = cons.Consume(func(m jetstream.Msg) { s.handle(part, m) }, opts...)
	if err != nil {
		return nil, fmt.Errorf("bus: consume %s: %w", durable, err)
	}
	return part, nil
}

// consumerConfig is the durable consumer of partition p of a consumer group: dir "out" or "in"
// (with network n).
func (b *NATS) consumerConfig(dir, name string, n event.Network, p int) jetstream.ConsumerConfig {
	cfg := b.cfg
	ps := strconv.Itoa(p)
	var durable, filter string
	if dir == "out" {
		durable = name + "_p" + ps
		filter = subjectOutPrefix + ps + ".*"
	} else {
		durable = name + "_" + string(n) + "_p" + ps
		filter = subjectInPrefix + string(n) + "." + ps + ".*"
	}
	cc := jetstream.ConsumerConfig{
		Durable:       durable,
		Description:   "mimi-gateway " + dir + " consumer group " + name + ", partition " + ps,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		// Unlimited on the server: the handler wrapper counts deliveries and dead-letters the
		// message itself, so nothing is dropped silently (see handle).
		MaxDeliver: -1,
		// One message in flight per partition: a room's messages are handled one at a time, in
		// stream order, even with several replicas pulling.
		MaxAckPending: 1,
		FilterSubject: filter,
	}
	if !cfg.NoPinning {
		cc.PriorityPolicy = jetstream.PriorityPolicyPinned
		cc.PriorityGroups = []string{priorityGroup}
		cc.PinnedTTL = cfg.PinnedTTL
	}
	return cc
}

// DeclareOut creates the durable consumers of consumer group name on mimi.out without consuming,
// so that the streams keep messages for the group (interest retention) before it starts.
func (b *NATS) DeclareOut(ctx context.Context, name string) error {
	return b.declare(ctx, "out", name, "")
}

// DeclareIn is DeclareOut for network n's mimi.in subjects.
func (b *NATS) DeclareIn(ctx context.Context, name string, n event.Network) error {
	if !n.Valid() {
		return fmt.Errorf("bus: declare in: invalid network %q", n)
	}
	return b.declare(ctx, "in", name, n)
}

func (b *NATS) declare(ctx context.Context, dir, name string, n event.Network) error {
	if !validConsumer.MatchString(name) {
		return fmt.Errorf("bus: consumer name %q: use 1-64 characters from [A-Za-z0-9-]", name)
	}
	streamName := StreamOut
	if dir == "in" {
		streamName = StreamIn
	}
	stream, err := b.js.Stream(ctx, streamName)
	if err != nil {
		return fmt.Errorf("bus: stream %s: %w", streamName, err)
	}
	for p := 0; p < b.cfg.Partitions; p++ {
		cc := b.consumerConfig(dir, name, n, p)
		if _, err := stream.CreateOrUpdateConsumer(ctx, cc); err != nil {
			return fmt.Errorf("bus: consumer %s: %w", cc.Durable, err)
		}
	}
	return nil
}

// releaseOrphans makes a partition's messages that a crashed process had taken but not settled
// deliverable at once, instead of after AckWait: in embedded mode this process owns the
// server's state, so a message pending when this bus first consumes the partition was taken by
// a process that is gone. The consumer is reset to deliver from its ack floor (the server counts
// that delivery as the first again). In external mode another replica may be working on it, and
// AckWait (or PinnedTTL) decides; a later consumer of the same bus (a restart within the
// process) finds its predecessor's messages handed back already.
func (s *subscription) releaseOrphans(ctx context.Context, cons jetstream.Consumer) error {
	if s.b.cfg.Mode != ModeEmbedded {
		return nil
	}
	info := cons.CachedInfo()
	if info == nil {
		return nil
	}
	s.b.mu.Lock()
	seen := s.b.consumed[info.Name]
	if s.b.consumed == nil {
		s.b.consumed = make(map[string]bool)
	}
	s.b.consumed[info.Name] = true
	s.b.mu.Unlock()
	if seen {
		return nil
	}
	if info.NumAckPending == 0 {
		return nil
	}
	if _, err := s.stream.ResetConsumer(ctx, info.Name); err != nil {
		return fmt.Errorf("bus: consumer %s: release %d message(s) of a previous run: %w", info.Name, info.NumAckPending, err)
	}
	s.b.log.Info("bus: messages a previous run had taken are delivered again now", "consumer", info.Name, "messages", info.NumAckPending)
	return nil
}

// handle runs the handler for one message and settles it. Calls for one partition are serial
// (the consume callback), and MaxAckPending 1 keeps one message per partition in flight.
func (s *subscription) handle(part *partition, m jetstream.Msg) {
	if id := m.Headers().Get("Nats-Pin-Id"); id != "" {
		part.pinID.Store(id)
	}
	if s.stopping.Load() {
		// Stopping: hand the message back at once for another replica or the next start.
		_ = m.Nak()
		return
	}
	start := time.Now()
	netLabel := string(s.network)
	md, err := m.Metadata()
	if err != nil {
		s.b.log.Error("bus: message without metadata", "consumer", part.durable, "err", err)
		_ = m.Term()
		return
	}
	orig := originalSubject(m.Subject())
	max := uint64(s.b.cfg.MaxDeliveries)

	env, decErr := event.Unmarshal(m.Data())
	if s.dir == "out" {
		netLabel = "unknown"
		if decErr == nil && env.Origin.Network.Valid() {
			netLabel = string(env.Origin.Network)
		}
	}
	s.b.met.delivered.WithLabelValues(s.dir, netLabel).Inc()
	outcome := "ack"
	defer func() {
		s.b.met.handlerDur.WithLabelValues(s.dir, netLabel, outcome).Observe(time.Since(start).Seconds())
	}()

	switch {
	case md.NumDelivered > max:
		// Earlier deliveries timed out (crash, disconnect) without a result.
		outcome = "dead_letter"
		s.deadLetter(part, m, md, orig, DLQMaxDeliveries, fmt.Errorf("delivered %d times without success", md.NumDelivered-1), netLabel)
		return
	case decErr != nil:
		outcome = "dead_letter"
		s.deadLetter(part, m, md, orig, DLQUndecodable, decErr, netLabel)
		return
	}

	herr := s.run(m, Delivery{Envelope: env, Subject: orig, NumDelivered: md.NumDelivered, StreamSeq: md.Sequence.Stream,
		Final: md.NumDelivered >= max})
	switch {
	case herr == nil:
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		err := m.DoubleAck(ctx)
		cancel()
		if err != nil {
			// Not confirmed: the message comes again after AckWait; handlers are idempotent.
			s.b.log.Warn("bus: ack not confirmed", "consumer", part.durable, "seq", md.Sequence.Stream, "err", err)
			return
		}
		s.b.met.acked.WithLabelValues(s.dir, netLabel).Inc()
	case s.ctx.Err() != nil:
		// Stop's deadline cancelled the handler: not the message's fault.
		outcome = "stopped"
		_ = m.Nak()
	case errors.Is(herr, ErrPermanent):
		outcome = "dead_letter"
		s.deadLetter(part, m, md, orig, DLQPermanent, herr, netLabel)
	case md.NumDelivered >= max:
		outcome = "dead_letter"
		s.deadLetter(part, m, md, orig, DLQMaxDeliveries, herr, netLabel)
	default:
		outcome = "nak"
		delay := s.b.backoff(md.NumDelivered)
		s.b.log.Info("bus: handler failed, will retry", "consumer", part.durable, "seq", md.Sequence.Stream,
			"delivery", md.NumDelivered, "retry_in", delay, "err", herr)
		if err := m.NakWithDelay(delay); err != nil {
			s.b.log.Warn("bus: nak failed", "consumer", part.durable, "err", err)
		}
		s.b.met.naked.WithLabelValues(s.dir, netLabel).Inc()
	}
}

// run calls the handler with a context cancelled by HandlerTimeout or Stop's deadline, tells the
// server the message is in progress every AckWait/3 meanwhile, and turns a panic into an error.
func (s *subscription) run(m jetstream.Msg, d Delivery) (err error) {
	ctx, cancel := context.WithTimeout(s.ctx, s.b.cfg.HandlerTimeout)
	defer cancel()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(max(s.b.cfg.AckWait/3, 50*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_ = m.InProgress()
			}
		}
	})
	defer func() {
		close(done)
		wg.Wait()
		if r := recover(); r != nil {
			s.b.log.Error("bus: handler panic", "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("bus: handler panic: %v", r)
		}
	}()
	return s.h(ctx, d)
}

// backoff is the redelivery delay after the n-th delivery failed.
func (b *NATS) backoff(n uint64) time.Duration {
	bo := b.cfg.Backoff
	i := int(min(n, uint64(len(bo)))) - 1
	return bo[max(i, 0)]
}

// deadLetter copies m to mimi.dlq.<orig> with headers naming the reason, then terminates m. The
// dead letter's Nats-Msg-Id is derived from stream, sequence and consumer, so a retry after a
// crash between publish and term is stored once. If the publish fails, m is nak'd and the next
// delivery tries again.
func (s *subscription) deadLetter(part *partition, m jetstream.Msg, md *jetstream.MsgMetadata, orig, reason string, cause error, netLabel string) {
	h := nats.Header{}
	h.Set(HeaderDLQReason, reason)
	if cause != nil {
		h.Set(HeaderDLQError, headerSafe(cause.Error(), 1024))
	}
	h.Set(HeaderDLQSubject, orig)
	h.Set(HeaderDLQStream, md.Stream)
	h.Set(HeaderDLQSeq, strconv.FormatUint(md.Sequence.Stream, 10))
	h.Set(HeaderDLQConsumer, part.durable)
	h.Set(HeaderDLQDeliveries, strconv.FormatUint(md.NumDelivered, 10))
	if id := m.Headers().Get(nats.MsgIdHdr); id != "" {
		h.Set(HeaderDLQMsgID, headerSafe(id, 256))
	}
	dlqID := md.Stream + ":" + strconv.FormatUint(md.Sequence.Stream, 10) + ":" + part.durable
	data := m.Data()
	if sl := s.b.cfg.Sealer; sl != nil {
		sealed, err := sl.Seal(data, dlqID)
		if err != nil {
			s.b.log.Error("bus: sealing a dead letter failed, will retry", "consumer", part.durable, "seq", md.Sequence.Stream, "err", err)
			_ = m.NakWithDelay(s.b.backoff(md.NumDelivered))
			return
		}
		data = sealed
		h.Set(HeaderDLQSealed, "1")
	}
	msg := &nats.Msg{Subject: SubjectDeadLetterPrefix + orig, Data: data, Header: h}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if _, err := s.b.js.PublishMsg(ctx, msg, jetstream.WithMsgID(dlqID), jetstream.WithExpectStream(StreamDeadLetter)); err != nil {
		s.b.log.Error("bus: dead-letter publish failed, will retry", "consumer", part.durable, "seq", md.Sequence.Stream, "err", err)
		_ = m.NakWithDelay(s.b.backoff(md.NumDelivered))
		return
	}
	s.b.log.Warn("bus: dead-lettered", "consumer", part.durable, "seq", md.Sequence.Stream, "reason", reason,
		"deliveries", md.NumDelivered, "err", cause)
	s.b.met.deadLettered.WithLabelValues(s.dir, netLabel, reason).Inc()
	if err := m.TermWithReason(reason); err != nil {
		s.b.log.Warn("bus: term failed", "consumer", part.durable, "err", err)
	}
}

// DeadLetterData returns the original data of a dead letter read from the dead-letter stream
// (header and data as stored), opening it with Config.Sealer when it was sealed.
func (b *NATS) DeadLetterData(h nats.Header, data []byte) ([]byte, error) {
	if h.Get(HeaderDLQSealed) != "1" {
		return data, nil
	}
	if b.cfg.Sealer == nil {
		return nil, errors.New("bus: dead letter is sealed, and the bus has no sealer")
	}
	pt, err := b.cfg.Sealer.Unseal(data, h.Get(nats.MsgIdHdr))
	if err != nil {
		return nil, fmt.Errorf("bus: open dead letter: %w", err)
	}
	return pt, nil
}

// headerSafe makes s usable as a header value: no CR/LF, at most n bytes.
func headerSafe(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
	if len(s) > n {
		s = s[:n]
	}
	return s
}

// originalSubject removes the partition token that the stream transform inserted before the room
// token: mimi.out.<p>.<tok> → mimi.out.<tok>, mimi.in.<net>.<p>.<tok> → mimi.in.<net>.<tok>.
func originalSubject(stored string) string {
	last := strings.LastIndexByte(stored, '.')
	if last < 0 {
		return stored
	}
	prev := strings.LastIndexByte(stored[:last], '.')
	if prev < 0 {
		return stored
	}
	return stored[:prev] + stored[last:]
}

// Stop implements Subscription. It stops pulling, lets buffered messages go back to the server
// (nak), waits for running handlers until ctx ends (then cancels their contexts), and releases
// the partitions' pins so another replica (or the next start) takes over at once.
func (s *subscription) Stop(ctx context.Context) error {
	s.stopOnce.Do(func() { s.stopErr = s.stop(ctx) })
	return s.stopErr
}

func (s *subscription) stop(ctx context.Context) error {
	defer func() {
		s.b.mu.Lock()
		delete(s.b.subs, s)
		s.b.mu.Unlock()
	}()
	s.stopping.Store(true)
	for _, p := range s.parts {
		p.cc.Drain()
	}
	var err error
	for _, p := range s.parts {
		select {
		case <-p.cc.Closed():
		case <-ctx.Done():
			if err == nil {
				s.cancel()
				for _, q := range s.parts {
					q.cc.Stop()
				}
				err = fmt.Errorf("bus: stop consumer group %s: %w", s.name, ctx.Err())
			}
		}
	}
	s.cancel()
	s.unpin(ctx)
	return err
}

// stopNow stops a subscription that failed to start.
func (s *subscription) stopNow() {
	s.stopping.Store(true)
	s.cancel()
	for _, p := range s.parts {
		p.cc.Stop()
	}
}

// unpin releases every partition this client is pinned to. Best effort: without it the server
// re-pins after PinnedTTL.
func (s *subscription) unpin(ctx context.Context) {
	if s.b.cfg.NoPinning {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	for _, p := range s.parts {
		mine, _ := p.pinID.Load().(string)
		if mine == "" {
			continue
		}
		info, err := p.cons.Info(ctx)
		if err != nil {
			continue
		}
		for _, g := range info.PriorityGroups {
			if g.Group == priorityGroup && g.PinnedClientID == mine {
				if err := s.stream.UnpinConsumer(ctx, p.durable, priorityGroup); err != nil {
					s.b.log.Debug("bus: unpin", "consumer", p.durable, "err", err)
				}
			}
		}
	}
}
