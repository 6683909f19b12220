package room

import (
	"errors"
	"fmt"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/mls"
)

// Component IDs of the room state (protocol-06 §7.5 and room-policy-03 §6: suggested values,
// not yet assigned by IANA). Every code point of a MIMI component used by the gateway is here.
const (
	// ComponentParticipantList is participant_list: ParticipantListData, updated by
	// ParticipantListUpdate deltas.
	ComponentParticipantList mls.ComponentID = 0x0022
	// ComponentRoomMetadata is room_metadata: RoomMetaData, replaced by each update.
	ComponentRoomMetadata mls.ComponentID = 0x0023
	// ComponentRolesList is roles_list: RoleData, replaced by each update.
	ComponentRolesList mls.ComponentID = 0x0025
)

// Errors. Every error of this package wraps one of them.
var (
	// ErrInvalid is malformed or inconsistent room state or an update that cannot apply.
	ErrInvalid = errors.New("room: invalid room state")
	// ErrNotAllowed is a change the room policy does not authorize.
	ErrNotAllowed = errors.New("room: not allowed by the room policy")
	// ErrFixedMembership is a change that adds a user to a room with fixed membership (a 1:1),
	// or lifts its fixed membership; it wraps ErrNotAllowed.
	ErrFixedMembership = fmt.Errorf("%w: the room has fixed membership", ErrNotAllowed)
)

// Limits on decoded input.
const (
	// MaxParticipants bounds a participant list and the entries of one update.
	MaxParticipants = 10000
	// MaxURI bounds a user, room or avatar URI in bytes.
	MaxURI = 1024
	// MaxRoles bounds a role list.
	MaxRoles = 256
	// MaxCapabilities bounds the capabilities of one role.
	MaxCapabilities = 512
	// MaxText bounds a role name or description, a room name, subject or mood in bytes.
	MaxText = 4096
	// MaxDescriptions bounds the rich descriptions of a room.
	MaxDescriptions = 16
	// MaxDescription bounds one rich description's content in bytes.
	MaxDescription = 64 << 10
	// MaxToken bounds a media type or language tag in bytes.
	MaxToken = 255
)

// Capability is a room-policy-03 role capability (IANA "MIMI Role Capabilities", uint16).
type Capability uint16

// Capabilities of room-policy-03 §7 (the ones marked reserved in the draft are left out).
const (
	CanAddParticipant      Capability = 0x0000
	CanRemoveParticipant   Capability = 0x0001
	CanAddOwnClient        Capability = 0x0002
	CanRemoveOwnClient     Capability = 0x0003
	CanOpenJoin            Capability = 0x0004
	CanJoinIfPreauthorized Capability = 0x0005
	CanRemoveSelf          Capability = 0x0006
	CanUseJoinCode         Capability = 0x0009
	CanBan                 Capability = 0x000a
	CanUnBan               Capability = 0x000b
	CanKick                Capability = 0x000c
	CanChangeUserRole      Capability = 0x000f
	CanChangeOwnRole       Capability = 0x0010

	CanSendMessage         Capability = 0x0100
	CanReceiveMessage      Capability = 0x0101
	CanCopyMessage         Capability = 0x0102
	CanReportAbuse         Capability = 0x0103
	CanReplyToMessage      Capability = 0x0104
	CanReactToMessage      Capability = 0x0105
	CanEditReaction        Capability = 0x0106
	CanDeleteOwnReaction   Capability = 0x0107
	CanDeleteOtherReaction Capability = 0x0108
	CanEditOwnMessage      Capability = 0x0109
	CanDeleteOwnMessage    Capability = 0x010a
	CanDeleteOtherMessage  Capability = 0x010b
	CanStartTopic          Capability = 0x010c
	CanReplyInTopic        Capability = 0x010d
	CanEditOwnTopic        Capability = 0x010e
	CanEditOtherTopic      Capability = 0x010f

	CanUploadImage        Capability = 0x0200
	CanUploadAudio        Capability = 0x0201
	CanUploadVideo        Capability = 0x0202
	CanUploadAttachment   Capability = 0x0203
	CanDownloadImage      Capability = 0x0204
	CanDownloadAudio      Capability = 0x0205
	CanDownloadVideo      Capability = 0x0206
	CanDownloadAttachment Capability = 0x0207
	CanSendLink           Capability = 0x0208
	CanSendLinkPreview    Capability = 0x0209
	CanFollowLink         Capability = 0x020a
	CanCopyLink           Capability = 0x020b

	CanChangeRoomName        Capability = 0x0300
	CanChangeRoomDescription Capability = 0x0301
	CanChangeRoomAvatar      Capability = 0x0302
	CanChangeRoomSubject     Capability = 0x0303
	CanChangeRoomMood        Capability = 0x0304

	CanDestroyRoom                 Capability = 0x0501
	CanChangeRoomMembershipStyle   Capability = 0x0502
	CanChangeRoleDefinitions       Capability = 0x0503
	CanChangePreauthorizedUserList Capability = 0x0504

	CanSendMLSReinitProposal Capability = 0x0601
)

// RoleIndex is a role_index of room-policy-03 §4.1 (the envelope's event.Role).
type RoleIndex = event.Role

// Role indexes with a meaning in the draft, and those of our default role set (DefaultRoles).
const (
	// RoleNone (0) is "not in the participant list"; its capabilities are what outsiders can do.
	RoleNone = event.RoleNone
	// RoleBanned (1, named "banned") is the ban role of canBan and canUnBan.
	RoleBanned = event.RoleBanned
	// RoleRegular, RoleAdmin and RoleOwner are the default role set's participants.
	RoleRegular = event.RoleRegular
	RoleAdmin   = event.RoleAdmin
	RoleOwner   = event.RoleOwner
)

// BannedRoleName is the role_name role 1 must have to be the ban role.
const BannedRoleName = "banned"
