package mls

// The in-memory ratchet tree (RFC 9420 §4, §7.1, §7.7–7.9).
//
// API for the group engine (all unexported; see docs/mls.md "Ratchet tree and TreeKEM"):
//
//	t := newRatchetTree(cs, leaf)                 // a one-member group; leaf signed by the creator
//	t, err := ratchetTreeFromWire(cs, rt)         // from a received RatchetTree (shape checks only)
//	err = t.validate(&treeCheck{...})             // full RFC 9420 §12.4.3.1 validation of a received tree
//	rt := t.wire()                                // RatchetTree for the ratchet_tree extension / Welcome
//	u := t.clone()                                // copy-on-write copy: O(nodes) pointer copy, no re-hashing
//	t.width(), t.leaf(i), t.members(), t.findLeaf(pred)
//	i := t.addLeaf(ln)                            // leftmost blank leaf or extend (Add)
//	err = t.updateLeaf(i, ln)                     // replace a leaf and blank its direct path (Update)
//	err = t.removeLeaf(i)                         // blank the leaf and its direct path, truncate (Remove)
//	t.resolution(x), t.treeHash()                 // cached, incrementally updated tree hash
//	err = t.validateLeafNode(ln, i, &leafCheck{})  // RFC 9420 §7.3 for Add/Update/commit leaves
//
// TreeKEM (treekem.go) works on a tree with the commit's proposals already applied:
//
//	pp, err := t.applyNewPath(pathOptions{...})   // committer: new leaf + path keys merged into t
//	gc := provisional GroupContext with t.treeHash()
//	up, err := pp.encrypt(gcBytes)                // HPKE to the copath resolutions, in parallel
//	pp.commitSecret(), pp.private(), pp.pathSecretFor(joiner)
//
//	err = t.mergeUpdatePath(sender, up, groupID)  // receiver: verify and merge the public part
//	l, err := t.mergeExternalPath(up, groupID)    // (external commit: place the joiner, then merge)
//	gc := provisional GroupContext with t.treeHash()
//	res, err := priv.decryptPath(t, sender, up, added, gcBytes)  // res.priv, res.commitSecret
//
// Representation: nodes is the array form of a complete tree (width a power of two, RFC 9420 §4.1),
// each entry a blank node or a pointer to an immutable LeafNode or ParentNode, plus the node's
// cached tree hash (nil when stale). Invariants:
//   - LeafNode and ParentNode values reachable from a tree are never modified after they are put
//     into it: a change replaces the pointer. Clones therefore share them safely.
//   - A change to node x clears the cached hash of x and of its ancestors only; treeHash recomputes
//     exactly the cleared entries (O(log n) hashes per changed leaf).
//   - The tree is truncated: unless it has a single leaf, the right subtree of the root holds a
//     non-blank leaf. removeLeaf restores this; the other operations cannot break it.
//
// A ratchetTree is not safe for concurrent modification. Reading methods other than treeHash and
// the hash-computing validation never write; treeHash fills the cache, so call it once before
// sharing a tree between goroutines (the group engine does so when it fixes an epoch's state).

import (
	"errors"
	"fmt"
	"math/bits"
	"slices"

	"github.com/mimi-gateway/mimi-gateway/core/tlspl"
)

// Errors of the ratchet tree and TreeKEM. They are wrapped with context; test with errors.Is.
var (
	// ErrInvalidTree means a ratchet tree violates RFC 9420 (§7.8, §7.9, §12.4.3.1): wrong tree hash,
	// invalid parent hashes, inconsistent unmerged leaves, duplicate keys, a tree that is not truncated.
	ErrInvalidTree = errors.New("mls: invalid ratchet tree")
	// ErrInvalidLeafNode means a LeafNode fails the checks of RFC 9420 §7.3.
	ErrInvalidLeafNode = errors.New("mls: invalid leaf node")
	// ErrCapabilities means a leaf's capabilities do not cover what the group requires (its
	// required_capabilities, the credential types of the other members, the GroupContext
	// extensions, the group's cipher suite and version); it always comes with ErrInvalidLeafNode.
	ErrCapabilities = errors.New("capabilities do not meet the group's requirements")
	// ErrInvalidUpdatePath means an UpdatePath does not fit the tree or its keys or parent hash do
	// not match what it claims (RFC 9420 §7.6, §12.4.2).
	ErrInvalidUpdatePath = errors.New("mls: invalid UpdatePath")
)

