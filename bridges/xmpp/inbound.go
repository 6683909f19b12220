package xmpp

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/mimi-gateway/mimi-gateway/bridges"
	"github.com/mimi-gateway/mimi-gateway/bridges/idmap"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/xcontent"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/xstanza"
	"github.com/mimi-gateway/mimi-gateway/core/assets"
	"github.com/mimi-gateway/mimi-gateway/core/content"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// origin is where an incoming stanza comes from, mapped to MIMI.
type origin struct {
	nativeRoom event.NativeRoomID // MUC bare JID, or dmNativeRoom for 1:1
	sender     jid.JID            // the local user's bare JID
	senderURI  event.UserURI
	room       event.RoomURI
	muc        bool // in a MUC the room's stanza-id, not the client's ID, is the primary native ID
	// batch, when set, takes a plain new message's envelope instead of publishing it at once
	// (ingress.go).
	batch *ingress
}

// dmNativeRoom names a 1:1 conversation as a native room: the local user and the puppet.
func dmNativeRoom(local, puppet jid.JID) event.NativeRoomID {
	return event.NativeRoomID("dm:" + local.Bare().String() + "|" + puppet.Bare().String())
}

// stanzaIDOf is the XEP-0359 stanza-id the gateway gives a message: the MIMI message ID in
// unpadded base64url, so that a reference to it maps straight back.
func stanzaIDOf(id content.MessageID) string { return base64.RawURLEncoding.EncodeToString(id[:]) }

// eventID derives the envelope ID of something the sender did in a stanza. Stanza IDs are not
// unique in XMPP, so the sender is part of the ID: another user who reuses the ID gets another
// event, never a deduplicated one.
func (o origin) eventID(what string) event.EventID {
	return event.NewEventID(event.NetworkXMPP, o.nativeRoom, event.NativeEventID(o.sender.String()+" "+what))
}

// occupantID is the XEP-0421 occupant-id of a user in a room: stable, opaque, per room.
func (a *Adapter) occupantID(r event.RoomURI, u event.UserURI) string {
	mac := hmac.New(sha256.New, a.key)
	mac.Write([]byte("occupant:"))
	mac.Write([]byte(r))
	mac.Write([]byte{0})
	mac.Write([]byte(u))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil)[:18])
}

// builder builds the content of event ev with the salt the core derives for it (bridges.Core.Salt).
func (a *Adapter) builder(o origin, ev event.EventID, ts time.Time) *content.Builder {
	return a.core.Builder(ev, o.senderURI, o.room, ts)
}

// externalID is content extension 4 for a native stanza ID: the ID and, as scope, the sender's
// XMPP URI (RFC 5122), since XMPP stanza IDs are only unique per sender.
func externalID(o origin, nativeID string) content.Option {
	return content.WithExternalID(content.ExternalID{ID: []byte(nativeID), URI: "xmpp:" + (&url.URL{Path: o.sender.String()}).EscapedPath()})
}

// publishContent publishes msg through the core and returns its MIMI message ID; rec(id), when
// set, says what to record with it (mappings, reactions). The envelope is on the bus and rec
// recorded before the function returns.
func (a *Adapter) publishContent(ctx context.Context, o origin, kind event.Kind, ev event.EventID, nativeID string, msg *content.Message, ts time.Time, rec func(content.MessageID) bridges.Record) (content.MessageID, error) {
	var id content.MessageID
	env, err := a.core.Envelope(bridges.Outgoing{ID: ev, Kind: kind, Room: o.room, Sender: o.senderURI, Timestamp: ts, Msg: msg,
		Origin: event.Origin{Room: o.nativeRoom, Event: event.NativeEventID(nativeID), Sender: event.NativeUserID(o.sender.String())}})
	if err != nil {
		return id, fmt.Errorf("xmpp: %w", err)
	}
	copy(id[:], env.MessageID)
	var r bridges.Record
	if rec != nil {
		r = rec(id)
	}
	if o.batch != nil {
		o.batch.add(o, nativeID, env, r)
		return id, nil
	}
	if err := a.core.Publish(ctx, env, r); err != nil {
		return id, fmt.Errorf("xmpp: %w", err)
	}
	a.met.published.WithLabelValues(kind.String()).Inc()
	return id, nil
}

