package gfm

import (
	"strings"

	"github.com/yuin/goldmark/ast"
	xhtml "golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// Mention returns a GFM-MIMI link that mentions a user (content-08 §5.4):
// "[@display](uri)". An empty display gives the "<uri>" form.
func Mention(display, userURI string) string {
	if display == "" {
		return "<" + linkDest(userURI) + ">"
	}
	if !strings.HasPrefix(display, "@") {
		display = "@" + display
	}
	return "[" + escapeInline(display) + "](" + linkDest(userURI) + ")"
}

// Links returns the targets of all links and autolinks in GFM-MIMI markdown,
// in document order.
func Links(markdown string) []string {
	src := []byte(limit(markdown))
	if tooComplex(src) {
		return nil
	}
	var out []string
	_ = ast.Walk(parse(src), func(n ast.Node, entering bool) (ast.WalkStatus, error) {
		if !entering {
			return ast.WalkContinue, nil
		}
		switch n := n.(type) {
		case *ast.Link:
			out = append(out, string(n.Destination))
		case *ast.AutoLink:
			out = append(out, string(n.URL(src)))
		}
		return ast.WalkContinue, nil
	})
	return out
}

// HTMLLinks returns the href targets of all <a> elements in HTML, in
// document order.
func HTMLLinks(h string) []string {
	nodes, err := xhtml.ParseFragment(strings.NewReader(limit(h)), &xhtml.Node{Type: xhtml.ElementNode, Data: "div", DataAtom: atom.Div})
	if err != nil {
		return nil
	}
	var out []string
	var walk func(n *xhtml.Node)
	walk = func(n *xhtml.Node) {
		if n.Type == xhtml.ElementNode && n.DataAtom == atom.A {
			for _, a := range n.Attr {
				if a.Key == "href" {
					out = append(out, a.Val)
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	for _, n := range nodes {
		walk(n)
	}
	return out
}

// SanitizeHTML cleans HTML with the Matrix-subset policy ToHTML uses.
func SanitizeHTML(h string) string { return policy.Sanitize(limit(h)) }