// treeNode is one entry of the array representation: blank when leaf and parent are both nil.
type treeNode struct {
	leaf   *LeafNode
	parent *ParentNode
	hash   []byte // cached tree hash of the subtree rooted here; nil when stale
}

func (n *treeNode) blank() bool { return n.leaf == nil && n.parent == nil }

// encryptionKey returns the node's HPKE public key (nil for a blank node).
func (n *treeNode) encryptionKey() []byte {
	switch {
	case n.leaf != nil:
		return n.leaf.EncryptionKey
	case n.parent != nil:
		return n.parent.EncryptionKey
	}
	return nil
}

// ratchetTree is the public state of a group's ratchet tree. See the file comment.
type ratchetTree struct {
	cs    *suite
	nodes []treeNode // len = nodeCount(width), width a power of two
}

// newRatchetTree returns the tree of a new group whose only member is leaf (leaf index 0).
func newRatchetTree(cs *suite, leaf *LeafNode) *ratchetTree {
	return &ratchetTree{cs: cs, nodes: []treeNode{{leaf: leaf}}}
}

// ratchetTreeFromWire builds a tree from its wire form. It checks the shape (non-empty, ends in a
// non-blank leaf, leaves at even and parents at odd indices, bodies matching their types, unmerged
// leaves in range) but not hashes or signatures: call validate before trusting a received tree.
// The tree shares the LeafNode and ParentNode values of rt; the caller must not modify them later.
func ratchetTreeFromWire(cs *suite, rt RatchetTree) (*ratchetTree, error) {
	if len(rt) == 0 {
		return nil, fmt.Errorf("%w: empty tree", ErrInvalidTree)
	}
	if len(rt) > maxTreeNodes {
		return nil, fmt.Errorf("%w: %d nodes, limit %d", ErrInvalidTree, len(rt), maxTreeNodes)
	}
	if len(rt)%2 == 0 || rt[len(rt)-1] == nil {
		return nil, fmt.Errorf("%w: not truncated: the last node must be a non-blank leaf", ErrInvalidTree)
	}
	width := uint32(1)
	if n := uint32(len(rt)+1) / 2; n > 1 {
		width = 1 << bits.Len32(n-1)
	}
	t := &ratchetTree{cs: cs, nodes: make([]treeNode, nodeCount(width))}
	for i, n := range rt {
		if n == nil {
			continue
		}
		x := nodeIndex(i)
		switch {
		case x.isLeaf() && n.Type == NodeTypeLeaf && n.Leaf != nil:
			t.nodes[x].leaf = n.Leaf
		case !x.isLeaf() && n.Type == NodeTypeParent && n.Parent != nil:
			for _, u := range n.Parent.UnmergedLeaves {
				if u >= width {
					return nil, fmt.Errorf("%w: node %d lists unmerged leaf %d outside the tree of %d leaves",
						ErrInvalidTree, x, u, width)
				}
			}
			t.nodes[x].parent = n.Parent
		default:
			return nil, fmt.Errorf("%w: node %d is a %s node with a leaf body %t and a parent body %t",
				ErrInvalidTree, x, n.Type, n.Leaf != nil, n.Parent != nil)
		}
	}
	return t, nil
}

// wire returns the tree's wire form with trailing blank nodes omitted. The result shares the tree's
// LeafNode and ParentNode values; treat it as read-only.
func (t *ratchetTree) wire() RatchetTree {
	end := len(t.nodes)
	for end > 0 && t.nodes[end-1].blank() {
		end--
	}
	rt := make(RatchetTree, end)
	for i := range end {
		n := &t.nodes[i]
		switch {
		case n.leaf != nil:
			rt[i] = &Node{Type: NodeTypeLeaf, Leaf: n.leaf}
		case n.parent != nil:
			rt[i] = &Node{Type: NodeTypeParent, Parent: n.parent}
		}
	}
	return rt
}

