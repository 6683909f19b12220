package mls

import (
	"bytes"
	"errors"
	"testing"
)

// fuzzTreeInput packs a fuzz input: one byte selecting the cipher suite, one byte of group ID
// length, the group ID, then the TLS-encoded ratchet tree.
func fuzzTreeInput(cs CipherSuite, groupID, tree []byte) []byte {
	idx := 0
	for i, c := range SupportedCipherSuites() {
		if c == cs {
			idx = i
		}
	}
	b := []byte{byte(idx), byte(len(groupID))}
	b = append(b, groupID...)
	return append(b, tree...)
}

// FuzzRatchetTreeValidate decodes a ratchet tree, builds the in-memory tree and validates it. Any
// input must give an error or a tree, never a panic; a tree must re-encode to its input, its
// incremental hashes must equal fresh ones after operations, and validation errors must be the
// package's sentinels.
func FuzzRatchetTreeValidate(f *testing.F) {
	type valCase struct {
		suiteField
		Tree    hexBytes `json:"tree"`
		GroupID hexBytes `json:"group_id"`
	}
	for _, c := range loadVectorCases[valCase](f, "tree-validation.json") {
		f.Add(fuzzTreeInput(c.CipherSuite, c.GroupID, c.Tree))
	}
	type opCase struct {
		suiteField
		TreeBefore hexBytes `json:"tree_before"`
		TreeAfter  hexBytes `json:"tree_after"`
	}
	for _, c := range loadVectorCases[opCase](f, "tree-operations.json") {
		f.Add(fuzzTreeInput(c.CipherSuite, nil, c.TreeBefore))
		f.Add(fuzzTreeInput(c.CipherSuite, nil, c.TreeAfter))
	}
	for _, c := range loadVectorCases[treekemCase](f, "treekem.json") {
		f.Add(fuzzTreeInput(c.CipherSuite, c.GroupID, c.RatchetTree))
	}
	suites := SupportedCipherSuites()
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 2 || int(data[1]) > len(data)-2 {
			return
		}
		s, err := suites[int(data[0])%len(suites)].impl()
		if err != nil {
			t.Fatal(err)
		}
		groupID := data[2 : 2+int(data[1])]
		treeBytes := data[2+int(data[1]):]
		rt, err := DecodeRatchetTree(treeBytes)
		if err != nil {
			return
		}
		tr, err := ratchetTreeFromWire(s, rt)
		if err != nil {
			if !errors.Is(err, ErrInvalidTree) {
				t.Fatalf("ratchetTreeFromWire error %v is not ErrInvalidTree", err)
			}
			return
		}
		enc, err := tr.wire().Encode()
		if err != nil {
			t.Fatalf("encoding a decoded tree: %v", err)
		}
		if !bytes.Equal(enc, treeBytes) {
			t.Fatalf("tree re-encodes differently:\n in  %x\n out %x", treeBytes, enc)
		}
		for x := range tr.nodes {
			tr.resolution(nodeIndex(x))
		}
		h := tr.treeHash()
		err = tr.validate(&treeCheck{groupID: groupID, treeHash: h})
		if err != nil && !errors.Is(err, ErrInvalidTree) && !errors.Is(err, ErrMalformed) {
			t.Fatalf("validate error %v is neither ErrInvalidTree nor ErrMalformed", err)
		}
		// Operations on a clone keep the incremental hash equal to a fresh one and leave the
		// original alone.
		c := tr.clone()
		members := c.members()
		if len(members) > 0 {
			ln := c.leaf(members[0])
			if err := c.removeLeaf(members[len(members)-1]); err != nil {
				t.Fatalf("removing member %d: %v", members[len(members)-1], err)
			}
			c.addLeaf(ln)
			if err := c.updateLeaf(members[0], ln); err != nil {
				t.Fatalf("updating member %d: %v", members[0], err)
			}
			if len(c.wire()) > 0 && !bytes.Equal(c.treeHash(), freshHash(t, c)) {
				t.Fatal("incremental tree hash differs from a fresh one")
			}
		}
		if !bytes.Equal(tr.treeHash(), h) {
			t.Fatal("operations on a clone changed the original's tree hash")
		}
	})
}
