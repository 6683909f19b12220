package room

// The default role set of rooms the gateway creates: the "cooperatively administered" example
// of room-policy-03 Appendix A reduced to the roles a minimal implementation needs (§5.5),
// without a policy_enforcer (our hub enforces as the delivery service). docs/interop.md P8.
//
//	0 no_role   nothing
//	1 banned    nothing; no clients (maximum active 0)
//	2 regular   add participants (as regular), send and receive, own clients, leave
//	3 admin     regular + remove and ban regular users and admins, unban, promote regular
//	            users to admin, demote admins, kick, all room metadata
//	4 owner     admin + act on owners, make owners, change role definitions
//
// The generic rules of Authorize decide with these capabilities and authorized_role_changes;
// nothing else in the gateway knows what "admin" means.

// clientCapabilities are the message, asset and real-time capabilities every participant holds
// (enforced by clients; the hub enforces canSendMessage).
var clientCapabilities = []Capability{
	CanSendMessage, CanReceiveMessage, CanCopyMessage, CanReportAbuse, CanReplyToMessage,
	CanReactToMessage, CanEditReaction, CanDeleteOwnReaction, CanEditOwnMessage, CanDeleteOwnMessage,
	CanStartTopic, CanReplyInTopic, CanEditOwnTopic,
	CanUploadImage, CanUploadAudio, CanUploadVideo, CanUploadAttachment,
	CanDownloadImage, CanDownloadAudio, CanDownloadVideo, CanDownloadAttachment,
	CanSendLink, CanSendLinkPreview, CanFollowLink, CanCopyLink,
}

var regularCapabilities = append([]Capability{
	CanAddParticipant, CanAddOwnClient, CanRemoveOwnClient, CanRemoveSelf,
}, clientCapabilities...)

var adminCapabilities = append([]Capability{
	CanRemoveParticipant, CanBan, CanUnBan, CanKick, CanChangeUserRole,
	CanDeleteOtherReaction, CanDeleteOtherMessage, CanEditOtherTopic,
	CanChangeRoomName, CanChangeRoomDescription, CanChangeRoomAvatar, CanChangeRoomSubject, CanChangeRoomMood,
}, regularCapabilities...)

var ownerCapabilities = append([]Capability{
	CanChangeRoleDefinitions, CanChangeRoomMembershipStyle, CanDestroyRoom,
}, adminCapabilities...)

func targets(from RoleIndex, to ...RoleIndex) RoleChangeTargets {
	return RoleChangeTargets{From: from, Targets: to}
}

func zero() *uint32 { var z uint32; return &z }

// DefaultRoles returns the role set of rooms we create (a fresh copy).
func DefaultRoles() *Roles {
	return &Roles{Roles: []RoleDef{
		{Index: RoleNone, Name: "no_role", Description: "not a participant"},
		{Index: RoleBanned, Name: BannedRoleName, Description: "banned from the room", MaxActive: zero()},
		{Index: RoleRegular, Name: "regular", Description: "participant",
			Capabilities: clone(regularCapabilities),
			AuthorizedChanges: []RoleChangeTargets{
				targets(RoleNone, RoleRegular),
				targets(RoleRegular, RoleNone), // leaving (canRemoveSelf)
			}},
		{Index: RoleAdmin, Name: "admin", Description: "administrator",
			Capabilities: clone(adminCapabilities),
			AuthorizedChanges: []RoleChangeTargets{
				targets(RoleNone, RoleBanned, RoleRegular, RoleAdmin),
				targets(RoleBanned, RoleNone, RoleRegular),
				targets(RoleRegular, RoleNone, RoleBanned, RoleAdmin),
				targets(RoleAdmin, RoleNone, RoleBanned, RoleRegular),
			}},
		{Index: RoleOwner, Name: "owner", Description: "owner",
			Capabilities: clone(ownerCapabilities),
			AuthorizedChanges: []RoleChangeTargets{
				targets(RoleNone, RoleBanned, RoleRegular, RoleAdmin, RoleOwner),
				targets(RoleBanned, RoleNone, RoleRegular, RoleAdmin),
				targets(RoleRegular, RoleNone, RoleBanned, RoleAdmin, RoleOwner),
				targets(RoleAdmin, RoleNone, RoleBanned, RoleRegular, RoleOwner),
				targets(RoleOwner, RoleNone, RoleBanned, RoleRegular, RoleAdmin),
			}},
	}}
}

func clone(cs []Capability) []Capability { return append([]Capability(nil), cs...) }
