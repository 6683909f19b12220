-- xmpp 0003: history payloads are sealed (core/store SealedColumn xmpp_history.payload, bound to
-- room and stanza ID); the store seals the existing rows after this migration. SQLite keeps the
-- column's declared type: a sealed value is stored as a BLOB whatever the affinity.
SELECT 1;
