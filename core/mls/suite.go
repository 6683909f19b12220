package mls

// Cipher suites and the per-suite primitives of RFC 9420 §5.1 and §17.1.
//
// How the rest of the package uses this file:
//
//	s, err := cs.impl()            // *suite for a CipherSuite; ErrUnsupportedCipherSuite otherwise
//	s.hashSize(), s.aeadKeySize(), s.aeadNonceSize()
//	s.hash(b), s.refHash(label, v), s.mac(key, data)
//	s.extract(salt, ikm), s.expandWithLabel(secret, label, ctx, n), s.deriveSecret(secret, label)
//	s.deriveTreeSecret(secret, label, generation, n)
//	s.signWithLabel(priv, label, content), s.verifyWithLabel(pub, label, content, sig)
//	s.encryptWithLabel(pub, label, ctx, pt), s.decryptWithLabel(priv, label, ctx, kemOut, ct)
//	s.seal(key, nonce, aad, pt), s.open(key, nonce, aad, ct)
//	s.deriveKeyPair(ikm), s.generateKEMKeyPair(r), s.generateSignatureKeyPair(r)
//	s.hpkeExportSender / s.hpkeExportRecipient (external init, RFC 9420 §8.3)
//
// Labels: expandWithLabel, deriveSecret, deriveTreeSecret, signWithLabel, verifyWithLabel,
// encryptWithLabel and decryptWithLabel take the label WITHOUT the "MLS 1.0 " prefix and add it.
// refHash takes its label verbatim (RFC 9420 §5.2 passes the full "MLS 1.0 ..." string).
//
// Key encodings (as the RFC 9420 test vectors use them):
//   - HPKE private keys: SerializePrivateKey of RFC 9180 (X25519/X448 raw bytes, P-curves big-endian
//     scalars). Public keys: SerializePublicKey (X25519/X448 raw, P-curves uncompressed 04||X||Y).
//   - Signature private keys: Ed25519 and Ed448 the RFC 8032 seed (32 / 57 bytes); ECDSA the
//     big-endian scalar. Public keys: Ed25519/Ed448 raw, ECDSA uncompressed points.
//   - ECDSA signatures are ASN.1 DER; EdDSA signatures are raw.
//
// A *suite is immutable and safe for concurrent use.

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/mimi-gateway/mimi-gateway/core/tlspl"
)

// CipherSuite identifies an MLS cipher suite (RFC 9420 §17.1).
type CipherSuite uint16

// The cipher suites registered by RFC 9420 §17.1. All of them are supported.
const (
	MLS128DHKEMX25519AES128GCMSHA256Ed25519        CipherSuite = 0x0001
	MLS128DHKEMP256AES128GCMSHA256P256             CipherSuite = 0x0002
	MLS128DHKEMX25519ChaCha20Poly1305SHA256Ed25519 CipherSuite = 0x0003
	MLS256DHKEMX448AES256GCMSHA512Ed448            CipherSuite = 0x0004
	MLS256DHKEMP521AES256GCMSHA512P521             CipherSuite = 0x0005
	MLS256DHKEMX448ChaCha20Poly1305SHA512Ed448     CipherSuite = 0x0006
	MLS256DHKEMP384AES256GCMSHA384P384             CipherSuite = 0x0007
)

// Errors reported by the cryptographic primitives. They are wrapped with context; test with errors.Is.
var (
	// ErrUnsupportedCipherSuite means the cipher suite is not one this package implements.
	ErrUnsupportedCipherSuite = errors.New("mls: unsupported cipher suite")
	// ErrInvalidKey means a public or private key does not decode for the cipher suite.
	ErrInvalidKey = errors.New("mls: invalid key")
	// ErrSignature means a signature did not verify.
	ErrSignature = errors.New("mls: signature verification failed")
	// ErrDecrypt means an AEAD or HPKE decryption failed (wrong key, nonce, AAD, or tampering).
	ErrDecrypt = errors.New("mls: decryption failed")
)

