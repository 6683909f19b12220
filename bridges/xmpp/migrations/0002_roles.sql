-- xmpp 0002: MIMI room roles of participants, shown as MUC affiliations (absent: member).
CREATE TABLE xmpp_roles (
	room_uri   TEXT    NOT NULL REFERENCES xmpp_rooms (room_uri) ON DELETE CASCADE,
	user_uri   TEXT    NOT NULL,
	role       INTEGER NOT NULL,
	PRIMARY KEY (room_uri, user_uri)
);
