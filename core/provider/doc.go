// Package provider is the gateway's MIMI provider (draft-ietf-mimi-protocol-06): it holds an MLS
// client for each local legacy user in each room, serves their KeyPackages through /keyMaterial,
// hosts rooms of our domain as hub and follows partners' rooms, and connects both to the bus.
//
//	p, err := provider.New(ctx, provider.Config{Domain: "a.example", Store: st, Bus: b})
//	srv, err := protocol.NewServer(protocol.ServerConfig{..., Handler: p, Store: st})
//	err = p.Start(ctx, client) // outbox, inbox worker, mimi.out consumer
//	defer p.Close(ctx)
//
// # Flows
//
//   - mimi.out KindMembership invite of a remote user in a room of our domain that does not
//     exist yet: the room is created with the sender as owner, the target's KeyPackage is
//     claimed at its provider, the sender's client commits the Add (with a path), and the hub
//     sequences it. Kick and ban commit Removes; leave has the leaver's client propose
//     SelfRemove, which the designated committer commits (proposals.go); a role change
//     (MembershipRole) changes the participant list only. Each of these commits carries the
//     matching participant_list AppDataUpdate (core/room; a committed SelfRemove that takes a
//     user's last client removes the user from the list). The participant-list changes of every
//     applied commit are published on mimi.in as KindMembership (members.go; invite/join, leave,
//     kick, ban, role), except to the network of the local user who made them.
//   - mimi.out KindRoomMetadata: the sender's client commits a room_metadata AppDataUpdate
//     (name → room_name, topic → room_subject); a metadata change in an applied commit is
//     published on mimi.in as KindRoomMetadata.
//   - KeyPackage claims go through the hub (relay.go): a follower claims a third provider's
//     user's KeyPackage at the room's hub, which relays it and records KeyPackageRef → provider;
//     the hub sends a Welcome only to the providers recorded for its refs.
//   - mimi.out content kinds: encrypted from the sender's leaf; the ciphertext is stored with the
//     new MLS state before it is submitted (locally or /submitMessage), so a retry resubmits the
//     same bytes and the hub dedupes them.
//   - Hub: one commit per epoch (wrongEpoch for the rest); the room state (participant list,
//     roles, metadata) is the GroupContext's, and room.Authorize checks every commit against it
//     (provider_participants is an index rewritten from the accepted state); policy is checked
//     on every proposal, commit and message (messages need an active participant with
//     canSendMessage); accepted proposals are pending until a commit of their epoch includes
//     them (every member commit must); accepted handshakes and messages are queued to followers
//     (protocol.Outbox) and to our own clients (the inbox) in the accepting transaction.
//   - The hub reads followers' commits and proposals, and takes the room state for messages, from
//     the room's public view (core/mls PublicGroup, publicview.go, docs/interop.md P20), advanced
//     in the transaction that accepts each commit; it needs no client of its own in the room, and
//     serves /groupInfo from the committer-signed GroupInfo stored with the view when it has none.
//   - Pending proposals are committed by the designated committer (the hub's client if one can,
//     else the follower with the lowest eligible leaf); after an external commit the hub re-issues
//     them as its own external proposals (it is in every room's external_senders).
//   - Inbox (fanout from /notify or our own hub), applied in order by one worker: commits
//     advance every local client still in that epoch; Welcomes for our KeyPackages create
//     clients and publish a KindPortalRequest on mimi.in; application messages are decrypted
//     once per room and published on mimi.in.<network> for the local users' networks other
//     than a local sender's own.
//
// # Concurrency
//
// Everything for one room runs under the room's mutex (lock order: room mutex, then a store
// transaction). Client state is written with compare-and-set on (version, epoch): ErrConflict
// when another writer moved it, and never to an older epoch.
package provider
