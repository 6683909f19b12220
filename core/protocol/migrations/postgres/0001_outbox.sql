-- protocol 0001: the durable /notify outbox of the hub side. Timestamps are Unix milliseconds.
-- One row is one /notify body for one follower and room; rows of one (follower, room) are sent
-- in id order.
CREATE TABLE protocol_outbox (
	id              BIGSERIAL PRIMARY KEY,
	follower        TEXT    NOT NULL,
	room            TEXT    NOT NULL,
	body            BYTEA   NOT NULL,
	created_at      BIGINT  NOT NULL,
	attempts        INTEGER NOT NULL DEFAULT 0,
	next_attempt_at BIGINT  NOT NULL,
	last_status     INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX protocol_outbox_queue ON protocol_outbox (follower, room, id);
