// Package assets is a file-based bridges.AssetStore: attachments that legacy users send are
// encrypted with a fresh AES-128-GCM key per file (core/content's attachment helper) (content-08 §4.5 ExternalPart: the key travels
// inside the MLS-encrypted message, never to the asset server), and only the ciphertext is written
// to the data directory. Partners fetch it from https://<domain>/assets/<id>, which the provider
// serves over mutual TLS.
package assets

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/mimi-gateway/mimi-gateway/bridges"
	"github.com/mimi-gateway/mimi-gateway/core/content"
)

// Parameters of the encryption.
const (
	keySize   = 16 // AES-128
	nonceSize = 12
	tagSize   = 16
	// HashSHA256 is the Named Information hash algorithm number of SHA-256 (RFC 6920).
	HashSHA256 = 1
	// DefaultMaxSize bounds a stored file unless configured otherwise.
	DefaultMaxSize = 100 << 20
	idBytes        = 16
)

// Errors. Test with errors.Is.
var (
	// ErrTooLarge is returned for files above the size limit.
	ErrTooLarge = errors.New("assets: file too large")
	// ErrNotFound is returned for an unknown or foreign asset URL.
	ErrNotFound = errors.New("assets: not found")
	// ErrIntegrity is returned when the stored ciphertext does not match the hash or key.
	ErrIntegrity = errors.New("assets: integrity check failed")
)

// Store keeps encrypted attachments in a directory.
type Store struct {
	dir     string
	base    string
	maxSize int64
}

var _ bridges.AssetStore = (*Store)(nil)

// New returns a store writing to dir (created with mode 0700) and issuing URLs
// https://<domain>/assets/<id>. maxSize 0 means DefaultMaxSize.
func New(dir, domain string, maxSize int64) (*Store, error) {
	if dir == "" || domain == "" || strings.ContainsAny(domain, "/?#@ ") {
		return nil, fmt.Errorf("assets: directory and a plain domain are required")
	}
	if maxSize <= 0 {
		maxSize = DefaultMaxSize
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("assets: create %s: %w", dir, err)
	}
	return &Store{dir: dir, base: "https://" + domain + "/assets/", maxSize: maxSize}, nil
}

// Put implements bridges.AssetStore.
func (s *Store) Put(ctx context.Context, r io.Reader, meta bridges.AssetMeta) (*bridges.Asset, error) {
	if meta.Size > s.maxSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, meta.Size, s.maxSize)
	}
	plain, err := io.ReadAll(io.LimitReader(r, s.maxSize+1))
	if err != nil {
		return nil, fmt.Errorf("assets: read: %w", err)
	}
	if int64(len(plain)) > s.maxSize {
		return nil, fmt.Errorf("%w: limit %d", ErrTooLarge, s.maxSize)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	part, ct, err := content.EncryptAttachment(nil, plain, content.AttachmentMeta{ContentType: meta.ContentType, Filename: meta.Filename})
	if err != nil {
		return nil, fmt.Errorf("assets: encrypt: %w", err)
	}
	idb := make([]byte, idBytes)
	if _, err := rand.Read(idb); err != nil {
		return nil, fmt.Errorf("assets: random: %w", err)
	}
	id := hex.EncodeToString(idb)
	if err := writeFile(filepath.Join(s.dir, id), ct); err != nil {
		return nil, err
	}
	return &bridges.Asset{
		URL: s.base + id, ContentType: meta.ContentType, Filename: meta.Filename, Size: uint64(len(plain)),
		Key: part.Key, Nonce: part.Nonce, HashAlg: part.HashAlg, Hash: part.ContentHash,
	}, nil
}

// Open implements bridges.AssetStore: only URLs this store issued are opened.
func (s *Store) Open(ctx context.Context, a *bridges.Asset) (io.ReadCloser, error) {
	id, ok := strings.CutPrefix(a.URL, s.base)
	if !ok || len(id) != 2*idBytes || strings.Trim(id, "0123456789abcdef") != "" {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, a.URL)
	}
	f, err := os.Open(filepath.Join(s.dir, id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("assets: open %s: %w", id, err)
	}
	defer f.Close()
	ct, err := io.ReadAll(io.LimitReader(f, s.maxSize+tagSize+1))
	if err != nil {
		return nil, fmt.Errorf("assets: read %s: %w", id, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return Decrypt(ct, a)
}

// Decrypt checks the hash of ciphertext against a and decrypts it (for assets fetched from a
// partner's URL as well as local ones), with core/content's attachment helper.
func Decrypt(ct []byte, a *bridges.Asset) (io.ReadCloser, error) {
	if a.HashAlg != HashSHA256 || len(a.Hash) != 32 {
		return nil, fmt.Errorf("%w: unsupported hash algorithm %d", ErrIntegrity, a.HashAlg)
	}
	x := content.ExternalPart{EncAlg: content.AEADAES128GCM, Key: a.Key, Nonce: a.Nonce, AAD: []byte{},
		HashAlg: a.HashAlg, ContentHash: a.Hash}
	if len(a.Key) != keySize || len(a.Nonce) != nonceSize {
		return nil, fmt.Errorf("%w: key or nonce size", ErrIntegrity)
	}
	plain, err := x.Decrypt(ct)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrIntegrity, err)
	}
	return io.NopCloser(bytes.NewReader(plain)), nil
}

func writeFile(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("assets: create: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("assets: write: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("assets: sync: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("assets: close: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("assets: rename: %w", err)
	}
	return nil
}
