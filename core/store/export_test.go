package store

// GroupWaiting reports how many InGroupTx callers wait for the next shared transaction.
func GroupWaiting(s *Store) int {
	s.group.mu.Lock()
	defer s.group.mu.Unlock()
	return len(s.group.pending)
}