var suiteNames = map[CipherSuite]string{
	MLS128DHKEMX25519AES128GCMSHA256Ed25519:        "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519",
	MLS128DHKEMP256AES128GCMSHA256P256:             "MLS_128_DHKEMP256_AES128GCM_SHA256_P256",
	MLS128DHKEMX25519ChaCha20Poly1305SHA256Ed25519: "MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519",
	MLS256DHKEMX448AES256GCMSHA512Ed448:            "MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448",
	MLS256DHKEMP521AES256GCMSHA512P521:             "MLS_256_DHKEMP521_AES256GCM_SHA512_P521",
	MLS256DHKEMX448ChaCha20Poly1305SHA512Ed448:     "MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448",
	MLS256DHKEMP384AES256GCMSHA384P384:             "MLS_256_DHKEMP384_AES256GCM_SHA384_P384",
}

// String returns the RFC 9420 name of the cipher suite, or "CipherSuite(0x....)" when unknown.
func (cs CipherSuite) String() string {
	if n, ok := suiteNames[cs]; ok {
		return n
	}
	return fmt.Sprintf("CipherSuite(0x%04x)", uint16(cs))
}

// Supported reports whether this package implements the cipher suite.
func (cs CipherSuite) Supported() bool {
	_, ok := suites[cs]
	return ok
}

// SupportedCipherSuites returns every supported cipher suite in ascending order.
func SupportedCipherSuites() []CipherSuite {
	return []CipherSuite{1, 2, 3, 4, 5, 6, 7}
}

// impl returns the implementation of the cipher suite, or ErrUnsupportedCipherSuite.
func (cs CipherSuite) impl() (*suite, error) {
	s, ok := suites[cs]
	if !ok {
		return nil, fmt.Errorf("%w: %v", ErrUnsupportedCipherSuite, cs)
	}
	return s, nil
}

// suite is the implementation of one cipher suite.
type suite struct {
	id      CipherSuite
	newHash func() hash.Hash
	nh      int // hash and KDF output size
	nk, nn  int // AEAD key and nonce sizes
	newAEAD func(key []byte) (cipher.AEAD, error)
	kem     kemScheme
	sig     signatureScheme
}

// kemScheme is the HPKE (RFC 9180, base mode) part of a cipher suite: KEM plus the suite's KDF and AEAD.
type kemScheme interface {
	deriveKeyPair(ikm []byte) (priv, pub []byte, err error)
	publicKey(priv []byte) ([]byte, error)
	validatePublicKey(pub []byte) error
	seal(pub, info, aad, pt []byte) (enc, ct []byte, err error)
	open(priv, enc, info, aad, ct []byte) ([]byte, error)
	exportSender(pub, info []byte, exporterContext string, length int) (enc, secret []byte, err error)
	exportRecipient(priv, enc, info []byte, exporterContext string, length int) ([]byte, error)
}

// signatureScheme is the signature algorithm of a cipher suite. sign and verify take the message
// to be signed (ECDSA hashes it with the suite's hash).
type signatureScheme interface {
	sign(priv, msg []byte) ([]byte, error)
	parse(priv []byte) (signingKey, error)
	verify(pub, msg, sig []byte) error
	generate(r io.Reader) (priv, pub []byte, err error) // r: seeds of EdDSA keys; ECDSA uses crypto/rand
	publicKey(priv []byte) ([]byte, error)
	validatePublicKey(pub []byte) error
}

var suites = map[CipherSuite]*suite{}

