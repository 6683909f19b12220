package gfm

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"

	"github.com/microcosm-cc/bluemonday"
	xhtml "golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// LinkRewriter maps a link target, e.g. a mimi:// user URI to a matrix.to
// permalink or back. It returns the new target, or "" to drop the link and
// keep only its text. A nil LinkRewriter keeps targets as they are.
type LinkRewriter func(href string) string

// matrixPolicy allows the HTML subset of the Matrix client-server spec
// ("m.room.message msgtypes", formatted_body): the listed tags, a few
// attributes, http(s)/mailto/matrix/mimi links, mxc: images.
func matrixPolicy() *bluemonday.Policy {
	p := bluemonday.NewPolicy()
	p.AllowElements("del", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "p", "ul", "ol", "sup", "sub",
		"li", "b", "i", "u", "strong", "em", "s", "strike", "code", "hr", "br", "div", "table", "thead", "tbody",
		"tr", "th", "td", "caption", "pre", "span", "details", "summary", "font")
	p.AllowAttrs("href").OnElements("a")
	p.AllowAttrs("target").Matching(regexp.MustCompile(`^_blank$`)).OnElements("a")
	p.AllowURLSchemes("http", "https", "mailto", "matrix", "mimi", "mxc", "im", "xmpp")
	p.RequireParseableURLs(true)
	p.AllowElements("a")
	p.AllowAttrs("src").Matching(mxcOnly).OnElements("img")
	p.AllowAttrs("alt", "title", "width", "height").OnElements("img")
	p.AllowAttrs("start").Matching(regexp.MustCompile(`^[0-9]{1,9}$`)).OnElements("ol")
	p.AllowAttrs("class").Matching(regexp.MustCompile(`^language-[A-Za-z0-9_+#-]{1,32}$`)).OnElements("code")
	p.AllowAttrs("data-mx-spoiler", "data-mx-bg-color", "data-mx-color").OnElements("span")
	p.AllowAttrs("data-mx-bg-color", "data-mx-color", "color").OnElements("font")
	p.SkipElementsContent("mx-reply", "script", "style")
	return p
}

// mxcOnly restricts images to mxc: sources as Matrix requires.
var mxcOnly = regexp.MustCompile(`^mxc://`)

var policy = matrixPolicy()

// ToHTML renders GFM-MIMI as Matrix formatted_body HTML. Raw HTML in the
// input is shown as text (the GFM-MIMI receiver rule); the output is
// sanitised with a bluemonday policy for the Matrix subset. rewrite, if not
// nil, maps link targets (e.g. mimi:// user URIs to Matrix pills).
func ToHTML(markdown string, rewrite LinkRewriter) string {
	var buf bytes.Buffer
	src := []byte(Sanitize(markdown))
	if tooComplex(src) {
		esc := xhtml.EscapeString(string(src))
		return "<p>" + strings.ReplaceAll(esc, "\n", "<br>\n") + "</p>"
	}
	if err := md.Renderer().Render(&buf, src, parse(src)); err != nil {
		// Rendering into a buffer cannot fail; fall back to escaped text.
		return xhtml.EscapeString(markdown)
	}
	out := buf.Bytes()
	if rewrite != nil {
		out = rewriteLinks(out, rewrite)
	}
	out = policy.SanitizeBytes(out)
	return strings.TrimSpace(string(out))
}

