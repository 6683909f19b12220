-- consent 0001: who may reach our users from outside the organisation. consent_reachability holds
-- a user's own setting (no row: the organisation's default from the configuration); consent_grants
-- the requesters a user has accepted. Timestamps are Unix milliseconds.
CREATE TABLE consent_reachability (
	user_uri   TEXT    PRIMARY KEY,
	setting    TEXT    NOT NULL,
	updated_at BIGINT  NOT NULL
);
CREATE TABLE consent_grants (
	target     TEXT    NOT NULL,
	requester  TEXT    NOT NULL,
	granted_at BIGINT  NOT NULL,
	PRIMARY KEY (target, requester)
);
