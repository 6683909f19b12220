package xhistory_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/xhistory"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

// FuzzStoredPayload replaces a history entry's stored (sealed) payload with arbitrary bytes and
// reads it back the two ways the adapter does (Payload for a reply quote, Recent for history on
// join): nothing panics, and only the bytes that were sealed for this room and stanza ID decode,
// to the text that was added.
func FuzzStoredPayload(f *testing.F) {
	st := storetest.Open(f, storetest.SQLiteConfig(f), store.WithMigrations(xmpp.Schema))
	ctx := f.Context()
	room := event.NewRoomURI("hs.example", "r1")
	if _, err := st.ExecContext(ctx, `INSERT INTO xmpp_rooms (room_uri, muc_local, kind, created_at) VALUES (?, 'r1', 'muc', 0)`, string(room)); err != nil {
		f.Fatal(err)
	}
	h := xhistory.New(st)
	const text = "<message><body>hi</body></message>"
	if err := h.Add(ctx, room, xhistory.Entry{StanzaID: "s1", Nick: "n", Payload: text, SentAt: time.UnixMilli(1)}, 10); err != nil {
		f.Fatal(err)
	}
	var sealed []byte
	if err := st.QueryRowContext(ctx, `SELECT payload FROM xmpp_history WHERE stanza_id = 's1'`).Scan(&sealed); err != nil {
		f.Fatal(err)
	}
	// The same text sealed for another stanza ID must not open for s1.
	other, err := st.Seal(xhistory.Sealed, []byte(text), string(room), "s2")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sealed)
	f.Add(other)
	f.Add([]byte{})
	f.Add(sealed[:len(sealed)-1])
	f.Add(append(bytes.Clone(sealed), 0))
	f.Fuzz(func(t *testing.T, stored []byte) {
		if _, err := st.ExecContext(ctx, `UPDATE xmpp_history SET payload = ? WHERE stanza_id = 's1'`, stored); err != nil {
			t.Fatal(err)
		}
		e, err := h.Payload(ctx, room, "s1")
		recent, rerr := h.Recent(ctx, room, 5, time.UnixMilli(0))
		if bytes.Equal(stored, sealed) {
			if err != nil || e.Payload != text || rerr != nil || len(recent) != 1 || recent[0].Payload != text {
				t.Fatalf("the sealed payload does not read back: %q, %v; %v, %v", e.Payload, err, recent, rerr)
			}
			return
		}
		if err == nil || rerr == nil {
			t.Fatalf("altered payload %x read back: %q, %v; %v, %v", stored, e.Payload, err, recent, rerr)
		}
	})
}
