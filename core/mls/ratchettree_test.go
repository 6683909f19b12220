package mls

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/mimi-gateway/mimi-gateway/core/tlspl"
)

// treeMember is a member built for the tree tests: its keys and its key_package-source leaf.
type treeMember struct {
	sigPriv []byte
	signer  signingKey
	encPriv []byte
	leaf    *LeafNode
}

// testCapabilities are the capabilities of the tree tests' leaves.
func testCapabilities(s *suite) Capabilities {
	return Capabilities{
		Versions:     []ProtocolVersion{ProtocolVersionMLS10},
		CipherSuites: []CipherSuite{s.id},
		Credentials:  []CredentialType{CredentialTypeBasic},
	}
}

// newTreeMember makes a member with fresh keys derived from seed (deterministic and fast) and a
// signed leaf of source key_package, valid for all time.
func newTreeMember(t testing.TB, s *suite, seed int) *treeMember {
	t.Helper()
	return newTreeMemberFrom(t, s, seed, nil)
}

// newTreeMemberFrom is newTreeMember with the signature key's seed drawn from r.
func newTreeMemberFrom(t testing.TB, s *suite, seed int, r io.Reader) *treeMember {
	t.Helper()
	ikm := make([]byte, s.hashSize())
	binary.BigEndian.PutUint64(ikm, uint64(seed)+1)
	encPriv, encPub, err := s.deriveKeyPair(ikm)
	if err != nil {
		t.Fatal(err)
	}
	sigPriv, sigPub, err := s.generateSignatureKeyPair(r)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := s.parseSigningKey(sigPriv)
	if err != nil {
		t.Fatal(err)
	}
	ln := &LeafNode{
		EncryptionKey: encPub,
		SignatureKey:  sigPub,
		Credential:    Credential{Type: CredentialTypeBasic, Identity: fmt.Appendf(nil, "member-%d", seed)},
		Capabilities:  testCapabilities(s),
		Source:        LeafNodeSourceKeyPackage,
		Lifetime:      Lifetime{NotBefore: 0, NotAfter: ^uint64(0)},
	}
	signLeaf(t, s, ln, signer, nil, 0)
	return &treeMember{sigPriv: sigPriv, signer: signer, encPriv: encPriv, leaf: ln}
}

// signLeaf (re-)signs ln for the given group and leaf index.
func signLeaf(t testing.TB, s *suite, ln *LeafNode, signer signingKey, groupID []byte, l leafIndex) {
	t.Helper()
	tbs, err := ln.TBS(groupID, uint32(l))
	if err != nil {
		t.Fatal(err)
	}
	if ln.Signature, err = s.signWithLabelKey(signer, labelLeafNodeTBS, tbs); err != nil {
		t.Fatal(err)
	}
}

