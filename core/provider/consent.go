package provider

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/consent"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
)

// Consent both ways (protocol-06 §5.7, §8), with Config.Reach a *consent.Store:
//
//   - A partner's user asks one of ours (requestConsent): the request is recorded and, the first
//     time, the user is told (NoticeConsentRequest) unless she reaches nobody outside; the answer
//     is 201 whether or not she exists. A requester she accepted before gets a grant back at once.
//   - One of ours answers (Allow, Revoke: her consent commands): the record changes and the
//     requester's provider is told with updateConsent.
//   - One of ours invites a partner's user who answers noConsent: the invite waits (consent.Wait),
//     a requestConsent goes out and the inviter is told (NoticeConsentPending). A grant publishes
//     the invite again; a revoke drops it and tells the inviter (NoticeInviteFailed, noConsent).

var _ protocol.ConsentHandler = (*Provider)(nil)

// consentStore is the consent store behind Config.Reach, if it is one.
func (p *Provider) consentStore() *consent.Store {
	cs, _ := p.cfg.Reach.(*consent.Store)
	return cs
}

// localNetwork returns the network that serves local user u, or an error wrapping
// ErrUnknownUser.
func (p *Provider) localNetwork(ctx context.Context, u event.UserURI) (event.Network, error) {
	if usr, err := loadUser(ctx, p.st, u); err == nil {
		return usr.Network, nil
	} else if !errors.Is(err, ErrUnknownUser) {
		return "", err
	}
	if p.cfg.Users == nil {
		return "", fmt.Errorf("%w: %s", ErrUnknownUser, u)
	}
	n, err := p.cfg.Users.LookupUser(ctx, u)
	if errors.Is(err, ErrNoSuchUser) {
		return "", fmt.Errorf("%w: %w", ErrUnknownUser, err)
	}
	return n, err
}

// consentRoom is the room a consent notice is shown for: the scope's room, else a room URI of
// the requester's provider that names no room of ours (adapters show such notices outside any
// conversation, from the gateway).
func consentRoom(e *protocol.ConsentEntry, requester event.UserURI) event.RoomURI {
	if r, err := event.ParseRoomURI(string(e.Room)); err == nil {
		return r
	}
	return event.RoomURI("mimi://" + string(requester.Domain()) + "/r/consent")
}

// RequestConsent implements protocol.ConsentHandler: a partner's user asks one of ours.
func (p *Provider) RequestConsent(ctx context.Context, peer protocol.Peer, e *protocol.ConsentEntry) error {
	cs := p.consentStore()
	if cs == nil {
		return nil
	}
	requester, target := event.UserURI(e.Requester), event.UserURI(e.Target)
	room, _ := event.ParseRoomURI(string(e.Room))
	if e.Operation == protocol.ConsentCancel {
		_, err := cs.Cancel(ctx, requester, target, room)
		return err
	}
	st, changed, err := cs.Ask(ctx, requester, target, room)
	if err != nil {
		return err
	}
	setting, _, err := cs.Reachability(ctx, target)
	if err != nil {
		return err
	}
	network, err := p.localNetwork(ctx, target)
	if errors.Is(err, ErrUnknownUser) {
		p.log.Info("request for consent for a user we do not know", "partner", peer.Domain)
		return nil // the same answer as for anyone else
	}
	if err != nil {
		return err
	}
	switch {
	case setting == consent.Nobody:
		return nil // she does not want to be asked
	case st == consent.Granted || setting == consent.Partners:
		p.sendGrant(target, requester, room) // she accepts him already
		return nil
	case st != consent.Pending || !changed:
		return nil // asked before (or refused): not asked again
	}
	n := event.Notice{Code: event.NoticeConsentRequest, Target: requester, Partner: requester.Domain(),
		Correlation: correlation("consent-request", string(requester), string(target), string(room))}
	p.publishNotice(ctx, network, consentRoom(e, requester), target, event.Origin{Network: event.NetworkMIMI}, n, nil)
	return nil
}

// sendGrant tells requester's provider in the background that target accepts him.
func (p *Provider) sendGrant(target, requester event.UserURI, room event.RoomURI) {
	if p.client == nil {
		return
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		e := &protocol.ConsentEntry{Operation: protocol.ConsentGrant, Requester: protocol.IdentifierURI(requester),
			Target: protocol.IdentifierURI(target), Room: protocol.IdentifierURI(room)}
		if err := p.client.UpdateConsent(ctx, e); err != nil {
			p.log.Warn("grant not sent to the requester's provider", "partner", requester.Domain(), "err", err)
		}
	}()
}

