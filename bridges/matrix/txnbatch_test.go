package matrix

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mimi-gateway/mimi-gateway/core/content"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// TestAppserviceTransactionBatch puts one transaction of 14 events into a portal: 12 plain
// messages, with a reply to the fourth and a reaction to the sixth among them. The reply and the
// reaction find the messages they refer to although those were in the same batch. The gateway
// "crashes" after everything is durable but before it answers (the connection closes); a new
// gateway gets the same transaction again and publishes nothing twice: each envelope is on the
// bus once, in the transaction's order.
func TestAppserviceTransactionBatch(t *testing.T) {
	e := startAppserviceEnv(t)
	room := "!batch:localhost"
	uri, _ := RoomURIOf("localhost", "!batch:localhost")
	if err := e.adapter.portals.Put(t.Context(), uri, "!batch:localhost", false); err != nil {
		t.Fatal(err)
	}
	msg := func(i int, extra string) string {
		return fmt.Sprintf(`{"type":"m.room.message","event_id":"$m%d","room_id":"%s","sender":"@carol:localhost","origin_server_ts":1700000000000,`+
			`"content":{"msgtype":"m.text","body":"message %d"%s}}`, i, room, i, extra)
	}
	var events, order []string
	for i := range 12 {
		events = append(events, msg(i, ""))
		order = append(order, fmt.Sprint("$m", i))
		if i == 6 {
			events = append(events, msg(100, `,"m.relates_to":{"m.in_reply_to":{"event_id":"$m3"}}`))
			events = append(events, fmt.Sprintf(`{"type":"m.reaction","event_id":"$r","room_id":"%s","sender":"@carol:localhost","origin_server_ts":1700000000000,`+
				`"content":{"m.relates_to":{"rel_type":"m.annotation","event_id":"$m5","key":"👍"}}}`, room))
			order = append(order, "$m100", "$r")
		}
	}
	body := `{"events":[` + strings.Join(events, ",") + `]}`

	var crashed atomic.Bool
	e.adapter.beforeAck = func(w http.ResponseWriter, _ string, _ []json.RawMessage) bool {
		if crashed.Swap(true) {
			return false
		}
		if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
			_ = conn.Close()
		}
		return true
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPut,
		fmt.Sprintf("http://%s/_matrix/app/v1/transactions/batch-1", e.cfg.Appservice.Listen), bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.adapter.reg.ServerToken)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("the crashed transaction was answered %d", resp.StatusCode)
	}
	e.out.wait(t, "the last message", func(env *event.Envelope) bool { return env.Origin.Event == "$m11" })

	e.stopAdapter(t)
	e.startAdapter(t)
	if code := putTransaction(t, e, "batch-1", body); code != http.StatusOK {
		t.Fatalf("the transaction again answered %d", code)
	}
	if n := testutil.ToFloat64(e.adapter.metrics.inbound.WithLabelValues("published")); n != 0 {
		t.Errorf("the new gateway published %v events of the transaction again, want 0", n)
	}
	// A later event of the room: once it is on the bus, a duplicate of any earlier one would be.
	if code := putTransaction(t, e, "batch-2", `{"events":[`+msg(200, "")+`]}`); code != http.StatusOK {
		t.Fatalf("a later transaction answered %d", code)
	}
	e.out.wait(t, "the later message", func(env *event.Envelope) bool { return env.Origin.Event == "$m200" })
	byEvent := map[event.NativeEventID]*event.Envelope{}
	var got []string
	for _, env := range e.out.all() {
		if env.Room == uri {
			got = append(got, string(env.Origin.Event))
			byEvent[env.Origin.Event] = env
		}
	}
	if want := append(order, "$m200"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("the portal's envelopes on the bus: %v, want each once in order: %v", got, want)
	}
	for _, c := range []struct{ ev, target event.NativeEventID }{{"$m100", "$m3"}, {"$r", "$m5"}} {
		m, err := content.Decode(byEvent[c.ev].Content)
		if err != nil {
			t.Fatal(err)
		}
		if m.InReplyTo == nil || !bytes.Equal(m.InReplyTo[:], byEvent[c.target].MessageID) {
			t.Errorf("%s refers to %v, want %s's message %x", c.ev, m.InReplyTo, c.target, byEvent[c.target].MessageID)
		}
	}
}
