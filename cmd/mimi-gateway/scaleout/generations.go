package scaleout

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/mls"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// The AEAD key and nonce of an MLS application message follow from (group, epoch, sender leaf,
// generation): two different ciphertexts under one such tuple reuse a key and nonce. To check
// that no replica ever did that, the test copies every MLS message that enters an inbox (A's,
// which is the hub's own fanout of everything it sequenced, and B's, fed by the hub's /notify)
// into a capture table by a trigger, and afterwards reads each PrivateMessage's sender data
// with the epoch's sender-data secret (from Alice's client at A, read from A's store with the
// store key).

// captureInboxes installs the capture triggers (A: PostgreSQL, B: SQLite). Call it before the
// rooms are created.
func (c *Cluster) captureInboxes() {
	c.t.Helper()
	ctx := c.t.Context()
	for _, s := range []string{
		`CREATE TABLE scaleout_capture (message BYTEA NOT NULL)`,
		`CREATE FUNCTION scaleout_capture() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			INSERT INTO scaleout_capture VALUES (NEW.message);
			RETURN NULL;
		END $$`,
		`CREATE TRIGGER scaleout_capture AFTER INSERT ON provider_inbox FOR EACH ROW EXECUTE FUNCTION scaleout_capture()`,
	} {
		if _, err := c.db().ExecContext(ctx, s); err != nil {
			c.t.Fatalf("capture A's inbox: %v", err)
		}
	}
	b := c.bStoreRW()
	for _, s := range []string{
		`CREATE TABLE scaleout_capture (message BLOB NOT NULL)`,
		`CREATE TRIGGER scaleout_capture AFTER INSERT ON provider_inbox BEGIN INSERT INTO scaleout_capture VALUES (NEW.message); END`,
	} {
		if _, err := b.ExecContext(ctx, s); err != nil {
			c.t.Fatalf("capture B's inbox: %v", err)
		}
	}
}

