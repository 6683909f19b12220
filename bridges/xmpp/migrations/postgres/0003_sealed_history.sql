-- xmpp 0003: history payloads are sealed (core/store SealedColumn xmpp_history.payload, bound to
-- room and stanza ID); the store seals the existing rows after this migration, which makes the
-- column binary.
ALTER TABLE xmpp_history ALTER COLUMN payload TYPE BYTEA USING convert_to(payload, 'UTF8');
