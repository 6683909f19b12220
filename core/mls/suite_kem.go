package mls

// HPKE (RFC 9180, base mode) for the cipher suites: crypto/hpke for X25519 and the NIST curves,
// circl for X448 (suites 4 and 6).

import (
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"

	circlhpke "github.com/cloudflare/circl/hpke"
	circlkem "github.com/cloudflare/circl/kem"
)

type kemID int

const (
	kemX25519 kemID = iota
	kemP256
	kemP384
	kemP521
)

type kdfID int

const (
	kdfSHA256 kdfID = iota
	kdfSHA384
	kdfSHA512
)

type aeadID int

const (
	aeadAES128GCM aeadID = iota
	aeadAES256GCM
	aeadChaCha20Poly1305
)

// stdKEM is HPKE on crypto/hpke.
type stdKEM struct {
	kem  hpke.KEM
	kdf  hpke.KDF
	aead hpke.AEAD
}

func newStdKEM(k kemID, f kdfID, a aeadID) *stdKEM {
	s := &stdKEM{}
	switch k {
	case kemX25519:
		s.kem = hpke.DHKEM(ecdh.X25519())
	case kemP256:
		s.kem = hpke.DHKEM(ecdh.P256())
	case kemP384:
		s.kem = hpke.DHKEM(ecdh.P384())
	case kemP521:
		s.kem = hpke.DHKEM(ecdh.P521())
	}
	switch f {
	case kdfSHA256:
		s.kdf = hpke.HKDFSHA256()
	case kdfSHA384:
		s.kdf = hpke.HKDFSHA384()
	case kdfSHA512:
		s.kdf = hpke.HKDFSHA512()
	}
	switch a {
	case aeadAES128GCM:
		s.aead = hpke.AES128GCM()
	case aeadAES256GCM:
		s.aead = hpke.AES256GCM()
	case aeadChaCha20Poly1305:
		s.aead = hpke.ChaCha20Poly1305()
	}
	return s
}

func (s *stdKEM) privateKey(priv []byte) (hpke.PrivateKey, error) {
	k, err := s.kem.NewPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("%w: HPKE private key: %v", ErrInvalidKey, err)
	}
	return k, nil
}

func (s *stdKEM) publicKeyOf(pub []byte) (hpke.PublicKey, error) {
	k, err := s.kem.NewPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: HPKE public key: %v", ErrInvalidKey, err)
	}
	return k, nil
}

func encodePair(k hpke.PrivateKey) (priv, pub []byte, err error) {
	priv, err = k.Bytes()
	if err != nil {
		return nil, nil, err
	}
	return priv, k.PublicKey().Bytes(), nil
}

func (s *stdKEM) deriveKeyPair(ikm []byte) (priv, pub []byte, err error) {
	k, err := s.kem.DeriveKeyPair(ikm)
	if err != nil {
		return nil, nil, err
	}
	return encodePair(k)
}

func (s *stdKEM) publicKey(priv []byte) ([]byte, error) {
	k, err := s.privateKey(priv)
	if err != nil {
		return nil, err
	}
	return k.PublicKey().Bytes(), nil
}

func (s *stdKEM) validatePublicKey(pub []byte) error {
	_, err := s.publicKeyOf(pub)
	return err
}

func (s *stdKEM) seal(pub, info, aad, pt []byte) (enc, ct []byte, err error) {
	pk, err := s.publicKeyOf(pub)
	if err != nil {
		return nil, nil, err
	}
	enc, snd, err := hpke.NewSender(pk, s.kdf, s.aead, info)
	if err != nil {
		return nil, nil, fmt.Errorf("HPKE setup: %w", err)
	}
	ct, err = snd.Seal(aad, pt)
	if err != nil {
		return nil, nil, fmt.Errorf("HPKE seal: %w", err)
	}
	return enc, ct, nil
}

func (s *stdKEM) open(priv, enc, info, aad, ct []byte) ([]byte, error) {
	sk, err := s.privateKey(priv)
	if err != nil {
		return nil, err
	}
	r, err := hpke.NewRecipient(enc, sk, s.kdf, s.aead, info)
	if err != nil {
		return nil, fmt.Errorf("%w: HPKE setup: %v", ErrDecrypt, err)
	}
	pt, err := r.Open(aad, ct)
	if err != nil {
		return nil, fmt.Errorf("%w: HPKE open", ErrDecrypt)
	}
	return pt, nil
}

func (s *stdKEM) exportSender(pub, info []byte, exporterContext string, length int) (enc, secret []byte, err error) {
	pk, err := s.publicKeyOf(pub)
	if err != nil {
		return nil, nil, err
	}
	enc, snd, err := hpke.NewSender(pk, s.kdf, s.aead, info)
	if err != nil {
		return nil, nil, fmt.Errorf("HPKE setup: %w", err)
	}
	secret, err = snd.Export(exporterContext, length)
	if err != nil {
		return nil, nil, fmt.Errorf("HPKE export: %w", err)
	}
	return enc, secret, nil
}

func (s *stdKEM) exportRecipient(priv, enc, info []byte, exporterContext string, length int) ([]byte, error) {
	sk, err := s.privateKey(priv)
	if err != nil {
		return nil, err
	}
	r, err := hpke.NewRecipient(enc, sk, s.kdf, s.aead, info)
	if err != nil {
		return nil, fmt.Errorf("%w: HPKE setup: %v", ErrDecrypt, err)
	}
	secret, err := r.Export(exporterContext, length)
	if err != nil {
		return nil, fmt.Errorf("HPKE export: %w", err)
	}
	return secret, nil
}