// publishEnvelope publishes an envelope without content (membership, metadata).
func (a *Adapter) publishEnvelope(ctx context.Context, env *event.Envelope) error {
	if err := a.core.Publish(ctx, env, bridges.Record{}); err != nil {
		return fmt.Errorf("xmpp: %w", err)
	}
	a.met.published.WithLabelValues(env.Kind.String()).Inc()
	return nil
}

// bridged is the outcome of bridging one message stanza.
type bridged struct {
	kind      event.Kind
	id        content.MessageID // of the published message (KindMessage, KindEdit, KindDelete)
	nativeID  string            // the stanza's own ID (origin-id, else id)
	duplicate bool              // already bridged earlier: nothing published now
	batched   bool              // in the origin's batch: published and recorded when it is flushed
	skip      bool              // nothing to bridge (chat states, empty messages)
}

// bridgeError is a stanza error to send back instead of bridging.
type bridgeError struct {
	typ  stanza.ErrorType
	cond stanza.Condition
	text string
}

// Error implements error.
func (e *bridgeError) Error() string { return string(e.cond) + ": " + e.text }

func refuse(typ stanza.ErrorType, cond stanza.Condition, text string) error {
	return &bridgeError{typ, cond, text}
}

// bridgeMessage maps one message stanza from a local user to MIMI content and publishes it.
func (a *Adapter) bridgeMessage(ctx context.Context, o origin, m *xstanza.InMessage, at time.Time) (bridged, error) {
	if m.OMEMO != nil || m.OMEMO2 != nil {
		return bridged{}, refuse(stanza.Cancel, stanza.NotAcceptable,
			"End-to-end encrypted (OMEMO) messages cannot be bridged: encryption ends at the MIMI gateway. Send the message unencrypted.")
	}
	nativeID := m.NativeID()
	res := bridged{nativeID: nativeID}
	ts := m.SentAt(at)
	body, hasBody := m.Text()
	if len(body) > int(*a.cfg.MaxBodyBytes) {
		return res, refuse(stanza.Modify, stanza.PolicyViolation, fmt.Sprintf("message longer than %d bytes", *a.cfg.MaxBodyBytes))
	}
	if !utf8.ValidString(body) {
		return res, refuse(stanza.Modify, stanza.BadRequest, "body is not UTF-8")
	}
	switch {
	case m.Retract != nil:
		return a.bridgeRetract(ctx, o, m, res, ts)
	case m.Replace != nil && hasBody:
		return a.bridgeCorrection(ctx, o, m, body, res, ts)
	case m.Reactions != nil:
		return a.bridgeReactions(ctx, o, m, res, ts)
	case hasBody && strings.TrimSpace(body) != "" || len(m.OOB) > 0:
		return a.bridgeNew(ctx, o, m, body, res, ts)
	case m.Received != nil || m.Displayed != nil || m.MarkReceived != nil:
		return a.bridgeReceipt(ctx, o, m, res, ts)
	}
	res.skip = true
	if m.IsChatStateOnly() {
		a.met.dropped.WithLabelValues("chat_state").Inc()
	} else {
		a.met.dropped.WithLabelValues("nothing_to_bridge").Inc()
	}
	return res, nil
}

// alreadyBridged reports whether the sender's stanza ID is mapped already (a resent stanza).
func (a *Adapter) alreadyBridged(ctx context.Context, o origin, nativeID string) (idmap.Message, bool, error) {
	prev, err := a.ids.Native(ctx, event.NetworkXMPP, o.nativeRoom, event.NativeEventID(nativeID), event.NativeUserID(o.sender.String()))
	if errors.Is(err, idmap.ErrNotFound) {
		return idmap.Message{}, false, nil
	}
	if err != nil {
		return idmap.Message{}, false, err
	}
	return prev, true, nil
}

