package xmpp

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/occupants"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/portals"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/xstanza"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// MIMI room roles ↔ MUC affiliations (docs/xmpp.md "Roles"): owner 4 ↔ owner, admin 3 ↔ admin,
// regular 2 ↔ member, banned 1 ↔ outcast. The rooms component hosts the MUC, so it shows every
// role change of a MIMI room; an XMPP occupant's muc#admin affiliation change becomes a
// MembershipRole (or ban) request that the room's hub decides.

// nsMUCAdmin is the XEP-0045 admin namespace.
const nsMUCAdmin = "http://jabber.org/protocol/muc#admin"

// bannedRole is the ban role (outcast).
const bannedRole = event.RoleBanned

// maxAdminItems bounds the items of one muc#admin request.
const maxAdminItems = 16

// affiliationOf is the MUC affiliation and occupant role that show a MIMI role.
func affiliationOf(r event.Role) (affiliation, role string) {
	switch r {
	case event.RoleOwner:
		return "owner", "moderator"
	case event.RoleAdmin:
		return "admin", "moderator"
	case event.RoleBanned:
		return "outcast", "none"
	}
	return "member", "participant"
}

// roleOfAffiliation maps a requested affiliation to a MIMI role; ok is false for "none" and
// unknown affiliations.
func roleOfAffiliation(aff string) (r event.Role, ok bool) {
	switch aff {
	case "owner":
		return event.RoleOwner, true
	case "admin":
		return event.RoleAdmin, true
	case "member":
		return event.RoleRegular, true
	case "outcast":
		return event.RoleBanned, true
	}
	return 0, false
}

// presenceAffiliation returns the affiliation and occupant role shown for user in r (member
// and participant when the store cannot tell).
func (a *Adapter) presenceAffiliation(r event.RoomURI, user event.UserURI) (string, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ri, err := a.db.occ().Role(ctx, r, user)
	if err != nil {
		a.log.Debug("role unknown, shown as member", "err", err)
		ri = event.RoleRegular
	}
	return affiliationOf(ri)
}

// renderRole shows a MIMI role change in a MUC portal: the stored role changes and every
// occupant gets the target's presence with its new affiliation; a ban (role 1) removes the
// target with status 301; role 0 lifts a ban. Rooms the component does not show as a MUC are
// skipped.
func (a *Adapter) renderRole(ctx context.Context, r portals.Room, roomJID jid.JID, env *event.Envelope) error {
	target, ri := env.Membership.Target, env.Membership.Role
	if ri > event.RoleOwner {
		a.log.Debug("role without an affiliation skipped", "role", ri)
		return nil
	}
	if err := a.db.occ().SetRole(ctx, r.URI, target, ri); err != nil {
		return err
	}
	local := target.Domain() == a.cfg.Provider
	switch ri {
	case event.RoleNone:
		return nil
	case event.RoleBanned:
		return a.removeMember(ctx, r, roomJID, target, local, statusBanned)
	}
	nick, err := a.db.occ().MemberNick(ctx, r.URI, target)
	if errors.Is(err, occupants.ErrNoMember) {
		return nil // shown when the user joins
	}
	if err != nil {
		return err
	}
	occ, err := a.db.occ().List(ctx, r.URI)
	if err != nil {
		return err
	}
	a.memberPresence(ctx, r, roomJID, target, nick, local, occ, "", nil, nil)
	return nil
}

