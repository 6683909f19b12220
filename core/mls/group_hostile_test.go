package mls

import (
	"bytes"
	"encoding"
	"errors"
	"testing"
)

// Hostile handshakes: every message below must be rejected with an error, without a panic and
// without changing the receiver's state (checked by comparing its serialized state, and by
// processing the honest commit afterwards).

// hostileFixture is a three-member group (alice 0, bob 1, carol 2) where bob receives.
type hostileFixture struct {
	alice, bob, carol *goClient
}

func newHostileFixture(t testing.TB, cs CipherSuite) *hostileFixture {
	t.Helper()
	f := &hostileFixture{alice: newGoClient(t, cs, "alice"), bob: newGoClient(t, cs, "bob"), carol: newGoClient(t, cs, "carol")}
	var err error
	if f.alice.g, err = CreateGroup([]byte("hostile"), f.alice.signer, f.alice.cred(), GroupOptions{}); err != nil {
		t.Fatal(err)
	}
	pc, err := f.alice.g.Commit(CommitOptions{Add: []*KeyPackage{f.bob.kp, f.carol.kp}})
	if err != nil {
		t.Fatal(err)
	}
	f.alice.g = confirm(t, pc)
	for _, c := range []*goClient{f.bob, f.carol} {
		if c.g, err = JoinFromWelcome(pc.Welcome.Welcome, c.kp, c.kpPriv, c.signer, JoinOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// forgeCommit signs a commit with content chosen by the test as alice, with a valid membership
// tag, so that only the property under test is wrong (the confirmation tag is garbage).
func forgeCommit(t testing.TB, g *Group, c *Commit, mutate func(fc *FramedContent)) *MLSMessage {
	t.Helper()
	fc := &FramedContent{GroupID: g.ctx.GroupID, Epoch: g.ctx.Epoch, Sender: Sender{Type: SenderTypeMember, Index: uint32(g.priv.leaf())},
		ContentType: ContentTypeCommit, Commit: c}
	if mutate != nil {
		mutate(fc)
	}
	ac, err := signContent(g.cs, WireFormatPublicMessage, fc, ctxBytesOf(&g.ctx), g.signer)
	if err != nil {
		t.Fatal(err)
	}
	ac.Auth.ConfirmationTag = make([]byte, g.cs.nh)
	pm, err := protectPublic(g.cs, ac, ctxBytesOf(&g.ctx), g.secrets.membershipKey)
	if err != nil {
		t.Fatal(err)
	}
	return &MLSMessage{Version: ProtocolVersionMLS10, WireFormat: WireFormatPublicMessage, PublicMessage: pm}
}

// stateBytes is the storage encoding of a Group or PublicGroup.
func stateBytes(t testing.TB, g encoding.BinaryMarshaler) []byte {
	t.Helper()
	b, err := g.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHostileHandshakes(t *testing.T) {
	t.Parallel()
	f := newHostileFixture(t, MLS128DHKEMX25519AES128GCMSHA256Ed25519)
	honest, err := f.alice.g.Commit(CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	honestBytes, err := honest.Commit.Encode()
	if err != nil {
		t.Fatal(err)
	}
	dave := newGoClient(t, 1, "dave")
	otherSuite := newGoClient(t, 2, "eve")
	inline := func(p Proposal) ProposalOrRef { return ProposalOrRef{Type: ProposalOrRefProposal, Proposal: &p} }
	path := decodeMsg(t, honestBytes).PublicMessage.Content.Commit.Path

	cases := []struct {
		name string
		msg  func() *MLSMessage
		want error
	}{
		{"bad signature", func() *MLSMessage {
			m := decodeMsg(t, honestBytes)
			m.PublicMessage.Auth.Signature[3] ^= 1
			return m
		}, ErrMembershipTag},
		{"bad membership tag", func() *MLSMessage {
			m := decodeMsg(t, honestBytes)
			m.PublicMessage.MembershipTag[0] ^= 1
			return m
		}, ErrMembershipTag},
		{"wrong epoch", func() *MLSMessage {
			return forgeCommit(t, f.alice.g, &Commit{Path: path}, func(fc *FramedContent) { fc.Epoch++ })
		}, ErrWrongGroup},
		{"wrong group", func() *MLSMessage {
			return forgeCommit(t, f.alice.g, &Commit{Path: path}, func(fc *FramedContent) { fc.GroupID = []byte("other") })
		}, ErrWrongGroup},
		{"sender outside the tree", func() *MLSMessage {
			return forgeCommit(t, f.alice.g, &Commit{Path: path}, func(fc *FramedContent) { fc.Sender.Index = 7 })
		}, ErrUnknownSender},
		{"bad confirmation tag", func() *MLSMessage {
			return forgeCommit(t, f.alice.g, &Commit{Path: path}, nil)
		}, ErrInvalidCommit},
		{"duplicate adds", func() *MLSMessage {
			return forgeCommit(t, f.alice.g, &Commit{Proposals: []ProposalOrRef{
				inline(Proposal{Type: ProposalTypeAdd, KeyPackage: dave.kp}), inline(Proposal{Type: ProposalTypeAdd, KeyPackage: dave.kp})}, Path: path}, nil)
		}, ErrInvalidProposal},
		{"add of an existing member's key", func() *MLSMessage {
			return forgeCommit(t, f.alice.g, &Commit{Proposals: []ProposalOrRef{inline(Proposal{Type: ProposalTypeAdd, KeyPackage: f.carol.kp})}, Path: path}, nil)
		}, ErrInvalidProposal},
		{"add of another suite", func() *MLSMessage {
			return forgeCommit(t, f.alice.g, &Commit{Proposals: []ProposalOrRef{inline(Proposal{Type: ProposalTypeAdd, KeyPackage: otherSuite.kp})}, Path: path}, nil)
		}, ErrInvalidProposal},
		{"remove of a blank leaf", func() *MLSMessage {
			return forgeCommit(t, f.alice.g, &Commit{Proposals: []ProposalOrRef{inline(Proposal{Type: ProposalTypeRemove, Removed: 9})}, Path: path}, nil)
		}, ErrInvalidProposal},
		{"remove twice", func() *MLSMessage {
			return forgeCommit(t, f.alice.g, &Commit{Proposals: []ProposalOrRef{inline(Proposal{Type: ProposalTypeRemove, Removed: 2}), inline(Proposal{Type: ProposalTypeRemove, Removed: 2})}, Path: path}, nil)
		}, ErrInvalidProposal},
		{"committer removes itself", func() *MLSMessage {
			return forgeCommit(t, f.alice.g, &Commit{Proposals: []ProposalOrRef{inline(Proposal{Type: ProposalTypeRemove, Removed: 0})}, Path: path}, nil)
		}, ErrInvalidProposal},
		{"update by the committer", func() *MLSMessage {
			ln := *f.alice.g.ownLeaf()
			return forgeCommit(t, f.alice.g, &Commit{Proposals: []ProposalOrRef{inline(Proposal{Type: ProposalTypeUpdate, LeafNode: &ln})}, Path: path}, nil)
		}, ErrInvalidProposal},
		{"remove without a path", func() *MLSMessage {
			return forgeCommit(t, f.alice.g, &Commit{Proposals: []ProposalOrRef{inline(Proposal{Type: ProposalTypeRemove, Removed: 2})}}, nil)
		}, ErrInvalidCommit},
		{"empty commit without a path", func() *MLSMessage {
			return forgeCommit(t, f.alice.g, &Commit{}, nil)
		}, ErrInvalidCommit},
		{"unknown proposal reference", func() *MLSMessage {
			return forgeCommit(t, f.alice.g, &Commit{Proposals: []ProposalOrRef{{Type: ProposalOrRefReference, Reference: make([]byte, 32)}}, Path: path}, nil)
		}, ErrInvalidCommit},
		{"external init in a member commit", func() *MLSMessage {
			return forgeCommit(t, f.alice.g, &Commit{Proposals: []ProposalOrRef{inline(Proposal{Type: ProposalTypeExternalInit, KEMOutput: []byte{1}})}, Path: path}, nil)
		}, ErrInvalidProposal},
		{"reinit with other proposals", func() *MLSMessage {
			return forgeCommit(t, f.alice.g, &Commit{Proposals: []ProposalOrRef{
				inline(Proposal{Type: ProposalTypeReInit, ReInit: &ReInit{GroupID: []byte("x"), Version: 1, CipherSuite: 1}}),
				inline(Proposal{Type: ProposalTypeRemove, Removed: 2})}, Path: path}, nil)
		}, ErrInvalidProposal},
		{"path with a swapped node key", func() *MLSMessage {
			p := decodeMsg(t, honestBytes).PublicMessage.Content.Commit.Path
			p.Nodes[0].EncryptionKey = dave.kp.InitKey
			return forgeCommit(t, f.alice.g, &Commit{Path: p}, nil)
		}, ErrInvalidUpdatePath},
		{"path with too few nodes", func() *MLSMessage {
			p := decodeMsg(t, honestBytes).PublicMessage.Content.Commit.Path
			p.Nodes = p.Nodes[:len(p.Nodes)-1]
			return forgeCommit(t, f.alice.g, &Commit{Path: p}, nil)
		}, ErrInvalidUpdatePath},
		{"path leaf of the wrong source", func() *MLSMessage {
			p := decodeMsg(t, honestBytes).PublicMessage.Content.Commit.Path
			p.LeafNode.Source = LeafNodeSourceUpdate
			return forgeCommit(t, f.alice.g, &Commit{Path: p}, nil)
		}, ErrInvalidLeafNode},
		{"GroupContextExtensions unsupported by members", func() *MLSMessage {
			return forgeCommit(t, f.alice.g, &Commit{Proposals: []ProposalOrRef{inline(Proposal{Type: ProposalTypeGroupContextExtensions,
				Extensions: Extensions{{Type: 0xff00, Data: []byte{1}}}})}, Path: path}, nil)
		}, ErrInvalidProposal},
		{"application data as a PublicMessage", func() *MLSMessage {
			m := decodeMsg(t, honestBytes)
			m.PublicMessage.Content.ContentType = ContentTypeApplication
			m.PublicMessage.Content.Commit = nil
			m.PublicMessage.Content.ApplicationData = []byte("x")
			return m
		}, nil},
		{"welcome as a group message", func() *MLSMessage { return honest.Welcome }, ErrNotAllowed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := stateBytes(t, f.bob.g)
			m := c.msg()
			if m == nil {
				m = &MLSMessage{Version: ProtocolVersionMLS10, WireFormat: WireFormatWelcome}
			}
			// Through the wire encoding when it encodes; hostile structures may not.
			if b, err := m.Encode(); err == nil {
				if d, err := DecodeMLSMessage(b); err == nil {
					m = d
				}
			}
			r, err := f.bob.g.Process(m, ProcessOptions{})
			if err == nil {
				t.Fatalf("accepted: %+v", r)
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("error %v, want %v", err, c.want)
			}
			if !bytes.Equal(before, stateBytes(t, f.bob.g)) {
				t.Fatal("state changed")
			}
		})
	}
	// The honest commit still applies.
	r, err := f.bob.g.Process(decodeMsg(t, honestBytes), ProcessOptions{})
	if err != nil {
		t.Fatalf("honest commit after the hostile ones: %v", err)
	}
	if !bytes.Equal(r.Commit.State.EpochAuthenticator(), honest.State.EpochAuthenticator()) {
		t.Fatal("honest commit gives another epoch")
	}
}

// TestHostileProposals: standalone proposals that fail validation are not cached.
func TestHostileProposals(t *testing.T) {
	t.Parallel()
	f := newHostileFixture(t, MLS128DHKEMX25519AES128GCMSHA256Ed25519)
	for _, p := range []Proposal{
		{Type: ProposalTypeRemove, Removed: 12},
		{Type: ProposalTypeExternalInit, KEMOutput: []byte{1, 2}},
		{Type: ProposalTypeAdd, KeyPackage: f.carol.kp},
	} {
		fc := &FramedContent{GroupID: f.alice.g.ctx.GroupID, Epoch: f.alice.g.ctx.Epoch, Sender: Sender{Type: SenderTypeMember},
			ContentType: ContentTypeProposal, Proposal: &p}
		ac, err := signContent(f.alice.g.cs, WireFormatPublicMessage, fc, ctxBytesOf(&f.alice.g.ctx), f.alice.g.signer)
		if err != nil {
			t.Fatal(err)
		}
		pm, err := protectPublic(f.alice.g.cs, ac, ctxBytesOf(&f.alice.g.ctx), f.alice.g.secrets.membershipKey)
		if err != nil {
			t.Fatal(err)
		}
		before := stateBytes(t, f.bob.g)
		if _, err := f.bob.g.Process(&MLSMessage{Version: 1, WireFormat: WireFormatPublicMessage, PublicMessage: pm}, ProcessOptions{}); !errors.Is(err, ErrInvalidProposal) {
			t.Fatalf("%s: %v", p.Type, err)
		}
		if !bytes.Equal(before, stateBytes(t, f.bob.g)) || len(f.bob.g.PendingProposals()) != 0 {
			t.Fatalf("%s: state changed", p.Type)
		}
	}
}

// FuzzProcessMessage feeds arbitrary MLSMessages to a fixed group member and to its public view:
// no panic, a rejected PublicMessage leaves either state byte-identical, and what the member
// accepts as a PublicMessage the view accepts too, with the same next public state.
func FuzzProcessMessage(f *testing.F) {
	fx := newHostileFixture(f, MLS128DHKEMX25519AES128GCMSHA256Ed25519)
	seed := func(m *MLSMessage, err error) {
		if err != nil {
			f.Fatal(err)
		}
		b, err := m.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	pc, err := fx.alice.g.Commit(CommitOptions{})
	seed(pc.Commit, err)
	pc, err = fx.alice.g.Commit(CommitOptions{Remove: []LeafIndex{2}})
	seed(pc.Commit, err)
	seed(fx.alice.g.Encrypt([]byte("hello"), nil))
	seed(withConfig(f, cloneGroup(f, fx.alice.g), Config{PrivateHandshakes: true}).ProposeRemove(2))
	seed(fx.alice.g.ProposeRemove(2))
	base := stateBytes(f, fx.bob.g)
	pubBase := stateBytes(f, fx.bob.g.Public())
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMLSMessage(b)
		if err != nil {
			return
		}
		g, err := LoadGroup(base)
		if err != nil {
			t.Fatal(err)
		}
		v, err := LoadPublicGroup(pubBase)
		if err != nil {
			t.Fatal(err)
		}
		vr, verr := v.Process(m, ProcessOptions{})
		if verr != nil && !bytes.Equal(pubBase, stateBytes(t, v)) {
			t.Fatalf("rejected message changed the public view: %v", verr)
		}
		r, err := g.Process(m, ProcessOptions{})
		if err != nil {
			if m.WireFormat == WireFormatPublicMessage && !bytes.Equal(base, stateBytes(t, g)) {
				t.Fatalf("rejected PublicMessage changed the state: %v", err)
			}
			return
		}
		if m.WireFormat == WireFormatPublicMessage && verr != nil {
			t.Fatalf("the member accepts a PublicMessage the public view rejects: %v", verr)
		}
		if r.Kind == ReceivedCommit && r.Commit.State != nil {
			if _, err := r.Commit.State.MarshalBinary(); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(stateBytes(t, vr.Commit.Public), stateBytes(t, r.Commit.State.Public())) {
				t.Fatal("the public view's next state differs from the member's")
			}
		}
	})
}

// TestHostileWelcome: Welcomes that are not for us, corrupted, or joined with a wrong tree fail.
func TestHostileWelcome(t *testing.T) {
	t.Parallel()
	cs := MLS128DHKEMX25519AES128GCMSHA256Ed25519
	alice, bob, eve := newGoClient(t, cs, "alice"), newGoClient(t, cs, "bob"), newGoClient(t, cs, "eve")
	var err error
	if alice.g, err = CreateGroup([]byte("w"), alice.signer, alice.cred(), GroupOptions{Config: Config{OmitRatchetTree: true}}); err != nil {
		t.Fatal(err)
	}
	pc, err := alice.g.Commit(CommitOptions{Add: []*KeyPackage{bob.kp}})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := pc.Welcome.Encode()
	if err != nil {
		t.Fatal(err)
	}
	tree := pc.State.tree.wire()
	other, err := CreateGroup([]byte("other"), eve.signer, eve.cred(), GroupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		w    func() *Welcome
		kp   *goClient
		tree RatchetTree
		want error
	}{
		{"not invited", func() *Welcome { return decodeMsg(t, raw).Welcome }, eve, tree, ErrNotInvited},
		{"corrupted GroupInfo", func() *Welcome {
			w := decodeMsg(t, raw).Welcome
			w.EncryptedGroupInfo[5] ^= 1
			return w
		}, bob, tree, ErrDecrypt},
		{"corrupted group secrets", func() *Welcome {
			w := decodeMsg(t, raw).Welcome
			w.Secrets[0].EncryptedGroupSecrets.Ciphertext[0] ^= 1
			return w
		}, bob, tree, ErrDecrypt},
		{"another group's tree", func() *Welcome { return decodeMsg(t, raw).Welcome }, bob, other.tree.wire(), ErrInvalidTree},
		{"no tree", func() *Welcome { return decodeMsg(t, raw).Welcome }, bob, nil, ErrInvalidTree},
	} {
		t.Run(c.name, func(t *testing.T) {
			g, err := JoinFromWelcome(c.w(), c.kp.kp, c.kp.kpPriv, c.kp.signer, JoinOptions{RatchetTree: c.tree})
			if err == nil || g != nil {
				t.Fatal("joined")
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("error %v, want %v", err, c.want)
			}
		})
	}
	if _, err := JoinFromWelcome(decodeMsg(t, raw).Welcome, bob.kp, bob.kpPriv, bob.signer, JoinOptions{RatchetTree: tree}); err != nil {
		t.Fatalf("honest join: %v", err)
	}
}