// clone returns an independent copy of the tree. It copies the node array (pointers and cached
// hashes) and nothing else: no node is re-encoded or re-hashed.
func (t *ratchetTree) clone() *ratchetTree {
	return &ratchetTree{cs: t.cs, nodes: slices.Clone(t.nodes)}
}

// width returns the number of leaves of the complete tree, blank ones included (a power of two).
func (t *ratchetTree) width() uint32 { return uint32(len(t.nodes)+1) / 2 }

// root returns the root's node index.
func (t *ratchetTree) root() nodeIndex { return rootNode(t.width()) }

// inRange reports whether leaf l exists in the tree (it may be blank).
func (t *ratchetTree) inRange(l leafIndex) bool { return uint32(l) < t.width() }

// leaf returns leaf l, or nil when it is blank or out of range.
func (t *ratchetTree) leaf(l leafIndex) *LeafNode {
	if !t.inRange(l) {
		return nil
	}
	return t.nodes[l.node()].leaf
}

// parentNode returns the parent node at x, or nil when it is blank.
func (t *ratchetTree) parentNode(x nodeIndex) *ParentNode { return t.nodes[x].parent }

// members returns the indices of the non-blank leaves in ascending order.
func (t *ratchetTree) members() []leafIndex {
	var out []leafIndex
	for l := range leafIndex(t.width()) {
		if t.nodes[l.node()].leaf != nil {
			out = append(out, l)
		}
	}
	return out
}

// memberCount returns the number of non-blank leaves.
func (t *ratchetTree) memberCount() int {
	n := 0
	for x := 0; x < len(t.nodes); x += 2 {
		if t.nodes[x].leaf != nil {
			n++
		}
	}
	return n
}

// findLeaf returns the first non-blank leaf for which match returns true.
func (t *ratchetTree) findLeaf(match func(l leafIndex, ln *LeafNode) bool) (leafIndex, bool) {
	for l := range leafIndex(t.width()) {
		if ln := t.nodes[l.node()].leaf; ln != nil && match(l, ln) {
			return l, true
		}
	}
	return 0, false
}

// set replaces node x and clears the cached hashes of x and its ancestors.
func (t *ratchetTree) set(x nodeIndex, leaf *LeafNode, parent *ParentNode) {
	t.nodes[x] = treeNode{leaf: leaf, parent: parent}
	t.invalidateAbove(x)
}

// invalidateAbove clears the cached hashes of the ancestors of x.
func (t *ratchetTree) invalidateAbove(x nodeIndex) {
	r := t.root()
	for x != r {
		x = x.parent()
		if t.nodes[x].hash == nil {
			// Everything above is stale already: a cleared entry's ancestors are always cleared.
			return
		}
		t.nodes[x].hash = nil
	}
}

// blankDirectPath blanks every parent on the direct path of leaf l.
func (t *ratchetTree) blankDirectPath(l leafIndex) {
	for _, x := range directPath(l.node(), t.width()) {
		if !t.nodes[x].blank() {
			t.set(x, nil, nil)
		}
	}
}

// addLeaf puts ln into the leftmost blank leaf, doubling the tree when there is none, and adds the
// new leaf to the unmerged leaves of every non-blank parent on its direct path (RFC 9420 §7.7). The
// caller has validated ln (validateLeafNode).
func (t *ratchetTree) addLeaf(ln *LeafNode) leafIndex {
	l, ok := leafIndex(0), false
	for x := 0; x < len(t.nodes); x += 2 {
		if t.nodes[x].leaf == nil {
			l, ok = nodeIndex(x).leaf(), true
			break
		}
	}
	if !ok {
		l = leafIndex(t.width())
		// The old tree becomes the left subtree of the new root with the same indices, so every
		// cached hash stays valid; the new root and right half start blank and uncached.
		t.nodes = append(t.nodes, make([]treeNode, len(t.nodes)+1)...)
	}
	t.set(l.node(), ln, nil)
	for _, x := range directPath(l.node(), t.width()) {
		p := t.nodes[x].parent
		if p == nil {
			continue
		}
		np := &ParentNode{EncryptionKey: p.EncryptionKey, ParentHash: p.ParentHash,
			UnmergedLeaves: make([]uint32, 0, len(p.UnmergedLeaves)+1)}
		np.UnmergedLeaves = append(np.UnmergedLeaves, p.UnmergedLeaves...)
		i, found := slices.BinarySearch(np.UnmergedLeaves, uint32(l))
		if !found {
			np.UnmergedLeaves = slices.Insert(np.UnmergedLeaves, i, uint32(l))
		}
		t.set(x, nil, np)
	}
	return l
}

