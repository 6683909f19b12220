-- xmpp 0003: history payloads are sealed (core/store SealedColumn xmpp_history.payload, bound to
-- dialect: sqlite
-- room and stanza ID); the store seals the existing rows after this migration. SQLite keeps the
-- column's declared type: a sealed value is stored as a BLOB whatever the affinity.
SELECT 1;
-- dialect: postgres
-- room and stanza ID); the store seals the existing rows after this migration, which makes the
-- column binary.
ALTER TABLE xmpp_history ALTER COLUMN payload TYPE BYTEA USING convert_to(payload, 'UTF8');
-- dialect: end
