package store

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"golang.org/x/crypto/chacha20poly1305"
)

// Sealing: secrets and message content in SQL rows are encrypted with a data-encryption key
// (XChaCha20-Poly1305, a random 192-bit nonce per value) and bound to the row they belong to by
// associated data (table, column and the row's identity), so that a value copied into another row
// does not open there. The key comes from a keyring (a key file or an environment secret); each
// sealed value names its key by a short key ID, so that a new key can be introduced and the rows
// re-encrypted in batches while the gateway runs (Reseal).
//
// A sealed value is
//
//	0x01 | key ID (4 bytes) | nonce (24 bytes) | ciphertext and tag (16 bytes)
//
// The associated data is a fixed label, the version byte and the key ID, then the table, the
// column and each bind value, each prefixed with its length (uint32, big-endian).

// Parameters of sealed values.
const (
	// KeySize is the size of a data-encryption key in bytes.
	KeySize       = chacha20poly1305.KeySize
	sealVersion   = 0x01
	keyIDSize     = 4
	sealHeaderLen = 1 + keyIDSize + chacha20poly1305.NonceSizeX
	// SealOverhead is how many bytes sealing adds to a value.
	SealOverhead = sealHeaderLen + chacha20poly1305.Overhead
	// MaxKeyringKeys bounds the number of keys in a keyring.
	MaxKeyringKeys = 16
	// maxKeyringText bounds the text a keyring is parsed from.
	maxKeyringText = 16 << 10
	sealLabel      = "mimi-gateway sealed value"
	keyIDLabel     = "mimi-gateway store key id"
)

// Sealing errors. Test for them with errors.Is.
var (
	// ErrSealed is returned when a sealed value does not open: it was sealed for another row,
	// with another key, or changed on disk.
	ErrSealed = errors.New("store: sealed value does not open")
	// ErrUnknownKey is returned when a sealed value names a key that the keyring does not hold.
	ErrUnknownKey = errors.New("store: sealed with a key the keyring does not hold")
	// ErrNoKeyring is returned when sealing is used on a store opened without a keyring.
	ErrNoKeyring = errors.New("store: no encryption key configured")
)

// KeyID names a data-encryption key: the first four bytes of a SHA-256 over a label and the
// key, printed as eight hex digits. It reveals nothing useful about the key.
type KeyID [keyIDSize]byte

// String returns the key ID as eight hex digits.
func (id KeyID) String() string { return hex.EncodeToString(id[:]) }

func keyIDOf(key []byte) KeyID {
	h := sha256.New()
	h.Write([]byte(keyIDLabel))
	h.Write(key)
	var id KeyID
	copy(id[:], h.Sum(nil))
	return id
}

// Keyring holds the data-encryption keys: the first (primary) key seals, every key opens. It is
// immutable and safe for concurrent use.
type Keyring struct {
	primary KeyID
	ids     []KeyID
	aeads   map[KeyID]aeadKey
}

type aeadKey struct {
	seal func(dst, nonce, plaintext, ad []byte) []byte
	open func(dst, nonce, ciphertext, ad []byte) ([]byte, error)
}

// NewKeyring builds a keyring from raw keys of KeySize bytes; keys[0] is the primary.
func NewKeyring(keys ...[]byte) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: keyring has no keys", ErrInvalidArgument)
	}
	if len(keys) > MaxKeyringKeys {
		return nil, fmt.Errorf("%w: keyring has %d keys, at most %d", ErrInvalidArgument, len(keys), MaxKeyringKeys)
	}
	kr := &Keyring{aeads: make(map[KeyID]aeadKey, len(keys))}
	for i, k := range keys {
		if len(k) != KeySize {
			return nil, fmt.Errorf("%w: key %d is %d bytes, want %d", ErrInvalidArgument, i+1, len(k), KeySize)
		}
		a, err := chacha20poly1305.NewX(k)
		if err != nil {
			return nil, fmt.Errorf("store: key %d: %w", i+1, err)
		}
		id := keyIDOf(k)
		if _, dup := kr.aeads[id]; dup {
			return nil, fmt.Errorf("%w: key %d (%s) appears twice in the keyring", ErrInvalidArgument, i+1, id)
		}
		kr.aeads[id] = aeadKey{seal: a.Seal, open: a.Open}
		kr.ids = append(kr.ids, id)
	}
	kr.primary = kr.ids[0]
	return kr, nil
}

