-- idmap 0001: native message IDs <-> MIMI message IDs, and per-message reaction state.
-- Timestamps are Unix milliseconds.
CREATE TABLE idmap_messages (
-- dialect: sqlite
	network       TEXT    NOT NULL,
	native_room   TEXT    NOT NULL,
	native_id     TEXT    NOT NULL,
	native_sender TEXT    NOT NULL,
	room_uri      TEXT    NOT NULL,
-- dialect: postgres
	network       TEXT     NOT NULL,
	native_room   TEXT     NOT NULL,
	native_id     TEXT     NOT NULL,
	native_sender TEXT     NOT NULL,
	room_uri      TEXT     NOT NULL,
-- dialect: end
	message_id    {{blob}}    NOT NULL,
-- dialect: sqlite
	event_id      TEXT    NOT NULL,
	is_primary    INTEGER NOT NULL CHECK (is_primary IN (0, 1)),
	created_at    INTEGER NOT NULL,
-- dialect: postgres
	event_id      TEXT     NOT NULL,
	is_primary    SMALLINT NOT NULL CHECK (is_primary IN (0, 1)),
	created_at    BIGINT   NOT NULL,
-- dialect: end
	PRIMARY KEY (network, native_room, native_id, native_sender)
){{without_rowid}};

CREATE INDEX idmap_messages_mimi ON idmap_messages (room_uri, message_id, network);
CREATE INDEX idmap_messages_event ON idmap_messages (event_id);
CREATE INDEX idmap_messages_created ON idmap_messages (created_at);

CREATE TABLE idmap_reactions (
-- dialect: sqlite
	room_uri   TEXT    NOT NULL,
	target_id  BLOB    NOT NULL,
	reactor    TEXT    NOT NULL,
	emoji      TEXT    NOT NULL,
	message_id BLOB    NOT NULL,
	event_id   TEXT    NOT NULL,
-- dialect: postgres
	room_uri   TEXT   NOT NULL,
	target_id  BYTEA  NOT NULL,
	reactor    TEXT   NOT NULL,
	emoji      TEXT   NOT NULL,
	message_id BYTEA  NOT NULL,
	event_id   TEXT   NOT NULL,
-- dialect: end
	created_at {{bigint}} NOT NULL,
	PRIMARY KEY (room_uri, target_id, reactor, emoji)
){{without_rowid}};

CREATE INDEX idmap_reactions_message ON idmap_reactions (room_uri, message_id);
