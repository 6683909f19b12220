-- provider 0001: legacy users' MLS clients, KeyPackage pools, rooms, participants (room policy),
-- the local fanout inbox and the message-ID mapping. Timestamps are Unix milliseconds.
CREATE TABLE provider_users (
	user_uri    TEXT    PRIMARY KEY,
	network     TEXT    NOT NULL,
	suite       INTEGER NOT NULL,
	sig_private BLOB    NOT NULL,
	sig_public  BLOB    NOT NULL,
	created_at  INTEGER NOT NULL
);
CREATE TABLE provider_keypackages (
	ref          TEXT    PRIMARY KEY,
	user_uri     TEXT    NOT NULL,
	key_package  BLOB    NOT NULL,
	init_private BLOB    NOT NULL,
	enc_private  BLOB    NOT NULL,
	last_resort  INTEGER NOT NULL,
	expires_at   INTEGER NOT NULL,
	claimed_at   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX provider_keypackages_user ON provider_keypackages (user_uri, claimed_at, last_resort);
CREATE TABLE provider_rooms (
	room       TEXT    PRIMARY KEY,
	hub        TEXT    NOT NULL,
	epoch      INTEGER NOT NULL,
	created_at INTEGER NOT NULL
);
CREATE TABLE provider_participants (
	room     TEXT    NOT NULL,
	user_uri TEXT    NOT NULL,
	role     INTEGER NOT NULL,
	PRIMARY KEY (room, user_uri)
);
CREATE TABLE provider_clients (
	room     TEXT    NOT NULL,
	user_uri TEXT    NOT NULL,
	epoch    INTEGER NOT NULL,
	version  INTEGER NOT NULL,
	state    BLOB    NOT NULL,
	PRIMARY KEY (room, user_uri)
);
CREATE TABLE provider_inbox (
	id        INTEGER PRIMARY KEY AUTOINCREMENT,
	room      TEXT    NOT NULL,
	sender    TEXT    NOT NULL DEFAULT '',
	accepted  INTEGER NOT NULL,
	message   BLOB    NOT NULL,
	tree      BLOB
);
CREATE TABLE provider_msgmap (
	event_id   TEXT    PRIMARY KEY,
	room       TEXT    NOT NULL,
	message_id BLOB,
	message    BLOB,
	submitted  INTEGER NOT NULL DEFAULT 0,
	created_at INTEGER NOT NULL
);
