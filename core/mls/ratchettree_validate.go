package mls

// Validation of a ratchet tree (RFC 9420 §7.9.2, §12.4.3.1) and of leaf nodes (§7.3).

import (
	"bytes"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/tlspl"
)

// leafCheck holds the group parameters a LeafNode is checked against (RFC 9420 §7.3).
type leafCheck struct {
	groupID []byte
	// extensions are the GroupContext extensions; a required_capabilities extension in them must
	// be covered by the leaf's capabilities.
	extensions Extensions
	// source, when non-zero, is the leaf_node_source the context requires (key_package for Add,
	// update for Update, commit for a path).
	source LeafNodeSource
	// checkLifetime checks a key_package leaf's lifetime against at (the current time when zero).
	checkLifetime bool
	at            time.Time
	// skipSignature skips the signature check (validate verifies all leaves' signatures itself, in
	// parallel).
	skipSignature bool
}

// requiredCapabilities is the required_capabilities extension (RFC 9420 §11.1).
type requiredCapabilities struct {
	extensions  []ExtensionType
	proposals   []ProposalType
	credentials []CredentialType
}

func parseRequiredCapabilities(es Extensions) (*requiredCapabilities, error) {
	data, ok := es.Find(ExtensionRequiredCapabilities)
	if !ok {
		return nil, nil
	}
	r := tlspl.NewReader(data)
	rc := &requiredCapabilities{
		extensions:  readUint16s[ExtensionType](r),
		proposals:   readUint16s[ProposalType](r),
		credentials: readUint16s[CredentialType](r),
	}
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("%w: required_capabilities extension: %w", ErrMalformed, err)
	}
	return rc, nil
}

// Extension and proposal types defined by RFC 9420 are supported by every client and need not be
// listed in Capabilities (RFC 9420 §7.2).
func defaultExtension(e ExtensionType) bool { return e >= 1 && e <= 5 }
func defaultProposal(p ProposalType) bool   { return p >= 1 && p <= 7 }

// validateLeafNode checks ln, to be placed at leaf index l of t, against RFC 9420 §7.3: signature
// (with group ID and leaf index for the update and commit sources), required source, capabilities
// covering required_capabilities and the leaf's own extensions, the credential type supported by
// every other member and the leaf supporting every credential type in use, the lifetime when
// asked, and encryption and signature keys not used by any other leaf (nor the encryption key by
// any parent node). The leaf at l itself is ignored in the comparisons (an Update replaces it).
func (t *ratchetTree) validateLeafNode(ln *LeafNode, l leafIndex, c *leafCheck) error {
	if err := t.checkLeafAlone(ln, l, c); err != nil {
		return err
	}
	rc, err := parseRequiredCapabilities(c.extensions)
	if err != nil {
		return err
	}
	if err := checkRequired(ln, rc); err != nil {
		return fmt.Errorf("leaf %d: %w", l, err)
	}
	for x := range t.nodes {
		n := &t.nodes[x]
		if n.blank() || nodeIndex(x) == l.node() {
			continue
		}
		if bytes.Equal(n.encryptionKey(), ln.EncryptionKey) {
			return fmt.Errorf("%w: leaf %d: encryption key already used by node %d", ErrInvalidLeafNode, l, x)
		}
		if n.leaf == nil {
			continue
		}
		if bytes.Equal(n.leaf.SignatureKey, ln.SignatureKey) {
			return fmt.Errorf("%w: leaf %d: signature key already used by leaf %d", ErrInvalidLeafNode, l, x/2)
		}
		if !slices.Contains(n.leaf.Capabilities.Credentials, ln.Credential.Type) {
			return fmt.Errorf("%w: %w: leaf %d: credential type %s not supported by leaf %d", ErrInvalidLeafNode, ErrCapabilities, l, ln.Credential.Type, x/2)
		}
		if !slices.Contains(ln.Capabilities.Credentials, n.leaf.Credential.Type) {
			return fmt.Errorf("%w: %w: leaf %d: does not support credential type %s of leaf %d", ErrInvalidLeafNode, ErrCapabilities, l, n.leaf.Credential.Type, x/2)
		}
	}
	return nil
}