func init() {
	aesGCM := func(key []byte) (cipher.AEAD, error) {
		b, err := aes.NewCipher(key)
		if err != nil {
			return nil, err
		}
		return cipher.NewGCM(b)
	}
	chacha := func(key []byte) (cipher.AEAD, error) { return chacha20poly1305.New(key) }
	add := func(s *suite) { suites[s.id] = s }
	add(&suite{id: 1, newHash: sha256.New, nh: 32, nk: 16, nn: 12, newAEAD: aesGCM,
		kem: newStdKEM(kemX25519, kdfSHA256, aeadAES128GCM), sig: ed25519Scheme{}})
	add(&suite{id: 2, newHash: sha256.New, nh: 32, nk: 16, nn: 12, newAEAD: aesGCM,
		kem: newStdKEM(kemP256, kdfSHA256, aeadAES128GCM), sig: newECDSAScheme(curveP256)})
	add(&suite{id: 3, newHash: sha256.New, nh: 32, nk: 32, nn: 12, newAEAD: chacha,
		kem: newStdKEM(kemX25519, kdfSHA256, aeadChaCha20Poly1305), sig: ed25519Scheme{}})
	add(&suite{id: 4, newHash: sha512.New, nh: 64, nk: 32, nn: 12, newAEAD: aesGCM,
		kem: newX448KEM(aeadAES256GCM), sig: ed448Scheme{}})
	add(&suite{id: 5, newHash: sha512.New, nh: 64, nk: 32, nn: 12, newAEAD: aesGCM,
		kem: newStdKEM(kemP521, kdfSHA512, aeadAES256GCM), sig: newECDSAScheme(curveP521)})
	add(&suite{id: 6, newHash: sha512.New, nh: 64, nk: 32, nn: 12, newAEAD: chacha,
		kem: newX448KEM(aeadChaCha20Poly1305), sig: ed448Scheme{}})
	add(&suite{id: 7, newHash: sha512.New384, nh: 48, nk: 32, nn: 12, newAEAD: aesGCM,
		kem: newStdKEM(kemP384, kdfSHA384, aeadAES256GCM), sig: newECDSAScheme(curveP384)})
}

// labelPrefix is prepended to every label of ExpandWithLabel, SignWithLabel and EncryptWithLabel.
const labelPrefix = "MLS 1.0 "

func (s *suite) hashSize() int      { return s.nh }
func (s *suite) aeadKeySize() int   { return s.nk }
func (s *suite) aeadNonceSize() int { return s.nn }

// hash returns Hash(b).
func (s *suite) hash(b []byte) []byte {
	h := s.newHash()
	h.Write(b)
	return h.Sum(make([]byte, 0, s.nh))
}

// refHash computes RefHash(label, value) = Hash(RefHashInput{label, value}) (RFC 9420 §5.2). The label
// is used verbatim, e.g. "MLS 1.0 KeyPackage Reference".
func (s *suite) refHash(label string, value []byte) []byte {
	h := s.newHash()
	var w tlspl.Writer
	w.Opaque([]byte(label))
	w.Varint(uint64(len(value)))
	b, _ := w.Bytes() // lengths are bounded by the caller's input; a varint overflow is impossible here
	h.Write(b)
	h.Write(value)
	return h.Sum(make([]byte, 0, s.nh))
}

// mac computes MAC(key, data) = HMAC with the suite's hash (RFC 9420 §5.1).
func (s *suite) mac(key, data []byte) []byte {
	m := hmac.New(s.newHash, key)
	m.Write(data)
	return m.Sum(make([]byte, 0, s.nh))
}

// verifyMAC reports whether tag equals MAC(key, data), in constant time.
func (s *suite) verifyMAC(key, data, tag []byte) bool {
	return hmac.Equal(s.mac(key, data), tag)
}

// extract is KDF.Extract(salt, ikm). A nil salt equals Nh zero bytes (HMAC pads keys with zeros),
// which is what RFC 9420 means by a "0" salt. ikm is used as given: callers that mean the all-zero
// "0" input pass it explicitly (see orZero), so an empty external PSK stays empty.
func (s *suite) extract(salt, ikm []byte) []byte {
	prk, err := hkdf.Extract(s.newHash, ikm, salt)
	if err != nil {
		// hkdf.Extract only fails in FIPS-only mode for short keys, which MLS never uses.
		panic(fmt.Sprintf("mls: internal error: HKDF-Extract: %v", err))
	}
	return prk
}