func suite1(t testing.TB) *suite {
	t.Helper()
	s, err := MLS128DHKEMX25519AES128GCMSHA256Ed25519.impl()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// freshHash returns the tree hash of tr computed from scratch (through the wire form).
func freshHash(t testing.TB, tr *ratchetTree) []byte {
	t.Helper()
	rt := tr.wire()
	if len(rt) == 0 {
		t.Fatal("empty tree")
	}
	f, err := ratchetTreeFromWire(tr.cs, rt)
	if err != nil {
		t.Fatal(err)
	}
	return f.treeHash()
}

// TestTreeAddRemoveTruncate walks a tree through growth and shrinkage and checks the shape, that
// the incremental hash always equals a fresh one, and that clones are unaffected.
func TestTreeAddRemoveTruncate(t *testing.T) {
	t.Parallel()
	s := suite1(t)
	ms := make([]*treeMember, 9)
	for i := range ms {
		ms[i] = newTreeMember(t, s, i)
	}
	tr := newRatchetTree(s, ms[0].leaf)
	check := func(wantWidth uint32, wantMembers int) {
		t.Helper()
		if tr.width() != wantWidth || tr.memberCount() != wantMembers {
			t.Fatalf("width %d members %d, want %d and %d", tr.width(), tr.memberCount(), wantWidth, wantMembers)
		}
		if !bytes.Equal(tr.treeHash(), freshHash(t, tr)) {
			t.Fatal("incremental tree hash differs from a fresh one")
		}
	}
	check(1, 1)
	for i := 1; i < 9; i++ {
		if l := tr.addLeaf(ms[i].leaf); l != leafIndex(i) {
			t.Fatalf("add %d went to leaf %d", i, l)
		}
	}
	check(16, 9)
	snapshot := tr.clone()
	snapHash := append([]byte(nil), snapshot.treeHash()...)
	// Removing leaf 8 leaves the right half blank: truncate to 8.
	if err := tr.removeLeaf(8); err != nil {
		t.Fatal(err)
	}
	check(8, 8)
	// A new member fills leaf 8 again: the tree doubles.
	if l := tr.addLeaf(ms[8].leaf); l != 8 {
		t.Fatalf("re-add went to leaf %d", l)
	}
	check(16, 9)
	// A hole is filled first.
	if err := tr.removeLeaf(3); err != nil {
		t.Fatal(err)
	}
	check(16, 8)
	if l := tr.addLeaf(newTreeMember(t, s, 100).leaf); l != 3 {
		t.Fatalf("add went to leaf %d, want the hole 3", l)
	}
	for _, l := range []leafIndex{8, 7, 6, 5, 4, 3, 2, 1} {
		if err := tr.removeLeaf(l); err != nil {
			t.Fatal(err)
		}
	}
	check(1, 1)
	if err := tr.removeLeaf(5); !errors.Is(err, ErrInvalidTree) {
		t.Fatalf("removing a leaf outside the tree: %v", err)
	}
	if err := tr.updateLeaf(0, ms[1].leaf); err != nil {
		t.Fatal(err)
	}
	check(1, 1)
	if !bytes.Equal(snapshot.treeHash(), snapHash) || !bytes.Equal(freshHash(t, snapshot), snapHash) || snapshot.memberCount() != 9 {
		t.Fatal("the clone changed with the original")
	}
}

// TestTreeUnmergedLeaves checks that an add under non-blank parents records the new leaf as
// unmerged (kept sorted), that resolutions include unmerged leaves, and that an update blanks them.
func TestTreeUnmergedLeaves(t *testing.T) {
	t.Parallel()
	s := suite1(t)
	tr := newRatchetTree(s, newTreeMember(t, s, 0).leaf)
	for i := 1; i < 4; i++ {
		tr.addLeaf(newTreeMember(t, s, i).leaf)
	}
	for _, x := range []nodeIndex{1, 3, 5} {
		tr.set(x, nil, &ParentNode{EncryptionKey: []byte{byte(x)}, ParentHash: []byte{}, UnmergedLeaves: []uint32{}})
	}
	if err := tr.removeLeaf(2); err != nil { // blanks leaf 2 and nodes 5 and 3
		t.Fatal(err)
	}
	if tr.parentNode(5) != nil || tr.parentNode(3) != nil || tr.parentNode(1) == nil {
		t.Fatal("remove did not blank exactly the direct path")
	}
	tr.set(3, nil, &ParentNode{EncryptionKey: []byte{3}, ParentHash: []byte{}, UnmergedLeaves: []uint32{3}})
	if l := tr.addLeaf(newTreeMember(t, s, 4).leaf); l != 2 {
		t.Fatalf("add went to leaf %d, want 2", l)
	}
	if got := tr.parentNode(3).UnmergedLeaves; fmt.Sprint(got) != "[2 3]" {
		t.Fatalf("unmerged leaves of the root = %v, want [2 3]", got)
	}
	for x, want := range map[nodeIndex]string{3: "[3 4 6]", 5: "[4 6]", 1: "[1]", 4: "[4]"} {
		if got := fmt.Sprint(tr.resolution(x)); got != want {
			t.Errorf("resolution of node %d = %s, want %s", x, got, want)
		}
	}
	if !bytes.Equal(tr.treeHash(), freshHash(t, tr)) {
		t.Fatal("incremental tree hash differs from a fresh one")
	}
	if err := tr.checkUnmerged(); err != nil {
		t.Fatal(err)
	}
	if err := tr.updateLeaf(2, newTreeMember(t, s, 7).leaf); err != nil {
		t.Fatal(err)
	}
	if tr.parentNode(3) != nil {
		t.Fatal("update did not blank the direct path")
	}
	if !bytes.Equal(tr.treeHash(), freshHash(t, tr)) {
		t.Fatal("incremental tree hash differs from a fresh one after the update")
	}
}

// validTestTree returns a validated tree from tree-validation.json with parent nodes and unmerged
// leaves, and its group ID.
func validTestTree(t *testing.T) (*ratchetTree, []byte) {
	t.Helper()
	type valCase struct {
		suiteField
		Tree    hexBytes `json:"tree"`
		GroupID hexBytes `json:"group_id"`
	}
	cases := loadVectorCases[valCase](t, "tree-validation.json")
	for _, c := range cases {
		if c.CipherSuite != 1 {
			continue
		}
		s := suite1(t)
		tr := treeFromHex(t, s, c.Tree)
		parents, unmerged := 0, 0
		for x := 1; x < len(tr.nodes); x += 2 {
			if p := tr.nodes[x].parent; p != nil {
				parents++
				unmerged += len(p.UnmergedLeaves)
			}
		}
		if parents >= 3 && unmerged >= 1 && tr.width() >= 8 {
			if err := tr.validate(&treeCheck{groupID: c.GroupID, treeHash: tr.treeHash()}); err != nil {
				t.Fatal(err)
			}
			return tr, c.GroupID
		}
	}
	t.Fatal("no suite-1 tree with parent nodes and unmerged leaves in tree-validation.json")
	return nil, nil
}

// TestValidateHostileTrees feeds invalid trees to validate and checks that each is rejected with
// ErrInvalidTree and the reason, without a panic.
func TestValidateHostileTrees(t *testing.T) {
	t.Parallel()
	base, groupID := validTestTree(t)

	firstParent := func(tr *ratchetTree) nodeIndex {
		for x := 1; x < len(tr.nodes); x += 2 {
			if tr.nodes[x].parent != nil {
				return nodeIndex(x)
			}
		}
		t.Fatal("no parent node")
		return 0
	}
	withUnmerged := func(tr *ratchetTree) nodeIndex {
		for x := 1; x < len(tr.nodes); x += 2 {
			if p := tr.nodes[x].parent; p != nil && len(p.UnmergedLeaves) > 0 {
				return nodeIndex(x)
			}
		}
		t.Fatal("no node with unmerged leaves")
		return 0
	}
	replaceParent := func(tr *ratchetTree, x nodeIndex, f func(p *ParentNode)) {
		p := *tr.nodes[x].parent
		p.UnmergedLeaves = append([]uint32(nil), p.UnmergedLeaves...)
		f(&p)
		tr.set(x, nil, &p)
	}
	members := base.members()

	cases := []struct {
		name       string
		mutate     func(tr *ratchetTree) *treeCheck // nil check: use the tree's own hash
		wantReason string
	}{
		{"wrong tree hash", func(tr *ratchetTree) *treeCheck {
			h := append([]byte(nil), tr.treeHash()...)
			h[0] ^= 1
			return &treeCheck{groupID: groupID, treeHash: h}
		}, "tree hash"},
		{"invalid parent hash", func(tr *ratchetTree) *treeCheck {
			replaceParent(tr, firstParent(tr), func(p *ParentNode) { p.ParentHash = append([]byte{1}, p.ParentHash...) })
			return nil
		}, "parent-hash valid"},
		{"replaced parent key", func(tr *ratchetTree) *treeCheck {
			replaceParent(tr, firstParent(tr), func(p *ParentNode) { p.EncryptionKey = tr.leaf(members[0]).EncryptionKey[:] })
			return nil
		}, "parent-hash valid"},
		{"wrong group ID", func(tr *ratchetTree) *treeCheck {
			return &treeCheck{groupID: []byte("another group"), treeHash: tr.treeHash()}
		}, "signature"},
		{"unmerged leaf not below its node", func(tr *ratchetTree) *treeCheck {
			x := withUnmerged(tr)
			replaceParent(tr, x, func(p *ParentNode) {
				for _, m := range members {
					if !inSubtree(m.node(), x) {
						p.UnmergedLeaves = append(p.UnmergedLeaves, uint32(m))
						return
					}
				}
			})
			return nil
		}, "not below it"},
		{"unmerged leaf listed twice", func(tr *ratchetTree) *treeCheck {
			replaceParent(tr, withUnmerged(tr), func(p *ParentNode) { p.UnmergedLeaves = append(p.UnmergedLeaves, p.UnmergedLeaves[0]) })
			return nil
		}, "twice"},
		{"unmerged leaf blank", func(tr *ratchetTree) *treeCheck {
			x := withUnmerged(tr)
			u := leafIndex(tr.parentNode(x).UnmergedLeaves[0])
			tr.set(u.node(), nil, nil)
			return nil
		}, "blank"},
		{"unmerged leaf out of range", func(tr *ratchetTree) *treeCheck {
			replaceParent(tr, withUnmerged(tr), func(p *ParentNode) { p.UnmergedLeaves = append(p.UnmergedLeaves, 1<<30) })
			return nil
		}, "outside the tree"},
		{"required capability missing", func(tr *ratchetTree) *treeCheck {
			w := requiredCapabilitiesData([]ExtensionType{0x0a0a}, nil, nil)
			return &treeCheck{groupID: groupID, treeHash: tr.treeHash(), extensions: Extensions{{Type: ExtensionRequiredCapabilities, Data: w}}}
		}, "required extension"},
		{"malformed required_capabilities", func(tr *ratchetTree) *treeCheck {
			return &treeCheck{groupID: groupID, treeHash: tr.treeHash(), extensions: Extensions{{Type: ExtensionRequiredCapabilities, Data: []byte{5, 1}}}}
		}, "required_capabilities"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tr := base.clone()
			c := tc.mutate(tr)
			if c == nil {
				c = &treeCheck{groupID: groupID, treeHash: tr.treeHash()}
			}
			err := tr.validate(c)
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrInvalidTree) && !errors.Is(err, ErrMalformed) {
				t.Errorf("error %v is neither ErrInvalidTree nor ErrMalformed", err)
			}
			if !strings.Contains(err.Error(), tc.wantReason) {
				t.Errorf("error %q does not mention %q", err, tc.wantReason)
			}
		})
	}
	if err := base.validate(&treeCheck{groupID: groupID, treeHash: base.treeHash()}); err != nil {
		t.Fatalf("the base tree changed: %v", err)
	}
}

