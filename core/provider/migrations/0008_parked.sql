-- provider 0008: mimi.out envelopes parked while the partner they need does not answer (the room's
-- hub for a message or change in a room a partner hosts, the invitee's provider for an invite),
-- with every later envelope of the same room behind them, in order. The bus has acknowledged
-- them; the provider delivers them when the partner answers again. envelope is sealed, bound to
-- event_id. claimed_until is a lease so that one replica works on a room at a time.
CREATE TABLE provider_parked (
	id            {{autoid}},
	room          TEXT    NOT NULL,
	partner       TEXT    NOT NULL,
	event_id      TEXT    NOT NULL UNIQUE,
-- dialect: sqlite
	envelope      BLOB    NOT NULL,
	created_at    INTEGER NOT NULL,
	claimed_until INTEGER NOT NULL DEFAULT 0
-- dialect: postgres
	envelope      BYTEA   NOT NULL,
	created_at    BIGINT  NOT NULL,
	claimed_until BIGINT  NOT NULL DEFAULT 0
-- dialect: end
);
CREATE INDEX provider_parked_room ON provider_parked (room, id);
