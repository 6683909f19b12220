package mls

// TreeKEM (RFC 9420 §7.4–7.6, §12.4.2): creating and processing UpdatePaths, and a member's private
// tree state. The order of operations follows §12.4.2, where the GroupContext that the path secrets
// are encrypted under already holds the tree hash of the tree with the path merged:
//
//	committer:  apply proposals to a clone → pp := t.applyNewPath(...) (public part merged into t)
//	            → gc.TreeHash = t.treeHash() → up := pp.encrypt(gc bytes)
//	receiver:   apply proposals to a clone → t.mergeUpdatePath(sender, up, groupID)
//	            → gc.TreeHash = t.treeHash() → res := priv.decryptPath(t, sender, up, added, gc bytes)
//
// Path secrets: the committer draws a random leaf secret; its new leaf key pair is
// DeriveKeyPair(DeriveSecret(leaf_secret, "node")), path_secret[0] = DeriveSecret(leaf_secret,
// "path"), path_secret[n] = DeriveSecret(path_secret[n-1], "path") for each node of its filtered
// direct path, node key pairs DeriveKeyPair(DeriveSecret(path_secret[n], "node")), and commit_secret
// is DeriveSecret of the last path secret with "path". Receivers cannot tell how the leaf key was
// made, so this is interoperable (RFC 9420 only requires a fresh leaf key).

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
)

const labelUpdatePathNode = "UpdatePathNode"

// nodeKey is an HPKE key pair of a tree node (SerializePrivateKey / SerializePublicKey encodings).
type nodeKey struct{ priv, pub []byte }

// treePrivate is a member's private TreeKEM state: the HPKE private keys of its own leaf and of the
// parent nodes on its direct path that it knows. Values are immutable: the methods that change the
// state return a new one, so an epoch's state can be kept while a pending one is built.
type treePrivate struct {
	self leafIndex
	keys map[nodeIndex]nodeKey
}

// newTreePrivate returns the private state of a member at leaf self holding the leaf's HPKE key
// pair (a KeyPackage's leaf encryption key for a joiner, the creator's leaf key for a new group).
func newTreePrivate(self leafIndex, leafPriv, leafPub []byte) *treePrivate {
	return &treePrivate{self: self, keys: map[nodeIndex]nodeKey{self.node(): {priv: leafPriv, pub: leafPub}}}
}

// leaf returns the member's leaf index.
func (p *treePrivate) leaf() leafIndex { return p.self }

// key returns the private key the member holds for node x.
func (p *treePrivate) key(x nodeIndex) ([]byte, bool) {
	k, ok := p.keys[x]
	return k.priv, ok
}

// clone returns a copy that shares no map with p.
func (p *treePrivate) clone() *treePrivate {
	return &treePrivate{self: p.self, keys: maps.Clone(p.keys)}
}

// prune returns a copy of p that keeps only the keys whose node in t still carries the same public
// key: keys of nodes blanked or replaced by proposals or another member's path are dropped.
func (p *treePrivate) prune(t *ratchetTree) *treePrivate {
	out := &treePrivate{self: p.self, keys: make(map[nodeIndex]nodeKey, len(p.keys))}
	for x, k := range p.keys {
		if int(x) < len(t.nodes) && bytes.Equal(t.nodes[x].encryptionKey(), k.pub) {
			out.keys[x] = k
		}
	}
	return out
}

// withPathSecret returns the private state of a member that joined by a Welcome carrying
// pathSecret (GroupSecrets.path_secret, RFC 9420 §12.4.3.1): the secret of the lowest node on the
// committer's filtered direct path that is an ancestor of p's leaf. It derives the keys of that node
// and the ones above it on the path and checks them against the public keys in t.
func (p *treePrivate) withPathSecret(t *ratchetTree, committer leafIndex, pathSecret []byte) (*treePrivate, error) {
	if !t.inRange(committer) || !t.inRange(p.self) || committer == p.self {
		return nil, fmt.Errorf("%w: path secret from leaf %d for leaf %d in a tree of %d leaves",
			ErrInvalidUpdatePath, committer, p.self, t.width())
	}
	path, _ := t.filteredDirectPath(committer)
	i := slices.IndexFunc(path, func(x nodeIndex) bool { return inSubtree(p.self.node(), x) })
	if i < 0 {
		return nil, fmt.Errorf("%w: leaf %d has no common ancestor on leaf %d's filtered direct path",
			ErrInvalidUpdatePath, p.self, committer)
	}
	out := p.clone()
	secret := pathSecret
	for _, x := range path[i:] {
		priv, pub, err := t.cs.deriveKeyPair(t.cs.deriveSecret(secret, "node"))
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(pub, t.nodes[x].encryptionKey()) {
			return nil, fmt.Errorf("%w: the path secret does not give node %d's public key", ErrInvalidUpdatePath, x)
		}
		out.keys[x] = nodeKey{priv: priv, pub: pub}
		secret = t.cs.deriveSecret(secret, "path")
	}
	return out, nil
}

