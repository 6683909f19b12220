package provider

import "github.com/mimi-gateway/mimi-gateway/core/store"

// Sealed columns (core/store): the legacy users' private keys and MLS states are encrypted with
// the store's key, each value bound to its row.
var (
	// sealedSigPrivate is a user's signature private key, bound to the user.
	sealedSigPrivate = store.SealedColumn{Table: "provider_users", Column: "sig_private", Key: []string{"user_uri"}}
	// sealedInitPrivate and sealedEncPrivate are a KeyPackage's HPKE private keys, bound to its
	// reference.
	sealedInitPrivate = store.SealedColumn{Table: "provider_keypackages", Column: "init_private", Key: []string{"ref"}}
	sealedEncPrivate  = store.SealedColumn{Table: "provider_keypackages", Column: "enc_private", Key: []string{"ref"}}
	// sealedClientState is a user's MLS state in a room (secret tree, leaf and path keys), bound
	// to room and user.
	sealedClientState = store.SealedColumn{Table: "provider_clients", Column: "state", Key: []string{"room", "user_uri"}}
	// sealedClientEpoch is the epoch part of a user's MLS state in a room (epoch secrets, leaf
	// and path keys, signature key), bound to room and user.
	sealedClientEpoch = store.SealedColumn{Table: "provider_client_epochs", Column: "state", Key: []string{"room", "user_uri"}}
)

// sealedColumns are the provider schema's sealed columns.
var sealedColumns = []store.SealedColumn{sealedSigPrivate, sealedInitPrivate, sealedEncPrivate, sealedClientState, sealedClientEpoch, sealedParked}
