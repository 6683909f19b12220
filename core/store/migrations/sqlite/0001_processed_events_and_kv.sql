-- core 0001: idempotency records and a small key-value table.
-- Timestamps are Unix milliseconds.
CREATE TABLE store_processed_events (
	scope        TEXT    NOT NULL,
	event_id     TEXT    NOT NULL,
	processed_at INTEGER NOT NULL,
	PRIMARY KEY (scope, event_id)
) WITHOUT ROWID;

CREATE INDEX store_processed_events_processed_at ON store_processed_events (processed_at);

CREATE TABLE store_kv (
	scope      TEXT    NOT NULL,
	key        TEXT    NOT NULL,
	value      BLOB    NOT NULL,
	version    INTEGER NOT NULL CHECK (version > 0),
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (scope, key)
); -- a rowid table: values may be large, WITHOUT ROWID suits small rows only
