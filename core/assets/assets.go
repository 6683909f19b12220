// Package assets is the attachment store of the adapters (bridges.AssetStore) and the MIMI side:
// attachments that legacy users send are encrypted with a fresh AES-128-GCM key per file
// (core/content's attachment helper) (content-08 §4.5 ExternalPart: the key travels inside the
// MLS-encrypted message, never to the asset server), and only the ciphertext is written to the data directory, next to a small metadata file with its
// expiry. Partners fetch it from https://<domain>/assets/<id>, which the provider serves over
// mutual TLS (core/protocol, AssetHandler) until it expires; Sweep deletes expired files.
//
// Open also reads partners' assets: with a Downloader (the protocol client) it fetches the
// ciphertext directly from the owning partner, or through the room's hub (/proxyDownload) when the
// owner is not our partner or refuses us, and checks the hash before decrypting.
package assets

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/confschema"
	"github.com/mimi-gateway/mimi-gateway/core/content"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
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
	// DefaultExpiry is how long an asset is kept unless configured otherwise.
	DefaultExpiry = 30 * 24 * time.Hour
	// OrphanGrace is how old a temporary file, or a file without its metadata (left by a crash
	// during Put), must be before Sweep deletes it.
	OrphanGrace = time.Hour
	idBytes     = 16
	metaSuffix  = ".meta"
	tmpSuffix   = ".tmp"
	maxMetaSize = 4096
)

// Errors. Test with errors.Is; each also matches ErrUnavailable (a retry cannot
// help).
var (
	// ErrTooLarge is returned for files above the size limit.
	ErrTooLarge error = unavailable("assets: file too large")
	// ErrNotFound is returned for an unknown, expired or foreign asset URL.
	ErrNotFound error = unavailable("assets: not found")
	// ErrIntegrity is returned when the stored ciphertext does not match the hash or key.
	ErrIntegrity error = unavailable("assets: integrity check failed")
	// ErrNotAllowed is returned for an asset URL whose host is neither ours nor a configured
	// partner's asset domain (no open proxy).
	ErrNotAllowed error = unavailable("assets: asset host is not ours or a partner's")
)

// unavailableError is an error that also matches ErrUnavailable.
type unavailableError struct{ msg string }

func unavailable(msg string) *unavailableError { return &unavailableError{msg: msg} }

func (e *unavailableError) Error() string { return e.msg }

// Is reports whether target is ErrUnavailable.
func (e *unavailableError) Is(target error) bool { return target == ErrUnavailable }

// Downloader fetches partners' asset ciphertext over mutual TLS; *protocol.Client implements it.
type Downloader interface {
	// OpenAsset fetches https://<partner>/assets/<id> directly from the owning partner.
	OpenAsset(ctx context.Context, rawURL string, limit int64) (io.ReadCloser, int64, error)
	// OpenProxyDownload fetches it through hub's /proxyDownload.
	OpenProxyDownload(ctx context.Context, hub event.Domain, downloadURL string, limit int64) (io.ReadCloser, int64, error)
}

var _ Downloader = (*protocol.Client)(nil)

// Store keeps encrypted attachments in a directory.
type Store struct {
	dir     string
	domain  string
	maxSize int64
	expiry  time.Duration
	now     func() time.Time
	log     *slog.Logger
	dl      atomic.Pointer[downloaderBox]
}

type downloaderBox struct{ d Downloader }

// Config is the mimi.assets section of the gateway's configuration (the yaml tags are its keys;
// config/example.yaml documents each with its default; config.Config.AssetsConfig fills in Dir
// and shortens Expiry to retention.assets).
type Config struct {
	// Dir is the directory of the store; empty in the file means <data_dir>/assets.
	Dir string `yaml:"dir"`
	// Expiry is how long a stored attachment is kept and served (WithExpiry).
	Expiry time.Duration `yaml:"expiry"`
	// MaxSize bounds a stored or downloaded attachment (plaintext).
	MaxSize confschema.ByteSize `yaml:"max_size"`
	// SweepInterval is how often expired attachments are deleted (Run).
	SweepInterval time.Duration `yaml:"sweep_interval"`
}

