package sendonce

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	mevent "maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/dendritetest"
)

// loginGW logs the user gw (password gatewaypassword1) in on hs: a new access token each time.
func loginGW(t *testing.T, hs *dendritetest.Server) *mautrix.Client {
	t.Helper()
	cli, err := mautrix.NewClient(hs.URL, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Login(t.Context(), &mautrix.ReqLogin{Type: mautrix.AuthTypePassword, StoreCredentials: true, Password: "gatewaypassword1",
		Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "gw"}}); err != nil {
		t.Fatal(err)
	}
	return cli
}

// TestRestartedSenderFindsItsSend: a gateway killed while sending logs in again (a new access
// token, for which Dendrite's transaction cache is empty); the first envelope of the room from
// before the restart is looked up and not sent again, later ones are sent.
func TestRestartedSenderFindsItsSend(t *testing.T) {
	ctx := t.Context()
	hs := dendritetest.Start(t)
	hs.CreateUser(t, "gw", "gatewaypassword1")
	first := loginGW(t, hs)
	resp, err := first.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat"})
	if err != nil {
		t.Fatal(err)
	}
	room := resp.RoomID
	sends := 0
	sender := func(cli *mautrix.Client, txn, text string) func(context.Context) (id.EventID, error) {
		return func(ctx context.Context) (id.EventID, error) {
			sends++
			r, err := cli.SendMessageEvent(ctx, room, mevent.EventMessage,
				Mark(&mevent.MessageEventContent{MsgType: mevent.MsgText, Body: text}, txn), mautrix.ReqSendEvent{TransactionID: txn})
			if err != nil {
				return "", err
			}
			return r.EventID, nil
		}
	}
	before := processStart.Add(-time.Minute) // an envelope from before this run

	var g1 Guard
	sent, err := g1.Send(ctx, first, room, first.UserID, "mimi.t1", time.Now(), nil, sender(first, "mimi.t1", "eins"))
	if err != nil || sends != 1 {
		t.Fatalf("first send: %s, %v, %d sends", sent, err, sends)
	}

	// The gateway restarts: a new login, a new Guard.
	second := loginGW(t, hs)
	if dup, err := sender(second, "mimi.t1", "eins")(ctx); err == nil && dup != sent {
		t.Logf("without the guard Dendrite stores the repeated send again for the new access token (%s, first %s)", dup, sent)
		if got, err := Find(ctx, second, room, second.UserID, "mimi.t1", nil); err != nil || got != sent {
			t.Errorf("Find with two copies of the send: %s, %v; want the first, %s", got, err, sent)
		}
		if _, err := second.RedactEvent(ctx, room, dup); err != nil {
			t.Fatal(err)
		}
	}
	sends = 0
	var g2 Guard
	again, err := g2.Send(ctx, second, room, second.UserID, "mimi.t1", before, nil, sender(second, "mimi.t1", "eins"))
	if err != nil || again != sent || sends != 0 {
		t.Errorf("the repeated send after the restart: %s, %v, %d sends; want %s and no send", again, err, sends, sent)
	}
	next, err := g2.Send(ctx, second, room, second.UserID, "mimi.t2", before, nil, sender(second, "mimi.t2", "zwei"))
	if err != nil || next == "" || next == sent || sends != 1 {
		t.Errorf("the room's next envelope: %s, %v, %d sends; want a new event", next, err, sends)
	}
	if got, err := Find(ctx, second, room, second.UserID, "mimi.t3", nil); err != nil || got != "" {
		t.Errorf("Find of a transaction never sent = %q, %v", got, err)
	}
}

// TestSentAgainInThisRun: an envelope handled again after its event was sent (its processed mark
// was not committed) gets the same event, without a second send.
func TestSentAgainInThisRun(t *testing.T) {
	var g Guard
	sends := 0
	send := func(context.Context) (id.EventID, error) { sends++; return "$first", nil }
	for range 2 {
		ev, err := g.Send(t.Context(), nil, "!room:example", "@gw:example", "mimi.t1", time.Now(), nil, send)
		if err != nil || ev != "$first" {
			t.Fatalf("Send = %s, %v", ev, err)
		}
	}
	if sends != 1 {
		t.Errorf("%d sends, want 1", sends)
	}
}

