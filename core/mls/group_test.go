package mls

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

// goClient is a member-to-be made with the public API.
type goClient struct {
	name   string
	signer *Signer
	kp     *KeyPackage
	kpPriv *KeyPackagePrivate
	g      *Group
}

func newGoClient(t testing.TB, cs CipherSuite, name string) *goClient {
	t.Helper()
	sg, err := GenerateSigner(cs)
	if err != nil {
		t.Fatal(err)
	}
	kp, priv, err := NewKeyPackage(sg, Credential{Type: CredentialTypeBasic, Identity: []byte(name)}, KeyPackageOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := kp.Verify(); err != nil {
		t.Fatal(err)
	}
	return &goClient{name: name, signer: sg, kp: kp, kpPriv: priv}
}

func (c *goClient) cred() Credential {
	return Credential{Type: CredentialTypeBasic, Identity: []byte(c.name)}
}

// reencode sends a message through its wire encoding, as the delivery service would.
func reencode(t testing.TB, m *MLSMessage) *MLSMessage {
	t.Helper()
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	out, err := DecodeMLSMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// createWith has owner create a group with options o and add joiners by one commit (confirmed);
// the joiners join by the Welcome. It returns the commit.
func createWith(t testing.TB, owner *goClient, o GroupOptions, joiners ...*goClient) *PendingCommit {
	t.Helper()
	var err error
	if owner.g, err = CreateGroup([]byte("g-"+owner.name), owner.signer, owner.cred(), o); err != nil {
		t.Fatal(err)
	}
	kps := make([]*KeyPackage, len(joiners))
	for i, j := range joiners {
		kps[i] = j.kp
	}
	pc, err := owner.g.Commit(CommitOptions{Add: kps})
	if err != nil {
		t.Fatal(err)
	}
	owner.g = confirm(t, pc)
	w := reencode(t, pc.Welcome).Welcome
	for _, j := range joiners {
		if j.g, err = JoinFromWelcome(w, j.kp, j.kpPriv, j.signer, JoinOptions{}); err != nil {
			t.Fatalf("%s joining: %v", j.name, err)
		}
	}
	return pc
}

// cloneGroup returns an independent copy of g through its storage encoding (as a second replica
// loading the same row would; only tests want two live values of one state).
func cloneGroup(t testing.TB, g *Group) *Group {
	t.Helper()
	b, err := g.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	c, err := LoadGroup(b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// withConfig returns g with another sending configuration (g is superseded).
func withConfig(t testing.TB, g *Group, cfg Config) *Group {
	t.Helper()
	c, err := g.WithConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// sameEpoch checks that all groups agree on epoch, authenticator and an exporter value.
func sameEpoch(t testing.TB, gs ...*Group) {
	t.Helper()
	for _, g := range gs[1:] {
		if g.Epoch() != gs[0].Epoch() || !bytes.Equal(g.EpochAuthenticator(), gs[0].EpochAuthenticator()) {
			t.Fatalf("epoch %d/%x vs %d/%x", g.Epoch(), g.EpochAuthenticator(), gs[0].Epoch(), gs[0].EpochAuthenticator())
		}
		a, _ := g.Export("test", []byte("ctx"), 32)
		b, _ := gs[0].Export("test", []byte("ctx"), 32)
		if !bytes.Equal(a, b) {
			t.Fatal("exporters differ")
		}
	}
}

func TestGroupLifecycle(t *testing.T) {
	t.Parallel()
	for _, cs := range []CipherSuite{1, 2, 3, 5, 7} {
		t.Run(fmt.Sprint(uint16(cs)), func(t *testing.T) {
			t.Parallel()
			for _, private := range []bool{false, true} {
				t.Run(fmt.Sprintf("private=%t", private), func(t *testing.T) {
					t.Parallel()
					testGroupLifecycle(t, cs, private)
				})
			}
		})
	}
}

func testGroupLifecycle(t *testing.T, cs CipherSuite, private bool) {
	cfg := Config{PrivateHandshakes: private, PadTo: 32}
	alice, bob, carol := newGoClient(t, cs, "alice"), newGoClient(t, cs, "bob"), newGoClient(t, cs, "carol")
	var err error
	alice.g, err = CreateGroup([]byte("group"), alice.signer, alice.cred(), GroupOptions{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	// Add bob and carol in one commit.
	pc, err := alice.g.Commit(CommitOptions{Add: []*KeyPackage{bob.kp, carol.kp}})
	if err != nil {
		t.Fatal(err)
	}
	if pc.Commit.WireFormat != map[bool]WireFormat{false: WireFormatPublicMessage, true: WireFormatPrivateMessage}[private] {
		t.Fatalf("commit wire format %s", pc.Commit.WireFormat)
	}
	if pc.Commit.PublicMessage != nil && pc.Commit.PublicMessage.Content.Commit.Path == nil {
		t.Fatal("add commit without a path")
	}
	if alice.g.Epoch() != 0 || pc.State.Epoch() != 1 {
		t.Fatal("pending state applied early")
	}
	alice.g = confirm(t, pc)
	w := reencode(t, pc.Welcome).Welcome
	for _, c := range []*goClient{bob, carol} {
		if c.g, err = JoinFromWelcome(w, c.kp, c.kpPriv, c.signer, JoinOptions{Config: cfg}); err != nil {
			t.Fatalf("%s join: %v", c.name, err)
		}
	}
	sameEpoch(t, alice.g, bob.g, carol.g)
	if carol.g.LeafIndex() != 2 || len(carol.g.Members()) != 3 {
		t.Fatalf("carol at %d of %d", carol.g.LeafIndex(), len(carol.g.Members()))
	}

	// Application messages, several generations, one out of order.
	var msgs []*MLSMessage
	for i := range 3 {
		m, err := bob.g.Encrypt([]byte(fmt.Sprint("hello ", i)), []byte("aad"))
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, reencode(t, m))
	}
	for _, i := range []int{2, 0, 1} {
		r, err := alice.g.Process(msgs[i], ProcessOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if r.Kind != ReceivedApplication || string(r.ApplicationData) != fmt.Sprint("hello ", i) || r.Generation != uint32(i) ||
			r.Sender.Index != 1 || string(r.Credential.Identity) != "bob" || string(r.AuthenticatedData) != "aad" {
			t.Fatalf("message %d: %+v", i, r)
		}
	}
	if _, err := alice.g.Process(msgs[1], ProcessOptions{}); err == nil {
		t.Fatal("replayed message accepted")
	}

	// Bob commits an update; alice and carol process it.
	pc, err = bob.g.Commit(CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm := reencode(t, pc.Commit)
	for _, c := range []*goClient{alice, carol} {
		r, err := c.g.Process(cm, ProcessOptions{})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if r.Kind != ReceivedCommit || r.Commit.Epoch != 2 {
			t.Fatalf("%+v", r)
		}
		c.g = r.Commit.State
	}
	if _, err := bob.g.Process(cm, ProcessOptions{}); !errors.Is(err, ErrOwnCommit) && !private {
		t.Fatalf("own commit: %v", err)
	}
	bob.g = confirm(t, pc)
	sameEpoch(t, alice.g, bob.g, carol.g)

	// Carol proposes an update by reference; alice commits it together with nothing else.
	prop, err := carol.g.ProposeUpdate()
	if err != nil {
		t.Fatal(err)
	}
	prop = reencode(t, prop)
	for _, c := range []*goClient{alice, bob} {
		r, err := c.g.Process(prop, ProcessOptions{})
		if err != nil || r.Kind != ReceivedProposal {
			t.Fatalf("%s: proposal: %v", c.name, err)
		}
	}
	pc, err = alice.g.Commit(CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm = reencode(t, pc.Commit)
	for _, c := range []*goClient{bob, carol} {
		r, err := c.g.Process(cm, ProcessOptions{})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if len(r.Commit.Proposals) != 1 || r.Commit.Proposals[0].Type != ProposalTypeUpdate {
			t.Fatalf("proposals %+v", r.Commit.Proposals)
		}
		c.g = r.Commit.State
	}
	alice.g = confirm(t, pc)
	sameEpoch(t, alice.g, bob.g, carol.g)

	// Alice removes bob.
	pc, err = alice.g.Commit(CommitOptions{Remove: []LeafIndex{1}})
	if err != nil {
		t.Fatal(err)
	}
	cm = reencode(t, pc.Commit)
	r, err := bob.g.Process(cm, ProcessOptions{})
	if err != nil || !r.Commit.SelfRemoved || r.Commit.State != nil {
		t.Fatalf("bob: %v %+v", err, r)
	}
	r, err = carol.g.Process(cm, ProcessOptions{})
	if err != nil || len(r.Commit.Removed) != 1 || r.Commit.Removed[0].Leaf != 1 {
		t.Fatalf("carol: %v %+v", err, r)
	}
	carol.g, alice.g = r.Commit.State, confirm(t, pc)
	sameEpoch(t, alice.g, carol.g)

	// External join by dave.
	dave := newGoClient(t, cs, "dave")
	gi, err := alice.g.GroupInfo()
	if err != nil {
		t.Fatal(err)
	}
	ej, err := ExternalJoin(reencode(t, gi).GroupInfo, dave.signer, dave.cred(), ExternalJoinOptions{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	cm = reencode(t, ej.Commit)
	for _, c := range []*goClient{alice, carol} {
		r, err := c.g.Process(cm, ProcessOptions{})
		if err != nil {
			t.Fatalf("%s: external commit: %v", c.name, err)
		}
		c.g = r.Commit.State
	}
	dave.g = confirm(t, ej)
	sameEpoch(t, alice.g, carol.g, dave.g)
	m, err := dave.g.Encrypt([]byte("hi from dave"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := alice.g.Process(reencode(t, m), ProcessOptions{}); err != nil || string(r.ApplicationData) != "hi from dave" {
		t.Fatalf("%v %+v", err, r)
	}
}

func TestGroupStateRoundTrip(t *testing.T) {
	t.Parallel()
	for _, cs := range []CipherSuite{1, 2, 3} {
		t.Run(fmt.Sprint(uint16(cs)), func(t *testing.T) {
			t.Parallel()
			alice, bob := newGoClient(t, cs, "alice"), newGoClient(t, cs, "bob")
			var err error
			if alice.g, err = CreateGroup([]byte("g"), alice.signer, alice.cred(), GroupOptions{Config: Config{PadTo: 16}}); err != nil {
				t.Fatal(err)
			}
			reload := func(g *Group) *Group {
				t.Helper()
				b, err := g.MarshalBinary()
				if err != nil {
					t.Fatal(err)
				}
				out, err := LoadGroup(b)
				if err != nil {
					t.Fatal(err)
				}
				b2, err := out.MarshalBinary()
				if err != nil || !bytes.Equal(b, b2) {
					t.Fatalf("re-encoding differs: %v", err)
				}
				if out.Epoch() != g.Epoch() || out.Config() != g.Config() {
					t.Fatal("epoch or config lost")
				}
				return out
			}
			alice.g = reload(alice.g)
			pc, err := alice.g.Commit(CommitOptions{Add: []*KeyPackage{bob.kp}})
			if err != nil {
				t.Fatal(err)
			}
			alice.g = reload(pc.State)
			if bob.g, err = JoinFromWelcome(pc.Welcome.Welcome, bob.kp, bob.kpPriv, bob.signer, JoinOptions{}); err != nil {
				t.Fatal(err)
			}
			bob.g = reload(bob.g)
			sameEpoch(t, alice.g, bob.g)
			m0, _ := bob.g.Encrypt([]byte("0"), nil)
			m1, _ := bob.g.Encrypt([]byte("1"), nil)
			bob.g = reload(bob.g)
			m2, _ := bob.g.Encrypt([]byte("2"), nil)
			if _, err := alice.g.Process(reencode(t, m1), ProcessOptions{}); err != nil {
				t.Fatal(err)
			}
			alice.g = reload(alice.g)
			if _, err := alice.g.Process(reencode(t, m1), ProcessOptions{}); err == nil {
				t.Fatal("replay accepted after reload")
			}
			for i, m := range []*MLSMessage{m0, m2} {
				r, err := alice.g.Process(reencode(t, m), ProcessOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if r.Generation != uint32(2*i) {
					t.Fatalf("generation %d, want %d", r.Generation, 2*i)
				}
			}
			// A cached proposal survives the round trip and can be committed.
			if _, err := bob.g.ProposeUpdate(); err != nil {
				t.Fatal(err)
			}
			bob.g = reload(bob.g)
			prop, err := bob.g.ProposeRemove(0)
			if err != nil {
				t.Fatal(err)
			}
			_ = prop
			if len(bob.g.PendingProposals()) != 2 {
				t.Fatalf("%d pending", len(bob.g.PendingProposals()))
			}
			for _, bad := range [][]byte{nil, {2}, {stateVersion, 0, 1}} {
				if _, err := LoadGroup(bad); err == nil {
					t.Fatalf("state %x accepted", bad)
				}
			}
		})
	}
}

// TestJoinOutOfBandTreeWithPSK: a commit that injects an external PSK and a Welcome without the
// ratchet tree; the joiner supplies the tree and the PSK.
func TestJoinOutOfBandTreeWithPSK(t *testing.T) {
	t.Parallel()
	cs := MLS128DHKEMX25519ChaCha20Poly1305SHA256Ed25519
	alice, bob, carol := newGoClient(t, cs, "alice"), newGoClient(t, cs, "bob"), newGoClient(t, cs, "carol")
	var err error
	if alice.g, err = CreateGroup([]byte("oob"), alice.signer, alice.cred(), GroupOptions{Config: Config{OmitRatchetTree: true}}); err != nil {
		t.Fatal(err)
	}
	psks := PSKMap{"shared": []byte("a pre-shared secret")}
	pskID := PreSharedKeyID{PSKType: PSKTypeExternal, PSKID: []byte("shared")}
	if _, err := alice.g.Commit(CommitOptions{Add: []*KeyPackage{bob.kp}, PSKs: []PreSharedKeyID{pskID}}); !errors.Is(err, ErrNoPSK) {
		t.Fatalf("commit without the PSK: %v", err)
	}
	pc, err := alice.g.Commit(CommitOptions{Add: []*KeyPackage{bob.kp}, PSKs: []PreSharedKeyID{pskID}, PSKStore: psks})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := groupInfoOf(t, pc).Extensions.Find(ExtensionRatchetTree); ok {
		t.Fatal("ratchet tree sent although omitted")
	}
	w := reencode(t, pc.Welcome).Welcome
	if _, err := JoinFromWelcome(w, bob.kp, bob.kpPriv, bob.signer, JoinOptions{PSKStore: psks}); !errors.Is(err, ErrInvalidTree) {
		t.Fatalf("join without a tree: %v", err)
	}
	tree := pc.State.tree.wire()
	if _, err := JoinFromWelcome(w, bob.kp, bob.kpPriv, bob.signer, JoinOptions{RatchetTree: tree}); !errors.Is(err, ErrNoPSK) {
		t.Fatalf("join without the PSK: %v", err)
	}
	if bob.g, err = JoinFromWelcome(w, bob.kp, bob.kpPriv, bob.signer, JoinOptions{RatchetTree: tree, PSKStore: psks}); err != nil {
		t.Fatal(err)
	}
	alice.g = confirm(t, pc)
	sameEpoch(t, alice.g, bob.g)
	// A resumption PSK of the previous epoch, then a commit processed by bob.
	pc, err = bob.g.Commit(CommitOptions{Add: []*KeyPackage{carol.kp},
		PSKs: []PreSharedKeyID{{PSKType: PSKTypeResumption, Usage: ResumptionPSKUsageApplication, PSKGroupID: []byte("oob"), PSKEpoch: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := alice.g.Process(reencode(t, pc.Commit), ProcessOptions{})
	if err != nil {
		t.Fatal(err)
	}
	alice.g, bob.g = r.Commit.State, confirm(t, pc)
	sameEpoch(t, alice.g, bob.g)
}