// pathOptions are the inputs of applyNewPath.
type pathOptions struct {
	groupID []byte
	leaf    leafIndex // the committer's leaf (external commit: the index addLeaf(template) returned)
	// template supplies the new leaf's signature key, credential, capabilities and extensions;
	// encryption key, source (commit), lifetime, parent hash and signature are filled in.
	template *LeafNode
	signer   signingKey
	// added lists the leaves added by the commit's Add proposals: they receive no path secret
	// through the UpdatePath (they get theirs from the Welcome, via pathSecretFor).
	added []leafIndex
	// rand is the source of the leaf secret (crypto/rand when nil).
	rand io.Reader
}

// pendingPath is a committer's UpdatePath whose public part is merged into the tree but whose path
// secrets are not encrypted yet (they need the provisional GroupContext, which needs the tree hash
// of the merged tree).
type pendingPath struct {
	cs       *suite
	sender   leafIndex
	leafNode *LeafNode
	path     []nodeIndex // filtered direct path, bottom up
	pubs     [][]byte    // new public key per path node
	secrets  [][]byte    // path secret per path node
	// recipients[i] are the HPKE public keys of the copath child's resolution of path[i], without
	// the added leaves, in resolution order.
	recipients [][][]byte
	commit     []byte
	priv       *treePrivate
}

// applyNewPath generates a fresh leaf key and path for leaf o.leaf and merges the public part into
// t (RFC 9420 §7.5): the direct path is blanked, the filtered direct path gets the new public keys
// and parent hashes (unmerged leaves cleared), and the leaf becomes a signed leaf node of source
// commit. t must already hold the commit's proposals. Nothing is encrypted yet: see encrypt.
func (t *ratchetTree) applyNewPath(o pathOptions) (*pendingPath, error) {
	if !t.inRange(o.leaf) || o.template == nil || o.signer == nil {
		return nil, fmt.Errorf("%w: leaf %d of %d, template %t, signer %t",
			ErrInvalidUpdatePath, o.leaf, t.width(), o.template != nil, o.signer != nil)
	}
	cs := t.cs
	path, cop := t.filteredDirectPath(o.leaf)
	leafSecret, err := randomBytes(o.rand, cs.hashSize())
	if err != nil {
		return nil, err
	}
	leafPriv, leafPub, err := cs.deriveKeyPair(cs.deriveSecret(leafSecret, "node"))
	if err != nil {
		return nil, err
	}
	pp := &pendingPath{cs: cs, sender: o.leaf, path: path,
		pubs: make([][]byte, len(path)), secrets: make([][]byte, len(path)),
		recipients: make([][][]byte, len(path)),
		priv:       newTreePrivate(o.leaf, leafPriv, leafPub)}
	secret := cs.deriveSecret(leafSecret, "path")
	for i, x := range path {
		priv, pub, err := cs.deriveKeyPair(cs.deriveSecret(secret, "node"))
		if err != nil {
			return nil, err
		}
		pp.secrets[i], pp.pubs[i] = secret, pub
		pp.priv.keys[x] = nodeKey{priv: priv, pub: pub}
		secret = cs.deriveSecret(secret, "path")
	}
	pp.commit = secret

	// Recipients, before the tree changes (copath subtrees do not change anyway).
	for i, c := range cop {
		for _, r := range t.resolution(c) {
			if r.isLeaf() && slices.Contains(o.added, r.leaf()) {
				continue
			}
			pp.recipients[i] = append(pp.recipients[i], t.nodes[r].encryptionKey())
		}
	}

	t.blankDirectPath(o.leaf)
	leafParentHash := t.setPath(path, cop, pp.pubs)

	ln := *o.template
	ln.EncryptionKey = leafPub
	ln.Source = LeafNodeSourceCommit
	ln.Lifetime = Lifetime{}
	ln.ParentHash = leafParentHash
	ln.Signature = nil
	tbs, err := ln.TBS(o.groupID, uint32(o.leaf))
	if err != nil {
		return nil, err
	}
	if ln.Signature, err = cs.signWithLabelKey(o.signer, labelLeafNodeTBS, tbs); err != nil {
		return nil, err
	}
	pp.leafNode = &ln
	t.set(o.leaf.node(), &ln, nil)
	return pp, nil
}

