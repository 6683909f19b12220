package protocol

import (
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// TestBucketSet: the burst, the refill, the wait it reports, and the bound on keys (full buckets
// are dropped to make room; without room a new key waits).
func TestBucketSet(t *testing.T) {
	now := time.Unix(1000, 0)
	s := newBucketSet(RateLimit{Interval: time.Second, Burst: 3}, 2)
	for i := range 3 {
		if ok, _ := s.take("a", now); !ok {
			t.Fatalf("burst take %d refused", i)
		}
	}
	ok, wait := s.take("a", now)
	if ok || wait != time.Second {
		t.Fatalf("empty bucket: %v, wait %s", ok, wait)
	}
	if ok, wait := s.take("a", now.Add(400*time.Millisecond)); ok || wait != 600*time.Millisecond {
		t.Fatalf("0.4 tokens: %v, wait %s", ok, wait)
	}
	if ok, _ := s.take("a", now.Add(time.Second)); !ok {
		t.Fatal("refilled token refused")
	}
	if ok, _ := s.take("b", now.Add(time.Second)); !ok {
		t.Fatal("second key refused")
	}
	// Two keys, both not full: a third waits.
	if ok, wait := s.take("c", now.Add(time.Second)); ok || wait != time.Second {
		t.Fatalf("third key with no room: %v %s", ok, wait)
	}
	// Later both are full again and are swept.
	if ok, _ := s.take("c", now.Add(10*time.Second)); !ok {
		t.Fatal("third key after the sweep refused")
	}
	if len(s.m) != 1 {
		t.Fatalf("%d buckets kept, want 1", len(s.m))
	}
	var unlimited *bucketSet
	if ok, _ := unlimited.take("x", now); !ok {
		t.Fatal("nil set limits")
	}
	if ok, _ := newBucketSet(RateLimit{}, 1).take("x", now); !ok {
		t.Fatal("zero rate limits")
	}
}

// TestTrips: the WARN line comes once per partner and window, at tripWarnAt refusals.
func TestTrips(t *testing.T) {
	var tr trips
	now := time.Unix(1000, 0)
	warned := 0
	for i := range 3 * tripWarnAt {
		if _, w := tr.add("b.example", now.Add(time.Duration(i)*time.Millisecond)); w {
			warned++
		}
	}
	if warned != 1 {
		t.Fatalf("warned %d times in one window", warned)
	}
	if _, w := tr.add("c.example", now); w {
		t.Fatal("warned for another partner's first refusal")
	}
	for i := range tripWarnAt {
		if _, w := tr.add("b.example", now.Add(tripWindow+time.Duration(i))); w {
			warned++
		}
	}
	if warned != 2 {
		t.Fatalf("no warning in the next window (%d)", warned)
	}
}

// TestAdmitBudget: a body reserves BodyCost times its size, never more than a partner's share
// (the budget less 1/PartnerReserve), so a body larger than that is still served when nothing
// else is in flight; one partner never holds more than its share, so another partner's small
// request fits while the first holds a large one; the reservation is returned by the release
// function.
func TestAdmitBudget(t *testing.T) {
	l := newLimits(&ServerConfig{BodyBudget: 800, PartnerConcurrency: 10}, slog.New(slog.DiscardHandler))
	release, code, _, _, _ := l.admit(EndpointNotify, "b.example", "", 600) // capped at 700
	if code != 0 {
		t.Fatalf("lone large body refused: %d", code)
	}
	if _, code, retry, _, _ := l.admit(EndpointNotify, "b.example", "", 1); code != http.StatusServiceUnavailable || retry <= 0 {
		t.Fatalf("second body of the partner holding its share: %d %s", code, retry)
	}
	other, code, _, _, _ := l.admit(EndpointKeyMaterial, "c.example", "", 25) // 100 of the reserve
	if code != 0 {
		t.Fatalf("another partner's small body while the first holds its share: %d", code)
	}
	if _, code, _, _, _ := l.admit(EndpointKeyMaterial, "d.example", "", 1); code != http.StatusServiceUnavailable {
		t.Fatalf("budget overrun admitted: %d", code)
	}
	release()
	other()
	r2, code, _, _, _ := l.admit(EndpointNotify, "b.example", "", 160) // 640 of 800
	if code != 0 {
		t.Fatalf("after release: %d", code)
	}
	if _, code, _, _, _ := l.admit(EndpointNotify, "c.example", "", 41); code == 0 { // 164 more
		t.Fatal("budget overrun admitted")
	}
	r2()
	if l.bodies.used != 0 || len(l.bodies.held) != 0 || len(l.flight.n) != 0 {
		t.Fatalf("left reserved: %d bytes (%v), %v in flight", l.bodies.used, l.bodies.held, l.flight.n)
	}
}

// TestKeyMaterialTargetPerPartner: once one partner has used up its bucket for a user, another
// partner's claim for her is still admitted, and the first partner's claim for another user too.
func TestKeyMaterialTargetPerPartner(t *testing.T) {
	l := newLimits(&ServerConfig{KeyMaterialTargetRate: RateLimit{Interval: time.Hour, Burst: 2}}, slog.New(slog.DiscardHandler))
	admit := func(peer event.Domain, target IdentifierURI) int {
		release, code, _, _, _ := l.admit(EndpointKeyMaterial, peer, target, 100)
		if release != nil {
			release()
		}
		return code
	}
	const alice, carla = "mimi://a.example/u/alice", "mimi://a.example/u/carla"
	for i, tc := range []struct {
		peer   event.Domain
		target IdentifierURI
		want   int
	}{
		{"b.example", alice, 0}, {"b.example", alice, 0}, {"b.example", alice, http.StatusTooManyRequests},
		{"c.example", alice, 0}, {"b.example", carla, 0},
	} {
		if got := admit(tc.peer, tc.target); got != tc.want {
			t.Fatalf("claim %d of %s for %s: %d, want %d", i, tc.peer, tc.target, got, tc.want)
		}
	}
}
