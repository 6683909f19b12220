-- matrix 0001: portal rooms, events waiting for their decryption keys.
-- Timestamps are Unix milliseconds.
CREATE TABLE matrix_portal (
	mimi_room  TEXT    NOT NULL PRIMARY KEY,
	mx_room    TEXT    NOT NULL UNIQUE,
	encrypted  INTEGER NOT NULL DEFAULT 0,
-- dialect: sqlite
	created_at INTEGER NOT NULL
-- dialect: postgres
	created_at BIGINT  NOT NULL
-- dialect: end
);

CREATE TABLE matrix_pending (
	event_id    TEXT    NOT NULL PRIMARY KEY,
	mx_room     TEXT    NOT NULL,
	raw         TEXT    NOT NULL,
-- dialect: sqlite
	received_at INTEGER NOT NULL,
-- dialect: postgres
	received_at BIGINT  NOT NULL,
-- dialect: end
	attempts    INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE matrix_ghost (
	user_id    TEXT    NOT NULL PRIMARY KEY,
	mimi_user  TEXT    NOT NULL,
	name       TEXT    NOT NULL DEFAULT '',
	avatar     TEXT    NOT NULL DEFAULT '',
-- dialect: sqlite
	updated_at INTEGER NOT NULL
-- dialect: postgres
	updated_at BIGINT  NOT NULL
-- dialect: end
);
