package mls

// Signature schemes of the cipher suites: Ed25519 and ECDSA from the standard library, Ed448 from circl.

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
	"io"

	"github.com/cloudflare/circl/sign/ed448"
)

type ed25519Scheme struct{}

func (ed25519Scheme) key(priv []byte) (ed25519.PrivateKey, error) {
	if len(priv) != ed25519.SeedSize {
		return nil, fmt.Errorf("%w: Ed25519 private key of %d bytes, want a %d-byte seed", ErrInvalidKey, len(priv), ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(priv), nil
}

func (e ed25519Scheme) sign(priv, msg []byte) ([]byte, error) {
	k, err := e.key(priv)
	if err != nil {
		return nil, err
	}
	return ed25519.Sign(k, msg), nil
}

type ed25519Key ed25519.PrivateKey

func (k ed25519Key) sign(msg []byte) ([]byte, error) {
	return ed25519.Sign(ed25519.PrivateKey(k), msg), nil
}

func (e ed25519Scheme) parse(priv []byte) (signingKey, error) {
	k, err := e.key(priv)
	if err != nil {
		return nil, err
	}
	return ed25519Key(k), nil
}

func (ed25519Scheme) verify(pub, msg, sig []byte) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: Ed25519 public key of %d bytes", ErrInvalidKey, len(pub))
	}
	if !ed25519.Verify(ed25519.PublicKey(pub), msg, sig) {
		return ErrSignature
	}
	return nil
}

func (ed25519Scheme) generate(r io.Reader) (priv, pub []byte, err error) {
	seed, err := randomBytes(r, ed25519.SeedSize)
	if err != nil {
		return nil, nil, err
	}
	k := ed25519.NewKeyFromSeed(seed)
	return seed, []byte(k.Public().(ed25519.PublicKey)), nil
}

func (e ed25519Scheme) publicKey(priv []byte) ([]byte, error) {
	k, err := e.key(priv)
	if err != nil {
		return nil, err
	}
	return []byte(k.Public().(ed25519.PublicKey)), nil
}

func (ed25519Scheme) validatePublicKey(pub []byte) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: Ed25519 public key of %d bytes", ErrInvalidKey, len(pub))
	}
	return nil
}

type ed448Scheme struct{}

func (ed448Scheme) key(priv []byte) (ed448.PrivateKey, error) {
	if len(priv) != ed448.SeedSize {
		return nil, fmt.Errorf("%w: Ed448 private key of %d bytes, want a %d-byte seed", ErrInvalidKey, len(priv), ed448.SeedSize)
	}
	return ed448.NewKeyFromSeed(priv), nil
}

func (e ed448Scheme) sign(priv, msg []byte) ([]byte, error) {
	k, err := e.key(priv)
	if err != nil {
		return nil, err
	}
	return ed448.Sign(k, msg, ""), nil
}

type ed448Key ed448.PrivateKey

func (k ed448Key) sign(msg []byte) ([]byte, error) {
	return ed448.Sign(ed448.PrivateKey(k), msg, ""), nil
}

func (e ed448Scheme) parse(priv []byte) (signingKey, error) {
	k, err := e.key(priv)
	if err != nil {
		return nil, err
	}
	return ed448Key(k), nil
}

func (ed448Scheme) verify(pub, msg, sig []byte) error {
	if len(pub) != ed448.PublicKeySize {
		return fmt.Errorf("%w: Ed448 public key of %d bytes", ErrInvalidKey, len(pub))
	}
	if !ed448.Verify(ed448.PublicKey(pub), msg, sig, "") {
		return ErrSignature
	}
	return nil
}

func (ed448Scheme) generate(r io.Reader) (priv, pub []byte, err error) {
	seed, err := randomBytes(r, ed448.SeedSize)
	if err != nil {
		return nil, nil, err
	}
	k := ed448.NewKeyFromSeed(seed)
	return seed, []byte(k.Public().(ed448.PublicKey)), nil
}

func (e ed448Scheme) publicKey(priv []byte) ([]byte, error) {
	k, err := e.key(priv)
	if err != nil {
		return nil, err
	}
	return []byte(k.Public().(ed448.PublicKey)), nil
}

func (ed448Scheme) validatePublicKey(pub []byte) error {
	if len(pub) != ed448.PublicKeySize {
		return fmt.Errorf("%w: Ed448 public key of %d bytes", ErrInvalidKey, len(pub))
	}
	return nil
}

type curveID int

