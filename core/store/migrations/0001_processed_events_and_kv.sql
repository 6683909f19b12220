-- core 0001: idempotency records and a small key-value table.
-- Timestamps are Unix milliseconds.
CREATE TABLE store_processed_events (
-- dialect: sqlite
	scope        TEXT    NOT NULL,
	event_id     TEXT    NOT NULL,
-- dialect: postgres
	scope        TEXT   NOT NULL,
	event_id     TEXT   NOT NULL,
-- dialect: end
	processed_at {{bigint}} NOT NULL,
	PRIMARY KEY (scope, event_id)
){{without_rowid}};

CREATE INDEX store_processed_events_processed_at ON store_processed_events (processed_at);

CREATE TABLE store_kv (
-- dialect: sqlite
	scope      TEXT    NOT NULL,
	key        TEXT    NOT NULL,
	value      BLOB    NOT NULL,
-- dialect: postgres
	scope      TEXT   NOT NULL,
	key        TEXT   NOT NULL,
	value      BYTEA  NOT NULL,
-- dialect: end
	version    {{bigint}} NOT NULL CHECK (version > 0),
	updated_at {{bigint}} NOT NULL,
	PRIMARY KEY (scope, key)
-- dialect: sqlite
); -- a rowid table: values may be large, WITHOUT ROWID suits small rows only
-- dialect: postgres
);
-- dialect: end
