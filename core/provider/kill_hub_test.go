package provider

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/bus"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
	"github.com/mimi-gateway/mimi-gateway/core/protocol/protocoltest"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

// TestHubKilledInGroupCommit kills the hub in the middle of a group commit: hub A runs in a
// child process with eight rooms, in each of which Bob, a user of follower B (this process),
// sends messages; B submits them concurrently (one mimi.out partition per room), so A accepts
// several /submitMessage calls in one shared transaction. The child stops in the first such
// transaction with at least two callers, after their writes and before the commit, and is
// SIGKILLed there; restarted on the same SQLite file and JetStream directory, it gets the
// unacknowledged submissions again from B. In the end every message is on A's mimi.in stream
// exactly once.
func TestHubKilledInGroupCommit(t *testing.T) {
	ctx := context.Background()
	n := protocoltest.NewNetwork()
	ca := protocoltest.NewCA(t)
	b := newNode(t, n, ca, "b.example", storetest.SQLiteConfig(t), func(c *bus.Config) {
		c.Partitions = bus.DefaultPartitions
		c.MaxDeliveries = 10000 // B retries its submissions for as long as the hub is down
	})
	bob := event.NewUserURI(b.domain, "bob")
	if err := b.p.EnsureUser(ctx, bob, event.NetworkMatrix); err != nil {
		t.Fatal(err)
	}

	const aDomain event.Domain = "a.example"
	aAddr := freeLoopbackAddr(t)
	certFile, keyFile := protocoltest.WriteFiles(t, ca.Issue(t, string(aDomain)))
	natsDir := filepath.Join(t.TempDir(), "nats")
	rooms := make([]event.RoomURI, 8)
	for i := range rooms {
		rooms[i] = event.NewRoomURI(aDomain, fmt.Sprint("killed-hub-", i))
	}
	cfg := killChildConfig{
		Domain: aDomain, User: event.NewUserURI(aDomain, "alice"), Store: storetest.SQLiteConfig(t), NATSDir: natsDir,
		Listen: aAddr, CertFile: certFile, KeyFile: keyFile, CAFile: ca.File,
		Partner: b.domain, HubAddr: b.tp.Addr, Rooms: rooms, Invite: bob, StopInGroupCommit: true,
	}
	n.Set(string(aDomain), aAddr)
	b.tp.Partners.Set([]protocol.Partner{{Domain: aDomain, BaseURL: &url.URL{Scheme: "https", Host: string(aDomain), Path: "/"}, RootCAs: ca.Pool}})
	b.start(t)

	in := make(chan string, 1024) // "<kind> <envelope id>" and "GROUP <n>" lines of the children
	child := startKillChild(t, cfg, in)
	joined := map[event.RoomURI]bool{}
	for len(joined) < len(rooms) {
		e := expect(t, b, "portal requests", func(e *event.Envelope) bool { return e.Kind == event.KindPortalRequest })
		joined[e.Room] = true
	}
	for _, r := range rooms {
		waitFor(t, "Bob's client in "+string(r), func() error { _, err := loadClient(ctx, b.st, r, bob); return err })
	}

	const perRoom = 5
	var sent []*event.Envelope
	for i := range perRoom {
		for _, r := range rooms {
			m := message(t, r, bob, fmt.Sprintf("%s message %d", r.Local(), i))
			publishOut(t, b, m)
			sent = append(sent, m)
		}
	}
	reports := newKillReports()
	deadline := time.After(60 * time.Second)
	for stopped := false; !stopped; {
		select {
		case line := <-in:
			if strings.HasPrefix(line, "GROUP ") {
				t.Logf("hub stopped in a shared transaction of %s callers", strings.TrimPrefix(line, "GROUP "))
				stopped = true
				continue
			}
			reports.add(line)
		case <-deadline:
			t.Fatal("the hub never committed a transaction shared by two callers")
		}
	}
	child.kill(t)
	for len(in) > 0 {
		reports.add(<-in)
	}
	t.Logf("killed the hub with %d of %d messages on its bus", len(reports.messages), len(sent))

	cfg.StopInGroupCommit = false
	child = startKillChild(t, cfg, in)
	deadline = time.After(120 * time.Second)
	for len(reports.messages) < len(sent) {
		select {
		case line := <-in:
			reports.add(line)
		case <-deadline:
			t.Fatalf("only %d of %d messages reached the hub's bus after its restart", len(reports.messages), len(sent))
		}
	}
	child.kill(t)
	verifyStoredOnce(t, natsDir, sent)
}

// verifyStoredOnce reads the mimi.in.matrix messages stored in the JetStream directory natsDir
// (of a provider that is not running) from the start and checks that each of sent is there
// exactly once and nothing else is.
func verifyStoredOnce(t *testing.T, natsDir string, sent []*event.Envelope) {
	t.Helper()
	ctx := context.Background()
	nb, err := bus.Open(ctx, killBusConfig(natsDir), testLogger())
	if err != nil {
		t.Fatalf("bus: %v", err)
	}
	defer func() { _ = nb.Close(context.Background()) }()
	type stored struct {
		env *event.Envelope
		seq uint64
	}
	got := make(chan stored, 1024)
	sub, err := nb.ConsumeIn(ctx, "verify", event.NetworkMatrix, func(_ context.Context, d bus.Delivery) error {
		got <- stored{env: d.Envelope, seq: d.StreamSeq}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Stop(context.Background()) }()
	bySeq := map[uint64]bool{}
	byContent := map[string]uint64{}
	collect := func(d time.Duration) {
		deadline := time.After(d)
		for {
			select {
			case s := <-got:
				if s.env.Kind != event.KindMessage || bySeq[s.seq] {
					continue // not a message, or this consumer's redelivery of a stored one
				}
				bySeq[s.seq] = true
				if prev, ok := byContent[string(s.env.Content)]; ok {
					t.Errorf("same content stored twice on mimi.in (stream seq %d and %d)", prev, s.seq)
				}
				byContent[string(s.env.Content)] = s.seq
			case <-deadline:
				return
			}
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(bySeq) < len(sent) && time.Now().Before(deadline) {
		collect(100 * time.Millisecond)
	}
	collect(time.Second) // any extra copy
	if len(bySeq) != len(sent) {
		t.Errorf("mimi.in holds %d messages, want %d", len(bySeq), len(sent))
	}
	for _, m := range sent {
		if _, ok := byContent[string(m.Content)]; !ok {
			t.Errorf("message %q missing from mimi.in", m.Content)
		}
	}
}