// checkLeafAlone runs the checks of RFC 9420 §7.3 that need no other leaf.
func (t *ratchetTree) checkLeafAlone(ln *LeafNode, l leafIndex, c *leafCheck) error {
	if c.source != 0 && ln.Source != c.source {
		return fmt.Errorf("%w: leaf %d has source %s, want %s", ErrInvalidLeafNode, l, ln.Source, c.source)
	}
	if !c.skipSignature {
		if err := t.verifyLeafSignature(ln, l, c.groupID); err != nil {
			return err
		}
	}
	if !slices.Contains(ln.Capabilities.Credentials, ln.Credential.Type) {
		return fmt.Errorf("%w: %w: leaf %d does not list its own credential type %s", ErrInvalidLeafNode, ErrCapabilities, l, ln.Credential.Type)
	}
	for _, e := range ln.Extensions {
		if !defaultExtension(e.Type) && !slices.Contains(ln.Capabilities.Extensions, e.Type) {
			return fmt.Errorf("%w: %w: leaf %d carries extension 0x%04x that its capabilities do not list", ErrInvalidLeafNode, ErrCapabilities, l, uint16(e.Type))
		}
	}
	if c.checkLifetime && ln.Source == LeafNodeSourceKeyPackage {
		at := c.at
		if at.IsZero() {
			at = time.Now()
		}
		s := at.Unix()
		if s < 0 || uint64(s) < ln.Lifetime.NotBefore || uint64(s) > ln.Lifetime.NotAfter {
			return fmt.Errorf("%w: leaf %d lifetime [%d, %d] does not cover %d", ErrInvalidLeafNode, l,
				ln.Lifetime.NotBefore, ln.Lifetime.NotAfter, s)
		}
	}
	return nil
}

// verifyLeafSignature checks a leaf node's signature over LeafNodeTBS (RFC 9420 §7.2).
func (t *ratchetTree) verifyLeafSignature(ln *LeafNode, l leafIndex, groupID []byte) error {
	tbs, err := ln.TBS(groupID, uint32(l))
	if err != nil {
		return fmt.Errorf("%w: leaf %d: %w", ErrInvalidLeafNode, l, err)
	}
	if err := t.cs.verifyWithLabel(ln.SignatureKey, labelLeafNodeTBS, tbs, ln.Signature); err != nil {
		return fmt.Errorf("%w: leaf %d: %w", ErrInvalidLeafNode, l, err)
	}
	return nil
}

// checkRequired checks that ln's capabilities cover the required_capabilities extension.
func checkRequired(ln *LeafNode, rc *requiredCapabilities) error {
	if rc == nil {
		return nil
	}
	for _, e := range rc.extensions {
		if !defaultExtension(e) && !slices.Contains(ln.Capabilities.Extensions, e) {
			return fmt.Errorf("%w: %w: required extension 0x%04x not supported", ErrInvalidLeafNode, ErrCapabilities, uint16(e))
		}
	}
	for _, p := range rc.proposals {
		if !defaultProposal(p) && !slices.Contains(ln.Capabilities.Proposals, p) {
			return fmt.Errorf("%w: %w: required proposal type 0x%04x not supported", ErrInvalidLeafNode, ErrCapabilities, uint16(p))
		}
	}
	for _, cr := range rc.credentials {
		if !slices.Contains(ln.Capabilities.Credentials, cr) {
			return fmt.Errorf("%w: %w: required credential type %s not supported", ErrInvalidLeafNode, ErrCapabilities, cr)
		}
	}
	return nil
}

// treeCheck holds what a received tree is validated against (RFC 9420 §12.4.3.1).
type treeCheck struct {
	groupID    []byte
	treeHash   []byte     // the GroupContext's tree hash; required
	extensions Extensions // the GroupContext's extensions (required_capabilities)
	// checkLifetimes checks the lifetimes of key_package leaves (RFC 9420 only recommends it: a
	// member that joined long ago may legitimately still hold its KeyPackage leaf), at at (the
	// current time when zero).
	checkLifetimes bool
	at             time.Time
}

