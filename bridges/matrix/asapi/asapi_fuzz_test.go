package asapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"

	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

// fuzzMaxSize is the transaction size limit of the fuzz test: small, so that inputs reach it.
const fuzzMaxSize = 4096

// FuzzTransaction feeds arbitrary transaction IDs and bodies to PUT /transactions, on a real
// SQLite store. It never panics and never answers 5xx (bad input is the homeserver's error, not
// a failure to retry); a 200 has handed exactly the body's events to Config.Event, in order, and
// the same transaction again is acknowledged without handing any; any other answer is a Matrix
// error that handed no event and left the transaction to be delivered again.
func FuzzTransaction(f *testing.F) {
	for _, s := range []struct {
		txn  string
		body string
	}{
		{"1", `{"events":[{"type":"m.room.message","event_id":"$a","room_id":"!r:hs","sender":"@a:hs","content":{"body":"hi"}}]}`},
		{"2", `{"events":[{"type":"m.room.message"},[],"x",1,null]}`},
		{"3", `{"events":[],"ephemeral":[{"type":"m.typing"}]}`},
		{"4", `{"events":null}`},
		{"5", `null`},
		{"6", `[]`},
		{"7", `{"events":{}}`},
		{"8", `{"events":[1,2`},
		{"9", ``},
		{"bad\xffutf8", `{"events":[]}`},
		{"nul\x00", `{"events":[]}`},
		{"slash/and?query#frag", `{"events":[]}`},
		{string(bytes.Repeat([]byte("t"), 256)), `{"events":[]}`},
		{"big", `{"events":["` + string(bytes.Repeat([]byte("x"), fuzzMaxSize)) + `"]}`},
	} {
		f.Add(s.txn, []byte(s.body))
	}
	st := storetest.Open(f, storetest.SQLiteConfig(f))
	var handled [][]byte
	h := Handler(Config{
		Token: "hs-token", MaxTransactionSize: fuzzMaxSize, Store: st, Scope: "fuzz-txn",
		Log: slog.New(slog.DiscardHandler),
		Event: func(_ context.Context, raw json.RawMessage) error {
			handled = append(handled, append([]byte(nil), raw...))
			return nil
		},
		Ghost: func(context.Context, id.UserID) (bool, error) { return false, nil },
	})
	var n atomic.Int64
	f.Fuzz(func(t *testing.T, txn string, body []byte) {
		// A transaction ID of this run only: the store is shared by the runs.
		txn = fmt.Sprintf("%d.%s", n.Add(1), txn)
		put := func() *httptest.ResponseRecorder {
			handled = nil
			req := httptest.NewRequest(http.MethodPut, "/_matrix/app/v1/transactions/"+url.PathEscape(txn), bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer hs-token")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			return w
		}
		w := put()
		if w.Code >= 500 {
			t.Fatalf("transaction %q: %d %s", txn, w.Code, w.Body)
		}
		if w.Code != http.StatusOK {
			var e struct {
				Code string `json:"errcode"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Code == "" {
				t.Fatalf("transaction %q: %d without a Matrix error: %q", txn, w.Code, w.Body)
			}
			if len(handled) != 0 {
				t.Fatalf("transaction %q refused (%d) after handing %d events", txn, w.Code, len(handled))
			}
			if done, err := st.IsProcessed(context.Background(), "fuzz-txn", txn); err == nil && done {
				t.Fatalf("transaction %q refused (%d) but recorded as processed", txn, w.Code)
			}
			return
		}
		var want struct {
			Events []json.RawMessage `json:"events"`
		}
		if err := json.NewDecoder(io.LimitReader(bytes.NewReader(body), fuzzMaxSize)).Decode(&want); err != nil {
			t.Fatalf("transaction %q acknowledged, its body does not decode: %v", txn, err)
		}
		if len(handled) != len(want.Events) {
			t.Fatalf("transaction %q: %d events handed, the body has %d", txn, len(handled), len(want.Events))
		}
		for i := range handled {
			if !bytes.Equal(handled[i], want.Events[i]) {
				t.Fatalf("transaction %q: event %d handed as %q, the body has %q", txn, i, handled[i], want.Events[i])
			}
		}
		if w := put(); w.Code != http.StatusOK || len(handled) != 0 {
			t.Fatalf("transaction %q again: %d, %d events handed again", txn, w.Code, len(handled))
		}
	})
}
