package mls

import (
	"fmt"

	"github.com/mimi-gateway/mimi-gateway/core/tlspl"
)

// Credential binds an identity to a signature key (RFC 9420 §5.3). Type selects the meaningful field:
// Identity (basic), Certificates (x509, DER certificates, leaf first) or, for any other credential
// type, Data.
//
// RFC 9420 defines the bodies of basic and x509 only. Both are a variable-length vector, and other
// implementations (OpenMLS, mls-rs) encode credential types they do not know the same way, as
// opaque<V>; so do we: such a credential is kept as Data and re-encoded unchanged, and the
// application decides whether it accepts the type (Capabilities.Credentials).
type Credential struct {
	Type         CredentialType
	Identity     []byte   // basic: opaque identity<V>
	Certificates [][]byte // x509: Certificate certificates<V>, each opaque cert_data<V>
	Data         []byte   // other types: the body as opaque<V>
}

// MarshalTLS implements tlspl.Marshaler.
func (c *Credential) MarshalTLS(w *tlspl.Writer) {
	w.Uint16(uint16(c.Type))
	switch c.Type {
	case CredentialTypeBasic:
		w.Opaque(c.Identity)
	case CredentialTypeX509:
		w.Vector(func(w *tlspl.Writer) {
			for _, cert := range c.Certificates {
				w.Opaque(cert)
			}
		})
	case 0:
		w.SetError(fmt.Errorf("%w: credential type 0 is reserved", ErrUnknownEnum))
	default:
		w.Opaque(c.Data)
	}
}

// UnmarshalTLS implements tlspl.Unmarshaler. The reserved type 0 is rejected; types other than basic
// and x509 are read as opaque<V> into Data.
func (c *Credential) UnmarshalTLS(r *tlspl.Reader) {
	*c = Credential{Type: CredentialType(r.Uint16())}
	if r.Err() != nil {
		return
	}
	switch c.Type {
	case CredentialTypeBasic:
		c.Identity = r.Opaque()
	case CredentialTypeX509:
		c.Certificates = [][]byte{}
		r.ForEach(func(r *tlspl.Reader) {
			if !tooMany(r, "certificates", len(c.Certificates), maxCertificates) {
				c.Certificates = append(c.Certificates, r.Opaque())
			}
		})
	case 0:
		r.SetError(fmt.Errorf("%w: credential type 0 is reserved", ErrUnknownEnum))
	default:
		c.Data = r.Opaque()
	}
}

// Capabilities lists what a client supports (RFC 9420 §7.2). Unknown (including GREASE) values are
// kept as they are.
type Capabilities struct {
	Versions     []ProtocolVersion
	CipherSuites []CipherSuite
	Extensions   []ExtensionType
	Proposals    []ProposalType
	Credentials  []CredentialType
}

// MarshalTLS implements tlspl.Marshaler.
func (c *Capabilities) MarshalTLS(w *tlspl.Writer) {
	writeUint16s(w, c.Versions)
	writeUint16s(w, c.CipherSuites)
	writeUint16s(w, c.Extensions)
	writeUint16s(w, c.Proposals)
	writeUint16s(w, c.Credentials)
}

// UnmarshalTLS implements tlspl.Unmarshaler.
func (c *Capabilities) UnmarshalTLS(r *tlspl.Reader) {
	c.Versions = readUint16s[ProtocolVersion](r)
	c.CipherSuites = readUint16s[CipherSuite](r)
	c.Extensions = readUint16s[ExtensionType](r)
	c.Proposals = readUint16s[ProposalType](r)
	c.Credentials = readUint16s[CredentialType](r)
}

// Lifetime is the validity period of a KeyPackage's leaf, in seconds since the Unix epoch
// (RFC 9420 §7.2).
type Lifetime struct {
	NotBefore uint64
	NotAfter  uint64
}

// LeafNodeSource says how a LeafNode came to be (RFC 9420 §7.2).
type LeafNodeSource uint8

// Leaf node sources of RFC 9420 §7.2.
const (
	LeafNodeSourceKeyPackage LeafNodeSource = 1
	LeafNodeSourceUpdate     LeafNodeSource = 2
	LeafNodeSourceCommit     LeafNodeSource = 3
)

func (s LeafNodeSource) String() string {
	switch s {
	case LeafNodeSourceKeyPackage:
		return "key_package"
	case LeafNodeSourceUpdate:
		return "update"
	case LeafNodeSourceCommit:
		return "commit"
	}
	return fmt.Sprintf("leaf_node_source(%d)", uint8(s))
}

// LeafNode is a member's leaf in the ratchet tree (RFC 9420 §7.2). Lifetime is set only for the
// key_package source, ParentHash only for the commit source.
type LeafNode struct {
	EncryptionKey []byte // HPKEPublicKey
	SignatureKey  []byte // SignaturePublicKey
	Credential    Credential
	Capabilities  Capabilities
	Source        LeafNodeSource
	Lifetime      Lifetime // source key_package
	ParentHash    []byte   // source commit
	Extensions    Extensions
	Signature     []byte
}

