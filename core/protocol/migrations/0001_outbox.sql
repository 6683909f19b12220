-- protocol 0001: the durable /notify outbox of the hub side. Timestamps are Unix milliseconds.
-- One row is one /notify body for one follower and room; rows of one (follower, room) are sent
-- in id order.
CREATE TABLE protocol_outbox (
	id              {{autoid}},
	follower        TEXT    NOT NULL,
	room            TEXT    NOT NULL,
-- dialect: sqlite
	body            BLOB    NOT NULL,
	created_at      INTEGER NOT NULL,
-- dialect: postgres
	body            BYTEA   NOT NULL,
	created_at      BIGINT  NOT NULL,
-- dialect: end
	attempts        INTEGER NOT NULL DEFAULT 0,
-- dialect: sqlite
	next_attempt_at INTEGER NOT NULL,
-- dialect: postgres
	next_attempt_at BIGINT  NOT NULL,
-- dialect: end
	last_status     INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX protocol_outbox_queue ON protocol_outbox (follower, room, id);