// bStoreRW opens B's SQLite store for the capture trigger (B runs meanwhile: SQLite's locks).
func (c *Cluster) bStoreRW() *sql.DB {
	c.t.Helper()
	db, err := sql.Open("sqlite", "file:"+c.B.DataDir+"/mimi-gateway.db?_pragma=busy_timeout(30000)")
	if err != nil {
		c.t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	c.t.Cleanup(func() { _ = db.Close() })
	return db
}

// checkGenerations fails the test when two different ciphertexts captured at either inbox share
// (group, epoch, sender leaf, generation), or two different commits the same (group, epoch). It requires every captured application message of
// the load's rooms to be read (a message of an epoch whose secrets are gone fails it too).
func (c *Cluster) checkGenerations(l *Load) {
	t := c.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	groups := c.aliceGroups(ctx, l)
	type tuple struct {
		group      string
		epoch      uint64
		leaf       mls.LeafIndex
		generation uint32
	}
	seen := map[tuple][32]byte{}
	type epochKey struct {
		group string
		epoch uint64
	}
	commits := map[epochKey][32]byte{}
	checked := map[string]int{}
	for _, src := range []struct {
		name string
		db   *sql.DB
	}{{"A (hub)", c.db()}, {"B", c.bStore()}} {
		rows, err := src.db.QueryContext(ctx, `SELECT message FROM scaleout_capture`)
		if err != nil {
			t.Fatalf("captured messages of %s: %v", src.name, err)
		}
		for rows.Next() {
			var raw []byte
			if err := rows.Scan(&raw); err != nil {
				t.Fatal(err)
			}
			m, err := mls.DecodeMLSMessage(raw)
			if err != nil {
				t.Fatalf("%s: a captured message does not decode: %v", src.name, err)
			}
			if pub := m.PublicMessage; pub != nil && pub.Content.ContentType == mls.ContentTypeCommit {
				// The hub's epochs never fork: one commit per (group, epoch) at both inboxes.
				k := epochKey{string(pub.Content.GroupID), pub.Content.Epoch}
				h := sha256.Sum256(raw)
				if prev, ok := commits[k]; ok && prev != h {
					t.Errorf("%s: two different commits for epoch %d of group %s: the hub's epochs forked", src.name, k.epoch, k.group)
				}
				commits[k] = h
				continue
			}
			pm := m.PrivateMessage
			if pm == nil || pm.ContentType != mls.ContentTypeApplication {
				continue
			}
			g := groups[string(pm.GroupID)]
			if g == nil {
				continue // not a room of the load
			}
			leaf, gen, err := g.PrivateMessageSender(pm)
			if err != nil {
				t.Errorf("%s: sender data of a message in epoch %d of %s: %v", src.name, pm.Epoch, pm.GroupID, err)
				continue
			}
			k := tuple{string(pm.GroupID), pm.Epoch, leaf, gen}
			h := sha256.Sum256(pm.Ciphertext)
			if prev, ok := seen[k]; ok && prev != h {
				t.Errorf("%s: group %s epoch %d leaf %d generation %d used for two different ciphertexts", src.name, pm.GroupID, pm.Epoch, leaf, gen)
			}
			seen[k] = h
			checked[src.name]++
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("generations: %d application messages read at A (hub), %d at B; %d distinct (group, epoch, leaf, generation), none with two ciphertexts; %d commits seen, one per epoch",
		checked["A (hub)"], checked["B"], len(seen), len(commits))
	if want := len(l.Msgs) / 2; checked["A (hub)"] < want || checked["B"] < want {
		t.Errorf("generations: too few messages captured (A %d, B %d) for %d sent: the capture does not see them", checked["A (hub)"], checked["B"], want)
	}
}

// aliceGroups loads Alice's MLS client at A in every room of l (her current epoch), by group ID.
func (c *Cluster) aliceGroups(ctx context.Context, l *Load) map[string]*mls.Group {
	t := c.t
	t.Helper()
	st, err := store.Open(ctx, c.pg)
	if err != nil {
		t.Fatalf("A's store: %v", err)
	}
	defer st.Close()
	clientState := store.SealedColumn{Table: "provider_clients", Column: "state", Key: []string{"room", "user_uri"}}
	clientEpoch := store.SealedColumn{Table: "provider_client_epochs", Column: "state", Key: []string{"room", "user_uri"}}
	out := map[string]*mls.Group{}
	for _, room := range l.rooms {
		var (
			state, member, pub []byte
			epoch              int64
		)
		err := st.QueryRowContext(ctx, `SELECT c.state, e.state, e.epoch, p.state FROM provider_clients c
			JOIN provider_client_epochs e ON e.room = c.room AND e.user_uri = c.user_uri
			JOIN provider_room_epochs p ON p.room = c.room AND p.epoch = e.epoch
			WHERE c.room = ? AND c.user_uri = ? AND c.split = 1 AND e.shared = 1`, string(room), string(l.alice)).Scan(&state, &member, &epoch, &pub)
		if err != nil {
			t.Fatalf("Alice's client in %s: %v", room, err)
		}
		if state, err = st.Unseal(clientState, state, string(room), string(l.alice)); err != nil {
			t.Fatal(err)
		}
		if member, err = st.Unseal(clientEpoch, member, string(room), string(l.alice)); err != nil {
			t.Fatal(err)
		}
		pg, err := mls.LoadPublicGroup(pub)
		if err != nil {
			t.Fatal(err)
		}
		g, err := mls.LoadMember(pg, member, state)
		if err != nil {
			t.Fatalf("Alice's group in %s: %v", room, err)
		}
		out[groupID(room)] = g
	}
	return out
}

// groupID is the MLS group ID of a room (core/provider's convention mimi://<hub>/g/<id>).
func groupID(r event.RoomURI) string { return "mimi://" + string(r.Domain()) + "/g/" + r.Local() }
