package provider

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/mimi-gateway/mimi-gateway/core/abuse"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
)

// Abuse reports (protocol-06 §5.9): a local user reports a message she received (Report); the
// report goes to the room's hub, which is us or a partner. As hub we accept a report only when
// every message in it carries our frank for its content, sender, room and accepted time
// (franking.go), and record it for the admin (core/abuse, the console's abuse section).

var _ protocol.AbuseHandler = (*Provider)(nil)

// ReportAbuse implements protocol.AbuseHandler.
func (p *Provider) ReportAbuse(ctx context.Context, peer protocol.Peer, room event.RoomURI, r *protocol.AbuseReport, body []byte) error {
	refuse := func(status int, why string, err error) error {
		p.refused("reportAbuse", why)
		p.log.Info("abuse report refused", "peer", peer.Domain, "room", room, "reason", why, "err", err)
		return &protocol.StatusError{Status: status, Detail: "the report cannot be accepted: " + why, Err: err}
	}
	if !p.isHub(room) {
		return refuse(http.StatusNotFound, "not_hub", fmt.Errorf("%s is not hosted here", room))
	}
	accused, err := event.ParseUserURI(string(r.Accused))
	if err != nil {
		return refuse(http.StatusBadRequest, "accused", err)
	}
	if len(r.Messages) > abuse.MaxMessages || len(r.Note) > abuse.MaxNote || !utf8.ValidString(r.Note) {
		return refuse(http.StatusRequestEntityTooLarge, "too_large", nil)
	}
	rep := abuse.Report{ID: abuse.ReportID(peer.Domain, body), Room: room, From: peer.Domain, Reporter: event.UserURI(r.Reporter),
		Accused: accused, Reason: r.Reason, Note: r.Note, Received: p.now()}
	for i := range r.Messages {
		m := &r.Messages[i]
		sender, err := p.verifyFrank(ctx, room, m.Content, &m.Frank, m.AcceptedTimestamp)
		if errors.Is(err, errForgedFrank) {
			return refuse(http.StatusForbidden, "frank", err)
		}
		if err != nil {
			return err
		}
		if sender != accused {
			return refuse(http.StatusForbidden, "accused", fmt.Errorf("message %d is from %s, not the accused %s", i, sender, accused))
		}
		rep.Messages = append(rep.Messages, abuse.Message{Sender: sender, Accepted: timeOfMillis(m.AcceptedTimestamp), Content: m.Content})
	}
	fresh, err := abuse.Record(ctx, p.st, rep)
	if errors.Is(err, abuse.ErrInvalid) {
		return refuse(http.StatusBadRequest, "invalid", err)
	}
	if err != nil {
		return err
	}
	if fresh {
		p.log.Warn("abuse report accepted for the admin", "report", rep.ID, "peer", peer.Domain, "room", room, "messages", len(rep.Messages))
	}
	return nil
}

// ErrNotReportable: the message is not one a local user received with a frank (unknown, too
// old, or its hub does not frank).
var ErrNotReportable = errors.New("provider: this message cannot be reported")

// Report sends local user reporter's report of the message with MIMI ID messageID in room to the
// room's hub (ourselves, when we host it), with note.
func (p *Provider) Report(ctx context.Context, reporter event.UserURI, room event.RoomURI, messageID []byte, note string) error {
	ev, err := abuse.EvidenceOf(ctx, p.st, room, messageID)
	if errors.Is(err, abuse.ErrNoEvidence) {
		return fmt.Errorf("%w: %w", ErrNotReportable, err)
	}
	if err != nil {
		return err
	}
	f, err := decodeFrank(ev.Frank)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNotReportable, err)
	}
	if len(note) > protocol.MaxAbuseNote {
		note = note[:protocol.MaxAbuseNote]
		for !utf8.ValidString(note) {
			note = note[:len(note)-1]
		}
	}
	r := &protocol.AbuseReport{Reporter: protocol.IdentifierURI(reporter), Accused: protocol.IdentifierURI(ev.Sender), Note: note,
		Messages: []protocol.AbusiveMessage{{Content: ev.Content, Frank: *f, AcceptedTimestamp: ev.Accepted}}}
	if p.isHub(room) {
		body, err := r.Encode()
		if err != nil {
			return err
		}
		return p.ReportAbuse(ctx, protocol.Peer{Domain: p.cfg.Domain}, room, r, body)
	}
	if p.client == nil {
		return errors.New("provider: the MIMI endpoint is not running")
	}
	if err := p.client.ReportAbuse(ctx, room, r); err != nil {
		return fmt.Errorf("provider: report to %s: %w", room.Domain(), err)
	}
	return nil
}

func timeOfMillis(ms uint64) time.Time { return time.UnixMilli(int64(ms)).UTC() }
