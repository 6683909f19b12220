package mls

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
)

// simMember is one member of the TreeKEM simulation: its own view of the tree and its private state.
type simMember struct {
	m    *treeMember
	tree *ratchetTree
	priv *treePrivate
}

// simGroup drives a group through commits in which every member keeps and updates its own tree.
type simGroup struct {
	t       *testing.T
	s       *suite
	groupID []byte
	epoch   uint64
	members map[leafIndex]*simMember
	seed    int
	// externals counts the external joins.
	externals int
}

func (g *simGroup) groupContext(treeHash []byte) []byte {
	gc := &GroupContext{Version: ProtocolVersionMLS10, CipherSuite: g.s.id, GroupID: g.groupID,
		Epoch: g.epoch + 1, TreeHash: treeHash, ConfirmedTranscriptHash: []byte("cth")}
	b, err := gc.Marshal()
	if err != nil {
		g.t.Fatal(err)
	}
	return b
}

// commit has leaf committer remove the leaves in removes, add adds new members and send a path.
// Every other member processes it; joiners join with the tree and their path secret.
func (g *simGroup) commit(committer leafIndex, adds int, removes []leafIndex) {
	t := g.t
	t.Helper()
	c := g.members[committer]
	type proposal struct {
		add    *LeafNode
		remove leafIndex
	}
	var props []proposal
	for _, r := range removes {
		props = append(props, proposal{remove: r})
	}
	joiners := make([]*treeMember, adds)
	for i := range joiners {
		g.seed++
		joiners[i] = newTreeMember(t, g.s, g.seed)
		props = append(props, proposal{add: joiners[i].leaf})
	}
	apply := func(tr *ratchetTree) (added []leafIndex) {
		for _, p := range props {
			if p.add == nil {
				if err := tr.removeLeaf(p.remove); err != nil {
					t.Fatal(err)
				}
			}
		}
		for _, p := range props {
			if p.add != nil {
				if err := tr.validateLeafNode(p.add, leafIndex(tr.width()), &leafCheck{groupID: g.groupID, source: LeafNodeSourceKeyPackage}); err != nil {
					t.Fatalf("validating an added leaf: %v", err)
				}
				added = append(added, tr.addLeaf(p.add))
			}
		}
		return added
	}

	next := c.tree.clone()
	added := apply(next)
	pp, err := next.applyNewPath(pathOptions{groupID: g.groupID, leaf: committer, template: c.m.leaf, signer: c.m.signer, added: added})
	if err != nil {
		t.Fatal(err)
	}
	th := next.treeHash()
	gc := g.groupContext(th)
	up, err := pp.encrypt(gc)
	if err != nil {
		t.Fatal(err)
	}
	newMembers := map[leafIndex]*simMember{committer: {m: c.m, tree: next, priv: pp.private()}}
	for l, mem := range g.members {
		if l == committer || slicesContains(removes, l) {
			continue
		}
		rt := mem.tree.clone()
		if got := apply(rt); fmt.Sprint(got) != fmt.Sprint(added) {
			t.Fatalf("leaf %d placed the adds at %v, the committer at %v", l, got, added)
		}
		if err := rt.validateLeafNode(&up.LeafNode, committer, &leafCheck{groupID: g.groupID, source: LeafNodeSourceCommit}); err != nil {
			t.Fatalf("leaf %d validating the committer's leaf: %v", l, err)
		}
		if err := rt.mergeUpdatePath(committer, up, g.groupID); err != nil {
			t.Fatalf("leaf %d merging: %v", l, err)
		}
		if !bytes.Equal(rt.treeHash(), th) {
			t.Fatalf("leaf %d computes another tree hash", l)
		}
		res, err := mem.priv.prune(rt).decryptPath(rt, committer, up, added, gc)
		if err != nil {
			t.Fatalf("leaf %d decrypting: %v", l, err)
		}
		if !bytes.Equal(res.commitSecret, pp.commitSecret()) {
			t.Fatalf("leaf %d derives another commit secret", l)
		}
		newMembers[l] = &simMember{m: mem.m, tree: rt, priv: res.priv}
	}
	for i, l := range added {
		wire, err := next.wire().Encode()
		if err != nil {
			t.Fatal(err)
		}
		jt := treeFromHex(t, g.s, wire)
		if err := jt.validate(&treeCheck{groupID: g.groupID, treeHash: th, checkLifetimes: true}); err != nil {
			t.Fatalf("joiner %d validating the tree: %v", l, err)
		}
		secret, err := pp.pathSecretFor(l)
		if err != nil {
			t.Fatal(err)
		}
		jp, err := newTreePrivate(l, joiners[i].encPriv, joiners[i].leaf.EncryptionKey).withPathSecret(jt, committer, secret)
		if err != nil {
			t.Fatalf("joiner %d: %v", l, err)
		}
		newMembers[l] = &simMember{m: joiners[i], tree: jt, priv: jp}
	}
	// The committer's new leaf is the template for its next commit.
	newMembers[committer].m = &treeMember{sigPriv: c.m.sigPriv, signer: c.m.signer, leaf: pp.leaf()}
	g.members = newMembers
	g.epoch++
	// Every member's tree is valid and every member holds exactly the keys of its non-blank
	// path nodes that the tree says it should (checked by decrypting the next commit).
	if err := next.validate(&treeCheck{groupID: g.groupID, treeHash: th}); err != nil {
		t.Fatalf("epoch %d: committer's tree invalid: %v", g.epoch, err)
	}
}

