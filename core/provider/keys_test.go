package provider

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/bus"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/mls"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
	"github.com/mimi-gateway/mimi-gateway/core/store"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

// storeOnly is a provider without bus traffic: enough for the store-level parts.
func storeOnly(t *testing.T, s *store.Store, now func() time.Time) *Provider {
	t.Helper()
	p, err := New(context.Background(), Config{Domain: "a.example", Store: s, Bus: noBus{}, PoolSize: 2, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// noBus satisfies bus.Bus for tests that never publish; any use fails the call.
type noBus struct{ bus.Bus }

func TestKeyPackagePool(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		clock := time.Now()
		p := storeOnly(t, s, func() time.Time { return clock })
		u := event.NewUserURI("a.example", "alice")
		if err := p.EnsureUser(ctx, u, event.NetworkMatrix); err != nil {
			t.Fatal(err)
		}
		if err := p.EnsureUser(ctx, u, event.NetworkMatrix); err != nil { // idempotent
			t.Fatal(err)
		}
		bob := event.NewUserURI("b.example", "bob")
		req := &protocol.KeyMaterialRequest{RequestingUser: protocol.IdentifierURI(bob), RequesterCredential: credentialOf(bob),
			AcceptableCipherSuites: []mls.CipherSuite{mls.MLS128DHKEMX25519AES128GCMSHA256Ed25519}}
		seen := map[string]bool{}
		lastResort := 0
		for i := range 10 {
			resp, err := p.KeyMaterial(ctx, protocol.Peer{Domain: "b.example"}, u, req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.UserStatus != protocol.KeyMaterialUserSuccess || len(resp.Clients) != 1 || resp.Clients[0].KeyPackage == nil {
				t.Fatalf("claim %d: %+v", i, resp)
			}
			kp := resp.Clients[0].KeyPackage
			if err := kp.Verify(); err != nil {
				t.Fatalf("claim %d: %v", i, err)
			}
			ref, _ := kp.Ref()
			if seen[string(ref)] {
				t.Fatalf("claim %d: KeyPackage returned twice", i)
			}
			seen[string(ref)] = true
			if kp.IsLastResort() {
				lastResort++
			}
		}
		if lastResort != 0 {
			t.Fatalf("a last-resort KeyPackage was served while one-time ones were replenished")
		}
		// Expired KeyPackages are never served: jump past every lifetime; the pool refills
		// with fresh ones.
		clock = clock.Add(31 * 24 * time.Hour)
		resp, err := p.KeyMaterial(ctx, protocol.Peer{Domain: "b.example"}, u, req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Clients[0].ClientStatus != protocol.KeyMaterialClientExhausted {
			t.Fatalf("after expiry: %+v", resp.Clients[0])
		}
		// Unknown users, other domains and other suites.
		cases := []struct {
			name   string
			user   event.UserURI
			suites []mls.CipherSuite
			want   protocol.KeyMaterialUserCode
		}{
			{"unknown user", event.NewUserURI("a.example", "nobody"), req.AcceptableCipherSuites, protocol.KeyMaterialUserNoConsent},
			{"other domain", event.NewUserURI("c.example", "alice"), req.AcceptableCipherSuites, protocol.KeyMaterialUserNoConsent},
			{"no common suite", u, []mls.CipherSuite{mls.MLS256DHKEMP521AES256GCMSHA512P521}, protocol.KeyMaterialUserNoCompatibleMaterial},
		}
		for _, c := range cases {
			r, err := p.KeyMaterial(ctx, protocol.Peer{Domain: "b.example"}, c.user, &protocol.KeyMaterialRequest{
				RequestingUser: req.RequestingUser, RequesterCredential: req.RequesterCredential, AcceptableCipherSuites: c.suites})
			if err != nil || r.UserStatus != c.want {
				t.Errorf("%s: %v %+v", c.name, err, r)
			}
		}
	})
}

func TestKeyPackageLastResort(t *testing.T) {
	s := storetest.Open(t, storetest.SQLiteConfig(t))
	ctx := context.Background()
	p := storeOnly(t, s, time.Now)
	u := event.NewUserURI("a.example", "alice")
	if err := p.EnsureUser(ctx, u, event.NetworkMatrix); err != nil {
		t.Fatal(err)
	}
	// Without replenishing (as if generation failed), the last resort comes after the one-time
	// ones, once, and then the pool reports exhausted.
	var got []bool
	for range 4 {
		err := s.InTx(ctx, func(tx *store.Tx) error {
			var kp mls.KeyPackage
			row := tx.QueryRowContext(ctx, `SELECT key_package FROM provider_keypackages WHERE user_uri = ? AND claimed_at = 0 ORDER BY last_resort, ref LIMIT 1`, string(u))
			var enc []byte
			if err := row.Scan(&enc); err != nil {
				return err
			}
			k, err := mls.DecodeKeyPackage(enc)
			if err != nil {
				return err
			}
			kp = *k
			ref, _ := kp.Ref()
			_, err = tx.ExecContext(ctx, `UPDATE provider_keypackages SET claimed_at = 1 WHERE ref = ?`, hexRef(ref))
			got = append(got, kp.IsLastResort())
			return err
		})
		if err != nil {
			if isNoRows(err) {
				break
			}
			t.Fatal(err)
		}
	}
	if len(got) != 3 || got[0] || got[1] || !got[2] {
		t.Fatalf("claim order (last resort?) = %v, want [false false true]", got)
	}
	err := s.InTx(ctx, func(tx *store.Tx) error {
		usr, err := loadUser(ctx, tx, u)
		if err != nil {
			return err
		}
		var c int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM provider_keypackages WHERE user_uri = ? AND claimed_at = 0`, string(u)).Scan(&c); err != nil {
			return err
		}
		if c != 0 {
			t.Errorf("%d unclaimed left", c)
		}
		_, err = p.claimKeyPackage(ctx, tx, usr, []mls.CipherSuite{p.cfg.CipherSuite})
		if err != nil {
			return err
		}
		return nil
	})
	if err != nil && !errors.Is(err, errExhausted) {
		t.Fatal(err)
	}
}

// roomWithCreator makes a store-only provider and a room at epoch 0 with its creator alice.
func roomWithCreator(t *testing.T, s *store.Store) (*Provider, event.RoomURI, *clientState) {
	t.Helper()
	ctx := context.Background()
	p := storeOnly(t, s, time.Now)
	u := event.NewUserURI("a.example", "alice")
	room := event.NewRoomURI("a.example", "r1")
	if err := p.EnsureUser(ctx, u, event.NetworkMatrix); err != nil {
		t.Fatal(err)
	}
	if err := p.createRoom(ctx, room, u); err != nil {
		t.Fatal(err)
	}
	c, err := loadClient(ctx, s, room, u)
	if err != nil {
		t.Fatal(err)
	}
	return p, room, c
}

func TestClientStateCompareAndSet(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		_, room, c1 := roomWithCreator(t, s)
		u := c1.User
		c2, err := loadClient(ctx, s, room, u)
		if err != nil {
			t.Fatal(err)
		}
		pc, err := c1.Group.Commit(mls.CommitOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.InTx(ctx, func(tx *store.Tx) error { return saveClient(ctx, tx, room, c1, pc.State) }); err != nil {
			t.Fatal(err)
		}
		// c2 was loaded from the old version: its write is refused.
		err = s.InTx(ctx, func(tx *store.Tx) error { return saveClient(ctx, tx, room, c2, c2.Group) })
		if !errors.Is(err, ErrConflict) {
			t.Fatalf("stale write: %v, want ErrConflict", err)
		}
		// An older epoch never overwrites a newer one, whatever the version.
		c3, _ := loadClient(ctx, s, room, u)
		c3.Group = c2.Group
		err = s.InTx(ctx, func(tx *store.Tx) error { return saveClient(ctx, tx, room, c3, c2.Group) })
		if !errors.Is(err, ErrConflict) {
			t.Fatalf("epoch going back: %v, want ErrConflict", err)
		}
		got, err := loadClient(ctx, s, room, u)
		if err != nil || got.Group.Epoch() != 1 {
			t.Fatalf("stored epoch %d (%v), want 1", got.Group.Epoch(), err)
		}
	})
}

func TestFraming(t *testing.T) {
	s, err := mls.GenerateSigner(mls.MLS128DHKEMX25519AES128GCMSHA256Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	exts, err := roomExtensions()
	if err != nil {
		t.Fatal(err)
	}
	g, err := mls.CreateGroup([]byte("g"), s, credentialOf("mimi://a.example/u/x"), mls.GroupOptions{Extensions: exts})
	if err != nil {
		t.Fatal(err)
	}
	plain, err := mls.CreateGroup([]byte("h"), s, credentialOf("mimi://a.example/u/x"), mls.GroupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !framed(g) || framed(plain) {
		t.Fatalf("framed: %v %v", framed(g), framed(plain))
	}
	body := []byte{0x87, 0x50}
	gc, pc := &clientState{Group: g}, &clientState{Group: plain}
	f, err := frame(gc, body)
	if err != nil || bytes.Equal(f, body) {
		t.Fatalf("frame: %x %v", f, err)
	}
	if got, err := unframe(gc, f); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("unframe: %x %v", got, err)
	}
	if got, _ := frame(pc, body); !bytes.Equal(got, body) {
		t.Fatal("unframed group framed its data")
	}
	other, _ := (&mls.ApplicationFraming{MediaType: mls.MediaType{Type: "text/plain"}, Content: body}).Encode()
	if _, err := unframe(gc, other); err == nil {
		t.Fatal("text/plain accepted as MIMI content")
	}
	if _, err := unframe(gc, []byte{0xff}); err == nil {
		t.Fatal("garbage accepted")
	}
}

// TestKeyMaterialExhaustPoolBounded: a partner that claims one user's KeyPackages over and over
// leaves at most PoolSize + 1 unclaimed and MaxClaimed claimed rows; the claimed ones go after
// ClaimedExpiry, the unclaimed ones after their own expiry, private keys with them.
func TestKeyMaterialExhaustPoolBounded(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		clock := time.Now()
		p, err := New(ctx, Config{Domain: "a.example", Store: s, Bus: noBus{}, PoolSize: 2, MaxClaimed: 3, ClaimedExpiry: time.Hour,
			Now: func() time.Time { return clock }})
		if err != nil {
			t.Fatal(err)
		}
		alice := event.NewUserURI("a.example", "alice")
		if err := p.EnsureUser(ctx, alice, event.NetworkMatrix); err != nil {
			t.Fatal(err)
		}
		bob := event.NewUserURI("b.example", "bob")
		req := &protocol.KeyMaterialRequest{RequestingUser: protocol.IdentifierURI(bob), RequesterCredential: credentialOf(bob),
			AcceptableCipherSuites: []mls.CipherSuite{p.cfg.CipherSuite}}
		count := func(cond string) int {
			t.Helper()
			var n int
			if err := s.QueryRowContext(ctx, `SELECT COUNT(*) FROM provider_keypackages WHERE `+cond).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		for i := range 25 {
			clock = clock.Add(time.Second) // claims are ordered by time
			resp, err := p.KeyMaterial(ctx, protocol.Peer{Domain: "b.example"}, alice, req)
			if err != nil || resp.UserStatus != protocol.KeyMaterialUserSuccess {
				t.Fatalf("claim %d: %+v, %v", i, resp, err)
			}
			if c, u := count("claimed_at <> 0"), count("claimed_at = 0"); c > 3 || u > 3 {
				t.Fatalf("after claim %d: %d claimed, %d unclaimed rows", i, c, u)
			}
		}
		clock = clock.Add(time.Hour + time.Second)
		if err := p.pruneKeyPackages(ctx); err != nil {
			t.Fatal(err)
		}
		if c := count("claimed_at <> 0"); c != 0 {
			t.Fatalf("%d claimed rows after ClaimedExpiry", c)
		}
		clock = clock.Add(31 * 24 * time.Hour)
		if err := p.pruneKeyPackages(ctx); err != nil {
			t.Fatal(err)
		}
		if n := count("1 = 1"); n != 0 {
			t.Fatalf("%d rows after every KeyPackage expired", n)
		}
	})
}
