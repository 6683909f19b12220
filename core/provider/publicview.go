package provider

// The hub's public view of a room (docs/interop.md P20): a core/mls PublicGroup per hosted room,
// stored in provider_public_groups and moved to the next epoch, compare-and-set on epoch, in the
// transaction that accepts a commit. The hub reads every follower's commit and proposal with it
// (Update, updateProposals) and takes the room state for messages from it (stateAt), so it keeps
// sequencing a room after its last local user left; /groupInfo serves the GroupInfo stored with
// it when no client of ours is in the room.

import (
	"context"
	"fmt"
	"net/http"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/mls"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// groupView is what the hub reads of a room's group in one epoch: a client's *mls.Group or the
// room's *mls.PublicGroup (the same accessors and proposal/commit processing).
type groupView interface {
	GroupID() []byte
	Epoch() uint64
	Members() []mls.Member
	Member(mls.LeafIndex) (mls.Member, bool)
	Extensions() mls.Extensions
	AppData() (mls.AppDataDictionary, error)
	Process(*mls.MLSMessage, mls.ProcessOptions) (*mls.Received, error)
}

var (
	_ groupView = (*mls.Group)(nil)
	_ groupView = (*mls.PublicGroup)(nil)
)

// catchingUp answers a request the hub cannot serve before its room state reaches the room's
// epoch (503 with Retry-After).
func catchingUp() error {
	return &protocol.StatusError{Status: http.StatusServiceUnavailable, RetryAfter: 1e9, Detail: "room state catching up"}
}

// publicView is a room's stored public view and the GroupInfo of its epoch (nil when the commit
// that started the epoch brought none in full).
type publicView struct {
	group     *mls.PublicGroup
	groupInfo *mls.GroupInfo
}

// loadPublicView returns room's stored public view (nil when none is stored).
func loadPublicView(ctx context.Context, q store.Querier, room event.RoomURI) (*publicView, error) {
	raw, gi, ok, err := dbOf(q).publicViewRow(ctx, room)
	if err != nil || !ok {
		return nil, err
	}
	v := &publicView{}
	if v.group, err = mls.LoadPublicGroup(raw); err != nil {
		return nil, fmt.Errorf("provider: public view of %s: %w", room, err)
	}
	if gi != nil {
		m, err := mls.DecodeMLSMessage(gi)
		if err != nil || m.GroupInfo == nil {
			return nil, fmt.Errorf("provider: GroupInfo stored for %s: %v", room, err)
		}
		v.groupInfo = m.GroupInfo
	}
	return v, nil
}

// viewAt returns room's public view at epoch: the stored one, or else the view of a client of
// ours at epoch (a room whose view has not been stored yet); nil when neither is at epoch.
func (p *Provider) viewAt(ctx context.Context, q store.Querier, room event.RoomURI, epoch uint64) (*mls.PublicGroup, error) {
	v, err := loadPublicView(ctx, q, room)
	if err != nil {
		return nil, err
	}
	if v != nil && v.group.Epoch() == epoch {
		return v.group, nil
	}
	c, err := readerAt(ctx, q, room, epoch)
	if err != nil || c == nil {
		return nil, err
	}
	return c.Group.Public(), nil
}

// advancePublic is acceptCommit's public-view step (tx, room lock held): the view moves from
// h.epoch to the next epoch, h.next when the caller processed the commit with it already, else
// by processing h.commit here (a local commit); a full GroupInfo the commit came with must be the
// new epoch's and is stored with it. Without a view at h.epoch (a room of an older version in
// which we have no client) nothing is stored.
func (p *Provider) advancePublic(ctx context.Context, tx *store.Tx, room event.RoomURI, h *handshake) error {
	next := h.next
	if next == nil {
		before, err := p.viewAt(ctx, tx, room, h.epoch)
		if err != nil {
			return err
		}
		if before == nil {
			p.log.Warn("no public view of the room at the commit's epoch", "room", room, "epoch", h.epoch)
			return nil
		}
		if err := cachePending(ctx, tx, room, before); err != nil {
			return err
		}
		rec, err := before.Process(h.commit, mls.ProcessOptions{AppData: roomUpdater})
		if err != nil || rec.Commit == nil {
			return fmt.Errorf("%w: the public view refuses the commit: %v", errInvalidProposal, err)
		}
		next = rec.Commit.Public
	}
	if h.groupInfo != nil {
		if err := next.VerifyGroupInfo(h.groupInfo); err != nil {
			return fmt.Errorf("%w: the bundle's GroupInfo is not the new epoch's: %w", errInvalidProposal, err)
		}
	}
	return savePublicView(ctx, tx, room, h.epoch, next, h.groupInfo)
}

// savePublicView stores next as room's view, compare-and-set: the stored view (if any) must be at
// epoch before or older (a view never goes back); ErrConflict otherwise.
func savePublicView(ctx context.Context, tx *store.Tx, room event.RoomURI, before uint64, next *mls.PublicGroup, gi *mls.GroupInfo) error {
	raw, err := next.MarshalBinary()
	if err != nil {
		return fmt.Errorf("provider: encode public view: %w", err)
	}
	var giRaw []byte
	if gi != nil {
		if giRaw, err = (&mls.MLSMessage{Version: mls.ProtocolVersionMLS10, WireFormat: mls.WireFormatGroupInfo, GroupInfo: gi}).Encode(); err != nil {
			return fmt.Errorf("provider: encode GroupInfo: %w", err)
		}
	}
	return dbOf(tx).savePublicViewRow(ctx, room, before, next.Epoch(), raw, giRaw)
}

// publicGroupInfo returns the GroupInfo stored with room's view at epoch and the view's tree,
// after checking once more that they belong together (nil when there is none).
func publicGroupInfo(ctx context.Context, q store.Querier, room event.RoomURI, epoch uint64) (*mls.MLSMessage, mls.RatchetTree, error) {
	v, err := loadPublicView(ctx, q, room)
	if err != nil || v == nil || v.groupInfo == nil || v.group.Epoch() != epoch {
		return nil, nil, err
	}
	if err := v.group.VerifyGroupInfo(v.groupInfo); err != nil {
		return nil, nil, fmt.Errorf("provider: stored GroupInfo of %s: %w", room, err)
	}
	return &mls.MLSMessage{Version: mls.ProtocolVersionMLS10, WireFormat: mls.WireFormatGroupInfo, GroupInfo: v.groupInfo}, v.group.RatchetTree(), nil
}

// bundleGroupInfo returns a commit bundle's GroupInfo when it is sent in full (nil otherwise).
func bundleGroupInfo(b *protocol.HandshakeBundle) *mls.GroupInfo {
	if o := b.GroupInfoOption; o != nil && o.Representation == protocol.GroupInfoFull {
		return o.GroupInfo
	}
	return nil
}