// externalJoin has a new member join by an external commit with a path (RFC 9420 §12.4.3.2):
// it places itself with addLeaf and creates the path; every member merges it with
// mergeExternalPath and derives the same commit secret.
func (g *simGroup) externalJoin() {
	t := g.t
	t.Helper()
	g.seed++
	j := newTreeMember(t, g.s, g.seed)
	var some *simMember
	for _, m := range g.members {
		some = m
		break
	}
	next := some.tree.clone()
	l := next.addLeaf(j.leaf)
	pp, err := next.applyNewPath(pathOptions{groupID: g.groupID, leaf: l, template: j.leaf, signer: j.signer})
	if err != nil {
		t.Fatal(err)
	}
	th := next.treeHash()
	gc := g.groupContext(th)
	up, err := pp.encrypt(gc)
	if err != nil {
		t.Fatal(err)
	}
	newMembers := map[leafIndex]*simMember{l: {m: &treeMember{sigPriv: j.sigPriv, signer: j.signer, leaf: pp.leaf()}, tree: next, priv: pp.private()}}
	for ml, mem := range g.members {
		rt := mem.tree.clone()
		got, err := rt.mergeExternalPath(up, g.groupID)
		if err != nil {
			t.Fatalf("leaf %d merging the external path: %v", ml, err)
		}
		if got != l || !bytes.Equal(rt.treeHash(), th) {
			t.Fatalf("leaf %d placed the joiner at %d (want %d) or computes another tree hash", ml, got, l)
		}
		res, err := mem.priv.prune(rt).decryptPath(rt, l, up, nil, gc)
		if err != nil {
			t.Fatalf("leaf %d decrypting the external path: %v", ml, err)
		}
		if !bytes.Equal(res.commitSecret, pp.commitSecret()) {
			t.Fatalf("leaf %d derives another commit secret", ml)
		}
		newMembers[ml] = &simMember{m: mem.m, tree: rt, priv: res.priv}
	}
	// A forged external path changes nothing.
	bad := *up
	bad.LeafNode.Signature = append([]byte(nil), up.LeafNode.Signature...)
	bad.LeafNode.Signature[0] ^= 1
	before := some.tree.clone()
	if _, err := before.mergeExternalPath(&bad, g.groupID); err == nil {
		t.Fatal("forged external path accepted")
	}
	if !bytes.Equal(before.treeHash(), some.tree.treeHash()) || before.width() != some.tree.width() {
		t.Fatal("a rejected external path changed the tree")
	}
	if err := next.validate(&treeCheck{groupID: g.groupID, treeHash: th}); err != nil {
		t.Fatalf("tree after the external join: %v", err)
	}
	g.members = newMembers
	g.epoch++
	g.externals++
}

func slicesContains(s []leafIndex, l leafIndex) bool {
	for _, x := range s {
		if x == l {
			return true
		}
	}
	return false
}

