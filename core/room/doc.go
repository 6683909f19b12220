// Package room is a MIMI room's state as carried in its MLS group: the participant list
// (draft-ietf-mimi-protocol-06 §7.5, component participant_list), the room metadata (component
// room_metadata) and the role definitions of draft-ietf-mimi-room-policy-03 (component
// roles_list), all stored in the GroupContext's app_data_dictionary and changed only by
// AppDataUpdate proposals in a commit.
//
// The package has four parts:
//
//   - typed structs with TLS-PL codecs whose decoders validate (ParticipantList,
//     ParticipantListUpdate, Metadata, Roles);
//   - Apply, the one order in which a ParticipantListUpdate changes a list (docs/interop.md P6);
//   - Updater, the mls.AppDataUpdater that folds one commit's updates per component, so that
//     every member computes the same GroupContext;
//   - Authorize, the room-policy check of one handshake (room-policy-03 §5.4, §5.5) that a hub
//     and every member run against the state before the commit.
//
// Component IDs, capability values and the default role set are kept in components.go and
// roles_default.go; the readings of open draft points are listed in docs/interop.md.
package room
