-- lease 0001: leases of once-per-provider work (core/lease). One row per lease name: the holder
-- (a replica's identity), its advertised address, the fencing token (grows by one with every
-- change of holder) and the expiry in Unix milliseconds of the database's clock.
CREATE TABLE ha_leases (
	name        TEXT    PRIMARY KEY,
	holder      TEXT    NOT NULL,
	address     TEXT    NOT NULL DEFAULT '',
-- dialect: sqlite
	token       INTEGER NOT NULL,
	expires_at  INTEGER NOT NULL,
	acquired_at INTEGER NOT NULL
-- dialect: postgres
	token       BIGINT  NOT NULL,
	expires_at  BIGINT  NOT NULL,
	acquired_at BIGINT  NOT NULL
-- dialect: end
);
