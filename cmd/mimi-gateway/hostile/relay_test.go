package hostile

import (
	"bytes"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/cmd/mimi-gateway/internal/gatewaytest"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
)

// TestHostileRelay: three providers. alice (hub.example) has a room with eve (evil.example, a
// regular member); good.example lets only accepted requesters reach its users
// (mimi.reachability: consent). eve claims good.example's users through the room's hub, which
// relays claims of its members (protocol-06 §5.2):
//
//   - EnumerationUniformAnswers: a claim for ghost before ghost exists and after ghost has an
//     MLS client get byte-identical answers through the hub too;
//   - ForeignRequester: a claim whose requestingUser is not a user of evil.example (alice of
//     the hub, bob of good.example) is refused 403 by the hub and never reaches good.example;
//   - KeyMaterialRateLimit: 300 claims for bob through the hub get 429 with Retry-After after
//     the limits (good.example's bucket for bob, passed on by the hub with its Retry-After, and
//     the hub's own buckets for bob and for evil.example); good.example hands out none of
//     bob's KeyPackages. good.example allows 3 claims for a user at once (target_burst), fewer
//     than the hub (10), so that its 429 is what the hub passes on for some claims.
func TestHostileRelay(t *testing.T) {
	w := newWorld(t, map[string]string{"hub.example": "", "good.example": "mimi: {reachability: consent, limits: {key_material: {target_burst: 3}}}\n"})
	hub, good, ev := w.gws["hub.example"], w.gws["good.example"], w.evil
	alice := event.NewUserURI("hub.example", "alice")
	bob, ghost := event.NewUserURI("good.example", "bob"), event.NewUserURI("good.example", "ghost")
	good.appear(t, bob)
	room := randomRoom("hub.example")
	hub.publishOut(t, &event.Envelope{Kind: event.KindMembership, Room: room, Sender: alice,
		Membership: &event.Membership{Action: event.MembershipInvite, Target: ev.eve}})
	ev.joinFromWelcome(t, room)
	c := ev.httpClient(hub.Gateway)
	claim := func(requester, target event.UserURI) (int, string, []byte) {
		t.Helper()
		body, err := ev.claimRequest(t, requester, target, room).Encode()
		if err != nil {
			t.Fatal(err)
		}
		return ev.rawPost(t, c, hub.Gateway, protocol.EndpointKeyMaterial, protocol.IdentifierURI(target), bytes.NewReader(body), int64(len(body)))
	}

	t.Run("EnumerationUniformAnswers", func(t *testing.T) {
		s1, _, before := claim(ev.eve, ghost)
		good.appear(t, ghost)
		s2, _, after := claim(ev.eve, ghost)
		if s1 != http.StatusOK || s2 != http.StatusOK || !bytes.Equal(before, after) {
			t.Fatalf("through the hub: unknown user: %d %x; user without consent: %d %x", s1, before, s2, after)
		}
		resp, err := protocol.DecodeKeyMaterialResponse(after)
		if err != nil || resp.UserStatus != protocol.KeyMaterialUserNoConsent || len(resp.Clients) != 0 {
			t.Fatalf("answer %+v (%v), want noConsent without clients", resp, err)
		}
		if n := good.metric(t, `mimi_gateway_provider_refusals_total{endpoint="keyMaterial",reason="no_consent"}`); n != 2 {
			t.Errorf("good.example counted %v claims without consent, want 2 (both reached it)", n)
		}
	})

	t.Run("ForeignRequester", func(t *testing.T) {
		for _, requester := range []event.UserURI{alice, bob} {
			if status, _, b := claim(requester, bob); status != http.StatusForbidden {
				t.Fatalf("claim through the hub with requestingUser %s: %d %s, want 403", requester, status, b)
			}
		}
		if n := hub.metric(t, `mimi_gateway_provider_refusals_total{endpoint="keyMaterial",reason="relay_refused"}`); n != 2 {
			t.Errorf("hub counted %v refused relays, want 2", n)
		}
		// (a request is counted just after its answer is written)
		gatewaytest.Eventually(t, time.Minute, "good.example's count of answered claims", func() error {
			if n := good.metric(t, `mimi_gateway_protocol_server_requests_total{code="200",endpoint="keyMaterial"}`); n != 2 {
				return fmt.Errorf("good.example got %v claims, want only the 2 of the enumeration", n)
			}
			return nil
		})
	})

	t.Run("KeyMaterialRateLimit", func(t *testing.T) {
		const claims = 300
		var (
			mu                                sync.Mutex
			answered, limited, other, noRetry int
		)
		spread(0, claims, 8, func(int) {
			status, retry, b := claim(ev.eve, bob)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case status == http.StatusTooManyRequests:
				limited++
				if retry == "" {
					noRetry++
				}
			case status == http.StatusOK:
				if r, err := protocol.DecodeKeyMaterialResponse(b); err == nil && r.UserStatus == protocol.KeyMaterialUserNoConsent {
					answered++
				} else {
					other++
				}
			default:
				other++
			}
		})
		goodLimited := good.metric(t, `mimi_gateway_protocol_server_refusals_total{endpoint="keyMaterial",reason="rate_target"}`)
		passedOn := hub.metric(t, `mimi_gateway_provider_refusals_total{endpoint="keyMaterial",reason="relay_limited"}`)
		hubLimited := hub.metric(t, `mimi_gateway_protocol_server_refusals_total{endpoint="keyMaterial",reason="rate_target"}`) +
			hub.metric(t, `mimi_gateway_protocol_server_refusals_total{endpoint="keyMaterial",reason="rate_partner"}`)
		t.Logf("%d claims for bob through the hub: %d answered noConsent, %d refused with 429 (%v by good.example's bucket for bob and passed on by the hub (%v), %v by the hub's buckets)",
			claims, answered, limited, goodLimited, passedOn, hubLimited)
		if other > 0 || noRetry > 0 || answered+limited != claims {
			t.Fatalf("other answers %d, 429 without Retry-After %d", other, noRetry)
		}
		// good.example's bucket for bob allows 3 at once and one a minute; the hub's 10 and
		// one a minute: at most 10 (+1) claims for bob reach good.example, 3 (+1) its handler.
		if answered == 0 || answered > 4 || goodLimited == 0 || passedOn != goodLimited || int(hubLimited+goodLimited) != limited {
			t.Errorf("%d claims answered; refused by good.example %v (passed on by the hub %v), by the hub %v, %d in all", answered, goodLimited, passedOn, hubLimited, limited)
		}
		gatewaytest.Eventually(t, time.Minute, "good.example's count of answered claims", func() error {
			if got := good.metric(t, `mimi_gateway_protocol_server_requests_total{code="200",endpoint="keyMaterial"}`) - 2; int(got) != answered {
				return fmt.Errorf("good.example answered %v claims for bob, evil got %d answers", got, answered)
			}
			return nil
		})
		if n := good.count(t, `SELECT COUNT(*) FROM provider_keypackages WHERE user_uri = ? AND claimed_at <> 0`, string(bob)); n != 0 {
			t.Errorf("%d of bob's KeyPackages were handed out", n)
		}
	})
}