// requiredCapabilitiesData encodes a required_capabilities extension.
func requiredCapabilitiesData(es []ExtensionType, ps []ProposalType, cs []CredentialType) []byte {
	var w tlspl.Writer
	writeUint16s(&w, es)
	writeUint16s(&w, ps)
	writeUint16s(&w, cs)
	b, err := w.Bytes()
	if err != nil {
		panic(err)
	}
	return b
}

// loadVectorCases reads a vector file from testdata.
func loadVectorCases[T any](t testing.TB, name string) []T {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var cases []T
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return cases
}

// TestValidateHostileLeaves builds trees of fresh members whose leaves break one rule of RFC 9420
// §7.3 / §12.4.3.1 each and checks that validate rejects them with the reason.
func TestValidateHostileLeaves(t *testing.T) {
	t.Parallel()
	s := suite1(t)
	groupID := []byte("group")
	build := func(mutate func(ms []*treeMember)) *ratchetTree {
		ms := make([]*treeMember, 5)
		for i := range ms {
			ms[i] = newTreeMember(t, s, i)
		}
		mutate(ms)
		tr := newRatchetTree(s, ms[0].leaf)
		for _, m := range ms[1:] {
			tr.addLeaf(m.leaf)
		}
		return tr
	}
	resign := func(m *treeMember) { signLeaf(t, s, m.leaf, m.signer, nil, 0) }
	cases := []struct {
		name       string
		mutate     func(ms []*treeMember)
		check      treeCheck
		wantReason string
	}{
		{"valid", func([]*treeMember) {}, treeCheck{}, ""},
		{"duplicate encryption key", func(ms []*treeMember) {
			ms[3].leaf.EncryptionKey = ms[1].leaf.EncryptionKey
			resign(ms[3])
		}, treeCheck{}, "same encryption key"},
		{"duplicate signature key", func(ms []*treeMember) {
			ms[4].leaf.SignatureKey = ms[2].leaf.SignatureKey
			ms[4].signer = ms[2].signer
			resign(ms[4])
		}, treeCheck{}, "same signature key"},
		{"credential type not supported by the others", func(ms []*treeMember) {
			ms[2].leaf.Credential = Credential{Type: CredentialTypeX509, Certificates: [][]byte{{1}}}
			ms[2].leaf.Capabilities.Credentials = []CredentialType{CredentialTypeBasic, CredentialTypeX509}
			resign(ms[2])
		}, treeCheck{}, "credential type x509"},
		{"own credential type not listed", func(ms []*treeMember) {
			ms[1].leaf.Capabilities.Credentials = []CredentialType{CredentialTypeX509}
			resign(ms[1])
		}, treeCheck{}, "own credential type"},
		{"extension not in capabilities", func(ms []*treeMember) {
			ms[1].leaf.Extensions = Extensions{{Type: 0xff00, Data: []byte{1}}}
			resign(ms[1])
		}, treeCheck{}, "extension 0xff00"},
		{"expired lifetime checked", func(ms []*treeMember) {
			ms[2].leaf.Lifetime = Lifetime{NotBefore: 1, NotAfter: 1000}
			resign(ms[2])
		}, treeCheck{checkLifetimes: true}, "lifetime"},
		{"expired lifetime not checked", func(ms []*treeMember) {
			ms[2].leaf.Lifetime = Lifetime{NotBefore: 1, NotAfter: 1000}
			resign(ms[2])
		}, treeCheck{}, ""},
		{"required credential missing", func([]*treeMember) {}, treeCheck{extensions: Extensions{{
			Type: ExtensionRequiredCapabilities, Data: requiredCapabilitiesData(nil, nil, []CredentialType{CredentialTypeX509})}}},
			"required credential"},
		{"required proposal missing", func([]*treeMember) {}, treeCheck{extensions: Extensions{{
			Type: ExtensionRequiredCapabilities, Data: requiredCapabilitiesData(nil, []ProposalType{0x0a0a}, nil)}}},
			"required proposal"},
		{"required default types are implied", func([]*treeMember) {}, treeCheck{extensions: Extensions{{
			Type: ExtensionRequiredCapabilities, Data: requiredCapabilitiesData([]ExtensionType{ExtensionExternalSenders}, []ProposalType{ProposalTypeGroupContextExtensions}, []CredentialType{CredentialTypeBasic})}}},
			""},
		{"signature by another key", func(ms []*treeMember) {
			signLeaf(t, s, ms[3].leaf, ms[1].signer, nil, 0)
		}, treeCheck{}, "leaf 3"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tr := build(tc.mutate)
			c := tc.check
			c.groupID, c.treeHash = groupID, tr.treeHash()
			err := tr.validate(&c)
			if tc.wantReason == "" {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrInvalidTree) && !errors.Is(err, ErrMalformed) {
				t.Errorf("error %v is neither ErrInvalidTree nor ErrMalformed", err)
			}
			if !strings.Contains(err.Error(), tc.wantReason) {
				t.Errorf("error %q does not mention %q", err, tc.wantReason)
			}
		})
	}
}

