package mls

import (
	"bytes"
	"testing"
)

func init() { vectorLayouts["treekem.json"] = testTreeKEMVectors }

type treekemPathSecret struct {
	Node       uint32   `json:"node"`
	PathSecret hexBytes `json:"path_secret"`
}

type treekemLeafPrivate struct {
	Index          uint32              `json:"index"`
	EncryptionPriv hexBytes            `json:"encryption_priv"`
	SignaturePriv  hexBytes            `json:"signature_priv"`
	PathSecrets    []treekemPathSecret `json:"path_secrets"`
}

type treekemUpdatePath struct {
	Sender        uint32     `json:"sender"`
	UpdatePath    hexBytes   `json:"update_path"`
	PathSecrets   []hexBytes `json:"path_secrets"`
	CommitSecret  hexBytes   `json:"commit_secret"`
	TreeHashAfter hexBytes   `json:"tree_hash_after"`
}

type treekemCase struct {
	suiteField
	GroupID                 hexBytes             `json:"group_id"`
	Epoch                   uint64               `json:"epoch"`
	ConfirmedTranscriptHash hexBytes             `json:"confirmed_transcript_hash"`
	RatchetTree             hexBytes             `json:"ratchet_tree"`
	LeavesPrivate           []treekemLeafPrivate `json:"leaves_private"`
	UpdatePaths             []treekemUpdatePath  `json:"update_paths"`
}

// groupContextBytes encodes the GroupContext a treekem vector uses with a path: no extensions and
// the tree hash after the path is merged.
func (c *treekemCase) groupContextBytes(t *testing.T, treeHash []byte) []byte {
	t.Helper()
	gc := &GroupContext{Version: ProtocolVersionMLS10, CipherSuite: c.CipherSuite, GroupID: c.GroupID,
		Epoch: c.Epoch, TreeHash: treeHash, ConfirmedTranscriptHash: c.ConfirmedTranscriptHash}
	b, err := gc.Marshal()
	if err != nil {
		t.Fatalf("encoding GroupContext: %v", err)
	}
	return b
}

// privateState builds a member's private tree state from the vector and checks that every given
// path secret yields the public key of its node.
func privateState(t *testing.T, tr *ratchetTree, lp *treekemLeafPrivate) *treePrivate {
	t.Helper()
	l := leafIndex(lp.Index)
	ln := tr.leaf(l)
	if ln == nil {
		t.Fatalf("private leaf %d is blank", l)
	}
	pub, err := tr.cs.kemPublicKey(lp.EncryptionPriv)
	if err != nil {
		t.Fatalf("leaf %d encryption_priv: %v", l, err)
	}
	equalHex(t, "leaf public key from encryption_priv", pub, ln.EncryptionKey)
	p := newTreePrivate(l, lp.EncryptionPriv, ln.EncryptionKey)
	for _, ps := range lp.PathSecrets {
		x := nodeIndex(ps.Node)
		priv, pub, err := tr.cs.deriveKeyPair(tr.cs.deriveSecret(ps.PathSecret, "node"))
		if err != nil {
			t.Fatal(err)
		}
		if int(x) >= len(tr.nodes) || !bytes.Equal(pub, tr.nodes[x].encryptionKey()) {
			t.Fatalf("leaf %d: path secret of node %d does not give the node's public key", l, x)
		}
		p.keys[x] = nodeKey{priv: priv, pub: pub}
	}
	return p
}

// testTreeKEMVectors processes every UpdatePath for every private leaf (path secret, commit secret,
// tree hash after), then creates a new UpdatePath from every private leaf and checks that every
// other private leaf processes it to the same commit secret and tree hash.
func testTreeKEMVectors(t *testing.T, raw []byte) {
	runCases(t, raw, func(t *testing.T, s *suite, c *treekemCase) {
		base := treeFromHex(t, s, c.RatchetTree)
		base.treeHash()
		privs := make(map[leafIndex]*treePrivate)
		for i := range c.LeavesPrivate {
			lp := &c.LeavesPrivate[i]
			privs[leafIndex(lp.Index)] = privateState(t, base, lp)
		}

		// Process the given paths.
		for _, upc := range c.UpdatePaths {
			up := new(UpdatePath)
			if err := decode("UpdatePath", upc.UpdatePath, up); err != nil {
				t.Fatalf("decoding update_path: %v", err)
			}
			sender := leafIndex(upc.Sender)
			tr := base.clone()
			if err := tr.mergeUpdatePath(sender, up, c.GroupID); err != nil {
				t.Fatalf("merging the path of leaf %d: %v", sender, err)
			}
			equalHex(t, "tree_hash_after", tr.treeHash(), upc.TreeHashAfter)
			gc := c.groupContextBytes(t, upc.TreeHashAfter)
			for l, p := range privs {
				if l == sender {
					continue
				}
				res, err := p.decryptPath(tr, sender, up, nil, gc)
				if err != nil {
					t.Fatalf("leaf %d processing the path of leaf %d: %v", l, sender, err)
				}
				if int(l) < len(upc.PathSecrets) {
					equalHex(t, "path secret", res.pathSecret, upc.PathSecrets[l])
				} else {
					t.Errorf("no path secret given for leaf %d", l)
				}
				equalHex(t, "commit secret", res.commitSecret, upc.CommitSecret)
			}
		}

		// Create a path from each private leaf and have the others process it.
		for i := range c.LeavesPrivate {
			lp := &c.LeavesPrivate[i]
			sender := leafIndex(lp.Index)
			signer, err := s.parseSigningKey(lp.SignaturePriv)
			if err != nil {
				t.Fatal(err)
			}
			tr := base.clone()
			pp, err := tr.applyNewPath(pathOptions{groupID: c.GroupID, leaf: sender, template: base.leaf(sender), signer: signer})
			if err != nil {
				t.Fatalf("leaf %d creating a path: %v", sender, err)
			}
			th := tr.treeHash()
			gc := c.groupContextBytes(t, th)
			up, err := pp.encrypt(gc)
			if err != nil {
				t.Fatalf("leaf %d encrypting its path: %v", sender, err)
			}
			enc, err := encode("UpdatePath", up)
			if err != nil {
				t.Fatal(err)
			}
			wire := new(UpdatePath)
			if err := decode("UpdatePath", enc, wire); err != nil {
				t.Fatal(err)
			}
			for l, p := range privs {
				if l == sender {
					continue
				}
				rt := base.clone()
				if err := rt.mergeUpdatePath(sender, wire, c.GroupID); err != nil {
					t.Fatalf("leaf %d merging the new path of leaf %d: %v", l, sender, err)
				}
				equalHex(t, "receiver's tree hash", rt.treeHash(), th)
				res, err := p.decryptPath(rt, sender, wire, nil, gc)
				if err != nil {
					t.Fatalf("leaf %d processing the new path of leaf %d: %v", l, sender, err)
				}
				equalHex(t, "commit secret of the new path", res.commitSecret, pp.commitSecret())
				// The receiver's new private keys match the committer's for every node both hold.
				for x, k := range res.priv.keys {
					if ck, ok := pp.private().keys[x]; ok && !bytes.Equal(k.pub, ck.pub) {
						t.Errorf("node %d: receiver and committer disagree on the key", x)
					}
				}
			}
			// The committer's own tree validates with its new leaf.
			if err := tr.verifyParentHashes(); err != nil {
				t.Errorf("tree after leaf %d's path: %v", sender, err)
			}
		}
	})
}
