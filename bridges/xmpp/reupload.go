package xmpp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
	"mellium.im/xmpp/upload"

	"github.com/mimi-gateway/mimi-gateway/bridges"
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
		url, err := a.uploadFile(ctx, svc, name, ct, data)
		if err != nil {
			return fmt.Errorf("xmpp: envelope %s: %w", env.ID, err)
		}
		ip.Part.Body = content.ExternalPart{ContentType: x.ContentType, URL: url, Size: uint64(len(data)),
			Filename: x.Filename, Description: x.Description}
	}
	return nil
}

// uploadFile asks the upload service for a slot (as the users component) and puts the file
// there; it returns the GET URL.
func (a *Adapter) uploadFile(ctx context.Context, svc jid.JID, name, contentType string, data []byte) (string, error) {
	sess, err := a.users.Session()
	if err != nil {
		return "", err
	}
	sctx, cancel := context.WithTimeout(ctx, a.cfg.SendTimeout)
	defer cancel()
	slot, err := upload.GetSlotIQ(sctx, upload.File{Name: name, Size: len(data), Type: contentType},
		stanza.IQ{To: svc, From: a.users.Addr()}, sess)
	if err != nil {
		return "", fmt.Errorf("upload slot from %s: %w", svc, err)
	}
	if slot.PutURL == nil || slot.GetURL == nil {
		return "", fmt.Errorf("upload slot from %s has no PUT or GET URL", svc)
	}
	req, err := slot.Put(ctx, bytes.NewReader(data))
	if err != nil {
		return "", fmt.Errorf("upload to %s: %w", slot.PutURL.Redacted(), err)
	}
	req.ContentLength = int64(len(data))
	req.Header.Set("Content-Type", contentType)
	resp, err := a.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("upload to %s: %w", slot.PutURL.Redacted(), err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("upload to %s: %s", slot.PutURL.Redacted(), resp.Status)
	}
	return slot.GetURL.String(), nil
}