// TestValidateLeafNodeForGroup checks validateLeafNode as the group engine uses it for an Add.
func TestValidateLeafNodeForGroup(t *testing.T) {
	t.Parallel()
	s := suite1(t)
	tr := newRatchetTree(s, newTreeMember(t, s, 0).leaf)
	tr.addLeaf(newTreeMember(t, s, 1).leaf)
	fresh := newTreeMember(t, s, 2)
	if err := tr.validateLeafNode(fresh.leaf, 2, &leafCheck{source: LeafNodeSourceKeyPackage, checkLifetime: true}); err != nil {
		t.Fatalf("valid leaf rejected: %v", err)
	}
	if err := tr.validateLeafNode(fresh.leaf, 2, &leafCheck{source: LeafNodeSourceUpdate}); !errors.Is(err, ErrInvalidLeafNode) {
		t.Fatalf("wrong source accepted: %v", err)
	}
	dup := *fresh.leaf
	dup.EncryptionKey = tr.leaf(1).EncryptionKey
	signLeaf(t, s, &dup, fresh.signer, nil, 0)
	if err := tr.validateLeafNode(&dup, 2, &leafCheck{}); !errors.Is(err, ErrInvalidLeafNode) || !strings.Contains(err.Error(), "encryption key") {
		t.Fatalf("duplicate encryption key: %v", err)
	}
	// Replacing leaf 1 by a leaf with leaf 1's own keys is a uniqueness pass (Update checks the key
	// change itself).
	if err := tr.validateLeafNode(tr.leaf(1), 1, &leafCheck{}); err != nil {
		t.Fatalf("leaf compared with itself: %v", err)
	}
	bad := *fresh.leaf
	bad.Signature = append([]byte(nil), bad.Signature...)
	bad.Signature[0] ^= 1
	if err := tr.validateLeafNode(&bad, 2, &leafCheck{}); !errors.Is(err, ErrSignature) {
		t.Fatalf("bad signature: %v", err)
	}
}

