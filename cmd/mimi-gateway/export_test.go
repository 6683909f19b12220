package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/bridges/idmap"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp"
	"github.com/mimi-gateway/mimi-gateway/config"
	"github.com/mimi-gateway/mimi-gateway/core/erasure"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
	"github.com/mimi-gateway/mimi-gateway/core/provider"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// TestExportAndEraseUser: export-user lists a user's records (history opened), and the erasure
// worker, with nothing left to leave, deletes every row naming the user and leaves the others'.
func TestExportAndEraseUser(t *testing.T) {
	dir := t.TempDir()
	env := []string{"MIMI_GATEWAY_DATA_DIR=" + dir, "MIMI_GATEWAY_DOMAIN=klinik-a.example"}
	cfg, err := config.Load(config.Options{Environ: env})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	st, err := store.Open(ctx, storeConfig(cfg), store.WithMigrations(idmap.Schema, protocol.Schema, provider.Schema, xmpp.Schema, erasure.Schema))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	alice, anna := "mimi://klinik-a.example/u/alice", "mimi://klinik-a.example/u/anna"
	room := "mimi://klinik-a.example/r/ward"
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := st.ExecContext(ctx, q, args...); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range []string{alice, anna} {
		exec(`INSERT INTO provider_users (user_uri, network, suite, sig_private, sig_public, created_at) VALUES (?, 'xmpp', 1, ?, ?, 1)`, u, []byte{1}, []byte{2})
		exec(`INSERT INTO provider_participants (room, user_uri, role) VALUES (?, ?, 2)`, room, u)
		local := strings.TrimPrefix(u, "mimi://klinik-a.example/u/")
		exec(`INSERT INTO idmap_messages (network, native_room, native_id, native_sender, room_uri, message_id, event_id, is_primary, created_at) VALUES ('xmpp', 'ward@rooms', ?, ?, ?, ?, ?, 1, 1)`,
			"id-"+local, local+"@klinik-a.example", room, []byte(local), "ev-"+local)
		exec(`INSERT INTO idmap_reactions (room_uri, target_id, reactor, emoji, message_id, event_id, created_at) VALUES (?, ?, ?, '+1', ?, ?, 1)`, room, []byte{9}, u, []byte(local), "r-"+local)
	}
	exec(`INSERT INTO xmpp_rooms (room_uri, muc_local, kind, created_at) VALUES (?, 'ward', 'muc', 1)`, room)
	exec(`INSERT INTO xmpp_occupants (room_uri, full_jid, bare_jid, nick, joined_at) VALUES (?, 'alice@klinik-a.example/phone', 'alice@klinik-a.example', 'Alice', 1)`, room)
	exec(`INSERT INTO xmpp_occupants (room_uri, full_jid, bare_jid, nick, joined_at) VALUES (?, 'anna@klinik-a.example/pc', 'anna@klinik-a.example', 'Anna', 1)`, room)
	for _, h := range [][2]string{{"s1", "Alice"}, {"s2", "Anna"}} {
		sealed, err := st.Seal(store.SealedColumn{Table: "xmpp_history", Column: "payload", Key: []string{"seq"}, Bind: []string{"room_uri", "stanza_id"}},
			[]byte("<message><body>hello from "+h[1]+"</body></message>"), room, h[0])
		if err != nil {
			t.Fatal(err)
		}
		exec(`INSERT INTO xmpp_history (room_uri, stanza_id, nick, payload, sent_at) VALUES (?, ?, ?, ?, 1)`, room, h[0], h[1], sealed)
	}

	code, out, stderr := runCLIEnv(t, env, "admin", "export-user", alice)
	if code != 0 {
		t.Fatalf("export-user: exit %d: %s", code, stderr)
	}
	var x userExport
	if err := json.Unmarshal([]byte(out), &x); err != nil {
		t.Fatalf("export is not JSON: %v\n%s", err, out)
	}
	if x.MLS == nil || len(x.Roles) != 1 || len(x.Messages) != 1 || len(x.Reactions) != 1 || len(x.History) != 1 ||
		!strings.Contains(x.History[0].Payload, "hello from Alice") || x.XMPP != "alice@klinik-a.example" {
		t.Fatalf("export:\n%s", out)
	}
	if strings.Contains(out, "Anna") || strings.Contains(out, anna) {
		t.Fatalf("the export shows another user's data:\n%s", out)
	}

	id, err := erasure.Request(ctx, st, event.UserURI(alice), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	w := newErasureWorker(cfg, st, nil, nil, providerLeaver{hooks: &runtimeHooks{}, st: st}, slog.New(slog.DiscardHandler))
	if err := w.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	s, err := erasure.Get(ctx, st, id)
	if err != nil || s.State != erasure.StateDone {
		t.Fatalf("erasure request: %+v, %v", s, err)
	}
	// No row of any table names Alice (her URI, JID or nick); Anna's rows are all there.
	rows, err := st.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table'`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, n)
	}
	rows.Close()
	annas := 0
	for _, table := range tables {
		r, err := st.QueryContext(ctx, `SELECT * FROM "`+table+`"`)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := r.Columns()
		for r.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := r.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			row := fmt.Sprint(vals...)
			for _, v := range vals {
				if b, ok := v.([]byte); ok {
					row += string(b)
				}
			}
			if strings.Contains(row, "alice") || strings.Contains(row, "Alice") {
				t.Errorf("table %s still names Alice: %v", table, row)
			}
			if strings.Contains(row, "anna") || strings.Contains(row, "Anna") {
				annas++
			}
		}
		r.Close()
	}
	if annas < 6 {
		t.Errorf("only %d rows name Anna: the erasure took others' rows too", annas)
	}
	t.Logf("erasure removed %v", s.Removed)
}
