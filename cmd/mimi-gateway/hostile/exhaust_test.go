package hostile

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/cmd/mimi-gateway/internal/gatewaytest"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/mls"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
)

// TestEnumerationUniformAnswersBinary: good.example lets only accepted requesters reach its
// users (mimi.reachability: consent). eve's claim for ghost before ghost exists and after ghost
// has an MLS client get byte-identical answers (status, headers that describe the body, body);
// and a claim whose requestingUser is a user of a third provider is refused with 403 on the
// direct path, before the target is looked at.
func TestEnumerationUniformAnswersBinary(t *testing.T) {
	w := newWorld(t, map[string]string{"good.example": "mimi: {reachability: consent}\n"})
	good, ev := w.gws["good.example"], w.evil
	c := ev.httpClient(good.Gateway)
	ghost := event.NewUserURI("good.example", "ghost")
	claim := func(requester event.UserURI) (int, []byte) {
		t.Helper()
		body, err := ev.claimRequest(t, requester, ghost, "").Encode()
		if err != nil {
			t.Fatal(err)
		}
		status, _, b := ev.rawPost(t, c, good.Gateway, protocol.EndpointKeyMaterial, protocol.IdentifierURI(ghost), bytes.NewReader(body), int64(len(body)))
		return status, b
	}
	s1, before := claim(ev.eve)
	good.appear(t, ghost)
	s2, after := claim(ev.eve)
	if s1 != http.StatusOK || s2 != http.StatusOK || !bytes.Equal(before, after) {
		t.Fatalf("unknown user: %d %x; user without consent: %d %x", s1, before, s2, after)
	}
	resp, err := protocol.DecodeKeyMaterialResponse(after)
	if err != nil || resp.UserStatus != protocol.KeyMaterialUserNoConsent || len(resp.Clients) != 0 {
		t.Fatalf("answer %+v (%v), want noConsent without clients", resp, err)
	}
	if n := good.count(t, `SELECT COUNT(*) FROM provider_keypackages WHERE user_uri = ? AND claimed_at <> 0`, string(ghost)); n != 0 {
		t.Fatalf("%d of ghost's KeyPackages were handed out", n)
	}
	t.Logf("answer for an unknown user and for one without consent (%d bytes): %x", len(after), after)

	status, body := claim(event.NewUserURI("hub.example", "alice"))
	if status != http.StatusForbidden {
		t.Fatalf("claim with a requester of a third provider: %d %s, want 403", status, body)
	}
	if n := good.metric(t, `mimi_gateway_provider_refusals_total{endpoint="keyMaterial",reason="foreign_requester"}`); n != 1 {
		t.Errorf("foreign requesters counted: %v", n)
	}
}

