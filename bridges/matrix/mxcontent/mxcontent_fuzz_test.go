package mxcontent

import (
	"bytes"
	"net/url"
	"slices"
	"strings"
	"testing"

	xhtml "golang.org/x/net/html"
	mevent "maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/core/content"
)

// allowedTags are the elements a formatted_body of FromMIMI may hold: the Matrix subset that the
// sanitiser keeps, and the <br> and <a> FromMIMI joins parts and links with.
var allowedTags = []string{"del", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "p", "ul", "ol", "sup", "sub",
	"li", "b", "i", "u", "strong", "em", "s", "strike", "code", "hr", "br", "div", "table", "thead", "tbody",
	"tr", "th", "td", "caption", "pre", "span", "details", "summary", "font", "a", "img"}

// allowedSchemes are the link schemes of the sanitiser's policy.
var allowedSchemes = []string{"http", "https", "mailto", "matrix", "mimi", "mxc", "im", "xmpp"}

// fuzzSeeds are messages a partner may send: raw HTML it did not sanitise, markdown with
// mentions and raw HTML, plain text, links of any scheme and name, an encrypted attachment.
func fuzzSeeds(t testing.TB) [][]byte {
	t.Helper()
	b := &content.Builder{SenderURI: "mimi://amt-b.example/u/bob", RoomURI: "mimi://klinik-a.example/r/x"}
	single := func(ct, s string) content.NestedPart {
		return content.NestedPart{Disposition: content.DispRender, Body: content.SinglePart{ContentType: ct, Content: []byte(s)}}
	}
	external := func(x content.ExternalPart) content.NestedPart {
		return content.NestedPart{Disposition: content.DispAttachment, Body: x}
	}
	var seeds [][]byte
	for _, body := range []content.NestedPart{
		single(content.TypeHTML, `<b onclick="x()">hi</b><script>alert(1)</script><a href="javascript:alert(1)">x</a><img src="https://e.example/p.png"><iframe src="https://e.example"></iframe>`),
		single(content.TypeGFMMIMI, "**Befund** for [@Alice](mimi://klinik-a.example/u/alice) <script>x</script> [y](javascript:alert(1))"),
		single(content.TypePlain, "/me winkt <b>&amp;</b>"),
		content.Multipart(content.ChooseOne, single(content.TypeGFMMIMI, "*a*"), single(content.TypeHTML, "<em>a</em>")),
		content.Multipart(content.ProcessAll, single(content.TypePlain, "see"),
			external(content.ExternalPart{ContentType: "text/html", URL: "javascript:alert(1)", Filename: `"><script>x</script>`}),
			external(content.ExternalPart{ContentType: "image/png", URL: `https://e.example/a?b="c"&d=<e>`, Description: "<b>Bild</b>"})),
		external(content.ExternalPart{ContentType: "application/pdf", URL: "https://e.example/brief", EncAlg: content.AEADAES128GCM,
			Key: make([]byte, 16), Nonce: make([]byte, 12), Filename: "brief.pdf"}),
	} {
		m, err := b.New(body)
		if err != nil {
			t.Fatalf("seed %+v: %v", body, err)
		}
		data, err := m.Encode()
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, data)
	}
	return seeds
}

// FuzzFromMIMI decodes arbitrary bytes as MIMI content and renders what decodes as Matrix
// content: it never panics, the message type is text or emote, the formatted body holds only
// the Matrix subset of HTML (no script, no event handler, links of the allowed schemes only),
// and the media handed back is an encrypted part of the message.
func FuzzFromMIMI(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	users := func(href string) (id.UserID, bool) {
		if u, ok := strings.CutPrefix(href, "mimi://klinik-a.example/u/"); ok && u != "" && !strings.ContainsAny(u, "/:?#") {
			return id.NewUserID(u, "klinik-a.example"), true
		}
		return "", false
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		msg, err := content.Decode(data)
		if err != nil {
			return
		}
		c, media := FromMIMI(msg, users)
		if c == nil || c.MsgType != mevent.MsgText && c.MsgType != mevent.MsgEmote {
			t.Fatalf("content %+v", c)
		}
		if err := checkHTML(c.FormattedBody); err != "" {
			t.Fatalf("formatted body %q: %s", c.FormattedBody, err)
		}
		if media != nil && media.EncAlg == content.AEADNone {
			t.Fatalf("unencrypted part handed back as media: %+v", media)
		}
	})
}

// checkHTML reports what in h is outside the Matrix subset ("" when nothing is).
func checkHTML(h string) string {
	z := xhtml.NewTokenizer(bytes.NewReader([]byte(h)))
	for {
		switch z.Next() {
		case xhtml.ErrorToken:
			return ""
		case xhtml.StartTagToken, xhtml.SelfClosingTagToken:
			tok := z.Token()
			if !slices.Contains(allowedTags, tok.Data) {
				return "element " + tok.Data
			}
			for _, a := range tok.Attr {
				switch {
				case strings.HasPrefix(strings.ToLower(a.Key), "on"):
					return "event handler " + a.Key
				case a.Key == "href":
					if u, err := url.Parse(a.Val); err != nil || !slices.Contains(allowedSchemes, strings.ToLower(u.Scheme)) {
						return "link " + a.Val
					}
				case a.Key == "src" && !strings.HasPrefix(a.Val, "mxc://"):
					return "image " + a.Val
				}
			}
		}
	}
}
