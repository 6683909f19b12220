package mls

// The key schedule of RFC 9420 §8: from the previous epoch's init_secret, the commit_secret, the
// psk_secret and the new GroupContext to every secret of the new epoch.
//
//	init_secret_[n-1] ─ Extract(salt) ─┐
//	commit_secret ──── Extract(ikm) ───┴─ ExpandWithLabel(., "joiner", GroupContext_[n], Nh) = joiner_secret
//	joiner_secret ─ Extract(salt), psk_secret ─ Extract(ikm) = member secret
//	    ├─ DeriveSecret(., "welcome") = welcome_secret
//	    └─ ExpandWithLabel(., "epoch", GroupContext_[n], Nh) = epoch_secret
//	          └─ DeriveSecret(epoch_secret, <label>) for each secret of the epoch
//
// The epoch_secret and member secret are not kept: everything an epoch needs is in epochSecrets.

import "fmt"

// epochSecrets holds the secrets of one epoch. Once derived it is never modified (the secret tree
// built from encryptionSecret is a separate, ratcheting object).
type epochSecrets struct {
	joinerSecret       []byte
	welcomeSecret      []byte
	senderDataSecret   []byte
	encryptionSecret   []byte
	exporterSecret     []byte
	epochAuthenticator []byte
	externalSecret     []byte
	confirmationKey    []byte
	membershipKey      []byte
	resumptionPSK      []byte
	initSecret         []byte // init_secret for the NEXT epoch
}

// orZero returns b, or Nh zero bytes when b is empty ("0" in RFC 9420 §8).
func (s *suite) orZero(b []byte) []byte {
	if len(b) == 0 {
		return make([]byte, s.nh)
	}
	return b
}

// joinerSecret computes joiner_secret = ExpandWithLabel(Extract(init_secret, commit_secret),
// "joiner", GroupContext_[n], Nh). A nil commitSecret means the all-zero commit secret.
func (s *suite) joinerSecret(initSecret, commitSecret, groupContext []byte) []byte {
	prk := s.extract(initSecret, s.orZero(commitSecret))
	return s.expandWithLabel(prk, "joiner", groupContext, s.nh)
}

// deriveEpochSecrets runs the key schedule for a member that knows the previous init_secret.
// groupContext is the encoded GroupContext of the new epoch. nil commitSecret and pskSecret mean
// the all-zero values.
func (s *suite) deriveEpochSecrets(initSecret, commitSecret, pskSecret, groupContext []byte) *epochSecrets {
	return s.epochSecretsFromJoiner(s.joinerSecret(initSecret, commitSecret, groupContext), pskSecret, groupContext)
}

// epochSecretsFromJoiner runs the key schedule from the joiner_secret, as a new member does with the
// GroupSecrets of a Welcome.
func (s *suite) epochSecretsFromJoiner(joinerSecret, pskSecret, groupContext []byte) *epochSecrets {
	member := s.extract(joinerSecret, s.orZero(pskSecret))
	epoch := s.expandWithLabel(member, "epoch", groupContext, s.nh)
	e := &epochSecrets{
		joinerSecret:       append([]byte(nil), joinerSecret...),
		welcomeSecret:      s.deriveSecret(member, "welcome"),
		senderDataSecret:   s.deriveSecret(epoch, "sender data"),
		encryptionSecret:   s.deriveSecret(epoch, "encryption"),
		exporterSecret:     s.deriveSecret(epoch, "exporter"),
		epochAuthenticator: s.deriveSecret(epoch, "authentication"),
		externalSecret:     s.deriveSecret(epoch, "external"),
		confirmationKey:    s.deriveSecret(epoch, "confirm"),
		membershipKey:      s.deriveSecret(epoch, "membership"),
		resumptionPSK:      s.deriveSecret(epoch, "resumption"),
		initSecret:         s.deriveSecret(epoch, "init"),
	}
	zero(member)
	zero(epoch)
	return e
}

// welcomeSecretFromJoiner derives only the welcome_secret, which a joiner needs to decrypt the
// GroupInfo before it knows the GroupContext.
func (s *suite) welcomeSecretFromJoiner(joinerSecret, pskSecret []byte) []byte {
	member := s.extract(joinerSecret, s.orZero(pskSecret))
	defer zero(member)
	return s.deriveSecret(member, "welcome")
}

// welcomeKeyNonce derives the AEAD key and nonce that protect a Welcome's GroupInfo (RFC 9420 §12.4.3.1).
func (s *suite) welcomeKeyNonce(welcomeSecret []byte) (key, nonce []byte) {
	return s.expandWithLabel(welcomeSecret, "key", nil, s.nk), s.expandWithLabel(welcomeSecret, "nonce", nil, s.nn)
}

// externalKeyPair derives the epoch's external HPKE key pair from external_secret (RFC 9420 §8.3).
func (s *suite) externalKeyPair(externalSecret []byte) (priv, pub []byte, err error) {
	return s.deriveKeyPair(externalSecret)
}

// externalInitLabel is the HPKE exporter context of external init (RFC 9420 §8.3).
const externalInitLabel = "MLS 1.0 external init secret"

// externalInit is the joiner's side of external init: it encapsulates to the group's external_pub
// and returns the kem_output for the ExternalInit proposal with the init_secret it yields.
func (s *suite) externalInit(externalPub []byte) (kemOutput, initSecret []byte, err error) {
	kemOutput, initSecret, err = s.hpkeExportSender(externalPub, nil, externalInitLabel, s.nh)
	if err != nil {
		return nil, nil, fmt.Errorf("mls: external init: %w", err)
	}
	return kemOutput, initSecret, nil
}

// externalInitSecret is the members' side of external init: the init_secret from the kem_output of
// an ExternalInit proposal and the epoch's external private key.
func (s *suite) externalInitSecret(externalPriv, kemOutput []byte) ([]byte, error) {
	secret, err := s.hpkeExportRecipient(externalPriv, kemOutput, nil, externalInitLabel, s.nh)
	if err != nil {
		return nil, fmt.Errorf("mls: external init: %w", err)
	}
	return secret, nil
}

// ErrExportLength means an exporter length is outside what the KDF can produce.
var ErrExportLength = fmt.Errorf("mls: exporter length out of range")

// exporter computes MLS-Exporter(label, context, length) = ExpandWithLabel(DeriveSecret(
// exporter_secret, label), "exported", Hash(context), length) (RFC 9420 §8.5).
func (s *suite) exporter(exporterSecret []byte, label string, context []byte, length int) ([]byte, error) {
	if !s.validExpandLength(length) {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrExportLength, length, min(255*s.nh, 0xffff))
	}
	derived := s.deriveSecret(exporterSecret, label)
	defer zero(derived)
	return s.expandWithLabel(derived, "exported", s.hash(context), length), nil
}
