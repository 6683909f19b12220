package mls

// Array-based tree math of RFC 9420 §4.1 and Appendix C. MLS trees are complete: the number of leaves
// is always a power of two (blank leaves pad the tree), so every function here assumes a complete
// tree. Nodes are numbered left to right in an in-order traversal: leaves are even, parents odd.
//
// Functions taking a nodeIndex assume it is in range for the tree they are used with; callers check
// with nodeCount before using indices taken from the wire.

import "math/bits"

// leafIndex is the index of a leaf among the leaves (0, 1, 2, ...), as carried on the wire.
type leafIndex uint32

// nodeIndex is the index of a node in the array representation of the tree.
type nodeIndex uint32

// node returns the node index of the leaf.
func (l leafIndex) node() nodeIndex { return nodeIndex(2 * uint64(l)) }

// isLeaf reports whether the node is a leaf.
func (x nodeIndex) isLeaf() bool { return x&1 == 0 }

// leaf returns the leaf index of a leaf node; x must be a leaf.
func (x nodeIndex) leaf() leafIndex { return leafIndex(x >> 1) }

// level returns the level of the node: 0 for leaves, k for a parent whose index ends in 0 followed by k ones.
func (x nodeIndex) level() uint {
	return uint(bits.TrailingZeros32(^uint32(x)))
}

// nodeCount returns the number of nodes of a tree with n leaves (2n-1, 0 for n = 0).
func nodeCount(nLeaves uint32) uint32 {
	if nLeaves == 0 {
		return 0
	}
	return 2*(nLeaves-1) + 1
}

// rootNode returns the root of a tree with nLeaves leaves, nLeaves a power of two (≥ 1).
func rootNode(nLeaves uint32) nodeIndex {
	w := nodeCount(nLeaves)
	return nodeIndex((uint32(1) << (bits.Len32(w) - 1)) - 1)
}

// left returns the left child of the parent node x.
func (x nodeIndex) left() nodeIndex {
	k := x.level()
	return x ^ (1 << (k - 1))
}

// right returns the right child of the parent node x.
func (x nodeIndex) right() nodeIndex {
	k := x.level()
	return x ^ (3 << (k - 1))
}

// parent returns the parent of x, which must not be the root.
func (x nodeIndex) parent() nodeIndex {
	k := x.level()
	b := (x >> (k + 1)) & 1
	return (x | (1 << k)) ^ (b << (k + 1))
}

// sibling returns the other child of x's parent; x must not be the root.
func (x nodeIndex) sibling() nodeIndex {
	p := x.parent()
	if x < p {
		return p.right()
	}
	return p.left()
}

// directPath returns the parents of x from its parent up to and including the root of a tree with
// nLeaves leaves (empty for the root itself).
func directPath(x nodeIndex, nLeaves uint32) []nodeIndex {
	r := rootNode(nLeaves)
	if x == r {
		return nil
	}
	path := make([]nodeIndex, 0, bits.Len32(nLeaves))
	for x != r {
		x = x.parent()
		path = append(path, x)
	}
	return path
}

// copath returns the siblings of x and of each node on its direct path except the root, ordered
// from the leaf upwards.
func copath(x nodeIndex, nLeaves uint32) []nodeIndex {
	r := rootNode(nLeaves)
	if x == r {
		return nil
	}
	path := make([]nodeIndex, 0, bits.Len32(nLeaves))
	for x != r {
		path = append(path, x.sibling())
		x = x.parent()
	}
	return path
}

// commonAncestor returns the lowest node that has both x and y in its subtree.
func commonAncestor(x, y nodeIndex) nodeIndex {
	// Align on the higher level, then strip low bits until the prefixes agree (RFC 9420 Appendix C).
	lx, ly := x.level()+1, y.level()+1
	if lx <= ly && x>>ly == y>>ly {
		return y
	}
	if ly <= lx && x>>lx == y>>lx {
		return x
	}
	xn, yn := x, y
	k := uint(0)
	for xn != yn {
		xn >>= 1
		yn >>= 1
		k++
	}
	return (xn << k) + (1 << (k - 1)) - 1
}

// inSubtree reports whether x lies in the subtree rooted at y (x == y included).
func inSubtree(x, y nodeIndex) bool {
	span := nodeIndex(1)<<y.level() - 1 // the subtree of y is [y-span, y+span]
	return x+span >= y && x <= y+span
}

// isPowerOfTwo reports whether n is a power of two (≥ 1).
func isPowerOfTwo(n uint32) bool { return n != 0 && n&(n-1) == 0 }
