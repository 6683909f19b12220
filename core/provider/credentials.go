package provider

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/mls"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// Credential authority (docs/security.md, "Trust model").
//
// Our leaves carry basic credentials: the identity is a user URI and nothing but the provider
// of that user can vouch that a signature key belongs to it. So a leaf may name a user of domain
// D only when D vouched for it, and the hub checks every leaf a commit or proposal adds or
// changes:
//
//   - a leaf of one of our own users must carry a signature key we created for that user;
//   - a leaf of a user of the provider that submits the handshake is vouched for by that
//     provider (it holds the user's clients; an external joiner is always such a user, since
//     acceptCommit refuses a committer of another provider);
//   - a leaf of a user of any other provider D must come from a KeyPackage claimed from D
//     through this hub for this room (its KeyPackageRef recorded in provider_kp_routes with
//     provider D), or from an Add proposal of the room's pending set, which the hub accepted
//     under the same rule;
//   - an existing leaf keeps its identity: an Update proposal or a commit's UpdatePath may
//     replace keys, never the user a leaf names.
//
// Every provider, hub or not, also refuses a leaf that names one of its own users with a
// signature key it did not create (followers check what a hub sequenced: checkOwnLeaves).

// leafChange is a leaf a commit adds or changes: Before is the leaf as it was (nil for a leaf
// that is new, also one that takes the place of a removed member), After as the commit leaves it.
type leafChange struct {
	Before *mls.Member
	After  mls.Member
}

// memberLister is the part of a group or public view that lists its members.
type memberLister interface{ Members() []mls.Member }

// afterView returns the group after r as the processor sees it (nil when it was removed).
func afterView(r *mls.CommitResult) memberLister {
	switch {
	case r.State != nil:
		return r.State
	case r.Public != nil:
		return r.Public
	}
	return nil
}

// leafChanges returns the leaves r adds or changes, comparing before (the group in the commit's
// epoch) with the group after r.
func leafChanges(before groupView, r *mls.CommitResult) []leafChange {
	after := afterView(r)
	if after == nil {
		return nil
	}
	removed := map[mls.LeafIndex]bool{}
	for _, m := range r.Removed {
		removed[m.Leaf] = true
	}
	var out []leafChange
	for _, m := range after.Members() {
		old, ok := before.Member(m.Leaf)
		switch {
		case !ok || removed[m.Leaf]:
			out = append(out, leafChange{After: m})
		case !sameLeafIdentity(&old, &m):
			out = append(out, leafChange{Before: &old, After: m})
		}
	}
	return out
}

// sameLeafIdentity reports whether a and b carry the same credential and signature key.
func sameLeafIdentity(a, b *mls.Member) bool {
	return bytes.Equal(a.SignatureKey, b.SignatureKey) && sameCredential(&a.Credential, &b.Credential)
}

func sameCredential(a, b *mls.Credential) bool {
	if a.Type != b.Type || !bytes.Equal(a.Identity, b.Identity) || !bytes.Equal(a.Data, b.Data) || len(a.Certificates) != len(b.Certificates) {
		return false
	}
	for i := range a.Certificates {
		if !bytes.Equal(a.Certificates[i], b.Certificates[i]) {
			return false
		}
	}
	return true
}

// recordLeafKey records key as a leaf signature key we made for u (before the leaf leaves us).
func (p *Provider) recordLeafKey(ctx context.Context, u event.UserURI, key []byte) error {
	return p.db().insertLeafKey(ctx, u, key, p.now())
}

// vouch is what a handshake's leaves are checked against at the hub.
type vouch struct {
	own       event.Domain // our domain
	room      event.RoomURI
	submitter event.Domain
	// pending are the signature keys (hex) of the Add proposals in the room's pending set that
	// the handshake includes (accepted by the hub under the same rule).
	pending map[string]bool
	// keyPackages are the KeyPackages the handshake's Adds carry, to find a new leaf's ref.
	keyPackages []*mls.KeyPackage
}

// errCredential is a leaf whose identity no provider vouched for (notAllowed on the wire).
type errCredential struct {
	Reason string // metric label: own_key, unvouched, identity_changed, not_a_user
	Detail string
}

func (e *errCredential) Error() string { return "provider: credential not vouched for: " + e.Detail }

// Unwrap makes a credential refusal a policy refusal (notAllowed).
func (e *errCredential) Unwrap() error { return errNotAllowed }

// checkLeaves applies the credential authority to the leaves a handshake adds or changes (tx at
// the hub, room lock held). It returns the KeyPackageRefs it relied on, which the caller drops
// once the handshake is accepted.
func checkLeaves(ctx context.Context, q store.Querier, v *vouch, changes []leafChange) ([]string, error) {
	var used []string
	for _, c := range changes {
		u, err := userOfCredential(&c.After.Credential)
		if err != nil {
			return nil, &errCredential{Reason: "not_a_user", Detail: fmt.Sprintf("leaf %d: %v", c.After.Leaf, err)}
		}
		if c.Before != nil {
			was, err := userOfCredential(&c.Before.Credential)
			if err != nil || was != u {
				return nil, &errCredential{Reason: "identity_changed", Detail: fmt.Sprintf("leaf %d may not change its identity to %s", c.After.Leaf, u)}
			}
			if bytes.Equal(c.Before.SignatureKey, c.After.SignatureKey) || u.Domain() != v.own {
				continue // signed by the leaf's own key: its provider's act
			}
		}
		switch {
		case u.Domain() == v.own:
			ok, err := dbOf(q).ownKey(ctx, u, c.After.SignatureKey)
			if err != nil {
				return nil, err
			}
			if !ok {
				return nil, &errCredential{Reason: "own_key", Detail: fmt.Sprintf("leaf %d names our user %s with a key we did not create", c.After.Leaf, u)}
			}
		case u.Domain() == v.submitter:
		case v.pending[hex.EncodeToString(c.After.SignatureKey)]:
		default:
			ref, err := v.refOf(c.After.SignatureKey)
			if err != nil {
				return nil, err
			}
			ok, err := routeRecorded(ctx, q, v.room, ref, u.Domain())
			if err != nil {
				return nil, err
			}
			if !ok {
				return nil, &errCredential{Reason: "unvouched", Detail: fmt.Sprintf("leaf %d names %s, but no claim from %s through this hub recorded its KeyPackageRef for this room", c.After.Leaf, u, u.Domain())}
			}
			used = append(used, ref)
		}
	}
	return used, nil
}

