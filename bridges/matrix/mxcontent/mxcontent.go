// Package mxcontent maps message content between MIMI (core/content) and Matrix
// (m.room.message), both ways and without I/O: text, HTML and GFM-MIMI markdown, emotes, reply
// fallbacks, plain links, mentions (through a function that maps users), the attribution of a
// relayed message to its MIMI sender, and a leading mention that addresses an account.
// Attachments move through bridges/matrix/mxmedia.
package mxcontent

import (
	"html"
	"net/url"
	"strings"

	mevent "maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/format"
	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/mxevent"
	"github.com/mimi-gateway/mimi-gateway/core/content"
	"github.com/mimi-gateway/mimi-gateway/core/content/gfm"
)

// UserOfLink returns the Matrix user that a link in MIMI text names (a MIMI user URI), if any.
type UserOfLink func(href string) (id.UserID, bool)

// FromMIMI renders a MIMI body as Matrix message content: HTML (sanitised) or GFM-MIMI
// (rendered, its MIMI user links as matrix.to pills and mentions) as formatted_body with a plain
// body, "/me " as m.emote, an unencrypted external part as a link. media is the first encrypted
// external part, for the caller to attach (Attach); the content may be empty when there is
// nothing else.
func FromMIMI(msg *content.Message, users UserOfLink) (c *mevent.MessageEventContent, media *content.ExternalPart) {
	var text, htmlBody string
	var mentioned []id.UserID
	toMatrixLink := func(href string) string {
		if u, ok := users(href); ok {
			return u.URI().MatrixToURL()
		}
		return href
	}
	for _, ip := range msg.Renderable(content.PreferTypes(content.TypeGFMMIMI, content.TypeHTML, content.TypePlain)) {
		switch b := ip.Part.Body.(type) {
		case content.SinglePart:
			ct := strings.ToLower(b.ContentType)
			switch {
			case strings.HasPrefix(ct, "text/markdown"):
				md := string(b.Content)
				text += gfm.ToPlain(md)
				htmlBody += format.UnwrapSingleParagraph(gfm.ToHTML(md, toMatrixLink))
				for _, l := range gfm.Links(md) {
					if u, ok := users(l); ok {
						mentioned = append(mentioned, u)
					}
				}
			case strings.HasPrefix(ct, "text/html"):
				h := gfm.SanitizeHTML(string(b.Content))
				htmlBody += h
				text += format.HTMLToText(h)
			case strings.HasPrefix(ct, "text/plain"):
				text += string(b.Content)
				htmlBody += html.EscapeString(string(b.Content))
			}
		case content.ExternalPart:
			if b.EncAlg == content.AEADNone {
				// A plain link (no key: nothing the gateway must decrypt) is shown as a link, not
				// fetched: it may point anywhere, and the user's client can open it.
				t, h := linkOf(b)
				if !strings.Contains(text, b.URL) {
					text, htmlBody = joinLine(text, t), joinHTMLLine(htmlBody, h)
				}
				continue
			}
			if media == nil {
				bb := b
				media = &bb
			}
		}
	}
	c = &mevent.MessageEventContent{MsgType: mevent.MsgText, Body: text, Mentions: &mevent.Mentions{UserIDs: mentioned}}
	if htmlBody != "" && htmlBody != html.EscapeString(text) {
		c.Format, c.FormattedBody = mevent.FormatHTML, htmlBody
	}
	if rest, ok := strings.CutPrefix(c.Body, "/me "); ok {
		c.MsgType, c.Body = mevent.MsgEmote, rest
		c.FormattedBody = strings.TrimPrefix(c.FormattedBody, "/me ")
	}
	return c, media
}

// linkOf is the text and HTML of an unencrypted external part: its name and its URL as a link
// (an http or https URL only; another scheme is shown but not linked).
func linkOf(x content.ExternalPart) (string, string) {
	name := x.Filename
	if name == "" {
		name = x.Description
	}
	t := x.URL
	if name != "" && name != x.URL {
		t = name + ": " + x.URL
	}
	if u, err := url.Parse(x.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") {
		return t, html.EscapeString(t)
	}
	label := name
	if label == "" {
		label = x.URL
	}
	return t, `<a href="` + html.EscapeString(x.URL) + `">` + html.EscapeString(label) + `</a>`
}

func joinLine(a, b string) string {
	if a == "" {
		return b
	}
	return a + "\n" + b
}

func joinHTMLLine(a, b string) string {
	if a == "" {
		return b
	}
	return a + "<br>" + b
}

