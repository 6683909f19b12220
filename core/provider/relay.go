package provider

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/mls"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// KeyPackage claims through the hub (protocol-06 §5.2, digest pitfall 25). A follower claims the
// KeyPackages of a user of a third provider at the room's hub; the hub relays the claim to the
// target's provider and records KeyPackageRef → provider before it answers. The hub routes a
// Welcome only to the providers so recorded for the KeyPackageRefs in Welcome.secrets (reading
// P18):
//
//   - a ref recorded by a claim through this hub (relayed, or the hub's own claim for a commit
//     of its users) for this room goes to the recorded provider (a ref recorded for another room
//     only does not count);
//   - a ref of our own pool goes to our inbox;
//   - a ref of a KeyPackage that this very commit adds for a user of the committing provider goes
//     back to that provider (it served the KeyPackage to itself; no claim crossed the hub);
//   - any other ref refuses the commit (notAllowed): "never forward a Welcome without a recorded
//     KeyPackageRef → provider mapping" (§5.5 item 7 of the digest).
//
// A recorded mapping is deleted once its Welcome is routed, or at the KeyPackage's not_after.

// DefaultRelayRate is the default of Config.RelayRate: 50 claims at once, then one a second,
// per follower; half of what a target provider allows the hub by default
// (protocol.DefaultKeyMaterialPartnerRate).
var DefaultRelayRate = protocol.RateLimit{Interval: time.Second, Burst: 50}

// claimVia is the provider a claim for target's KeyPackages for room goes to: the target's own
// provider when we host the room (or the target is the hub's user), else the room's hub.
func (p *Provider) claimVia(room event.RoomURI, target event.UserURI) event.Domain {
	if p.isHub(room) || room == "" {
		return target.Domain()
	}
	return room.Domain()
}

// recordClaim records, at the hub, where a claimed KeyPackage of target came from (for a commit
// of one of our users in a room we host). Followers record nothing.
func (p *Provider) recordClaim(ctx context.Context, room event.RoomURI, target event.UserURI, kp *mls.KeyPackage) error {
	if !p.isHub(room) || target.Domain() == p.cfg.Domain {
		return nil
	}
	return p.st.InTx(ctx, func(tx *store.Tx) error { return recordRoute(ctx, tx, room, target.Domain(), kp) })
}

func recordRoute(ctx context.Context, tx *store.Tx, room event.RoomURI, provider event.Domain, kp *mls.KeyPackage) error {
	ref, err := kp.Ref()
	if err != nil {
		return fmt.Errorf("provider: KeyPackageRef: %w", err)
	}
	return dbOf(tx).insertRoute(ctx, hexRef(ref), room, provider, time.Unix(int64(kp.LeafNode.Lifetime.NotAfter), 0))
}

