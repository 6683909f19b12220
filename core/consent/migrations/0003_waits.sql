-- consent 0003: invites of our users that wait for a partner's user to accept them. An invite
-- that a partner answered noConsent is kept here (the membership envelope as published by the
-- adapter) while a requestConsent is out; a grant (updateConsent) publishes it again, a revoke
-- drops it. Timestamps are Unix milliseconds.
CREATE TABLE consent_waits (
	requester  TEXT    NOT NULL,
	target     TEXT    NOT NULL,
	event_id   TEXT    NOT NULL,
	envelope   {{blob}}   NOT NULL,
	created_at {{bigint}}  NOT NULL,
	PRIMARY KEY (requester, target, event_id)
);
