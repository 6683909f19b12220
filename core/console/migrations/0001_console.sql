-- console 0001: the admin console's accounts, sessions and audit log. Timestamps are Unix
-- milliseconds.
-- Local (break-glass) accounts: name, argon2id hash in PHC string form, role.
CREATE TABLE console_accounts (
	name       TEXT    PRIMARY KEY,
	hash       TEXT    NOT NULL,
	role       TEXT    NOT NULL,
	updated_at {{bigint}} NOT NULL
);
-- Sessions: id_hash is the SHA-256 of the cookie value (the cookie itself is never stored).
CREATE TABLE console_sessions (
	id_hash    TEXT    PRIMARY KEY,
	subject    TEXT    NOT NULL,
	method     TEXT    NOT NULL,
	role       TEXT    NOT NULL,
	csrf       TEXT    NOT NULL,
	created_at {{bigint}} NOT NULL,
	last_seen  {{bigint}} NOT NULL
);
CREATE INDEX console_sessions_last_seen ON console_sessions (last_seen);
-- Audit log: who did what, when; before and after for configuration changes (secrets redacted).
CREATE TABLE console_audit (
	id      {{autoid}},
	at      {{bigint}} NOT NULL,
	actor   TEXT    NOT NULL,
	action  TEXT    NOT NULL,
	target  TEXT    NOT NULL DEFAULT '',
	outcome TEXT    NOT NULL DEFAULT '',
	before  TEXT    NOT NULL DEFAULT '',
	after   TEXT    NOT NULL DEFAULT ''
);
