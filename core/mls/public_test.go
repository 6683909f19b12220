package mls

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// publicFollower follows a group with a PublicGroup next to its members and checks after every
// commit that the view is the members' own public state, byte for byte.
type publicFollower struct {
	t       *testing.T
	view    *PublicGroup
	members []*goClient
}

// deliver hands a proposal or commit to every member but from and to the view. For a commit it
// returns the view's result, after checking the new view against the committer's new state.
func (f *publicFollower) deliver(from *goClient, m *MLSMessage, next *Group) *CommitResult {
	t := f.t
	t.Helper()
	r, err := f.view.Process(reencode(t, m), ProcessOptions{})
	if err != nil {
		t.Fatalf("public view: %v", err)
	}
	var kept []*goClient
	for _, c := range f.members {
		if c == from {
			kept = append(kept, c)
			continue
		}
		got, err := c.g.Process(reencode(t, m), ProcessOptions{})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got.Kind == ReceivedCommit {
			if got.Commit.SelfRemoved {
				continue
			}
			c.g = got.Commit.State
		}
		kept = append(kept, c)
	}
	if r.Kind != ReceivedCommit {
		return nil
	}
	f.members = kept
	from.g = next
	res := r.Commit
	if res.State != nil || res.Public == nil || res.Epoch != next.Epoch() {
		t.Fatalf("public commit result: state %v, public %v, epoch %d (want %d)", res.State != nil, res.Public != nil, res.Epoch, next.Epoch())
	}
	f.view = res.Public
	f.check()
	return res
}

// check compares the view with every member's state: GroupContext, tree, interim transcript hash
// and confirmation tag (all in the storage encoding), and the exported tree.
func (f *publicFollower) check() {
	t := f.t
	t.Helper()
	want := stateBytes(t, f.view)
	for _, c := range f.members {
		got := stateBytes(t, c.g.Public())
		if !bytes.Equal(got, want) {
			t.Fatalf("epoch %d: %s's public state differs from the view's", c.g.Epoch(), c.name)
		}
		gc, vc := c.g.GroupContext(), f.view.GroupContext()
		a, _ := gc.Marshal()
		b, _ := vc.Marshal()
		ta, _ := c.g.RatchetTree().Encode()
		tb, _ := f.view.RatchetTree().Encode()
		if !bytes.Equal(a, b) || !bytes.Equal(ta, tb) {
			t.Fatalf("epoch %d: %s's GroupContext or tree differs from the view's", c.g.Epoch(), c.name)
		}
	}
	back, err := LoadPublicGroup(want)
	if err != nil {
		t.Fatalf("reload view: %v", err)
	}
	if !bytes.Equal(stateBytes(t, back), want) {
		t.Fatal("view changed by a storage round trip")
	}
}

func TestPublicGroupFollowsCommits(t *testing.T) {
	t.Parallel()
	for _, cs := range []CipherSuite{1, 2, 3} {
		t.Run(fmt.Sprint(uint16(cs)), func(t *testing.T) { testPublicGroupFollowsCommits(t, cs) })
	}
}

