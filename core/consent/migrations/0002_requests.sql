-- consent 0002: requests for consent and their answers, both ways (a partner's user asking one of
-- ours, one of ours asking a partner's user). A grant in force is a row of consent_grants; these
-- rows record what was asked and answered (pending, granted, denied, cancelled, revoked), and the
-- consent_records retention removes them once their last change is older than its maximum age.
-- room is '' for a request about any room. Timestamps are Unix milliseconds.
CREATE TABLE consent_requests (
	requester  TEXT    NOT NULL,
	target     TEXT    NOT NULL,
	room       TEXT    NOT NULL,
	state      TEXT    NOT NULL,
	created_at {{bigint}}  NOT NULL,
	updated_at {{bigint}}  NOT NULL,
	PRIMARY KEY (requester, target, room)
);
CREATE INDEX consent_requests_target ON consent_requests (target, state);
CREATE INDEX consent_requests_updated ON consent_requests (updated_at);
