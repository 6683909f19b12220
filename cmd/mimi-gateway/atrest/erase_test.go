package atrest

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"maunium.net/go/mautrix"
	mevent "maunium.net/go/mautrix/event"

	"github.com/mimi-gateway/mimi-gateway/bridges/matrix"
	gt "github.com/mimi-gateway/mimi-gateway/cmd/mimi-gateway/internal/gatewaytest"
	"github.com/mimi-gateway/mimi-gateway/core/bus"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/protocol/protocoltest"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// TestEraseUser: Alice and Anna of Klinik A (Matrix) share a group with Bob of Amt B (XMPP).
// `admin erase-user` erases Alice at Klinik A's gateway while it runs; Anna and Bob keep
// talking in the group, and afterwards no file of Klinik A's data dir and no value of its store
// (sealed values opened) names Alice.
func TestEraseUser(t *testing.T) {
	t.Parallel()
	ca := protocoltest.NewCA(t)
	ka := gt.NewMatrixOrg(t, ca, gt.MatrixOptions{Domain: "klinik-a.example", Mode: gt.ModeAppservice})
	ab := gt.NewXMPPOrg(t, ca, gt.XMPPOptions{Domain: "amt-b.example", Users: map[string]string{"bob": "password-bob"},
		Layers: []string{"bridges:\n  xmpp:\n    known_users: [bob]\n"}})
	gt.Connect(ka.Gateway, ab.Gateway)
	for _, g := range []*gt.Gateway{ka.Gateway, ab.Gateway} {
		g.Start(t)
	}
	for _, g := range []*gt.Gateway{ka.Gateway, ab.Gateway} {
		g.WaitReady(t, wait)
	}
	alice, anna := ka.User(t, "alice"), ka.User(t, "anna")
	bob := ab.Client(t, "bob", "phone")
	aliceURI := event.NewUserURI("klinik-a.example", "alice")
	bobURI := event.NewUserURI("amt-b.example", "bob")
	ghost := matrix.Ghosts{Prefix: "mimi_", Server: "klinik-a.example"}.UserID(bobURI)

	room := alice.CreateRoom(t, "Station 7", true, false, ghost)
	alice.WaitJoined(t, wait, room, ghost)
	alice.WaitJoined(t, wait, room, ka.Bot)
	alice.SendText(t, room, "from alice before the erasure")
	to, typ := acceptChat(t, bob, ab.Puppet("alice", "klinik-a.example"))
	bob.Expect(t, wait, "Alice's message", func(s *gt.Stanza) bool { return s.Body() == "from alice before the erasure" })
	if _, err := alice.InviteUser(context.Background(), room, &mautrix.ReqInviteUser{UserID: ka.UserID("anna")}); err != nil {
		t.Fatal(err)
	}
	anna.WaitInvite(t, wait, func(e *mevent.Event) bool { return e.RoomID == room })
	anna.Join(t, room)
	alice.WaitJoined(t, wait, room, ka.UserID("anna"))
	anna.SendText(t, room, "from anna before the erasure")
	bob.Expect(t, wait, "Anna's message", func(s *gt.Stanza) bool { return s.Body() == "from anna before the erasure" })

	out := ka.Gateway.Command(t, "admin", "erase-user", string(aliceURI), "--wait", "100s")
	if !strings.Contains(out, "done: removed") {
		t.Fatalf("erase-user: %s", out)
	}
	t.Logf("erase-user: %s", strings.TrimSpace(out))

	// The room continues for the others, both ways.
	anna.SendText(t, room, "from anna after the erasure")
	bob.Expect(t, wait, "Anna's message after the erasure", func(s *gt.Stanza) bool { return s.Body() == "from anna after the erasure" })
	bob.Send(t, fmt.Sprintf(`<message to='%s' type='%s' id='%s'><body>from bob after the erasure</body></message>`, gt.XMLEscape(to), typ, bob.NewID("m")))
	anna.WaitEvent(t, wait, "Bob's message after the erasure", func(e *mevent.Event) bool {
		return e.RoomID == room && gt.Body(e) == "from bob after the erasure"
	})

	ka.Gateway.Stop()
	needles := [][]byte{[]byte(aliceURI), []byte(ka.UserID("alice"))}
	err := filepath.WalkDir(ka.Gateway.DataDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, n := range needles {
			if bytes.Contains(b, n) {
				t.Errorf("%s still names %s%s", p, n, sqliteTablesNaming(p, n))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	searchSealed(t, store.Config{Path: filepath.Join(ka.Gateway.DataDir, "mimi-gateway.db"), KeyFile: filepath.Join(ka.Gateway.DataDir, "store.key")}, needles)
	searchStreams(t, ka.Gateway.DataDir, needles)
}

// searchStreams opens the gateway's embedded JetStream store (decrypted by the server with the
// gateway's key) and fails the test for each message of any stream whose headers or data name a
// needle. The file search cannot see into the streams: they are encrypted at rest.
func searchStreams(t *testing.T, dataDir string, needles [][]byte) {
	t.Helper()
	ctx := context.Background()
	b, err := bus.Open(ctx, bus.Config{Mode: bus.ModeEmbedded, Embedded: bus.EmbeddedConfig{
		StoreDir: filepath.Join(dataDir, "nats"), KeyFile: filepath.Join(dataDir, "nats.key")}}, nil)
	if err != nil {
		t.Fatalf("open the gateway's bus: %v", err)
	}
	defer b.Close(ctx)
	nc, err := nats.Connect("", nats.InProcessServer(b.Server()))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	streams, msgs := 0, 0
	for name := range js.StreamNames(ctx).Name() {
		streams++
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
			m, err := s.GetMsg(ctx, seq)
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				continue
			}
			if err != nil {
				t.Fatalf("%s #%d: %v", name, seq, err)
			}
			msgs++
			var hdr bytes.Buffer
			for k, vs := range m.Header {
				fmt.Fprintf(&hdr, "%s: %s\n", k, strings.Join(vs, ", "))
			}
			for _, n := range needles {
				if bytes.Contains(m.Data, n) || bytes.Contains(hdr.Bytes(), n) {
					t.Errorf("stream %s message %d still names %s", name, seq, n)
				}
			}
		}
	}
	if streams == 0 {
		t.Fatal("the gateway's bus has no stream: the search saw nothing")
	}
	t.Logf("searched %d messages in %d streams", msgs, streams)
}

// searchSealed opens every sealed value of the store and fails the test for each that names a
// needle.
func searchSealed(t *testing.T, cfg store.Config, needles [][]byte) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rows, err := st.QueryContext(ctx, `SELECT table_name, column_name, key_columns, bind_columns FROM store_sealed_columns`)
	if err != nil {
		t.Fatal(err)
	}
	var cols []store.SealedColumn
	for rows.Next() {
		var c store.SealedColumn
		var k, b string
		if err := rows.Scan(&c.Table, &c.Column, &k, &b); err != nil {
			t.Fatal(err)
		}
		c.Key, c.Bind = strings.Split(k, ","), strings.Split(b, ",")
		cols = append(cols, c)
	}
	rows.Close()
	opened := 0
	for _, c := range cols {
		q := `SELECT ` + strings.Join(c.Bind, ", ") + `, ` + c.Column + ` FROM ` + c.Table + ` WHERE ` + c.Column + ` IS NOT NULL`
		r, err := st.QueryContext(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for r.Next() {
			bind := make([]string, len(c.Bind))
			dest := make([]any, 0, len(bind)+1)
			for i := range bind {
				dest = append(dest, &bind[i])
			}
			var v []byte
			dest = append(dest, &v)
			if err := r.Scan(dest...); err != nil {
				t.Fatal(err)
			}
			pt, err := st.Unseal(c, v, bind...)
			if err != nil {
				t.Fatalf("%s: %v", c, err)
			}
			opened++
			for _, n := range needles {
				if bytes.Contains(pt, n) {
					t.Errorf("a sealed value of %s still names %s", c, n)
				}
			}
		}
		r.Close()
	}
	if opened == 0 {
		t.Fatal("no sealed value opened: the search saw nothing")
	}
	t.Logf("opened %d sealed values in %d columns", opened, len(cols))
}

// sqliteTablesNaming lists the tables of the SQLite database at path (when it is one) with a
// value containing needle, for the failure message.
func sqliteTablesNaming(path string, needle []byte) string {
	if !strings.HasSuffix(path, ".db") {
		return ""
	}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return ""
	}
	defer db.Close()
	rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'table'`)
	if err != nil {
		return ""
	}
	var tables []string
	for rows.Next() {
		var n string
		if rows.Scan(&n) == nil {
			tables = append(tables, n)
		}
	}
	rows.Close()
	var hits []string
	for _, tb := range tables {
		r, err := db.Query(`SELECT * FROM "` + tb + `"`)
		if err != nil {
			continue
		}
		cols, _ := r.Columns()
		vals := make([]sql.RawBytes, len(cols))
		dest := make([]any, len(cols))
		for i := range vals {
			dest[i] = &vals[i]
		}
	scan:
		for r.Next() {
			if r.Scan(dest...) != nil {
				break
			}
			for i, v := range vals {
				if bytes.Contains(v, needle) {
					hits = append(hits, tb+"."+cols[i])
					break scan
				}
			}
		}
		r.Close()
	}
	if len(hits) == 0 {
		return " (in no live row: a freed page)"
	}
	return " (in " + strings.Join(hits, ", ") + ")"
}