// UpdateConsent implements protocol.ConsentHandler: a partner's user answers one of ours.
func (p *Provider) UpdateConsent(ctx context.Context, peer protocol.Peer, e *protocol.ConsentEntry) error {
	cs := p.consentStore()
	if cs == nil {
		return nil
	}
	requester, target := event.UserURI(e.Requester), event.UserURI(e.Target)
	room, _ := event.ParseRoomURI(string(e.Room))
	st := consent.Granted
	if e.Operation == protocol.ConsentRevoke {
		st = consent.Revoked
	}
	if err := cs.Answered(ctx, requester, target, room, st); err != nil {
		return err
	}
	waiting, err := cs.Waiting(ctx, requester, target)
	if err != nil {
		return err
	}
	p.log.Info("consent answered", "partner", peer.Domain, "operation", e.Operation.String(), "waiting_invites", len(waiting))
	for _, w := range waiting {
		env, err := event.Unmarshal(w.Envelope)
		if err != nil {
			p.log.Warn("a kept invite cannot be read; dropped", "event_id", w.ID, "err", err)
			if err := cs.Done(ctx, requester, target, w.ID); err != nil {
				return err
			}
			continue
		}
		if st == consent.Granted {
			again := *env
			again.ID = eventID("consent-granted", env.Room, []byte(env.ID))
			if err := p.cfg.Bus.PublishOut(ctx, &again); err != nil {
				return fmt.Errorf("provider: publish an invite again: %w", err)
			}
			n := event.Notice{Code: event.NoticeConsentGranted, Target: target, Partner: target.Domain(), Event: env.ID, Native: env.Origin.Event,
				Correlation: correlation("consent-granted", string(env.ID))}
			p.publishNotice(ctx, env.Origin.Network, env.Room, requester, env.Origin, n, nil)
		} else {
			n := event.Notice{Code: event.NoticeInviteFailed, Target: target, Partner: target.Domain(), Reason: "noConsent", Event: env.ID,
				Native: env.Origin.Event, Correlation: correlation("consent-revoked", string(env.ID))}
			p.publishNotice(ctx, env.Origin.Network, env.Room, requester, env.Origin, n, errors.New("the partner's user revoked consent"))
		}
		if err := cs.Done(ctx, requester, target, w.ID); err != nil {
			return err
		}
	}
	return nil
}

// waitsForConsent reports whether a mimi.out envelope that failed with err is an invite of a
// partner's user that can wait for her consent.
func (p *Provider) waitsForConsent(env *event.Envelope, err error) bool {
	return p.consentStore() != nil && p.client != nil && reasonOf(err) == "noConsent" &&
		env.Kind == event.KindMembership && env.Membership != nil && env.Membership.Action == event.MembershipInvite &&
		env.Membership.Target.Domain() != p.cfg.Domain && env.Sender.Domain() == p.cfg.Domain &&
		env.Origin.Network.Valid() && env.Origin.Network != event.NetworkMIMI
}

// waitForConsent keeps an invite the partner answered noConsent, asks the invitee for consent
// and tells the inviter. An invitee who revoked her consent before is not asked again: the
// inviter is told at once, as after a revoke.
func (p *Provider) waitForConsent(ctx context.Context, env *event.Envelope, cause error) error {
	cs := p.consentStore()
	requester, target := env.Sender, env.Membership.Target
	last, err := cs.LastState(ctx, requester, target)
	if err != nil {
		return err
	}
	if last == consent.Revoked {
		p.noticeFailed(ctx, env, cause, false)
		return nil
	}
	b, err := event.Marshal(env)
	if err != nil {
		return err
	}
	if err := cs.Wait(ctx, requester, target, env.ID, b); err != nil {
		return err
	}
	if err := cs.Answered(ctx, requester, target, "", consent.Pending); err != nil {
		return err
	}
	e := &protocol.ConsentEntry{Operation: protocol.ConsentRequest, Requester: protocol.IdentifierURI(requester),
		Target: protocol.IdentifierURI(target), Room: protocol.IdentifierURI(env.Room)}
	if err := p.client.RequestConsent(ctx, e); err != nil {
		return fmt.Errorf("provider: request consent of %s: %w", target, err)
	}
	n := event.Notice{Code: event.NoticeConsentPending, Target: target, Partner: target.Domain(), Reason: "noConsent",
		Event: env.ID, Native: env.Origin.Event, Correlation: correlation("consent-pending", string(env.ID))}
	p.publishNotice(ctx, env.Origin.Network, env.Room, requester, env.Origin, n, nil)
	return nil
}