// notifyBody returns a /notify body of about size bytes (one application message) split at the
// fanout timestamp: prefix, the 8 timestamp bytes, tail; bodies that differ in the timestamp
// share the tail, so many of them cost the test one copy.
func notifyBody(t testing.TB, size int) (prefix, tail []byte) {
	t.Helper()
	s, err := mls.GenerateSigner(mls.MLS128DHKEMX25519AES128GCMSHA256Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	g, err := mls.CreateGroup([]byte("mimi://evil.example/g/flood"), s, credential("mimi://evil.example/u/eve"), mls.GroupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := g.Encrypt(make([]byte, size), nil)
	if err != nil {
		t.Fatal(err)
	}
	const ts = 0x0102030405060708
	b, err := protocol.EncodeFanoutMessages([]*protocol.FanoutMessage{{Timestamp: ts, Message: m}})
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte{1, 2, 3, 4, 5, 6, 7, 8})
	if i < 0 {
		t.Fatal("timestamp not found in the body")
	}
	return b[:i], b[i+8:]
}

// TestBodyBudgetBinary: evil sends 48 /notify bodies of 16 MiB at once to the hub, whose body
// budget is 64 MiB (a body costs protocol.BodyCost = 4 times its size, so one fits at a time).
// The hub answers the others 503 with Retry-After before reading them; its peak resident
// memory (VmHWM) grows by at most twice the budget, as docs/security.md says (the garbage
// collector lets the heap grow to twice what is live), and refused bodies are accepted when
// evil sends them again after Retry-After.
func TestBodyBudgetBinary(t *testing.T) {
	const (
		bodies = 48
		size   = 16<<20 - 4096 // fits the 16 MiB /notify limit with its framing
		budget = 64 << 20
	)
	w := newWorld(t, map[string]string{"hub.example": fmt.Sprintf("mimi: {limits: {body_budget: %d, partner_concurrency: 64}}\n", budget)})
	hub, ev := w.gws["hub.example"], w.evil
	prefix, tail := notifyBody(t, size)
	room := event.NewRoomURI(ev.domain, "flood")
	c := ev.httpClient(hub.Gateway)
	post := func(i int) (int, string) {
		ts := []byte{0, 0, 0, 0, 0, 0, byte(i >> 8), byte(i)}
		n := int64(len(prefix) + 8 + len(tail))
		status, retry, b := ev.rawPost(t, c, hub.Gateway, protocol.EndpointNotify, protocol.IdentifierURI(room),
			io.MultiReader(bytes.NewReader(prefix), bytes.NewReader(ts), bytes.NewReader(tail)), n)
		if status != http.StatusCreated && status != http.StatusServiceUnavailable {
			t.Errorf("body %d: %d %s", i, status, b)
		}
		return status, retry
	}
	pid := hub.Pid()
	rss0, hwm0 := memory(t, pid)
	var (
		mu      sync.Mutex
		refused []int
		wg      sync.WaitGroup
	)
	start := time.Now()
	for i := range bodies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if status, retry := post(i); status == http.StatusServiceUnavailable {
				if retry == "" {
					t.Errorf("body %d: 503 without Retry-After", i)
				}
				mu.Lock()
				refused = append(refused, i)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	rss1, hwm1 := memory(t, pid)
	t.Logf("hub memory: VmRSS %d MiB → %d MiB, VmHWM %d MiB → %d MiB; %d of %d bodies refused with 503 in %s",
		rss0>>20, rss1>>20, hwm0>>20, hwm1>>20, len(refused), bodies, took)
	if len(refused) == 0 {
		t.Fatalf("no body refused: %d bodies of %d MiB fit a budget of %d MiB", bodies, size>>20, budget>>20)
	}
	if limit := rss0 + 2*budget; hwm1 > limit {
		t.Errorf("hub peak memory %d MiB, want at most %d MiB (before the flood %d MiB + 2 × the %d MiB budget)",
			hwm1>>20, limit>>20, rss0>>20, budget>>20)
	}
	if n := hub.metric(t, `mimi_gateway_protocol_server_refusals_total{endpoint="notify",reason="body_budget"}`); int(n) != len(refused) {
		t.Errorf("body_budget refusals counted %v, refused %d", n, len(refused))
	}
	// A refused body is not lost: sent again after Retry-After, it is accepted (three of them,
	// one at a time, to keep the test short).
	deadline := time.Now().Add(2 * time.Minute)
	for _, i := range refused[:min(3, len(refused))] {
		for {
			status, retry := post(i)
			if status == http.StatusCreated {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("body %d still refused (%d) after two minutes of retries", i, status)
			}
			d, _ := time.ParseDuration(retry + "s") // waiting as Retry-After says is the point
			time.Sleep(d)
		}
	}
}

// hubWithOther starts hub.example with alice, one of its users, and a second partner beside
// evil.example, other.example, whose requests the test makes with the returned client.
func hubWithOther(t *testing.T) (*world, *node, event.UserURI, *http.Client) {
	t.Helper()
	w := newWorld(t, map[string]string{"hub.example": ""}, func(g *gatewaytest.Gateway) {
		g.AddPartner("other.example", gatewaytest.FreeAddr(t), g.CA.File)
	})
	hub := w.gws["hub.example"]
	alice := event.NewUserURI("hub.example", "alice")
	hub.appear(t, alice)
	return w, hub, alice, w.evil.httpClientWith(w.ca.Issue(t, "other.example"), hub.Gateway)
}

// TestBodyBudgetSlowPartnerBinary: evil.example starts a /notify of 16 MiB and sends its body
// slowly, holding its share of the hub's body budget (the budget less an eighth) while the hub
// waits for the body. evil's next request is refused with 503 (it holds its share), and yet a
// claim of another partner, other.example, is served: one partner cannot keep the others out.
func TestBodyBudgetSlowPartnerBinary(t *testing.T) {
	const size = 16 << 20 // the /notify limit: BodyCost times it is the whole budget
	w, hub, alice, oc := hubWithOther(t)
	ev := w.evil
	c := ev.httpClient(hub.Gateway)
	slowRoom := protocol.IdentifierURI(event.NewRoomURI(ev.domain, "slow"))
	slow := func() chan string { return ev.slowPost(t, c, hub.Gateway, protocol.EndpointNotify, slowRoom, size) }
	slowDone := slow()
	claim := func(cl *http.Client, from event.Domain, requester, target event.UserURI) (int, []byte) {
		body, err := ev.claimRequest(t, requester, target, "").Encode()
		if err != nil {
			t.Fatal(err)
		}
		status, _, b := rawPost(t, cl, hub.Gateway, from, protocol.EndpointKeyMaterial, protocol.IdentifierURI(target), bytes.NewReader(body), int64(len(body)))
		return status, b
	}
	probes := 0 // evil's claims go to a new target each time, not to use up a target's bucket
	gatewaytest.Eventually(t, time.Minute, "evil.example holding its share of the body budget", func() error {
		select {
		case answer := <-slowDone:
			// A probe of evil's came first and the slow body did not fit its share: again.
			if !strings.HasPrefix(answer, "503 ") {
				t.Fatalf("the slow body was answered before it was sent: %s", answer)
			}
			slowDone = slow()
			return fmt.Errorf("the slow body was refused: %s", answer)
		default:
		}
		probes++
		if status, b := claim(c, ev.domain, ev.eve, event.NewUserURI("hub.example", fmt.Sprintf("probe%d", probes))); status != http.StatusServiceUnavailable {
			return fmt.Errorf("evil's claim: %d %.100s", status, b)
		}
		return nil
	})
	if status, b := claim(oc, "other.example", event.NewUserURI("other.example", "olga"), alice); status != http.StatusOK {
		t.Fatalf("other.example's claim while evil.example holds its share: %d %s", status, b)
	}
	if n := hub.metric(t, `mimi_gateway_protocol_server_refusals_total{endpoint="keyMaterial",reason="body_budget"}`); n < 1 {
		t.Errorf("body_budget refusals of evil's claims counted: %v", n)
	}
	select {
	case answer := <-slowDone:
		t.Fatalf("the slow body was answered before it was sent: %s", answer)
	default:
	}
}

// TestHostilePartnerConcurrencyBinary: evil.example holds 16 requests open at the hub (the
// default partner_concurrency), sending their bodies slowly. Its next request is refused 503
// with Retry-After (partner_concurrency), while a claim of another partner, other.example, is
// served.
func TestHostilePartnerConcurrencyBinary(t *testing.T) {
	const held = 16
	w, hub, alice, oc := hubWithOther(t)
	ev := w.evil
	c := ev.httpClient(hub.Gateway)
	room := protocol.IdentifierURI(event.NewRoomURI("hub.example", "busy"))
	slow := make([]chan string, held)
	for i := range slow {
		slow[i] = ev.slowPost(t, c, hub.Gateway, protocol.EndpointSubmitMessage, room, 8192)
	}
	claim := func(cl *http.Client, from event.Domain, requester, target event.UserURI) (int, string, []byte) {
		body, err := ev.claimRequest(t, requester, target, "").Encode()
		if err != nil {
			t.Fatal(err)
		}
		return rawPost(t, cl, hub.Gateway, from, protocol.EndpointKeyMaterial, protocol.IdentifierURI(target), bytes.NewReader(body), int64(len(body)))
	}
	probes := 0 // evil's claims go to a new target each time, not to use up a target's bucket
	gatewaytest.Eventually(t, time.Minute, "evil.example's 16 slow requests in flight", func() error {
		for i, ch := range slow {
			select {
			case answer := <-ch:
				// A probe of evil's took a place first and this one did not fit: again.
				if !strings.HasPrefix(answer, "503 ") {
					t.Fatalf("slow request %d was answered before its body was sent: %s", i, answer)
				}
				slow[i] = ev.slowPost(t, c, hub.Gateway, protocol.EndpointSubmitMessage, room, 8192)
				return fmt.Errorf("slow request %d was refused: %s", i, answer)
			default:
			}
		}
		probes++
		status, retry, b := claim(c, ev.domain, ev.eve, event.NewUserURI("hub.example", fmt.Sprintf("probe%d", probes)))
		if status != http.StatusServiceUnavailable || !bytes.Contains(b, []byte("in flight")) {
			return fmt.Errorf("evil's claim: %d %.100s", status, b)
		}
		if retry == "" {
			t.Fatal("503 without Retry-After")
		}
		return nil
	})
	if status, _, b := claim(oc, "other.example", event.NewUserURI("other.example", "olga"), alice); status != http.StatusOK {
		t.Fatalf("other.example's claim while evil.example has 16 requests in flight: %d %s", status, b)
	}
	if n := hub.metric(t, `mimi_gateway_protocol_server_refusals_total{endpoint="keyMaterial",reason="partner_concurrency"}`); n < 1 {
		t.Errorf("partner_concurrency refusals counted: %v", n)
	}
}

// TestKeyMaterialRateLimitBinary: evil makes 10,000 KeyPackage claims as fast as it can against
// five users of hub.example (default limits: per partner 100 at once then one every 500 ms, per
// partner and user 10 at once then one a minute). The claims beyond the buckets get 429 with
// Retry-After, the claims served stay within what the buckets allow for the time taken, the
// hub's KeyPackage rows stay within five users × (4 + 1 unclaimed + 16 claimed) and its pages
// in use grow by at most a page per row; the hub logs a WARN naming evil.example; and a claim
// of another partner, other.example, for one of the users is still served.
func TestKeyMaterialRateLimitBinary(t *testing.T) {
	const claims = 10000
	w := newWorld(t, map[string]string{"hub.example": ""}, func(g *gatewaytest.Gateway) {
		g.AddPartner("other.example", gatewaytest.FreeAddr(t), g.CA.File)
	})
	hub, ev := w.gws["hub.example"], w.evil
	var targets []event.UserURI
	for i := range 5 {
		u := event.NewUserURI("hub.example", fmt.Sprintf("user%d", i))
		hub.appear(t, u)
		targets = append(targets, u)
	}
	bodies := make([][]byte, len(targets))
	for i, u := range targets {
		b, err := ev.claimRequest(t, ev.eve, u, "").Encode()
		if err != nil {
			t.Fatal(err)
		}
		bodies[i] = b
	}
	rows0, bytes0, live0 := hub.count(t, `SELECT COUNT(*) FROM provider_keypackages`), hub.storeBytes(t), hub.liveBytes(t)
	c := ev.httpClient(hub.Gateway)
	var (
		mu                       sync.Mutex
		served, limited, noRetry int
		other                    = map[int]int{}
	)
	start := time.Now()
	spread(0, claims, 16, func(i int) {
		k := i % len(targets)
		status, retry, b := ev.rawPost(t, c, hub.Gateway, protocol.EndpointKeyMaterial, protocol.IdentifierURI(targets[k]), bytes.NewReader(bodies[k]), int64(len(bodies[k])))
		mu.Lock()
		defer mu.Unlock()
		switch status {
		case http.StatusOK:
			if r, err := protocol.DecodeKeyMaterialResponse(b); err != nil || r.UserStatus != protocol.KeyMaterialUserSuccess {
				other[-1]++
			} else {
				served++
			}
		case http.StatusTooManyRequests:
			limited++
			if retry == "" {
				noRetry++
			}
		default:
			other[status]++
		}
	})
	took := time.Since(start)
	rows1, bytes1, live1 := hub.count(t, `SELECT COUNT(*) FROM provider_keypackages`), hub.storeBytes(t), hub.liveBytes(t)
	t.Logf("%d claims in %s: %d served, %d refused with 429; KeyPackage rows %d → %d, pages in use %d KiB → %d KiB, files %d KiB → %d KiB",
		claims, took.Round(time.Millisecond), served, limited, rows0, rows1, live0>>10, live1>>10, bytes0>>10, bytes1>>10)
	if len(other) > 0 || noRetry > 0 {
		t.Fatalf("other answers %v, 429 without Retry-After %d", other, noRetry)
	}
	// What the buckets allow in the time taken (plus one refill of slack for the clock).
	perUser := 10 + int(took/time.Minute) + 1
	perPartner := 100 + int(took/(500*time.Millisecond)) + 1
	if allowed := min(perPartner, len(targets)*perUser); served > allowed {
		t.Errorf("%d claims served in %s, the buckets allow %d", served, took, allowed)
	}
	if served == 0 || served+limited != claims {
		t.Errorf("served %d, limited %d of %d", served, limited, claims)
	}
	maxRows := len(targets) * (4 + 1 + 16)
	if rows1 > maxRows {
		t.Errorf("%d KeyPackage rows, want at most %d", rows1, maxRows)
	}
	// A KeyPackage row (KeyPackage, sealed private keys, index entries) takes well under a
	// page; the store may grow by at most a page for each row the bound still allows.
	if grew, allowed := live1-live0, int64(maxRows-rows0)*4096; grew > allowed {
		t.Errorf("the store's pages in use grew by %d KiB, want at most %d KiB", grew>>10, allowed>>10)
	}
	if n := hub.metric(t, `mimi_gateway_protocol_server_refusals_total{endpoint="keyMaterial",reason="rate_target"}`) +
		hub.metric(t, `mimi_gateway_protocol_server_refusals_total{endpoint="keyMaterial",reason="rate_partner"}`); int(n) != limited {
		t.Errorf("rate refusals counted %v, refused %d", n, limited)
	}
	hub.WaitLog(t, time.Minute, "a partner keeps tripping the server's limits")
	warned := false
	for _, line := range strings.Split(hub.Log(), "\n") {
		if strings.Contains(line, "a partner keeps tripping the server's limits") {
			warned = strings.Contains(line, "level=WARN") && strings.Contains(line, "peer=evil.example")
			break
		}
	}
	if !warned {
		t.Error("the hub's line about a partner tripping its limits is not a WARN naming evil.example")
	}
	// evil's claims used up its buckets, not another partner's: other.example claims user0.
	oc := ev.httpClientWith(w.ca.Issue(t, "other.example"), hub.Gateway)
	body, err := ev.claimRequest(t, event.NewUserURI("other.example", "olga"), targets[0], "").Encode()
	if err != nil {
		t.Fatal(err)
	}
	status, _, b := rawPost(t, oc, hub.Gateway, "other.example", protocol.EndpointKeyMaterial, protocol.IdentifierURI(targets[0]), bytes.NewReader(body), int64(len(body)))
	if r, err := protocol.DecodeKeyMaterialResponse(b); status != http.StatusOK || err != nil || r.UserStatus != protocol.KeyMaterialUserSuccess {
		t.Errorf("other.example's claim for %s after evil's flood: %d %.200s", targets[0], status, b)
	}
}

// TestKeyMaterialExhaustPoolBinary: with the rate limits opened wide, evil claims the
// KeyPackages of two users of hub.example 1,000 times. Every claim is served, and yet the hub's
// store stays bounded: each user has at most 4 + 1 unclaimed and max_claimed (16) claimed rows
// at any time, and the store's pages in use after 1,000 claims are what they were after 200
// (the oldest claimed rows, private keys with them, make room for the new ones).
func TestKeyMaterialExhaustPoolBinary(t *testing.T) {
	const (
		claims  = 1000
		warm    = 200
		users   = 2
		maxRows = users * (4 + 1 + 16)
	)
	w := newWorld(t, map[string]string{"hub.example": "mimi: {limits: {key_material: {partner_burst: 1000000, partner_interval: 1ms, target_burst: 1000000, target_interval: 1ms}}}\n"})
	hub, ev := w.gws["hub.example"], w.evil
	var targets []event.UserURI
	var bodies [][]byte
	for i := range users {
		u := event.NewUserURI("hub.example", fmt.Sprintf("user%d", i))
		hub.appear(t, u)
		b, err := ev.claimRequest(t, ev.eve, u, "").Encode()
		if err != nil {
			t.Fatal(err)
		}
		targets, bodies = append(targets, u), append(bodies, b)
	}
	c := ev.httpClient(hub.Gateway)
	claim := func(from, to int) {
		t.Helper()
		var (
			mu  sync.Mutex
			bad = map[string]int{}
		)
		spread(from, to, 4, func(i int) {
			k := i % users
			status, _, b := ev.rawPost(t, c, hub.Gateway, protocol.EndpointKeyMaterial, protocol.IdentifierURI(targets[k]), bytes.NewReader(bodies[k]), int64(len(bodies[k])))
			if r, err := protocol.DecodeKeyMaterialResponse(b); status != http.StatusOK || err != nil || r.UserStatus != protocol.KeyMaterialUserSuccess {
				mu.Lock()
				bad[fmt.Sprintf("%d %.80s", status, b)]++
				mu.Unlock()
			}
		})
		if len(bad) > 0 {
			t.Fatalf("claims %d..%d not served: %v", from, to, bad)
		}
	}
	rows0, live0 := hub.count(t, `SELECT COUNT(*) FROM provider_keypackages`), hub.liveBytes(t)
	start := time.Now()
	claim(0, warm)
	rowsWarm, liveWarm := hub.count(t, `SELECT COUNT(*) FROM provider_keypackages`), hub.liveBytes(t)
	claim(warm, claims)
	took := time.Since(start)
	rows1, live1, files1 := hub.count(t, `SELECT COUNT(*) FROM provider_keypackages`), hub.liveBytes(t), hub.storeBytes(t)
	claimed := hub.count(t, `SELECT COUNT(*) FROM provider_keypackages WHERE claimed_at <> 0`)
	t.Logf("%d claims served in %s; KeyPackage rows %d → %d (after %d) → %d (%d claimed); pages in use %d KiB → %d KiB → %d KiB; files %d KiB",
		claims, took.Round(time.Millisecond), rows0, rowsWarm, warm, rows1, claimed, live0>>10, liveWarm>>10, live1>>10, files1>>10)
	if rowsWarm > maxRows || rows1 > maxRows {
		t.Errorf("KeyPackage rows %d after %d claims and %d after %d, want at most %d", rowsWarm, warm, rows1, claims, maxRows)
	}
	if claimed != users*16 {
		t.Errorf("%d claimed rows kept, want max_claimed × users = %d", claimed, users*16)
	}
	// The rows after warm claims are as many as ever; what the store grows by afterwards is
	// page churn, not data: allow 16 pages.
	if grew := live1 - liveWarm; grew > 16*4096 {
		t.Errorf("the store's pages in use grew by %d KiB during claims %d..%d, want at most 64 KiB", grew>>10, warm, claims)
	}
}
