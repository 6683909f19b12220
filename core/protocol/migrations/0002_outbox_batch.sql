-- protocol 0002: batched /notify delivery. A queue's head row fixes the batch it is sent with:
-- batch_last is the id of the batch's last row (0: not fixed yet). Once fixed, every retry of
-- the head sends exactly the same rows, so the follower's per-body deduplication recognises a
-- replay of a batch whose answer was lost.
ALTER TABLE protocol_outbox ADD COLUMN batch_last {{bigint}} NOT NULL DEFAULT 0;
-- Rows queued before this migration may have been sent alone already (answer lost): they stay
-- batches of one, so that their retries stay byte-identical too.
UPDATE protocol_outbox SET batch_last = id;
