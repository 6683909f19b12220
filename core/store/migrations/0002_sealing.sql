-- core 0002: encryption of secrets and content at rest. store_keys lists the data-encryption keys
-- values were sealed with (key_id: eight hex digits derived from the key; check_value: a known text
-- sealed with the key, to recognise a wrong key with a colliding ID; retired: no value uses it any
-- more). store_sealed_columns lists every sealed column with the columns that locate a row and
-- those its values are bound to, so that key rotation can walk all of them.
CREATE TABLE store_keys (
	key_id      TEXT    NOT NULL PRIMARY KEY,
-- dialect: sqlite
	check_value BLOB    NOT NULL,
-- dialect: postgres
	check_value BYTEA   NOT NULL,
-- dialect: end
	retired     INTEGER NOT NULL DEFAULT 0,
-- dialect: sqlite
	created_at  INTEGER NOT NULL
-- dialect: postgres
	created_at  BIGINT  NOT NULL
-- dialect: end
);

CREATE TABLE store_sealed_columns (
	table_name   TEXT    NOT NULL,
	column_name  TEXT    NOT NULL,
	component    TEXT    NOT NULL,
	key_columns  TEXT    NOT NULL,
	bind_columns TEXT    NOT NULL,
-- dialect: sqlite
	sealed_at    INTEGER NOT NULL,
-- dialect: postgres
	sealed_at    BIGINT  NOT NULL,
-- dialect: end
	PRIMARY KEY (table_name, column_name)
);
