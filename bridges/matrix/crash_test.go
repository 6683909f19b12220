package matrix

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"maunium.net/go/mautrix/crypto/olm"
	mevent "maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/mxevent"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// TestAppserviceCrashBeforeAck kills the gateway after it published a transaction's events but
// before it answered the homeserver; a new gateway on the same store and bus data gets the
// redelivered transaction from Dendrite, and the event reaches the bus exactly once. Then it feeds
// malformed events to the transaction endpoint and checks they are skipped without stopping the
// adapter.
func TestAppserviceCrashBeforeAck(t *testing.T) {
	e := startAppserviceEnv(t)
	alice := newE2EEClient(t, e.hs, "alice", "alicepassword123")
	ghost := e.adapter.ghosts.UserID(bobURI)
	room := alice.createEncryptedRoom(t, ghost)
	alice.waitJoined(t, room, ghost)
	alice.waitJoined(t, room, e.adapter.botUserID())

	var crashed atomic.Value // txnID of the transaction that "crashed"
	e.adapter.beforeAck = func(w http.ResponseWriter, txnID string, events []json.RawMessage) bool {
		if crashed.Load() != nil || !slices.ContainsFunc(events, func(r json.RawMessage) bool {
			return bytes.Contains(r, []byte(`"m.room.encrypted"`)) && bytes.Contains(r, []byte(`"@alice:localhost"`))
		}) {
			return false
		}
		crashed.Store(txnID)
		// The process dies: the connection closes without an answer.
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			_ = conn.Close()
		}
		return true
	}
	evID := alice.send(t, room, &mevent.MessageEventContent{MsgType: mevent.MsgText, Body: "survives a crash"})
	env := e.out.wait(t, "the message published before the crash", func(env *event.Envelope) bool {
		return env.Origin.Event == event.NativeEventID(evID)
	})
	waitFor(t, 10*time.Second, "the simulated crash", func() bool { return crashed.Load() != nil })

	// Restart: a new adapter on the same store and bus.
	e.stopAdapter(t)
	e.startAdapter(t)
	waitFor(t, 150*time.Second, "Dendrite redelivering (backoff 2s, 4s, 8s, ... 64s) the transaction to the new gateway", func() bool {
		return testutil.ToFloat64(e.adapter.metrics.transactions.WithLabelValues("ok")) >= 1 &&
			testutil.ToFloat64(e.adapter.metrics.inbound.WithLabelValues("duplicate")) >= 1
	})
	// Later traffic flows, and the crashed event is still on the bus once.
	ev2 := alice.send(t, room, &mevent.MessageEventContent{MsgType: mevent.MsgText, Body: "after the restart"})
	e.out.wait(t, "a message after the restart", func(env *event.Envelope) bool { return env.Origin.Event == event.NativeEventID(ev2) })
	if n := e.out.count(env.ID); n != 1 {
		t.Errorf("envelope %s delivered %d times on the bus, want 1", env.ID, n)
	}
	// The bus can hand the envelope to e.out before the adapter's publish call has returned and
	// counted it, so wait for the count to settle rather than reading it once.
	waitFor(t, 10*time.Second, "the new adapter counting its publish", func() bool {
		return testutil.ToFloat64(e.adapter.metrics.inbound.WithLabelValues("published")) >= 1
	})
	if n := testutil.ToFloat64(e.adapter.metrics.inbound.WithLabelValues("published")); n != 1 {
		t.Errorf("new adapter published %v events, want 1 (only the message after the restart)", n)
	}

	t.Run("malformed events are skipped", func(t *testing.T) {
		fake := id.RoomID("!malformed:localhost")
		uri, _ := RoomURIOf("localhost", fake)
		if err := e.adapter.portals.Put(t.Context(), uri, fake, false); err != nil {
			t.Fatal(err)
		}
		huge := strings.Repeat("x", mxevent.MaxEventSize)
		events := []string{
			`{"type":"m.room.message","room_id":"!malformed:localhost","sender":"@carol:localhost","content":{"msgtype":"m.text","body":"no event id"}}`,
			`{"type":"m.room.message","event_id":"$a","room_id":"!malformed:localhost","sender":"@carol:localhost","content":{"msgtype":"m.text","body":42}}`,
			`{"type":"m.room.message","event_id":"$b","room_id":"!malformed:localhost","sender":"@carol:localhost","content":"not an object"}`,
			`{"type":"m.room.message","event_id":"$c","room_id":"!malformed:localhost","sender":"carol","content":{"msgtype":"m.text","body":"bad sender"}}`,
			`{"type":"m.room.message","event_id":"$d","room_id":"!malformed:localhost","sender":"@carol:localhost","content":{"msgtype":"m.text","body":"` + huge + `"}}`,
			`{"type":"m.reaction","event_id":"$e","room_id":"!malformed:localhost","sender":"@carol:localhost","content":{"m.relates_to":{"rel_type":"m.annotation"}}}`,
			`{"type":"m.room.message","event_id":"$f","room_id":"!malformed:localhost","sender":"@carol:localhost","content":{"msgtype":"m.image","body":"x.png","url":"not-mxc"}}`,
			`[1,2,3]`,
			`{"type":"m.room.message","event_id":"$ok","room_id":"!malformed:localhost","sender":"@carol:localhost","origin_server_ts":1700000000000,"content":{"msgtype":"m.text","body":"the good one"}}`,
		}
		body := `{"events":[` + strings.Join(events, ",") + `]}`
		malformedBefore := testutil.ToFloat64(e.adapter.metrics.inbound.WithLabelValues("malformed"))
		resp := putTransaction(t, e, "malformed-1", body)
		if resp != http.StatusOK {
			t.Fatalf("transaction with malformed events answered %d, want 200", resp)
		}
		e.out.wait(t, "the valid event after malformed ones", func(env *event.Envelope) bool { return env.Origin.Event == "$ok" })
		if got := testutil.ToFloat64(e.adapter.metrics.inbound.WithLabelValues("malformed")) - malformedBefore; got != float64(len(events)-1) {
			t.Errorf("%v events counted as malformed, want %d", got, len(events)-1)
		}
		// An encrypted event that cannot be decrypted (corrupt ciphertext) is logged, counted and
		// skipped, and the transaction is still acknowledged.
		enc := `{"events":[{"type":"m.room.encrypted","event_id":"$nokey","room_id":"!malformed:localhost","sender":"@carol:localhost",` +
			`"content":{"algorithm":"m.megolm.v1.aes-sha2","ciphertext":"AwgAEhA","session_id":"unknownsession","sender_key":"k","device_id":"DEV"}}]}`
		if code := putTransaction(t, e, "encrypted-1", enc); code != http.StatusOK {
			t.Fatalf("transaction with an undecryptable event answered %d", code)
		}
		var parked int
		if err := e.st.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM matrix_pending WHERE event_id = '$nokey'`).Scan(&parked); err != nil || parked != 0 {
			t.Errorf("parked rows = %d (%v), want 0: a corrupt event never decrypts", parked, err)
		}
		if n := testutil.ToFloat64(e.adapter.metrics.DecryptErrors.WithLabelValues("other")); n != 1 {
			t.Errorf("decryption failures counted = %v, want 1", n)
		}
		// A well-formed Megolm event whose session the gateway never received waits decrypt_wait,
		// is parked in the store (nothing lost when the transaction is acknowledged) and counted.
		ogs, err := olm.NewOutboundGroupSession()
		if err != nil {
			t.Fatal(err)
		}
		ct, err := ogs.Encrypt([]byte(`{"type":"m.room.message","content":{"msgtype":"m.text","body":"late key"},"room_id":"!malformed:localhost"}`))
		if err != nil {
			t.Fatal(err)
		}
		nokey := `{"events":[{"type":"m.room.encrypted","event_id":"$latekey","room_id":"!malformed:localhost","sender":"@carol:localhost",` +
			`"content":{"algorithm":"m.megolm.v1.aes-sha2","ciphertext":"` + string(ct) + `","session_id":"` + string(ogs.ID()) +
			`","sender_key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","device_id":"DEV"}}]}`
		if code := putTransaction(t, e, "encrypted-2", nokey); code != http.StatusOK {
			t.Fatalf("transaction with an event without its key answered %d", code)
		}
		if err := e.st.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM matrix_pending WHERE event_id = '$latekey'`).Scan(&parked); err != nil || parked != 1 {
			t.Errorf("parked rows = %d (%v), want 1", parked, err)
		}
		if n := testutil.ToFloat64(e.adapter.metrics.DecryptErrors.WithLabelValues("no_session")); n != 1 {
			t.Errorf("missing-key failures counted = %v, want 1", n)
		}
		// Transport-level errors: bad token, not JSON, too many bytes.
		if code := putTransactionToken(t, e, "bad-token", "malformed-2", body); code != http.StatusForbidden {
			t.Errorf("wrong hs_token answered %d, want 403", code)
		}
		if code := putTransaction(t, e, "malformed-3", `{"events":`); code != http.StatusBadRequest {
			t.Errorf("truncated JSON answered %d, want 400", code)
		}
		// The adapter keeps working.
		ev3 := alice.send(t, room, &mevent.MessageEventContent{MsgType: mevent.MsgText, Body: "still alive"})
		e.out.wait(t, "a message after malformed input", func(env *event.Envelope) bool { return env.Origin.Event == event.NativeEventID(ev3) })
	})
}

func putTransaction(t *testing.T, e *asEnv, txnID, body string) int {
	return putTransactionToken(t, e, e.adapter.reg.ServerToken, txnID, body)
}

func putTransactionToken(t *testing.T, e *asEnv, token, txnID, body string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPut,
		fmt.Sprintf("http://%s/_matrix/app/v1/transactions/%s", e.cfg.Appservice.Listen, txnID), bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
