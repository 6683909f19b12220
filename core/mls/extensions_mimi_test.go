package mls

import (
	"bytes"
	"errors"
	"testing"
)

// appendUpdater applies a participant-list-like delta: each update is appended.
type appendUpdater struct{}

func (appendUpdater) ApplyAppData(id ComponentID, cur []byte, _ bool, updates [][]byte) ([]byte, error) {
	if id != 0x0022 {
		return ReplaceAppData{}.ApplyAppData(id, cur, true, updates)
	}
	out := bytes.Clone(cur)
	for _, u := range updates {
		out = append(out, u...)
	}
	return out, nil
}

// mimiRoomExtensions returns a hub signer and the GroupContext extensions of a MIMI room: the hub
// as external sender 0 and an app_data_dictionary with component 0x0023 = "room v1".
func mimiRoomExtensions(t testing.TB, cs CipherSuite) (*Signer, Extensions) {
	t.Helper()
	hub, err := GenerateSigner(cs)
	if err != nil {
		t.Fatal(err)
	}
	es, err := ExternalSendersExtension([]ExternalSender{{SignatureKey: hub.Public, Credential: Credential{Type: CredentialTypeBasic, Identity: []byte("hub")}}})
	if err != nil {
		t.Fatal(err)
	}
	dict, err := AppDataDictionary{}.Set(0x0023, []byte("room v1")).Extension()
	if err != nil {
		t.Fatal(err)
	}
	return hub, Extensions{es, dict}
}