// updateLeaf replaces the non-blank leaf l with ln and blanks its direct path (an Update proposal,
// RFC 9420 §12.1.2). The caller has validated ln.
func (t *ratchetTree) updateLeaf(l leafIndex, ln *LeafNode) error {
	if t.leaf(l) == nil {
		return fmt.Errorf("%w: update of leaf %d, which is blank or outside the tree", ErrInvalidTree, l)
	}
	t.set(l.node(), ln, nil)
	t.blankDirectPath(l)
	return nil
}

// removeLeaf blanks the non-blank leaf l and its direct path, then truncates the tree (RFC 9420
// §7.7, §12.1.3).
func (t *ratchetTree) removeLeaf(l leafIndex) error {
	if t.leaf(l) == nil {
		return fmt.Errorf("%w: removal of leaf %d, which is blank or outside the tree", ErrInvalidTree, l)
	}
	t.set(l.node(), nil, nil)
	t.blankDirectPath(l)
	t.truncate()
	return nil
}

// truncate halves the tree while the root and its right subtree are entirely blank. The left
// subtree keeps its indices and cached hashes.
func (t *ratchetTree) truncate() {
	for len(t.nodes) > 1 {
		w := t.width()
		r := int(rootNode(w))
		allBlank := true
		for i := r; i < len(t.nodes); i++ {
			if !t.nodes[i].blank() {
				allBlank = false
				break
			}
		}
		if !allBlank {
			return
		}
		clear(t.nodes[r:]) // the backing array is this tree's own (clone copies it): drop the references
		t.nodes = t.nodes[:r]
	}
}

// resolution returns the resolution of node x (RFC 9420 §4.1.1): x itself followed by its unmerged
// leaves when x is non-blank, nothing for a blank leaf, else the resolutions of its children.
func (t *ratchetTree) resolution(x nodeIndex) []nodeIndex {
	return t.appendResolution(nil, x)
}

func (t *ratchetTree) appendResolution(dst []nodeIndex, x nodeIndex) []nodeIndex {
	n := &t.nodes[x]
	switch {
	case n.leaf != nil:
		return append(dst, x)
	case n.parent != nil:
		dst = append(dst, x)
		for _, u := range n.parent.UnmergedLeaves {
			dst = append(dst, leafIndex(u).node())
		}
		return dst
	case x.isLeaf():
		return dst
	}
	dst = t.appendResolution(dst, x.left())
	return t.appendResolution(dst, x.right())
}

// resolutionEmpty reports whether the subtree under x holds no non-blank node. It stops at the
// first non-blank node it finds.
func (t *ratchetTree) resolutionEmpty(x nodeIndex) bool {
	if !t.nodes[x].blank() {
		return false
	}
	if x.isLeaf() {
		return true
	}
	return t.resolutionEmpty(x.left()) && t.resolutionEmpty(x.right())
}

// filteredDirectPath returns the filtered direct path of leaf l (RFC 9420 §4.1.2): the parents on
// its direct path whose child on l's copath has a non-empty resolution, from the bottom up, with
// that copath child for each.
func (t *ratchetTree) filteredDirectPath(l leafIndex) (path, copathChildren []nodeIndex) {
	w := t.width()
	dp := directPath(l.node(), w)
	cp := copath(l.node(), w)
	path = make([]nodeIndex, 0, len(dp))
	copathChildren = make([]nodeIndex, 0, len(dp))
	for i, x := range dp {
		if t.resolutionEmpty(cp[i]) {
			continue
		}
		path = append(path, x)
		copathChildren = append(copathChildren, cp[i])
	}
	return path, copathChildren
}

