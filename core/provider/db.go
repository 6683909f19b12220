package provider

import "github.com/mimi-gateway/mimi-gateway/core/store"

// db is the provider's persistence: its SQL statements are db's methods, in the db_*.go files by
// table group (db_rooms.go: rooms and the participant index; db_parked.go: parked envelopes;
// db_msgmap.go: the outgoing message map, the inbox backlog and the protocol outbox's queue); the
// other tables' statements move here the same way, until the provider's logic holds no SQL. A db
// runs each statement on q: the store (the statement on its own) or a transaction the caller
// opened, so transaction boundaries, and the compare-and-set on MLS state, stay where the logic
// puts them.
type db struct{ q store.Querier }

// db returns the provider's persistence over the store.
func (p *Provider) db() db { return db{p.st} }

// dbOf returns the provider's persistence over q: a transaction (*store.Tx) or the store.
func dbOf(q store.Querier) db { return db{q} }
