package provider

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
	"github.com/mimi-gateway/mimi-gateway/core/room"
)

// When the provider gives up on something a local user did, it tells her: a KindNotice
// envelope on her network's mimi.in (the adapter words it in her language), a WARN log line with
// the technical detail under the same correlation ID, and a count in
// mimi_gateway_provider_notices_total. Nothing is refused or dead-lettered without the three.

// refusal is an error a partner or a room's policy answered with a MIMI reason: the short,
// machine-readable word a notice carries (userUnknown, noConsent, notAllowed, ...).
type refusal struct {
	reason string
	err    error
}

func (r *refusal) Error() string { return r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

// refused wraps err with reason.
func refused(reason string, err error) error { return &refusal{reason: reason, err: err} }

// keyMaterialReason names a KeyMaterialResponse's user status for a notice.
func keyMaterialReason(s protocol.KeyMaterialUserCode) string {
	switch s {
	case protocol.KeyMaterialUserUnknown:
		return "userUnknown"
	case protocol.KeyMaterialUserNoConsent, protocol.KeyMaterialUserNoConsentForRoom:
		return "noConsent"
	case protocol.KeyMaterialUserDeleted:
		return "userDeleted"
	case protocol.KeyMaterialUserIncompatibleProtocol:
		return "incompatibleProtocol"
	}
	return "noKeyPackage"
}

// reasonOf is the notice reason of err: a partner's or the policy's refusal, an unknown user or
// room, a partner that does not answer.
func reasonOf(err error) string {
	var r *refusal
	var he *protocol.HTTPError
	switch {
	case errors.As(err, &r):
		return r.reason
	case errors.Is(err, room.ErrFixedMembership):
		return "fixedMembership"
	case errors.Is(err, ErrUnknownUser):
		return "userUnknown"
	case errors.Is(err, errUnknownRoom):
		return "unknownRoom"
	case errors.Is(err, protocol.ErrNotPartner):
		return "notPartner"
	case errors.Is(err, errNotAllowed), errors.Is(err, errInvalidState), errors.Is(err, errCannotCommit):
		return "notAllowed"
	case errors.Is(err, protocol.ErrUnreachable), errors.As(err, &he) && he.Status >= 500:
		return "unreachable"
	case errors.As(err, &he):
		return "forbidden"
	}
	return "failed"
}

// noticeOf says what to tell the sender of env after err: the code, the user it was about and
// the partner involved.
func (p *Provider) noticeOf(env *event.Envelope, err error, final bool) event.Notice {
	n := event.Notice{Event: env.ID, Native: env.Origin.Event, Reason: reasonOf(err)}
	if d := env.Room.Domain(); d != p.cfg.Domain {
		n.Partner = d
	}
	switch {
	case env.Kind == event.KindMembership && env.Membership != nil &&
		(env.Membership.Action == event.MembershipInvite || env.Membership.Action == event.MembershipJoin):
		n.Code, n.Target = event.NoticeInviteFailed, env.Membership.Target
		if t := env.Membership.Target; t.Domain() != p.cfg.Domain {
			n.Partner = t.Domain()
		}
		// A local user who joins a 1:1 on her own is told that she cannot be added, not that
		// the conversation failed.
		if errors.Is(err, errUnknownRoom) || (env.Membership.Target == env.Sender && n.Reason != "fixedMembership") {
			n.Code, n.Target = event.NoticeRoomFailed, ""
		}
	case env.Kind == event.KindMembership && env.Membership != nil:
		n.Code, n.Target = event.NoticeRefused, env.Membership.Target
	case final && n.Reason != "notAllowed" && n.Reason != "forbidden":
		n.Code = event.NoticeUndelivered
	default:
		n.Code = event.NoticeRefused
	}
	return n
}

// correlation derives a notice's correlation ID (shown to the user, logged with the detail) from
// what failed, so that a redelivery of the same failure gives the same ID and the same envelope
// (deduplicated on the bus).
func correlation(parts ...string) string {
	h := sha256.New()
	for _, s := range parts {
		fmt.Fprintf(h, "%d:%s;", len(s), s)
	}
	return hex.EncodeToString(h.Sum(nil)[:5])
}

// noticeFailed tells the sender of the mimi.out envelope env that it failed with err: permanently,
// or for the last time the bus delivers it (final).
func (p *Provider) noticeFailed(ctx context.Context, env *event.Envelope, err error, final bool) {
	if env.Sender.Domain() != p.cfg.Domain || !env.Origin.Network.Valid() || env.Origin.Network == event.NetworkMIMI {
		return
	}
	n := p.noticeOf(env, err, final)
	n.Correlation = correlation("out", string(env.ID), n.Code.String())
	p.publishNotice(ctx, env.Origin.Network, env.Room, env.Sender, env.Origin, n, err)
}

// publishNotice publishes notice n for local user u on network nw's mimi.in, logs cause at WARN
// under the notice's correlation ID and counts the notice. A notice that cannot be published is
// logged at ERROR: the caller's outcome does not change (the failure itself is recorded).
func (p *Provider) publishNotice(ctx context.Context, nw event.Network, room event.RoomURI, u event.UserURI, origin event.Origin, n event.Notice, cause error) {
	attrs := []slog.Attr{slog.String("correlation", n.Correlation), slog.String("code", n.Code.String()),
		slog.String("reason", n.Reason), slog.String("room", string(room)), slog.String("event_id", string(n.Event))}
	if n.Partner != "" {
		attrs = append(attrs, slog.String("partner", string(n.Partner)))
	}
	if cause != nil {
		attrs = append(attrs, slog.String("err", cause.Error()))
	}
	level := slog.LevelWarn
	if n.Code == event.NoticePartnerReachable {
		level = slog.LevelInfo // good news
	}
	p.log.LogAttrs(ctx, level, "telling the user: "+n.Code.String(), attrs...)
	p.met.notices.WithLabelValues(n.Code.String(), reasonLabel(n.Reason)).Inc()
	if origin.Network == "" {
		origin = event.Origin{Network: event.NetworkMIMI}
	}
	env := &event.Envelope{ID: eventID("notice", room, []byte(n.Correlation+";"+string(u))), Kind: event.KindNotice, Room: room,
		Sender: u, Origin: origin, Timestamp: p.now(), Notice: &n}
	if err := p.cfg.Bus.PublishIn(ctx, nw, env); err != nil {
		p.log.LogAttrs(ctx, slog.LevelError, "notice not published", slog.String("correlation", n.Correlation), slog.String("err", err.Error()))
	}
}

// noticeReasons are the reasons counted under their own label; others count as "other".
var noticeReasons = map[string]bool{"userUnknown": true, "noConsent": true, "userDeleted": true, "incompatibleProtocol": true,
	"noKeyPackage": true, "unknownRoom": true, "notPartner": true, "notAllowed": true, "fixedMembership": true, "unreachable": true, "forbidden": true, "failed": true}

// reasonLabel keeps the metric's reason label within a fixed set.
func reasonLabel(r string) string {
	if noticeReasons[r] {
		return r
	}
	return "other"
}
