package provider

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/mls"
	"github.com/mimi-gateway/mimi-gateway/core/store"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

// storedParts returns the stored (unsealed) secret tree, split flag, member state and shared
// flag of u's client.
func storedParts(t *testing.T, s *store.Store, room event.RoomURI, u event.UserURI) (st []byte, split int64, member []byte, shared int64) {
	t.Helper()
	err := s.QueryRowContext(context.Background(), `SELECT c.state, c.split, e.state, e.shared FROM provider_clients c
		JOIN provider_client_epochs e ON e.room = c.room AND e.user_uri = c.user_uri WHERE c.room = ? AND c.user_uri = ?`,
		string(room), string(u)).Scan(&st, &split, &member, &shared)
	if err != nil {
		t.Fatal(err)
	}
	if st, err = s.Unseal(sealedClientState, st, string(room), string(u)); err != nil {
		t.Fatal(err)
	}
	if member, err = s.Unseal(sealedClientEpoch, member, string(room), string(u)); err != nil {
		t.Fatal(err)
	}
	return st, split, member, shared
}

// publicStates counts room's stored public states.
func publicStates(t *testing.T, s *store.Store, room event.RoomURI) int {
	t.Helper()
	var n int
	if err := s.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM provider_room_epochs WHERE room = ?`, string(room)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestClientStateParts stores a client in parts: sending writes the secret tree and the version
// only (compare-and-set), the public state is stored once per epoch and pruned when no client is
// in that epoch any more, rows of the earlier layouts (a whole state; a whole epoch state) load
// and are converted when next saved, and a delete removes every part.
func TestClientStateParts(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		_, room, c := roomWithCreator(t, s)
		st0, split, mem0, shared := storedParts(t, s, room, c.User)
		if split != 1 || shared != 1 || len(mem0) == 0 || publicStates(t, s, room) != 1 {
			t.Fatalf("new client stored with split=%d shared=%d, a %d-byte member state, %d public states", split, shared, len(mem0), publicStates(t, s, room))
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
		st1, _, mem1, _ := storedParts(t, s, room, c.User)
		if !bytes.Equal(mem1, mem0) || bytes.Equal(st1, st0) || len(st1) > 1024 {
			t.Fatalf("after a message: member state changed %v, secret tree %d → %d bytes", !bytes.Equal(mem1, mem0), len(st0), len(st1))
		}
		if _, err := stale.Group.Encrypt([]byte("y"), nil); err != nil {
			t.Fatal(err)
		}
		if err := s.InTx(ctx, func(tx *store.Tx) error { return saveRatchets(ctx, tx, room, stale) }); !errors.Is(err, ErrConflict) {
			t.Fatalf("stale secret tree written: %v, want ErrConflict", err)
		}

		// The earlier layouts: a whole state in provider_clients, a whole epoch state in
		// provider_client_epochs. Each loads, continues its ratchet and is converted when saved.
		full, err := c.Group.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		epochState, err := c.Group.MarshalEpochState()
		if err != nil {
			t.Fatal(err)
		}
		secretTree, err := c.Group.MarshalSecretTree()
		if err != nil {
			t.Fatal(err)
		}
		seal := func(col store.SealedColumn, b []byte) []byte {
			t.Helper()
			sealed, err := s.Seal(col, b, string(room), string(c.User))
			if err != nil {
				t.Fatal(err)
			}
			return sealed
		}
		for gen, layout := range []func(){
			func() {
				execSQL(t, s, `UPDATE provider_clients SET state = ?, split = 0 WHERE room = ?`, seal(sealedClientState, full), string(room))
				execSQL(t, s, `DELETE FROM provider_client_epochs WHERE room = ?`, string(room))
			},
			func() {
				execSQL(t, s, `UPDATE provider_clients SET state = ?, split = 1 WHERE room = ?`, seal(sealedClientState, secretTree), string(room))
				execSQL(t, s, `UPDATE provider_client_epochs SET state = ?, shared = 0 WHERE room = ?`, seal(sealedClientEpoch, epochState), string(room))
			},
		} {
			layout()
			old, err := loadClient(ctx, s, room, c.User)
			if err != nil {
				t.Fatalf("layout %d: %v", gen, err)
			}
			m, err := old.Group.Encrypt([]byte("z"), nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, g, _ := old.Group.PrivateMessageSender(m.PrivateMessage); g != 1 {
				t.Fatalf("layout %d: generation %d, want 1", gen, g)
			}
			if err := s.InTx(ctx, func(tx *store.Tx) error { return saveRatchets(ctx, tx, room, old) }); err != nil {
				t.Fatal(err)
			}
			if _, split, mem, shared := storedParts(t, s, room, c.User); split != 1 || shared != 1 || !bytes.Equal(mem, mem0) {
				t.Fatalf("layout %d converted to split=%d shared=%d, member state as before %v", gen, split, shared, bytes.Equal(mem, mem0))
			}
			again, err := loadClient(ctx, s, room, c.User)
			if err != nil {
				t.Fatal(err)
			}
			if next, err := again.Group.Encrypt([]byte("z"), nil); err != nil {
				t.Fatal(err)
			} else if _, g, _ := again.Group.PrivateMessageSender(next.PrivateMessage); g != 2 {
				t.Fatalf("layout %d: restored sender at generation %d, want 2", gen, g)
			}
		}

		// A new epoch: its public state is stored, the old one pruned.
		pc, err := c.Group.Commit(mls.CommitOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cur, err := loadClient(ctx, s, room, c.User)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.InTx(ctx, func(tx *store.Tx) error { return saveClient(ctx, tx, room, cur, pc.State) }); err != nil {
			t.Fatal(err)
		}
		var epoch int64
		if err := s.QueryRowContext(ctx, `SELECT epoch FROM provider_room_epochs WHERE room = ?`, string(room)).Scan(&epoch); err != nil || epoch != 1 {
			t.Fatalf("public states after the commit: epoch %d (%v), want only 1", epoch, err)
		}

		if err := s.InTx(ctx, func(tx *store.Tx) error { return deleteClient(ctx, tx, room, c.User) }); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := s.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM provider_clients) + (SELECT COUNT(*) FROM provider_client_epochs)
			+ (SELECT COUNT(*) FROM provider_room_epochs)`).Scan(&n); err != nil || n != 0 {
			t.Fatalf("%d rows left after delete (%v)", n, err)
		}
	})
}

func execSQL(t *testing.T, s *store.Store, q string, args ...any) {
	t.Helper()
	if _, err := s.ExecContext(context.Background(), q, args...); err != nil {
		t.Fatal(err)
	}
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
	a := &clientState{User: "mimi://a.example/u/a", Version: 1, memberBytes: 60}
	b := &clientState{User: "mimi://a.example/u/b", Version: 1, memberBytes: 60}
	gc.put(room, a)
	gc.put(room, b)
	if gc.take(clientKey{room, a.User}, 1) != nil || gc.take(clientKey{room, b.User}, 1) != b || gc.size != 0 {
		t.Fatalf("budget of 100 bytes: a should be evicted, b kept (size %d)", gc.size)
	}
	gc.put(room, &clientState{User: "mimi://a.example/u/big", Version: 1, memberBytes: 101})
	if len(gc.entries) != 0 {
		t.Fatal("a client larger than the budget was kept")
	}
	gc.put(room, a)
	if gc.take(clientKey{room, a.User}, 2) != nil || len(gc.entries) != 0 {
		t.Fatal("an entry at another version was used or kept")
	}
}