// rewriteLinks applies rewrite to every <a href>.
func rewriteLinks(h []byte, rewrite LinkRewriter) []byte {
	nodes, err := xhtml.ParseFragment(bytes.NewReader(h), &xhtml.Node{Type: xhtml.ElementNode, Data: "div", DataAtom: atom.Div})
	if err != nil {
		return h
	}
	var walk func(n *xhtml.Node)
	walk = func(n *xhtml.Node) {
		if n.Type == xhtml.ElementNode && n.DataAtom == atom.A {
			for i, a := range n.Attr {
				if a.Key == "href" {
					if nh := rewrite(a.Val); nh != "" {
						n.Attr[i].Val = nh
					} else {
						n.Attr = append(n.Attr[:i], n.Attr[i+1:]...)
					}
					break
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	var out bytes.Buffer
	for _, n := range nodes {
		walk(n)
		if err := xhtml.Render(&out, n); err != nil {
			return h
		}
	}
	return out.Bytes()
}

// FromHTML converts Matrix formatted_body HTML to GFM-MIMI. The input is
// sanitised with the Matrix-subset bluemonday policy first (Matrix reply
// fallbacks, <mx-reply>, are dropped with their content); unknown elements
// keep only their text. The result never contains raw HTML. rewrite, if not
// nil, maps link targets (e.g. Matrix pills to mimi:// user URIs).
func FromHTML(formatted string, rewrite LinkRewriter) string {
	clean := policy.Sanitize(limit(formatted))
	nodes, err := xhtml.ParseFragment(strings.NewReader(clean), &xhtml.Node{Type: xhtml.ElementNode, Data: "div", DataAtom: atom.Div})
	if err != nil {
		return Escape(xhtml.UnescapeString(clean))
	}
	c := &htmlConv{rewrite: rewrite}
	var b strings.Builder
	c.blocks(&b, nodes)
	return strings.TrimSpace(collapseBlankLines(b.String()))
}

var blankRun = regexp.MustCompile(`\n{3,}`)

func collapseBlankLines(s string) string { return blankRun.ReplaceAllString(s, "\n\n") }

type htmlConv struct {
	rewrite LinkRewriter
}

func isBlock(n *xhtml.Node) bool {
	if n.Type != xhtml.ElementNode {
		return false
	}
	switch n.DataAtom {
	case atom.P, atom.Div, atom.H1, atom.H2, atom.H3, atom.H4, atom.H5, atom.H6, atom.Blockquote,
		atom.Ul, atom.Ol, atom.Pre, atom.Hr, atom.Table, atom.Details, atom.Summary:
		return true
	}
	return false
}

// blocks converts a sequence of sibling nodes, grouping inline runs into
// paragraphs.
func (c *htmlConv) blocks(b *strings.Builder, nodes []*xhtml.Node) {
	var inline []*xhtml.Node
	flush := func() {
		if len(inline) == 0 {
			return
		}
		var ib strings.Builder
		for _, n := range inline {
			c.inline(&ib, n)
		}
		if s := strings.TrimSpace(ib.String()); s != "" {
			b.WriteString(startOfLineSafe(s))
			b.WriteString("\n\n")
		}
		inline = inline[:0]
	}
	for _, n := range nodes {
		if isBlock(n) {
			flush()
			c.block(b, n)
			continue
		}
		inline = append(inline, n)
	}
	flush()
}

func children(n *xhtml.Node) []*xhtml.Node {
	var out []*xhtml.Node
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		out = append(out, c)
	}
	return out
}

func (c *htmlConv) block(b *strings.Builder, n *xhtml.Node) {
	switch n.DataAtom {
	case atom.H1, atom.H2, atom.H3, atom.H4, atom.H5, atom.H6:
		level := int(n.Data[1] - '0')
		var ib strings.Builder
		c.inlineChildren(&ib, n)
		b.WriteString(strings.Repeat("#", level) + " " + strings.ReplaceAll(strings.TrimSpace(ib.String()), "\\\n", " ") + "\n\n")
	case atom.Blockquote:
		var inner strings.Builder
		c.blocks(&inner, children(n))
		for _, l := range strings.Split(strings.TrimSpace(collapseBlankLines(inner.String())), "\n") {
			if l == "" {
				b.WriteString(">\n")
			} else {
				b.WriteString("> " + l + "\n")
			}
		}
		b.WriteString("\n")
	case atom.Ul, atom.Ol:
		c.list(b, n)
	case atom.Pre:
		code := textContent(n)
		lang := ""
		if cn := n.FirstChild; cn != nil && cn.DataAtom == atom.Code {
			for _, a := range cn.Attr {
				if a.Key == "class" && strings.HasPrefix(a.Val, "language-") {
					lang = strings.TrimPrefix(a.Val, "language-")
				}
			}
		}
		fence := strings.Repeat("`", max(3, longestRun(code, '`')+1))
		b.WriteString(fence + lang + "\n" + strings.TrimSuffix(code, "\n") + "\n" + fence + "\n\n")
	case atom.Hr:
		b.WriteString("* * *\n\n")
	case atom.Table:
		c.table(b, n)
	default: // p, div, details, summary
		c.blocks(b, children(n))
	}
}

func (c *htmlConv) list(b *strings.Builder, n *xhtml.Node) {
	num := 1
	for _, a := range n.Attr {
		if a.Key == "start" {
			if v, err := strconv.Atoi(a.Val); err == nil {
				num = v
			}
		}
	}
	for li := n.FirstChild; li != nil; li = li.NextSibling {
		if li.Type != xhtml.ElementNode || li.DataAtom != atom.Li {
			continue
		}
		marker := "- "
		if n.DataAtom == atom.Ol {
			marker = strconv.Itoa(num) + ". "
			num++
		}
		var inner strings.Builder
		c.blocks(&inner, children(li))
		lines := strings.Split(strings.TrimSpace(collapseBlankLines(inner.String())), "\n")
		pad := strings.Repeat(" ", len(marker))
		for i, l := range lines {
			switch {
			case i == 0:
				b.WriteString(marker + l + "\n")
			case l == "":
				b.WriteString("\n")
			default:
				b.WriteString(pad + l + "\n")
			}
		}
	}
	b.WriteString("\n")
}

func (c *htmlConv) table(b *strings.Builder, n *xhtml.Node) {
	var rows [][]string
	var walk func(n *xhtml.Node)
	walk = func(n *xhtml.Node) {
		if n.Type == xhtml.ElementNode && n.DataAtom == atom.Tr {
			var row []string
			for cell := n.FirstChild; cell != nil; cell = cell.NextSibling {
				if cell.Type == xhtml.ElementNode && (cell.DataAtom == atom.Td || cell.DataAtom == atom.Th) {
					var ib strings.Builder
					c.inlineChildren(&ib, cell)
					row = append(row, strings.ReplaceAll(strings.TrimSpace(ib.String()), "\\\n", " "))
				}
			}
			rows = append(rows, row)
			return
		}
		for ch := n.FirstChild; ch != nil; ch = ch.NextSibling {
			walk(ch)
		}
	}
	walk(n)
	if len(rows) == 0 {
		return
	}
	cols := 0
	for _, r := range rows {
		cols = max(cols, len(r))
	}
	if cols == 0 {
		return
	}
	writeRow := func(r []string) {
		b.WriteString("|")
		for i := 0; i < cols; i++ {
			cell := ""
			if i < len(r) {
				cell = r[i]
			}
			b.WriteString(" " + cell + " |")
		}
		b.WriteString("\n")
	}
	writeRow(rows[0])
	b.WriteString("|" + strings.Repeat(" --- |", cols) + "\n")
	for _, r := range rows[1:] {
		writeRow(r)
	}
	b.WriteString("\n")
}

func (c *htmlConv) inlineChildren(b *strings.Builder, n *xhtml.Node) {
	for ch := n.FirstChild; ch != nil; ch = ch.NextSibling {
		c.inline(b, ch)
	}
}

var spaceRun = regexp.MustCompile(`[ \t\r\n]+`)

func (c *htmlConv) inline(b *strings.Builder, n *xhtml.Node) {
	switch n.Type {
	case xhtml.TextNode:
		b.WriteString(escapeInline(spaceRun.ReplaceAllString(n.Data, " ")))
		return
	case xhtml.ElementNode:
	default:
		return
	}
	wrap := func(mark string) {
		var ib strings.Builder
		c.inlineChildren(&ib, n)
		s := ib.String()
		inner := strings.TrimSpace(s)
		if inner == "" {
			b.WriteString(s)
			return
		}
		// Keep surrounding spaces outside the delimiters so they still
		// count as emphasis.
		lead := s[:len(s)-len(strings.TrimLeft(s, " "))]
		trail := s[len(strings.TrimRight(s, " ")):]
		b.WriteString(lead + mark + inner + mark + trail)
	}
	switch n.DataAtom {
	case atom.B, atom.Strong:
		wrap("**")
	case atom.I, atom.Em:
		wrap("*")
	case atom.Del, atom.S, atom.Strike:
		wrap("~~")
	case atom.Code:
		code := spaceRun.ReplaceAllString(textContent(n), " ")
		fence := strings.Repeat("`", longestRun(code, '`')+1)
		if strings.HasPrefix(code, "`") || strings.HasSuffix(code, "`") {
			code = " " + code + " "
		}
		b.WriteString(fence + code + fence)
	case atom.Br:
		b.WriteString("\\\n")
	case atom.A:
		href := ""
		for _, a := range n.Attr {
			if a.Key == "href" {
				href = a.Val
			}
		}
		if href != "" && c.rewrite != nil {
			href = c.rewrite(href)
		}
		var ib strings.Builder
		c.inlineChildren(&ib, n)
		label := strings.TrimSpace(ib.String())
		if href == "" {
			b.WriteString(label)
			return
		}
		if label == "" {
			label = escapeInline(href)
		}
		b.WriteString("[" + label + "](" + linkDest(href) + ")")
	case atom.Img:
		for _, a := range n.Attr {
			if a.Key == "alt" {
				b.WriteString(escapeInline(a.Val))
			}
		}
	default:
		if isBlock(n) {
			var inner strings.Builder
			c.blocks(&inner, []*xhtml.Node{n})
			b.WriteString(strings.ReplaceAll(strings.TrimSpace(inner.String()), "\n", " "))
			return
		}
		c.inlineChildren(b, n)
	}
}

// linkDest makes a URL safe as a markdown link destination.
func linkDest(href string) string {
	r := strings.NewReplacer(" ", "%20", "(", "%28", ")", "%29", "<", "%3C", ">", "%3E", "\n", "", "\\", "%5C")
	return r.Replace(href)
}

func textContent(n *xhtml.Node) string {
	var b strings.Builder
	var walk func(n *xhtml.Node)
	walk = func(n *xhtml.Node) {
		if n.Type == xhtml.TextNode {
			b.WriteString(n.Data)
		}
		if n.Type == xhtml.ElementNode && n.DataAtom == atom.Br {
			b.WriteString("\n")
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return b.String()
}

func longestRun(s string, ch byte) int {
	best, cur := 0, 0
	for i := 0; i < len(s); i++ {
		if s[i] == ch {
			cur++
			best = max(best, cur)
		} else {
			cur = 0
		}
	}
	return best
}

// startOfLineSafe neutralises block syntax at the start of each line of an
// inline run (text that began a paragraph in HTML must not turn into a
// heading or list in markdown).
func startOfLineSafe(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		t := strings.TrimLeft(l, " ")
		if t == "" {
			lines[i] = ""
			continue
		}
		if m := orderedMk.FindStringSubmatch(t); m != nil {
			t = m[1] + `\` + m[2] + t[len(m[0]):]
		} else if strings.ContainsRune("#>-+=", rune(t[0])) {
			t = `\` + t
		}
		lines[i] = t
	}
	return strings.Join(lines, "\n")
}
