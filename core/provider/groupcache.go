package provider

import (
	"container/list"
	"context"
	"fmt"
	"sync"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/mls"
)

// DefaultGroupCacheBytes bounds the loaded MLS groups kept in memory between messages, counted
// as the size of their stored member and public states (the parsed form takes a few times that).
const DefaultGroupCacheBytes = 64 << 20

// groupCache keeps loaded clients between messages so that a message neither reads nor parses
// its sender's or reader's state, and the public states of room epochs that they share. A
// client entry is valid for the version it was stored at: cachedClient checks the stored version
// (a small row) before using an entry, so a write by another replica, or by a path that loaded
// the client from the store, makes it a miss. A client is taken out while in use and put back
// only after its new state was committed, so a failed operation never leaves a changed group in
// the cache. Public states never change for their epoch. Least recently used entries go first
// when the byte budget is exceeded.
type groupCache struct {
	mu      sync.Mutex
	max     int64
	size    int64
	lru     list.List // of *cacheEntry, most recently used first
	entries map[any]*list.Element
}

// clientKey and publicKey are the cache's keys.
type clientKey struct {
	room event.RoomURI
	user event.UserURI
}

type publicKey struct {
	room  event.RoomURI
	epoch uint64
}

type cacheEntry struct {
	key  any
	c    *clientState     // for a clientKey
	pub  *mls.PublicGroup // for a publicKey
	size int64
}

func newGroupCache(max int64) *groupCache {
	return &groupCache{max: max, entries: map[any]*list.Element{}}
}

// take removes and returns the client of k if it is at version v; an entry at another version
// is dropped.
func (gc *groupCache) take(k clientKey, v int64) *clientState {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	e, ok := gc.entries[k]
	if !ok {
		return nil
	}
	c := gc.remove(e).c
	if c.Version != v {
		return nil
	}
	return c
}

// put stores c (committed at c.Version) for room.
func (gc *groupCache) put(room event.RoomURI, c *clientState) {
	gc.add(&cacheEntry{key: clientKey{room, c.User}, c: c, size: int64(c.memberBytes)})
}

// public returns the cached public state of k.
func (gc *groupCache) public(k publicKey) *mls.PublicGroup {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	e, ok := gc.entries[k]
	if !ok {
		return nil
	}
	gc.lru.MoveToFront(e)
	return e.Value.(*cacheEntry).pub
}

// putPublic stores the public state pub of k, of size bytes stored.
func (gc *groupCache) putPublic(k publicKey, pub *mls.PublicGroup, size int) {
	gc.add(&cacheEntry{key: k, pub: pub, size: int64(size)})
}

// add stores ce, replacing an entry of its key, and evicts the least recently used entries
// beyond the budget. An entry larger than the whole budget is not kept.
func (gc *groupCache) add(ce *cacheEntry) {
	if gc.max <= 0 || ce.size > gc.max {
		return
	}
	gc.mu.Lock()
	defer gc.mu.Unlock()
	if e, ok := gc.entries[ce.key]; ok {
		gc.remove(e)
	}
	gc.entries[ce.key] = gc.lru.PushFront(ce)
	gc.size += ce.size
	for gc.size > gc.max {
		gc.remove(gc.lru.Back())
	}
}

// remove unlinks e and returns it; gc.mu must be held.
func (gc *groupCache) remove(e *list.Element) *cacheEntry {
	ce := gc.lru.Remove(e).(*cacheEntry)
	delete(gc.entries, ce.key)
	gc.size -= ce.size
	return ce
}

// cachedClient returns u's client in room for an operation that changes it: the cached one when
// the stored version is still the cached one, else loaded from the store. Give it back with
// keepClient once its new state is committed.
func (p *Provider) cachedClient(ctx context.Context, room event.RoomURI, u event.UserURI) (*clientState, error) {
	v, ok, err := p.db().clientVersion(ctx, room, u)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: %s has no client in %s", ErrUnknownUser, u, room)
	}
	if c := p.groups.take(clientKey{room, u}, v); c != nil {
		return c, nil
	}
	return loadClientWith(ctx, p.st, room, u, func(epoch uint64) (*mls.PublicGroup, error) {
		k := publicKey{room, epoch}
		if pg := p.groups.public(k); pg != nil {
			return pg, nil
		}
		pg, size, err := loadPublicState(ctx, p.st, room, epoch)
		if err == nil {
			p.groups.putPublic(k, pg, size)
		}
		return pg, err
	})
}

// keepClient puts c back in the cache; call it only when c's state is the committed one.
func (p *Provider) keepClient(room event.RoomURI, c *clientState) { p.groups.put(room, c) }
