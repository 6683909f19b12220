package provider

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/mls"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// clientID is the MLS client name of the gateway-held client of every local user
// (mimi://<domain>/d/<user>/<clientID>).
const clientID = "gw"

// ErrUnknownUser is returned for a user the provider holds no MLS client for.
var ErrUnknownUser = errors.New("provider: unknown local user")

// user is a local legacy user with its signature key.
type user struct {
	URI     event.UserURI
	Network event.Network
	Signer  *mls.Signer
}

func credentialOf(u event.UserURI) mls.Credential {
	return mls.Credential{Type: mls.CredentialTypeBasic, Identity: []byte(u)}
}

// userOfCredential returns the user URI a basic credential names. Other credential types (x509,
// which our leaves advertise so that they can join groups requiring it) are refused: a MIMI
// member is identified by the mimi:// URI of a basic credential (docs/mls.md, "Credential
// policy").
func userOfCredential(c *mls.Credential) (event.UserURI, error) {
	if c == nil {
		return "", fmt.Errorf("provider: no credential")
	}
	if c.Type != mls.CredentialTypeBasic {
		return "", fmt.Errorf("provider: credential type %s is not accepted: MIMI members carry a basic credential naming their mimi:// user URI", c.Type)
	}
	return event.ParseUserURI(string(c.Identity))
}

// EnsureUser registers a local user (idempotent): a signature key and a KeyPackage pool. network
// is the adapter that serves the user.
func (p *Provider) EnsureUser(ctx context.Context, u event.UserURI, network event.Network) error {
	if u.Domain() != p.cfg.Domain {
		return fmt.Errorf("provider: %s is not a user of %s", u, p.cfg.Domain)
	}
	if !network.Valid() {
		return fmt.Errorf("provider: network %q", network)
	}
	// Known users (every message's sender) need no write transaction.
	if known, err := p.db().userExists(ctx, u); err != nil || known {
		return err
	}
	err := p.st.InTx(ctx, func(tx *store.Tx) error {
		if _, err := loadUser(ctx, tx, u); err == nil {
			return nil
		} else if !errors.Is(err, ErrUnknownUser) {
			return err
		}
		s, err := mls.GenerateSigner(p.cfg.CipherSuite)
		if err != nil {
			return fmt.Errorf("provider: signer for %s: %w", u, err)
		}
		priv, err := tx.Seal(sealedSigPrivate, s.Private, string(u))
		if err != nil {
			return fmt.Errorf("provider: seal signature key of %s: %w", u, err)
		}
		// Two requests may create the same user at once (a partner's claim and the user's first
		// message): the first insert wins, the other keeps its key and pool.
		inserted, err := dbOf(tx).insertUser(ctx, u, userRow{network: string(network), suite: int64(s.CipherSuite), priv: priv, pub: s.Public}, p.now())
		if err != nil || !inserted {
			return err
		}
		return p.replenish(ctx, tx, &user{URI: u, Network: network, Signer: s})
	})
	return err
}

func loadUser(ctx context.Context, q store.Querier, u event.UserURI) (*user, error) {
	r, ok, err := dbOf(q).userRow(ctx, u)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownUser, u)
	}
	priv, err := q.Unseal(sealedSigPrivate, r.priv, string(u))
	if err != nil {
		return nil, fmt.Errorf("provider: signature key of %s: %w", u, err)
	}
	return &user{URI: u, Network: event.Network(r.network), Signer: &mls.Signer{CipherSuite: mls.CipherSuite(r.suite), Private: priv, Public: r.pub}}, nil
}

// replenish tops the user's pool up to PoolSize unclaimed, unexpired one-time KeyPackages plus
// one unclaimed last-resort KeyPackage.
func (p *Provider) replenish(ctx context.Context, tx *store.Tx, u *user) error {
	oneTime, lastResort, err := dbOf(tx).poolCounts(ctx, u.URI, p.now())
	if err != nil {
		return err
	}
	for i := oneTime; i < p.cfg.PoolSize; i++ {
		if err := p.newKeyPackage(ctx, tx, u, false); err != nil {
			return err
		}
	}
	if lastResort == 0 {
		return p.newKeyPackage(ctx, tx, u, true)
	}
	return nil
}

