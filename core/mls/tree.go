package mls

import (
	"fmt"

	"github.com/mimi-gateway/mimi-gateway/core/tlspl"
)

// ParentNode is an interior node of the ratchet tree (RFC 9420 §7.1).
type ParentNode struct {
	EncryptionKey  []byte // HPKEPublicKey
	ParentHash     []byte
	UnmergedLeaves []uint32 // leaf indices
}

// MarshalTLS implements tlspl.Marshaler.
func (p *ParentNode) MarshalTLS(w *tlspl.Writer) {
	w.Opaque(p.EncryptionKey)
	w.Opaque(p.ParentHash)
	writeUint32s(w, p.UnmergedLeaves)
}

// UnmarshalTLS implements tlspl.Unmarshaler.
func (p *ParentNode) UnmarshalTLS(r *tlspl.Reader) {
	p.EncryptionKey = r.Opaque()
	p.ParentHash = r.Opaque()
	p.UnmergedLeaves = readUint32s(r)
}

// NodeType distinguishes leaf and parent nodes (RFC 9420 §7.8).
type NodeType uint8

// Node types of RFC 9420 §7.8.
const (
	NodeTypeLeaf   NodeType = 1
	NodeTypeParent NodeType = 2
)

func (t NodeType) String() string {
	switch t {
	case NodeTypeLeaf:
		return "leaf"
	case NodeTypeParent:
		return "parent"
	}
	return fmt.Sprintf("node_type(%d)", uint8(t))
}

// Node is a non-blank node of the ratchet tree (RFC 9420 §12.4.3.3): exactly one of Leaf and Parent
// is set, as Type says.
type Node struct {
	Type   NodeType
	Leaf   *LeafNode
	Parent *ParentNode
}

// MarshalTLS implements tlspl.Marshaler.
func (n *Node) MarshalTLS(w *tlspl.Writer) {
	w.Uint8(uint8(n.Type))
	switch {
	case n.Type == NodeTypeLeaf && n.Leaf != nil:
		n.Leaf.MarshalTLS(w)
	case n.Type == NodeTypeParent && n.Parent != nil:
		n.Parent.MarshalTLS(w)
	default:
		w.SetError(fmt.Errorf("%w: node of type %d without a matching body", ErrMalformed, uint8(n.Type)))
	}
}

// UnmarshalTLS implements tlspl.Unmarshaler.
func (n *Node) UnmarshalTLS(r *tlspl.Reader) {
	*n = Node{Type: NodeType(r.Uint8())}
	if r.Err() != nil {
		return
	}
	switch n.Type {
	case NodeTypeLeaf:
		n.Leaf = new(LeafNode)
		n.Leaf.UnmarshalTLS(r)
	case NodeTypeParent:
		n.Parent = new(ParentNode)
		n.Parent.UnmarshalTLS(r)
	default:
		r.SetError(fmt.Errorf("%w: node type %d", ErrUnknownEnum, uint8(n.Type)))
	}
}

// RatchetTree is the wire form of a ratchet tree, `optional<Node> ratchet_tree<V>` (RFC 9420
// §12.4.3.3): the nodes in array (in-order) representation, nil for a blank node, with trailing blank
// nodes omitted.
//
// The decoder checks the shape RFC 9420 §12.4.3.3 requires of a received tree: at least one node,
// the last node not blank, leaves at even and parent nodes at odd indices. It does not verify hashes
// or signatures.
type RatchetTree []*Node

// MarshalTLS implements tlspl.Marshaler.
func (t RatchetTree) MarshalTLS(w *tlspl.Writer) {
	w.Vector(func(w *tlspl.Writer) {
		for _, n := range t {
			w.Optional(n != nil, func(w *tlspl.Writer) { n.MarshalTLS(w) })
		}
	})
}

// UnmarshalTLS implements tlspl.Unmarshaler.
func (t *RatchetTree) UnmarshalTLS(r *tlspl.Reader) {
	nodes := RatchetTree{}
	r.ForEach(func(r *tlspl.Reader) {
		if tooMany(r, "ratchet tree nodes", len(nodes), maxTreeNodes) {
			return
		}
		var n *Node
		r.Optional(func(r *tlspl.Reader) {
			n = new(Node)
			n.UnmarshalTLS(r)
		})
		if r.Err() != nil {
			return
		}
		i := len(nodes)
		if n != nil && (i%2 == 0) != (n.Type == NodeTypeLeaf) {
			r.SetError(fmt.Errorf("%w: ratchet tree node %d is a %s node", ErrMalformed, i, n.Type))
			return
		}
		nodes = append(nodes, n)
	})
	if r.Err() != nil {
		return
	}
	if len(nodes) == 0 || nodes[len(nodes)-1] == nil {
		r.SetError(fmt.Errorf("%w: ratchet tree is empty or ends in a blank node", ErrMalformed))
		return
	}
	*t = nodes
}