// relayKeyMaterial answers a claim for a user that is not ours (protocol.Handler KeyMaterial):
// as the hub of req.RoomID, for a requester of the calling provider allowed to add participants,
// it relays the unchanged request (the requester's signature stays verifiable by the target's
// provider, docs/interop.md P18) to the target's provider, a configured partner, and records
// where each returned KeyPackage came from before answering. Anything else is unreachable.
func (p *Provider) relayKeyMaterial(ctx context.Context, peer protocol.Peer, target event.UserURI, req *protocol.KeyMaterialRequest) (*protocol.KeyMaterialResponse, error) {
	unknown := unreachable(target)
	room, err := event.ParseRoomURI(string(req.RoomID))
	if err != nil || !p.isHub(room) || target.Domain() == peer.Domain {
		return unknown, nil // not a claim for a room we host, or for the caller's own user
	}
	forbid := func(format string, a ...any) (*protocol.KeyMaterialResponse, error) {
		d := fmt.Sprintf(format, a...)
		p.refused("keyMaterial", "relay_refused")
		p.log.Info("key material relay refused", "peer", peer.Domain, "reason", d)
		return nil, &protocol.StatusError{Status: http.StatusForbidden, Detail: d}
	}
	requester, err := event.ParseUserURI(string(req.RequestingUser))
	if err != nil || requester.Domain() != peer.Domain {
		return forbid("requestingUser must be a user of %s", peer.Domain)
	}
	if u, err := userOfCredential(&req.RequesterCredential); err != nil || u != requester {
		return forbid("requesterCredential must be a basic credential of requestingUser")
	}
	snap, err := p.relayState(ctx, room)
	if err != nil {
		return nil, err
	}
	if snap.active[requester] == 0 || !mayAdd(snap.state, requester) {
		return forbid("%s is not an active participant of %s allowed to add participants", requester, room)
	}
	if isBanned(snap.state, target) {
		return forbid("%s is banned from %s", target, room)
	}
	if ok, wait := p.relay.Take(string(peer.Domain), p.now()); !ok {
		p.refused("keyMaterial", "relay_rate")
		return nil, &protocol.StatusError{Status: http.StatusTooManyRequests, RetryAfter: max(wait, time.Second),
			Detail: fmt.Sprintf("too many claims relayed for %s", peer.Domain)}
	}
	resp, err := p.client.KeyMaterial(ctx, target.Domain(), target, req)
	if errors.Is(err, protocol.ErrNotPartner) {
		return unknown, nil // we cannot reach that provider
	}
	var he *protocol.HTTPError
	if errors.As(err, &he) && (he.Status == http.StatusTooManyRequests || he.Status == http.StatusServiceUnavailable) {
		p.refused("keyMaterial", "relay_limited")
		return nil, &protocol.StatusError{Status: he.Status, RetryAfter: max(he.RetryAfter, time.Second),
			Detail: fmt.Sprintf("%s asks to retry later", target.Domain())}
	}
	if err != nil {
		p.log.Warn("key material relay failed", "target", target.Domain(), "err", err)
		return nil, &protocol.StatusError{Status: http.StatusBadGateway, RetryAfter: time.Second,
			Detail: fmt.Sprintf("relaying the claim to %s failed", target.Domain())}
	}
	if resp.UserURI != protocol.IdentifierURI(target) {
		return nil, &protocol.StatusError{Status: http.StatusBadGateway, Detail: fmt.Sprintf("%s answered for another user", target.Domain())}
	}
	err = p.st.InTx(ctx, func(tx *store.Tx) error {
		for _, c := range resp.Clients {
			if c.ClientStatus != protocol.KeyMaterialClientSuccess || c.KeyPackage == nil {
				continue
			}
			if err := c.KeyPackage.Verify(); err != nil {
				return fmt.Errorf("KeyPackage from %s: %w", target.Domain(), err)
			}
			if u, err := userOfCredential(&c.KeyPackage.LeafNode.Credential); err != nil || u != target {
				return fmt.Errorf("KeyPackage from %s is not one of %s", target.Domain(), target)
			}
			if err := recordRoute(ctx, tx, room, target.Domain(), c.KeyPackage); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, &protocol.StatusError{Status: http.StatusBadGateway, Detail: "unusable key material from the target provider", Err: err}
	}
	p.log.Debug("key material relayed", "peer", peer.Domain, "target", target.Domain(), "status", resp.UserStatus)
	return resp, nil
}

// relayState is the room's current state (core/room) at the hub, for the relay's policy check.
func (p *Provider) relayState(ctx context.Context, room event.RoomURI) (*roomSnapshot, error) {
	unlock := p.lockRoom(room)
	defer unlock()
	rr, err := p.hostedRoom(ctx, room)
	if err != nil {
		return nil, err
	}
	return p.stateAt(ctx, p.st, room, rr.Epoch)
}

// hostedRoom loads a room for a partner's request: 404 when we do not have it.
func (p *Provider) hostedRoom(ctx context.Context, room event.RoomURI) (*roomRow, error) {
	rr, err := p.db().loadRoom(ctx, room)
	if err != nil {
		return nil, err
	}
	if rr == nil {
		return nil, &protocol.StatusError{Status: http.StatusNotFound, Detail: "unknown room"}
	}
	return rr, nil
}

// participates reports whether peer has an active participant in room (the hub's index).
func (p *Provider) participates(ctx context.Context, room event.RoomURI, peer event.Domain) (bool, error) {
	fs, err := p.followers(ctx, p.st, room)
	if err != nil {
		return false, err
	}
	return slices.Contains(fs, peer), nil
}

// welcomeRoutes returns the providers the Welcome of h goes to, and deletes the mappings it used
// (inside the accepting transaction). An unroutable ref is errNotAllowed.
func (p *Provider) welcomeRoutes(ctx context.Context, tx *store.Tx, room event.RoomURI, h *handshake) (map[event.Domain]bool, error) {
	to := map[event.Domain]bool{}
	if h.welcome == nil || h.welcome.Welcome == nil {
		return to, nil
	}
	own := map[string]event.UserURI{} // refs of the KeyPackages this commit adds → their users
	for _, kp := range h.keyPackages {
		ref, err := kp.Ref()
		if err != nil {
			return nil, fmt.Errorf("provider: KeyPackageRef: %w", err)
		}
		if u, err := userOfCredential(&kp.LeafNode.Credential); err == nil {
			own[hexRef(ref)] = u
		}
	}
	for _, s := range h.welcome.Welcome.Secrets {
		ref := hexRef(s.NewMember)
		prov, found, err := dbOf(tx).routeOf(ctx, ref, room)
		if err != nil {
			return nil, err
		}
		if found {
			to[prov] = true
			if err := dbOf(tx).deleteRoute(ctx, ref, room); err != nil {
				return nil, err
			}
			continue
		}
		if _, kp, _, _, err := keyPackageByRef(ctx, tx, s.NewMember); err != nil {
			return nil, err
		} else if kp != nil {
			to[p.cfg.Domain] = true
			continue
		}
		if u, ok := own[ref]; ok && u.Domain() == h.peer {
			to[h.peer] = true
			continue
		}
		return nil, fmt.Errorf("%w: the Welcome names KeyPackageRef %s, which no claim through this hub recorded", errNotAllowed, ref)
	}
	return to, nil
}

// claimError marks a claim the hub or the target's provider refused (403: the requester may
// not add to the room; 404: no such room) as errNotAllowed, so that the mimi.out envelope is not
// retried; other errors (unreachable, 5xx) stay transient.
func claimError(err error) error {
	var he *protocol.HTTPError
	if errors.As(err, &he) && (he.Status == http.StatusForbidden || he.Status == http.StatusNotFound) {
		return fmt.Errorf("%w: %w", errNotAllowed, err)
	}
	return err
}

// addedKeyPackages are the KeyPackages of the Add proposals a commit applied.
func addedKeyPackages(r *mls.CommitResult) []*mls.KeyPackage {
	var out []*mls.KeyPackage
	for _, pr := range r.Proposals {
		if pr.Type == mls.ProposalTypeAdd && pr.KeyPackage != nil {
			out = append(out, pr.KeyPackage)
		}
	}
	return out
}

// pruneRoutes deletes KeyPackageRef mappings whose KeyPackage has expired (never used in a
// Welcome).
func (p *Provider) pruneRoutes(ctx context.Context) error {
	return p.db().pruneRoutes(ctx, p.now())
}
