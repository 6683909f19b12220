package content

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha3"
	"crypto/sha512"
	"crypto/subtle"
	"fmt"
	"hash"
	"io"
	"math"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

// MaxAttachmentSize bounds the files EncryptAttachment and Decrypt handle in
// memory.
const MaxAttachmentSize = 512 << 20

// AttachmentMeta describes a file to attach.
type AttachmentMeta struct {
	// ContentType is the file's media type, e.g. "image/png".
	ContentType string
	// Filename is the suggested file name ("" for none).
	Filename string
	// Description is optional text ("" for none).
	Description string
	// URLExpires is when the download URL stops working, seconds since the
	// epoch; 0 is never.
	URLExpires uint32
}

// EncryptAttachment encrypts a file for upload as content-08 §4.5 requires:
// AES-128-GCM under a fresh key and nonce from rnd (nil means crypto/rand),
// empty AAD, and a SHA-256 contentHash over the ciphertext, which is what
// the URL serves. It returns the part (without URL: set it after upload) and
// the ciphertext to upload. Size is the ciphertext's length.
func EncryptAttachment(rnd io.Reader, plaintext []byte, meta AttachmentMeta) (ExternalPart, []byte, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	if len(plaintext) > MaxAttachmentSize {
		return ExternalPart{}, nil, fmt.Errorf("encrypt attachment: %d octets: %w", len(plaintext), ErrTooLarge)
	}
	key := make([]byte, 16)
	nonce := make([]byte, 12)
	if _, err := io.ReadFull(rnd, key); err != nil {
		return ExternalPart{}, nil, fmt.Errorf("encrypt attachment: key: %w", err)
	}
	if _, err := io.ReadFull(rnd, nonce); err != nil {
		return ExternalPart{}, nil, fmt.Errorf("encrypt attachment: nonce: %w", err)
	}
	aead, err := newAEAD(AEADAES128GCM, key)
	if err != nil {
		return ExternalPart{}, nil, fmt.Errorf("encrypt attachment: %w", err)
	}
	ct := aead.Seal(nil, nonce, plaintext, nil)
	sum := sha256.Sum256(ct)
	return ExternalPart{
		ContentType: meta.ContentType,
		Expires:     meta.URLExpires,
		Size:        uint64(len(ct)),
		EncAlg:      AEADAES128GCM,
		Key:         key,
		Nonce:       nonce,
		AAD:         []byte{},
		HashAlg:     HashAlgSHA256,
		ContentHash: sum[:],
		Description: meta.Description,
		Filename:    meta.Filename,
	}, ct, nil
}

// Decrypt checks downloaded content against the part (size when known, then
// contentHash) and decrypts it with the part's AEAD, key, nonce and aad. An
// unencrypted part (encAlg 0) returns the content after the checks. Any
// mismatch or authentication failure is ErrIntegrity.
func (x ExternalPart) Decrypt(downloaded []byte) ([]byte, error) {
	if len(downloaded) > MaxAttachmentSize {
		return nil, fmt.Errorf("decrypt attachment: %d octets: %w", len(downloaded), ErrTooLarge)
	}
	if x.Size != 0 && uint64(len(downloaded)) != x.Size {
		return nil, fmt.Errorf("decrypt attachment: %d octets, part says %d: %w", len(downloaded), x.Size, ErrIntegrity)
	}
	if x.HashAlg != HashAlgNone {
		h, err := newHash(x.HashAlg)
		if err != nil {
			return nil, fmt.Errorf("decrypt attachment: %w", err)
		}
		h.Write(downloaded)
		if subtle.ConstantTimeCompare(h.Sum(nil), x.ContentHash) != 1 {
			return nil, fmt.Errorf("decrypt attachment: %s contentHash mismatch: %w", hashAlgName(x.HashAlg), ErrIntegrity)
		}
	}
	if x.EncAlg == AEADNone {
		return downloaded, nil
	}
	aead, err := newAEAD(x.EncAlg, x.Key)
	if err != nil {
		return nil, fmt.Errorf("decrypt attachment: %w", err)
	}
	if len(x.Nonce) != aead.NonceSize() {
		return nil, fmt.Errorf("decrypt attachment: nonce of %d octets: %w", len(x.Nonce), ErrSchema)
	}
	pt, err := aead.Open(nil, x.Nonce, downloaded, x.AAD)
	if err != nil {
		return nil, fmt.Errorf("decrypt attachment: %s: %w", aeadName(x.EncAlg), ErrIntegrity)
	}
	return pt, nil
}

func newAEAD(alg uint16, key []byte) (cipher.AEAD, error) {
	switch alg {
	case AEADAES128GCM, AEADAES256GCM:
		want := 16
		if alg == AEADAES256GCM {
			want = 32
		}
		if len(key) != want {
			return nil, fmt.Errorf("%s key of %d octets: %w", aeadName(alg), len(key), ErrSchema)
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, err
		}
		return cipher.NewGCM(block)
	case AEADChaCha20Poly1305:
		return chacha20poly1305.New(key)
	}
	return nil, fmt.Errorf("AEAD algorithm %d: %w", alg, ErrUnknownValue)
}

func newHash(alg uint8) (hash.Hash, error) {
	switch alg {
	case 1:
		return sha256.New(), nil
	case 7:
		return sha512.New384(), nil
	case 8:
		return sha512.New(), nil
	case 10:
		return sha3.New256(), nil
	case 11:
		return sha3.New384(), nil
	case 12:
		return sha3.New512(), nil
	}
	return nil, fmt.Errorf("hash algorithm %s: %w", hashAlgName(alg), ErrUnknownValue)
}

// URLExpiry is ExternalPart.Expires for an expiry time: seconds since the epoch, 0 (never) for
// the zero time or a time before 1970, and the largest uint32 for times after 2106.
func URLExpiry(t time.Time) uint32 {
	if t.IsZero() || t.Unix() <= 0 {
		return 0
	}
	return uint32(min(t.Unix(), math.MaxUint32))
}
