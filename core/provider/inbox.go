package provider

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/abuse"
	"github.com/mimi-gateway/mimi-gateway/core/bus"
	"github.com/mimi-gateway/mimi-gateway/core/content"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/mls"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// The inbox holds fanout for our own clients, from a partner hub's /notify or from our own hub,
// in acceptance order. One worker applies it: commits advance every local client, Welcomes make
// new clients, application messages are decrypted once per room and published on mimi.in.

func insertInbox(ctx context.Context, tx *store.Tx, room event.RoomURI, sender event.UserURI, ts uint64, m *mls.MLSMessage, tree mls.RatchetTree) error {
	raw, err := m.Encode()
	if err != nil {
		return fmt.Errorf("provider: encode fanout: %w", err)
	}
	var tb []byte
	if tree != nil {
		if tb, err = tree.Encode(); err != nil {
			return fmt.Errorf("provider: encode tree: %w", err)
		}
	}
	return dbOf(tx).insertInbox(ctx, room, sender, ts, raw, tb)
}

var _ protocol.NotifyCommitter = (*Provider)(nil)

// NotifyCommitted wakes the inbox worker once a partner hub's fanout is committed
// (protocol.NotifyCommitter): woken from inside Notify, the worker could read the inbox before
// the commit, find nothing and sleep until its next tick (up to a second per message).
func (p *Provider) NotifyCommitted(event.RoomURI) { p.kick() }