// Validate returns every problem of c, each a *confschema.Problem naming its key under mimi.assets.
func (c Config) Validate() error {
	var p confschema.Problems
	p.Positive("mimi.assets.expiry", int64(c.Expiry))
	p.Positive("mimi.assets.max_size", int64(c.MaxSize))
	p.Positive("mimi.assets.sweep_interval", int64(c.SweepInterval))
	return p.Err()
}

// Option tunes New.
type Option func(*Store)

// WithExpiry sets how long an asset is kept (DefaultExpiry when d <= 0).
func WithExpiry(d time.Duration) Option {
	return func(s *Store) {
		if d > 0 {
			s.expiry = d
		}
	}
}

// WithClock replaces time.Now (expiry tests).
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// WithLogger sets the logger of the sweeper.
func WithLogger(l *slog.Logger) Option { return func(s *Store) { s.log = l } }

// WithDownloader sets the Downloader for partners' assets (see SetDownloader).
func WithDownloader(d Downloader) Option { return func(s *Store) { s.SetDownloader(d) } }

// New returns a store writing to dir (created with mode 0700) and issuing URLs
// https://<domain>/assets/<id>. maxSize 0 means DefaultMaxSize.
func New(dir, domain string, maxSize int64, opts ...Option) (*Store, error) {
	if dir == "" || domain == "" || strings.ContainsAny(domain, "/?#@: ") {
		return nil, fmt.Errorf("assets: directory and a plain domain are required")
	}
	if maxSize <= 0 {
		maxSize = DefaultMaxSize
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("assets: create %s: %w", dir, err)
	}
	s := &Store{dir: dir, domain: strings.TrimSuffix(strings.ToLower(domain), "."), maxSize: maxSize,
		expiry: DefaultExpiry, now: time.Now, log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(s)
	}
	return s, nil
}

// SetDownloader sets (or, with nil, removes) the Downloader that fetches partners' assets. The
// protocol client exists only once the MIMI endpoint starts, after the store was handed to the
// adapters; it is safe to call at any time.
func (s *Store) SetDownloader(d Downloader) {
	if d == nil {
		s.dl.Store(nil)
		return
	}
	s.dl.Store(&downloaderBox{d: d})
}

// MaxCiphertext is the largest ciphertext the store keeps or fetches: the size limit plus the
// AES-GCM tag.
func (s *Store) MaxCiphertext() int64 { return s.maxSize + tagSize }

// meta is the sidecar file <id>.meta of a stored asset.
type meta struct {
	// Expires is the expiry, Unix seconds.
	Expires int64 `json:"expires"`
	// Size is the ciphertext size in bytes.
	Size int64 `json:"size"`
	// Created is when it was stored, Unix seconds (0 in files written before it was recorded).
	Created int64 `json:"created,omitempty"`
	// Owner is the hex SHA-256 of the uploader's user URI (empty when unknown), so that a
	// user's files can be erased without the files naming the user.
	Owner string `json:"owner,omitempty"`
}

// ownerHash is how meta.Owner names a user.
func ownerHash(u event.UserURI) string {
	if u == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(u))
	return hex.EncodeToString(sum[:])
}