func (a *Adapter) bridgeNew(ctx context.Context, o origin, m *xstanza.InMessage, body string, res bridged, ts time.Time) (bridged, error) {
	res.kind = event.KindMessage
	if o.batch.has(o, res.nativeID) {
		o.batch.flush(ctx) // sent twice in a row: the first must be recorded to be recognised
	}
	if prev, dup, err := a.alreadyBridged(ctx, o, res.nativeID); err != nil {
		return res, err
	} else if dup {
		res.duplicate = true
		copy(res.id[:], prev.MessageID)
		return res, nil
	}
	ev := o.eventID(res.nativeID)
	var opts []content.Option
	opts = append(opts, externalID(o, res.nativeID))
	if m.Reply != nil && xstanza.ValidID(m.Reply.ID) {
		if target, ok := a.lookupAny(ctx, o, m.Reply.ID); ok {
			opts = append(opts, content.InReplyTo(target))
			body = xstanza.StripFallback(body, m.Fallback, xstanza.NSReply)
		}
	}
	part, err := a.bodyPart(ctx, o.senderURI, body, m.OOB)
	if err != nil {
		return res, err
	}
	msg, err := a.builder(o, ev, ts).New(part, opts...)
	if err != nil {
		return res, refuse(stanza.Modify, stanza.BadRequest, "message cannot be represented: "+err.Error())
	}
	// Clients refer to a message by its id attribute (XEP-0308) or its origin-id: map both, and
	// in a room the stanza-id the room gives it.
	res.id, err = a.publishContent(ctx, o, event.KindMessage, ev, res.nativeID, msg, ts, func(id content.MessageID) bridges.Record {
		return bridges.Record{Map: mappings(o, m, res.nativeID, id, !o.muc, true)}
	})
	res.batched = err == nil && o.batch != nil
	return res, err
}

// mappings are the native IDs of a message stanza: its own (origin-id, else id), its id attribute
// and, in a room, the stanza-id the room gives it (stanzaIDOf the published message's ID).
func mappings(o origin, m *xstanza.InMessage, nativeID string, published content.MessageID, ownPrimary, roomPrimary bool) []bridges.MapID {
	ms := []bridges.MapID{{ID: event.NativeEventID(nativeID), Primary: ownPrimary}}
	if xstanza.ValidID(m.ID) && m.ID != nativeID {
		ms = append(ms, bridges.MapID{ID: event.NativeEventID(m.ID)})
	}
	if o.muc {
		ms = append(ms, bridges.MapID{ID: event.NativeEventID(stanzaIDOf(published)), Primary: roomPrimary})
	}
	return ms
}

// bodyPart maps the body and XEP-0066 links to a MIMI part: text, files (ExternalParts), or both.
// Links to the XMPP server's upload service are files: downloaded and stored, encrypted, in the
// asset store. Any other link stays what it is, a link in the text (added to the body when the
// body does not carry it), since neither the gateway nor a partner can vouch for fetching it.
func (a *Adapter) bodyPart(ctx context.Context, owner event.UserURI, body string, oob []xstanza.InOOB) (content.NestedPart, error) {
	var files []content.NestedPart
	text := body
	for i, x := range oob {
		if i >= 8 {
			break
		}
		raw := strings.TrimSpace(x.URL)
		u, err := url.Parse(raw)
		if err != nil || len(x.URL) > xstanza.MaxURLLen || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			continue
		}
		if a.assets == nil || !a.isUploadHost(u) {
			if !strings.Contains(text, raw) {
				text = strings.TrimSpace(text + "\n" + raw)
			}
			continue
		}
		xp, err := a.storeUpload(ctx, owner, u, xcontent.FilePart(u, x.Desc))
		if err != nil {
			return content.NestedPart{}, err
		}
		files = append(files, content.NestedPart{Disposition: content.DispAttachment, Body: xp})
		if strings.TrimSpace(text) == raw {
			text = "" // the body is the file's link, as XEP-0066 asks clients to send it
		}
	}
	var parts []content.NestedPart
	if strings.TrimSpace(text) != "" {
		parts = append(parts, content.PlainText(text))
	}
	parts = append(parts, files...)
	switch len(parts) {
	case 0:
		return content.NestedPart{}, refuse(stanza.Modify, stanza.BadRequest, "message has no text and no usable link")
	case 1:
		return parts[0], nil
	}
	return content.Multipart(content.ProcessAll, parts...), nil
}

// isUploadHost reports whether u points at one of Config.UploadHosts.
func (a *Adapter) isUploadHost(u *url.URL) bool {
	for _, h := range a.cfg.UploadHosts {
		if strings.EqualFold(h, u.Host) || strings.EqualFold(h, u.Hostname()) {
			return true
		}
	}
	return false
}

