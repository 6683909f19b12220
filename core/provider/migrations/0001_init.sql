-- provider 0001: legacy users' MLS clients, KeyPackage pools, rooms, participants (room policy),
-- the local fanout inbox and the message-ID mapping. Timestamps are Unix milliseconds.
CREATE TABLE provider_users (
	user_uri    TEXT    PRIMARY KEY,
	network     TEXT    NOT NULL,
	suite       {{bigint}} NOT NULL,
	sig_private {{blob}}    NOT NULL,
	sig_public  {{blob}}    NOT NULL,
	created_at  {{bigint}} NOT NULL
);
CREATE TABLE provider_keypackages (
	ref          TEXT    PRIMARY KEY,
	user_uri     TEXT    NOT NULL,
	key_package  {{blob}}    NOT NULL,
	init_private {{blob}}    NOT NULL,
	enc_private  {{blob}}    NOT NULL,
	last_resort  {{bigint}} NOT NULL,
	expires_at   {{bigint}} NOT NULL,
	claimed_at   {{bigint}} NOT NULL DEFAULT 0
);
CREATE INDEX provider_keypackages_user ON provider_keypackages (user_uri, claimed_at, last_resort);
CREATE TABLE provider_rooms (
	room       TEXT    PRIMARY KEY,
	hub        TEXT    NOT NULL,
	epoch      {{bigint}} NOT NULL,
	created_at {{bigint}} NOT NULL
);
CREATE TABLE provider_participants (
	room     TEXT    NOT NULL,
	user_uri TEXT    NOT NULL,
	role     {{bigint}} NOT NULL,
	PRIMARY KEY (room, user_uri)
);
CREATE TABLE provider_clients (
	room     TEXT    NOT NULL,
	user_uri TEXT    NOT NULL,
	epoch    {{bigint}} NOT NULL,
	version  {{bigint}} NOT NULL,
	state    {{blob}}    NOT NULL,
	PRIMARY KEY (room, user_uri)
);
CREATE TABLE provider_inbox (
	id        {{autoid}},
	room      TEXT    NOT NULL,
	sender    TEXT    NOT NULL DEFAULT '',
	accepted  {{bigint}} NOT NULL,
	message   {{blob}}    NOT NULL,
	tree      {{blob}}
);
CREATE TABLE provider_msgmap (
	event_id   TEXT    PRIMARY KEY,
	room       TEXT    NOT NULL,
	message_id {{blob}},
	message    {{blob}},
	submitted  {{bigint}} NOT NULL DEFAULT 0,
	created_at {{bigint}} NOT NULL
);
