package provider

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/bus"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/mls"
	"github.com/mimi-gateway/mimi-gateway/core/store"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

// TestHubWithoutMembers: after the hub's last local user (Alice) left, the hub has no client in
// the room and keeps sequencing it with its public view (P20): Bob adds another user of B
// (a commit through A's /update), messages flow between them through the hub, and a client of B
// that missed an epoch rejoins through A's /groupInfo, served from the GroupInfo stored with the
// view.
func TestHubWithoutMembers(t *testing.T) {
	ctx := context.Background()
	a, b := pair(t)
	room, bob := lastHubUserLeaves(t, a, b)
	noClients := func() {
		t.Helper()
		if cs, err := loadClients(ctx, a.st, room); err != nil || len(cs) != 0 {
			t.Fatalf("the hub has %d clients in the room (%v)", len(cs), err)
		}
	}
	noClients()
	// The view is at the room's epoch and is what Bob's client has.
	sameAsMember := func(nd *node, u event.UserURI) uint64 {
		t.Helper()
		var epoch uint64
		waitFor(t, fmt.Sprintf("hub's view agrees with %s", u), func() error {
			rr, err := dbOf(a.st).loadRoom(ctx, room)
			if err != nil {
				return err
			}
			v, err := loadPublicView(ctx, a.st, room)
			if err != nil || v == nil {
				return fmt.Errorf("no view (%v)", err)
			}
			c, err := loadClient(ctx, nd.st, room, u)
			if err != nil {
				return err
			}
			if v.group.Epoch() != rr.Epoch || c.Group.Epoch() != rr.Epoch {
				return fmt.Errorf("room at %d, view at %d, %s at %d", rr.Epoch, v.group.Epoch(), u, c.Group.Epoch())
			}
			gv, gm := v.group.GroupContext(), c.Group.GroupContext()
			bv, _ := gv.Marshal()
			bm, _ := gm.Marshal()
			tv, _ := v.group.RatchetTree().Encode()
			tm, _ := c.Group.RatchetTree().Encode()
			if !bytes.Equal(bv, bm) || !bytes.Equal(tv, tm) {
				return errors.New("GroupContext or tree differ")
			}
			if v.groupInfo == nil {
				return errors.New("no GroupInfo stored with the view")
			}
			epoch = rr.Epoch
			return nil
		})
		return epoch
	}
	sameAsMember(b, bob)

	// Bob adds Bob2 (another user of B, on XMPP): a commit through the hub's /update.
	bob2 := event.NewUserURI(b.domain, "bob2")
	if err := b.p.EnsureUser(ctx, bob2, event.NetworkXMPP); err != nil {
		t.Fatal(err)
	}
	xmpp := make(chan *event.Envelope, 64)
	sub, err := b.bus.ConsumeIn(ctx, "test-xmpp", event.NetworkXMPP, func(_ context.Context, d bus.Delivery) error {
		xmpp <- d.Envelope
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Stop(context.Background()) })
	addedBy(t, b, a, room, bob, bob2)
	waitFor(t, "bob2's client", func() error {
		_, err := loadClient(ctx, b.st, room, bob2)
		return err
	})
	noClients()
	sameAsMember(b, bob2)

	// Messages through the hub, both ways.
	m := message(t, room, bob, "hello bob2")
	publishOut(t, b, m)
	select {
	case got := <-waitKind(xmpp, event.KindMessage):
		if got.Sender != bob || !bytes.Equal(got.Content, m.Content) {
			t.Fatalf("bob2 got %s from %s", got.Kind, got.Sender)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("bob2 got no message")
	}
	r := message(t, room, bob2, "hello bob")
	publishOut(t, b, r)
	expectText(t, b, r)

	// Bob2 misses an epoch: B's server is down while Bob adds Carol, and the hub's fanout to B
	// is dropped. Bob2's next message is refused as too old: B rejoins by external commit from
	// the GroupInfo the hub serves without a client of its own, and the message goes through.
	carol := event.NewUserURI(b.domain, "carol")
	if err := b.p.EnsureUser(ctx, carol, event.NetworkMatrix); err != nil {
		t.Fatal(err)
	}
	before := missFanout(t, a, b, room, bob2, func() { addedBy(t, b, a, room, bob, carol) })
	rejoinsToSend(t, b, b, room, bob2, before)
	noClients()
	sameAsMember(b, bob2)
}

// waitKind forwards the first envelope of kind k from ch.
func waitKind(ch <-chan *event.Envelope, k event.Kind) <-chan *event.Envelope {
	out := make(chan *event.Envelope, 1)
	go func() {
		for e := range ch {
			if e.Kind == k {
				out <- e
				return
			}
		}
	}()
	return out
}

// TestPublicViewCompareAndSet: the view moves only from the epoch a commit was made in, never
// back; a GroupInfo of another epoch is refused.
func TestPublicViewCompareAndSet(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		p, room, c := roomWithCreator(t, s)
		// Without a stored view, the view at epoch 0 is the client's.
		v0, err := p.viewAt(ctx, s, room, 0)
		if err != nil || v0 == nil {
			t.Fatalf("view at 0: %v", err)
		}
		pc1, err := c.Group.Commit(mls.CommitOptions{})
		if err != nil {
			t.Fatal(err)
		}
		g1, err := pc1.Confirm()
		if err != nil {
			t.Fatal(err)
		}
		pc2, err := g1.Commit(mls.CommitOptions{})
		if err != nil {
			t.Fatal(err)
		}
		advance := func(epoch uint64, commit *mls.MLSMessage, gi *mls.MLSMessage) error {
			h := &handshake{epoch: epoch, commit: commit, groupInfo: gi.GroupInfo}
			return s.InTx(ctx, func(tx *store.Tx) error { return p.advancePublic(ctx, tx, room, h) })
		}
		// A GroupInfo of another epoch does not go with the commit.
		if err := advance(0, pc1.Commit, groupInfoMsg(t, pc2)); !errors.Is(err, errInvalidProposal) {
			t.Fatalf("mismatched GroupInfo: %v", err)
		}
		if err := advance(0, pc1.Commit, groupInfoMsg(t, pc1)); err != nil {
			t.Fatal(err)
		}
		if err := advance(1, pc2.Commit, groupInfoMsg(t, pc2)); err != nil {
			t.Fatal(err)
		}
		// The first commit again: the view is past its epoch.
		h := &handshake{epoch: 0, next: mustNext(t, v0, pc1.Commit)}
		err = s.InTx(ctx, func(tx *store.Tx) error { return p.advancePublic(ctx, tx, room, h) })
		if !errors.Is(err, ErrConflict) {
			t.Fatalf("view going back: %v, want ErrConflict", err)
		}
		v, err := loadPublicView(ctx, s, room)
		if err != nil || v == nil || v.group.Epoch() != 2 {
			t.Fatalf("stored view %+v (%v), want epoch 2", v, err)
		}
		gv, gm := v.group.GroupContext(), pc2.State.GroupContext()
		bv, _ := gv.Marshal()
		bm, _ := gm.Marshal()
		if !bytes.Equal(bv, bm) {
			t.Fatal("stored view's GroupContext differs from the committer's")
		}
		if gi, tree, err := publicGroupInfo(ctx, s, room, 2); err != nil || gi == nil || tree == nil {
			t.Fatalf("stored GroupInfo: %v", err)
		}
		if gi, _, err := publicGroupInfo(ctx, s, room, 1); err != nil || gi != nil {
			t.Fatalf("GroupInfo of an old epoch: %v %v", gi, err)
		}
	})
}

// mustNext processes commit with v and returns the next view.
func mustNext(t *testing.T, v *mls.PublicGroup, commit *mls.MLSMessage) *mls.PublicGroup {
	t.Helper()
	rec, err := v.Process(commit, mls.ProcessOptions{AppData: roomUpdater})
	if err != nil {
		t.Fatal(err)
	}
	return rec.Commit.Public
}