// storeUpload downloads a file from the upload service and stores it, encrypted, in the asset
// store; the returned ExternalPart points at the asset.
func (a *Adapter) storeUpload(ctx context.Context, owner event.UserURI, u *url.URL, xp content.ExternalPart) (content.ExternalPart, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return xp, refuse(stanza.Modify, stanza.BadRequest, "unusable link")
	}
	resp, err := a.http.Do(req)
	if err != nil {
		a.log.Warn("could not download an upload", "err", err)
		return xp, refuse(stanza.Wait, stanza.RemoteServerTimeout, "the gateway could not download the file")
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return xp, refuse(stanza.Cancel, stanza.ItemNotFound, fmt.Sprintf("the upload service answered %d", resp.StatusCode))
	}
	max := int64(a.cfg.MaxUploadBytes)
	if resp.ContentLength > max {
		return xp, refuse(stanza.Modify, stanza.PolicyViolation, fmt.Sprintf("files larger than %d bytes are not forwarded", max))
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return xp, refuse(stanza.Wait, stanza.RemoteServerTimeout, "the gateway could not download the file")
	}
	if int64(len(data)) > max {
		return xp, refuse(stanza.Modify, stanza.PolicyViolation, fmt.Sprintf("files larger than %d bytes are not forwarded", max))
	}
	if ct, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err == nil && ct != "" {
		xp.ContentType = ct
	}
	stored, err := bridges.StoreAttachment(ctx, a.assets, data, assets.Meta{ContentType: xp.ContentType, Filename: xp.Filename, Owner: owner}, xp.Description)
	if err != nil {
		return xp, fmt.Errorf("xmpp: %w", err)
	}
	return stored, nil
}

// lookupAny resolves an ID that a stanza references (reply, reaction, receipt) in the
// conversation, whoever sent the referenced message. In rooms the gateway's stanza-ids are the
// MIMI IDs themselves.
func (a *Adapter) lookupAny(ctx context.Context, o origin, id string) (content.MessageID, bool) {
	mid, ok, err := a.core.MessageOf(ctx, o.nativeRoom, event.NativeEventID(id), o.room)
	return mid, ok && err == nil
}

// ownTarget resolves the message a correction or retraction refers to. Only the original sender's
// own messages are found (matterbridge #1396): anybody else's ID, or an unknown one, is not.
func (a *Adapter) ownTarget(ctx context.Context, o origin, id string) (content.MessageID, bool, error) {
	var out content.MessageID
	if !xstanza.ValidID(id) {
		return out, false, nil
	}
	m, err := a.ids.Native(ctx, event.NetworkXMPP, o.nativeRoom, event.NativeEventID(id), event.NativeUserID(o.sender.String()))
	if errors.Is(err, idmap.ErrNotFound) {
		return out, false, nil
	}
	if err != nil {
		return out, false, err
	}
	if m.Room != o.room || len(m.MessageID) != len(out) {
		return out, false, nil
	}
	copy(out[:], m.MessageID)
	return out, true, nil
}

func (a *Adapter) bridgeCorrection(ctx context.Context, o origin, m *xstanza.InMessage, body string, res bridged, ts time.Time) (bridged, error) {
	res.kind = event.KindEdit
	target, ok, err := a.ownTarget(ctx, o, m.Replace.ID)
	if err != nil {
		return res, err
	}
	if !ok {
		return res, refuse(stanza.Cancel, stanza.ItemNotFound, "the corrected message is unknown or not yours")
	}
	if prev, dup, err := a.alreadyBridged(ctx, o, res.nativeID); err != nil {
		return res, err
	} else if dup {
		res.duplicate = true
		copy(res.id[:], prev.MessageID)
		return res, nil
	}
	ev := o.eventID(res.nativeID)
	part, err := a.bodyPart(ctx, o.senderURI, body, m.OOB)
	if err != nil {
		return res, err
	}
	msg, err := a.builder(o, ev, ts).Edit(target, part, externalID(o, res.nativeID))
	if err != nil {
		return res, refuse(stanza.Modify, stanza.BadRequest, "correction cannot be represented: "+err.Error())
	}
	// The correction's own ID points at the first version too, so a later correction that
	// references this one (some clients do) still finds the message (matterbridge #437, #1584).
	res.id, err = a.publishContent(ctx, o, event.KindEdit, ev, res.nativeID, msg, ts, func(id content.MessageID) bridges.Record {
		return bridges.Record{Map: mappings(o, m, res.nativeID, id, false, false), MapTo: &target}
	})
	return res, err
}

