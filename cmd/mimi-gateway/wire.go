package main

import (
	"github.com/mimi-gateway/mimi-gateway/config"
	"github.com/mimi-gateway/mimi-gateway/core/bus"
	"github.com/mimi-gateway/mimi-gateway/core/ops"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// sealedDeadLetter binds a dead letter's sealed envelope (core/bus Config.Sealer) to its
// Nats-Msg-Id; it names no table, only the namespace of the associated data.
var sealedDeadLetter = store.SealedColumn{Table: "mimi_dlq", Column: "envelope", Key: []string{"msg_id"}}

// storeSealer seals dead letters' envelopes with the store's keyring.
type storeSealer struct{ st *store.Store }

var _ bus.Sealer = storeSealer{}

func (s storeSealer) Seal(pt []byte, id string) ([]byte, error) {
	return s.st.Seal(sealedDeadLetter, pt, id)
}

func (s storeSealer) Unseal(ct []byte, id string) ([]byte, error) {
	return s.st.Unseal(sealedDeadLetter, ct, id)
}

// storeConfig maps the store section onto core/store.Config.
func storeConfig(c *config.Config) store.Config {
	s := c.Store
	sc := store.Config{
		Driver:            s.Driver,
		MaxOpenConns:      s.MaxOpenConns,
		BusyTimeout:       s.SQLite.BusyTimeout,
		SQLiteSynchronous: s.SQLite.Synchronous,
	}
	switch s.Driver {
	case store.Postgres:
		sc.DSN = s.Postgres.DSN
	default:
		sc.Path = c.SQLitePath()
	}
	if s.Encryption.Key != "" {
		sc.Keys = s.Encryption.Key
	} else {
		sc.KeyFile, sc.CreateKeyFile = c.StoreKeyFile(), true
	}
	return sc
}

// logConfig maps the log section onto core/ops.LogConfig.
func logConfig(c *config.Config) ops.LogConfig {
	return ops.LogConfig{Format: c.Log.Format, Level: c.Log.Level}
}