// validate checks a tree received in a Welcome or out of band (RFC 9420 §12.4.3.1): the tree hash
// equals c.treeHash; every non-blank parent node is parent-hash valid (§7.9.2); every leaf passes
// §7.3 (signature for c.groupID and its index, capabilities, credential types, lifetimes if asked);
// encryption keys are unique over all nodes and signature keys over all leaves; unmerged leaves are
// non-blank leaves below their node, listed once, and also listed by every non-blank node between
// them and that node. A tree built by ratchetTreeFromWire is truncated by construction.
func (t *ratchetTree) validate(c *treeCheck) error {
	if err := t.checkUnmerged(); err != nil {
		return err
	}
	if got := t.treeHash(); !bytes.Equal(got, c.treeHash) {
		return fmt.Errorf("%w: tree hash %x does not match the group context's %x", ErrInvalidTree, got, c.treeHash)
	}
	if err := t.verifyParentHashes(); err != nil {
		return err
	}
	rc, err := parseRequiredCapabilities(c.extensions)
	if err != nil {
		return err
	}
	// Keys unique; credential types in use.
	encKeys := make(map[string]nodeIndex, len(t.nodes))
	sigKeys := make(map[string]leafIndex, len(t.nodes)/2+1)
	var credTypes []CredentialType
	for x := range t.nodes {
		n := &t.nodes[x]
		if n.blank() {
			continue
		}
		k := string(n.encryptionKey())
		if prev, dup := encKeys[k]; dup {
			return fmt.Errorf("%w: nodes %d and %d have the same encryption key", ErrInvalidTree, prev, x)
		}
		encKeys[k] = nodeIndex(x)
		if n.leaf == nil {
			continue
		}
		sk := string(n.leaf.SignatureKey)
		if prev, dup := sigKeys[sk]; dup {
			return fmt.Errorf("%w: leaves %d and %d have the same signature key", ErrInvalidTree, prev, x/2)
		}
		sigKeys[sk] = nodeIndex(x).leaf()
		if !slices.Contains(credTypes, n.leaf.Credential.Type) {
			credTypes = append(credTypes, n.leaf.Credential.Type)
		}
	}
	lc := &leafCheck{groupID: c.groupID, checkLifetime: c.checkLifetimes, at: c.at, skipSignature: true}
	for x := 0; x < len(t.nodes); x += 2 {
		ln := t.nodes[x].leaf
		if ln == nil {
			continue
		}
		l := nodeIndex(x).leaf()
		if err := t.checkLeafAlone(ln, l, lc); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidTree, err)
		}
		if err := checkRequired(ln, rc); err != nil {
			return fmt.Errorf("%w: leaf %d: %w", ErrInvalidTree, l, err)
		}
		for _, ct := range credTypes {
			if !slices.Contains(ln.Capabilities.Credentials, ct) {
				return fmt.Errorf("%w: leaf %d does not support credential type %s used in the group", ErrInvalidTree, l, ct)
			}
		}
	}
	return t.verifyLeafSignatures(c.groupID)
}

