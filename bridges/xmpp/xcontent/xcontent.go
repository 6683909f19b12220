// Package xcontent converts between MIMI content and what an XMPP message shows, without I/O:
// the text and XEP-0066 link that a MIMI message is rendered as, and the MIMI file part that a link
// to the XMPP server's upload service stands for.
package xcontent

import (
	"mime"
	"net/url"
	"path"
	"strings"
	"unicode/utf8"

	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/xstanza"
	"github.com/mimi-gateway/mimi-gateway/core/content"
	"github.com/mimi-gateway/mimi-gateway/core/content/gfm"
)

// Render turns MIMI content into a body and an optional XEP-0066 link. Markdown and HTML become
// plain text; unencrypted external parts become OOB links (body == URL, so clients show them
// inline); encrypted attachments, which XMPP clients cannot decrypt, are named in the text.
func Render(msg *content.Message) (string, *xstanza.OutOOB) {
	var texts []string
	var oob *xstanza.OutOOB
	for _, ip := range msg.Renderable(content.PreferTypes(content.TypePlain, content.TypeGFMMIMI, content.TypeHTML)) {
		switch b := ip.Part.Body.(type) {
		case content.SinglePart:
			ct := strings.ToLower(strings.TrimSpace(strings.SplitN(b.ContentType, ";", 2)[0]))
			if !utf8.Valid(b.Content) {
				continue
			}
			switch ct {
			case "text/plain":
				texts = append(texts, string(b.Content))
			case "text/markdown":
				texts = append(texts, gfm.ToPlain(string(b.Content)))
			case "text/html":
				texts = append(texts, gfm.ToPlain(gfm.FromHTML(string(b.Content), nil)))
			default:
				texts = append(texts, "[content of type "+ct+" not shown]")
			}
		case content.ExternalPart:
			name := b.Filename
			if name == "" {
				name = b.Description
			}
			if b.EncAlg == content.AEADNone {
				// A link: the first web link is also the XEP-0066 attachment; every link is in
				// the text, so none is lost.
				if oob == nil && (strings.HasPrefix(b.URL, "https://") || strings.HasPrefix(b.URL, "http://")) {
					oob = &xstanza.OutOOB{URL: b.URL, Desc: b.Description}
				}
				texts = append(texts, b.URL)
			} else {
				texts = append(texts, "[encrypted attachment "+name+" not available on XMPP]")
			}
		}
	}
	return strings.Join(texts, "\n"), oob
}

// FilePart is the file that a link to the XMPP server's upload service stands for, before it is
// fetched: its content type guessed from the name's extension (application/octet-stream when
// unknown), its name the last path element, and the link's XEP-0066 description desc. A name or
// description that is not valid UTF-8 or too long (255 and 1024 bytes) is left out.
func FilePart(u *url.URL, desc string) content.ExternalPart {
	ct := mime.TypeByExtension(path.Ext(u.Path))
	if ct == "" {
		ct = "application/octet-stream"
	}
	if len(desc) > 1024 || !utf8.ValidString(desc) {
		desc = ""
	}
	name := path.Base(u.Path)
	if name == "/" || name == "." || len(name) > 255 || !utf8.ValidString(name) {
		name = ""
	}
	return content.ExternalPart{ContentType: ct, URL: u.String(), Description: desc, Filename: name}
}