// expand is KDF.Expand(prk, info, length). length must be at most 255*Nh; every caller passes a
// suite-defined size or a length it has validated (see validExpandLength).
func (s *suite) expand(prk, info []byte, length int) []byte {
	out, err := hkdf.Expand(s.newHash, prk, string(info), length)
	if err != nil {
		panic(fmt.Sprintf("mls: internal error: HKDF-Expand of %d bytes: %v", length, err))
	}
	return out
}

// validExpandLength reports whether length is an acceptable ExpandWithLabel output length.
func (s *suite) validExpandLength(length int) bool {
	return length >= 0 && length <= 255*s.nh && length <= 0xffff
}

// expandWithLabel computes ExpandWithLabel(secret, label, context, length) (RFC 9420 §5.1.3). The
// label is given without the "MLS 1.0 " prefix. length must satisfy validExpandLength.
func (s *suite) expandWithLabel(secret []byte, label string, context []byte, length int) []byte {
	// KDFLabel: uint16 length; opaque label<V> = "MLS 1.0 " + label; opaque context<V>.
	info := make([]byte, 0, 2+1+len(labelPrefix)+len(label)+4+len(context))
	info = binary.BigEndian.AppendUint16(info, uint16(length))
	info = appendVarint(info, len(labelPrefix)+len(label))
	info = append(info, labelPrefix...)
	info = append(info, label...)
	info = appendVarint(info, len(context))
	info = append(info, context...)
	return s.expand(secret, info, length)
}

// deriveSecret computes DeriveSecret(secret, label) = ExpandWithLabel(secret, label, "", Nh).
func (s *suite) deriveSecret(secret []byte, label string) []byte {
	return s.expandWithLabel(secret, label, nil, s.nh)
}

// deriveTreeSecret computes DeriveTreeSecret(secret, label, generation, length) =
// ExpandWithLabel(secret, label, uint32(generation), length) (RFC 9420 §9).
func (s *suite) deriveTreeSecret(secret []byte, label string, generation uint32, length int) []byte {
	var ctx [4]byte
	binary.BigEndian.PutUint32(ctx[:], generation)
	return s.expandWithLabel(secret, label, ctx[:], length)
}

// appendVarint appends n as a minimal MLS varint. n must be at most tlspl.MaxVarint; larger values
// are clamped by the callers' input limits and never reach here.
func appendVarint(b []byte, n int) []byte {
	switch {
	case n < 1<<6:
		return append(b, byte(n))
	case n < 1<<14:
		return binary.BigEndian.AppendUint16(b, uint16(n)|0x4000)
	default:
		return binary.BigEndian.AppendUint32(b, uint32(n)|0x80000000)
	}
}

// labeledContent encodes struct { opaque label<V> = "MLS 1.0 " + label; opaque content<V>; }, the
// SignContent of §5.1.2 and the EncryptContext of §5.1.3 share this layout.
func labeledContent(label string, content []byte) ([]byte, error) {
	if len(content) > tlspl.MaxVarint {
		return nil, fmt.Errorf("%w: content of %d bytes", tlspl.ErrTooLarge, len(content))
	}
	b := make([]byte, 0, 1+len(labelPrefix)+len(label)+4+len(content))
	b = appendVarint(b, len(labelPrefix)+len(label))
	b = append(b, labelPrefix...)
	b = append(b, label...)
	b = appendVarint(b, len(content))
	return append(b, content...), nil
}

// signWithLabel computes SignWithLabel(priv, label, content) (RFC 9420 §5.1.2).
func (s *suite) signWithLabel(priv []byte, label string, content []byte) ([]byte, error) {
	msg, err := labeledContent(label, content)
	if err != nil {
		return nil, fmt.Errorf("mls: SignWithLabel %q: %w", label, err)
	}
	sig, err := s.sig.sign(priv, msg)
	if err != nil {
		return nil, fmt.Errorf("mls: SignWithLabel %q: %w", label, err)
	}
	return sig, nil
}

