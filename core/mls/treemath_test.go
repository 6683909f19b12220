package mls

import (
	"slices"
	"testing"
)

func init() { vectorLayouts["tree-math.json"] = testTreeMathVectors }

type treeMathCase struct {
	NLeaves uint32    `json:"n_leaves"`
	NNodes  uint32    `json:"n_nodes"`
	Root    uint32    `json:"root"`
	Left    []*uint32 `json:"left"`
	Right   []*uint32 `json:"right"`
	Parent  []*uint32 `json:"parent"`
	Sibling []*uint32 `json:"sibling"`
}

func testTreeMathVectors(t *testing.T, raw []byte) {
	runCases(t, raw, func(t *testing.T, _ *suite, c *treeMathCase) {
		if got := nodeCount(c.NLeaves); got != c.NNodes {
			t.Fatalf("nodeCount(%d) = %d, want %d", c.NLeaves, got, c.NNodes)
		}
		root := rootNode(c.NLeaves)
		if uint32(root) != c.Root {
			t.Fatalf("root(%d) = %d, want %d", c.NLeaves, root, c.Root)
		}
		for _, arr := range [][]*uint32{c.Left, c.Right, c.Parent, c.Sibling} {
			if uint32(len(arr)) != c.NNodes {
				t.Fatalf("vector array of %d entries for %d nodes", len(arr), c.NNodes)
			}
		}
		opt := func(ok bool, v nodeIndex) *uint32 {
			if !ok {
				return nil
			}
			u := uint32(v)
			return &u
		}
		check := func(what string, i uint32, got, want *uint32) {
			if (got == nil) != (want == nil) || (got != nil && *got != *want) {
				t.Errorf("%s(%d) in %d leaves = %v, want %v", what, i, c.NLeaves, deref(got), deref(want))
			}
		}
		for i := range c.NNodes {
			x := nodeIndex(i)
			check("left", i, opt(!x.isLeaf(), leftOr(x)), c.Left[i])
			check("right", i, opt(!x.isLeaf(), rightOr(x)), c.Right[i])
			check("parent", i, opt(x != root, parentOr(x, root)), c.Parent[i])
			check("sibling", i, opt(x != root, siblingOr(x, root)), c.Sibling[i])
		}
	})
}

func leftOr(x nodeIndex) nodeIndex {
	if x.isLeaf() {
		return 0
	}
	return x.left()
}

func rightOr(x nodeIndex) nodeIndex {
	if x.isLeaf() {
		return 0
	}
	return x.right()
}

func parentOr(x, root nodeIndex) nodeIndex {
	if x == root {
		return 0
	}
	return x.parent()
}

func siblingOr(x, root nodeIndex) nodeIndex {
	if x == root {
		return 0
	}
	return x.sibling()
}

func deref(p *uint32) any {
	if p == nil {
		return "null"
	}
	return *p
}

// TestTreeMathPaths checks direct path, copath, common ancestor and subtree membership against
// definitions computed by walking the tree, for every node pair of trees up to 64 leaves.
func TestTreeMathPaths(t *testing.T) {
	t.Parallel()
	for n := uint32(1); n <= 64; n *= 2 {
		root := rootNode(n)
		w := nodeCount(n)
		// ancestors(x) lists x and its parents up to the root.
		ancestors := func(x nodeIndex) []nodeIndex {
			out := []nodeIndex{x}
			for x != root {
				x = x.parent()
				out = append(out, x)
			}
			return out
		}
		for i := range w {
			x := nodeIndex(i)
			anc := ancestors(x)
			dp := directPath(x, n)
			if !slices.Equal(dp, anc[1:]) && !(len(dp) == 0 && len(anc) == 1) {
				t.Fatalf("n=%d directPath(%d) = %v, want %v", n, x, dp, anc[1:])
			}
			cp := copath(x, n)
			if len(cp) != len(dp) {
				t.Fatalf("n=%d copath(%d) = %v has %d entries, direct path %d", n, x, cp, len(cp), len(dp))
			}
			for k, c := range cp {
				if c != anc[k].sibling() || c.parent() != dp[k] {
					t.Fatalf("n=%d copath(%d)[%d] = %d, want sibling of %d", n, x, k, c, anc[k])
				}
			}
			for j := range w {
				y := nodeIndex(j)
				// The lowest common ancestor is the first ancestor of x that is also an ancestor of y.
				ay := ancestors(y)
				var want nodeIndex
				for _, a := range anc {
					if slices.Contains(ay, a) {
						want = a
						break
					}
				}
				if got := commonAncestor(x, y); got != want {
					t.Fatalf("n=%d commonAncestor(%d, %d) = %d, want %d", n, x, y, got, want)
				}
				if got, want := inSubtree(x, y), slices.Contains(anc, y); got != want {
					t.Fatalf("n=%d inSubtree(%d, %d) = %v, want %v", n, x, y, got, want)
				}
			}
		}
	}
}

func TestLeafNodeIndex(t *testing.T) {
	t.Parallel()
	for _, l := range []leafIndex{0, 1, 7, 1 << 20, 1<<31 - 1} {
		x := l.node()
		if !x.isLeaf() || x.level() != 0 || x.leaf() != l {
			t.Errorf("leaf %d: node %d, isLeaf %v, level %d, back %d", l, x, x.isLeaf(), x.level(), x.leaf())
		}
	}
	if isPowerOfTwo(0) || !isPowerOfTwo(1) || !isPowerOfTwo(1<<31) || isPowerOfTwo(6) {
		t.Error("isPowerOfTwo is wrong")
	}
}