// DecodeRatchetTree decodes the TLS encoding of a ratchet tree, as carried in the ratchet_tree
// extension or supplied out of band.
func DecodeRatchetTree(b []byte) (RatchetTree, error) {
	var t RatchetTree
	if err := decode("RatchetTree", b, &t); err != nil {
		return nil, err
	}
	return t, nil
}

// Encode returns the TLS encoding of t.
func (t RatchetTree) Encode() ([]byte, error) { return encode("RatchetTree", t) }

// HPKECiphertext is the output of EncryptWithLabel (RFC 9420 §5.1.3).
type HPKECiphertext struct {
	KEMOutput  []byte
	Ciphertext []byte
}

// MarshalTLS implements tlspl.Marshaler.
func (c *HPKECiphertext) MarshalTLS(w *tlspl.Writer) {
	w.Opaque(c.KEMOutput)
	w.Opaque(c.Ciphertext)
}

// UnmarshalTLS implements tlspl.Unmarshaler.
func (c *HPKECiphertext) UnmarshalTLS(r *tlspl.Reader) {
	c.KEMOutput = r.Opaque()
	c.Ciphertext = r.Opaque()
}

// UpdatePathNode carries a new parent public key and the path secret encrypted to each node of the
// copath's resolution (RFC 9420 §7.6).
type UpdatePathNode struct {
	EncryptionKey       []byte // HPKEPublicKey
	EncryptedPathSecret []HPKECiphertext
}

// MarshalTLS implements tlspl.Marshaler.
func (n *UpdatePathNode) MarshalTLS(w *tlspl.Writer) {
	w.Opaque(n.EncryptionKey)
	w.Vector(func(w *tlspl.Writer) {
		for i := range n.EncryptedPathSecret {
			n.EncryptedPathSecret[i].MarshalTLS(w)
		}
	})
}

// UnmarshalTLS implements tlspl.Unmarshaler.
func (n *UpdatePathNode) UnmarshalTLS(r *tlspl.Reader) {
	n.EncryptionKey = r.Opaque()
	v := r.Vector()
	// One allocation for the usual case (a blank tree's path encrypts to every other member): room
	// for as many ciphertexts as the body holds of the suite-1 size (a 32-byte KEM output and a
	// 48-byte ciphertext with their lengths), so the slice stays proportional to the input.
	n.EncryptedPathSecret = make([]HPKECiphertext, 0, min(v.Len()/hpkeCiphertextSize1+1, maxLeaves))
	for !v.Empty() {
		if tooMany(v, "encrypted path secrets", len(n.EncryptedPathSecret), maxLeaves) {
			break
		}
		var c HPKECiphertext
		c.UnmarshalTLS(v)
		n.EncryptedPathSecret = append(n.EncryptedPathSecret, c)
	}
	r.Join(v)
}

// hpkeCiphertextSize1 is the encoded size of a path secret's HPKECiphertext in suite 1.
const hpkeCiphertextSize1 = 1 + 32 + 1 + 48

// UpdatePath is the committer's new leaf and direct path (RFC 9420 §7.6).
type UpdatePath struct {
	LeafNode LeafNode
	Nodes    []UpdatePathNode
}

// MarshalTLS implements tlspl.Marshaler.
func (p *UpdatePath) MarshalTLS(w *tlspl.Writer) {
	p.LeafNode.MarshalTLS(w)
	w.Vector(func(w *tlspl.Writer) {
		for i := range p.Nodes {
			p.Nodes[i].MarshalTLS(w)
		}
	})
}

// UnmarshalTLS implements tlspl.Unmarshaler.
func (p *UpdatePath) UnmarshalTLS(r *tlspl.Reader) {
	p.LeafNode.UnmarshalTLS(r)
	p.Nodes = []UpdatePathNode{}
	r.ForEach(func(r *tlspl.Reader) {
		if tooMany(r, "UpdatePath nodes", len(p.Nodes), maxPathNodes) {
			return
		}
		var n UpdatePathNode
		n.UnmarshalTLS(r)
		p.Nodes = append(p.Nodes, n)
	})
}
