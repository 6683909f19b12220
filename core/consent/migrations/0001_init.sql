-- consent 0001: who may reach our users from outside the organisation. consent_reachability holds
-- a user's own setting (no row: the organisation's default from the configuration); consent_grants
-- the requesters a user has accepted. Timestamps are Unix milliseconds.
CREATE TABLE consent_reachability (
	user_uri   TEXT    PRIMARY KEY,
	setting    TEXT    NOT NULL,
-- dialect: sqlite
	updated_at INTEGER NOT NULL
-- dialect: postgres
	updated_at BIGINT  NOT NULL
-- dialect: end
);
CREATE TABLE consent_grants (
	target     TEXT    NOT NULL,
	requester  TEXT    NOT NULL,
-- dialect: sqlite
	granted_at INTEGER NOT NULL,
-- dialect: postgres
	granted_at BIGINT  NOT NULL,
-- dialect: end
	PRIMARY KEY (target, requester)
);
