package provider

import (
	"container/list"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"

	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// DefaultGroupCacheBytes bounds the loaded MLS groups kept in memory between messages, counted
// as the size of their stored epoch states (the parsed form takes a few times that).
const DefaultGroupCacheBytes = 64 << 20

// groupCache keeps loaded clients between messages so that a message neither reads nor parses
// its sender's or reader's whole state. An entry is valid for the version it was stored at:
// cachedClient checks the stored version (a small row) before using an entry, so a write by another
// replica, or by a path that loaded the client from the store, makes it a miss. A client is
// taken out while in use and put back only after its new state was committed, so a failed
// operation never leaves a changed group in the cache. Least recently used entries go first
// when the byte budget is exceeded.
type groupCache struct {
	mu      sync.Mutex
	max     int64
	size    int64
	lru     list.List // of *cacheEntry, most recently used first
	entries map[clientKey]*list.Element
	hits    int64
	misses  int64
}

type clientKey struct {
	room event.RoomURI
	user event.UserURI
}

type cacheEntry struct {
	key clientKey
	c   *clientState
}

func newGroupCache(max int64) *groupCache {
	return &groupCache{max: max, entries: map[clientKey]*list.Element{}}
}

// take removes and returns the entry of k if it is at version v; an entry at another version
// is dropped.
func (gc *groupCache) take(k clientKey, v int64) *clientState {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	e, ok := gc.entries[k]
	if !ok {
		gc.misses++
		return nil
	}
	c := gc.remove(e)
	if c.Version != v {
		gc.misses++
		return nil
	}
	gc.hits++
	return c
}

// put stores c (committed at c.Version) for room, evicting the least recently used entries
// beyond the budget. A client larger than the whole budget is not kept.
func (gc *groupCache) put(room event.RoomURI, c *clientState) {
	if gc.max <= 0 || int64(c.epochBytes) > gc.max {
		return
	}
	k := clientKey{room, c.User}
	gc.mu.Lock()
	defer gc.mu.Unlock()
	if e, ok := gc.entries[k]; ok {
		gc.remove(e)
	}
	gc.entries[k] = gc.lru.PushFront(&cacheEntry{key: k, c: c})
	gc.size += int64(c.epochBytes)
	for gc.size > gc.max {
		gc.remove(gc.lru.Back())
	}
}

// remove unlinks e and returns its client; gc.mu must be held.
func (gc *groupCache) remove(e *list.Element) *clientState {
	ce := gc.lru.Remove(e).(*cacheEntry)
	delete(gc.entries, ce.key)
	gc.size -= int64(ce.c.epochBytes)
	return ce.c
}

// cachedClient returns u's client in room for an operation that changes it: the cached one when
// the stored version is still the cached one, else loaded from the store. Give it back with
// keepClient once its new state is committed.
func (p *Provider) cachedClient(ctx context.Context, room event.RoomURI, u event.UserURI) (*clientState, error) {
	var v int64
	err := p.st.QueryRowContext(ctx, `SELECT version FROM provider_clients WHERE room = ? AND user_uri = ?`, string(room), string(u)).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: %s has no client in %s", ErrUnknownUser, u, room)
	}
	if err != nil {
		return nil, fmt.Errorf("provider: client version: %w", err)
	}
	if c := p.groups.take(clientKey{room, u}, v); c != nil {
		return c, nil
	}
	return loadClient(ctx, p.st, room, u)
}

// keepClient puts c back in the cache; call it only when c's state is the committed one.
func (p *Provider) keepClient(room event.RoomURI, c *clientState) { p.groups.put(room, c) }