// AddNote appends a line of plain text (e.g. that an attachment is unavailable) to c.
func AddNote(c *mevent.MessageEventContent, note string) {
	c.Body = strings.TrimSpace(c.Body + "\n" + note)
	if c.FormattedBody != "" {
		c.FormattedBody += "<br>" + html.EscapeString(note)
	}
}

// Attribute labels a relayed message with its MIMI sender's per-message profile p (MSC4144),
// plus a "Name: " prefix in body and formatted_body for clients without MSC4144 (marked with
// data-mx-profile-fallback so that MSC4144 clients hide it).
func Attribute(c *mevent.MessageEventContent, p *mevent.BeeperPerMessageProfile) {
	p.HasFallback = true
	c.BeeperPerMessageProfile = p
	name := p.Displayname
	if c.MsgType == mevent.MsgText || c.MsgType == mevent.MsgNotice || c.MsgType == mevent.MsgEmote {
		if c.FormattedBody == "" {
			c.FormattedBody = html.EscapeString(c.Body)
		}
		c.Format = mevent.FormatHTML
		c.Body = name + ": " + c.Body
		c.FormattedBody = "<strong data-mx-profile-fallback>" + html.EscapeString(name) + ": </strong>" + c.FormattedBody
	} else {
		c.Body = name + ": " + c.Body
	}
}

// TextPart maps body/formatted_body of a Matrix message to MIMI: HTML becomes GFM-MIMI markdown
// (its links rewritten by toMIMILink, so that a Matrix pill becomes a MIMI mention) with the
// sanitised HTML as an alternative (chooseOne); plain bodies stay text/plain. Reply fallbacks
// are stripped, m.emote becomes the "/me " convention. nil: the message has no text.
func TextPart(p *mxevent.Parsed, toMIMILink func(href string) string) *content.NestedPart {
	body, html := p.Body, p.HTML
	if p.ReplyTo != "" {
		body, html = StripReplyFallback(body), stripHTMLReplyFallback(html)
	}
	var md string
	if html != "" {
		md = gfm.FromHTML(html, toMIMILink)
		html = gfm.SanitizeHTML(html)
	}
	if p.MsgType == mevent.MsgEmote {
		body = "/me " + body
		if html != "" {
			html, md = "/me "+html, "/me "+md
		}
	}
	if html == "" {
		if body == "" {
			return nil
		}
		return &content.NestedPart{Disposition: content.DispRender, Body: content.SinglePart{ContentType: content.TypePlain, Content: []byte(body)}}
	}
	return &content.NestedPart{Disposition: content.DispRender, Body: content.MultiPart{Semantics: content.ChooseOne, Parts: []content.NestedPart{
		{Disposition: content.DispRender, Body: content.SinglePart{ContentType: content.TypeGFMMIMI, Content: []byte(md)}},
		{Disposition: content.DispRender, Body: content.SinglePart{ContentType: content.TypeHTML, Content: []byte(html)}},
	}}}
}

// StripReplyFallback removes the "> <@user> quoted" lines Matrix clients put before a reply.
func StripReplyFallback(body string) string {
	lines := strings.Split(body, "\n")
	i := 0
	for i < len(lines) && strings.HasPrefix(lines[i], ">") {
		i++
	}
	if i == 0 {
		return body
	}
	if i < len(lines) && lines[i] == "" {
		i++
	}
	return strings.Join(lines[i:], "\n")
}

func stripHTMLReplyFallback(html string) string {
	if i := strings.Index(html, "</mx-reply>"); i >= 0 && strings.HasPrefix(html, "<mx-reply>") {
		return html[i+len("</mx-reply>"):]
	}
	return html
}

// WithoutMention strips a leading mention of the account self, whose display name is
// displayName ("MIMI Gateway (Chatbot): invite …", as clients write a pill), from text, a
// message that mentions the users mentions; addressed reports that there was one.
func WithoutMention(text string, mentions []id.UserID, self id.UserID, displayName string) (rest string, addressed bool) {
	mentioned := false
	for _, u := range mentions {
		mentioned = mentioned || u == self
	}
	local, _, _ := self.Parse()
	for _, name := range []string{string(self), displayName, local, "@" + local} {
		if name == "" || len(text) < len(name) || !strings.EqualFold(text[:len(name)], name) {
			continue
		}
		after := text[len(name):]
		if after != "" && !strings.ContainsAny(after[:1], ":, ") {
			continue // a longer word that starts like the name
		}
		// A name followed by ':' or ',' addresses the account, as does the user ID or a mention;
		// a name followed by a space alone is just a word.
		if mentioned || name == string(self) || after != "" && after[0] != ' ' {
			return strings.TrimLeft(after, ":, "), true
		}
	}
	return text, false
}