// Notify stores a partner hub's fanout durably (protocol.Handler); the inbox worker applies it
// once it is committed (NotifyCommitted).
func (p *Provider) Notify(ctx context.Context, tx *store.Tx, n *protocol.Notification) error {
	for _, f := range n.Messages {
		if err := insertInbox(ctx, tx, n.Room, "", f.Timestamp, f.Message, treeOption(f.RatchetTreeOption)); err != nil {
			return err
		}
		if err := p.keepFrank(ctx, tx, n.Room, f.Message, f.Frank, f.Timestamp); err != nil { // franking.go
			return err
		}
		// A proposal bundle's further proposals, or the proposals the hub regenerated after an
		// external commit: applied right after the message they came with.
		for _, m := range append(f.MoreProposals, f.ExternalProposals...) {
			if err := insertInbox(ctx, tx, n.Room, "", f.Timestamp, m, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

func treeOption(o *protocol.RatchetTreeOption) mls.RatchetTree {
	if o != nil && o.Representation == protocol.RatchetTreeFull {
		return o.RatchetTree
	}
	return nil
}

// kick wakes the inbox worker.
func (p *Provider) kick() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *Provider) runInbox(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		for {
			n, err := p.inboxOnce(ctx)
			if err != nil && ctx.Err() == nil {
				p.log.Warn("inbox", "err", err)
			}
			if err != nil || n == 0 {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-p.wake:
		case <-t.C:
			p.sweepPending(ctx)
		}
	}
}

type inboxRow struct {
	id       int64
	room     event.RoomURI
	sender   event.UserURI
	accepted uint64
	msg      *mls.MLSMessage
	tree     mls.RatchetTree
}

// inboxOnce applies up to 64 rows in order and returns how many it applied.
func (p *Provider) inboxOnce(ctx context.Context) (int, error) {
	recs, err := p.db().inboxHead(ctx, 64)
	if err != nil {
		return 0, err
	}
	list := make([]inboxRow, 0, len(recs))
	for _, rec := range recs {
		r := inboxRow{id: rec.id, room: event.RoomURI(rec.room), sender: event.UserURI(rec.sender), accepted: uint64(rec.accepted)}
		if r.msg, err = mls.DecodeMLSMessage(rec.msg); err != nil {
			p.log.Warn("inbox: undecodable message dropped", "id", r.id, "err", err)
		}
		if len(rec.tree) > 0 {
			if r.tree, err = mls.DecodeRatchetTree(rec.tree); err != nil {
				p.log.Warn("inbox: undecodable tree", "id", r.id, "err", err)
			}
		}
		list = append(list, r)
	}
	// Application messages are applied in batches (inboxBatch): consecutive ones, of any rooms,
	// share one pipelined publish and one transaction. Any other row ends the batch before it.
	b := p.newInboxBatch()
	for i := range list {
		r := &list[i]
		if r.application() {
			if err := b.add(ctx, r); err != nil {
				b.abort()
				return 0, fmt.Errorf("provider: apply inbox row %d: %w", r.id, err)
			}
			continue
		}
		if err := b.commit(ctx); err != nil {
			return 0, fmt.Errorf("provider: apply inbox rows: %w", err)
		}
		if err := p.applyRow(ctx, r); err != nil {
			return i, fmt.Errorf("provider: apply inbox row %d: %w", r.id, err)
		}
	}
	if err := b.commit(ctx); err != nil {
		return 0, fmt.Errorf("provider: apply inbox rows: %w", err)
	}
	return len(list), nil
}

// application reports whether r holds an application message.
func (r *inboxRow) application() bool {
	return r.msg != nil && r.msg.WireFormat == mls.WireFormatPrivateMessage && r.msg.PrivateMessage.ContentType == mls.ContentTypeApplication
}

func (p *Provider) applyRow(ctx context.Context, r *inboxRow) error {
	unlock := p.lockRoom(r.room)
	defer unlock()
	del := func(tx *store.Tx) error {
		return dbOf(tx).deleteInboxRows(ctx, r.id)
	}
	if r.msg == nil {
		return p.st.InTx(ctx, del)
	}
	if r.msg.WireFormat == mls.WireFormatWelcome {
		return p.applyWelcome(ctx, r, del)
	}
	if err := p.applyHandshake(ctx, r, del); err != nil {
		return err
	}
	// Proposals now pending (or a commit that left some): commit them if we are the designated
	// committer. A failure is retried by the inbox ticker (sweepPending).
	if err := p.commitPending(ctx, r.room, false); err != nil && ctx.Err() == nil {
		p.log.Info("pending proposals not committed yet", "room", r.room, "err", err)
	}
	return nil
}

// applyHandshake processes a commit (or proposal) with every local client still in its epoch.
func (p *Provider) applyHandshake(ctx context.Context, r *inboxRow, del func(*store.Tx) error) error {
	clients, err := loadClients(ctx, p.st, r.room)
	if err != nil {
		return err
	}
	type change struct {
		c       *clientState
		g       *mls.Group
		removed bool
	}
	var changes []change
	var epoch uint64
	var proposal *mls.Received // a proposal, as one client processed it
	var proposalIn *mls.Group
	var published bool
	for _, c := range clients {
		rec, err := c.Group.Process(r.msg, mls.ProcessOptions{AppData: roomUpdater})
		switch {
		case errors.Is(err, mls.ErrOwnCommit):
			continue
		case err != nil:
			// Another epoch (already applied, e.g. the committer's own client) or a message
			// this client cannot use.
			p.log.Debug("inbox: handshake not applied", "room", r.room, "err", err)
			continue
		case rec.Commit == nil:
			changes = append(changes, change{c: c, g: c.Group}) // proposal cached by reference
			proposal, proposalIn = rec, c.Group
		case rec.Commit.SelfRemoved:
			changes = append(changes, change{c: c, removed: true})
		default:
			changes = append(changes, change{c: c, g: rec.Commit.State})
			epoch = rec.Commit.Epoch
		}
		if rec.Commit != nil && !published {
			// A leaf naming one of our users that we did not create: the hub sequenced an
			// impersonation. None of our clients applies the commit.
			if m, err := forgedOwnLeaf(ctx, p.st, p.cfg.Domain, changedMembers(leafChanges(c.Group, rec.Commit))); err != nil {
				return err
			} else if m != nil {
				return p.st.InTx(ctx, func(tx *store.Tx) error {
					if err := p.raiseCredentialAlert(ctx, tx, r.room, "commit", m); err != nil {
						return err
					}
					return del(tx)
				})
			}
			published = true
			if err := p.roomStateApplied(ctx, r, c.Group, rec); err != nil {
				return err
			}
		}
	}
	return p.st.InTx(ctx, func(tx *store.Tx) error {
		for _, ch := range changes {
			var err error
			if ch.removed {
				err = p.deleteClient(ctx, tx, r.room, ch.c.User)
			} else {
				err = saveClient(ctx, tx, r.room, ch.c, ch.g)
			}
			if err != nil {
				return err
			}
		}
		if epoch > 0 && !p.isHub(r.room) {
			if err := dbOf(tx).upsertRoom(ctx, r.room, epoch, p.now()); err != nil {
				return err
			}
			if err := clearProposals(ctx, tx, r.room, epoch-1); err != nil {
				return err
			}
		}
		if proposal != nil {
			if err := mirrorProposal(ctx, tx, r.room, r.accepted, r.msg, proposalIn, proposal); err != nil {
				return err
			}
		}
		return del(tx)
	})
}

// applyWelcome joins every local user whose KeyPackage the Welcome is for, and asks their
// adapters for a portal.
func (p *Provider) applyWelcome(ctx context.Context, r *inboxRow, del func(*store.Tx) error) error {
	w := r.msg.Welcome
	type joined struct {
		u          event.UserURI
		g          *mls.Group
		ref        []byte
		lastResort bool
	}
	var (
		js      []joined
		joiners []mls.Joiner
		users   = map[event.UserURI]*user{}
		forged  []*mls.Member
	)
	for _, s := range w.Secrets {
		u, kp, priv, lastResort, err := keyPackageByRef(ctx, p.st, s.NewMember)
		if err != nil {
			return err
		}
		if kp == nil {
			continue // another provider's client
		}
		if ok, err := dbOf(p.st).hasClient(ctx, r.room, u); err != nil {
			return err
		} else if ok {
			continue // already joined (redelivery)
		}
		usr, err := loadUser(ctx, p.st, u)
		if err != nil {
			return err
		}
		users[u] = usr
		js = append(js, joined{u: u, ref: s.NewMember, lastResort: lastResort})
		joiners = append(joiners, mls.Joiner{KeyPackage: kp, Private: priv, Signer: usr.Signer})
	}
	// All our joiners at once (the tree is validated once); if one cannot join, each on its own.
	opts := mls.JoinOptions{RatchetTree: r.tree}
	if gs, err := mls.JoinFromWelcomeMany(w, joiners, opts); err == nil {
		for i := range js {
			js[i].g = gs[i]
		}
	} else {
		ok := js[:0]
		for i, j := range js {
			if j.g, err = mls.JoinFromWelcome(w, joiners[i].KeyPackage, joiners[i].Private, joiners[i].Signer, opts); err != nil {
				p.log.Warn("inbox: Welcome not usable", "room", r.room, "err", err)
				continue
			}
			ok = append(ok, j)
		}
		js = ok
	}
	// The joiners share the group's members: a group with an impersonation of one of ours is
	// not joined.
	if len(js) > 0 {
		if m, err := forgedOwnLeaf(ctx, p.st, p.cfg.Domain, js[0].g.Members()); err != nil {
			return err
		} else if m != nil {
			forged, js = append(forged, m), nil
		}
	}
	for _, j := range js {
		usr := users[j.u]
		env := &event.Envelope{ID: eventID("portal", r.room, []byte(j.u)), Kind: event.KindPortalRequest, Room: r.room,
			Sender: j.u, Origin: event.Origin{Network: event.NetworkMIMI}, Timestamp: time.UnixMilli(int64(r.accepted)),
			Membership: &event.Membership{Action: event.MembershipInvite, Target: j.u}}
		// A 1:1 (base_room_policy fixed_membership) reaches the user as one, from the peer; a
		// group from the member whose commit added her (the Welcome's signer), so that the
		// invitation can name who invited.
		if st, err := stateOfGroup(j.g); err == nil {
			if peer := directPeer(st, j.u); peer != "" {
				env.Sender, env.Membership.Direct = peer, true
			}
		}
		if !env.Membership.Direct {
			if inviter := welcomeSigner(j.g); inviter != "" && inviter != j.u {
				env.Sender = inviter
			}
		}
		if err := p.cfg.Bus.PublishIn(ctx, usr.Network, env); err != nil {
			return fmt.Errorf("provider: publish portal request: %w", err)
		}
	}
	return p.st.InTx(ctx, func(tx *store.Tx) error {
		for _, m := range forged {
			if err := p.raiseCredentialAlert(ctx, tx, r.room, "welcome", m); err != nil {
				return err
			}
		}
		for _, j := range js {
			if err := p.insertClient(ctx, tx, r.room, j.u, j.g); err != nil {
				return err
			}
			if !p.isHub(r.room) {
				if err := dbOf(tx).upsertRoom(ctx, r.room, j.g.Epoch(), p.now()); err != nil {
					return err
				}
			}
			if !j.lastResort {
				if err := dbOf(tx).deleteKeyPackage(ctx, hex.EncodeToString(j.ref)); err != nil {
					return fmt.Errorf("provider: drop used KeyPackage: %w", err)
				}
			}
		}
		return del(tx)
	})
}

// readApplication decrypts r's application message with the room's designated reader: the
// local client in the message's epoch with the lowest user URI, or, for that client's own
// messages (which their sender cannot decrypt), the next one. The other local clients' states
// are neither loaded nor changed by application messages, so the cost of a message does not
// grow with the number of local users in the room. It returns no reader for a message nobody
// here can or needs to read (our only local client's own, another epoch's, or undecryptable).
// Clients come from get; a client that did not read is handed to unused. A message that no
// adapter here needs (a local user's, when every local user of the room is on that user's
// network) is not decrypted: the reader's ratchet for its sender then stays behind, which it
// may (it ratchets forward when a later message is needed; the needs change only with the
// clients, that is with the epoch).
func (p *Provider) readApplication(ctx context.Context, r *inboxRow, get func(event.UserURI) (*clientState, error), unused func(*clientState)) (*clientState, *mls.Received, error) {
	pm := r.msg.PrivateMessage
	users, err := p.db().clientsInEpoch(ctx, r.room, pm.Epoch)
	if err != nil {
		return nil, nil, err
	}
	for _, u := range users {
		c, err := get(u)
		if err != nil {
			return nil, nil, err
		}
		leaf, _, err := c.Group.PrivateMessageSender(pm)
		if err == nil && leaf == c.Group.LeafIndex() {
			unused(c)
			continue // the reader's own message: the next local client reads it
		}
		if err != nil {
			unused(c)
			p.log.Warn("inbox: application message undecryptable", "room", r.room, "err", err)
			return nil, nil, nil
		}
		if needed, err := p.neededHere(ctx, r.room, c.Group, leaf); err != nil || !needed {
			unused(c)
			return nil, nil, err
		}
		rec, err := c.Group.Process(r.msg, mls.ProcessOptions{})
		if err != nil {
			p.log.Warn("inbox: application message not readable", "room", r.room, "err", err)
			return nil, nil, nil
		}
		return c, rec, nil
	}
	// Our own message with no other local client: nothing to deliver here.
	p.log.Debug("inbox: application message not delivered locally", "room", r.room)
	return nil, nil, nil
}

// neededHere reports whether a message from leaf of g goes to any adapter here: always unless
// its sender is a local user and every local user of the room is on that user's network.
func (p *Provider) neededHere(ctx context.Context, room event.RoomURI, g *mls.Group, leaf mls.LeafIndex) (bool, error) {
	m, ok := g.Member(leaf)
	if !ok {
		return true, nil // Process refuses it
	}
	sender, err := userOfCredential(&m.Credential)
	if err != nil || sender.Domain() != p.cfg.Domain {
		return true, nil
	}
	su, err := loadUser(ctx, p.st, sender)
	if err != nil {
		return false, err
	}
	nets, err := p.networksOf(ctx, room, su.Network)
	return len(nets) > 0, err
}

// inboxBatch applies consecutive application messages of the inbox together: each is read by
// its room's designated reader and its envelopes are collected; commit publishes them all
// (pipelined when the bus can) and then, in one transaction, saves the readers' secret trees
// and deletes the rows. The rooms stay locked and the readers out of the cache until then. A
// crash before the commit leaves the rows and the readers' stored states as they were: the rows
// are read again and the republished envelopes deduplicated by their IDs.
type inboxBatch struct {
	p       *Provider
	unlock  map[event.RoomURI]func()
	clients map[clientKey]*clientState // taken for the batch, kept again after the commit
	read    map[clientKey]bool         // those whose state changed
	rows    []int64
	out     []bus.InMessage
	// evidence is what reports of the batch's franked messages need (core/abuse).
	evidence []evidence
}

type evidence struct {
	e    abuse.Evidence
	hash []byte
}

func (p *Provider) newInboxBatch() *inboxBatch {
	return &inboxBatch{p: p, unlock: map[event.RoomURI]func(){}, clients: map[clientKey]*clientState{}, read: map[clientKey]bool{}}
}

// client returns u's client in room for the batch.
func (b *inboxBatch) client(ctx context.Context, room event.RoomURI, u event.UserURI) (*clientState, error) {
	k := clientKey{room, u}
	if c, ok := b.clients[k]; ok {
		return c, nil
	}
	c, err := b.p.cachedClient(ctx, room, u)
	if err == nil {
		b.clients[k] = c
	}
	return c, err
}

// add reads r (an application message) and collects what it publishes.
func (b *inboxBatch) add(ctx context.Context, r *inboxRow) error {
	p := b.p
	if _, ok := b.unlock[r.room]; !ok {
		b.unlock[r.room] = p.lockRoom(r.room)
	}
	reader, rec, err := p.readApplication(ctx, r,
		func(u event.UserURI) (*clientState, error) { return b.client(ctx, r.room, u) }, func(*clientState) {})
	if err != nil {
		return err
	}
	b.rows = append(b.rows, r.id)
	if reader == nil {
		return nil
	}
	b.read[clientKey{r.room, reader.User}] = true
	sender, err := userOfCredential(rec.Credential)
	if err != nil || (r.sender != "" && sender != r.sender) {
		p.log.Warn("inbox: message sender does not match", "room", r.room)
		return nil
	}
	data, ferr := unframe(reader, rec.ApplicationData)
	if ferr != nil {
		p.log.Warn("inbox: application data discarded", "room", r.room, "err", ferr)
	}
	raw, _ := r.msg.Encode()
	msg, derr := content.Decode(data)
	env := &event.Envelope{ID: eventID("msg", r.room, raw), Kind: kindOf(msg), Room: r.room, Sender: sender,
		Content: data, Origin: event.Origin{Network: event.NetworkMIMI}, Timestamp: time.UnixMilli(int64(r.accepted))}
	if id, err := content.ComputeID(content.DefaultIDVersion, data, string(sender), string(r.room)); err == nil {
		env.MessageID = id[:]
	}
	var skip event.Network
	if sender.Domain() == p.cfg.Domain {
		su, err := loadUser(ctx, p.st, sender)
		if err != nil {
			return err
		}
		skip = su.Network
	}
	nets, err := p.networksOf(ctx, r.room, skip)
	if err != nil {
		return err
	}
	if ferr != nil || derr != nil {
		p.log.Warn("inbox: invalid MIMI content discarded", "room", r.room, "err", derr)
		nets = nil
	} else if claimed := msg.Extensions.SenderURI(); claimed != "" && claimed != string(sender) {
		// The sender shown is the leaf's credential; content that names someone else is a
		// forgery by that leaf (or its provider), not a message of the one it names.
		p.refused("notify", "sender_mismatch")
		p.log.Warn("inbox: message content names another sender than its leaf's credential; discarded", "room", r.room, "hub", r.room.Domain(), "leaf", sender)
		nets = nil
	}
	p.log.Debug("inbox: message read", "row", r.id, "room", r.room, "accepted", r.accepted, "ciphertext", digestValue(raw),
		"envelope", env.ID, "message_id", hexValue(env.MessageID), "networks", len(nets))
	for _, n := range nets {
		b.out = append(b.out, bus.InMessage{Network: n, Envelope: env})
	}
	if len(nets) > 0 && env.MessageID != nil {
		sum := sha256.Sum256(raw)
		fr, acc, ok, err := abuse.FrankOf(ctx, p.st, r.room, sum[:])
		if err != nil {
			return err
		}
		if ok {
			b.evidence = append(b.evidence, evidence{e: abuse.Evidence{Room: r.room, MessageID: env.MessageID, Sender: sender, Accepted: acc, Frank: fr, Content: data}, hash: sum[:]})
		}
	}
	return nil
}

// commit publishes the batch's envelopes, then saves its readers and deletes its rows in one
// transaction, and starts an empty batch.
func (b *inboxBatch) commit(ctx context.Context) error {
	if len(b.rows) == 0 {
		b.abort()
		return nil
	}
	p := b.p
	err := p.publishIn(ctx, b.out)
	if err == nil {
		err = p.st.InTx(ctx, func(tx *store.Tx) error {
			for k := range b.read {
				if err := saveRatchets(ctx, tx, k.room, b.clients[k]); err != nil {
					return err
				}
			}
			for _, ev := range b.evidence {
				if err := abuse.PutEvidence(ctx, tx, ev.e, ev.hash, p.now()); err != nil {
					return err
				}
			}
			return dbOf(tx).deleteInboxRows(ctx, b.rows...)
		})
	}
	if err == nil {
		for k, c := range b.clients {
			p.keepClient(k.room, c)
		}
		clear(b.clients)
	}
	b.abort()
	return err
}

// abort releases the batch's rooms and forgets its readers (their stored states are the valid
// ones) and rows.
func (b *inboxBatch) abort() {
	for _, unlock := range b.unlock {
		unlock()
	}
	clear(b.unlock)
	clear(b.clients)
	clear(b.read)
	b.rows, b.out, b.evidence = b.rows[:0], b.out[:0], b.evidence[:0]
}

// publishIn publishes msgs on mimi.in, pipelined when the bus can.
func (p *Provider) publishIn(ctx context.Context, msgs []bus.InMessage) error {
	if len(msgs) == 0 {
		return nil
	}
	if bp, ok := p.cfg.Bus.(bus.BatchPublisher); ok {
		if err := bp.PublishInBatch(ctx, msgs); err != nil {
			return fmt.Errorf("provider: publish: %w", err)
		}
		return nil
	}
	for _, m := range msgs {
		if err := p.cfg.Bus.PublishIn(ctx, m.Network, m.Envelope); err != nil {
			return fmt.Errorf("provider: publish: %w", err)
		}
	}
	return nil
}

// eventID derives a deterministic envelope ID (so a republish after a crash is deduplicated by
// the bus).
func eventID(kind string, room event.RoomURI, data []byte) event.EventID {
	h := sha256.New()
	fmt.Fprintf(h, "%s;%d:%s;", kind, len(room), room)
	h.Write(data)
	return event.EventID("mimi:" + hex.EncodeToString(h.Sum(nil)[:16]))
}

// welcomeSigner is the user whose commit added g's member (the signer of the Welcome's
// GroupInfo), or "" when g was not joined from a Welcome or the signer's credential names no user.
func welcomeSigner(g *mls.Group) event.UserURI {
	l, ok := g.WelcomeSigner()
	if !ok {
		return ""
	}
	m, ok := g.Member(l)
	if !ok {
		return ""
	}
	u, err := userOfCredential(&m.Credential)
	if err != nil {
		return ""
	}
	return u
}
