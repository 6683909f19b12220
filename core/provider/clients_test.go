package provider

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

// storedParts returns the stored secret tree, split flag and epoch state of u's client.
func storedParts(t *testing.T, s *store.Store, room event.RoomURI, u event.UserURI) (st []byte, split int64, epoch []byte) {
	t.Helper()
	err := s.QueryRowContext(context.Background(), `SELECT c.state, c.split, e.state FROM provider_clients c
		LEFT JOIN provider_client_epochs e ON e.room = c.room AND e.user_uri = c.user_uri WHERE c.room = ? AND c.user_uri = ?`,
		string(room), string(u)).Scan(&st, &split, &epoch)
	if err != nil {
		t.Fatal(err)
	}
	if st, err = s.Unseal(sealedClientState, st, string(room), string(u)); err != nil {
		t.Fatal(err)
	}
	if epoch != nil {
		if epoch, err = s.Unseal(sealedClientEpoch, epoch, string(room), string(u)); err != nil {
			t.Fatal(err)
		}
	}
	return st, split, epoch
}

// TestClientStateParts stores a client in two parts: sending writes the secret tree and the
// version only (compare-and-set), a row in the format before the split loads and is split when
// next saved, and a delete removes both parts.
func TestClientStateParts(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		_, room, c := roomWithCreator(t, s)
		st0, split, epoch0 := storedParts(t, s, room, c.User)
		if split != 1 || len(epoch0) == 0 {
			t.Fatalf("new client stored with split=%d and a %d-byte epoch state", split, len(epoch0))
		}
		stale, err := loadClient(ctx, s, room, c.User)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Group.Encrypt([]byte("x"), nil); err != nil {
			t.Fatal(err)
		}
		if err := s.InTx(ctx, func(tx *store.Tx) error { return saveRatchets(ctx, tx, room, c) }); err != nil {
			t.Fatal(err)
		}
		st1, _, epoch1 := storedParts(t, s, room, c.User)
		if !bytes.Equal(epoch1, epoch0) || bytes.Equal(st1, st0) || len(st1) > 1024 {
			t.Fatalf("after a message: epoch state changed %v, secret tree %d → %d bytes", !bytes.Equal(epoch1, epoch0), len(st0), len(st1))
		}
		if _, err := stale.Group.Encrypt([]byte("y"), nil); err != nil {
			t.Fatal(err)
		}
		if err := s.InTx(ctx, func(tx *store.Tx) error { return saveRatchets(ctx, tx, room, stale) }); !errors.Is(err, ErrConflict) {
			t.Fatalf("stale secret tree written: %v, want ErrConflict", err)
		}

		// A row written before the split: the whole state, split = 0, no epoch row.
		full, err := c.Group.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if full, err = s.Seal(sealedClientState, full, string(room), string(c.User)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ExecContext(ctx, `UPDATE provider_clients SET state = ?, split = 0 WHERE room = ? AND user_uri = ?`, full, string(room), string(c.User)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ExecContext(ctx, `DELETE FROM provider_client_epochs WHERE room = ?`, string(room)); err != nil {
			t.Fatal(err)
		}
		old, err := loadClient(ctx, s, room, c.User)
		if err != nil || old.split {
			t.Fatalf("whole state: split %v (%v)", old != nil && old.split, err)
		}
		m, err := old.Group.Encrypt([]byte("z"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.InTx(ctx, func(tx *store.Tx) error { return saveRatchets(ctx, tx, room, old) }); err != nil {
			t.Fatal(err)
		}
		if _, split, epoch := storedParts(t, s, room, c.User); split != 1 || !bytes.Equal(epoch, epoch0) {
			t.Fatalf("after saving a whole state: split=%d, epoch state as before %v", split, bytes.Equal(epoch, epoch0))
		}
		again, err := loadClient(ctx, s, room, c.User)
		if err != nil {
			t.Fatal(err)
		}
		if next, err := again.Group.Encrypt([]byte("z"), nil); err != nil {
			t.Fatal(err)
		} else if _, g1, _ := again.Group.PrivateMessageSender(m.PrivateMessage); g1 != 1 {
			t.Fatalf("generation of the last message %d, want 1", g1)
		} else if _, g2, _ := again.Group.PrivateMessageSender(next.PrivateMessage); g2 != 2 {
			t.Fatalf("restored sender at generation %d, want 2", g2)
		}

		if err := s.InTx(ctx, func(tx *store.Tx) error { return deleteClient(ctx, tx, room, c.User) }); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := s.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM provider_clients) + (SELECT COUNT(*) FROM provider_client_epochs)`).Scan(&n); err != nil || n != 0 {
			t.Fatalf("%d rows left after delete (%v)", n, err)
		}
	})
}

// TestGroupCache checks the loaded-group cache: a kept client is used again while the stored
// version is its own, a write by another path (as by another replica) makes it a miss that loads
// the stored state, and the byte budget evicts the least recently used client.
func TestGroupCache(t *testing.T) {
	ctx := context.Background()
	s := storetest.Open(t, storetest.SQLiteConfig(t))
	p, room, _ := roomWithCreator(t, s)
	u := event.NewUserURI("a.example", "alice")
	c, err := p.cachedClient(ctx, room, u)
	if err != nil {
		t.Fatal(err)
	}
	p.keepClient(room, c)
	if again, err := p.cachedClient(ctx, room, u); err != nil || again != c {
		t.Fatalf("kept client not used again (%v)", err)
	}
	// Taken out while in use: a second caller loads its own copy.
	if other, err := p.cachedClient(ctx, room, u); err != nil || other == c {
		t.Fatalf("a client in use handed out twice (%v)", err)
	}
	p.keepClient(room, c)
	// Another writer moves the version: the kept group is stale and not used.
	w, err := loadClient(ctx, s, room, u)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Group.Encrypt([]byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.InTx(ctx, func(tx *store.Tx) error { return saveRatchets(ctx, tx, room, w) }); err != nil {
		t.Fatal(err)
	}
	got, err := p.cachedClient(ctx, room, u)
	if err != nil || got == c || got.Version != w.Version {
		t.Fatalf("after another write: version %d, want %d (%v)", got.Version, w.Version, err)
	}
	if _, err := p.cachedClient(ctx, room, event.NewUserURI("a.example", "nobody")); !errors.Is(err, ErrUnknownUser) {
		t.Fatalf("unknown client: %v", err)
	}

	gc := newGroupCache(100)
	a := &clientState{User: "mimi://a.example/u/a", Version: 1, epochBytes: 60}
	b := &clientState{User: "mimi://a.example/u/b", Version: 1, epochBytes: 60}
	gc.put(room, a)
	gc.put(room, b)
	if gc.take(clientKey{room, a.User}, 1) != nil || gc.take(clientKey{room, b.User}, 1) != b || gc.size != 0 {
		t.Fatalf("budget of 100 bytes: a should be evicted, b kept (size %d)", gc.size)
	}
	gc.put(room, &clientState{User: "mimi://a.example/u/big", Version: 1, epochBytes: 101})
	if len(gc.entries) != 0 {
		t.Fatal("a client larger than the budget was kept")
	}
	gc.put(room, a)
	if gc.take(clientKey{room, a.User}, 2) != nil || len(gc.entries) != 0 {
		t.Fatal("an entry at another version was used or kept")
	}
}
