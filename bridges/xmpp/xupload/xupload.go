// Package xupload puts files on the XMPP server's upload service (XEP-0363) as one of the
// gateway's components: it asks the service for a slot and uploads the file there with HTTP PUT.
package xupload

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
	"mellium.im/xmpp/upload"

	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/xconn"
)

// Service is the upload service as a component uses it.
type Service struct {
	JID     jid.JID       // the service, e.g. upload.hospital.example
	Conn    *xconn.Conn   // the component that asks for the slot
	HTTP    *http.Client  // puts the file
	Timeout time.Duration // bounds the slot request
}

// Put asks the service for a slot for the file (as the component of Conn) and puts the file there;
// it returns the GET URL.
func (s Service) Put(ctx context.Context, name, contentType string, data []byte) (string, error) {
	sess, err := s.Conn.Session()
	if err != nil {
		return "", fmt.Errorf("upload slot from %s: %w", s.JID, err)
	}
	sctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	slot, err := upload.GetSlotIQ(sctx, upload.File{Name: name, Size: len(data), Type: contentType},
		stanza.IQ{To: s.JID, From: s.Conn.Addr()}, sess)
	if err != nil {
		return "", fmt.Errorf("upload slot from %s: %w", s.JID, err)
	}
	if slot.PutURL == nil || slot.GetURL == nil {
		return "", fmt.Errorf("upload slot from %s has no PUT or GET URL", s.JID)
	}
	req, err := slot.Put(ctx, bytes.NewReader(data))
	if err != nil {
		return "", fmt.Errorf("upload to %s: %w", slot.PutURL.Redacted(), err)
	}
	req.ContentLength = int64(len(data))
	req.Header.Set("Content-Type", contentType)
	resp, err := s.HTTP.Do(req)
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
