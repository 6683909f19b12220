package mls

import (
	"fmt"
	"testing"
)

func init() {
	vectorLayouts["tree-operations.json"] = testTreeOperationsVectors
	vectorLayouts["tree-validation.json"] = testTreeValidationVectors
}

// treeFromHex decodes a wire ratchet tree into a ratchetTree.
func treeFromHex(t *testing.T, s *suite, b []byte) *ratchetTree {
	t.Helper()
	rt, err := DecodeRatchetTree(b)
	if err != nil {
		t.Fatalf("decoding ratchet tree: %v", err)
	}
	tr, err := ratchetTreeFromWire(s, rt)
	if err != nil {
		t.Fatalf("ratchetTreeFromWire: %v", err)
	}
	return tr
}

// encodeTree returns the wire encoding of tr.
func encodeTree(t *testing.T, tr *ratchetTree) []byte {
	t.Helper()
	b, err := tr.wire().Encode()
	if err != nil {
		t.Fatalf("encoding tree: %v", err)
	}
	return b
}

// testTreeOperationsVectors applies a proposal (Add, Update, Remove) to tree_before and compares
// the serialized tree and tree hash with tree_after (RFC 9420 §7.7, §7.8).
func testTreeOperationsVectors(t *testing.T, raw []byte) {
	type opCase struct {
		suiteField
		TreeBefore     hexBytes `json:"tree_before"`
		Proposal       hexBytes `json:"proposal"`
		ProposalSender uint32   `json:"proposal_sender"`
		TreeHashBefore hexBytes `json:"tree_hash_before"`
		TreeAfter      hexBytes `json:"tree_after"`
		TreeHashAfter  hexBytes `json:"tree_hash_after"`
	}
	runCases(t, raw, func(t *testing.T, s *suite, c *opCase) {
		tr := treeFromHex(t, s, c.TreeBefore)
		equalHex(t, "tree_before re-encoded", encodeTree(t, tr), c.TreeBefore)
		equalHex(t, "tree_hash_before", tr.treeHash(), c.TreeHashBefore)
		before := tr.clone()
		p, err := DecodeProposal(c.Proposal)
		if err != nil {
			t.Fatalf("decoding proposal: %v", err)
		}
		switch p.Type {
		case ProposalTypeAdd:
			tr.addLeaf(&p.KeyPackage.LeafNode)
		case ProposalTypeUpdate:
			err = tr.updateLeaf(leafIndex(c.ProposalSender), p.LeafNode)
		case ProposalTypeRemove:
			err = tr.removeLeaf(leafIndex(p.Removed))
		default:
			t.Fatalf("unexpected proposal type %s", p.Type)
		}
		if err != nil {
			t.Fatalf("applying %s: %v", p.Type, err)
		}
		t.Logf("%s: %d → %d leaves", p.Type, before.width(), tr.width())
		equalHex(t, "tree_after", encodeTree(t, tr), c.TreeAfter)
		equalHex(t, "tree_hash_after (incremental)", tr.treeHash(), c.TreeHashAfter)
		// The incremental hash equals a from-scratch one, and the clone taken before is untouched.
		equalHex(t, "tree_hash_after (fresh)", treeFromHex(t, s, c.TreeAfter).treeHash(), c.TreeHashAfter)
		equalHex(t, "clone before the operation", encodeTree(t, before), c.TreeBefore)
		equalHex(t, "clone's tree hash", before.treeHash(), c.TreeHashBefore)
	})
}

// testTreeValidationVectors checks resolutions and per-node tree hashes, then validates the tree
// (parent hashes, leaf signatures, unmerged leaves, key uniqueness).
func testTreeValidationVectors(t *testing.T, raw []byte) {
	type valCase struct {
		suiteField
		Tree        hexBytes   `json:"tree"`
		GroupID     hexBytes   `json:"group_id"`
		Resolutions [][]uint32 `json:"resolutions"`
		TreeHashes  []hexBytes `json:"tree_hashes"`
	}
	runCases(t, raw, func(t *testing.T, s *suite, c *valCase) {
		tr := treeFromHex(t, s, c.Tree)
		if len(c.TreeHashes) != len(tr.nodes) || len(c.Resolutions) != len(tr.nodes) {
			t.Fatalf("vector has %d tree hashes and %d resolutions for a tree of %d nodes",
				len(c.TreeHashes), len(c.Resolutions), len(tr.nodes))
		}
		for x := range tr.nodes {
			equalHex(t, fmt.Sprintf("tree hash of node %d", x), tr.hashNode(nodeIndex(x)), c.TreeHashes[x])
			got := tr.resolution(nodeIndex(x))
			if len(got) != len(c.Resolutions[x]) {
				t.Errorf("resolution of node %d = %v, want %v", x, got, c.Resolutions[x])
				continue
			}
			for i := range got {
				if uint32(got[i]) != c.Resolutions[x][i] {
					t.Errorf("resolution of node %d = %v, want %v", x, got, c.Resolutions[x])
					break
				}
			}
		}
		if err := tr.validate(&treeCheck{groupID: c.GroupID, treeHash: c.TreeHashes[tr.root()]}); err != nil {
			t.Errorf("validate: %v", err)
		}
	})
}