// adminSet handles a muc#admin set from an occupant: each affiliation change becomes a
// membership envelope (owner/admin/member: role; outcast: ban; none: kick, or an unban of an
// outcast). It returns the error to answer with, nil for a result.
func (a *Adapter) adminSet(ctx context.Context, from, to jid.JID, iqID string, q *xstanza.InAdminQuery) *xstanza.OutError {
	if to.Localpart() == "" || to.Resourcepart() != "" {
		return xstanza.StanzaError(stanza.Cancel, stanza.ServiceUnavailable, "")
	}
	if len(q.Items) == 0 || len(q.Items) > maxAdminItems {
		return xstanza.StanzaError(stanza.Modify, stanza.BadRequest, "1 to "+strconv.Itoa(maxAdminItems)+" items")
	}
	for _, it := range q.Items {
		if it.Affiliation == "" {
			// Occupant role changes (kick by role none, voice) are not bridged: MIMI has
			// participant roles only.
			return xstanza.StanzaError(stanza.Cancel, stanza.ServiceUnavailable, "only affiliation changes are bridged")
		}
	}
	r, err := a.db.portals().ByLocal(ctx, to.Localpart())
	if err != nil || r.Kind != portals.KindMUC {
		return xstanza.StanzaError(stanza.Cancel, stanza.ItemNotFound, "")
	}
	if !a.m.IsLocal(from) {
		return xstanza.StanzaError(stanza.Auth, stanza.Forbidden, "")
	}
	sender, err := a.m.LocalUserURI(from)
	if err != nil {
		return xstanza.StanzaError(stanza.Auth, stanza.Forbidden, "")
	}
	occ, err := a.db.occ().List(ctx, r.URI)
	if err != nil {
		return xstanza.StanzaError(stanza.Wait, stanza.InternalServerError, "")
	}
	joined := false
	for _, o := range occ {
		joined = joined || o.Full == from.String()
	}
	if !joined {
		return xstanza.StanzaError(stanza.Cancel, stanza.NotAcceptable, "not an occupant")
	}
	roomJID, _ := a.m.RoomJID(r.MUCLocal)
	var envs []*event.Envelope
	for i, it := range q.Items {
		target, err := a.adminTarget(ctx, r, it)
		if err != nil {
			return xstanza.StanzaError(stanza.Modify, stanza.JIDMalformed, "")
		}
		m := &event.Membership{Target: target, Reason: clip(it.Reason, 1024)}
		ri, ok := roleOfAffiliation(it.Affiliation)
		switch {
		case ok && ri == event.RoleBanned:
			m.Action, m.Role = event.MembershipBan, ri
		case ok:
			m.Action, m.Role = event.MembershipRole, ri
		case it.Affiliation == "none":
			cur, err := a.db.occ().Role(ctx, r.URI, target)
			if err != nil {
				return xstanza.StanzaError(stanza.Wait, stanza.InternalServerError, "")
			}
			m.Action = event.MembershipKick
			if cur == event.RoleBanned {
				m.Action = event.MembershipRole // an unban: role 0
			}
		default:
			return xstanza.StanzaError(stanza.Modify, stanza.BadRequest, "unknown affiliation")
		}
		o := origin{nativeRoom: event.NativeRoomID(roomJID.String()), sender: from.Bare(), senderURI: sender, room: r.URI}
		envs = append(envs, &event.Envelope{
			ID: o.eventID("affiliation " + iqID + " " + strconv.Itoa(i) + " " + string(target) + " " + it.Affiliation), Kind: event.KindMembership,
			Room: r.URI, Sender: sender, Membership: m, Timestamp: a.now(),
			Origin: event.Origin{Network: event.NetworkXMPP, Room: o.nativeRoom, Sender: event.NativeUserID(from.Bare().String())},
		})
	}
	for _, env := range envs {
		if err := a.publishEnvelope(ctx, env); err != nil {
			a.log.Warn("affiliation change not published", "err", err)
			return xstanza.StanzaError(stanza.Wait, stanza.InternalServerError, "")
		}
	}
	return nil
}

// adminTarget names the user of a muc#admin item: by JID (a local user or a MIMI user's
// address) or by the nickname of a member.
func (a *Adapter) adminTarget(ctx context.Context, r portals.Room, it xstanza.InAdminItem) (event.UserURI, error) {
	if it.JID != "" {
		j, err := jid.Parse(it.JID)
		if err != nil {
			return "", err
		}
		return a.m.UserURI(ctx, j.Bare())
	}
	mem, err := a.db.occ().Members(ctx, r.URI)
	if err != nil {
		return "", err
	}
	for _, m := range mem {
		if m.Nick == it.Nick && it.Nick != "" {
			return m.User, nil
		}
	}
	return "", fmt.Errorf("xmpp: no member %q", it.Nick)
}

// clip cuts s to at most n bytes without splitting a character.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}