// marshalContent writes the fields shared by LeafNode and LeafNodeTBS up to and including the
// source-dependent part and the extensions.
func (ln *LeafNode) marshalContent(w *tlspl.Writer) {
	w.Opaque(ln.EncryptionKey)
	w.Opaque(ln.SignatureKey)
	ln.Credential.MarshalTLS(w)
	ln.Capabilities.MarshalTLS(w)
	w.Uint8(uint8(ln.Source))
	switch ln.Source {
	case LeafNodeSourceKeyPackage:
		w.Uint64(ln.Lifetime.NotBefore)
		w.Uint64(ln.Lifetime.NotAfter)
	case LeafNodeSourceUpdate:
	case LeafNodeSourceCommit:
		w.Opaque(ln.ParentHash)
	default:
		w.SetError(fmt.Errorf("%w: cannot encode leaf node source %d", ErrUnknownEnum, uint8(ln.Source)))
	}
	ln.Extensions.MarshalTLS(w)
}

// MarshalTLS implements tlspl.Marshaler.
func (ln *LeafNode) MarshalTLS(w *tlspl.Writer) {
	ln.marshalContent(w)
	w.Opaque(ln.Signature)
}

// UnmarshalTLS implements tlspl.Unmarshaler.
func (ln *LeafNode) UnmarshalTLS(r *tlspl.Reader) {
	*ln = LeafNode{}
	ln.EncryptionKey = r.Opaque()
	ln.SignatureKey = r.Opaque()
	ln.Credential.UnmarshalTLS(r)
	ln.Capabilities.UnmarshalTLS(r)
	ln.Source = LeafNodeSource(r.Uint8())
	if r.Err() != nil {
		return
	}
	switch ln.Source {
	case LeafNodeSourceKeyPackage:
		ln.Lifetime.NotBefore = r.Uint64()
		ln.Lifetime.NotAfter = r.Uint64()
	case LeafNodeSourceUpdate:
	case LeafNodeSourceCommit:
		ln.ParentHash = r.Opaque()
	default:
		r.SetError(fmt.Errorf("%w: leaf node source %d", ErrUnknownEnum, uint8(ln.Source)))
		return
	}
	ln.Extensions.UnmarshalTLS(r)
	ln.Signature = r.Opaque()
}

// TBS returns the LeafNodeTBS encoding that the leaf's signature covers (RFC 9420 §7.2). groupID and
// leafIndex are used only for the update and commit sources.
func (ln *LeafNode) TBS(groupID []byte, leafIndex uint32) ([]byte, error) {
	var w tlspl.Writer
	ln.marshalContent(&w)
	if ln.Source == LeafNodeSourceUpdate || ln.Source == LeafNodeSourceCommit {
		w.Opaque(groupID)
		w.Uint32(leafIndex)
	}
	b, err := w.Bytes()
	if err != nil {
		return nil, fmt.Errorf("mls: encode LeafNodeTBS: %w", err)
	}
	return b, nil
}

// DecodeLeafNode decodes a TLS-encoded LeafNode.
func DecodeLeafNode(b []byte) (*LeafNode, error) {
	ln := new(LeafNode)
	if err := decode("LeafNode", b, ln); err != nil {
		return nil, err
	}
	return ln, nil
}

// Encode returns the TLS encoding of ln.
func (ln *LeafNode) Encode() ([]byte, error) { return encode("LeafNode", ln) }

// KeyPackage advertises a client so that others can add it to a group (RFC 9420 §10).
type KeyPackage struct {
	Version     ProtocolVersion
	CipherSuite CipherSuite
	InitKey     []byte // HPKEPublicKey
	LeafNode    LeafNode
	Extensions  Extensions
	Signature   []byte
}

func (kp *KeyPackage) marshalTBS(w *tlspl.Writer) {
	w.Uint16(uint16(kp.Version))
	w.Uint16(uint16(kp.CipherSuite))
	w.Opaque(kp.InitKey)
	kp.LeafNode.MarshalTLS(w)
	kp.Extensions.MarshalTLS(w)
}

// MarshalTLS implements tlspl.Marshaler.
func (kp *KeyPackage) MarshalTLS(w *tlspl.Writer) {
	kp.marshalTBS(w)
	w.Opaque(kp.Signature)
}

// UnmarshalTLS implements tlspl.Unmarshaler.
func (kp *KeyPackage) UnmarshalTLS(r *tlspl.Reader) {
	*kp = KeyPackage{}
	kp.Version = ProtocolVersion(r.Uint16())
	kp.CipherSuite = CipherSuite(r.Uint16())
	kp.InitKey = r.Opaque()
	kp.LeafNode.UnmarshalTLS(r)
	kp.Extensions.UnmarshalTLS(r)
	kp.Signature = r.Opaque()
}

// TBS returns the KeyPackageTBS encoding that the KeyPackage's signature covers (RFC 9420 §10).
func (kp *KeyPackage) TBS() ([]byte, error) {
	var w tlspl.Writer
	kp.marshalTBS(&w)
	b, err := w.Bytes()
	if err != nil {
		return nil, fmt.Errorf("mls: encode KeyPackageTBS: %w", err)
	}
	return b, nil
}

// DecodeKeyPackage decodes a bare TLS-encoded KeyPackage (not wrapped in an MLSMessage).
func DecodeKeyPackage(b []byte) (*KeyPackage, error) {
	kp := new(KeyPackage)
	if err := decode("KeyPackage", b, kp); err != nil {
		return nil, err
	}
	return kp, nil
}

// Encode returns the TLS encoding of kp.
func (kp *KeyPackage) Encode() ([]byte, error) { return encode("KeyPackage", kp) }
