package provider

import (
	"context"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// RoomSummary is what operators see of one room: no message, no room name, no keys.
type RoomSummary struct {
	Room event.RoomURI `json:"room"`
	// Hub is the domain of the provider that hosts the room.
	Hub event.Domain `json:"hub"`
	// Hosted is true when this gateway is the hub, false when it follows.
	Hosted bool `json:"hosted"`
	// Epoch is the room's MLS epoch as this gateway last saw it.
	Epoch     uint64    `json:"epoch"`
	CreatedAt time.Time `json:"created_at"`
	// Members counts the active participants (not banned) by their provider's domain.
	Members map[event.Domain]int `json:"members"`
	// Banned counts banned entries of the participant list.
	Banned int `json:"banned,omitempty"`
	// LocalClients is how many local users have an MLS client in the room.
	LocalClients int `json:"local_clients"`
}

// ListRooms returns every room the gateway takes part in, hosted or followed, ordered by room
// URI. domain is the gateway's own domain (it decides Hosted). It reads only the store, so it
// works whether or not the MIMI endpoint runs.
func ListRooms(ctx context.Context, st *store.Store, domain event.Domain) ([]RoomSummary, error) {
	return dbOf(st).roomSummaries(ctx, domain)
}

// KeyPackageStock is one local user's KeyPackage pool.
type KeyPackageStock struct {
	User    event.UserURI `json:"user"`
	Network event.Network `json:"network"`
	// Available counts one-time packages that can still be served (unclaimed, unexpired).
	Available int `json:"available"`
	// LastResort is true when an unexpired last-resort package exists.
	LastResort bool `json:"last_resort"`
	// Claimed counts one-time packages already handed out.
	Claimed int `json:"claimed"`
	// Expired counts unclaimed packages past their expiry.
	Expired int `json:"expired"`
}

// ListKeyPackageStock returns every local user's KeyPackage pool at now, ordered by user.
func ListKeyPackageStock(ctx context.Context, st *store.Store, now time.Time) ([]KeyPackageStock, error) {
	return dbOf(st).keyPackageStock(ctx, now)
}
