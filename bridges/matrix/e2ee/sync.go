package e2ee

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"maunium.net/go/mautrix"
	mevent "maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// SyncStore keeps the sync token and filter ID in the gateway store. mautrix saves the next
// batch token before it processes a response; this store only remembers it, and the syncer commits
// it after every event of the response was published (or parked), so a crash never skips events.
type SyncStore struct {
	kv      *store.KV
	key     string
	mu      sync.Mutex
	pending string
}

var _ mautrix.SyncStore = (*SyncStore)(nil)

// NewSyncStore returns the sync store of user u, kept in kv.
func NewSyncStore(kv *store.KV, u id.UserID) *SyncStore {
	return &SyncStore{kv: kv, key: "sync:" + string(u)}
}

// SaveFilterID implements mautrix.SyncStore.
func (s *SyncStore) SaveFilterID(ctx context.Context, _ id.UserID, filterID string) error {
	if _, err := s.kv.Put(ctx, s.key+":filter", []byte(filterID)); err != nil {
		return fmt.Errorf("matrix: save filter ID: %w", err)
	}
	return nil
}

// LoadFilterID implements mautrix.SyncStore.
func (s *SyncStore) LoadFilterID(ctx context.Context, _ id.UserID) (string, error) {
	e, err := s.kv.Get(ctx, s.key+":filter")
	if errors.Is(err, store.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("matrix: load filter ID: %w", err)
	}
	return string(e.Value), nil
}

// SaveNextBatch implements mautrix.SyncStore: it only remembers the token until commit.
func (s *SyncStore) SaveNextBatch(_ context.Context, _ id.UserID, nextBatch string) error {
	s.mu.Lock()
	s.pending = nextBatch
	s.mu.Unlock()
	return nil
}

// LoadNextBatch implements mautrix.SyncStore: the last committed token.
func (s *SyncStore) LoadNextBatch(ctx context.Context, _ id.UserID) (string, error) {
	e, err := s.kv.Get(ctx, s.key)
	if errors.Is(err, store.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("matrix: load sync token: %w", err)
	}
	return string(e.Value), nil
}

// commit persists the token of the response just processed.
func (s *SyncStore) commit(ctx context.Context) error {
	s.mu.Lock()
	tok := s.pending
	s.mu.Unlock()
	if tok == "" {
		return nil
	}
	if _, err := s.kv.Put(ctx, s.key, []byte(tok)); err != nil {
		return fmt.Errorf("matrix: save sync token: %w", err)
	}
	return nil
}

// Syncer is mautrix's DefaultSyncer with two changes: handlers report failures, and a failure
// stops the response before the token is committed (the sync loop restarts from the old token);
// and the crypto helper's automatic decryption is not registered, because the adapter decrypts
// itself (waiting for keys, parking events durably).
type Syncer struct {
	*mautrix.DefaultSyncer
	store *SyncStore
	mu    sync.Mutex
	err   error
	// After runs after every sync whose events were all handled.
	After func(ctx context.Context)
	// Back runs after a successful sync that follows failed sync requests (the homeserver was
	// unreachable).
	Back func(ctx context.Context)
	// failures counts consecutive failed syncs; requestFailed records that a request failed
	// (not only the handling of a response). Both belong to the sync goroutine.
	failures      int
	requestFailed bool
}

// failedSyncMaxWait caps the wait before a failed sync is tried again (mautrix waits 10 s, which
// would delay room keys well after the homeserver is back).
const failedSyncMaxWait = 4 * time.Second

// OnFailedSync implements mautrix.Syncer: the next sync follows after 250 ms, doubling up to
// failedSyncMaxWait.
func (s *Syncer) OnFailedSync(res *mautrix.RespSync, err error) (time.Duration, error) {
	if errors.Is(err, mautrix.MUnknownToken) {
		return 0, err
	}
	if res == nil {
		s.requestFailed = true
	}
	s.failures++
	return min(250*time.Millisecond<<min(s.failures-1, 5), failedSyncMaxWait), nil
}

// NewSyncer returns a syncer that commits its tokens to st.
func NewSyncer(st *SyncStore) *Syncer {
	s := &Syncer{DefaultSyncer: mautrix.NewDefaultSyncer(), store: st}
	s.ParseEventContent = true
	return s
}

// OnEventType implements mautrix.ExtensibleSyncer, dropping the crypto helper's decryption hook.
func (s *Syncer) OnEventType(t mevent.Type, cb mautrix.EventHandler) {
	if t == mevent.EventEncrypted {
		return
	}
	s.DefaultSyncer.OnEventType(t, cb)
}

// Fail records a handler failure for the response in progress.
func (s *Syncer) Fail(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
}

// ProcessResponse implements mautrix.Syncer.
func (s *Syncer) ProcessResponse(ctx context.Context, res *mautrix.RespSync, since string) error {
	s.mu.Lock()
	s.err = nil
	s.mu.Unlock()
	if err := s.DefaultSyncer.ProcessResponse(ctx, res, since); err != nil {
		return err
	}
	s.mu.Lock()
	err := s.err
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("matrix: sync response not fully handled, token kept: %w", err)
	}
	if err := s.store.commit(ctx); err != nil {
		return err
	}
	s.failures = 0
	if s.requestFailed {
		s.requestFailed = false
		if s.Back != nil {
			s.Back(ctx)
		}
	}
	if s.After != nil {
		s.After(ctx)
	}
	return nil
}