// Put implements bridges.AssetStore. The ciphertext and then its metadata are written to
// temporary files, synced and renamed; a crash in between leaves only files Sweep removes.
func (s *Store) Put(ctx context.Context, r io.Reader, am Meta) (*Asset, error) {
	if am.Size > s.maxSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, am.Size, s.maxSize)
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
	part, ct, err := content.EncryptAttachment(nil, plain, content.AttachmentMeta{ContentType: am.ContentType, Filename: am.Filename})
	if err != nil {
		return nil, fmt.Errorf("assets: encrypt: %w", err)
	}
	idb := make([]byte, idBytes)
	if _, err := rand.Read(idb); err != nil {
		return nil, fmt.Errorf("assets: random: %w", err)
	}
	id := hex.EncodeToString(idb)
	now := s.now()
	expires := now.Add(s.expiry).Truncate(time.Second)
	mb, err := json.Marshal(meta{Expires: expires.Unix(), Size: int64(len(ct)), Created: now.Unix(), Owner: ownerHash(am.Owner)})
	if err != nil {
		return nil, fmt.Errorf("assets: metadata: %w", err)
	}
	if err := writeFile(filepath.Join(s.dir, id), ct); err != nil {
		return nil, err
	}
	if err := writeFile(filepath.Join(s.dir, id+metaSuffix), mb); err != nil {
		os.Remove(filepath.Join(s.dir, id))
		return nil, err
	}
	if err := syncDir(s.dir); err != nil {
		return nil, err
	}
	return &Asset{
		URL: protocol.AssetURL(event.Domain(s.domain), id), ContentType: am.ContentType, Filename: am.Filename, Size: uint64(len(plain)),
		Key: part.Key, Nonce: part.Nonce, HashAlg: part.HashAlg, Hash: part.ContentHash, Expires: expires,
	}, nil
}

