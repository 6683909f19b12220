-- provider 0006: credential authority.
-- provider_leaf_keys: the leaf signature keys we create besides a user's own key (an external
-- rejoin takes a fresh one, since MLS forbids two leaves with one key), so that we can tell our
-- users' genuine leaves from forged ones.
-- provider_credential_alerts: leaves claiming one of our users with a signature key we did not
-- create, seen in a partner hub's fanout and refused (the commit or Welcome was not applied).
-- Kept for the admin (newest first: ORDER BY id DESC); seen_at is Unix ms, signature_key the
-- forged key.
CREATE TABLE provider_credential_alerts (
	id            {{autoid}},
	room          TEXT    NOT NULL,
	hub           TEXT    NOT NULL,
	user_uri      TEXT    NOT NULL,
	reason        TEXT    NOT NULL,
-- dialect: sqlite
	signature_key BLOB    NOT NULL,
	seen_at       INTEGER NOT NULL
-- dialect: postgres
	signature_key BYTEA   NOT NULL,
	seen_at       BIGINT  NOT NULL
-- dialect: end
);
CREATE TABLE provider_leaf_keys (
-- dialect: sqlite
	signature_key BLOB    PRIMARY KEY,
-- dialect: postgres
	signature_key BYTEA   PRIMARY KEY,
-- dialect: end
	user_uri      TEXT    NOT NULL,
-- dialect: sqlite
	created_at    INTEGER NOT NULL
-- dialect: postgres
	created_at    BIGINT  NOT NULL
-- dialect: end
);
