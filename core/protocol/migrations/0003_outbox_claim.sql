-- protocol 0003: which rows a process is sending. claimed_at is when the head row of a batch was
-- claimed for a /notify (Unix ms; 0: not being sent). Only one process runs the outbox of a store
-- (the gateway, or the replica that holds the lease), so a claim found when an outbox starts was
-- left by a process that was killed while sending: the row is due again at once instead of when
-- the claim's lease (next_attempt_at) runs out.
ALTER TABLE protocol_outbox ADD COLUMN claimed_at {{bigint}} NOT NULL DEFAULT 0;
