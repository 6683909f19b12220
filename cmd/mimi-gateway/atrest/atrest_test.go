// Package atrest checks what two organisations' gateways leave on disk after their users have
// talked: no message text and no MLS private key may be readable in any file under either
// gateway's directory (data dir, log), nor in their PostgreSQL tables.
package atrest

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mevent "maunium.net/go/mautrix/event"

	"github.com/mimi-gateway/mimi-gateway/bridges/matrix"
	gt "github.com/mimi-gateway/mimi-gateway/cmd/mimi-gateway/internal/gatewaytest"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/protocol/protocoltest"
	"github.com/mimi-gateway/mimi-gateway/core/store"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

func TestMain(m *testing.M) { gt.Main(m) }

// wait bounds one step of the conversation on a loaded machine.
const wait = 3 * time.Minute

// TestNothingReadableAtRestSQLite: Klinik A on Matrix and Amt B on XMPP, default settings
// (SQLite, embedded NATS).
func TestNothingReadableAtRestSQLite(t *testing.T) {
	t.Parallel()
	nothingReadableAtRest(t, nil)
}

// TestNothingReadableAtRestPostgres: the same with both gateways on PostgreSQL.
func TestNothingReadableAtRestPostgres(t *testing.T) {
	t.Parallel()
	nothingReadableAtRest(t, func(t *testing.T) store.Config { return storetest.PostgresConfig(t) })
}

// gateway is one organisation's gateway and how to open its store afterwards.
type gateway struct {
	gw  *gt.Gateway
	cfg store.Config
}

func nothingReadableAtRest(t *testing.T, pg func(t *testing.T) store.Config) {
	ca := protocoltest.NewCA(t)
	var layerA, layerB []string
	var pgA, pgB store.Config
	if pg != nil {
		pgA, pgB = pg(t), pg(t)
		layerA, layerB = []string{postgresLayer(pgA)}, []string{postgresLayer(pgB)}
	}
	ka := gt.NewMatrixOrg(t, ca, gt.MatrixOptions{Domain: "klinik-a.example", Mode: gt.ModeAppservice, Layers: layerA})
	// Partners may reach Bob before he has written through the gateway.
	layerB = append(layerB, "bridges:\n  xmpp:\n    known_users: [bob]\n")
	ab := gt.NewXMPPOrg(t, ca, gt.XMPPOptions{Domain: "amt-b.example", Users: map[string]string{"bob": "password-bob"}, Layers: layerB})
	gt.Connect(ka.Gateway, ab.Gateway)
	for _, g := range []*gt.Gateway{ka.Gateway, ab.Gateway} {
		g.Start(t)
	}
	for _, g := range []*gt.Gateway{ka.Gateway, ab.Gateway} {
		g.WaitReady(t, wait)
	}
	alice := ka.User(t, "alice")
	bob := ab.Client(t, "bob", "phone")
	aliceURI := event.NewUserURI("klinik-a.example", "alice")
	bobURI := event.NewUserURI("amt-b.example", "bob")
	alicePuppet := ab.Puppet("alice", "klinik-a.example")
	tag := fmt.Sprintf("%x", time.Now().UnixNano())
	texts := []string{
		"Befund " + tag + " eins: Hb 9.1 g/dl, Patientin Erika Mustermann",
		"Antwort " + tag + " zwei: bitte Kalium nachbestimmen",
		"Station " + tag + " drei: Verlegung morgen 8 Uhr",
		"Antwort " + tag + " vier: Transport ist bestellt",
	}
	ghost := matrix.Ghosts{Prefix: "mimi_", Server: "klinik-a.example"}.UserID(bobURI)

	// A 1:1 chat and a group, both started by Alice on Matrix; Bob answers on XMPP.
	for i, group := range []bool{false, true} {
		room := alice.CreateRoom(t, fmt.Sprintf("Station %d", i), true, !group, ghost)
		alice.WaitJoined(t, wait, room, ghost)
		alice.WaitJoined(t, wait, room, ka.Bot)
		alice.SendText(t, room, texts[2*i])
		to, typ := acceptChat(t, bob, alicePuppet)
		bob.Expect(t, wait, "Alice's message", func(s *gt.Stanza) bool { return s.Body() == texts[2*i] })
		bob.Send(t, fmt.Sprintf(`<message to='%s' type='%s' id='%s'><body>%s</body></message>`,
			gt.XMLEscape(to), typ, bob.NewID("m"), gt.XMLEscape(texts[2*i+1])))
		alice.WaitEvent(t, wait, "Bob's answer", func(e *mevent.Event) bool { return e.RoomID == room && gt.Body(e) == texts[2*i+1] })
	}

	gws := []gateway{{ka.Gateway, pgA}, {ab.Gateway, pgB}}
	for i := range gws {
		if pg == nil {
			gws[i].cfg = store.Config{Path: filepath.Join(gws[i].gw.DataDir, "mimi-gateway.db")}
		}
		gws[i].cfg.KeyFile = ""
		if gws[i].cfg.Keys == "" {
			gws[i].cfg.KeyFile = filepath.Join(gws[i].gw.DataDir, "store.key")
		}
	}
	needles := map[string][]byte{}
	for i, s := range texts {
		needles[fmt.Sprintf("message text %d", i+1)] = []byte(s)
	}
	// While the gateways run (the WAL, the JetStream blocks in use, the log).
	search(t, gws, needles, []byte(aliceURI))

	for _, g := range gws {
		g.gw.Stop()
	}
	for _, g := range gws {
		for name, key := range privateKeys(t, g.cfg, aliceURI, bobURI) {
			needles[g.gw.Domain+" "+name] = key
		}
	}
	if len(needles) < len(texts)+4 {
		t.Fatalf("found only %d private keys to look for", len(needles)-len(texts))
	}
	// After a graceful stop (the WAL folded into the database).
	search(t, gws, needles, []byte(aliceURI))
	t.Logf("searched both gateways' files and tables for %d texts and %d private keys", len(texts), len(needles)-len(texts))
}

