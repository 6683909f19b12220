-- matrix 0002: the last m.room.power_levels content the adapter saw (or set) in each portal, the
-- base its role changes are computed against.
CREATE TABLE matrix_power_levels (
	mx_room  TEXT NOT NULL PRIMARY KEY,
	content  TEXT NOT NULL
);
