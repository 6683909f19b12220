-- matrix 0003: parked encrypted events are sealed (core/store SealedColumn matrix_pending.raw,
-- dialect: sqlite
-- bound to the event ID); the store seals the existing rows after this migration. SQLite keeps
-- the column's declared type: a sealed value is stored as a BLOB whatever the affinity.
SELECT 1;
-- dialect: postgres
-- bound to the event ID); the store seals the existing rows after this migration, which makes
-- the column binary.
ALTER TABLE matrix_pending ALTER COLUMN raw TYPE BYTEA USING convert_to(raw, 'UTF8');
-- dialect: end
