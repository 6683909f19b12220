-- provider 0005: a client's MLS state in two parts, so that a message writes a few hundred bytes
-- instead of the whole group: the epoch state (core/mls MarshalEpochState: everything but the
-- secret tree, rewritten only by handshake messages and new epochs) in provider_client_epochs,
-- and the secret tree (MarshalSecretTree: the ratchets in use) in provider_clients.state, which
-- every message sent or read rewrites together with the version (the compare-and-set). A row with
-- split = 0 was written before and holds the whole state; it is split when next saved.
ALTER TABLE provider_clients ADD COLUMN split {{bigint}} NOT NULL DEFAULT 0;
CREATE TABLE provider_client_epochs (
	room     TEXT    NOT NULL,
	user_uri TEXT    NOT NULL,
	epoch    {{bigint}}  NOT NULL,
	state    {{blob}}    NOT NULL,
	PRIMARY KEY (room, user_uri)
);
