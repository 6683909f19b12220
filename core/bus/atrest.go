package bus

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
)

// Encryption at rest of the embedded JetStream store. nats-server encrypts every message block,
// index and consumer state with keys derived from one server key (Options.JetStreamKey). The
// gateway keeps that key in a file and records an HMAC of it in the store directory
// (keyCheckFile), so that a wrong key is refused before the server starts instead of leaving
// the streams unreadable, and a missing key file is never silently replaced by a new key.

// keyCheckFile, in the store directory, holds the hex HMAC-SHA256 of keyCheckLabel under the key.
const (
	keyCheckFile  = "mimi-key-check"
	keyCheckLabel = "mimi-gateway jetstream key check"
	busKeyBytes   = 32
	maxKeyFile    = 4096
)

// errBusKey prefixes every key problem.
var errBusKey = errors.New("bus: JetStream encryption key")

// embeddedKey returns the server key for the embedded store: the content of KeyFile (created
// when allowed and the store was never encrypted), checked against the store's key check.
func embeddedKey(ec EmbeddedConfig) (string, error) {
	checkPath := filepath.Join(ec.StoreDir, keyCheckFile)
	check, checkErr := os.ReadFile(checkPath)
	if checkErr != nil && !errors.Is(checkErr, fs.ErrNotExist) {
		return "", fmt.Errorf("%w: read %s: %w", errBusKey, checkPath, checkErr)
	}
	encrypted := checkErr == nil
	key, err := readBusKey(ec.KeyFile)
	switch {
	case errors.Is(err, fs.ErrNotExist) && encrypted:
		return "", fmt.Errorf("%w: key file %s does not exist, but the store %s is encrypted: restore the key file (the messages cannot be read without it)", errBusKey, ec.KeyFile, ec.StoreDir)
	case errors.Is(err, fs.ErrNotExist) && ec.CreateKeyFile:
		if key, err = createBusKey(ec.KeyFile); err != nil {
			return "", err
		}
	case errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("%w: key file %s does not exist", errBusKey, ec.KeyFile)
	case err != nil:
		return "", err
	}
	sum := keyCheck(key)
	if encrypted {
		if !hmac.Equal(bytes.TrimSpace(check), []byte(sum)) {
			return "", fmt.Errorf("%w: the key in %s is not the one the store %s was encrypted with: configure the original key file", errBusKey, ec.KeyFile, ec.StoreDir)
		}
		return key, nil
	}
	if dir, ok := encryptedStream(ec.StoreDir); ok {
		return "", fmt.Errorf("%w: the store holds encrypted streams (%s) but no key check: it was encrypted with a key this gateway does not know", errBusKey, dir)
	}
	return key, nil
}

// recordKeyCheck writes the key check once the server has opened (and converted) the store.
func recordKeyCheck(storeDir, key string) error {
	p := filepath.Join(storeDir, keyCheckFile)
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	if err := writeFileSync(p, []byte(keyCheck(key)+"\n")); err != nil {
		return fmt.Errorf("%w: record key check: %w", errBusKey, err)
	}
	return nil
}

func keyCheck(key string) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(keyCheckLabel))
	return hex.EncodeToString(m.Sum(nil))
}

// readBusKey reads a key file: one line, the key (at least 32 characters; `admin store-key
// generate` makes suitable ones, as does Open).
func readBusKey(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if info, err := f.Stat(); err == nil && info.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%w: key file %s is readable by other users (mode %v): chmod 600 it", errBusKey, path, info.Mode().Perm())
	}
	b := make([]byte, maxKeyFile+1)
	n, _ := f.Read(b)
	if n > maxKeyFile {
		return "", fmt.Errorf("%w: key file %s is larger than %d bytes", errBusKey, path, maxKeyFile)
	}
	key := ""
	for _, l := range strings.Split(string(b[:n]), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			key = l
			break
		}
	}
	if len(key) < busKeyBytes {
		return "", fmt.Errorf("%w: key file %s holds no key of at least %d characters", errBusKey, path, busKeyBytes)
	}
	return key, nil
}

func createBusKey(path string) (string, error) {
	b := make([]byte, busKeyBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("%w: random: %w", errBusKey, err)
	}
	key := base64.StdEncoding.EncodeToString(b)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("%w: %w", errBusKey, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("%w: create key file: %w", errBusKey, err)
	}
	_, err = f.WriteString("# mimi-gateway JetStream encryption key: keep it, and back it up apart from the data dir.\n" + key + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("%w: write key file: %w", errBusKey, err)
	}
	return key, nil
}

// encryptedStream reports whether any stream of the store has a key file, i.e. was encrypted.
func encryptedStream(storeDir string) (string, bool) {
	matches, _ := filepath.Glob(filepath.Join(storeDir, "jetstream", "*", "streams", "*", "meta.key"))
	if len(matches) > 0 {
		return filepath.Dir(matches[0]), true
	}
	return "", false
}

func writeFileSync(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

// storeCipher maps the configured cipher name.
func storeCipher(name string) server.StoreCipher {
	if name == "aes" {
		return server.AES
	}
	return server.ChaCha
}
