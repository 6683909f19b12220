-- provider 0002: handshake proposals per room and epoch (protocol-06 §4.7, §4.8). At the hub these
-- are the proposals it accepted with their accepted time: the pending set of an epoch is its rows
-- with the room's epoch, which the next commit must include. At a follower the rows mirror the
-- hub's fanout, so that the provider can tell who commits them. target is the user the proposal
-- adds or removes (the proposer for SelfRemove and Update).
CREATE TABLE provider_proposals (
	id       {{autoid}},
	room     TEXT    NOT NULL,
-- dialect: sqlite
	epoch    INTEGER NOT NULL,
-- dialect: postgres
	epoch    BIGINT  NOT NULL,
-- dialect: end
	hash     TEXT    NOT NULL,
-- dialect: sqlite
	ref      BLOB    NOT NULL,
	message  BLOB    NOT NULL,
	accepted INTEGER NOT NULL,
-- dialect: postgres
	ref      BYTEA   NOT NULL,
	message  BYTEA   NOT NULL,
	accepted BIGINT  NOT NULL,
-- dialect: end
	target   TEXT    NOT NULL DEFAULT '',
	UNIQUE (room, hash)
);
CREATE INDEX provider_proposals_epoch ON provider_proposals (room, epoch, id);