func (p *Provider) newKeyPackage(ctx context.Context, tx *store.Tx, u *user, lastResort bool) error {
	kp, priv, err := mls.NewKeyPackage(u.Signer, credentialOf(u.URI), mls.KeyPackageOptions{
		Lifetime: p.cfg.KeyPackageLifetime, LastResort: lastResort,
	})
	if err != nil {
		return fmt.Errorf("provider: KeyPackage for %s: %w", u.URI, err)
	}
	ref, err := kp.Ref()
	if err != nil {
		return fmt.Errorf("provider: KeyPackageRef: %w", err)
	}
	enc, err := kp.Encode()
	if err != nil {
		return fmt.Errorf("provider: encode KeyPackage: %w", err)
	}
	// Expire an hour before the KeyPackage's not_after so that a claimed one is still valid
	// when the claimer commits.
	exp := int64(kp.LeafNode.Lifetime.NotAfter)*1000 - 3600*1000
	refHex := hex.EncodeToString(ref)
	ip, err := tx.Seal(sealedInitPrivate, priv.InitPrivate, refHex)
	if err != nil {
		return fmt.Errorf("provider: seal KeyPackage keys: %w", err)
	}
	ep, err := tx.Seal(sealedEncPrivate, priv.EncryptionPrivate, refHex)
	if err != nil {
		return fmt.Errorf("provider: seal KeyPackage keys: %w", err)
	}
	return dbOf(tx).insertKeyPackage(ctx, refHex, keyPackageRow{user: string(u.URI), enc: enc, ip: ip, ep: ep, lastResort: lastResort, expiresAt: exp})
}

// claimKeyPackage hands out one KeyPackage of u: an unclaimed one-time one if any, else the
// unclaimed last-resort one. The returned KeyPackage is marked claimed (never returned again) and
// the pool is replenished in the same transaction.
func (p *Provider) claimKeyPackage(ctx context.Context, tx *store.Tx, u *user, suites []mls.CipherSuite) (*mls.KeyPackage, error) {
	ok := false
	for _, cs := range suites {
		if cs == u.Signer.CipherSuite {
			ok = true
		}
	}
	if !ok {
		return nil, errNoCompatible
	}
	_, enc, found, err := dbOf(tx).claimNextKeyPackage(ctx, u.URI, p.now())
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, errExhausted
	}
	kp, err := mls.DecodeKeyPackage(enc)
	if err != nil {
		return nil, fmt.Errorf("provider: stored KeyPackage: %w", err)
	}
	if err := dbOf(tx).boundClaimed(ctx, u.URI, p.cfg.MaxClaimed); err != nil {
		return nil, err
	}
	if err := p.replenish(ctx, tx, u); err != nil {
		return nil, err
	}
	return kp, nil
}

// Claimed KeyPackages wait for the Welcome that uses them (which deletes a one-time one). Those
// no Welcome uses are bounded in time (Config.ClaimedExpiry, pruneKeyPackages) and in number
// per user (Config.MaxClaimed, boundClaimed), so that claims cannot grow the store: a user's
// rows are at most PoolSize + 1 unclaimed plus MaxClaimed claimed.
const (
	// DefaultClaimedExpiry covers the hub's fanout retries (outboxExpire).
	DefaultClaimedExpiry = outboxExpire
	// DefaultMaxClaimed is the default of Config.MaxClaimed.
	DefaultMaxClaimed = 16
)

// pruneKeyPackages deletes claimed KeyPackages older than ClaimedExpiry and unclaimed ones past
// their expiry (never handed out, replaced by replenish), with their private keys.
func (p *Provider) pruneKeyPackages(ctx context.Context) error {
	now := p.now()
	n, err := p.db().pruneKeyPackages(ctx, now.Add(-p.cfg.ClaimedExpiry), now)
	if err != nil {
		return err
	}
	if n > 0 {
		p.log.Debug("pruned KeyPackages", "rows", n)
	}
	return nil
}

var (
	errNoCompatible = errors.New("provider: no KeyPackage of an acceptable cipher suite")
	errExhausted    = errors.New("provider: KeyPackages exhausted")
)

// keyPackageByRef finds one of our KeyPackages (claimed or not) by reference, for a Welcome.
func keyPackageByRef(ctx context.Context, q store.Querier, ref []byte) (event.UserURI, *mls.KeyPackage, *mls.KeyPackagePrivate, bool, error) {
	refHex := hex.EncodeToString(ref)
	r, found, err := dbOf(q).keyPackageRow(ctx, refHex)
	if err != nil || !found {
		return "", nil, nil, false, err
	}
	kp, err := mls.DecodeKeyPackage(r.enc)
	if err != nil {
		return "", nil, nil, false, fmt.Errorf("provider: stored KeyPackage: %w", err)
	}
	ip, err := q.Unseal(sealedInitPrivate, r.ip, refHex)
	var ep []byte
	if err == nil {
		ep, err = q.Unseal(sealedEncPrivate, r.ep, refHex)
	}
	if err != nil {
		return "", nil, nil, false, fmt.Errorf("provider: KeyPackage keys: %w", err)
	}
	return event.UserURI(r.user), kp, &mls.KeyPackagePrivate{InitPrivate: ip, EncryptionPrivate: ep}, r.lastResort, nil
}