// pathParentHashes computes, top down, the parent_hash values of the nodes of a filtered direct
// path carrying the public keys pubs, and the parent hash the leaf must carry (RFC 9420 §7.9).
// cop[i] is path[i]'s child on the copath; its subtree is not touched by the path, so its cached
// tree hash is the original sibling tree hash (the path clears the unmerged leaves).
func (t *ratchetTree) pathParentHashes(cop []nodeIndex, pubs [][]byte) (nodeHashes [][]byte, leafHash []byte) {
	n := len(pubs)
	nodeHashes = make([][]byte, n)
	if n == 0 {
		return nodeHashes, []byte{}
	}
	nodeHashes[n-1] = []byte{}
	for i := n - 2; i >= 0; i-- {
		nodeHashes[i] = t.parentHash(pubs[i+1], nodeHashes[i+1], t.hashNode(cop[i+1]))
	}
	return nodeHashes, t.parentHash(pubs[0], nodeHashes[0], t.hashNode(cop[0]))
}

// setPath writes the new parent nodes of a filtered direct path (direct path already blanked) and
// returns the parent hash for the leaf.
func (t *ratchetTree) setPath(path, cop []nodeIndex, pubs [][]byte) []byte {
	hashes, leafHash := t.pathParentHashes(cop, pubs)
	for i, x := range path {
		t.set(x, nil, &ParentNode{EncryptionKey: pubs[i], ParentHash: hashes[i], UnmergedLeaves: []uint32{}})
	}
	return leafHash
}

