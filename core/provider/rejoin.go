package provider

import (
	"context"
	"errors"
	"fmt"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/mls"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// The hub signs GroupInfoResponses with a provider-wide signature key kept in the store's KV.
const kvScope store.Scope = "provider"

// hubSigner returns the hub's provider-wide signature key (GroupInfoResponses, external_senders,
// regenerated proposals). The first caller creates it; a concurrent first caller that loses the compare-and-swap uses
// the winner's key (every room's external_senders names this one key).
func (p *Provider) hubSigner(ctx context.Context) (*mls.Signer, error) {
	kv := p.st.KV(kvScope)
	for attempt := 0; ; attempt++ {
		e, err := kv.Get(ctx, "hub-signer")
		if err == nil && len(e.Value) > 2 {
			n := int(e.Value[0])<<8 | int(e.Value[1])
			if 2+n <= len(e.Value) {
				return &mls.Signer{CipherSuite: p.cfg.CipherSuite, Private: e.Value[2 : 2+n], Public: e.Value[2+n:]}, nil
			}
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("provider: hub key: %w", err)
		}
		s, err := mls.GenerateSigner(p.cfg.CipherSuite)
		if err != nil {
			return nil, err
		}
		v := append([]byte{byte(len(s.Private) >> 8), byte(len(s.Private))}, s.Private...)
		v = append(v, s.Public...)
		_, err = kv.CompareAndSwap(ctx, "hub-signer", 0, v)
		switch {
		case err == nil:
			return s, nil
		case errors.Is(err, store.ErrConflict) && attempt == 0:
			continue // created concurrently: read it
		default:
			return nil, fmt.Errorf("provider: store hub key: %w", err)
		}
	}
}

// GroupInfo answers an external joiner (protocol.HubHandler): only a listed, not banned
// participant of the requesting provider may rejoin (canAddOwnClient). Anyone else gets
// notAuthorized, also for a room that does not exist: the answer does not tell which rooms do.
func (p *Provider) GroupInfo(ctx context.Context, peer protocol.Peer, room event.RoomURI, req *protocol.GroupInfoRequest) (*protocol.GroupInfoResponse, error) {
	fail := func(reason string) (*protocol.GroupInfoResponse, error) {
		p.refused("groupInfo", reason)
		return &protocol.GroupInfoResponse{Protocol: protocol.ProtocolMLS10, RoomID: protocol.IdentifierURI(room), Status: protocol.GroupInfoNotAuthorized}, nil
	}
	u, err := userOfCredential(&req.RequestingCredential)
	if err != nil || u.Domain() != peer.Domain || req.CipherSuite != p.cfg.CipherSuite {
		return fail("bad_requester")
	}
	unlock := p.lockRoom(room)
	defer unlock()
	rr, err := p.db().loadRoom(ctx, room)
	if err != nil {
		return nil, err
	}
	if rr == nil {
		return fail("not_a_participant")
	}
	role, ok, err := p.db().roleOf(ctx, room, u)
	if err != nil {
		return nil, err
	}
	if !ok || role == bannedRole {
		return fail("not_a_participant")
	}
	clients, err := loadClients(ctx, p.st, room)
	if err != nil {
		return nil, err
	}
	var gi *mls.MLSMessage
	for _, c := range clients {
		if c.Group.Epoch() == rr.Epoch {
			if gi, err = c.Group.GroupInfo(); err != nil {
				return nil, fmt.Errorf("provider: GroupInfo: %w", err)
			}
			break
		}
	}
	var tree mls.RatchetTree
	if gi == nil {
		// No client of ours in the room's epoch: the committer-signed GroupInfo stored with the
		// room's public view (publicview.go, P20).
		if gi, tree, err = publicGroupInfo(ctx, p.st, room, rr.Epoch); err != nil {
			return nil, err
		}
	}
	if gi == nil {
		return nil, catchingUp()
	}
	if tree == nil {
		if tree, err = treeOf(gi.GroupInfo); err != nil {
			return nil, err
		}
	}
	hs, err := p.hubSigner(ctx)
	if err != nil {
		return nil, err
	}
	hub := protocol.ExternalSender(p.hubSender(hs))
	tbe := &protocol.GroupInfoRatchetTreeTBE{GroupInfo: gi.GroupInfo,
		RatchetTreeOption: protocol.RatchetTreeOption{Representation: protocol.RatchetTreeFull, RatchetTree: tree}}
	if tbe.PendingProposals, err = pendingForJoiner(ctx, p.st, room, rr.Epoch); err != nil {
		return nil, err
	}
	return protocol.SealGroupInfoResponse(req, protocol.IdentifierURI(room), hub, hs.Private, tbe)
}

// rejoin brings u's client in a partner's room back to the current epoch by an external commit
// after it missed fanout (room lock held).
func (p *Provider) rejoin(ctx context.Context, room event.RoomURI, u event.UserURI) error {
	usr, err := loadUser(ctx, p.st, u)
	if err != nil {
		return err
	}
	old, err := loadClient(ctx, p.st, room, u)
	if err != nil {
		return err
	}
	priv, pub, err := p.cfg.CipherSuite.GenerateHPKEKeyPair()
	if err != nil {
		return err
	}
	req := &protocol.GroupInfoRequest{CipherSuite: p.cfg.CipherSuite, RequestingSignatureKey: usr.Signer.Public,
		RequestingCredential: credentialOf(u), GroupInfoPublicKey: pub}
	if err := req.Sign(usr.Signer.Private); err != nil {
		return err
	}
	resp, err := p.client.GroupInfo(ctx, room, req)
	if err != nil {
		return fmt.Errorf("provider: groupInfo at hub: %w", err)
	}
	tbe, err := resp.Open(priv)
	if err != nil {
		return fmt.Errorf("provider: groupInfo: %w", err)
	}
	// A fresh leaf signature key: the old leaf (same user) stays in the tree until it is
	// removed, and MLS forbids two leaves with one key.
	leafSigner, err := mls.GenerateSigner(p.cfg.CipherSuite)
	if err != nil {
		return err
	}
	if err := p.recordLeafKey(ctx, u, leafSigner.Public); err != nil {
		return err
	}
	pc, err := mls.ExternalJoin(tbe.GroupInfo, leafSigner, credentialOf(u), mls.ExternalJoinOptions{RatchetTree: treeOption(&tbe.RatchetTreeOption)})
	if err != nil {
		return fmt.Errorf("provider: external join: %w", err)
	}
	gi, err := pc.State.GroupInfo()
	if err != nil {
		return fmt.Errorf("provider: GroupInfo after external join: %w", err)
	}
	ur, err := p.client.Update(ctx, room, &protocol.UpdateRequest{Bundle: protocol.HandshakeBundle{ProposalOrCommit: pc.Commit,
		GroupInfoOption:   &protocol.GroupInfoOption{Representation: protocol.GroupInfoFull, GroupInfo: gi.GroupInfo},
		RatchetTreeOption: &protocol.RatchetTreeOption{Representation: protocol.RatchetTreeDistributionService}}})
	if err != nil {
		return fmt.Errorf("provider: external commit at hub: %w", err)
	}
	if ur.ResponseCode != protocol.UpdateSuccess {
		return fmt.Errorf("provider: hub refused the external commit (%d): %s", ur.ResponseCode, ur.ErrorDescription)
	}
	// The pending proposals of the epoch we joined from stay out of the external commit (RFC 9420
	// §12.4.3.2); the hub re-issues them in the new epoch and they arrive with its fanout.
	p.log.Info("rejoined by external commit", "epoch", pc.State.Epoch(), "pending", len(tbe.PendingProposals))
	next, err := pc.Confirm()
	if err != nil {
		return err
	}
	return p.st.InTx(ctx, func(tx *store.Tx) error {
		if err := saveClient(ctx, tx, room, old, next); err != nil {
			return err
		}
		return dbOf(tx).upsertRoom(ctx, room, next.Epoch(), p.now())
	})
}
