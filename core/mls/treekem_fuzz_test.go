package mls

import (
	"bytes"
	"errors"
	mrand "math/rand/v2"
	"testing"
)

// FuzzUpdatePath feeds fuzzed UpdatePaths from a fuzzed sender to a 9-member group (parent keys on
// one path, unmerged leaves) and has every member merge and process them. Errors must be
// ErrInvalidUpdatePath (or a decode error) and leave the tree unchanged; nothing may panic; a path
// that processes must give every member the same commit secret.
func FuzzUpdatePath(f *testing.F) {
	s := suite1(f)
	groupID := []byte("fuzz group")
	// The setup must give the same keys in every fuzz worker process (the seed paths are signed
	// and hashed against them), so its randomness (Ed25519 seeds, leaf secrets) is fixed.
	rnd := mrand.NewChaCha8([32]byte{'f', 'u', 'z', 'z'})
	ms := make([]*treeMember, 9)
	for i := range ms {
		ms[i] = newTreeMemberFrom(f, s, i, rnd)
	}
	base := newRatchetTree(s, ms[0].leaf)
	for _, m := range ms[1:5] {
		base.addLeaf(m.leaf)
	}
	pp, err := base.applyNewPath(pathOptions{groupID: groupID, leaf: 0, template: ms[0].leaf, signer: ms[0].signer, rand: rnd})
	if err != nil {
		f.Fatal(err)
	}
	ms[0] = &treeMember{sigPriv: ms[0].sigPriv, signer: ms[0].signer, leaf: pp.leaf()}
	privs := []*treePrivate{pp.private()}
	for l := leafIndex(1); l < 9; l++ {
		p := newTreePrivate(l, ms[l].encPriv, ms[l].leaf.EncryptionKey)
		if l < 5 {
			secret, err := pp.pathSecretFor(l)
			if err != nil {
				f.Fatal(err)
			}
			if p, err = p.withPathSecret(base, 0, secret); err != nil {
				f.Fatal(err)
			}
		}
		privs = append(privs, p)
	}
	for _, m := range ms[5:] {
		base.addLeaf(m.leaf) // leaves 5-7 become unmerged at node 7; leaf 8 doubles the tree
	}
	if p := base.parentNode(7); p == nil || len(p.UnmergedLeaves) != 3 {
		f.Fatalf("node 7 is %+v, want three unmerged leaves", p)
	}
	baseHash := append([]byte(nil), base.treeHash()...)
	gcFor := func(th []byte) []byte {
		gc := &GroupContext{Version: ProtocolVersionMLS10, CipherSuite: s.id, GroupID: groupID, Epoch: 3, TreeHash: th}
		b, err := gc.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	for sender := range leafIndex(9) {
		tr := base.clone()
		pp, err := tr.applyNewPath(pathOptions{groupID: groupID, leaf: sender, template: ms[sender].leaf, signer: ms[sender].signer, rand: rnd})
		if err != nil {
			f.Fatal(err)
		}
		up, err := pp.encrypt(gcFor(tr.treeHash()))
		if err != nil {
			f.Fatal(err)
		}
		b, err := encode("UpdatePath", up)
		if err != nil {
			f.Fatal(err)
		}
		// The seed is a valid path: every other member merges and processes it.
		rt := base.clone()
		if err := rt.mergeUpdatePath(sender, up, groupID); err != nil {
			f.Fatalf("seed from leaf %d: %v", sender, err)
		}
		for _, p := range privs {
			if p.self == sender {
				continue
			}
			res, err := p.prune(rt).decryptPath(rt, sender, up, nil, gcFor(rt.treeHash()))
			if err != nil || !bytes.Equal(res.commitSecret, pp.commitSecret()) {
				f.Fatalf("seed from leaf %d, leaf %d: %v", sender, p.self, err)
			}
		}
		f.Add(byte(sender), byte(0), b)
	}
	f.Fuzz(func(t *testing.T, sender, addedMask byte, data []byte) {
		up := new(UpdatePath)
		if err := decode("UpdatePath", data, up); err != nil {
			return
		}
		from := leafIndex(sender % 10) // 9 is outside the tree's members
		var added []leafIndex
		for i := range leafIndex(8) {
			if addedMask&(1<<i) != 0 {
				added = append(added, i+1)
			}
		}
		tr := base.clone()
		if err := tr.mergeUpdatePath(from, up, groupID); err != nil {
			if !errors.Is(err, ErrInvalidUpdatePath) {
				t.Fatalf("merge error %v is not ErrInvalidUpdatePath", err)
			}
			if !bytes.Equal(tr.treeHash(), baseHash) {
				t.Fatal("a rejected path changed the tree")
			}
			return
		}
		gc := gcFor(tr.treeHash())
		var secret []byte
		for _, p := range privs {
			if p.self == from {
				continue
			}
			res, err := p.prune(tr).decryptPath(tr, from, up, added, gc)
			if err != nil {
				if !errors.Is(err, ErrInvalidUpdatePath) {
					t.Fatalf("decrypt error %v is not ErrInvalidUpdatePath", err)
				}
				continue
			}
			if secret != nil && !bytes.Equal(secret, res.commitSecret) {
				t.Fatal("two members derived different commit secrets from one path")
			}
			secret = res.commitSecret
		}
	})
}