// signingKey is a parsed signature private key. Parsing (Ed25519/Ed448 seed expansion, ECDSA
// public point computation) costs about as much as one signature, so a member that signs many
// messages with one key parses it once with parseSigningKey and signs with signWithLabelKey.
type signingKey interface {
	sign(msg []byte) ([]byte, error)
}

// parseSigningKey parses a signature private key (encoding as for signWithLabel).
func (s *suite) parseSigningKey(priv []byte) (signingKey, error) {
	k, err := s.sig.parse(priv)
	if err != nil {
		return nil, fmt.Errorf("mls: signature private key: %w", err)
	}
	return k, nil
}

// signWithLabelKey is signWithLabel with a key from parseSigningKey.
func (s *suite) signWithLabelKey(k signingKey, label string, content []byte) ([]byte, error) {
	msg, err := labeledContent(label, content)
	if err != nil {
		return nil, fmt.Errorf("mls: SignWithLabel %q: %w", label, err)
	}
	sig, err := k.sign(msg)
	if err != nil {
		return nil, fmt.Errorf("mls: SignWithLabel %q: %w", label, err)
	}
	return sig, nil
}

// verifyWithLabel checks VerifyWithLabel(pub, label, content, sig) (RFC 9420 §5.1.2). It returns an
// error wrapping ErrSignature when the signature does not verify, or ErrInvalidKey for a bad key.
func (s *suite) verifyWithLabel(pub []byte, label string, content, sig []byte) error {
	msg, err := labeledContent(label, content)
	if err != nil {
		return fmt.Errorf("mls: VerifyWithLabel %q: %w", label, err)
	}
	if err := s.sig.verify(pub, msg, sig); err != nil {
		return fmt.Errorf("mls: VerifyWithLabel %q: %w", label, err)
	}
	return nil
}

// encryptWithLabel computes EncryptWithLabel(pub, label, context, plaintext) (RFC 9420 §5.1.3):
// HPKE SealBase with info = EncryptContext{label, context} and empty AAD.
func (s *suite) encryptWithLabel(pub []byte, label string, context, plaintext []byte) (kemOutput, ciphertext []byte, err error) {
	info, err := labeledContent(label, context)
	if err != nil {
		return nil, nil, fmt.Errorf("mls: EncryptWithLabel %q: %w", label, err)
	}
	enc, ct, err := s.kem.seal(pub, info, nil, plaintext)
	if err != nil {
		return nil, nil, fmt.Errorf("mls: EncryptWithLabel %q: %w", label, err)
	}
	return enc, ct, nil
}

// decryptWithLabel computes DecryptWithLabel(priv, label, context, kemOutput, ciphertext) (RFC 9420
// §5.1.3). Failures wrap ErrDecrypt or ErrInvalidKey.
func (s *suite) decryptWithLabel(priv []byte, label string, context, kemOutput, ciphertext []byte) ([]byte, error) {
	info, err := labeledContent(label, context)
	if err != nil {
		return nil, fmt.Errorf("mls: DecryptWithLabel %q: %w", label, err)
	}
	pt, err := s.kem.open(priv, kemOutput, info, nil, ciphertext)
	if err != nil {
		return nil, fmt.Errorf("mls: DecryptWithLabel %q: %w", label, err)
	}
	return pt, nil
}

// seal encrypts plaintext with the suite's AEAD. key and nonce must have the suite's sizes.
func (s *suite) seal(key, nonce, aad, plaintext []byte) ([]byte, error) {
	a, err := s.aead(key, nonce)
	if err != nil {
		return nil, err
	}
	return a.Seal(nil, nonce, plaintext, aad), nil
}

// open decrypts ciphertext with the suite's AEAD; failures wrap ErrDecrypt.
func (s *suite) open(key, nonce, aad, ciphertext []byte) ([]byte, error) {
	a, err := s.aead(key, nonce)
	if err != nil {
		return nil, err
	}
	pt, err := a.Open(nil, nonce, ciphertext, aad)
	if err != nil {
		return nil, fmt.Errorf("%w: AEAD open", ErrDecrypt)
	}
	return pt, nil
}

