package mls

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"testing"
)

// Live interop of the group engine with ts-mls (testdata/tsmls/peer.mjs, driven over stdin/stdout by
// tsPeer from wire_interop_test.go). The test fails, never skips, when node or ts-mls is missing:
// run .ci/install-node-peers.

// tsState is the peer's view of one member.
type tsState struct {
	epoch    uint64
	auth     []byte
	exporter []byte
	members  int
}

func (p *tsPeer) state(name string) tsState {
	p.t.Helper()
	rep := p.call("state", map[string]any{"name": name, "label": "interop", "context": hex.EncodeToString([]byte("ctx")), "length": 32})
	ms, _ := rep["members"].([]any)
	return tsState{epoch: uint64(rep["epoch"].(float64)), auth: p.hexField(rep, "epoch_authenticator"),
		exporter: p.hexField(rep, "exporter"), members: len(ms)}
}

// agree checks that a ts-mls member and Go members are in the same epoch with the same
// authenticator and exporter.
func agree(t *testing.T, p *tsPeer, name string, gs ...*Group) {
	t.Helper()
	st := p.state(name)
	for _, g := range gs {
		exp, err := g.Export("interop", []byte("ctx"), 32)
		if err != nil {
			t.Fatal(err)
		}
		if g.Epoch() != st.epoch || !bytes.Equal(g.EpochAuthenticator(), st.auth) || !bytes.Equal(exp, st.exporter) {
			t.Fatalf("%s (ts-mls) epoch %d auth %x, Go leaf %d epoch %d auth %x", name, st.epoch, st.auth, g.LeafIndex(), g.Epoch(), g.EpochAuthenticator())
		}
		if st.members != len(g.Members()) {
			t.Fatalf("%s (ts-mls) sees %d members, Go %d", name, st.members, len(g.Members()))
		}
	}
}

