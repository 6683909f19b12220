-- provider 0001: legacy users' MLS clients, KeyPackage pools, rooms, participants (room policy),
-- the local fanout inbox and the message-ID mapping. Timestamps are Unix milliseconds.
CREATE TABLE provider_users (
	user_uri    TEXT    PRIMARY KEY,
	network     TEXT    NOT NULL,
	suite       BIGINT NOT NULL,
	sig_private BYTEA    NOT NULL,
	sig_public  BYTEA    NOT NULL,
	created_at  BIGINT NOT NULL
);
CREATE TABLE provider_keypackages (
	ref          TEXT    PRIMARY KEY,
	user_uri     TEXT    NOT NULL,
	key_package  BYTEA    NOT NULL,
	init_private BYTEA    NOT NULL,
	enc_private  BYTEA    NOT NULL,
	last_resort  BIGINT NOT NULL,
	expires_at   BIGINT NOT NULL,
	claimed_at   BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX provider_keypackages_user ON provider_keypackages (user_uri, claimed_at, last_resort);
CREATE TABLE provider_rooms (
	room       TEXT    PRIMARY KEY,
	hub        TEXT    NOT NULL,
	epoch      BIGINT NOT NULL,
	created_at BIGINT NOT NULL
);
CREATE TABLE provider_participants (
	room     TEXT    NOT NULL,
	user_uri TEXT    NOT NULL,
	role     BIGINT NOT NULL,
	PRIMARY KEY (room, user_uri)
);
CREATE TABLE provider_clients (
	room     TEXT    NOT NULL,
	user_uri TEXT    NOT NULL,
	epoch    BIGINT NOT NULL,
	version  BIGINT NOT NULL,
	state    BYTEA    NOT NULL,
	PRIMARY KEY (room, user_uri)
);
CREATE TABLE provider_inbox (
	id        BIGSERIAL PRIMARY KEY,
	room      TEXT    NOT NULL,
	sender    TEXT    NOT NULL DEFAULT '',
	accepted  BIGINT NOT NULL,
	message   BYTEA    NOT NULL,
	tree      BYTEA
);
CREATE TABLE provider_msgmap (
	event_id   TEXT    PRIMARY KEY,
	room       TEXT    NOT NULL,
	message_id BYTEA,
	message    BYTEA,
	submitted  BIGINT NOT NULL DEFAULT 0,
	created_at BIGINT NOT NULL
);
