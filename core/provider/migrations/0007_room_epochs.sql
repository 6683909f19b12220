-- provider 0007: the public state of a room's epoch at this provider (core/mls MarshalPublicState:
-- GroupContext, ratchet tree, transcript hashes; no secrets), stored once for all local clients in
-- that epoch instead of once per client: in a room of N members with M local users the stored
-- trees take O(N) instead of O(N·M). A client's provider_client_epochs row with shared = 1 holds
-- only its member state (MarshalMemberState: own keys and epoch secrets, bound to the epoch's
-- GroupContext); shared = 0 rows hold a whole epoch state and are converted when next saved.
-- Rows no client refers to are deleted when clients move on.
CREATE TABLE provider_room_epochs (
	room  TEXT    NOT NULL,
	epoch {{bigint}}  NOT NULL,
	state {{blob}}    NOT NULL,
	PRIMARY KEY (room, epoch)
);
ALTER TABLE provider_client_epochs ADD COLUMN shared {{bigint}} NOT NULL DEFAULT 0;
