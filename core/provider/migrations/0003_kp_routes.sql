-- provider 0003: where the KeyPackages claimed through this hub came from (protocol-06 §5.2: "the
-- hub maps KeyPackageRef → target provider, for Welcome routing"). A row is written before the
-- hub answers a /keyMaterial it relayed (or a claim it made for its own user's commit) and is
-- deleted when the Welcome naming ref has been routed, or after expires_at (the KeyPackage's
-- not_after, Unix ms). A last-resort KeyPackage can be claimed for several rooms: one row each.
CREATE TABLE provider_kp_routes (
	ref        TEXT    NOT NULL,
	room       TEXT    NOT NULL,
	provider   TEXT    NOT NULL,
-- dialect: sqlite
	expires_at INTEGER NOT NULL,
-- dialect: postgres
	expires_at BIGINT  NOT NULL,
-- dialect: end
	PRIMARY KEY (ref, room)
);
CREATE INDEX provider_kp_routes_expires ON provider_kp_routes (expires_at);