// treeHash returns the tree hash of the whole tree (RFC 9420 §7.8), recomputing only stale entries.
func (t *ratchetTree) treeHash() []byte { return t.hashNode(t.root()) }

// hashNode returns the cached tree hash of the subtree under x, computing and caching stale ones.
func (t *ratchetTree) hashNode(x nodeIndex) []byte {
	if h := t.nodes[x].hash; h != nil {
		return h
	}
	var h []byte
	if x.isLeaf() {
		h = t.leafHash(x.leaf(), t.nodes[x].leaf)
	} else {
		h = t.parentHashInputHash(t.nodes[x].parent, t.hashNode(x.left()), t.hashNode(x.right()))
	}
	t.nodes[x].hash = h
	return h
}

// leafHash is the tree hash of leaf l holding ln (nil for blank): Hash(TreeHashInput{leaf,
// LeafNodeHashInput{leaf_index, optional<LeafNode>}}).
func (t *ratchetTree) leafHash(l leafIndex, ln *LeafNode) []byte {
	w := tlspl.NewWriter(512)
	w.Uint8(uint8(NodeTypeLeaf))
	w.Uint32(uint32(l))
	w.Optional(ln != nil, func(w *tlspl.Writer) { ln.MarshalTLS(w) })
	b, err := w.Bytes()
	if err != nil {
		// A leaf that cannot be encoded (unknown source or credential type) cannot come from the
		// decoder; hash the error text so the tree hash simply mismatches instead of panicking.
		b = []byte(err.Error())
	}
	return t.cs.hash(b)
}

// parentHashInputHash is the tree hash of a parent node p (nil for blank) with the given child
// hashes: Hash(TreeHashInput{parent, ParentNodeHashInput{optional<ParentNode>, left, right}}).
func (t *ratchetTree) parentHashInputHash(p *ParentNode, left, right []byte) []byte {
	w := tlspl.NewWriter(256)
	w.Uint8(uint8(NodeTypeParent))
	w.Optional(p != nil, func(w *tlspl.Writer) { p.MarshalTLS(w) })
	w.Opaque(left)
	w.Opaque(right)
	b, err := w.Bytes()
	if err != nil {
		b = []byte(err.Error())
	}
	return t.cs.hash(b)
}

// parentHash computes Hash(ParentHashInput{encryption_key, parent_hash, original_sibling_tree_hash})
// (RFC 9420 §7.9).
func (t *ratchetTree) parentHash(encryptionKey, parentHash, siblingHash []byte) []byte {
	w := tlspl.NewWriter(len(encryptionKey) + len(parentHash) + len(siblingHash) + 12)
	w.Opaque(encryptionKey)
	w.Opaque(parentHash)
	w.Opaque(siblingHash)
	b, err := w.Bytes()
	if err != nil {
		b = []byte(err.Error())
	}
	return t.cs.hash(b)
}

// originalSiblingHash returns the tree hash of the subtree under s with the leaves in removed
// (P's unmerged leaves, RFC 9420 §7.9) treated as blank and dropped from unmerged_leaves lists.
// Subtrees that hold none of them use the cached hashes.
func (t *ratchetTree) originalSiblingHash(s nodeIndex, removed []uint32) []byte {
	touched := false
	for _, u := range removed {
		if inSubtree(leafIndex(u).node(), s) {
			touched = true
			break
		}
	}
	if !touched {
		return t.hashNode(s)
	}
	if s.isLeaf() {
		return t.leafHash(s.leaf(), nil)
	}
	p := t.nodes[s].parent
	if p != nil {
		kept := make([]uint32, 0, len(p.UnmergedLeaves))
		for _, u := range p.UnmergedLeaves {
			if !slices.Contains(removed, u) {
				kept = append(kept, u)
			}
		}
		p = &ParentNode{EncryptionKey: p.EncryptionKey, ParentHash: p.ParentHash, UnmergedLeaves: kept}
	}
	return t.parentHashInputHash(p, t.originalSiblingHash(s.left(), removed), t.originalSiblingHash(s.right(), removed))
}