func testPublicGroupFollowsCommits(t *testing.T, cs CipherSuite) {
	hub, roomExts := mimiRoomExtensions(t, cs)
	var err error
	alice, bob, carol, dave, eve := newGoClient(t, cs, "alice"), newGoClient(t, cs, "bob"), newGoClient(t, cs, "carol"),
		newGoClient(t, cs, "dave"), newGoClient(t, cs, "eve")
	if alice.g, err = CreateGroup([]byte("public room"), alice.signer, alice.cred(), GroupOptions{Extensions: roomExts}); err != nil {
		t.Fatal(err)
	}
	// The view starts from a GroupInfo with the tree in it.
	gi, err := alice.g.GroupInfo()
	if err != nil {
		t.Fatal(err)
	}
	view, err := NewPublicGroup(reencode(t, gi).GroupInfo, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := &publicFollower{t: t, view: view, members: []*goClient{alice}}
	f.check()
	join := func(pc *PendingCommit, cs ...*goClient) {
		t.Helper()
		for _, c := range cs {
			if c.g, err = JoinFromWelcome(reencode(t, pc.Welcome).Welcome, c.kp, c.kpPriv, c.signer, JoinOptions{}); err != nil {
				t.Fatalf("%s joins: %v", c.name, err)
			}
			f.members = append(f.members, c)
		}
		f.check()
	}

	// Adds with a path.
	pc, err := alice.g.Commit(CommitOptions{Add: []*KeyPackage{bob.kp}})
	if err != nil {
		t.Fatal(err)
	}
	if res := f.deliver(alice, pc.Commit, confirm(t, pc)); len(res.Added) != 1 || res.Added[0] != 1 {
		t.Fatalf("added %v", res.Added)
	}
	join(pc, bob)
	pc, err = bob.g.Commit(CommitOptions{Add: []*KeyPackage{carol.kp, dave.kp}})
	if err != nil {
		t.Fatal(err)
	}
	f.deliver(bob, pc.Commit, confirm(t, pc))
	join(pc, carol, dave)

	// An AppDataUpdate by reference, committed by another member (no path needed, but Commit
	// always sends one).
	prop, err := carol.g.ProposeAppDataUpdate(AppDataUpdate{Component: 0x0023, Op: AppDataOpUpdate, Update: []byte("room v2")})
	if err != nil {
		t.Fatal(err)
	}
	// byRef delivers a proposal, then a commit of the cached proposals by committer.
	byRef := func(from *goClient, prop *MLSMessage, committer *goClient) *CommitResult {
		t.Helper()
		f.deliver(from, prop, nil)
		if len(f.view.PendingProposals()) != 1 {
			t.Fatalf("view caches %d proposals", len(f.view.PendingProposals()))
		}
		pc, err := committer.g.Commit(CommitOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return f.deliver(committer, pc.Commit, confirm(t, pc))
	}
	res := byRef(carol, prop, alice)
	if len(res.Proposals) != 1 || res.Proposals[0].Type != ProposalTypeAppDataUpdate {
		t.Fatalf("proposals %v", res.Proposals)
	}
	d, ok := f.view.Extensions().Find(ExtensionAppDataDictionary)
	if !ok {
		t.Fatal("no app data dictionary")
	}
	if dd, err := ParseAppDataDictionary(d); err != nil {
		t.Fatal(err)
	} else if v, _ := dd.Get(0x0023); string(v) != "room v2" {
		t.Fatalf("room metadata %q", v)
	}

	// A SelfRemove committed by another member.
	prop, err = dave.g.ProposeSelfRemove()
	if err != nil {
		t.Fatal(err)
	}
	res = byRef(dave, prop, carol)
	if len(res.Removed) != 1 || res.Removed[0].Leaf != 3 || !bytes.Equal(res.Removed[0].Credential.Identity, []byte("dave")) {
		t.Fatalf("removed %v", res.Removed)
	}
	for _, m := range f.view.Members() {
		if m.Leaf == 3 {
			t.Fatal("dave is still a member of the view")
		}
	}

	// An external commit from a GroupInfo (eve joins; the view places her where members do).
	gi, err = bob.g.GroupInfo()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.view.VerifyGroupInfo(reencode(t, gi).GroupInfo); err != nil {
		t.Fatalf("view rejects a member's GroupInfo: %v", err)
	}
	ext, err := ExternalJoin(reencode(t, gi).GroupInfo, eve.signer, eve.cred(), ExternalJoinOptions{})
	if err != nil {
		t.Fatal(err)
	}
	res = f.deliver(eve, ext.Commit, confirm(t, ext))
	if m, ok := f.view.Member(3); res.Committer.Type != SenderTypeNewMemberCommit || !ok || !bytes.Equal(m.Credential.Identity, []byte("eve")) {
		t.Fatalf("external commit: committer %v, leaf 3 %v", res.Committer, m)
	}
	f.members = append(f.members, eve)
	f.check()

	// An external sender's (the hub's) Remove proposal, committed by reference; then an inline
	// Remove.
	prop, err = ExternalProposal(f.view.GroupID(), f.view.Epoch(), 0, hub, &Proposal{Type: ProposalTypeRemove, Removed: 2})
	if err != nil {
		t.Fatal(err)
	}
	res = byRef(nil, prop, eve)
	if len(res.Removed) != 1 || res.Removed[0].Leaf != 2 {
		t.Fatalf("removed %v", res.Removed)
	}
	pc, err = alice.g.Commit(CommitOptions{Remove: []LeafIndex{eve.g.LeafIndex()}})
	if err != nil {
		t.Fatal(err)
	}
	f.deliver(alice, pc.Commit, confirm(t, pc))
	if n := len(f.view.Members()); n != 2 {
		t.Fatalf("%d members left", n)
	}
	// The GroupInfo a member signs in the new epoch matches the view.
	if err := f.view.VerifyGroupInfo(groupInfoOf(t, pc)); err != nil {
		t.Fatal(err)
	}
	// A view made from that GroupInfo is the same view.
	again, err := NewPublicGroup(reencode(t, groupInfoMsg(t, pc)).GroupInfo, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stateBytes(t, again), stateBytes(t, f.view)) {
		t.Fatal("view from the GroupInfo differs from the followed view")
	}
}

// forgePublic signs commit content chosen by the test as g's member; the public view does not
// check membership or confirmation tags, so only the property under test is wrong.
func forgePublic(t testing.TB, g *Group, fc *FramedContent, tag []byte) *MLSMessage {
	t.Helper()
	ac, err := signContent(g.cs, WireFormatPublicMessage, fc, ctxBytesOf(&g.ctx), g.signer)
	if err != nil {
		t.Fatal(err)
	}
	ac.Auth.ConfirmationTag = tag
	pm, err := protectPublic(g.cs, ac, ctxBytesOf(&g.ctx), g.secrets.membershipKey)
	if err != nil {
		t.Fatal(err)
	}
	return &MLSMessage{Version: ProtocolVersionMLS10, WireFormat: WireFormatPublicMessage, PublicMessage: pm}
}

func TestPublicGroupRejects(t *testing.T) {
	t.Parallel()
	cs := MLS128DHKEMX25519AES128GCMSHA256Ed25519
	f := newHostileFixture(t, cs)
	view := f.bob.g.Public()
	before := stateBytes(t, view)
	honest, err := f.alice.g.Commit(CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pm := honest.Commit.PublicMessage
	newKey := func() []byte {
		_, pub, err := f.alice.g.cs.generateKEMKeyPair(nil)
		if err != nil {
			t.Fatal(err)
		}
		return pub
	}
	withPath := func(mut func(up *UpdatePath)) *MLSMessage {
		c := *pm.Content.Commit
		up := *c.Path
		up.Nodes = append([]UpdatePathNode(nil), up.Nodes...)
		mut(&up)
		c.Path = &up
		fc := pm.Content
		fc.Commit = &c
		return forgePublic(t, f.alice.g, &fc, pm.Auth.ConfirmationTag)
	}
	withProposals := func(list ...ProposalOrRef) *MLSMessage {
		fc := pm.Content
		c := *fc.Commit
		c.Proposals = list
		fc.Commit = &c
		return forgePublic(t, f.alice.g, &fc, pm.Auth.ConfirmationTag)
	}
	private, err := withConfig(t, cloneGroup(t, f.alice.g), Config{PrivateHandshakes: true}).Commit(CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		msg  func() *MLSMessage
		want error
		text string
	}{
		{"bad signature", func() *MLSMessage {
			m := reencode(t, honest.Commit)
			m.PublicMessage.Auth.Signature[3] ^= 1
			return m
		}, ErrSignature, ""},
		{"wrong epoch", func() *MLSMessage {
			m := reencode(t, honest.Commit)
			m.PublicMessage.Content.Epoch++
			return m
		}, ErrWrongGroup, ""},
		{"wrong group", func() *MLSMessage {
			m := reencode(t, honest.Commit)
			m.PublicMessage.Content.GroupID = []byte("other")
			return m
		}, ErrWrongGroup, ""},
		{"bad parent hash", func() *MLSMessage {
			return withPath(func(up *UpdatePath) { up.Nodes[0].EncryptionKey = newKey() })
		}, ErrInvalidUpdatePath, "parent hash"},
		{"bad leaf signature", func() *MLSMessage {
			return withPath(func(up *UpdatePath) {
				up.LeafNode.Signature = bytes.Clone(up.LeafNode.Signature)
				up.LeafNode.Signature[0] ^= 1
			})
		}, ErrInvalidUpdatePath, "signature"},
		{"path of the wrong length", func() *MLSMessage {
			return withPath(func(up *UpdatePath) { up.Nodes = up.Nodes[:len(up.Nodes)-1] })
		}, ErrInvalidUpdatePath, ""},
		{"unknown proposal reference", func() *MLSMessage {
			return withProposals(ProposalOrRef{Type: ProposalOrRefReference, Reference: make([]byte, 32)})
		}, ErrInvalidCommit, "unknown proposal reference"},
		{"remove of a blank leaf", func() *MLSMessage {
			return withProposals(ProposalOrRef{Type: ProposalOrRefProposal, Proposal: &Proposal{Type: ProposalTypeRemove, Removed: 7}})
		}, ErrInvalidProposal, ""},
		{"unknown sender", func() *MLSMessage {
			m := reencode(t, honest.Commit)
			m.PublicMessage.Content.Sender.Index = 9
			return m
		}, ErrUnknownSender, ""},
		{"private message", func() *MLSMessage { return private.Commit }, ErrNotAllowed, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := view.Process(c.msg(), ProcessOptions{})
			if !errors.Is(err, c.want) || !strings.Contains(fmt.Sprint(err), c.text) {
				t.Fatalf("got %v, want %v (%q)", err, c.want, c.text)
			}
			if !bytes.Equal(stateBytes(t, view), before) {
				t.Fatal("a rejected message changed the view")
			}
		})
	}
	// The honest commit still applies, and once more it is of the wrong epoch.
	r, err := view.Process(reencode(t, honest.Commit), ProcessOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stateBytes(t, r.Commit.Public), stateBytes(t, honest.State.Public())) {
		t.Fatal("view differs from the committer's state")
	}
	if _, err := r.Commit.Public.Process(reencode(t, honest.Commit), ProcessOptions{}); !errors.Is(err, ErrWrongGroup) {
		t.Fatalf("replayed commit: %v", err)
	}
	// A GroupInfo of another epoch, or with a forged signature, does not match the view.
	gi := groupInfoOf(t, honest)
	if err := view.VerifyGroupInfo(gi); !errors.Is(err, ErrWrongGroup) {
		t.Fatalf("GroupInfo of the next epoch: %v", err)
	}
	if err := r.Commit.Public.VerifyGroupInfo(gi); err != nil {
		t.Fatal(err)
	}
	bad := *gi
	bad.Signature = bytes.Clone(gi.Signature)
	bad.Signature[0] ^= 1
	if err := r.Commit.Public.VerifyGroupInfo(&bad); !errors.Is(err, ErrSignature) {
		t.Fatalf("forged GroupInfo: %v", err)
	}
	bad = *gi
	bad.Signer = 2
	if err := r.Commit.Public.VerifyGroupInfo(&bad); !errors.Is(err, ErrSignature) {
		t.Fatalf("GroupInfo with another signer: %v", err)
	}
	if _, err := NewPublicGroup(&bad, nil); !errors.Is(err, ErrSignature) {
		t.Fatalf("NewPublicGroup of a GroupInfo with another signer: %v", err)
	}
}

func TestLoadPublicGroupRejects(t *testing.T) {
	t.Parallel()
	f := newHostileFixture(t, MLS128DHKEMX25519AES128GCMSHA256Ed25519)
	good := stateBytes(t, f.bob.g.Public())
	for _, c := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"version", append([]byte{9}, good[1:]...)},
		{"truncated", good[:len(good)-3]},
		{"trailing", append(bytes.Clone(good), 0)},
		{"interim", func() []byte {
			b := bytes.Clone(good)
			b[len(b)-3] ^= 1 // inside the confirmation tag
			return b
		}()},
	} {
		if _, err := LoadPublicGroup(c.b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

func FuzzLoadPublicGroup(f *testing.F) {
	fx := newHostileFixture(f, MLS128DHKEMX25519AES128GCMSHA256Ed25519)
	f.Add(stateBytes(f, fx.bob.g.Public()))
	prop, err := fx.carol.g.ProposeRemove(0)
	if err != nil {
		f.Fatal(err)
	}
	view := fx.bob.g.Public()
	if _, err := view.Process(prop, ProcessOptions{}); err != nil {
		f.Fatal(err)
	}
	f.Add(stateBytes(f, view))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := LoadPublicGroup(b)
		if err != nil {
			return
		}
		out := stateBytes(t, p)
		q, err := LoadPublicGroup(out)
		if err != nil {
			t.Fatalf("re-encoded view does not load: %v", err)
		}
		if !bytes.Equal(stateBytes(t, q), out) {
			t.Fatal("encoding is not stable")
		}
	})
}
