package store

// GroupWaiting reports how many InGroupTx callers wait for the next shared transaction.
func GroupWaiting(s *Store) int {
	s.group.mu.Lock()
	defer s.group.mu.Unlock()
	return len(s.group.pending)
}

// StatementCached reports whether query is prepared in s's writer (writer true) or reader
// statement cache; always false on PostgreSQL, which has none.
func StatementCached(s *Store, query string, writer bool) bool {
	c := s.readerStmts
	if writer {
		c = s.writerStmts
	}
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stmts[query] != nil
}
