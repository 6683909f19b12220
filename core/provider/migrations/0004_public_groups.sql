-- provider 0004: the hub's public view of each room it hosts (core/mls PublicGroup: GroupContext,
-- ratchet tree, transcript hashes, no secrets), so that it keeps sequencing a room in which it has
-- no client left (docs/interop.md P20). The row moves to the next epoch, compare-and-set on epoch,
-- in the transaction that accepts a commit. group_info is the signed GroupInfo of that epoch from
-- the accepted commit (an MLSMessage; NULL when the bundle carried none in full), served on
-- /groupInfo when no client of ours is in the room.
CREATE TABLE provider_public_groups (
	room       TEXT    PRIMARY KEY,
-- dialect: sqlite
	epoch      INTEGER NOT NULL,
	state      BLOB    NOT NULL,
-- dialect: postgres
	epoch      BIGINT  NOT NULL,
	state      BYTEA   NOT NULL,
-- dialect: end
	group_info {{blob}}
);