// TestFindWaitsForQueuedSend: the homeserver took a send but stores it only later, before the
// next event of the room (Dendrite killed with the event in its room queue stores it after its
// restart), and the answer was lost. A proxy in front of Dendrite keeps the send, answers it
// with a broken connection and hands it to Dendrite before the next send into the room. The
// guard's look after the failure finds the event (it looks after its barrier is listed, which
// Dendrite stores after the queued send) instead of sending it a second time.
func TestFindWaitsForQueuedSend(t *testing.T) {
	ctx := t.Context()
	hs := dendritetest.Start(t)
	hs.CreateUser(t, "gw", "gatewaypassword1")
	q := &queueingProxy{t: t, target: hs.URL, hold: "/send/m.room.message/mimi.late"}
	srv := httptest.NewServer(q)
	t.Cleanup(srv.Close)
	cli, err := mautrix.NewClient(srv.URL, "", "")
	if err != nil {
		t.Fatal(err)
	}
	cli.DefaultHTTPRetries = 0 // the lost answer reaches the guard, as when the homeserver is gone
	if _, err := cli.Login(ctx, &mautrix.ReqLogin{Type: mautrix.AuthTypePassword, StoreCredentials: true, Password: "gatewaypassword1",
		Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "gw"}}); err != nil {
		t.Fatal(err)
	}
	resp, err := cli.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat"})
	if err != nil {
		t.Fatal(err)
	}
	room := resp.RoomID
	sends := 0
	send := func(ctx context.Context) (id.EventID, error) {
		sends++
		r, err := cli.SendMessageEvent(ctx, room, mevent.EventMessage,
			Mark(&mevent.MessageEventContent{MsgType: mevent.MsgText, Body: "spät"}, "mimi.late"), mautrix.ReqSendEvent{TransactionID: "mimi.late"})
		if err != nil {
			return "", err
		}
		return r.EventID, nil
	}
	var g Guard
	if ev, err := g.Send(ctx, cli, room, cli.UserID, "mimi.late", time.Now(), nil, send); err == nil || !MayHaveArrived(err) {
		t.Fatalf("the first send: %s, %v; want an error that may have arrived", ev, err)
	}
	if !q.holding() {
		t.Fatal("the proxy holds no send")
	}
	ev, err := g.Send(ctx, cli, room, cli.UserID, "mimi.late", time.Now(), nil, send)
	if err != nil || sends != 1 {
		t.Fatalf("the send again: %s, %v, %d sends; want the queued event and no second send", ev, err, sends)
	}
	var marked []id.EventID
	msgs, err := cli.Messages(ctx, room, "", "", mautrix.DirectionBackward, nil, 50)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range msgs.Chunk {
		if e.Type == mevent.EventMessage && e.Content.Raw[Key] == "mimi.late" {
			marked = append(marked, e.ID)
		}
	}
	if len(marked) != 1 || marked[0] != ev {
		t.Fatalf("events of the transaction in the room: %v; want exactly the one the guard returned, %s", marked, ev)
	}
}

// queueingProxy forwards requests to target. The first PUT whose path ends in hold is kept and
// answered with a broken connection; it is forwarded before the next PUT /send, as a homeserver
// stores the queued events of a room in order.
type queueingProxy struct {
	t      testing.TB
	target string
	hold   string
	mu     sync.Mutex
	held   *http.Request
	body   []byte
	used   bool
}

func (q *queueingProxy) holding() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.held != nil
}

func (q *queueingProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/send/") {
		q.mu.Lock()
		if !q.used && strings.HasSuffix(r.URL.Path, q.hold) {
			q.used, q.held, q.body = true, r.Clone(context.Background()), body
			q.mu.Unlock()
			panic(http.ErrAbortHandler) // the connection breaks: no answer
		}
		held, heldBody := q.held, q.body
		q.held = nil
		q.mu.Unlock()
		if held != nil {
			if _, _, err := q.forward(held, heldBody); err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
		}
	}
	status, out, err := q.forward(r, body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(out)
}

// forward sends r with body to the target and returns its answer.
func (q *queueingProxy) forward(r *http.Request, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(context.Background(), r.Method, q.target+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header = r.Header.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, err
}
