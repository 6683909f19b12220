package provider

import "github.com/mimi-gateway/mimi-gateway/core/store"

// db is the provider's persistence: every SQL statement of the provider is a method of db, in
// the db_*.go files by table group (db_rooms.go: rooms, epochs and the participant index;
// db_clients.go: local users' MLS clients and the public states they share; db_keys.go: users
// and their KeyPackage pools; db_proposals.go: accepted proposals and the public view;
// db_routes.go: where relayed KeyPackages came from; db_credentials.go: our signature keys and
// credential alerts; db_inbox.go: the local fanout inbox; db_msgmap.go: the outgoing message
// map, inbox backlog and the protocol outbox's queue; db_parked.go: parked envelopes;
// db_summary.go: what operators see), so the provider's logic holds no SQL
// (TestNoSQLOutsideDB). A db runs each statement on q: the store (the statement on its own) or
// a transaction the caller opened, so transaction boundaries, and the compare-and-set on MLS
// state, stay where the logic puts them; sealing and unsealing stay with the logic too.
type db struct{ q store.Querier }

// db returns the provider's persistence over the store.
func (p *Provider) db() db { return db{p.st} }

// dbOf returns the provider's persistence over q: a transaction (*store.Tx) or the store.
func dbOf(q store.Querier) db { return db{q} }
