package bus

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// gcmSealer is a Sealer for tests: AES-GCM with a random key, the ID as associated data.
type gcmSealer struct{ aead cipher.AEAD }

func newGCMSealer(t testing.TB) *gcmSealer {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	blk, err := aes.NewCipher(k)
	if err != nil {
		t.Fatal(err)
	}
	a, err := cipher.NewGCM(blk)
	if err != nil {
		t.Fatal(err)
	}
	return &gcmSealer{aead: a}
}

func (g *gcmSealer) Seal(pt []byte, id string) ([]byte, error) {
	n := make([]byte, g.aead.NonceSize())
	_, _ = rand.Read(n)
	return g.aead.Seal(n, n, pt, []byte(id)), nil
}

func (g *gcmSealer) Unseal(ct []byte, id string) ([]byte, error) {
	ns := g.aead.NonceSize()
	if len(ct) < ns {
		return nil, errors.New("short")
	}
	return g.aead.Open(nil, ct[:ns], ct[ns:], []byte(id))
}

// filesContaining lists the files under dir whose bytes contain needle.
func filesContaining(t testing.TB, dir string, needle []byte) []string {
	t.Helper()
	var hits []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.Contains(b, needle) {
			hits = append(hits, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hits
}

// TestAcknowledgedMessagesLeaveTheBus: once the consumer group acknowledged a message, the
// stream no longer holds it; a message for a network no consumer group serves is not kept; a
// message that is never acknowledged goes after MaxAge.
func TestAcknowledgedMessagesLeaveTheBus(t *testing.T) {
	forEachBackend(t, func(t *testing.T, cfg Config) {
		cfg.MaxAge = 2 * time.Second
		cfg.DedupeWindow = time.Second
		cfg.AckWait = time.Minute // a held message stays unacknowledged, not redelivered
		b := openBus(t, cfg)
		ctx := ctxT(t)
		held := testEnvelope(testRoom(1), "held", nil)
		release := make(chan struct{})
		rec := newRecorder()
		s, err := b.ConsumeOut(ctx, "endpoint", func(ctx context.Context, d Delivery) error {
			rec.add(d)
			if d.Envelope.ID == held.ID {
				select {
				case <-release:
				case <-ctx.Done():
				}
				return errors.New("stopped")
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		var last *event.Envelope
		for i := range 20 {
			last = testEnvelope(testRoom(i%5+2), fmt.Sprintf("m%d", i), nil)
			if err := b.PublishOut(ctx, last); err != nil {
				t.Fatal(err)
			}
		}
		rec.waitCount(t, last.ID, 1)
		checkFor(t, 20*time.Second, 20*time.Millisecond, func() error {
			if n := streamMsgs(t, b, StreamOut); n != 0 {
				return fmt.Errorf("MIMI_OUT holds %d acknowledged messages", n)
			}
			return nil
		})
		// Nobody consumes mimi.in for XMPP here: not kept.
		if err := b.PublishIn(ctx, event.NetworkXMPP, testEnvelope(testRoom(1), "nobody", nil)); err != nil {
			t.Fatal(err)
		}
		if n := streamMsgs(t, b, StreamIn); n != 0 {
			t.Fatalf("MIMI_IN keeps %d messages no consumer group matches", n)
		}
		// A message in progress stays until MaxAge.
		if err := b.PublishOut(ctx, held); err != nil {
			t.Fatal(err)
		}
		rec.waitCount(t, held.ID, 1)
		if n := streamMsgs(t, b, StreamOut); n != 1 {
			t.Fatalf("MIMI_OUT holds %d messages while one is in progress, want 1", n)
		}
		checkFor(t, 20*time.Second, 50*time.Millisecond, func() error {
			if n := streamMsgs(t, b, StreamOut); n != 0 {
				return fmt.Errorf("MIMI_OUT still holds %d messages after max_age", n)
			}
			return nil
		})
		close(release)
		stopSub(t, s)
	})
}

// TestDeclaredGroupKeepsMessages: a consumer group declared before it consumes keeps what is
// published meanwhile (interest retention would otherwise drop it).
func TestDeclaredGroupKeepsMessages(t *testing.T) {
	cfg := backends[0].config(t)
	b := openBus(t, cfg)
	ctx := ctxT(t)
	if err := b.DeclareIn(ctx, "adapter-xmpp", event.NetworkXMPP); err != nil {
		t.Fatal(err)
	}
	e := testEnvelope(testRoom(3), "early", nil)
	if err := b.PublishIn(ctx, event.NetworkXMPP, e); err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	s, err := b.ConsumeIn(ctx, "adapter-xmpp", event.NetworkXMPP, func(_ context.Context, d Delivery) error {
		rec.add(d)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stopSub(t, s)
	rec.waitCount(t, e.ID, 1)
}

// TestEmbeddedStoreEncrypted: message content is nowhere in the embedded store's files, neither
// in the streams nor in the dead letters (which keep an encrypted envelope), while the bus works
// as before; after a restart the content is still delivered.
func TestEmbeddedStoreEncrypted(t *testing.T) {
	cfg := backends[0].config(t).WithDefaults()
	cfg.Sealer = newGCMSealer(t)
	secret := []byte("Befund: Patientin Erika Mustermann, Hb 9.1")
	b := openBus(t, cfg)
	ctx := ctxT(t)
	room := testRoom(7)
	dead := testEnvelope(room, "dead", append([]byte("dead letter: "), secret...))
	pending := testEnvelope(room, "pending", secret)
	s, err := b.ConsumeOut(ctx, "endpoint", func(_ context.Context, d Delivery) error {
		return Permanent(errors.New("no such room"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.PublishOut(ctx, dead); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if n := len(deadLetters(t, b)); n != 1 {
			return fmt.Errorf("%d dead letters", n)
		}
		return nil
	})
	stopSub(t, s)
	if err := b.PublishOut(ctx, pending); err != nil { // waits in the stream: nobody consumes now
		t.Fatal(err)
	}
	dl := deadLetters(t, b)[0]
	if bytes.Contains(dl.Data, secret) || dl.Header.Get(HeaderDLQSealed) != "1" {
		t.Fatalf("dead letter data is not sealed: %q", dl.Header)
	}
	orig, err := b.DeadLetterData(dl.Header, dl.Data)
	if err != nil {
		t.Fatal(err)
	}
	if env, err := event.Unmarshal(orig); err != nil || env.ID != dead.ID {
		t.Fatalf("dead letter does not open to the envelope: %v", err)
	}
	dl.Header.Set(nats.MsgIdHdr, "another")
	if _, err := b.DeadLetterData(dl.Header, dl.Data); err == nil {
		t.Fatal("a dead letter opened under another ID")
	}
	closeBus(t, b)

	if hits := filesContaining(t, filepath.Dir(cfg.Embedded.StoreDir), secret); len(hits) > 0 {
		t.Fatalf("message content in the clear in %v", hits)
	}
	info, err := os.Stat(cfg.Embedded.KeyFile)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("key file %s: %v %v", cfg.Embedded.KeyFile, info, err)
	}

	b = openBus(t, cfg)
	rec := newRecorder()
	s, err = b.ConsumeOut(ctx, "endpoint", func(_ context.Context, d Delivery) error { rec.add(d); return nil })
	if err != nil {
		t.Fatal(err)
	}
	defer stopSub(t, s)
	rec.waitCount(t, pending.ID, 1)
	if got := rec.snapshot(); !bytes.Equal(got[0].Envelope.Content, secret) {
		t.Fatalf("content after restart %q", got[0].Envelope.Content)
	}
}

// closeBus closes b now (openBus's cleanup then finds it closed).
func closeBus(t testing.TB, b *NATS) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestEmbeddedKeyProblemsStopOpen: a wrong key, or a missing key file for an encrypted store,
// stops Open with a message that says so, and the store is left as it was.
func TestEmbeddedKeyProblemsStopOpen(t *testing.T) {
	cfg := backends[0].config(t).WithDefaults()
	b := openBus(t, cfg)
	closeBus(t, b)
	good, err := os.ReadFile(cfg.Embedded.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	open := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		b, err := Open(ctx, cfg, testLogger(t))
		if err == nil {
			closeBus(t, b)
		}
		return err
	}
	if err := os.WriteFile(cfg.Embedded.KeyFile, []byte(strings.Repeat("x", 44)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := open(); err == nil || !strings.Contains(err.Error(), "not the one the store") {
		t.Fatalf("Open with a wrong key = %v", err)
	}
	if err := os.Remove(cfg.Embedded.KeyFile); err != nil {
		t.Fatal(err)
	}
	if err := open(); err == nil || !strings.Contains(err.Error(), "does not exist, but the store") {
		t.Fatalf("Open without the key file = %v", err)
	}
	if _, err := os.Stat(cfg.Embedded.KeyFile); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("Open made up a new key for an encrypted store")
	}
	if err := os.WriteFile(cfg.Embedded.KeyFile, good, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := open(); err == nil || !strings.Contains(err.Error(), "readable by other users") {
		t.Fatalf("Open with a world-readable key file = %v", err)
	}
	if err := os.Chmod(cfg.Embedded.KeyFile, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := open(); err != nil {
		t.Fatalf("Open with the right key: %v", err)
	}
}

// TestEmbeddedStoreUpgradedInPlace: a store written by an earlier gateway (no encryption, limits
// retention) keeps working: messages not yet acknowledged are delivered, acknowledged ones are
// removed, and the files no longer hold the content in the clear.
func TestEmbeddedStoreUpgradedInPlace(t *testing.T) {
	cfg := backends[0].config(t).WithDefaults()
	cfg.NoPinning = true // the set-up below fetches without a priority group
	secret := []byte("Laborwert vor dem Upgrade: Kalium 5.9")
	room := testRoom(8)
	acked := testEnvelope(room, "acked", append([]byte("acked "), secret...))
	waiting := testEnvelope(room, "waiting", secret)

	// The earlier gateway: same streams with limits retention, no key.
	ns, err := server.NewServer(&server.Options{ServerName: "old", JetStream: true, StoreDir: cfg.Embedded.StoreDir, DontListen: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("old server not ready")
	}
	nc, err := nats.Connect("", nats.InProcessServer(ns))
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	old := &NATS{cfg: cfg, js: js}
	ctx := ctxT(t)
	for _, sc := range old.streamConfigs() {
		sc.Retention = jetstream.LimitsPolicy
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			t.Fatal(err)
		}
	}
	stream, _ := js.Stream(ctx, StreamOut)
	for p := range cfg.Partitions {
		if _, err := stream.CreateOrUpdateConsumer(ctx, old.consumerConfig("out", "endpoint", "", p)); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range []*event.Envelope{acked, waiting} {
		data, _ := event.Marshal(e)
		if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: SubjectOut(room), Data: data}, jetstream.WithMsgID(string(e.ID))); err != nil {
			t.Fatal(err)
		}
	}
	// The earlier gateway acknowledged the first one.
	last, err := stream.GetLastMsgForSubject(ctx, "mimi.out.*."+room.Token())
	if err != nil {
		t.Fatal(err)
	}
	cons, _ := stream.Consumer(ctx, "endpoint_p"+strings.Split(last.Subject, ".")[2])
	msgs, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for m := range msgs.Messages() {
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 1 || msgs.Error() != nil {
		t.Fatalf("test set-up: the earlier gateway acknowledged %d messages: %v", n, msgs.Error())
	}
	nc.Close()
	ns.Shutdown()
	ns.WaitForShutdown()
	if len(filesContaining(t, cfg.Embedded.StoreDir, secret)) == 0 {
		t.Fatal("test set-up: the earlier store does not hold the content in the clear")
	}

	b := openBus(t, cfg)
	rec := newRecorder()
	s, err := b.ConsumeOut(ctx, "endpoint", func(_ context.Context, d Delivery) error { rec.add(d); return nil })
	if err != nil {
		t.Fatal(err)
	}
	rec.waitCount(t, waiting.ID, 1)
	checkFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		if n := streamMsgs(t, b, StreamOut); n != 0 {
			return fmt.Errorf("MIMI_OUT holds %d acknowledged messages after the upgrade", n)
		}
		return nil
	})
	stopSub(t, s)
	if rec.count(acked.ID) != 0 {
		t.Error("the message acknowledged before the upgrade came again")
	}
	closeBus(t, b)
	if hits := filesContaining(t, cfg.Embedded.StoreDir, secret); len(hits) > 0 {
		t.Fatalf("content still in the clear after the upgrade: %v", hits)
	}
}