// readMeta reads the metadata of asset id; a missing, unreadable or expired one is ErrNotFound.
func (s *Store) readMeta(id string) (meta, error) {
	f, err := os.Open(filepath.Join(s.dir, id+metaSuffix))
	if errors.Is(err, os.ErrNotExist) {
		return meta{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return meta{}, fmt.Errorf("assets: open metadata of %s: %w", id, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxMetaSize))
	if err != nil {
		return meta{}, fmt.Errorf("assets: read metadata of %s: %w", id, err)
	}
	var m meta
	if err := json.Unmarshal(b, &m); err != nil {
		return meta{}, fmt.Errorf("%w: %s: metadata unreadable: %w", ErrNotFound, id, err)
	}
	if !s.now().Before(time.Unix(m.Expires, 0)) {
		return meta{}, fmt.Errorf("%w: %s expired", ErrNotFound, id)
	}
	return m, nil
}

// OpenCiphertext returns the stored ciphertext of asset id and its size, for serving it to
// partners. An unknown, malformed or expired ID is ErrNotFound.
func (s *Store) OpenCiphertext(_ context.Context, id string) (io.ReadCloser, int64, error) {
	if _, err := protocol.ParseAssetID(id); err != nil {
		return nil, 0, fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	m, err := s.readMeta(id)
	if err != nil {
		return nil, 0, err
	}
	f, err := os.Open(filepath.Join(s.dir, id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("assets: open %s: %w", id, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("assets: stat %s: %w", id, err)
	}
	if st.Size() != m.Size || st.Size() > s.MaxCiphertext() {
		f.Close()
		return nil, 0, fmt.Errorf("%w: %s is %d bytes, metadata says %d (limit %d)", ErrIntegrity, id, st.Size(), m.Size, s.MaxCiphertext())
	}
	return f, st.Size(), nil
}

// own reports whether host is our asset domain.
func (s *Store) own(host string) bool { return host == s.domain }

// OpenCiphertextURL returns the ciphertext at an asset URL, for a hub's /proxyDownload: ours
// from the disk, a partner's fetched directly (never through another hub). A URL whose host is
// neither ours nor a configured partner's asset domain is ErrNotAllowed; a malformed one
// protocol.ErrAssetURL.
func (s *Store) OpenCiphertextURL(ctx context.Context, rawURL string) (io.ReadCloser, int64, error) {
	host, id, err := protocol.ParseAssetURL(rawURL)
	if err != nil {
		return nil, 0, err
	}
	if s.own(host) {
		return s.OpenCiphertext(ctx, id)
	}
	b := s.dl.Load()
	if b == nil {
		return nil, 0, fmt.Errorf("%w: %s (no partners configured)", ErrNotAllowed, host)
	}
	rc, n, err := b.d.OpenAsset(ctx, rawURL, s.MaxCiphertext())
	if errors.Is(err, protocol.ErrNotPartner) {
		return nil, 0, fmt.Errorf("%w: %w", ErrNotAllowed, err)
	}
	return rc, n, err
}

// Open implements bridges.AssetStore: our own assets are read from the disk, partners' are
// fetched with the Downloader (see fetch), and the ciphertext's hash is checked before it is
// decrypted.
func (s *Store) Open(ctx context.Context, a *Asset) (io.ReadCloser, error) {
	host, id, err := protocol.ParseAssetURL(a.URL)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	var rc io.ReadCloser
	if s.own(host) {
		rc, _, err = s.OpenCiphertext(ctx, id)
	} else {
		rc, err = s.fetch(ctx, host, a)
	}
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	ct, err := io.ReadAll(io.LimitReader(rc, s.MaxCiphertext()+1))
	if err != nil {
		if errors.Is(err, protocol.ErrAssetTooLarge) {
			return nil, fmt.Errorf("%w: %w", ErrTooLarge, err)
		}
		return nil, fmt.Errorf("assets: read %s: %w", a.URL, err)
	}
	if int64(len(ct)) > s.MaxCiphertext() {
		return nil, fmt.Errorf("%w: %s exceeds %d bytes", ErrTooLarge, a.URL, s.MaxCiphertext())
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return Decrypt(ct, a)
}

// fetch gets a partner's asset ciphertext. Reading R27: directly from the owner when the URL
// host is a configured partner's asset domain; when it is not, or the owner refuses us or cannot
// be reached, through the hub of a.Room (/proxyDownload, §5.10) if that hub is a third provider.
// A definite answer of the owner (404, 410, too large) is final.
func (s *Store) fetch(ctx context.Context, host string, a *Asset) (io.ReadCloser, error) {
	b := s.dl.Load()
	if b == nil {
		return nil, fmt.Errorf("%w: %s is not ours and no partners are configured", ErrNotFound, a.URL)
	}
	rc, _, err := b.d.OpenAsset(ctx, a.URL, s.MaxCiphertext())
	if err == nil {
		return rc, nil
	}
	hub := event.Domain("")
	if a.Room != "" {
		hub = event.Domain(strings.ToLower(string(a.Room.Domain())))
	}
	if hub == "" || s.own(string(hub)) || string(hub) == host || !viaHub(err) {
		return nil, s.fetchError(a.URL, err)
	}
	rc, _, perr := b.d.OpenProxyDownload(ctx, hub, a.URL, s.MaxCiphertext())
	if perr != nil {
		return nil, errors.Join(s.fetchError(a.URL, err), fmt.Errorf("through hub %s: %w", hub, s.fetchError(a.URL, perr)))
	}
	return rc, nil
}

// viaHub reports whether a failed direct download may succeed through the hub.
func viaHub(err error) bool {
	var he *protocol.HTTPError
	switch {
	case errors.Is(err, protocol.ErrNotPartner):
		return true
	case errors.Is(err, protocol.ErrAssetTooLarge), errors.Is(err, protocol.ErrAssetURL), errors.Is(err, context.Canceled):
		return false
	case errors.As(err, &he):
		return he.Status == http.StatusUnauthorized || he.Status == http.StatusForbidden || he.Status >= 500
	}
	return true // transport errors: the owner cannot be reached from here
}

// fetchError maps a download error onto the store's errors.
func (s *Store) fetchError(u string, err error) error {
	var he *protocol.HTTPError
	switch {
	case errors.As(err, &he) && (he.Status == http.StatusNotFound || he.Status == http.StatusGone):
		return fmt.Errorf("%w: %s: %w", ErrNotFound, u, err)
	case errors.Is(err, protocol.ErrAssetTooLarge):
		return fmt.Errorf("%w: %s: %w", ErrTooLarge, u, err)
	case errors.Is(err, protocol.ErrNotPartner):
		return fmt.Errorf("%w: %s: %w", ErrNotAllowed, u, err)
	}
	return fmt.Errorf("assets: download %s: %w", u, err)
}

// Decrypt checks the hash of ciphertext against a and decrypts it (for assets fetched from a
// partner's URL as well as local ones), with core/content's attachment helper.
func Decrypt(ct []byte, a *Asset) (io.ReadCloser, error) {
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
	tmp := path + tmpSuffix
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

// syncDir makes renames in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("assets: open directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("assets: sync directory: %w", err)
	}
	return nil
}