// KeyMaterial serves a claim for one of our users' KeyPackages (protocol.Handler).
//
// The requester must be a user of the calling provider, or, when the caller is the hub of the
// room the claim is for, of any provider but ours (the hub relays its followers' claims
// unchanged): anything else is 403 before any user is looked at. A caller that may not reach
// the target (Config.Reach) and a target we do not know get the same answer, byte for byte
// (unreachable), so that a claim does not tell who exists.
func (p *Provider) KeyMaterial(ctx context.Context, peer protocol.Peer, uri event.UserURI, req *protocol.KeyMaterialRequest) (*protocol.KeyMaterialResponse, error) {
	if uri.Domain() != p.cfg.Domain {
		return p.relayKeyMaterial(ctx, peer, uri, req) // relay.go
	}
	requester, err := p.claimRequester(peer, req)
	if err != nil {
		return nil, err
	}
	if p.cfg.Reach != nil {
		ok, err := p.cfg.Reach.Allows(ctx, uri, requester)
		if err != nil {
			return nil, fmt.Errorf("provider: reachability of %s: %w", uri, err)
		}
		if !ok {
			p.refused("keyMaterial", "no_consent")
			return unreachable(uri), nil
		}
	}
	if err := p.userOnDemand(ctx, uri); err != nil && !errors.Is(err, ErrUnknownUser) {
		return nil, err
	}
	resp := &protocol.KeyMaterialResponse{Protocol: protocol.ProtocolMLS10, UserURI: protocol.IdentifierURI(uri)}
	err = p.st.InTx(ctx, func(tx *store.Tx) error {
		u, err := loadUser(ctx, tx, uri)
		if errors.Is(err, ErrUnknownUser) {
			p.refused("keyMaterial", "unknown_user")
			resp = unreachable(uri)
			return nil
		}
		if err != nil {
			return err
		}
		client := protocol.IdentifierURI(event.NewDeviceURI(p.cfg.Domain, uri.Local(), clientID))
		kp, err := p.claimKeyPackage(ctx, tx, u, req.AcceptableCipherSuites)
		switch {
		case errors.Is(err, errNoCompatible):
			resp.UserStatus = protocol.KeyMaterialUserNoCompatibleMaterial
			resp.Clients = []protocol.ClientKeyMaterial{{ClientStatus: protocol.KeyMaterialClientNothingCompatible, ClientURI: client}}
			return nil
		case errors.Is(err, errExhausted):
			resp.UserStatus = protocol.KeyMaterialUserNoCompatibleMaterial
			resp.Clients = []protocol.ClientKeyMaterial{{ClientStatus: protocol.KeyMaterialClientExhausted, ClientURI: client}}
			return nil
		case err != nil:
			return err
		}
		resp.UserStatus = protocol.KeyMaterialUserSuccess
		resp.Clients = []protocol.ClientKeyMaterial{{ClientStatus: protocol.KeyMaterialClientSuccess, ClientURI: client, KeyPackage: kp}}
		return nil
	})
	if err != nil {
		return nil, err
	}
	p.log.Debug("key material claimed", "peer", peer.Domain, "status", resp.UserStatus)
	return resp, nil
}

// unreachable is the answer for a user the caller may not learn about: one we do not know, one
// who does not accept contact from the requester, one the hub cannot relay a claim to.
// noConsent stands in for userUnknown (protocol-06 §5.2); the answer names the target only, so
// it is the same bytes in every case.
func unreachable(target event.UserURI) *protocol.KeyMaterialResponse {
	return &protocol.KeyMaterialResponse{Protocol: protocol.ProtocolMLS10, UserStatus: protocol.KeyMaterialUserNoConsent, UserURI: protocol.IdentifierURI(target)}
}

// claimRequester returns the requester of a claim for one of our users, refused (403) unless it
// is a user of the calling provider, or of another partner's provider when the caller is the hub
// of the claim's room, with a basic credential naming it. A requester of our own domain never
// comes from a partner (our users claim from our pool).
func (p *Provider) claimRequester(peer protocol.Peer, req *protocol.KeyMaterialRequest) (event.UserURI, error) {
	forbid := func(reason, detail string) (event.UserURI, error) {
		p.refused("keyMaterial", reason)
		p.log.Info("key material claim refused", "peer", peer.Domain, "reason", detail)
		return "", &protocol.StatusError{Status: http.StatusForbidden, Detail: detail}
	}
	requester, err := event.ParseUserURI(string(req.RequestingUser))
	if err != nil {
		return forbid("bad_requester", "requestingUser is not a user URI")
	}
	if u, err := userOfCredential(&req.RequesterCredential); err != nil || u != requester {
		return forbid("bad_requester", "requesterCredential must be a basic credential of requestingUser")
	}
	relayed := false
	if room, err := event.ParseRoomURI(string(req.RoomID)); err == nil && room.Domain() == peer.Domain {
		relayed = true // the room's hub relays a follower's claim
	}
	if requester.Domain() == p.cfg.Domain || (requester.Domain() != peer.Domain && !relayed) {
		return forbid("foreign_requester", fmt.Sprintf("requestingUser must be a user of %s", peer.Domain))
	}
	return requester, nil
}

func hexRef(ref []byte) string { return hex.EncodeToString(ref) }
