package matrix

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	mevent "maunium.net/go/mautrix/event"

	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/sendonce"
	"github.com/mimi-gateway/mimi-gateway/core/content"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// TestClientModeSendAnswerLost: Dendrite stores the functional account's event and is killed
// before its answer reaches the gateway (a proxy in front of it forwards the PUT, kills Dendrite
// and breaks the connection). Dendrite comes back without its in-memory transaction cache; the
// gateway handles the envelope again and must not send the message a second time: alice sees
// it once.
func TestClientModeSendAnswerLost(t *testing.T) {
	ctx := t.Context()
	var drop atomic.Bool
	dropped := make(chan struct{}, 1)
	var hsKill func()
	hs, a, b, out := startClientEnv(t, func(c *Config) {
		target, err := url.Parse(c.HomeserverURL)
		if err != nil {
			t.Fatal(err)
		}
		rp := httputil.NewSingleHostReverseProxy(target)
		proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/send/") && drop.CompareAndSwap(true, false) {
				rec := httptest.NewRecorder()
				rp.ServeHTTP(rec, r) // Dendrite stores the event and answers …
				hsKill()             // … and dies before the answer is on its way
				if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
					_ = conn.Close()
				}
				dropped <- struct{}{}
				return
			}
			rp.ServeHTTP(w, r)
		}))
		t.Cleanup(proxy.Close)
		c.HomeserverURL = proxy.URL
	})
	hsKill = hs.Kill

	alice := newE2EEClient(t, hs, "alice", "alicepassword123")
	room := alice.createEncryptedRoom(t, a.client.UserID)
	alice.waitJoined(t, room, a.client.UserID)
	roomURI, _ := RoomURIOf("localhost", room)
	out.wait(t, "alice's join (the room is a portal)", func(env *event.Envelope) bool {
		return env.Kind == event.KindMembership && env.Room == roomURI && env.Membership.Action == event.MembershipJoin
	})

	relayed := func(n int, text string) {
		t.Helper()
		env := mimiMessage(t, event.KindMessage, roomURI, bobURI, n, func(m *content.Message) { m.Body = textBody(content.TypePlain, text) })
		if err := b.PublishIn(ctx, event.NetworkMatrix, env); err != nil {
			t.Fatal(err)
		}
	}
	relayedText := func(text string) func(*mevent.Event) bool {
		return func(ev *mevent.Event) bool {
			m, ok := ev.Content.Parsed.(*mevent.MessageEventContent)
			return ok && ev.RoomID == room && ev.Sender == a.client.UserID && strings.HasSuffix(m.Body, ": "+text)
		}
	}

	drop.Store(true)
	relayed(1, "vor dem Absturz")
	select {
	case <-dropped:
	case <-time.After(60 * time.Second):
		t.Fatal("the gateway sent nothing through the proxy")
	}
	hs.Restart(t)
	relayed(2, "danach")
	alice.waitEvent(t, "the message after the restart", relayedText("danach"))
	if n := len(alice.Events(relayedText("vor dem Absturz"))); n != 1 {
		t.Errorf("alice saw the message whose answer was lost %d times, want once", n)
	}
}

func TestMayHaveArrived(t *testing.T) {
	answered := func(code int) error {
		return fmt.Errorf("matrix: send: %w", mautrix.HTTPError{Response: &http.Response{StatusCode: code}, Message: "answer"})
	}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"no error", nil, false},
		{"cancelled by us", context.Canceled, false},
		{"refused by the homeserver", answered(http.StatusForbidden), false},
		{"rate limited", answered(http.StatusTooManyRequests), false},
		{"server error after it may have stored", answered(http.StatusInternalServerError), true},
		{"proxy time-out", answered(http.StatusGatewayTimeout), true},
		{"connection broke", mautrix.HTTPError{Message: "request error", WrappedError: &url.Error{Op: "Put", URL: "http://hs", Err: errors.New("EOF")}}, true},
		{"connection refused", mautrix.HTTPError{Message: "request error", WrappedError: &url.Error{Op: "Put", URL: "http://hs", Err: syscall.ECONNREFUSED}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := sendonce.MayHaveArrived(tc.err); got != tc.want {
				t.Errorf("MayHaveArrived(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}