// x448KEM is DHKEM(X448, HKDF-SHA512) on circl, with HKDF-SHA512 and the suite's AEAD.
type x448KEM struct {
	suite  circlhpke.Suite
	scheme circlkem.Scheme
}

const x448KEMID = 0x0021

func newX448KEM(a aeadID) *x448KEM {
	var aead circlhpke.AEAD
	switch a {
	case aeadAES256GCM:
		aead = circlhpke.AEAD_AES256GCM
	case aeadChaCha20Poly1305:
		aead = circlhpke.AEAD_ChaCha20Poly1305
	default:
		panic("mls: X448 with unsupported AEAD")
	}
	return &x448KEM{
		suite:  circlhpke.NewSuite(circlhpke.KEM_X448_HKDF_SHA512, circlhpke.KDF_HKDF_SHA512, aead),
		scheme: circlhpke.KEM_X448_HKDF_SHA512.Scheme(),
	}
}

// deriveKeyPair implements RFC 9180 §7.1.3 for X448 itself: circl's DeriveKeyPair only accepts seeds
// of exactly 56 bytes, while MLS derives from Nh = 64-byte secrets.
//
//	dkp_prk = LabeledExtract("", "dkp_prk", ikm)
//	sk      = LabeledExpand(dkp_prk, "sk", "", 56)
func (x *x448KEM) deriveKeyPair(ikm []byte) (priv, pub []byte, err error) {
	suiteID := []byte{'K', 'E', 'M', x448KEMID >> 8, x448KEMID & 0xff}
	labeledIKM := append(append(append([]byte("HPKE-v1"), suiteID...), "dkp_prk"...), ikm...)
	prk, err := hkdf.Extract(sha512.New, labeledIKM, nil)
	if err != nil {
		return nil, nil, err
	}
	const nsk = 56
	info := binary.BigEndian.AppendUint16(nil, nsk)
	info = append(append(append(info, "HPKE-v1"...), suiteID...), "sk"...)
	sk, err := hkdf.Expand(sha512.New, prk, string(info), nsk)
	if err != nil {
		return nil, nil, err
	}
	pub, err = x.publicKey(sk)
	if err != nil {
		return nil, nil, err
	}
	return sk, pub, nil
}

func (x *x448KEM) privateKey(priv []byte) (circlkem.PrivateKey, error) {
	k, err := x.scheme.UnmarshalBinaryPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("%w: X448 private key: %v", ErrInvalidKey, err)
	}
	return k, nil
}

func (x *x448KEM) publicKeyOf(pub []byte) (circlkem.PublicKey, error) {
	k, err := x.scheme.UnmarshalBinaryPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: X448 public key: %v", ErrInvalidKey, err)
	}
	return k, nil
}

func (x *x448KEM) publicKey(priv []byte) ([]byte, error) {
	k, err := x.privateKey(priv)
	if err != nil {
		return nil, err
	}
	return k.Public().MarshalBinary()
}

func (x *x448KEM) validatePublicKey(pub []byte) error {
	_, err := x.publicKeyOf(pub)
	return err
}

func (x *x448KEM) sender(pub, info []byte) (enc []byte, s circlhpke.Sealer, err error) {
	pk, err := x.publicKeyOf(pub)
	if err != nil {
		return nil, nil, err
	}
	snd, err := x.suite.NewSender(pk, info)
	if err != nil {
		return nil, nil, fmt.Errorf("HPKE setup: %w", err)
	}
	enc, s, err = snd.Setup(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("HPKE setup: %w", err)
	}
	return enc, s, nil
}

func (x *x448KEM) recipient(priv, enc, info []byte) (circlhpke.Opener, error) {
	sk, err := x.privateKey(priv)
	if err != nil {
		return nil, err
	}
	r, err := x.suite.NewReceiver(sk, info)
	if err != nil {
		return nil, fmt.Errorf("%w: HPKE setup: %v", ErrDecrypt, err)
	}
	o, err := r.Setup(enc)
	if err != nil {
		return nil, fmt.Errorf("%w: HPKE setup: %v", ErrDecrypt, err)
	}
	return o, nil
}

func (x *x448KEM) seal(pub, info, aad, pt []byte) (enc, ct []byte, err error) {
	enc, s, err := x.sender(pub, info)
	if err != nil {
		return nil, nil, err
	}
	ct, err = s.Seal(pt, aad)
	if err != nil {
		return nil, nil, fmt.Errorf("HPKE seal: %w", err)
	}
	return enc, ct, nil
}

func (x *x448KEM) open(priv, enc, info, aad, ct []byte) ([]byte, error) {
	o, err := x.recipient(priv, enc, info)
	if err != nil {
		return nil, err
	}
	pt, err := o.Open(ct, aad)
	if err != nil {
		return nil, fmt.Errorf("%w: HPKE open", ErrDecrypt)
	}
	return pt, nil
}

var errExportLength = errors.New("mls: HPKE export length out of range")

func (x *x448KEM) exportSender(pub, info []byte, exporterContext string, length int) (enc, secret []byte, err error) {
	if length < 0 || length > 255*64 {
		return nil, nil, errExportLength
	}
	enc, s, err := x.sender(pub, info)
	if err != nil {
		return nil, nil, err
	}
	return enc, s.Export([]byte(exporterContext), uint(length)), nil
}

func (x *x448KEM) exportRecipient(priv, enc, info []byte, exporterContext string, length int) ([]byte, error) {
	if length < 0 || length > 255*64 {
		return nil, errExportLength
	}
	o, err := x.recipient(priv, enc, info)
	if err != nil {
		return nil, err
	}
	return o.Export([]byte(exporterContext), uint(length)), nil
}