func (a *Adapter) bridgeRetract(ctx context.Context, o origin, m *xstanza.InMessage, res bridged, ts time.Time) (bridged, error) {
	res.kind = event.KindDelete
	target, ok, err := a.ownTarget(ctx, o, m.Retract.ID)
	if err != nil {
		return res, err
	}
	if !ok {
		return res, refuse(stanza.Cancel, stanza.ItemNotFound, "the retracted message is unknown or not yours")
	}
	// One retraction per message: the event is named after the target, so a retraction sent twice
	// (or under another stanza ID) is stored once on the bus.
	ev := o.eventID("retract " + hex.EncodeToString(target[:]))
	msg, err := a.builder(o, ev, ts).Delete(target, externalID(o, res.nativeID))
	if err != nil {
		return res, err
	}
	res.id, err = a.publishContent(ctx, o, event.KindDelete, ev, res.nativeID, msg, ts, nil)
	return res, err
}

func (a *Adapter) bridgeReactions(ctx context.Context, o origin, m *xstanza.InMessage, res bridged, ts time.Time) (bridged, error) {
	res.kind = event.KindReaction
	if !xstanza.ValidID(m.Reactions.ID) {
		return res, refuse(stanza.Modify, stanza.BadRequest, "reactions without a valid message id")
	}
	target, ok := a.lookupAny(ctx, o, m.Reactions.ID)
	if !ok {
		return res, refuse(stanza.Cancel, stanza.ItemNotFound, "the message reacted to is unknown")
	}
	if len(m.Reactions.Reaction) > xstanza.MaxReactions {
		return res, refuse(stanza.Modify, stanza.PolicyViolation, fmt.Sprintf("more than %d reactions", xstanza.MaxReactions))
	}
	var want []string
	for _, r := range m.Reactions.Reaction {
		r = strings.TrimSpace(r)
		if r == "" || len(r) > xstanza.MaxReactionLen || !utf8.ValidString(r) {
			continue
		}
		want = append(want, r)
	}
	cur, err := a.ids.Reactions(ctx, o.room, target[:], o.senderURI)
	if err != nil {
		return res, fmt.Errorf("xmpp: read reactions: %w", err)
	}
	add, remove := idmap.Diff(cur, want)
	targetHex := hex.EncodeToString(target[:])
	for _, r := range remove {
		var reactionID content.MessageID
		if len(r.MessageID) != len(reactionID) {
			continue
		}
		copy(reactionID[:], r.MessageID)
		ev := o.eventID("unreact " + hex.EncodeToString(r.MessageID))
		msg, err := a.builder(o, ev, ts).Unreact(reactionID, target, externalID(o, res.nativeID))
		if err != nil {
			return res, err
		}
		if _, err := a.publishContent(ctx, o, event.KindReaction, ev, res.nativeID, msg, ts, func(content.MessageID) bridges.Record {
			return bridges.Record{Unreact: r.Emoji, Target: &target}
		}); err != nil {
			return res, err
		}
	}
	for _, emoji := range add {
		// Named after target and emoji and the stanza: the same reaction added again later (after a
		// removal) is a new MIMI message.
		ev := o.eventID("react " + targetHex + " " + emoji + " " + res.nativeID)
		msg, err := a.builder(o, ev, ts).Reaction(target, emoji, externalID(o, res.nativeID))
		if err != nil {
			return res, err
		}
		if _, err := a.publishContent(ctx, o, event.KindReaction, ev, res.nativeID, msg, ts, func(content.MessageID) bridges.Record {
			return bridges.Record{React: emoji, Target: &target}
		}); err != nil {
			return res, err
		}
	}
	if len(add) == 0 && len(remove) == 0 {
		res.duplicate = true
	}
	return res, nil
}

func (a *Adapter) bridgeReceipt(ctx context.Context, o origin, m *xstanza.InMessage, res bridged, ts time.Time) (bridged, error) {
	res.kind = event.KindReceipt
	var ref string
	status := content.StatusDelivered
	switch {
	case m.Displayed != nil:
		ref, status = m.Displayed.ID, content.StatusRead
	case m.Received != nil:
		ref = m.Received.ID
	case m.MarkReceived != nil:
		ref = m.MarkReceived.ID
	}
	if !xstanza.ValidID(ref) {
		res.skip = true
		return res, nil
	}
	target, ok := a.lookupAny(ctx, o, ref)
	if !ok {
		res.skip = true // a receipt for something we never bridged: nothing to report
		return res, nil
	}
	ev := o.eventID(status.String() + " " + hex.EncodeToString(target[:]))
	msg, err := a.builder(o, ev, ts).Status(content.StatusReport{{MessageID: target, Status: status}})
	if err != nil {
		return res, err
	}
	res.id, err = a.publishContent(ctx, o, event.KindReceipt, ev, ref, msg, ts, nil)
	return res, err
}