// encrypt encrypts each path secret to the copath resolution of its node under the provisional
// GroupContext (its TLS encoding) and returns the UpdatePath. The HPKE encryptions run in parallel
// on up to GOMAXPROCS goroutines.
func (pp *pendingPath) encrypt(groupContext []byte) (*UpdatePath, error) {
	up := &UpdatePath{LeafNode: *pp.leafNode, Nodes: make([]UpdatePathNode, len(pp.path))}
	type job struct{ i, j int }
	var jobs []job
	for i := range pp.path {
		up.Nodes[i] = UpdatePathNode{EncryptionKey: pp.pubs[i],
			EncryptedPathSecret: make([]HPKECiphertext, len(pp.recipients[i]))}
		for j := range pp.recipients[i] {
			jobs = append(jobs, job{i, j})
		}
	}
	var (
		next     atomic.Int64
		errOnce  sync.Once
		firstErr error
		wg       sync.WaitGroup
	)
	workers := min(runtime.GOMAXPROCS(0), len(jobs))
	for range workers {
		wg.Go(func() {
			for {
				k := int(next.Add(1) - 1)
				if k >= len(jobs) {
					return
				}
				jb := jobs[k]
				kem, ct, err := pp.cs.encryptWithLabel(pp.recipients[jb.i][jb.j], labelUpdatePathNode, groupContext, pp.secrets[jb.i])
				if err != nil {
					errOnce.Do(func() {
						firstErr = fmt.Errorf("mls: encrypting the path secret of node %d to recipient %d: %w", pp.path[jb.i], jb.j, err)
					})
					next.Store(int64(len(jobs))) // stop the other workers early
					return
				}
				up.Nodes[jb.i].EncryptedPathSecret[jb.j] = HPKECiphertext{KEMOutput: kem, Ciphertext: ct}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	return up, nil
}

// commitSecret returns the commit secret of the path (RFC 9420 §7.4).
func (pp *pendingPath) commitSecret() []byte { return pp.commit }

// private returns the committer's private tree state after the path.
func (pp *pendingPath) private() *treePrivate { return pp.priv }

// leaf returns the committer's new signed leaf node.
func (pp *pendingPath) leaf() *LeafNode { return pp.leafNode }

// pathSecretFor returns the path secret a Welcome gives the new member at leaf joiner: the secret
// of the lowest node on the committer's filtered direct path that is an ancestor of the joiner.
func (pp *pendingPath) pathSecretFor(joiner leafIndex) ([]byte, error) {
	for i, x := range pp.path {
		if inSubtree(joiner.node(), x) {
			return pp.secrets[i], nil
		}
	}
	return nil, fmt.Errorf("%w: leaf %d is not below the committer's filtered direct path", ErrInvalidUpdatePath, joiner)
}

// mergeUpdatePath verifies the public part of an UpdatePath from leaf sender and merges it into t
// (RFC 9420 §12.4.2): the path has one node per node of the sender's filtered direct path, the leaf
// node has source commit, a valid signature for (groupID, sender), an encryption key different
// from the current one, and a parent hash that matches the path's keys; node keys are valid HPKE
// keys. On success the sender's direct path is blanked and its filtered direct path holds the new
// keys and parent hashes. t must already hold the commit's proposals; for an external commit use
// mergeExternalPath. The checks of
// RFC 9420 §7.3 that depend on the group (capabilities, key uniqueness) are validateLeafNode's.
// On error t is unchanged.
func (t *ratchetTree) mergeUpdatePath(sender leafIndex, up *UpdatePath, groupID []byte) error {
	return t.mergePath(sender, up, groupID, false)
}

// mergeExternalPath merges the UpdatePath of an external commit (RFC 9420 §12.4.3.2): the joiner's
// leaf goes where an Add would put it (call it after applying the commit's other proposals), then
// the path is verified and merged as by mergeUpdatePath. It returns the joiner's leaf index. On
// error t is unchanged.
func (t *ratchetTree) mergeExternalPath(up *UpdatePath, groupID []byte) (leafIndex, error) {
	u := t.clone()
	ln := up.LeafNode
	l := u.addLeaf(&ln)
	if err := u.mergePath(l, up, groupID, true); err != nil {
		return 0, err
	}
	t.nodes = u.nodes
	return l, nil
}

func (t *ratchetTree) mergePath(sender leafIndex, up *UpdatePath, groupID []byte, external bool) error {
	old := t.leaf(sender)
	if old == nil {
		return fmt.Errorf("%w: sender leaf %d is blank or outside the tree", ErrInvalidUpdatePath, sender)
	}
	ln := up.LeafNode
	if ln.Source != LeafNodeSourceCommit {
		return fmt.Errorf("%w: leaf node source is %s, want commit", ErrInvalidUpdatePath, ln.Source)
	}
	if !external && bytes.Equal(ln.EncryptionKey, old.EncryptionKey) {
		return fmt.Errorf("%w: the leaf's encryption key is unchanged", ErrInvalidUpdatePath)
	}
	path, cop := t.filteredDirectPath(sender)
	if len(up.Nodes) != len(path) {
		return fmt.Errorf("%w: %d path nodes for a filtered direct path of %d", ErrInvalidUpdatePath, len(up.Nodes), len(path))
	}
	if err := t.cs.validateKEMPublicKey(ln.EncryptionKey); err != nil {
		return fmt.Errorf("%w: leaf encryption key: %w", ErrInvalidUpdatePath, err)
	}
	pubs := make([][]byte, len(path))
	for i := range up.Nodes {
		if err := t.cs.validateKEMPublicKey(up.Nodes[i].EncryptionKey); err != nil {
			return fmt.Errorf("%w: key of path node %d: %w", ErrInvalidUpdatePath, path[i], err)
		}
		pubs[i] = up.Nodes[i].EncryptionKey
	}
	tbs, err := ln.TBS(groupID, uint32(sender))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidUpdatePath, err)
	}
	if err := t.cs.verifyWithLabel(ln.SignatureKey, labelLeafNodeTBS, tbs, ln.Signature); err != nil {
		return fmt.Errorf("%w: leaf node signature: %w", ErrInvalidUpdatePath, err)
	}
	hashes, leafHash := t.pathParentHashes(cop, pubs)
	if !bytes.Equal(leafHash, ln.ParentHash) {
		return fmt.Errorf("%w: the leaf's parent hash does not match the path", ErrInvalidUpdatePath)
	}
	t.blankDirectPath(sender)
	for i, x := range path {
		t.set(x, nil, &ParentNode{EncryptionKey: pubs[i], ParentHash: hashes[i], UnmergedLeaves: []uint32{}})
	}
	t.set(sender.node(), &ln, nil)
	return nil
}

// pathResult is the outcome of decryptPath.
type pathResult struct {
	priv         *treePrivate // the member's private state after the path
	commitSecret []byte
	ancestor     nodeIndex // lowest node of the sender's filtered direct path above the member
	pathSecret   []byte    // the path secret decrypted for ancestor
}

// decryptPath processes the secret part of an UpdatePath from leaf sender (RFC 9420 §7.5): it
// decrypts the path secret of the lowest common node with the key the member holds in that node's
// copath resolution (without the added leaves), derives the secrets up to the root, checks each
// derived public key against the path, and returns the new private state and commit secret. t is
// the tree after mergeUpdatePath and groupContext the encoded provisional GroupContext.
func (p *treePrivate) decryptPath(t *ratchetTree, sender leafIndex, up *UpdatePath, added []leafIndex, groupContext []byte) (*pathResult, error) {
	if sender == p.self || !t.inRange(sender) || t.leaf(p.self) == nil {
		return nil, fmt.Errorf("%w: path from leaf %d processed by leaf %d", ErrInvalidUpdatePath, sender, p.self)
	}
	cs := t.cs
	path, cop := t.filteredDirectPath(sender)
	if len(up.Nodes) != len(path) {
		return nil, fmt.Errorf("%w: %d path nodes for a filtered direct path of %d", ErrInvalidUpdatePath, len(up.Nodes), len(path))
	}
	i := slices.IndexFunc(path, func(x nodeIndex) bool { return inSubtree(p.self.node(), x) })
	if i < 0 {
		return nil, fmt.Errorf("%w: leaf %d is not below leaf %d's filtered direct path", ErrInvalidUpdatePath, p.self, sender)
	}
	pos, holder := -1, nodeIndex(0)
	n := 0
	for _, r := range t.resolution(cop[i]) {
		if r.isLeaf() && slices.Contains(added, r.leaf()) {
			continue
		}
		if pos < 0 {
			if k, ok := p.keys[r]; ok && bytes.Equal(k.pub, t.nodes[r].encryptionKey()) {
				pos, holder = n, r
			}
		}
		n++
	}
	if pos < 0 {
		return nil, fmt.Errorf("%w: no private key for the resolution of node %d", ErrInvalidUpdatePath, cop[i])
	}
	cts := up.Nodes[i].EncryptedPathSecret
	if len(cts) != n {
		return nil, fmt.Errorf("%w: node %d has %d encrypted path secrets for a resolution of %d", ErrInvalidUpdatePath, path[i], len(cts), n)
	}
	secret, err := cs.decryptWithLabel(p.keys[holder].priv, labelUpdatePathNode, groupContext, cts[pos].KEMOutput, cts[pos].Ciphertext)
	if err != nil {
		return nil, fmt.Errorf("%w: path secret for node %d: %w", ErrInvalidUpdatePath, path[i], err)
	}
	res := &pathResult{ancestor: path[i], pathSecret: secret}
	out := p.clone()
	for _, x := range directPath(sender.node(), t.width()) {
		delete(out.keys, x)
	}
	for k := i; k < len(path); k++ {
		priv, pub, err := cs.deriveKeyPair(cs.deriveSecret(secret, "node"))
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(pub, up.Nodes[k].EncryptionKey) {
			return nil, fmt.Errorf("%w: the path secret for node %d does not give its public key", ErrInvalidUpdatePath, path[k])
		}
		out.keys[path[k]] = nodeKey{priv: priv, pub: pub}
		secret = cs.deriveSecret(secret, "path")
	}
	res.commitSecret = secret
	res.priv = out.prune(t)
	return res, nil
}