func TestMIMIExtensionsInGroup(t *testing.T) {
	t.Parallel()
	cs := MLS128DHKEMX25519AES128GCMSHA256Ed25519
	hub, roomExts := mimiRoomExtensions(t, cs)
	var err error
	alice, bob := newGoClient(t, cs, "alice"), newGoClient(t, cs, "bob")
	if !bob.kp.LeafNode.Capabilities.hasProposal(ProposalTypeSelfRemove) {
		t.Fatal("KeyPackage does not advertise SelfRemove")
	}
	if alice.g, err = CreateGroup([]byte("mimi room"), alice.signer, alice.cred(), GroupOptions{Extensions: roomExts}); err != nil {
		t.Fatal(err)
	}
	pc, err := alice.g.Commit(CommitOptions{Add: []*KeyPackage{bob.kp}})
	if err != nil {
		t.Fatal(err)
	}
	alice.g = confirm(t, pc)
	if bob.g, err = JoinFromWelcome(pc.Welcome.Welcome, bob.kp, bob.kpPriv, bob.signer, JoinOptions{}); err != nil {
		t.Fatal(err)
	}
	appData := func(g *Group, id ComponentID) string {
		t.Helper()
		d, err := g.AppData()
		if err != nil {
			t.Fatal(err)
		}
		v, _ := d.Get(id)
		return string(v)
	}
	if appData(bob.g, 0x0023) != "room v1" {
		t.Fatal("bob does not see the room metadata")
	}
	// commitBy has from commit the cached proposals; the others process.
	commitBy := func(from *goClient, others ...*goClient) *CommitResult {
		t.Helper()
		pc, err := from.g.Commit(CommitOptions{AppData: appendUpdater{}})
		if err != nil {
			t.Fatal(err)
		}
		var res *CommitResult
		for _, o := range others {
			r, err := o.g.Process(reencode(t, pc.Commit), ProcessOptions{AppData: appendUpdater{}})
			if err != nil {
				t.Fatalf("%s: %v", o.name, err)
			}
			res = r.Commit
			if r.Commit.State != nil {
				o.g = r.Commit.State
			}
		}
		from.g = confirm(t, pc)
		return res
	}

	// A member's AppDataUpdate, committed by another.
	prop, err := bob.g.ProposeAppDataUpdate(AppDataUpdate{Component: 0x0023, Op: AppDataOpUpdate, Update: []byte("room v2")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.g.Process(reencode(t, prop), ProcessOptions{}); err != nil {
		t.Fatal(err)
	}
	commitBy(alice, bob)
	if appData(alice.g, 0x0023) != "room v2" || appData(bob.g, 0x0023) != "room v2" {
		t.Fatal("room metadata not replaced")
	}

	// The hub's external AppDataUpdates (participant list delta), processed by both, committed by bob.
	for _, part := range []string{"alice;", "bob;"} {
		ext, err := ExternalProposal(alice.g.GroupID(), alice.g.Epoch(), 0, hub,
			&Proposal{Type: ProposalTypeAppDataUpdate, AppDataUpdate: &AppDataUpdate{Component: 0x0022, Op: AppDataOpUpdate, Update: []byte(part)}})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []*goClient{alice, bob} {
			r, err := c.g.Process(reencode(t, ext), ProcessOptions{})
			if err != nil || r.Kind != ReceivedProposal || r.Sender.Type != SenderTypeExternal {
				t.Fatalf("%s: external proposal: %v", c.name, err)
			}
		}
	}
	commitBy(bob, alice)
	if appData(alice.g, 0x0022) != "alice;bob;" || appData(bob.g, 0x0022) != "alice;bob;" {
		t.Fatalf("participant list %q", appData(alice.g, 0x0022))
	}
	// An external proposal signed by someone else is rejected.
	forged, err := ExternalProposal(alice.g.GroupID(), alice.g.Epoch(), 0, bob.signer, &Proposal{Type: ProposalTypeRemove, Removed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.g.Process(reencode(t, forged), ProcessOptions{}); !errors.Is(err, ErrSignature) {
		t.Fatalf("forged external proposal: %v", err)
	}
	if _, err := ExternalProposal(alice.g.GroupID(), alice.g.Epoch(), 0, hub, &Proposal{Type: ProposalTypeSelfRemove}); err == nil {
		t.Fatal("external SelfRemove allowed")
	}

	// A member cannot commit its own SelfRemove.
	selfAlice := cloneGroup(t, alice.g)
	if _, err := selfAlice.ProposeSelfRemove(); err != nil {
		t.Fatal(err)
	}
	if _, err := selfAlice.Commit(CommitOptions{}); !errors.Is(err, ErrInvalidProposal) {
		t.Fatalf("own SelfRemove committed: %v", err)
	}
	// Bob leaves by SelfRemove; alice commits it.
	prop, err = bob.g.ProposeSelfRemove()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.g.Process(reencode(t, prop), ProcessOptions{}); err != nil {
		t.Fatal(err)
	}
	pc, err = alice.g.Commit(CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := bob.g.Process(reencode(t, pc.Commit), ProcessOptions{})
	if err != nil || !r.Commit.SelfRemoved {
		t.Fatalf("bob after his SelfRemove: %v %+v", err, r)
	}
	if len(pc.State.Members()) != 1 {
		t.Fatalf("%d members", len(pc.State.Members()))
	}
}

func (c *Capabilities) hasProposal(p ProposalType) bool {
	for _, x := range c.Proposals {
		if x == p {
			return true
		}
	}
	return false
}

func TestMIMIExtensionCodecs(t *testing.T) {
	t.Parallel()
	// AppDataDictionary: sorted, unique.
	d := AppDataDictionary{}.Set(5, []byte("e")).Set(1, []byte("a")).Set(3, nil).Delete(3)
	ext, err := d.Extension()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseAppDataDictionary(ext.Data)
	if err != nil || len(back) != 2 || back[0].ID != 1 || back[1].ID != 5 {
		t.Fatalf("%v %+v", err, back)
	}
	if _, err := ParseAppDataDictionary([]byte{0x06, 0, 5, 0, 0, 1, 0}); err == nil {
		t.Fatal("unsorted dictionary accepted")
	}
	// Safe AAD.
	aad, err := EncodeSafeAAD([]SafeAADItem{{ID: 0x20, Data: []byte("frank")}, {ID: 0x02, Data: nil}})
	if err != nil {
		t.Fatal(err)
	}
	items, err := DecodeSafeAAD(aad)
	if err != nil || len(items) != 2 || items[0].ID != 0x02 {
		t.Fatalf("%v %+v", err, items)
	}
	if _, err := EncodeSafeAAD([]SafeAADItem{{ID: 1}, {ID: 1}}); err == nil {
		t.Fatal("duplicate Safe AAD component accepted")
	}
	// Media types and framing.
	mts := []MediaType{{Type: "application/mimi-content"}, {Type: "text/plain", Parameters: []MediaTypeParameter{{"charset", "utf-8"}}}}
	b, err := EncodeContentMediaTypes(mts)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeContentMediaTypes(b)
	if err != nil || len(got) != 2 || got[1].Parameters[0].Value != "utf-8" {
		t.Fatalf("%v %+v", err, got)
	}
	af := &ApplicationFraming{MediaType: MediaType{Type: "application/mimi-content"}, Content: []byte{0xa1}}
	b, err = af.Encode()
	if err != nil {
		t.Fatal(err)
	}
	af2, err := DecodeApplicationFraming(b)
	if err != nil || af2.MediaType.Type != af.MediaType.Type || !bytes.Equal(af2.Content, af.Content) {
		t.Fatalf("%v %+v", err, af2)
	}
	// New proposal types through the Proposal codec.
	for _, p := range []Proposal{
		{Type: ProposalTypeSelfRemove},
		{Type: ProposalTypeAppDataUpdate, AppDataUpdate: &AppDataUpdate{Component: 0x22, Op: AppDataOpUpdate, Update: []byte{1}}},
		{Type: ProposalTypeAppDataUpdate, AppDataUpdate: &AppDataUpdate{Component: 0x23, Op: AppDataOpRemove}},
	} {
		enc, err := p.Encode()
		if err != nil {
			t.Fatal(err)
		}
		dp, err := DecodeProposal(enc)
		if err != nil || dp.Type != p.Type {
			t.Fatalf("%s: %v", p.Type, err)
		}
		if re, _ := dp.Encode(); !bytes.Equal(re, enc) {
			t.Fatalf("%s: re-encoding differs", p.Type)
		}
	}
	if _, err := DecodeProposal([]byte{0, 8, 0, 1, 3}); err == nil {
		t.Fatal("AppDataUpdate with operation 3 accepted")
	}
	// Last-resort KeyPackages.
	sg, _ := GenerateSigner(1)
	kp, _, err := NewKeyPackage(sg, Credential{Type: CredentialTypeBasic, Identity: []byte("x")}, KeyPackageOptions{LastResort: true})
	if err != nil || !kp.IsLastResort() || kp.Verify() != nil {
		t.Fatalf("last resort: %v", err)
	}
	kp, _, _ = NewKeyPackage(sg, Credential{Type: CredentialTypeBasic, Identity: []byte("x")}, KeyPackageOptions{})
	if kp.IsLastResort() {
		t.Fatal("ordinary KeyPackage marked last resort")
	}
}

// FuzzMIMIExtensions: the extension decoders never panic and re-encode what they accept
// canonically.
func FuzzMIMIExtensions(f *testing.F) {
	d, _ := AppDataDictionary{}.Set(0x22, []byte("x")).Extension()
	f.Add(d.Data)
	aad, _ := EncodeSafeAAD([]SafeAADItem{{ID: 2, Data: []byte("a")}})
	f.Add(aad)
	mt, _ := EncodeContentMediaTypes([]MediaType{{Type: "text/plain", Parameters: []MediaTypeParameter{{"a", "b"}}}})
	f.Add(mt)
	af, _ := (&ApplicationFraming{MediaType: MediaType{Type: "a"}, Content: []byte("c")}).Encode()
	f.Add(af)
	f.Fuzz(func(t *testing.T, b []byte) {
		if d, err := ParseAppDataDictionary(b); err == nil {
			if e, err := d.Extension(); err != nil || !bytes.Equal(e.Data, b) {
				t.Fatalf("dictionary re-encoding: %v", err)
			}
		}
		if items, err := DecodeSafeAAD(b); err == nil {
			if e, err := EncodeSafeAAD(items); err != nil || !bytes.Equal(e, b) {
				t.Fatalf("Safe AAD re-encoding: %v", err)
			}
		}
		if mts, err := DecodeContentMediaTypes(b); err == nil {
			if e, err := EncodeContentMediaTypes(mts); err != nil || !bytes.Equal(e, b) {
				t.Fatalf("media types re-encoding: %v", err)
			}
		}
		if a, err := DecodeApplicationFraming(b); err == nil {
			if e, err := a.Encode(); err != nil || !bytes.Equal(e, b) {
				t.Fatalf("framing re-encoding: %v", err)
			}
		}
		_, _ = ParseExternalSenders(b)
	})
}

// TestSelfRemoveInExternalCommit: an external joiner commits a pending SelfRemove by reference
// (ExternalJoinOptions.SelfRemoves): every member and the public view accept it, the leaving member
// sees its removal, the joiner takes the freed leaf; other proposals, proposals of another epoch
// and forged ones are refused by the joiner before anything is sent.
func TestSelfRemoveInExternalCommit(t *testing.T) {
	t.Parallel()
	alice, bob, carol, dave := newGoClient(t, 1, "alice"), newGoClient(t, 1, "bob"), newGoClient(t, 1, "carol"), newGoClient(t, 1, "dave")
	createWith(t, alice, GroupOptions{}, bob, carol)
	leave, err := carol.g.ProposeSelfRemove()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*goClient{alice, bob} {
		if _, err := c.g.Process(reencode(t, leave), ProcessOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	view := alice.g.Public()
	gi := groupInfoMsgOf(t, alice.g)

	add, err := alice.g.ProposeAdd(newGoClient(t, 1, "erin").kp)
	if err != nil {
		t.Fatal(err)
	}
	forged := reencode(t, leave)
	forged.PublicMessage.Auth.Signature[0] ^= 1
	pcOld, err := alice.g.Commit(CommitOptions{SkipCached: true})
	if err != nil {
		t.Fatal(err)
	}
	staleGI := groupInfoOf(t, pcOld) // the next epoch: carol's SelfRemove is of the one before
	for name, tc := range map[string]struct {
		gi   *GroupInfo
		msgs []*MLSMessage
		want error
	}{
		"an Add":               {gi, []*MLSMessage{add}, ErrInvalidProposal},
		"a forged SelfRemove":  {gi, []*MLSMessage{forged}, nil},
		"one SelfRemove twice": {gi, []*MLSMessage{leave, leave}, ErrInvalidProposal},
		"of another epoch":     {staleGI, []*MLSMessage{leave}, ErrWrongGroup},
	} {
		_, err := ExternalJoin(tc.gi, dave.signer, dave.cred(), ExternalJoinOptions{SelfRemoves: tc.msgs})
		if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("external join with %s: %v, want %v", name, err, tc.want)
		}
	}

	ej, err := ExternalJoin(gi, dave.signer, dave.cred(), ExternalJoinOptions{SelfRemoves: []*MLSMessage{reencode(t, leave)}})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(ej.Commit.PublicMessage.Content.Commit.Proposals); n != 2 {
		t.Fatalf("external commit with %d proposals, want ExternalInit and the reference", n)
	}
	r, err := view.Process(reencode(t, ej.Commit), ProcessOptions{})
	if err != nil {
		t.Fatalf("public view: %v", err)
	}
	view = r.Commit.Public
	for _, c := range []*goClient{alice, bob} {
		r, err := c.g.Process(reencode(t, ej.Commit), ProcessOptions{})
		if err != nil {
			t.Fatalf("%s refuses the external commit: %v", c.name, err)
		}
		if len(r.Commit.Removed) != 1 || string(r.Commit.Removed[0].Credential.Identity) != "carol" {
			t.Fatalf("%s: removed %+v", c.name, r.Commit.Removed)
		}
		c.g = r.Commit.State
	}
	if r, err := carol.g.Process(reencode(t, ej.Commit), ProcessOptions{}); err != nil || !r.Commit.SelfRemoved {
		t.Fatalf("carol: %v", err)
	}
	dave.g = confirm(t, ej)
	sameEpoch(t, alice.g, bob.g, dave.g)
	if dave.g.LeafIndex() != 2 || len(dave.g.Members()) != 3 {
		t.Fatalf("dave at leaf %d of %d members", dave.g.LeafIndex(), len(dave.g.Members()))
	}
	if !bytes.Equal(view.GroupContext().TreeHash, alice.g.GroupContext().TreeHash) {
		t.Fatal("the public view's tree differs from the members'")
	}
}

// groupInfoMsgOf returns g's GroupInfo, unwrapped.
func groupInfoMsgOf(t testing.TB, g *Group) *GroupInfo {
	t.Helper()
	m, err := g.GroupInfo()
	if err != nil {
		t.Fatal(err)
	}
	return reencode(t, m).GroupInfo
}