// acceptChat waits until a chat Alice started reaches Bob: as messages from her address, or as an
// invitation into a group chat, which he joins. It returns where and how Bob answers.
func acceptChat(t *testing.T, bob *gt.XMPPClient, alicePuppet string) (to, typ string) {
	t.Helper()
	isInvite := func(s *gt.Stanza) bool {
		x := s.Child("http://jabber.org/protocol/muc#user", "x")
		return s.XMLName.Local == "message" && x != nil && x.Child("", "invite") != nil
	}
	arrived := func(s *gt.Stanza) bool {
		return isInvite(s) || (s.XMLName.Local == "message" && s.Attr("type") != "error" && bare(s.Attr("from")) == alicePuppet && s.Body() != "")
	}
	// Taken from the buffer, not counted: the invitation can arrive before this is called (it
	// follows the ghost's join, not Alice's first message), and those of earlier chats are gone.
	st := bob.Expect(t, wait, "a chat from Alice", arrived)
	if !isInvite(st) {
		bob.Unread(st) // the message stays for the caller's Expect
		return alicePuppet, "chat"
	}
	muc := bare(st.Attr("from"))
	bob.Send(t, fmt.Sprintf(`<presence to='%s/bob'><x xmlns='http://jabber.org/protocol/muc'/></presence>`, gt.XMLEscape(muc)))
	own := bob.Expect(t, wait, "own presence in the group", func(s *gt.Stanza) bool {
		return s.XMLName.Local == "presence" && strings.HasPrefix(s.Attr("from"), muc+"/")
	})
	if own.Attr("type") == "error" {
		t.Fatalf("joining %s refused: %s", muc, own.String())
	}
	return muc, "groupchat"
}

func bare(j string) string {
	if i := strings.IndexByte(j, '/'); i >= 0 {
		return j[:i]
	}
	return j
}

// postgresLayer configures a gateway's store on PostgreSQL.
func postgresLayer(c store.Config) string {
	return fmt.Sprintf("store:\n  driver: postgres\n  postgres:\n    dsn: %q\n  encryption:\n    key: %q\n", c.DSN, c.Keys)
}

