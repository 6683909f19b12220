package mls

import (
	"bytes"
	"errors"
	"fmt"

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
		if tooMany(r, "Welcome recipients", len(wl.Secrets), maxWelcomeSecrets) {
			return
		}
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
type groupSecrets struct {
	JoinerSecret []byte
	PathSecret   []byte // optional<PathSecret>; nil when absent
	PSKs         []PreSharedKeyID
}

// MarshalTLS implements tlspl.Marshaler.
func (g *groupSecrets) MarshalTLS(w *tlspl.Writer) {
	w.Opaque(g.JoinerSecret)
	w.Optional(g.PathSecret != nil, func(w *tlspl.Writer) { w.Opaque(g.PathSecret) })
	w.Vector(func(w *tlspl.Writer) {
		for i := range g.PSKs {
			g.PSKs[i].MarshalTLS(w)
		}
	})
}

// UnmarshalTLS implements tlspl.Unmarshaler.
func (g *groupSecrets) UnmarshalTLS(r *tlspl.Reader) {
	*g = groupSecrets{JoinerSecret: r.Opaque()}
	r.Optional(func(r *tlspl.Reader) {
		if g.PathSecret = r.Opaque(); g.PathSecret == nil && r.Err() == nil {
			g.PathSecret = []byte{} // present but empty: keep it distinguishable from absent
		}
	})
	g.PSKs = []PreSharedKeyID{}
	r.ForEach(func(r *tlspl.Reader) {
		if tooMany(r, "PSKs", len(g.PSKs), maxPSKs) {
			return
		}
		var id PreSharedKeyID
		id.UnmarshalTLS(r)
		g.PSKs = append(g.PSKs, id)
	})
}

// DecodeGroupSecrets decodes a TLS-encoded GroupSecrets.
func decodeGroupSecrets(b []byte) (*groupSecrets, error) {
	g := new(groupSecrets)
	if err := decode("GroupSecrets", b, g); err != nil {
		return nil, err
	}
	return g, nil
}

// Encode returns the TLS encoding of g.
func (g *groupSecrets) Encode() ([]byte, error) { return encode("GroupSecrets", g) }

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
	b, err := w.Bytes()
	if err != nil {
		return nil, fmt.Errorf("mls: encode GroupInfoTBS: %w", err)
	}
	return b, nil
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

// Labels of RFC 9420 used with Welcome, GroupInfo and KeyPackage (without the "MLS 1.0 " prefix).
const (
	labelWelcome       = "Welcome"
	labelGroupInfoTBS  = "GroupInfoTBS"
	labelKeyPackageTBS = "KeyPackageTBS"
	labelLeafNodeTBS   = "LeafNodeTBS"
)

// ErrNotInvited means a Welcome has no EncryptedGroupSecrets for the KeyPackage it was opened with.
var ErrNotInvited = errors.New("mls: Welcome has no secrets for this KeyPackage")

// Verify checks the signatures of a KeyPackage: the KeyPackage signature and the signature of its
// leaf node (source key_package), both with the leaf's signature key, using kp's cipher suite. It
// does not check the lifetime, capabilities or credential.
func (kp *KeyPackage) Verify() error {
	s, err := kp.CipherSuite.impl()
	if err != nil {
		return err
	}
	if kp.LeafNode.Source != LeafNodeSourceKeyPackage {
		return fmt.Errorf("%w: KeyPackage leaf node has source %s", ErrMalformed, kp.LeafNode.Source)
	}
	leafTBS, err := kp.LeafNode.TBS(nil, 0)
	if err != nil {
		return err
	}
	if err := s.verifyWithLabel(kp.LeafNode.SignatureKey, labelLeafNodeTBS, leafTBS, kp.LeafNode.Signature); err != nil {
		return fmt.Errorf("mls: KeyPackage leaf node: %w", err)
	}
	tbs, err := kp.TBS()
	if err != nil {
		return err
	}
	if err := s.verifyWithLabel(kp.LeafNode.SignatureKey, labelKeyPackageTBS, tbs, kp.Signature); err != nil {
		return fmt.Errorf("mls: KeyPackage: %w", err)
	}
	return nil
}

// signGroupInfo sets gi.Signature to the signature of GroupInfoTBS with key.
func signGroupInfo(s *suite, gi *GroupInfo, key signingKey) error {
	tbs, err := gi.TBS()
	if err != nil {
		return fmt.Errorf("mls: encode GroupInfoTBS: %w", err)
	}
	sig, err := s.signWithLabelKey(key, labelGroupInfoTBS, tbs)
	if err != nil {
		return err
	}
	gi.Signature = sig
	return nil
}

// verifyGroupInfo checks gi's signature with the signer's signature public key.
func verifyGroupInfo(s *suite, gi *GroupInfo, signerPub []byte) error {
	tbs, err := gi.TBS()
	if err != nil {
		return fmt.Errorf("mls: encode GroupInfoTBS: %w", err)
	}
	if err := s.verifyWithLabel(signerPub, labelGroupInfoTBS, tbs, gi.Signature); err != nil {
		return fmt.Errorf("mls: GroupInfo signed by leaf %d: %w", gi.Signer, err)
	}
	return nil
}

// welcomeRecipient is one new member of a Welcome: its KeyPackage and the GroupSecrets for it (the
// path secret differs per recipient; joiner secret and PSKs are the same for all).
type welcomeRecipient struct {
	keyPackage *KeyPackage
	secrets    *groupSecrets
}

// sealWelcome builds a Welcome (RFC 9420 §12.4.3.1): the signed GroupInfo encrypted under the
// welcome key derived from joinerSecret and pskSecret (nil: no PSKs), and each recipient's
// GroupSecrets encrypted to its KeyPackage's init key.
func sealWelcome(s *suite, gi *GroupInfo, joinerSecret, pskSecret []byte, recipients []welcomeRecipient) (*Welcome, error) {
	if len(recipients) == 0 {
		return nil, fmt.Errorf("mls: Welcome without recipients")
	}
	giBytes, err := gi.Encode()
	if err != nil {
		return nil, err
	}
	welcomeSecret := s.welcomeSecretFromJoiner(joinerSecret, pskSecret)
	defer zero(welcomeSecret)
	key, nonce := s.welcomeKeyNonce(welcomeSecret)
	defer zero(key)
	encGI, err := s.seal(key, nonce, nil, giBytes)
	if err != nil {
		return nil, fmt.Errorf("mls: encrypt GroupInfo: %w", err)
	}
	w := &Welcome{CipherSuite: s.id, EncryptedGroupInfo: encGI, Secrets: make([]EncryptedGroupSecrets, 0, len(recipients))}
	for _, r := range recipients {
		if r.keyPackage.CipherSuite != s.id {
			return nil, fmt.Errorf("mls: Welcome for a KeyPackage of %v in a %v group", r.keyPackage.CipherSuite, s.id)
		}
		ref, err := r.keyPackage.Ref()
		if err != nil {
			return nil, err
		}
		pt, err := r.secrets.Encode()
		if err != nil {
			return nil, err
		}
		kemOut, ct, err := s.encryptWithLabel(r.keyPackage.InitKey, labelWelcome, encGI, pt)
		zero(pt)
		if err != nil {
			return nil, err
		}
		w.Secrets = append(w.Secrets, EncryptedGroupSecrets{NewMember: ref, EncryptedGroupSecrets: HPKECiphertext{KEMOutput: kemOut, Ciphertext: ct}})
	}
	return w, nil
}

// openGroupSecrets finds the EncryptedGroupSecrets for the KeyPackage with reference kpRef and
// decrypts them with the KeyPackage's init private key.
func openGroupSecrets(s *suite, w *Welcome, kpRef, initPriv []byte) (*groupSecrets, error) {
	if w.CipherSuite != s.id {
		return nil, fmt.Errorf("mls: Welcome of %v opened with %v", w.CipherSuite, s.id)
	}
	for i := range w.Secrets {
		e := &w.Secrets[i]
		if !bytes.Equal(e.NewMember, kpRef) {
			continue
		}
		pt, err := s.decryptWithLabel(initPriv, labelWelcome, w.EncryptedGroupInfo, e.EncryptedGroupSecrets.KEMOutput, e.EncryptedGroupSecrets.Ciphertext)
		if err != nil {
			return nil, fmt.Errorf("mls: Welcome group secrets: %w", err)
		}
		gs, err := decodeGroupSecrets(pt)
		zero(pt)
		if err != nil {
			return nil, err
		}
		return gs, nil
	}
	return nil, ErrNotInvited
}

// openGroupInfo decrypts a Welcome's GroupInfo with the welcome key derived from joinerSecret and
// pskSecret (nil: no PSKs). The caller verifies its signature once it knows the signer's key.
func openGroupInfo(s *suite, w *Welcome, joinerSecret, pskSecret []byte) (*GroupInfo, error) {
	welcomeSecret := s.welcomeSecretFromJoiner(joinerSecret, pskSecret)
	defer zero(welcomeSecret)
	key, nonce := s.welcomeKeyNonce(welcomeSecret)
	defer zero(key)
	pt, err := s.open(key, nonce, nil, w.EncryptedGroupInfo)
	if err != nil {
		return nil, fmt.Errorf("mls: Welcome GroupInfo: %w", err)
	}
	gi, err := DecodeGroupInfo(pt)
	if err != nil {
		return nil, err
	}
	if gi.GroupContext.CipherSuite != w.CipherSuite {
		return nil, fmt.Errorf("%w: GroupInfo of %v in a Welcome of %v", ErrMalformed, gi.GroupContext.CipherSuite, w.CipherSuite)
	}
	return gi, nil
}