// ParseKeyring reads a keyring from text: one key per line, base64 (standard or URL alphabet,
// padded or not) of KeySize random bytes; blank lines and lines starting with '#' are ignored,
// and so are commas and spaces between keys, so that an environment variable can carry several
// keys on one line. The first key is the primary.
func ParseKeyring(text []byte) (*Keyring, error) {
	if len(text) > maxKeyringText {
		return nil, fmt.Errorf("%w: keyring text is %d bytes, at most %d", ErrInvalidArgument, len(text), maxKeyringText)
	}
	var keys [][]byte
	sc := bufio.NewScanner(bytes.NewReader(text))
	line := 0
	for sc.Scan() {
		line++
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		for _, f := range strings.FieldsFunc(l, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
			k, err := decodeKey(f)
			if err != nil {
				// Never echo the text: it is a secret.
				return nil, fmt.Errorf("%w: keyring line %d: %w", ErrInvalidArgument, line, err)
			}
			keys = append(keys, k)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: keyring: %w", ErrInvalidArgument, err)
	}
	return NewKeyring(keys...)
}

var base64Key = regexp.MustCompile(`^[A-Za-z0-9+/_-]{43}=?$`)

func decodeKey(s string) ([]byte, error) {
	if !base64Key.MatchString(s) {
		return nil, fmt.Errorf("not a base64 key of %d bytes (generate one with `mimi-gateway admin store-key generate`)", KeySize)
	}
	s = strings.TrimRight(s, "=")
	s = strings.NewReplacer("-", "+", "_", "/").Replace(s)
	k, err := base64.RawStdEncoding.DecodeString(s)
	if err != nil || len(k) != KeySize {
		return nil, fmt.Errorf("not a base64 key of %d bytes", KeySize)
	}
	return k, nil
}

// GenerateKey returns a new random key, base64-encoded, as a keyring line.
func GenerateKey() (string, error) {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return "", fmt.Errorf("store: random key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(k), nil
}

// Primary returns the ID of the key that seals.
func (kr *Keyring) Primary() KeyID { return kr.primary }

// IDs returns the IDs of every key, the primary first.
func (kr *Keyring) IDs() []KeyID { return append([]KeyID(nil), kr.ids...) }

// Has reports whether the keyring holds the key id.
func (kr *Keyring) Has(id KeyID) bool {
	_, ok := kr.aeads[id]
	return ok
}

// SealedColumn names a column whose values are sealed, and the columns that identify a row:
// Key locates it (its primary key, in order) and Bind is what the value is bound to (Key when
// empty). Bind values are the columns' values as text; use Bind when the primary key is only
// known after the insert (an autoincrement ID). Declare each in the component's Migrations
// (Sealed), so that existing plaintext is sealed when the store is upgraded and Reseal finds the
// column.
type SealedColumn struct {
	// Table is the table name.
	Table string
	// Column is the sealed column (BLOB on SQLite, BYTEA on PostgreSQL; NULL stays NULL).
	Column string
	// Key is the primary key's columns, in order.
	Key []string
	// Bind is the columns whose values the sealed value is bound to; Key when empty.
	Bind []string
}

var identRe = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// Validate checks that every name is a plain lowercase SQL identifier.
func (c SealedColumn) Validate() error {
	names := append([]string{c.Table, c.Column}, c.Key...)
	names = append(names, c.Bind...)
	for _, n := range names {
		if !identRe.MatchString(n) {
			return fmt.Errorf("%w: sealed column %s.%s: %q is not a plain identifier", ErrInvalidArgument, c.Table, c.Column, n)
		}
	}
	if len(c.Key) == 0 {
		return fmt.Errorf("%w: sealed column %s.%s has no key columns", ErrInvalidArgument, c.Table, c.Column)
	}
	return nil
}

func (c SealedColumn) bind() []string {
	if len(c.Bind) > 0 {
		return c.Bind
	}
	return c.Key
}

// String returns "table.column".
func (c SealedColumn) String() string { return c.Table + "." + c.Column }

// associatedData binds a sealed value to its format, key, table, column and row.
func (c SealedColumn) associatedData(id KeyID, bind []string) []byte {
	n := len(sealLabel) + 1 + keyIDSize + 8 + len(c.Table) + len(c.Column)
	for _, b := range bind {
		n += 4 + len(b)
	}
	ad := make([]byte, 0, n)
	ad = append(ad, sealLabel...)
	ad = append(ad, sealVersion)
	ad = append(ad, id[:]...)
	for _, s := range append([]string{c.Table, c.Column}, bind...) {
		ad = binary.BigEndian.AppendUint32(ad, uint32(len(s)))
		ad = append(ad, s...)
	}
	return ad
}

// Seal encrypts plaintext for the row of c identified by bind (the values of c's Bind columns,
// or its Key columns, in order) with the primary key.
func (kr *Keyring) Seal(c SealedColumn, plaintext []byte, bind ...string) ([]byte, error) {
	if kr == nil {
		return nil, ErrNoKeyring
	}
	if len(bind) != len(c.bind()) {
		return nil, fmt.Errorf("%w: seal %s: %d bind values for %d columns", ErrInvalidArgument, c, len(bind), len(c.bind()))
	}
	out := make([]byte, sealHeaderLen, sealHeaderLen+len(plaintext)+chacha20poly1305.Overhead)
	out[0] = sealVersion
	copy(out[1:], kr.primary[:])
	nonce := out[1+keyIDSize : sealHeaderLen]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("store: seal %s: random nonce: %w", c, err)
	}
	return kr.aeads[kr.primary].seal(out, nonce, plaintext, c.associatedData(kr.primary, bind)), nil
}

// Unseal decrypts a value sealed by Seal for the same column and row. It fails with ErrSealed
// when the value is not a sealed value or does not open (another row, a changed value), and with
// ErrUnknownKey when it was sealed with a key the keyring does not hold.
func (kr *Keyring) Unseal(c SealedColumn, sealed []byte, bind ...string) ([]byte, error) {
	if kr == nil {
		return nil, ErrNoKeyring
	}
	id, err := SealedKeyID(sealed)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrSealed, c, err)
	}
	a, ok := kr.aeads[id]
	if !ok {
		return nil, fmt.Errorf("%w: %s sealed with key %s", ErrUnknownKey, c, id)
	}
	if len(bind) != len(c.bind()) {
		return nil, fmt.Errorf("%w: unseal %s: %d bind values for %d columns", ErrInvalidArgument, c, len(bind), len(c.bind()))
	}
	pt, err := a.open(nil, sealed[1+keyIDSize:sealHeaderLen], sealed[sealHeaderLen:], c.associatedData(id, bind))
	if err != nil {
		return nil, fmt.Errorf("%w: %s (key %s): not the value of this row, or changed", ErrSealed, c, id)
	}
	return pt, nil
}

// SealedKeyID returns the ID of the key a sealed value was sealed with, or an error when b is
// not a sealed value.
func SealedKeyID(b []byte) (KeyID, error) {
	if len(b) < SealOverhead {
		return KeyID{}, fmt.Errorf("%d bytes is too short for a sealed value", len(b))
	}
	if b[0] != sealVersion {
		return KeyID{}, fmt.Errorf("unknown sealed format %#x", b[0])
	}
	var id KeyID
	copy(id[:], b[1:1+keyIDSize])
	return id, nil
}