func encodeHex(t *testing.T, m *MLSMessage) string {
	t.Helper()
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func decodeMsg(t *testing.T, b []byte) *MLSMessage {
	t.Helper()
	m, err := DecodeMLSMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// goProcess has a Go member process a ts-mls message and returns the result.
func goProcess(t *testing.T, c *goClient, b []byte) *Received {
	t.Helper()
	r, err := c.g.Process(decodeMsg(t, b), ProcessOptions{})
	if err != nil {
		t.Fatalf("%s processing a ts-mls message: %v", c.name, err)
	}
	if r.Kind == ReceivedCommit && r.Commit.State != nil {
		c.g = r.Commit.State
	}
	return r
}

// tsProcess has the ts-mls member process a Go message and returns its reply.
func tsProcess(t *testing.T, p *tsPeer, name string, m *MLSMessage) map[string]any {
	t.Helper()
	return p.call("process", map[string]any{"name": name, "message": encodeHex(t, m)})
}

func kpHex(t *testing.T, kp *KeyPackage) string {
	t.Helper()
	return encodeHex(t, &MLSMessage{Version: ProtocolVersionMLS10, WireFormat: WireFormatKeyPackage, KeyPackage: kp})
}

func TestGroupInteropTSMLS(t *testing.T) {
	t.Parallel()
	p := startTSPeer(t)
	for _, cs := range []CipherSuite{1, 2, 3} {
		t.Run(fmt.Sprintf("suite%d", cs), func(t *testing.T) {
			p.t = t
			tsCreatesGoJoins(t, p, cs)
			goCreatesTSJoins(t, p, cs)
		})
	}
}

// tsCreatesGoJoins: ts-mls creates a group and adds two Go members; messages, updates and removes
// go both ways.
func tsCreatesGoJoins(t *testing.T, p *tsPeer, cs CipherSuite) {
	ts := fmt.Sprintf("ts-owner-%d", cs)
	p.call("new_client", map[string]any{"name": ts, "suite": int(cs)})
	p.call("create_group", map[string]any{"name": ts, "group_id": hex.EncodeToString([]byte(ts))})
	g1, g2 := newGoClient(t, cs, "go-1"), newGoClient(t, cs, "go-2")
	rep := p.call("add", map[string]any{"name": ts, "key_packages": []string{kpHex(t, g1.kp), kpHex(t, g2.kp)}, "public": true})
	w := decodeMsg(t, p.hexField(rep, "welcome"))
	var err error
	for _, c := range []*goClient{g1, g2} {
		if c.g, err = JoinFromWelcome(w.Welcome, c.kp, c.kpPriv, c.signer, JoinOptions{}); err != nil {
			t.Fatalf("%s joining ts-mls's Welcome: %v", c.name, err)
		}
	}
	agree(t, p, ts, g1.g, g2.g)

	// Application messages both ways.
	rep = p.call("encrypt", map[string]any{"name": ts, "plaintext": hex.EncodeToString([]byte("from ts"))})
	msg := p.hexField(rep, "message")
	for _, c := range []*goClient{g1, g2} {
		if r := goProcess(t, c, msg); r.Kind != ReceivedApplication || string(r.ApplicationData) != "from ts" || r.Sender.Index != 0 {
			t.Fatalf("%s: %+v", c.name, r)
		}
	}
	for i := range 3 {
		m, err := g1.g.Encrypt([]byte(fmt.Sprint("from go ", i)), nil)
		if err != nil {
			t.Fatal(err)
		}
		rep = tsProcess(t, p, ts, m)
		if got, _ := hex.DecodeString(rep["plaintext"].(string)); string(got) != fmt.Sprint("from go ", i) {
			t.Fatalf("ts-mls decrypted %q", got)
		}
		if _, err := g2.g.Process(reencode(t, m), ProcessOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	// ts-mls update commit (PrivateMessage), processed by Go.
	rep = p.call("update", map[string]any{"name": ts, "public": false})
	for _, c := range []*goClient{g1, g2} {
		goProcess(t, c, p.hexField(rep, "commit"))
	}
	agree(t, p, ts, g1.g, g2.g)

	// Go update commits, public and private, processed by ts-mls and the other Go member.
	for _, private := range []bool{false, true} {
		g1.g = withConfig(t, g1.g, Config{PrivateHandshakes: private})
		pc, err := g1.g.Commit(CommitOptions{})
		if err != nil {
			t.Fatal(err)
		}
		tsProcess(t, p, ts, pc.Commit)
		goProcess(t, g2, p.mustHex(t, pc.Commit))
		g1.g = confirm(t, pc)
		agree(t, p, ts, g1.g, g2.g)
	}

	// Go removes nobody else but adds a ts-mls member, then removes it.
	tsJoiner := fmt.Sprintf("ts-joiner-%d", cs)
	rep = p.call("new_client", map[string]any{"name": tsJoiner, "suite": int(cs)})
	pc, err := g1.g.Commit(CommitOptions{Add: []*KeyPackage{decodeMsg(t, p.hexField(rep, "key_package")).KeyPackage}})
	if err != nil {
		t.Fatal(err)
	}
	tsProcess(t, p, ts, pc.Commit)
	goProcess(t, g2, p.mustHex(t, pc.Commit))
	g1.g = confirm(t, pc)
	p.call("join", map[string]any{"name": tsJoiner, "welcome": encodeHex(t, pc.Welcome)})
	agree(t, p, tsJoiner, g1.g, g2.g)
	agree(t, p, ts, g1.g)
	joinerLeaf := pc.Result.Added[0]
	pc, err = g1.g.Commit(CommitOptions{Remove: []LeafIndex{joinerLeaf}})
	if err != nil {
		t.Fatal(err)
	}
	tsProcess(t, p, ts, pc.Commit)
	goProcess(t, g2, p.mustHex(t, pc.Commit))
	g1.g = confirm(t, pc)
	agree(t, p, ts, g1.g, g2.g)

	// ts-mls removes a Go member.
	rep = p.call("remove", map[string]any{"name": ts, "leaves": []int{int(g2.g.LeafIndex())}, "public": true})
	if r := goProcess(t, g2, p.hexField(rep, "commit")); !r.Commit.SelfRemoved {
		t.Fatal("go-2 not told it was removed")
	}
	goProcess(t, g1, p.hexField(rep, "commit"))
	agree(t, p, ts, g1.g)
}

// goCreatesTSJoins: Go creates a group and adds two ts-mls members by Welcome.
func goCreatesTSJoins(t *testing.T, p *tsPeer, cs CipherSuite) {
	owner := newGoClient(t, cs, "go-owner")
	var err error
	if owner.g, err = CreateGroup([]byte(fmt.Sprint("go-group-", cs)), owner.signer, owner.cred(), GroupOptions{}); err != nil {
		t.Fatal(err)
	}
	ta, tb := fmt.Sprintf("ts-a-%d", cs), fmt.Sprintf("ts-b-%d", cs)
	var kps []*KeyPackage
	for _, n := range []string{ta, tb} {
		rep := p.call("new_client", map[string]any{"name": n, "suite": int(cs)})
		kps = append(kps, decodeMsg(t, p.hexField(rep, "key_package")).KeyPackage)
	}
	pc, err := owner.g.Commit(CommitOptions{Add: kps})
	if err != nil {
		t.Fatal(err)
	}
	owner.g = confirm(t, pc)
	for _, n := range []string{ta, tb} {
		p.call("join", map[string]any{"name": n, "welcome": encodeHex(t, pc.Welcome)})
		agree(t, p, n, owner.g)
	}

	// Messages both ways.
	m, err := owner.g.Encrypt([]byte("hello ts"), []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{ta, tb} {
		rep := tsProcess(t, p, n, m)
		if got, _ := hex.DecodeString(rep["plaintext"].(string)); string(got) != "hello ts" {
			t.Fatalf("%s decrypted %q", n, got)
		}
	}
	rep := p.call("encrypt", map[string]any{"name": tb, "plaintext": hex.EncodeToString([]byte("hello go"))})
	r := goProcess(t, owner, p.hexField(rep, "message"))
	if string(r.ApplicationData) != "hello go" || string(r.Credential.Identity) != tb {
		t.Fatalf("%+v", r)
	}
	p.call("process", map[string]any{"name": ta, "message": rep["message"]})

	// Update commits both ways.
	rep = p.call("update", map[string]any{"name": ta, "public": true})
	goProcess(t, owner, p.hexField(rep, "commit"))
	p.call("process", map[string]any{"name": tb, "message": rep["commit"]})
	agree(t, p, ta, owner.g)
	agree(t, p, tb, owner.g)
	pc, err = owner.g.Commit(CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{ta, tb} {
		tsProcess(t, p, n, pc.Commit)
	}
	owner.g = confirm(t, pc)
	agree(t, p, ta, owner.g)
	agree(t, p, tb, owner.g)

	// ts-mls removes ts-b; Go removes... the remaining ts member after adding it back is not
	// needed: Go removes ts-a below.
	rep = p.call("remove", map[string]any{"name": ta, "leaves": []int{2}, "public": false})
	r = goProcess(t, owner, p.hexField(rep, "commit"))
	if len(r.Commit.Removed) != 1 || string(r.Commit.Removed[0].Credential.Identity) != tb {
		t.Fatalf("removed %+v", r.Commit.Removed)
	}
	agree(t, p, ta, owner.g)
	pc, err = owner.g.Commit(CommitOptions{Remove: []LeafIndex{1}})
	if err != nil {
		t.Fatal(err)
	}
	owner.g = confirm(t, pc)
	if len(owner.g.Members()) != 1 {
		t.Fatalf("%d members left", len(owner.g.Members()))
	}
}

// mustHex encodes a Go message for a Go member (through the wire encoding).
func (p *tsPeer) mustHex(t *testing.T, m *MLSMessage) []byte {
	t.Helper()
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
