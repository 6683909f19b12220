package xmpp

import (
	"context"
	"errors"
	"fmt"

	"mellium.im/xmpp/jid"

	"github.com/mimi-gateway/mimi-gateway/bridges"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/xupload"
	"github.com/mimi-gateway/mimi-gateway/core/assets"
	"github.com/mimi-gateway/mimi-gateway/core/content"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// shareAttachments makes the encrypted attachments of a MIMI message readable for XMPP users,
// whose clients cannot decrypt MIMI external parts: each one is decrypted from the asset store
// and uploaded to the XMPP server's upload service (XEP-0363) as the users component, and the part
// becomes an unencrypted link to it (rendered as XEP-0066). Without an upload service, or for an
// attachment that is unavailable or too large, the part stays and is announced as text. An upload
// that fails is returned, so the bus delivers the envelope again.
func (a *Adapter) shareAttachments(ctx context.Context, env *event.Envelope, msg *content.Message) error {
	if a.cfg.UploadService == "" || a.assets == nil {
		return nil
	}
	svc, err := jid.Parse(a.cfg.UploadService)
	if err != nil {
		return fmt.Errorf("xmpp: upload service %q: %w", a.cfg.UploadService, err)
	}
	up := xupload.Service{JID: svc, Conn: a.users, HTTP: a.http, Timeout: a.cfg.SendTimeout}
	for _, ip := range msg.Parts() {
		x, ok := ip.Part.Body.(content.ExternalPart)
		if !ok || x.EncAlg == content.AEADNone {
			continue
		}
		data, err := bridges.OpenAttachment(ctx, a.assets, env.Room, x, int64(a.cfg.MaxUploadBytes))
		if errors.Is(err, assets.ErrUnavailable) {
			a.log.Info("attachment unavailable, announced as text", "envelope", env.ID, "err", err)
			continue
		}
		if err != nil {
			return err
		}
		name := x.Filename
		if name == "" {
			name = "attachment"
		}
		ct := x.ContentType
		if ct == "" {
			ct = "application/octet-stream"
		}
		url, err := up.Put(ctx, name, ct, data)
		if err != nil {
			return fmt.Errorf("xmpp: envelope %s: %w", env.ID, err)
		}
		ip.Part.Body = content.ExternalPart{ContentType: x.ContentType, URL: url, Size: uint64(len(data)),
			Filename: x.Filename, Description: x.Description}
	}
	return nil
}
