package console

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Argon2id parameters for new hashes (RFC 9106's second recommended option: 64 MiB, 3 passes).
const (
	argonMemory  = 64 * 1024 // KiB
	argonTime    = 3
	argonThreads = 2
	argonKeyLen  = 32
	argonSaltLen = 16
)

// Limits on a stored hash's parameters, so that a tampered row cannot make a login exhaust the
// machine.
const (
	maxArgonMemory = 1 << 20 // 1 GiB in KiB
	maxArgonTime   = 16
)

// MinPasswordLength and MaxPasswordLength bound a local account's password.
const (
	MinPasswordLength = 12
	MaxPasswordLength = 1024
)

var b64 = base64.RawStdEncoding

// HashPassword returns the argon2id hash of password in the PHC string format
// ($argon2id$v=19$m=...,t=...,p=...$salt$hash).
func HashPassword(password string) (string, error) {
	if err := CheckPassword(password); err != nil {
		return "", err
	}
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("console: salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// CheckPassword says why password cannot be a local account's password, or nil.
func CheckPassword(password string) error {
	switch {
	case len([]rune(password)) < MinPasswordLength:
		return fmt.Errorf("console: the password must have at least %d characters", MinPasswordLength)
	case len(password) > MaxPasswordLength:
		return fmt.Errorf("console: the password must have at most %d bytes", MaxPasswordLength)
	}
	return nil
}

// errBadHash is a stored hash that cannot be parsed.
var errBadHash = errors.New("console: malformed argon2id hash")

// VerifyPassword reports whether password matches the PHC-format argon2id hash, comparing in
// constant time.
func VerifyPassword(hash, password string) (bool, error) {
	if len(password) > MaxPasswordLength {
		return false, nil
	}
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return false, errBadHash
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false, errBadHash
	}
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m == 0 || m > maxArgonMemory || t == 0 || t > maxArgonTime || p == 0 {
		return false, errBadHash
	}
	salt, err := b64.DecodeString(parts[4])
	if err != nil || len(salt) < 8 {
		return false, errBadHash
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil || len(want) < 16 || len(want) > 64 {
		return false, errBadHash
	}
	got := argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}