// TestTreeKEMSimulation runs random commits (adds, removes, plain updates) through a group in which
// every member keeps its own tree: all agree on tree hashes and commit secrets, joiners validate
// the tree and use their Welcome path secret, and every tree stays valid (parent hashes with
// unmerged leaves, truncation). It runs with 1 and 4 HPKE workers.
func TestTreeKEMSimulation(t *testing.T) {
	t.Parallel()
	for _, procs := range []int{1, 4} {
		for _, cs := range []CipherSuite{MLS128DHKEMX25519AES128GCMSHA256Ed25519, MLS128DHKEMP256AES128GCMSHA256P256} {
			t.Run(fmt.Sprintf("suite%d/procs%d", cs, procs), func(t *testing.T) {
				defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
				s, err := cs.impl()
				if err != nil {
					t.Fatal(err)
				}
				first := newTreeMember(t, s, 0)
				g := &simGroup{t: t, s: s, groupID: []byte("sim group"), seed: 0}
				tr := newRatchetTree(s, first.leaf)
				g.members = map[leafIndex]*simMember{0: {m: first, tree: tr, priv: newTreePrivate(0, first.encPriv, first.leaf.EncryptionKey)}}
				rng := rand.New(rand.NewPCG(uint64(cs), uint64(procs)))
				g.commit(0, 6, nil)
				for range 25 {
					ls := make([]leafIndex, 0, len(g.members))
					for l := range g.members {
						ls = append(ls, l)
					}
					committer := ls[rng.IntN(len(ls))]
					var removes []leafIndex
					if len(ls) > 3 && rng.IntN(3) == 0 {
						for _, l := range ls {
							if l != committer && len(removes) < rng.IntN(3)+1 {
								removes = append(removes, l)
							}
						}
					}
					if rng.IntN(5) == 0 {
						g.externalJoin()
						continue
					}
					g.commit(committer, rng.IntN(4), removes)
				}
				// The highest leaf leaves last, so the tree also truncates.
				for len(g.members) > 2 {
					hi := leafIndex(0)
					for l := range g.members {
						hi = max(hi, l)
					}
					lo := hi
					for l := range g.members {
						lo = min(lo, l)
					}
					g.commit(lo, 0, []leafIndex{hi})
				}
				if g.externals == 0 {
					g.externalJoin()
				}
				t.Logf("%d epochs (%d external joins), final width %d", g.epoch, g.externals, g.members[0].tree.width())
			})
		}
	}
}

