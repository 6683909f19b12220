-- abuse 0002: what a report needs, kept for messages local users received. abuse_franks holds the
-- hub's frank of a fanned-out application message (by room and the SHA-256 of the MLSMessage)
-- until it is read; abuse_evidence the decrypted MIMI content (sealed) with its frank and the
-- hub's accepted timestamp, by room and MIMI message ID (hex). Both are pruned after a week.
-- Timestamps are Unix milliseconds.
CREATE TABLE abuse_franks (
	room        TEXT    NOT NULL,
	msg_hash    TEXT    NOT NULL,
	frank       {{blob}}   NOT NULL,
	accepted_at {{bigint}}  NOT NULL,
	created_at  {{bigint}}  NOT NULL,
	PRIMARY KEY (room, msg_hash)
);
CREATE TABLE abuse_evidence (
	room        TEXT    NOT NULL,
	message_id  TEXT    NOT NULL,
	sender      TEXT    NOT NULL,
	accepted_at {{bigint}}  NOT NULL,
	frank       {{blob}}   NOT NULL,
	content     {{blob}}   NOT NULL,
	created_at  {{bigint}}  NOT NULL,
	PRIMARY KEY (room, message_id)
);
CREATE INDEX abuse_franks_created ON abuse_franks (created_at);
CREATE INDEX abuse_evidence_created ON abuse_evidence (created_at);