// verifyLeafSignatures checks every leaf's signature, in parallel on up to GOMAXPROCS goroutines.
// Leaves are taken in ascending order and the workers stop after a failure, so the error names the
// lowest leaf whose signature fails and a forged tree costs little.
func (t *ratchetTree) verifyLeafSignatures(groupID []byte) error {
	leaves := t.members()
	var (
		next     atomic.Int64
		mu       sync.Mutex
		firstErr error
		firstAt  = leafIndex(^uint32(0))
		wg       sync.WaitGroup
	)
	for range min(runtime.GOMAXPROCS(0), len(leaves)) {
		wg.Go(func() {
			for {
				k := int(next.Add(1) - 1)
				if k >= len(leaves) {
					return
				}
				l := leaves[k]
				mu.Lock()
				skip := firstErr != nil && firstAt < l // a lower leaf failed already: stop early
				mu.Unlock()
				if skip {
					return
				}
				if err := t.verifyLeafSignature(t.nodes[l.node()].leaf, l, groupID); err != nil {
					mu.Lock()
					if l < firstAt { // report the lowest failing leaf, independent of scheduling
						firstAt, firstErr = l, err
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return fmt.Errorf("%w: %w", ErrInvalidTree, firstErr)
	}
	return nil
}

// checkUnmerged checks the unmerged_leaves lists (RFC 9420 §12.4.3.1).
func (t *ratchetTree) checkUnmerged() error {
	for x := 1; x < len(t.nodes); x += 2 {
		p := t.nodes[x].parent
		if p == nil {
			continue
		}
		for i, u := range p.UnmergedLeaves {
			l := leafIndex(u)
			if !t.inRange(l) || t.nodes[l.node()].leaf == nil {
				return fmt.Errorf("%w: node %d lists unmerged leaf %d, which is blank or outside the tree", ErrInvalidTree, x, u)
			}
			if !inSubtree(l.node(), nodeIndex(x)) {
				return fmt.Errorf("%w: node %d lists unmerged leaf %d, which is not below it", ErrInvalidTree, x, u)
			}
			if slices.Contains(p.UnmergedLeaves[:i], u) {
				return fmt.Errorf("%w: node %d lists unmerged leaf %d twice", ErrInvalidTree, x, u)
			}
			for y := l.node().parent(); y != nodeIndex(x); y = y.parent() {
				if q := t.nodes[y].parent; q != nil && !slices.Contains(q.UnmergedLeaves, u) {
					return fmt.Errorf("%w: leaf %d is unmerged at node %d but not at node %d between them", ErrInvalidTree, u, x, y)
				}
			}
		}
	}
	return nil
}

// verifyParentHashes checks that every non-blank parent node is parent-hash valid (RFC 9420
// §7.9.2): it is reached by a valid parent-hash link from a leaf or from a parent-hash-valid parent
// below it. A non-blank node D can only link to its lowest non-blank ancestor P (the nodes between
// were blank when D's parent hash was set, and a later path through them replaces P too), so each
// node is checked against that one candidate, bottom up by level. The link D→P holds when
// D.parent_hash = Hash(P.encryption_key, P.parent_hash, original sibling tree hash) and the
// resolution of P's child C above D, without D, is exactly P's unmerged leaves under C.
func (t *ratchetTree) verifyParentHashes() error {
	r := t.root()
	valid := make([]bool, len(t.nodes))
	for x := 0; x < len(t.nodes); x += 2 {
		if ln := t.nodes[x].leaf; ln != nil && ln.Source == LeafNodeSourceCommit {
			valid[x] = true
		}
	}
	maxLevel := r.level()
	for lvl := uint(0); lvl < maxLevel; lvl++ {
		first := nodeIndex(1)<<lvl - 1
		step := nodeIndex(1) << (lvl + 1)
		for d := first; int(d) < len(t.nodes); d += step {
			if !valid[d] {
				continue
			}
			var dph []byte
			if n := &t.nodes[d]; n.leaf != nil {
				dph = n.leaf.ParentHash
			} else {
				dph = n.parent.ParentHash
			}
			// Lowest non-blank ancestor P and its child c on the way.
			c, p := d, d.parent()
			for p != r && t.nodes[p].blank() {
				c, p = p, p.parent()
			}
			pn := t.nodes[p].parent
			if pn == nil {
				continue // only blank ancestors (the root is blank)
			}
			if t.linkValid(d, dph, c, p, pn) {
				valid[p] = true
			}
		}
	}
	for x := 1; x < len(t.nodes); x += 2 {
		if t.nodes[x].parent != nil && !valid[x] {
			return fmt.Errorf("%w: parent node %d is not parent-hash valid", ErrInvalidTree, x)
		}
	}
	return nil
}

// linkValid reports whether D (parent hash dph) has a valid parent-hash link to its ancestor P
// (body pn), c being P's child above D.
func (t *ratchetTree) linkValid(d nodeIndex, dph []byte, c, p nodeIndex, pn *ParentNode) bool {
	s := c.sibling()
	if !bytes.Equal(dph, t.parentHash(pn.EncryptionKey, pn.ParentHash, t.originalSiblingHash(s, pn.UnmergedLeaves))) {
		return false
	}
	// resolution(c) \ {d} must equal P's unmerged leaves below c.
	var want []nodeIndex
	for _, u := range pn.UnmergedLeaves {
		if x := leafIndex(u).node(); inSubtree(x, c) {
			want = append(want, x)
		}
	}
	got := 0
	for _, x := range t.resolution(c) {
		if x == d {
			continue
		}
		if !slices.Contains(want, x) {
			return false
		}
		got++
	}
	return got == len(want)
}