// refOf returns the KeyPackageRef (hex) of the handshake's KeyPackage with signature key key.
func (v *vouch) refOf(key []byte) (string, error) {
	for _, kp := range v.keyPackages {
		if bytes.Equal(kp.LeafNode.SignatureKey, key) {
			ref, err := kp.Ref()
			if err != nil {
				return "", fmt.Errorf("provider: KeyPackageRef: %w", err)
			}
			return hexRef(ref), nil
		}
	}
	return "", nil // not added by a KeyPackage: nothing can have been recorded
}

// routeRecorded reports whether a claim through this hub recorded ref for room from provider.
func routeRecorded(ctx context.Context, q store.Querier, room event.RoomURI, ref string, provider event.Domain) (bool, error) {
	if ref == "" {
		return false, nil
	}
	return dbOf(q).routeRecorded(ctx, ref, room, provider)
}

// dropRoutes deletes the KeyPackageRef routes of room an accepted handshake used.
func dropRoutes(ctx context.Context, tx *store.Tx, room event.RoomURI, refs []string) error {
	for _, ref := range refs {
		if err := dbOf(tx).deleteRoute(ctx, ref, room); err != nil {
			return err
		}
	}
	return nil
}

// proposalLeaf is the leaf an Add or Update proposal brings, as a leafChange of g (the group
// that processed it; nil for other proposals).
func proposalLeaf(g groupView, rec *mls.Received) *leafChange {
	switch rec.Proposal.Type {
	case mls.ProposalTypeAdd:
		ln := &rec.Proposal.KeyPackage.LeafNode
		return &leafChange{After: mls.Member{Credential: ln.Credential, SignatureKey: ln.SignatureKey}}
	case mls.ProposalTypeUpdate:
		if rec.Proposal.LeafNode == nil || rec.Sender.Type != mls.SenderTypeMember {
			return nil
		}
		old, ok := g.Member(mls.LeafIndex(rec.Sender.Index))
		if !ok {
			return nil
		}
		ln := rec.Proposal.LeafNode
		return &leafChange{Before: &old, After: mls.Member{Leaf: old.Leaf, Credential: ln.Credential, SignatureKey: ln.SignatureKey}}
	}
	return nil
}

// ---- at every provider: our own users ----

// CredentialAlert is a leaf naming one of our users with a signature key we did not create, seen
// in a partner hub's fanout and refused: the commit or Welcome that brought it was not applied,
// so our clients in the room stay where they were.
type CredentialAlert struct {
	ID   int64
	Room event.RoomURI
	// Hub is the provider that sequenced the room (and sent the fanout).
	Hub  event.Domain
	User event.UserURI
	// Reason: "commit" (a commit added or changed the leaf) or "welcome" (the tree of a Welcome
	// for one of our users contained it).
	Reason       string
	SignatureKey []byte
	SeenAt       time.Time
}

// CredentialAlerts returns the newest credential alerts first (at most limit; 0: 100).
func (p *Provider) CredentialAlerts(ctx context.Context, limit int) ([]CredentialAlert, error) {
	if limit <= 0 {
		limit = 100
	}
	return p.db().credentialAlerts(ctx, limit)
}

// forgedOwnLeaf returns the first of members that names one of our users with a signature key we
// did not create (nil when there is none). Leaves of other providers' users are the hub's to
// check (it saw the claims); a credential that names no user is not ours either.
func forgedOwnLeaf(ctx context.Context, q store.Querier, own event.Domain, members []mls.Member) (*mls.Member, error) {
	for i := range members {
		u, err := userOfCredential(&members[i].Credential)
		if err != nil || u.Domain() != own {
			continue
		}
		ok, err := dbOf(q).ownKey(ctx, u, members[i].SignatureKey)
		if err != nil {
			return nil, err
		}
		if !ok {
			return &members[i], nil
		}
	}
	return nil, nil
}

// changedMembers are the leaves of changes as members.
func changedMembers(changes []leafChange) []mls.Member {
	out := make([]mls.Member, len(changes))
	for i, c := range changes {
		out[i] = c.After
	}
	return out
}

// raiseCredentialAlert records and reports a forged leaf of one of our users (tx of the refusal).
func (p *Provider) raiseCredentialAlert(ctx context.Context, tx *store.Tx, room event.RoomURI, reason string, m *mls.Member) error {
	u, _ := userOfCredential(&m.Credential)
	p.met.credentialAlerts.Inc()
	p.refused("notify", "credential_own_key")
	p.log.Warn("refused fanout: a leaf claims one of our users with a key we did not create",
		"hub", room.Domain(), "room", room, "user", u, "reason", reason)
	return dbOf(tx).insertCredentialAlert(ctx, room, u, reason, m.SignatureKey, p.now())
}