// TestTreeFromWireHostile checks the shape checks of ratchetTreeFromWire on trees built in memory
// (the decoder rejects most of these already).
func TestTreeFromWireHostile(t *testing.T) {
	t.Parallel()
	s := suite1(t)
	leaf := func() *Node { return &Node{Type: NodeTypeLeaf, Leaf: newTreeMember(t, s, 0).leaf} }
	parent := func(unmerged ...uint32) *Node {
		return &Node{Type: NodeTypeParent, Parent: &ParentNode{EncryptionKey: []byte{1}, UnmergedLeaves: unmerged}}
	}
	cases := []struct {
		name string
		rt   RatchetTree
		want string
	}{
		{"empty", RatchetTree{}, "empty"},
		{"ends in a blank leaf", RatchetTree{leaf(), nil, nil}, "not truncated"},
		{"ends in a parent", RatchetTree{leaf(), parent()}, "not truncated"},
		{"parent at a leaf position", RatchetTree{parent(), nil, leaf()}, "node 0"},
		{"leaf at a parent position", RatchetTree{leaf(), leaf(), leaf()}, "node 1"},
		{"leaf node without body", RatchetTree{{Type: NodeTypeLeaf}}, "node 0"},
		{"unknown node type", RatchetTree{leaf(), {Type: 7, Parent: &ParentNode{}}, leaf()}, "node 1"},
		{"unmerged leaf out of range", RatchetTree{leaf(), parent(2), leaf()}, "outside the tree"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ratchetTreeFromWire(s, tc.rt)
			if !errors.Is(err, ErrInvalidTree) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrInvalidTree mentioning %q", err, tc.want)
			}
		})
	}
	// The same trees through the decoder: rejected before or by ratchetTreeFromWire, never a panic.
	for _, tc := range cases {
		b, err := tc.rt.Encode()
		if err != nil {
			continue
		}
		if rt, err := DecodeRatchetTree(b); err == nil {
			if _, err := ratchetTreeFromWire(s, rt); err == nil {
				t.Errorf("%s: accepted after a wire round trip", tc.name)
			}
		}
	}
}

// TestVerifyLeafSignaturesLowest checks that parallel signature verification reports the lowest
// failing leaf whatever the scheduling.
func TestVerifyLeafSignaturesLowest(t *testing.T) {
	t.Parallel()
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	s := suite1(t)
	tr := newRatchetTree(s, newTreeMember(t, s, 0).leaf)
	for i := 1; i < 12; i++ {
		m := newTreeMember(t, s, i)
		if i == 3 || i == 7 || i == 11 {
			m.leaf.Signature[5] ^= 0x10
		}
		tr.addLeaf(m.leaf)
	}
	for range 20 {
		err := tr.validate(&treeCheck{treeHash: tr.treeHash()})
		if !errors.Is(err, ErrSignature) || !strings.Contains(err.Error(), "leaf 3:") {
			t.Fatalf("got %v, want a signature error for leaf 3", err)
		}
	}
}
