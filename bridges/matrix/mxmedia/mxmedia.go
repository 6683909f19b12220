// Package mxmedia moves attachments to and from the homeserver's media repository: Download
// fetches a file, bounded, and decrypts it when it is an encrypted file (m.file style); Upload
// stores one, encrypted for an encrypted room, and makes a message content the media message
// that shows it. Where the bytes come from and go to (the asset store) is the adapter's.
package mxmedia

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/attachment"
	mevent "maunium.net/go/mautrix/event"

	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/mxevent"
)

// ErrUnusable marks a file that can never be relayed: larger than allowed, or not decryptable.
var ErrUnusable = errors.New("unusable file")

// Download returns the plaintext of the file of m, at most max bytes. An error wrapping
// ErrUnusable is final; any other may pass when tried again.
func Download(ctx context.Context, cli *mautrix.Client, m *mxevent.Media, max int64) ([]byte, error) {
	if m.Size > max {
		return nil, fmt.Errorf("%w: file of %d bytes exceeds %d", ErrUnusable, m.Size, max)
	}
	resp, err := cli.Download(ctx, m.URL)
	if err != nil {
		return nil, fmt.Errorf("matrix: download %s: %w", m.URL, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, fmt.Errorf("matrix: download %s: %w", m.URL, err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%w: file exceeds %d bytes", ErrUnusable, max)
	}
	if m.File != nil {
		if err := m.File.DecryptInPlace(data); err != nil {
			return nil, fmt.Errorf("%w: decrypt attachment: %v", ErrUnusable, err)
		}
	}
	return data, nil
}

// Upload stores data, a file named name (default "attachment") of MIME type contentType, through
// cli, encrypted when the room is, and makes c the media message that shows it (image, video,
// audio or file), with c's text as its caption.
func Upload(ctx context.Context, cli *mautrix.Client, c *mevent.MessageEventContent, data []byte, name, contentType string, encrypted bool) error {
	var ct string
	c.MsgType, ct = msgType(contentType)
	if name == "" {
		name = "attachment"
	}
	caption := c.Body
	c.Info = &mevent.FileInfo{MimeType: ct, Size: len(data)}
	upload, up := data, ct
	var file *attachment.EncryptedFile
	if encrypted {
		file = attachment.NewEncryptedFile()
		upload = append([]byte(nil), data...)
		file.EncryptInPlace(upload)
		up = "application/octet-stream"
	}
	resp, err := cli.UploadBytes(ctx, upload, up)
	if err != nil {
		return fmt.Errorf("matrix: upload attachment: %w", err)
	}
	if encrypted {
		c.File = &mevent.EncryptedFileInfo{EncryptedFile: *file, URL: resp.ContentURI.CUString()}
	} else {
		c.URL = resp.ContentURI.CUString()
	}
	c.FileName = name
	if caption == "" {
		c.Body, c.Format, c.FormattedBody = name, "", ""
	}
	return nil
}

// msgType is the message type of an attachment of MIME type ct, and ct without parameters.
func msgType(ct string) (mevent.MessageType, string) {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	switch {
	case strings.HasPrefix(ct, "image/"):
		return mevent.MsgImage, ct
	case strings.HasPrefix(ct, "video/"):
		return mevent.MsgVideo, ct
	case strings.HasPrefix(ct, "audio/"):
		return mevent.MsgAudio, ct
	}
	return mevent.MsgFile, ct
}