// privateKeys returns the MLS private keys the gateway holds for our users (signature keys and
// KeyPackage HPKE keys) and its hub signature key, read through the store's own key.
func privateKeys(t *testing.T, cfg store.Config, users ...event.UserURI) map[string][]byte {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("open the store afterwards: %v", err)
	}
	defer st.Close()
	out := map[string][]byte{}
	sig := store.SealedColumn{Table: "provider_users", Column: "sig_private", Key: []string{"user_uri"}}
	initKey := store.SealedColumn{Table: "provider_keypackages", Column: "init_private", Key: []string{"ref"}}
	encKey := store.SealedColumn{Table: "provider_keypackages", Column: "enc_private", Key: []string{"ref"}}
	for _, u := range users {
		var v []byte
		err := st.QueryRowContext(ctx, `SELECT sig_private FROM provider_users WHERE user_uri = ?`, string(u)).Scan(&v)
		if err == sql.ErrNoRows {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		k, err := st.Unseal(sig, v, string(u))
		if err != nil {
			t.Fatalf("signature key of %s: %v", u, err)
		}
		out["signature key of "+string(u)] = k
		rows, err := st.QueryContext(ctx, `SELECT ref, init_private, enc_private FROM provider_keypackages WHERE user_uri = ?`, string(u))
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var ref string
			var ip, ep []byte
			if err := rows.Scan(&ref, &ip, &ep); err != nil {
				t.Fatal(err)
			}
			if k, err := st.Unseal(initKey, ip, ref); err == nil {
				out["KeyPackage init key "+ref] = k
			} else {
				t.Fatal(err)
			}
			if k, err := st.Unseal(encKey, ep, ref); err == nil {
				out["KeyPackage leaf key "+ref] = k
			} else {
				t.Fatal(err)
			}
		}
		rows.Close()
	}
	return out
}

// search fails the test for every needle found in a file under a gateway's directory or in a
// row of its PostgreSQL tables. control is metadata that both gateways store in the clear (a
// user URI): the search must find it, or it did not read what it should have.
func search(t *testing.T, gws []gateway, needles map[string][]byte, control []byte) {
	t.Helper()
	for _, g := range gws {
		files, controls := 0, 0
		err := filepath.WalkDir(g.gw.Dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return nil // a file removed meanwhile (JetStream compaction, SQLite's journal)
			}
			files++
			if bytes.Contains(b, control) {
				controls++
			}
			for name, n := range needles {
				if bytes.Contains(b, n) {
					t.Errorf("%s: %s is readable in %s", g.gw.Domain, name, p)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if files < 5 {
			t.Fatalf("%s: only %d files under %s", g.gw.Domain, files, g.gw.Dir)
		}
		if g.cfg.DSN != "" {
			controls += searchPostgres(t, g, needles, control)
		}
		if controls == 0 {
			t.Errorf("%s: the control %q was found nowhere: the search does not see the stored data", g.gw.Domain, control)
		}
	}
}

// searchPostgres reads every row of every table in the gateway's schema and returns how many
// rows hold control.
func searchPostgres(t *testing.T, g gateway, needles map[string][]byte, control []byte) int {
	t.Helper()
	db, err := sql.Open("pgx", g.cfg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()`)
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
	if len(tables) < 10 {
		t.Fatalf("%s: only %d tables in PostgreSQL", g.gw.Domain, len(tables))
	}
	controls := 0
	for _, table := range tables {
		// Each row as its text form: every column, bytea as hex, so compare both forms.
		r, err := db.Query(`SELECT t::text FROM ` + `"` + table + `"` + ` AS t`)
		if err != nil {
			t.Fatal(err)
		}
		for r.Next() {
			var row string
			if err := r.Scan(&row); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(row, string(control)) {
				controls++
			}
			for name, n := range needles {
				if strings.Contains(row, string(n)) || strings.Contains(row, fmt.Sprintf("%x", n)) {
					t.Errorf("%s: %s is readable in PostgreSQL table %s", g.gw.Domain, name, table)
				}
			}
		}
		r.Close()
	}
	return controls
}
