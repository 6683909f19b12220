package gfm

import (
	"strconv"
	"strings"

	"github.com/yuin/goldmark/ast"
	east "github.com/yuin/goldmark/extension/ast"
	"github.com/yuin/goldmark/util"
)

// ToPlain renders GFM-MIMI as plain text for receivers without rich text
// (XMPP <body>, the Matrix body fallback): emphasis marks go, links become
// "text (target)" unless the text already is the target, mention links to
// mimi: URIs keep only their text, list items get "- " or "1. ", quotes
// "> ", table cells " | ". Raw HTML is kept as the text it is.
func ToPlain(markdown string) string {
	src := []byte(limit(markdown))
	if tooComplex(src) {
		return strings.Trim(string(src), "\n")
	}
	p := &plainWriter{src: src}
	p.blocks(parse(src), "")
	return strings.Trim(p.b.String(), "\n")
}

type plainWriter struct {
	src []byte
	b   strings.Builder
}

func (p *plainWriter) blocks(n ast.Node, prefix string) {
	tight := false
	if l, ok := n.Parent().(*ast.List); ok && l.IsTight {
		_, tight = n.(*ast.ListItem)
	}
	first := true
	for c := n.FirstChild(); c != nil; c = c.NextSibling() {
		if !first {
			p.b.WriteString("\n")
			if !tight {
				p.b.WriteString(strings.TrimRight(prefix, " ") + "\n")
			}
		}
		first = false
		p.block(c, prefix)
	}
}

func (p *plainWriter) lines(n ast.Node) string {
	var b strings.Builder
	ls := n.Lines()
	for i := 0; i < ls.Len(); i++ {
		s := ls.At(i)
		b.Write(s.Value(p.src))
	}
	return strings.TrimRight(b.String(), "\n")
}

func (p *plainWriter) writePrefixed(s, prefix string) {
	for i, l := range strings.Split(s, "\n") {
		if i > 0 {
			p.b.WriteString("\n")
		}
		p.b.WriteString(prefix + l)
	}
}

func (p *plainWriter) block(n ast.Node, prefix string) {
	switch n := n.(type) {
	case *ast.Paragraph, *ast.TextBlock, *ast.Heading:
		p.writePrefixed(p.inlineText(n), prefix)
	case *ast.ThematicBreak:
		p.b.WriteString(prefix + "---")
	case *ast.CodeBlock, *ast.FencedCodeBlock, *ast.HTMLBlock:
		s := p.lines(n)
		if hb, ok := n.(*ast.HTMLBlock); ok && hb.HasClosure() {
			s += "\n" + strings.TrimRight(string(hb.ClosureLine.Value(p.src)), "\n")
		}
		p.writePrefixed(s, prefix)
	case *ast.Blockquote:
		p.blocks(n, prefix+"> ")
	case *ast.List:
		num := n.Start
		firstItem := true
		for item := n.FirstChild(); item != nil; item = item.NextSibling() {
			if !firstItem {
				p.b.WriteString("\n")
				if !n.IsTight {
					p.b.WriteString(strings.TrimRight(prefix, " ") + "\n")
				}
			}
			firstItem = false
			marker := "- "
			if n.IsOrdered() {
				marker = strconv.Itoa(num) + ". "
				num++
			}
			var sub plainWriter
			sub.src = p.src
			sub.blocks(item, "")
			pad := strings.Repeat(" ", len(marker))
			for i, l := range strings.Split(sub.b.String(), "\n") {
				if i > 0 {
					p.b.WriteString("\n" + prefix + pad + l)
				} else {
					p.b.WriteString(prefix + marker + l)
				}
			}
		}
	case *east.Table:
		firstRow := true
		for row := n.FirstChild(); row != nil; row = row.NextSibling() {
			if !firstRow {
				p.b.WriteString("\n")
			}
			firstRow = false
			var cells []string
			for cell := row.FirstChild(); cell != nil; cell = cell.NextSibling() {
				cells = append(cells, p.inlineText(cell))
			}
			p.b.WriteString(prefix + strings.Join(cells, " | "))
		}
	default:
		p.blocks(n, prefix)
	}
}

// inlineText renders the inline children of n.
func (p *plainWriter) inlineText(n ast.Node) string {
	var b strings.Builder
	for c := n.FirstChild(); c != nil; c = c.NextSibling() {
		p.inline(&b, c)
	}
	return b.String()
}

func (p *plainWriter) inline(b *strings.Builder, n ast.Node) {
	switch n := n.(type) {
	case *ast.Text:
		v := n.Segment.Value(p.src)
		if !n.IsRaw() {
			v = util.UnescapePunctuations(v)
			v = util.ResolveNumericReferences(v)
			v = util.ResolveEntityNames(v)
		}
		b.Write(v)
		if n.HardLineBreak() || n.SoftLineBreak() {
			b.WriteString("\n")
		}
	case *ast.String:
		b.Write(n.Value)
	case *ast.CodeSpan:
		for c := n.FirstChild(); c != nil; c = c.NextSibling() {
			if t, ok := c.(*ast.Text); ok {
				b.Write(t.Segment.Value(p.src))
			} else {
				p.inline(b, c)
			}
		}
	case *ast.RawHTML:
		for i := 0; i < n.Segments.Len(); i++ {
			s := n.Segments.At(i)
			b.Write(s.Value(p.src))
		}
	case *ast.AutoLink:
		b.Write(n.URL(p.src))
	case *ast.Link:
		label := p.inlineText(n)
		dest := string(n.Destination)
		switch {
		case label == dest || label == "":
			b.WriteString(dest)
		case strings.HasPrefix(dest, "mimi:"):
			b.WriteString(label)
		default:
			b.WriteString(label + " (" + dest + ")")
		}
	case *ast.Image:
		b.WriteString(p.inlineText(n))
	case *east.TaskCheckBox:
		if n.IsChecked {
			b.WriteString("[x] ")
		} else {
			b.WriteString("[ ] ")
		}
	default:
		b.WriteString(p.inlineText(n))
	}
}
