package mls

import (
	"errors"
	"fmt"
	"testing"
)

// reinitTo is the ReInit of the tests: another group ID, cipher suite cs, and required
// capabilities (basic and x509) in the new group.
func reinitTo(id string, cs CipherSuite) *ReInit {
	return &ReInit{GroupID: []byte(id), Version: ProtocolVersionMLS10, CipherSuite: cs, Extensions: Extensions{requiredBasicX509()}}
}

// TestReInit: a ReInit commit ends the group for every member (the last epoch refuses Encrypt,
// Commit and Process with ErrReInit, also after a store and load); a member creates the new group
// (ReInit's ID, suite and extensions, a reinit PSK of the last epoch) and the others join it with
// their last epoch as JoinOptions.Resumption; Welcomes without that state, with a wrong epoch or
// for another group are refused, and a reinit PSK is refused in a normal commit.
func TestReInit(t *testing.T) {
	t.Parallel()
	alice, bob, carol := newGoClient(t, 1, "alice"), newGoClient(t, 1, "bob"), newGoClient(t, 1, "carol")
	createWith(t, alice, GroupOptions{}, bob, carol)
	beforeCarol := cloneGroup(t, carol.g)

	ri := reinitTo("g-new", 3)
	for name, o := range map[string]CommitOptions{
		"with an Add":         {ReInit: ri, Add: []*KeyPackage{newGoClient(t, 1, "dave").kp}},
		"with a Remove":       {ReInit: ri, Remove: []LeafIndex{2}},
		"version below":       {ReInit: &ReInit{GroupID: []byte("x"), Version: 0, CipherSuite: 1}},
		"no group ID":         {ReInit: &ReInit{Version: ProtocolVersionMLS10, CipherSuite: 1}},
		"duplicate extension": {ReInit: &ReInit{GroupID: []byte("x"), Version: ProtocolVersionMLS10, CipherSuite: 1, Extensions: Extensions{requiredBasicX509(), requiredBasicX509()}}},
	} {
		if _, err := alice.g.Commit(o); !errors.Is(err, ErrInvalidProposal) {
			t.Errorf("ReInit commit %s: %v", name, err)
		}
	}
	old := alice.g.Epoch()
	pc, err := alice.g.Commit(CommitOptions{ReInit: ri})
	if err != nil {
		t.Fatal(err)
	}
	if pc.Result.ReInit == nil || string(pc.Result.ReInit.GroupID) != "g-new" {
		t.Fatalf("commit result ReInit %+v", pc.Result.ReInit)
	}
	msg, err := bob.g.Encrypt([]byte("last words of the old epoch"), nil)
	if err != nil {
		t.Fatal(err)
	}
	alice.g = confirm(t, pc)
	for _, c := range []*goClient{bob, carol} {
		r, err := c.g.Process(reencode(t, pc.Commit), ProcessOptions{})
		if err != nil {
			t.Fatalf("%s processing the ReInit commit: %v", c.name, err)
		}
		if r.Commit.ReInit == nil || r.Commit.ReInit.CipherSuite != 3 || r.Commit.Epoch != old+1 {
			t.Fatalf("%s: ReInit %+v epoch %d", c.name, r.Commit.ReInit, r.Commit.Epoch)
		}
		c.g = r.Commit.State
	}
	sameEpoch(t, alice.g, bob.g, carol.g)

	// The last epoch sends and receives nothing, also when restored from storage.
	restored := cloneGroup(t, bob.g)
	for _, g := range []*Group{alice.g, bob.g, restored} {
		if got, ok := g.PendingReInit(); !ok || string(got.GroupID) != "g-new" || !extensionsEqual(got.Extensions, ri.Extensions) {
			t.Fatalf("PendingReInit %+v %v", got, ok)
		}
		useAll(t, g, msg, ErrReInit)
	}
	bob.g = restored

	// Bob creates the new group (suite 3) with alice and carol.
	nb, na, nc := newGoClient(t, 3, "bob"), newGoClient(t, 3, "alice"), newGoClient(t, 3, "carol")
	if _, err := bob.g.ReInitGroup(nb.signer, nb.cred(), []*KeyPackage{na.kp}, GroupOptions{Extensions: Extensions{}}); err == nil {
		t.Fatal("ReInitGroup with extensions other than the ReInit's")
	}
	if _, err := bob.g.ReInitGroup(newGoClient(t, 1, "bob1").signer, nb.cred(), []*KeyPackage{na.kp}, GroupOptions{}); err == nil {
		t.Fatal("ReInitGroup with a signer of the old suite")
	}
	if _, err := beforeCarol.ReInitGroup(nc.signer, nc.cred(), nil, GroupOptions{}); !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("ReInitGroup from a live epoch: %v", err)
	}
	npc, err := bob.g.ReInitGroup(nb.signer, nb.cred(), []*KeyPackage{na.kp, nc.kp}, GroupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nb.g = confirm(t, npc)
	ctx := nb.g.GroupContext()
	if string(ctx.GroupID) != "g-new" || ctx.CipherSuite != 3 || ctx.Epoch != 1 || !extensionsEqual(ctx.Extensions, ri.Extensions) {
		t.Fatalf("new group %x suite %v epoch %d", ctx.GroupID, ctx.CipherSuite, ctx.Epoch)
	}
	w := reencode(t, npc.Welcome).Welcome
	if _, err := JoinFromWelcome(w, nc.kp, nc.kpPriv, nc.signer, JoinOptions{}); !errors.Is(err, ErrNoPSK) {
		t.Fatalf("joining without the old group's state: %v", err)
	}
	if _, err := JoinFromWelcome(w, nc.kp, nc.kpPriv, nc.signer, JoinOptions{Resumption: beforeCarol}); !errors.Is(err, ErrNoPSK) {
		t.Fatalf("joining with the epoch before the ReInit: %v", err)
	}
	if na.g, err = JoinFromWelcome(w, na.kp, na.kpPriv, na.signer, JoinOptions{Resumption: alice.g}); err != nil {
		t.Fatal(err)
	}
	if nc.g, err = JoinFromWelcome(w, nc.kp, nc.kpPriv, nc.signer, JoinOptions{Resumption: carol.g}); err != nil {
		t.Fatal(err)
	}
	sameEpoch(t, nb.g, na.g, nc.g)
	m, err := na.g.Encrypt([]byte("new group"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []*Group{nb.g, nc.g} {
		if r, err := g.Process(reencode(t, m), ProcessOptions{}); err != nil || string(r.ApplicationData) != "new group" {
			t.Fatalf("new group message: %v", err)
		}
	}

	// A group that is not the ReInit's, resumed with the reinit PSK, is refused by the joiner.
	other := newGoClient(t, 3, "other")
	if other.g, err = CreateGroup([]byte("g-other"), other.signer, other.cred(), GroupOptions{Extensions: ri.Extensions}); err != nil {
		t.Fatal(err)
	}
	nc2 := newGoClient(t, 3, "carol")
	psk := PreSharedKeyID{PSKType: PSKTypeResumption, Usage: ResumptionPSKUsageReinit, PSKGroupID: carol.g.GroupID(), PSKEpoch: carol.g.Epoch()}
	opc, err := other.g.commit(CommitOptions{Add: []*KeyPackage{nc2.kp}, PSKs: []PreSharedKeyID{psk}}, carol.g)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := JoinFromWelcome(reencode(t, opc.Welcome).Welcome, nc2.kp, nc2.kpPriv, nc2.signer, JoinOptions{Resumption: carol.g}); !errors.Is(err, ErrInvalidCommit) {
		t.Fatalf("joining a group other than the ReInit's: %v", err)
	}
	// A reinit PSK outside a new group's first commit.
	if _, err := nb.g.commit(CommitOptions{PSKs: []PreSharedKeyID{psk}}, carol.g); !errors.Is(err, ErrInvalidProposal) {
		t.Fatalf("reinit PSK in epoch %d: %v", nb.g.Epoch(), err)
	}
}

// TestReInitTSMLS: ReInit with ts-mls, both ways and in every pairing of who commits the ReInit
// and who creates the new group (suite 1 to suite 3, the new group requiring basic and x509):
// ts-mls processes Go's ReInit commit and Go processes ts-mls's; ts-mls joins the new group Go
// creates (joinGroupFromReinit) and Go joins the one ts-mls creates (reinitCreateNewGroup, its
// Welcome without the tree); both then talk in the new group.
func TestReInitTSMLS(t *testing.T) {
	t.Parallel()
	p := startTSPeer(t)
	const cs, ns = 1, 3
	for _, tc := range []struct{ commits, creates string }{{"go", "go"}, {"go", "ts"}, {"ts", "go"}, {"ts", "ts"}} {
		t.Run(fmt.Sprintf("%s-commits-%s-creates", tc.commits, tc.creates), func(t *testing.T) {
			p.t = t
			ts, ts2 := "ts-ri-"+tc.commits+tc.creates, "ts-ri-new-"+tc.commits+tc.creates
			gid := fmt.Sprintf("%x", "reinit-"+tc.commits+tc.creates)
			member := newGoClient(t, cs, "go-member")
			var err error
			// The old group: ts-mls creates it and adds the Go member.
			p.call("new_client", map[string]any{"name": ts, "suite": cs})
			p.call("create_group", map[string]any{"name": ts, "group_id": fmt.Sprintf("%x", ts)})
			rep := p.call("add", map[string]any{"name": ts, "key_packages": []string{kpHex(t, member.kp)}, "public": true})
			if member.g, err = JoinFromWelcome(decodeMsg(t, p.hexField(rep, "welcome")).Welcome, member.kp, member.kpPriv, member.signer, JoinOptions{}); err != nil {
				t.Fatal(err)
			}

			ri := reinitTo("reinit-"+tc.commits+tc.creates, ns)
			if tc.commits == "go" {
				pc, err := member.g.Commit(CommitOptions{ReInit: ri})
				if err != nil {
					t.Fatal(err)
				}
				tsProcess(t, p, ts, pc.Commit)
				member.g = confirm(t, pc)
			} else {
				rep := p.call("reinit", map[string]any{"name": ts, "group_id": gid, "suite": ns, "public": true,
					"extensions": []map[string]any{{"type": int(ri.Extensions[0].Type), "data": fmt.Sprintf("%x", ri.Extensions[0].Data)}}})
				r := goProcess(t, member, p.hexField(rep, "commit"))
				if r.Commit.ReInit == nil || !extensionsEqual(r.Commit.ReInit.Extensions, ri.Extensions) || r.Commit.ReInit.CipherSuite != ns {
					t.Fatalf("ts-mls's ReInit read as %+v", r.Commit.ReInit)
				}
			}
			agree(t, p, ts, member.g)
			if _, err := member.g.Encrypt([]byte("x"), nil); !errors.Is(err, ErrReInit) {
				t.Fatalf("Encrypt after the ReInit: %v", err)
			}

			newMember := newGoClient(t, ns, "go-member")
			tsKP := p.hexField(p.call("new_client", map[string]any{"name": ts2, "suite": ns}), "key_package")
			if tc.creates == "go" {
				npc, err := member.g.ReInitGroup(newMember.signer, newMember.cred(), []*KeyPackage{decodeMsg(t, tsKP).KeyPackage}, GroupOptions{})
				if err != nil {
					t.Fatal(err)
				}
				newMember.g = confirm(t, npc)
				p.call("join_reinit", map[string]any{"name": ts, "new_name": ts2, "welcome": encodeHex(t, npc.Welcome)})
			} else {
				rep := p.call("reinit_group", map[string]any{"name": ts, "new_name": ts2, "key_packages": []string{kpHex(t, newMember.kp)}})
				rt, err := DecodeRatchetTree(p.hexField(rep, "ratchet_tree"))
				if err != nil {
					t.Fatal(err)
				}
				w := decodeMsg(t, p.hexField(rep, "welcome")).Welcome
				if _, err := JoinFromWelcome(w, newMember.kp, newMember.kpPriv, newMember.signer, JoinOptions{RatchetTree: rt}); !errors.Is(err, ErrNoPSK) {
					t.Fatalf("joining ts-mls's new group without the old state: %v", err)
				}
				if newMember.g, err = JoinFromWelcome(w, newMember.kp, newMember.kpPriv, newMember.signer, JoinOptions{RatchetTree: rt, Resumption: member.g}); err != nil {
					t.Fatalf("joining ts-mls's new group: %v", err)
				}
			}
			ctx := newMember.g.GroupContext()
			if string(ctx.GroupID) != string(ri.GroupID) || ctx.CipherSuite != ns || ctx.Epoch != 1 || !extensionsEqual(ctx.Extensions, ri.Extensions) {
				t.Fatalf("new group %x suite %v epoch %d", ctx.GroupID, ctx.CipherSuite, ctx.Epoch)
			}
			agree(t, p, ts2, newMember.g)
			m, err := newMember.g.Encrypt([]byte("hello new group"), nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := tsProcess(t, p, ts2, m); got["plaintext"] != fmt.Sprintf("%x", "hello new group") {
				t.Fatalf("ts-mls read %v", got["plaintext"])
			}
			rep = p.call("encrypt", map[string]any{"name": ts2, "plaintext": fmt.Sprintf("%x", "and back")})
			if r := goProcess(t, newMember, p.hexField(rep, "message")); string(r.ApplicationData) != "and back" {
				t.Fatalf("Go read %q", r.ApplicationData)
			}
		})
	}
}
