package mls

import "fmt"

// This file exports the labelled primitives of RFC 9420 §5.1.2–5.1.3 for protocols layered on
// MLS (the MIMI protocol signs KeyMaterialRequestTBS, GroupInfoRequestTBS and
// GroupInfoResponseTBS, and encrypts GroupInfoRatchetTreeTBE to the joiner). Labels are given
// without the "MLS 1.0 " prefix, which is added, exactly as inside the package.

// SignWithLabel computes SignWithLabel(priv, label, content) with the cipher suite's signature
// scheme. priv uses the encoding of Signer.Private.
func (cs CipherSuite) SignWithLabel(priv []byte, label string, content []byte) ([]byte, error) {
	s, err := cs.impl()
	if err != nil {
		return nil, fmt.Errorf("mls: SignWithLabel: %w", err)
	}
	return s.signWithLabel(priv, label, content)
}

// VerifyWithLabel checks a signature made with SignWithLabel. It returns an error wrapping
// ErrSignature when the signature does not verify, or ErrInvalidKey for a malformed key.
func (cs CipherSuite) VerifyWithLabel(pub []byte, label string, content, sig []byte) error {
	s, err := cs.impl()
	if err != nil {
		return fmt.Errorf("mls: VerifyWithLabel: %w", err)
	}
	return s.verifyWithLabel(pub, label, content, sig)
}

// EncryptWithLabel computes EncryptWithLabel(pub, label, context, plaintext) (HPKE base mode with
// the suite's KEM, KDF and AEAD) and returns the result as an HPKECiphertext.
func (cs CipherSuite) EncryptWithLabel(pub []byte, label string, context, plaintext []byte) (*HPKECiphertext, error) {
	s, err := cs.impl()
	if err != nil {
		return nil, fmt.Errorf("mls: EncryptWithLabel: %w", err)
	}
	kemOutput, ct, err := s.encryptWithLabel(pub, label, context, plaintext)
	if err != nil {
		return nil, err
	}
	return &HPKECiphertext{KEMOutput: kemOutput, Ciphertext: ct}, nil
}

// DecryptWithLabel reverses EncryptWithLabel with the HPKE private key priv. Failures wrap
// ErrDecrypt or ErrInvalidKey.
func (cs CipherSuite) DecryptWithLabel(priv []byte, label string, context []byte, ct *HPKECiphertext) ([]byte, error) {
	s, err := cs.impl()
	if err != nil {
		return nil, fmt.Errorf("mls: DecryptWithLabel: %w", err)
	}
	if ct == nil {
		return nil, fmt.Errorf("mls: DecryptWithLabel: %w: no ciphertext", ErrDecrypt)
	}
	return s.decryptWithLabel(priv, label, context, ct.KEMOutput, ct.Ciphertext)
}

// GenerateHPKEKeyPair returns a fresh HPKE key pair for the suite's KEM (encodings as in
// RFC 9180 SerializePrivateKey/SerializePublicKey), e.g. a joiner's groupInfoPublicKey.
func (cs CipherSuite) GenerateHPKEKeyPair() (priv, pub []byte, err error) {
	s, err := cs.impl()
	if err != nil {
		return nil, nil, fmt.Errorf("mls: GenerateHPKEKeyPair: %w", err)
	}
	ikm, err := randomBytes(nil, s.nh)
	if err != nil {
		return nil, nil, fmt.Errorf("mls: GenerateHPKEKeyPair: %w", err)
	}
	return s.kem.deriveKeyPair(ikm)
}
