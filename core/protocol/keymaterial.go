package protocol

import (
	"fmt"

	"github.com/mimi-gateway/mimi-gateway/core/mls"
	"github.com/mimi-gateway/mimi-gateway/core/tlspl"
)

// KeyMaterialRequest claims KeyPackages of a user (§5.2), sent by the requester's provider to
// the hub and by the hub to the target's provider.
type KeyMaterialRequest struct {
	Protocol       Protocol
	RequestingUser IdentifierURI
	TargetUser     IdentifierURI
	// RoomID is the room the claim is for; empty when not for a room (reading R11: the draft
	// says it MUST be present for a room, and the field is a plain IdentifierUri).
	RoomID                 IdentifierURI
	AcceptableCipherSuites []mls.CipherSuite // non-empty
	RequiredCapabilities   RequiredCapabilities
	RequesterSignatureKey  []byte
	RequesterCredential    mls.Credential
	Signature              []byte
}

func (k *KeyMaterialRequest) marshalTBS(w *tlspl.Writer) {
	k.Protocol.marshal(w)
	k.RequestingUser.MarshalTLS(w)
	k.TargetUser.MarshalTLS(w)
	k.RoomID.MarshalTLS(w)
	if len(k.AcceptableCipherSuites) == 0 {
		w.SetError(fmt.Errorf("%w: no acceptable cipher suite", ErrMalformed))
	}
	writeSuites(w, k.AcceptableCipherSuites)
	k.RequiredCapabilities.MarshalTLS(w)
	w.Opaque(k.RequesterSignatureKey)
	k.RequesterCredential.MarshalTLS(w)
}

// MarshalTLS implements tlspl.Marshaler.
func (k *KeyMaterialRequest) MarshalTLS(w *tlspl.Writer) {
	k.marshalTBS(w)
	w.Opaque(k.Signature)
}

// UnmarshalTLS implements tlspl.Unmarshaler.
func (k *KeyMaterialRequest) UnmarshalTLS(r *tlspl.Reader) {
	*k = KeyMaterialRequest{Protocol: readProtocol(r)}
	k.RequestingUser.UnmarshalTLS(r)
	k.TargetUser.UnmarshalTLS(r)
	k.RoomID.UnmarshalTLS(r)
	k.AcceptableCipherSuites = readSuites(r)
	if r.Err() == nil && len(k.AcceptableCipherSuites) == 0 {
		r.SetError(fmt.Errorf("%w: no acceptable cipher suite", ErrMalformed))
	}
	k.RequiredCapabilities.UnmarshalTLS(r)
	k.RequesterSignatureKey = r.OpaqueCopy()
	k.RequesterCredential.UnmarshalTLS(r)
	k.Signature = r.OpaqueCopy()
}

// TBS returns KeyMaterialRequestTBS: the request without its signature.
func (k *KeyMaterialRequest) TBS() ([]byte, error) {
	w := tlspl.NewWriter(256)
	k.marshalTBS(w)
	b, err := w.Bytes()
	if err != nil {
		return nil, fmt.Errorf("protocol: KeyMaterialRequestTBS: %w", err)
	}
	return b, nil
}

// Sign sets Signature = SignWithLabel(priv, "KeyMaterialRequestTBS", TBS) with the signature
// scheme of the first acceptable cipher suite (reading R7). priv belongs to
// RequesterSignatureKey.
func (k *KeyMaterialRequest) Sign(priv []byte) error {
	cs, err := keyMaterialSignatureSuite(k)
	if err != nil {
		return err
	}
	tbs, err := k.TBS()
	if err != nil {
		return err
	}
	sig, err := cs.SignWithLabel(priv, labelKeyMaterialRequest, tbs)
	if err != nil {
		return fmt.Errorf("protocol: sign KeyMaterialRequest: %w", err)
	}
	k.Signature = sig
	return nil
}

// Verify checks Signature against RequesterSignatureKey; the error wraps ErrSignature.
func (k *KeyMaterialRequest) Verify() error {
	cs, err := keyMaterialSignatureSuite(k)
	if err != nil {
		return err
	}
	tbs, err := k.TBS()
	if err != nil {
		return err
	}
	if err := cs.VerifyWithLabel(k.RequesterSignatureKey, labelKeyMaterialRequest, tbs, k.Signature); err != nil {
		return fmt.Errorf("%w: KeyMaterialRequest: %w", ErrSignature, err)
	}
	return nil
}

// Encode returns the TLS encoding.
func (k *KeyMaterialRequest) Encode() ([]byte, error) { return encode("KeyMaterialRequest", k) }

// DecodeKeyMaterialRequest decodes a KeyMaterialRequest body.
func DecodeKeyMaterialRequest(b []byte) (*KeyMaterialRequest, error) {
	k := new(KeyMaterialRequest)
	if err := decode("KeyMaterialRequest", b, k); err != nil {
		return nil, err
	}
	return k, nil
}

// KeyMaterialUserCode is the per-user status of a key material claim (§5.2).
type KeyMaterialUserCode uint8

