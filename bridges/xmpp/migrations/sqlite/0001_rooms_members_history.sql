-- xmpp 0001: portals (MUC and 1:1), members and occupants, history, opaque localparts.
-- Timestamps are Unix milliseconds.
CREATE TABLE xmpp_rooms (
	room_uri   TEXT    NOT NULL PRIMARY KEY,
	muc_local  TEXT    NOT NULL UNIQUE,
	kind       TEXT    NOT NULL CHECK (kind IN ('muc', 'dm')),
	name       TEXT    NOT NULL DEFAULT '',
	subject    TEXT    NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE xmpp_dms (
	local_jid  TEXT NOT NULL,
	peer_uri   TEXT NOT NULL,
	room_uri   TEXT NOT NULL UNIQUE REFERENCES xmpp_rooms (room_uri) ON DELETE CASCADE,
	PRIMARY KEY (local_jid, peer_uri)
) WITHOUT ROWID;

CREATE TABLE xmpp_members (
	room_uri   TEXT    NOT NULL REFERENCES xmpp_rooms (room_uri) ON DELETE CASCADE,
	user_uri   TEXT    NOT NULL,
	nick       TEXT    NOT NULL,
	joined_at  INTEGER NOT NULL,
	PRIMARY KEY (room_uri, user_uri),
	UNIQUE (room_uri, nick)
) WITHOUT ROWID;

CREATE TABLE xmpp_occupants (
	room_uri   TEXT    NOT NULL REFERENCES xmpp_rooms (room_uri) ON DELETE CASCADE,
	full_jid   TEXT    NOT NULL,
	bare_jid   TEXT    NOT NULL,
	nick       TEXT    NOT NULL,
	joined_at  INTEGER NOT NULL,
	PRIMARY KEY (room_uri, full_jid)
) WITHOUT ROWID;

CREATE INDEX xmpp_occupants_nick ON xmpp_occupants (room_uri, nick);

CREATE TABLE xmpp_history (
	seq        INTEGER PRIMARY KEY AUTOINCREMENT,
	room_uri   TEXT    NOT NULL REFERENCES xmpp_rooms (room_uri) ON DELETE CASCADE,
	stanza_id  TEXT    NOT NULL,
	nick       TEXT    NOT NULL,
	payload    TEXT    NOT NULL,
	sent_at    INTEGER NOT NULL
);

CREATE INDEX xmpp_history_room ON xmpp_history (room_uri, seq);
CREATE INDEX xmpp_history_stanza ON xmpp_history (room_uri, stanza_id);

CREATE TABLE xmpp_opaque (
	local      TEXT    NOT NULL PRIMARY KEY,
	uri        TEXT    NOT NULL UNIQUE,
	created_at INTEGER NOT NULL
) WITHOUT ROWID;
