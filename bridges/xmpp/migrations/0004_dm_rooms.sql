-- xmpp 0004: a local user and a partner's user share one chat however many 1:1 rooms they have.
-- xmpp_dm_rooms names the pair of every 1:1 room (so each room's messages show in that chat);
-- xmpp_dms keeps the pair's current room, the one the local user's messages go to.
CREATE TABLE xmpp_dm_rooms (
	room_uri   TEXT NOT NULL PRIMARY KEY REFERENCES xmpp_rooms (room_uri) ON DELETE CASCADE,
	local_jid  TEXT NOT NULL,
	peer_uri   TEXT NOT NULL
){{without_rowid}};

CREATE INDEX xmpp_dm_rooms_pair ON xmpp_dm_rooms (local_jid, peer_uri);

INSERT INTO xmpp_dm_rooms (room_uri, local_jid, peer_uri) SELECT room_uri, local_jid, peer_uri FROM xmpp_dms;