// KeyMaterialUserCode values.
const (
	KeyMaterialUserSuccess              KeyMaterialUserCode = 0
	KeyMaterialUserPartialSuccess       KeyMaterialUserCode = 1
	KeyMaterialUserIncompatibleProtocol KeyMaterialUserCode = 2
	KeyMaterialUserNoCompatibleMaterial KeyMaterialUserCode = 3
	KeyMaterialUserUnknown              KeyMaterialUserCode = 4
	KeyMaterialUserNoConsent            KeyMaterialUserCode = 5
	KeyMaterialUserNoConsentForRoom     KeyMaterialUserCode = 6
	KeyMaterialUserDeleted              KeyMaterialUserCode = 7
)

// KeyMaterialClientCode is the per-client status of a key material claim (§5.2).
type KeyMaterialClientCode uint8

// KeyMaterialClientCode values.
const (
	KeyMaterialClientSuccess           KeyMaterialClientCode = 0
	KeyMaterialClientExhausted         KeyMaterialClientCode = 1
	KeyMaterialClientNothingCompatible KeyMaterialClientCode = 2
)

// ClientKeyMaterial is one client's answer in a KeyMaterialResponse.
type ClientKeyMaterial struct {
	ClientStatus KeyMaterialClientCode
	ClientURI    IdentifierURI
	// KeyPackage is set exactly when ClientStatus is success.
	KeyPackage *mls.KeyPackage
	// ClientCapabilities is the optional<Capabilities> of nothingCompatible.
	ClientCapabilities *mls.Capabilities
}

// MarshalTLS implements tlspl.Marshaler.
func (c *ClientKeyMaterial) MarshalTLS(w *tlspl.Writer) {
	w.Uint8(uint8(c.ClientStatus))
	c.ClientURI.MarshalTLS(w)
	switch c.ClientStatus {
	case KeyMaterialClientSuccess:
		if c.KeyPackage == nil {
			w.SetError(fmt.Errorf("%w: success without a KeyPackage", ErrMalformed))
			return
		}
		c.KeyPackage.MarshalTLS(w)
	case KeyMaterialClientExhausted:
	case KeyMaterialClientNothingCompatible:
		w.Optional(c.ClientCapabilities != nil, func(w *tlspl.Writer) { c.ClientCapabilities.MarshalTLS(w) })
	default:
		w.SetError(fmt.Errorf("%w: client status %d", ErrMalformed, c.ClientStatus))
	}
}

// UnmarshalTLS implements tlspl.Unmarshaler.
func (c *ClientKeyMaterial) UnmarshalTLS(r *tlspl.Reader) {
	*c = ClientKeyMaterial{ClientStatus: KeyMaterialClientCode(r.Uint8())}
	c.ClientURI.UnmarshalTLS(r)
	if r.Err() != nil {
		return
	}
	switch c.ClientStatus {
	case KeyMaterialClientSuccess:
		c.KeyPackage = new(mls.KeyPackage)
		c.KeyPackage.UnmarshalTLS(r)
	case KeyMaterialClientExhausted:
	case KeyMaterialClientNothingCompatible:
		r.Optional(func(r *tlspl.Reader) {
			c.ClientCapabilities = new(mls.Capabilities)
			c.ClientCapabilities.UnmarshalTLS(r)
		})
	default:
		r.SetError(fmt.Errorf("%w: client status %d", ErrMalformed, c.ClientStatus))
	}
}

// KeyMaterialResponse answers a KeyMaterialRequest (§5.2).
type KeyMaterialResponse struct {
	Protocol   Protocol
	UserStatus KeyMaterialUserCode
	UserURI    IdentifierURI
	Clients    []ClientKeyMaterial
}

// MarshalTLS implements tlspl.Marshaler.
func (k *KeyMaterialResponse) MarshalTLS(w *tlspl.Writer) {
	k.Protocol.marshal(w)
	if k.UserStatus > KeyMaterialUserDeleted {
		w.SetError(fmt.Errorf("%w: user status %d", ErrMalformed, k.UserStatus))
	}
	w.Uint8(uint8(k.UserStatus))
	k.UserURI.MarshalTLS(w)
	w.Vector(func(w *tlspl.Writer) {
		for i := range k.Clients {
			k.Clients[i].MarshalTLS(w)
		}
	})
}

// UnmarshalTLS implements tlspl.Unmarshaler.
func (k *KeyMaterialResponse) UnmarshalTLS(r *tlspl.Reader) {
	*k = KeyMaterialResponse{Protocol: readProtocol(r), UserStatus: KeyMaterialUserCode(r.Uint8())}
	if r.Err() == nil && k.UserStatus > KeyMaterialUserDeleted {
		r.SetError(fmt.Errorf("%w: user status %d", ErrMalformed, k.UserStatus))
	}
	k.UserURI.UnmarshalTLS(r)
	forEachLimited(r, "clients", func(r *tlspl.Reader) {
		var c ClientKeyMaterial
		c.UnmarshalTLS(r)
		k.Clients = append(k.Clients, c)
	})
}

// Encode returns the TLS encoding.
func (k *KeyMaterialResponse) Encode() ([]byte, error) { return encode("KeyMaterialResponse", k) }

// DecodeKeyMaterialResponse decodes a KeyMaterialResponse body.
func DecodeKeyMaterialResponse(b []byte) (*KeyMaterialResponse, error) {
	k := new(KeyMaterialResponse)
	if err := decode("KeyMaterialResponse", b, k); err != nil {
		return nil, err
	}
	return k, nil
}
