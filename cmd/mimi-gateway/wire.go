package main

import (
	"time"

	"github.com/mimi-gateway/mimi-gateway/config"
	"github.com/mimi-gateway/mimi-gateway/core/bus"
	"github.com/mimi-gateway/mimi-gateway/core/ops"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// busConfig maps the bus section onto core/bus.Config.
func busConfig(c *config.Config) bus.Config {
	b := c.Bus
	return bus.Config{
		Mode: bus.Mode(b.Mode),
		Embedded: bus.EmbeddedConfig{
			StoreDir:     c.NATSStoreDir(),
			MaxMemory:    int64(b.Embedded.MaxMemory),
			MaxStore:     int64(b.Embedded.MaxStore),
			SyncInterval: b.Embedded.SyncInterval,
			Listen:       b.Embedded.Listen,
			ServerName:   b.Embedded.ServerName,
			KeyFile:      c.NATSKeyFile(),
			// Only the default file is created; a configured one must exist.
			CreateKeyFile: b.Embedded.KeyFile == "",
			Cipher:        b.Embedded.Cipher,
		},
		External: bus.ExternalConfig{
			URLs:         append([]string(nil), b.External.URLs...),
			CredsFile:    b.External.CredsFile,
			NKeySeedFile: b.External.NKeySeedFile,
			TLS: bus.TLSConfig{
				CAFile:   b.External.TLS.CAFile,
				CertFile: b.External.TLS.CertFile,
				KeyFile:  b.External.TLS.KeyFile,
			},
			Replicas:        b.External.Replicas,
			Name:            b.External.Name,
			EncryptedAtRest: b.External.EncryptedAtRest,
		},
		DedupeWindow:       b.DedupeWindow,
		AckWait:            b.AckWait,
		MaxDeliveries:      b.MaxDeliveries,
		Backoff:            append(b.Backoff[:0:0], b.Backoff...),
		HandlerTimeout:     b.HandlerTimeout,
		Partitions:         b.Partitions,
		PinnedTTL:          b.PinnedTTL,
		NoPinning:          b.NoPinning,
		MaxAge:             b.MaxAge,
		MaxBytes:           int64(b.MaxBytes),
		DeadLetterMaxAge:   shorter(b.DeadLetterMaxAge, c.Retention.DeadLetters),
		DeadLetterMaxBytes: int64(b.DeadLetterMaxBytes),
		ReadyTimeout:       b.ReadyTimeout,
	}
}

// shorter returns the shorter of a maximum age and a retention period (0: for ever).
func shorter(d, retention time.Duration) time.Duration {
	if retention > 0 && (d <= 0 || retention < d) {
		return retention
	}
	return d
}

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
		Driver:            string(s.Driver),
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
