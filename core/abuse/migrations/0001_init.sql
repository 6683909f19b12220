-- abuse 0001: abuse reports this provider received as the hub of a room and accepted (their
-- franks verified), for the organisation's admin. id is derived from the sending provider and
-- the report, so a report sent twice is one row. note and the reported messages' content are
-- sealed with the store key. Timestamps are Unix milliseconds.
CREATE TABLE abuse_reports (
	id          TEXT    PRIMARY KEY,
	room        TEXT    NOT NULL,
	from_domain TEXT    NOT NULL,
	reporter    TEXT    NOT NULL,
	accused     TEXT    NOT NULL,
	reason      INTEGER NOT NULL,
	note        {{blob}}   NOT NULL,
	received_at {{bigint}}  NOT NULL
);
CREATE INDEX abuse_reports_received ON abuse_reports (received_at);
CREATE TABLE abuse_messages (
	report_id   TEXT    NOT NULL,
	idx         INTEGER NOT NULL,
	sender      TEXT    NOT NULL,
	accepted_at {{bigint}}  NOT NULL,
	content     {{blob}}   NOT NULL,
	PRIMARY KEY (report_id, idx)
);