// TestUpdatePathHostile checks that malformed and forged UpdatePaths are rejected with
// ErrInvalidUpdatePath, leaving the receiver's tree and private state unchanged.
func TestUpdatePathHostile(t *testing.T) {
	t.Parallel()
	s := suite1(t)
	groupID := []byte("hostile")
	ms := make([]*treeMember, 6)
	base := newRatchetTree(s, nil)
	for i := range ms {
		ms[i] = newTreeMember(t, s, i)
		if i == 0 {
			base = newRatchetTree(s, ms[0].leaf)
		} else {
			base.addLeaf(ms[i].leaf)
		}
	}
	const sender, receiver = leafIndex(1), leafIndex(4)
	recvPriv := newTreePrivate(receiver, ms[receiver].encPriv, ms[receiver].leaf.EncryptionKey)
	gcFor := func(th []byte) []byte {
		gc := &GroupContext{Version: ProtocolVersionMLS10, CipherSuite: s.id, GroupID: groupID, Epoch: 1, TreeHash: th}
		b, err := gc.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	ct := base.clone()
	pp, err := ct.applyNewPath(pathOptions{groupID: groupID, leaf: sender, template: ms[sender].leaf, signer: ms[sender].signer})
	if err != nil {
		t.Fatal(err)
	}
	gc := gcFor(ct.treeHash())
	good, err := pp.encrypt(gc)
	if err != nil {
		t.Fatal(err)
	}
	copyPath := func() *UpdatePath {
		b, err := encode("UpdatePath", good)
		if err != nil {
			t.Fatal(err)
		}
		up := new(UpdatePath)
		if err := decode("UpdatePath", b, up); err != nil {
			t.Fatal(err)
		}
		return up
	}
	resign := func(up *UpdatePath) { signLeaf(t, s, &up.LeafNode, ms[sender].signer, groupID, sender) }

	mergeCases := []struct {
		name   string
		sender leafIndex
		mutate func(up *UpdatePath)
		want   string
	}{
		{"too few nodes", sender, func(up *UpdatePath) { up.Nodes = up.Nodes[:len(up.Nodes)-1] }, "path nodes"},
		{"too many nodes", sender, func(up *UpdatePath) { up.Nodes = append(up.Nodes, up.Nodes[0]) }, "path nodes"},
		{"bad leaf signature", sender, func(up *UpdatePath) { up.LeafNode.Signature[0] ^= 1 }, "signature"},
		{"wrong sender", 2, func(*UpdatePath) {}, "signature"},
		{"blank sender", 9, func(*UpdatePath) {}, "blank or outside"},
		{"source update", sender, func(up *UpdatePath) { up.LeafNode.Source = LeafNodeSourceUpdate; resign(up) }, "source"},
		{"unchanged leaf key", sender, func(up *UpdatePath) { up.LeafNode.EncryptionKey = ms[sender].leaf.EncryptionKey; resign(up) }, "unchanged"},
		{"invalid node key", sender, func(up *UpdatePath) { up.Nodes[0].EncryptionKey = []byte{1, 2, 3} }, "key of path node"},
		{"swapped node key", sender, func(up *UpdatePath) {
			up.Nodes[0].EncryptionKey, up.Nodes[1].EncryptionKey = up.Nodes[1].EncryptionKey, up.Nodes[0].EncryptionKey
		}, "parent hash"},
		{"wrong parent hash", sender, func(up *UpdatePath) { up.LeafNode.ParentHash[0] ^= 1; resign(up) }, "parent hash"},
	}
	for _, tc := range mergeCases {
		t.Run("merge/"+tc.name, func(t *testing.T) {
			tr := base.clone()
			before := encodeTree(t, tr)
			up := copyPath()
			tc.mutate(up)
			err := tr.mergeUpdatePath(tc.sender, up, groupID)
			if !errors.Is(err, ErrInvalidUpdatePath) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrInvalidUpdatePath mentioning %q", err, tc.want)
			}
			if !bytes.Equal(encodeTree(t, tr), before) || !bytes.Equal(tr.treeHash(), base.treeHash()) {
				t.Fatal("a rejected path changed the tree")
			}
		})
	}

	decryptCases := []struct {
		name   string
		mutate func(up *UpdatePath) []byte // returns the group context to use
		added  []leafIndex
		want   string
	}{
		{"corrupted ciphertext", func(up *UpdatePath) []byte {
			for i := range up.Nodes {
				for j := range up.Nodes[i].EncryptedPathSecret {
					up.Nodes[i].EncryptedPathSecret[j].Ciphertext[0] ^= 1
				}
			}
			return gc
		}, nil, "path secret"},
		{"wrong group context", func(*UpdatePath) []byte { return gcFor([]byte("other")) }, nil, "path secret"},
		{"missing ciphertext", func(up *UpdatePath) []byte {
			for i := range up.Nodes {
				up.Nodes[i].EncryptedPathSecret = up.Nodes[i].EncryptedPathSecret[:0]
			}
			return gc
		}, nil, "encrypted path secrets"},
		{"wrong exclusion list", func(*UpdatePath) []byte { return gc }, []leafIndex{0, 2, 3, 5}, "encrypted path secrets"},
		{"receiver excluded", func(*UpdatePath) []byte { return gc }, []leafIndex{receiver}, "no private key"},
		{"secret for another key", func(up *UpdatePath) []byte {
			// A well-formed ciphertext of a secret that does not give the path's public keys.
			for i := range up.Nodes {
				for j := range up.Nodes[i].EncryptedPathSecret {
					kem, c, err := s.encryptWithLabel(keyOfRecipient(t, base, sender, i, j), labelUpdatePathNode, gc, make([]byte, s.hashSize()))
					if err != nil {
						t.Fatal(err)
					}
					up.Nodes[i].EncryptedPathSecret[j] = HPKECiphertext{KEMOutput: kem, Ciphertext: c}
				}
			}
			return gc
		}, nil, "does not give its public key"},
	}
	for _, tc := range decryptCases {
		t.Run("decrypt/"+tc.name, func(t *testing.T) {
			tr := base.clone()
			up := copyPath()
			useGC := tc.mutate(up)
			if err := tr.mergeUpdatePath(sender, up, groupID); err != nil {
				t.Fatal(err)
			}
			keysBefore := fmt.Sprint(recvPriv.keys)
			_, err := recvPriv.decryptPath(tr, sender, up, tc.added, useGC)
			if !errors.Is(err, ErrInvalidUpdatePath) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrInvalidUpdatePath mentioning %q", err, tc.want)
			}
			if fmt.Sprint(recvPriv.keys) != keysBefore {
				t.Fatal("a rejected path changed the private state")
			}
		})
	}
	// The unmodified path works.
	tr := base.clone()
	if err := tr.mergeUpdatePath(sender, copyPath(), groupID); err != nil {
		t.Fatal(err)
	}
	res, err := recvPriv.decryptPath(tr, sender, copyPath(), nil, gc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(res.commitSecret, pp.commitSecret()) {
		t.Fatal("commit secrets differ")
	}
}

// keyOfRecipient returns the public key of recipient j of path node i of sender's filtered direct
// path in tr.
func keyOfRecipient(t *testing.T, tr *ratchetTree, sender leafIndex, i, j int) []byte {
	t.Helper()
	_, cop := tr.filteredDirectPath(sender)
	res := tr.resolution(cop[i])
	return tr.nodes[res[j]].encryptionKey()
}
