package store

import (
	"context"
	"database/sql"
	"strings"
	"sync"
)

// maxCachedStatements bounds the statements a stmtCache keeps per database handle. The
// components' statements are a few hundred distinct texts; statements built with a variable
// number of placeholders beyond the bound simply run unprepared.
const maxCachedStatements = 512

// stmtCache keeps prepared statements by their query text for one *sql.DB, so that a statement
// a component runs again (every message runs the same few dozen) is not parsed and planned by
// SQLite each time: on the modernc driver preparing was about an eighth of a message's CPU
// time. Only SQLite uses it (pgx caches statements itself).
//
// A statement seen for the first time runs unprepared and is prepared in the background: inside
// a transaction the SQLite writer's one connection is taken, so preparing it there and then
// would wait for itself. database/sql then prepares the statement on each connection it is used
// on once (Tx.StmtContext reuses the one prepared on the transaction's connection).
type stmtCache struct {
	db *sql.DB

	mu sync.Mutex
	// stmts holds every text seen that may be cached: its prepared statement, or nil while it
	// is being prepared and after it failed to prepare (it then runs unprepared for good).
	stmts  map[string]*sql.Stmt
	closed bool
	wg     sync.WaitGroup
}

func newStmtCache(db *sql.DB) *stmtCache {
	return &stmtCache{db: db, stmts: map[string]*sql.Stmt{}}
}

// get returns the prepared statement for query, or nil (then run query unprepared) after
// starting to prepare it if it may be cached.
func (c *stmtCache) get(query string) *sql.Stmt {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	st, seen := c.stmts[query]
	if st != nil || seen || c.closed || !cacheable(query) || len(c.stmts) >= maxCachedStatements {
		return st
	}
	c.stmts[query] = nil // being prepared
	c.wg.Add(1)
	go c.prepare(query)
	return nil
}

func (c *stmtCache) prepare(query string) {
	defer c.wg.Done()
	st, err := c.db.PrepareContext(context.Background(), query)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		return // the nil entry stays: the statement keeps running unprepared (and reports its own error)
	}
	if c.closed {
		_ = st.Close()
		return
	}
	c.stmts[query] = st
}

// close waits for background preparations and closes the cached statements; later gets return
// nil.
func (c *stmtCache) close() {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.wg.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	for q, st := range c.stmts {
		if st != nil {
			_ = st.Close()
		}
		delete(c.stmts, q)
	}
}

// cacheable reports whether query is one statement (a prepared statement holds only the
// first of several).
func cacheable(query string) bool {
	return !strings.Contains(strings.TrimRight(strings.TrimSpace(query), ";"), ";")
}
