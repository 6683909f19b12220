package bridges

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/mimi-gateway/mimi-gateway/core/assets"
	"github.com/mimi-gateway/mimi-gateway/core/content"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// Helpers every adapter needs, whatever its network: configuration defaults, the adapter's
// secret, attachments in the asset store, and the languages of its users.

// Default sets *p to v when *p is the zero value (configuration defaults).
func Default[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

// LoadSecret returns the random 32-byte secret kept in kv under name, creating it the first time
// (concurrent first calls agree on one). Adapters derive content salts and opaque IDs from it.
func LoadSecret(ctx context.Context, kv *store.KV, name string) ([]byte, error) {
	e, err := kv.Get(ctx, name)
	if err == nil {
		return e.Value, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("bridges: load secret %s: %w", name, err)
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("bridges: random secret %s: %w", name, err)
	}
	if _, err := kv.CompareAndSwap(ctx, name, 0, b); err != nil {
		if e, err2 := kv.Get(ctx, name); err2 == nil {
			return e.Value, nil
		}
		return nil, fmt.Errorf("bridges: store secret %s: %w", name, err)
	}
	return b, nil
}

// ErrTooLarge is returned (wrapped, with assets.ErrUnavailable) by OpenAttachment for an
// attachment larger than the adapter takes.
var ErrTooLarge = errors.New("bridges: attachment too large")

// OpenAttachment returns the plaintext of an encrypted external part of a message in room, read
// from the asset store (which fetches a partner's file and checks its hash). An attachment that
// is unavailable (expired, tampered, not reachable by policy, or larger than max bytes) is an
// error wrapping assets.ErrUnavailable: show the message without it.
func OpenAttachment(ctx context.Context, s AssetStore, room event.RoomURI, x content.ExternalPart, max int64) ([]byte, error) {
	rc, err := s.Open(ctx, &assets.Asset{URL: x.URL, ContentType: x.ContentType, Filename: x.Filename,
		Key: x.Key, Nonce: x.Nonce, HashAlg: x.HashAlg, Hash: x.ContentHash, Room: room})
	if err != nil {
		return nil, fmt.Errorf("bridges: open attachment %s: %w", x.URL, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, max+1))
	if err != nil {
		return nil, fmt.Errorf("bridges: read attachment %s: %w", x.URL, err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%w: %w: larger than %d bytes", assets.ErrUnavailable, ErrTooLarge, max)
	}
	return data, nil
}

// StoreAttachment hands a native file's plaintext to the asset store, which encrypts and keeps
// it, and returns the external part that describes it for MIMI.
func StoreAttachment(ctx context.Context, s AssetStore, data []byte, meta assets.Meta, description string) (content.ExternalPart, error) {
	meta.Size = int64(len(data))
	a, err := s.Put(ctx, bytes.NewReader(data), meta)
	if err != nil {
		return content.ExternalPart{}, fmt.Errorf("bridges: store attachment: %w", err)
	}
	return content.ExternalPart{ContentType: a.ContentType, URL: a.URL, Size: a.Size + 16, // AES-GCM tag
		Expires: content.URLExpiry(a.Expires), EncAlg: content.AEADAES128GCM, Key: a.Key, Nonce: a.Nonce, HashAlg: a.HashAlg,
		ContentHash: a.Hash, Filename: a.Filename, Description: description}, nil
}

// maxLanguages bounds the users whose language a UserLanguages remembers.
const maxLanguages = 10000

// UserLanguages remembers the language each local user's client declares (keyed by the adapter's
// name for the user), in memory: after a restart a user gets the configured language until her
// client declares one again. The zero value is ready; it is safe for concurrent use.
type UserLanguages struct {
	mu sync.Mutex
	m  map[string]Language
}

// Note records tag (a language tag such as xml:lang) for user, if the catalogue has it.
func (l *UserLanguages) Note(user, tag string) {
	got, ok := ParseLanguage(tag)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m[user] == got {
		return
	}
	if l.m == nil || len(l.m) >= maxLanguages {
		l.m = map[string]Language{}
	}
	l.m[user] = got
}

// Of returns user's language, else the configured one (a tag), else English.
func (l *UserLanguages) Of(user, configured string) Language {
	l.mu.Lock()
	got, ok := l.m[user]
	l.mu.Unlock()
	if ok {
		return got
	}
	return ConfiguredLanguage(configured)
}

// ConfiguredLanguage is the language of tag (an adapter's configured language), else English.
func ConfiguredLanguage(tag string) Language {
	if c, ok := ParseLanguage(tag); ok {
		return c
	}
	return English
}