func (s *suite) aead(key, nonce []byte) (cipher.AEAD, error) {
	if len(key) != s.nk || len(nonce) != s.nn {
		return nil, fmt.Errorf("%w: AEAD key of %d bytes and nonce of %d bytes, want %d and %d",
			ErrInvalidKey, len(key), len(nonce), s.nk, s.nn)
	}
	a, err := s.newAEAD(key)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidKey, err)
	}
	return a, nil
}

// deriveKeyPair is the HPKE KEM's DeriveKeyPair(ikm) (RFC 9180 §7.1.3), used for TreeKEM node keys
// and external_pub. It returns SerializePrivateKey/SerializePublicKey encodings. For X25519 the
// private key bytes may be the clamped form; they decode to the same key.
func (s *suite) deriveKeyPair(ikm []byte) (priv, pub []byte, err error) {
	priv, pub, err = s.kem.deriveKeyPair(ikm)
	if err != nil {
		return nil, nil, fmt.Errorf("mls: DeriveKeyPair: %w", err)
	}
	return priv, pub, nil
}

// generateKEMKeyPair returns a fresh random HPKE key pair (KeyPackage init keys, leaf keys):
// DeriveKeyPair of Nh random bytes from r (RFC 9180 §7.1.3; crypto/rand when r is nil).
func (s *suite) generateKEMKeyPair(r io.Reader) (priv, pub []byte, err error) {
	ikm, err := randomBytes(r, s.nh)
	if err != nil {
		return nil, nil, err
	}
	defer zero(ikm)
	priv, pub, err = s.kem.deriveKeyPair(ikm)
	if err != nil {
		return nil, nil, fmt.Errorf("mls: generating HPKE key pair: %w", err)
	}
	return priv, pub, nil
}

// generateSignatureKeyPair returns a fresh random signature key pair in the encodings above (the
// seed of an EdDSA key from r, crypto/rand when nil; ECDSA keys from crypto/rand).
func (s *suite) generateSignatureKeyPair(r io.Reader) (priv, pub []byte, err error) {
	priv, pub, err = s.sig.generate(r)
	if err != nil {
		return nil, nil, fmt.Errorf("mls: generating signature key pair: %w", err)
	}
	return priv, pub, nil
}

// kemPublicKey returns the HPKE public key that belongs to priv.
func (s *suite) kemPublicKey(priv []byte) ([]byte, error) { return s.kem.publicKey(priv) }

// signaturePublicKey returns the signature public key that belongs to priv.
func (s *suite) signaturePublicKey(priv []byte) ([]byte, error) { return s.sig.publicKey(priv) }

// validateKEMPublicKey reports whether pub is a valid HPKE public key for the suite.
func (s *suite) validateKEMPublicKey(pub []byte) error { return s.kem.validatePublicKey(pub) }

// validateSignaturePublicKey reports whether pub is a valid signature public key for the suite.
func (s *suite) validateSignaturePublicKey(pub []byte) error { return s.sig.validatePublicKey(pub) }

// hpkeExportSender sets up an HPKE base-mode sender context to pub with the given info and returns
// the KEM output with Export(exporterContext, length). External init (RFC 9420 §8.3) uses it with
// info "" and context "MLS 1.0 external init secret".
func (s *suite) hpkeExportSender(pub, info []byte, exporterContext string, length int) (kemOutput, secret []byte, err error) {
	return s.kem.exportSender(pub, info, exporterContext, length)
}

// hpkeExportRecipient is the receiving side of hpkeExportSender.
func (s *suite) hpkeExportRecipient(priv, kemOutput, info []byte, exporterContext string, length int) ([]byte, error) {
	return s.kem.exportRecipient(priv, kemOutput, info, exporterContext, length)
}