const (
	curveP256 curveID = iota
	curveP384
	curveP521
)

// ecdsaScheme is ECDSA with the curve's hash (P-256/SHA-256, P-384/SHA-384, P-521/SHA-512) and
// DER-encoded signatures.
type ecdsaScheme struct {
	curve   elliptic.Curve
	newHash func() hash.Hash
	name    string
}

func newECDSAScheme(c curveID) *ecdsaScheme {
	switch c {
	case curveP256:
		return &ecdsaScheme{curve: elliptic.P256(), newHash: sha256.New, name: "P-256"}
	case curveP384:
		return &ecdsaScheme{curve: elliptic.P384(), newHash: sha512.New384, name: "P-384"}
	default:
		return &ecdsaScheme{curve: elliptic.P521(), newHash: sha512.New, name: "P-521"}
	}
}

func (e *ecdsaScheme) digest(msg []byte) []byte {
	h := e.newHash()
	h.Write(msg)
	return h.Sum(nil)
}

func (e *ecdsaScheme) key(priv []byte) (*ecdsa.PrivateKey, error) {
	k, err := ecdsa.ParseRawPrivateKey(e.curve, priv)
	if err != nil {
		return nil, fmt.Errorf("%w: ECDSA %s private key: %v", ErrInvalidKey, e.name, err)
	}
	return k, nil
}

func (e *ecdsaScheme) pub(pub []byte) (*ecdsa.PublicKey, error) {
	if n := (e.curve.Params().BitSize + 7) / 8; len(pub) == 1+n && (pub[0] == 2 || pub[0] == 3) {
		// A compressed SEC1 point, as ts-mls (WebCrypto) sends: accept it by decompressing.
		x, y := elliptic.UnmarshalCompressed(e.curve, pub)
		if x == nil {
			return nil, fmt.Errorf("%w: ECDSA %s public key: invalid compressed point", ErrInvalidKey, e.name)
		}
		pub = elliptic.Marshal(e.curve, x, y) //nolint:staticcheck // the point is validated by ParseUncompressedPublicKey
	}
	k, err := ecdsa.ParseUncompressedPublicKey(e.curve, pub)
	if err != nil {
		return nil, fmt.Errorf("%w: ECDSA %s public key: %v", ErrInvalidKey, e.name, err)
	}
	return k, nil
}

type ecdsaKey struct {
	e *ecdsaScheme
	k *ecdsa.PrivateKey
}

func (k ecdsaKey) sign(msg []byte) ([]byte, error) { return k.e.signWith(k.k, msg) }

func (e *ecdsaScheme) parse(priv []byte) (signingKey, error) {
	k, err := e.key(priv)
	if err != nil {
		return nil, err
	}
	return ecdsaKey{e, k}, nil
}

func (e *ecdsaScheme) sign(priv, msg []byte) ([]byte, error) {
	k, err := e.key(priv)
	if err != nil {
		return nil, err
	}
	return e.signWith(k, msg)
}

func (e *ecdsaScheme) signWith(k *ecdsa.PrivateKey, msg []byte) ([]byte, error) {
	// The standard library ignores the reader's contents in Go 1.26 and draws from its own source
	// (controlled by testing/cryptotest.SetGlobalRandom in tests).
	sig, err := ecdsa.SignASN1(rand.Reader, k, e.digest(msg))
	if err != nil {
		return nil, fmt.Errorf("ECDSA %s sign: %w", e.name, err)
	}
	return sig, nil
}

func (e *ecdsaScheme) verify(pub, msg, sig []byte) error {
	k, err := e.pub(pub)
	if err != nil {
		return err
	}
	if !ecdsa.VerifyASN1(k, e.digest(msg), sig) {
		return ErrSignature
	}
	return nil
}

func (e *ecdsaScheme) generate(io.Reader) (priv, pub []byte, err error) {
	k, err := ecdsa.GenerateKey(e.curve, rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	priv, err = k.Bytes()
	if err != nil {
		return nil, nil, err
	}
	pub, err = k.PublicKey.Bytes()
	if err != nil {
		return nil, nil, err
	}
	return priv, pub, nil
}

func (e *ecdsaScheme) publicKey(priv []byte) ([]byte, error) {
	k, err := e.key(priv)
	if err != nil {
		return nil, err
	}
	return k.PublicKey.Bytes()
}

func (e *ecdsaScheme) validatePublicKey(pub []byte) error {
	_, err := e.pub(pub)
	return err
}
