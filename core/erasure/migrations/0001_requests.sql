-- erasure 0001: requests to erase a local user's data (right to erasure). user_uri is set while
-- the request is pending and cleared when it is done, so that a finished request no longer names
-- the user; result then says what was removed. Timestamps are Unix milliseconds.
CREATE TABLE erasure_requests (
	id           TEXT    NOT NULL PRIMARY KEY,
	user_uri     TEXT    NOT NULL,
	state        TEXT    NOT NULL CHECK (state IN ('pending', 'leaving', 'done', 'failed')),
	result       TEXT    NOT NULL DEFAULT '',
-- dialect: sqlite
	requested_at INTEGER NOT NULL,
	updated_at   INTEGER NOT NULL
-- dialect: postgres
	requested_at BIGINT  NOT NULL,
	updated_at   BIGINT  NOT NULL
-- dialect: end
);
