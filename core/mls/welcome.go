package mls

import (
	"github.com/mimi-gateway/mimi-gateway/core/tlspl"
)

// EncryptedGroupSecrets is one new member's share of a Welcome (RFC 9420 §12.4.3.1): the GroupSecrets
// encrypted with EncryptWithLabel to the init key of the KeyPackage NewMember refers to.
type EncryptedGroupSecrets struct {
	NewMember             []byte // KeyPackageRef
	EncryptedGroupSecrets HPKECiphertext
}

// MarshalTLS implements tlspl.Marshaler.
func (e *EncryptedGroupSecrets) MarshalTLS(w *tlspl.Writer) {
	w.Opaque(e.NewMember)
	e.EncryptedGroupSecrets.MarshalTLS(w)
}

// UnmarshalTLS implements tlspl.Unmarshaler.
func (e *EncryptedGroupSecrets) UnmarshalTLS(r *tlspl.Reader) {
	e.NewMember = r.Opaque()
	e.EncryptedGroupSecrets.UnmarshalTLS(r)
}

// Welcome invites new members to a group (RFC 9420 §12.4.3.1).
type Welcome struct {
	CipherSuite        CipherSuite
	Secrets            []EncryptedGroupSecrets
	EncryptedGroupInfo []byte
}

// MarshalTLS implements tlspl.Marshaler.
func (wl *Welcome) MarshalTLS(w *tlspl.Writer) {
	w.Uint16(uint16(wl.CipherSuite))
	w.Vector(func(w *tlspl.Writer) {
		for i := range wl.Secrets {
			wl.Secrets[i].MarshalTLS(w)
		}
	})
	w.Opaque(wl.EncryptedGroupInfo)
}

// UnmarshalTLS implements tlspl.Unmarshaler.
func (wl *Welcome) UnmarshalTLS(r *tlspl.Reader) {
	wl.CipherSuite = CipherSuite(r.Uint16())
	wl.Secrets = []EncryptedGroupSecrets{}
	r.ForEach(func(r *tlspl.Reader) {
		var s EncryptedGroupSecrets
		s.UnmarshalTLS(r)
		wl.Secrets = append(wl.Secrets, s)
	})
	wl.EncryptedGroupInfo = r.Opaque()
}

// DecodeWelcome decodes a bare TLS-encoded Welcome (not wrapped in an MLSMessage).
func DecodeWelcome(b []byte) (*Welcome, error) {
	wl := new(Welcome)
	if err := decode("Welcome", b, wl); err != nil {
		return nil, err
	}
	return wl, nil
}

// Encode returns the TLS encoding of wl.
func (wl *Welcome) Encode() ([]byte, error) { return encode("Welcome", wl) }

// GroupSecrets is the plaintext of EncryptedGroupSecrets (RFC 9420 §12.4.3.1). PathSecret is nil when
// absent.
type GroupSecrets struct {
	JoinerSecret []byte
	PathSecret   []byte // optional<PathSecret>; nil when absent
	PSKs         []PreSharedKeyID
}

// MarshalTLS implements tlspl.Marshaler.
func (g *GroupSecrets) MarshalTLS(w *tlspl.Writer) {
	w.Opaque(g.JoinerSecret)
	w.Optional(g.PathSecret != nil, func(w *tlspl.Writer) { w.Opaque(g.PathSecret) })
	w.Vector(func(w *tlspl.Writer) {
		for i := range g.PSKs {
			g.PSKs[i].MarshalTLS(w)
		}
	})
}

// UnmarshalTLS implements tlspl.Unmarshaler.
func (g *GroupSecrets) UnmarshalTLS(r *tlspl.Reader) {
	*g = GroupSecrets{JoinerSecret: r.Opaque()}
	r.Optional(func(r *tlspl.Reader) {
		if g.PathSecret = r.Opaque(); g.PathSecret == nil && r.Err() == nil {
			g.PathSecret = []byte{} // present but empty: keep it distinguishable from absent
		}
	})
	g.PSKs = []PreSharedKeyID{}
	r.ForEach(func(r *tlspl.Reader) {
		var id PreSharedKeyID
		id.UnmarshalTLS(r)
		g.PSKs = append(g.PSKs, id)
	})
}

// DecodeGroupSecrets decodes a TLS-encoded GroupSecrets.
func DecodeGroupSecrets(b []byte) (*GroupSecrets, error) {
	g := new(GroupSecrets)
	if err := decode("GroupSecrets", b, g); err != nil {
		return nil, err
	}
	return g, nil
}

// Encode returns the TLS encoding of g.
func (g *GroupSecrets) Encode() ([]byte, error) { return encode("GroupSecrets", g) }

// GroupInfo describes a group's current epoch to joiners (RFC 9420 §12.4.3). Signer is the leaf index
// of the member that signed it.
type GroupInfo struct {
	GroupContext    GroupContext
	Extensions      Extensions
	ConfirmationTag []byte
	Signer          uint32
	Signature       []byte
}

func (gi *GroupInfo) marshalTBS(w *tlspl.Writer) {
	gi.GroupContext.MarshalTLS(w)
	gi.Extensions.MarshalTLS(w)
	w.Opaque(gi.ConfirmationTag)
	w.Uint32(gi.Signer)
}

// MarshalTLS implements tlspl.Marshaler.
func (gi *GroupInfo) MarshalTLS(w *tlspl.Writer) {
	gi.marshalTBS(w)
	w.Opaque(gi.Signature)
}

// UnmarshalTLS implements tlspl.Unmarshaler.
func (gi *GroupInfo) UnmarshalTLS(r *tlspl.Reader) {
	*gi = GroupInfo{}
	gi.GroupContext.UnmarshalTLS(r)
	gi.Extensions.UnmarshalTLS(r)
	gi.ConfirmationTag = r.Opaque()
	gi.Signer = r.Uint32()
	gi.Signature = r.Opaque()
}

// TBS returns the GroupInfoTBS encoding that the signature covers (RFC 9420 §12.4.3).
func (gi *GroupInfo) TBS() ([]byte, error) {
	var w tlspl.Writer
	gi.marshalTBS(&w)
	return w.Bytes()
}

// DecodeGroupInfo decodes a bare TLS-encoded GroupInfo (not wrapped in an MLSMessage).
func DecodeGroupInfo(b []byte) (*GroupInfo, error) {
	gi := new(GroupInfo)
	if err := decode("GroupInfo", b, gi); err != nil {
		return nil, err
	}
	return gi, nil
}

// Encode returns the TLS encoding of gi.
func (gi *GroupInfo) Encode() ([]byte, error) { return encode("GroupInfo", gi) }
