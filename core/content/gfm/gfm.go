// Package gfm converts between GFM-MIMI markdown (content-08 §7), plain
// text, and the HTML subset Matrix uses in formatted_body.
//
// GFM-MIMI is GitHub Flavored Markdown with the Tables, Task list items and
// Strikethrough extensions only (no Autolink extension), and with "No HTML":
// senders write the '<' that opens an HTML tag as "&lt;", receivers show any
// HTML tag as text. Parsing uses goldmark; HTML output and input are
// sanitised with bluemonday.
package gfm

import (
	"bytes"
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/extension"
	east "github.com/yuin/goldmark/extension/ast"
	"github.com/yuin/goldmark/parser"
	"github.com/yuin/goldmark/renderer"
	"github.com/yuin/goldmark/renderer/html"
	"github.com/yuin/goldmark/text"
	"github.com/yuin/goldmark/util"
)

// MaxInput is the largest markdown or HTML input the converters process;
// longer input is cut at a UTF-8 boundary first.
const MaxInput = 64 << 10

// MaxMarkup bounds the markdown punctuation (emphasis, link, quote, list,
// table, code and HTML delimiters) a document may have before the markdown
// functions stop parsing it. goldmark, like most CommonMark parsers, takes
// super-linear time on crafted delimiter runs (goldmark issue #555: a
// 64 KiB document of "*a_" needs seconds); past this bound Sanitize
// escapes every '<', ToHTML shows the source as text, ToPlain returns it
// unchanged and Links finds nothing.
const MaxMarkup = 2048

// tooComplex reports whether src has more markup characters than MaxMarkup.
func tooComplex(src []byte) bool {
	n := 0
	for _, c := range src {
		switch c {
		case '*', '_', '[', ']', '(', ')', '`', '~', '<', '>', '|', '-', '+', '!', '\\', '&', '#', '=':
			n++
			if n > MaxMarkup {
				return true
			}
		}
	}
	return false
}

// newMarkdown returns a goldmark instance for GFM-MIMI: the three permitted
// extensions, no linkify, raw HTML rendered as text, newlines as <br>
// (chat semantics).
func newMarkdown() goldmark.Markdown {
	return goldmark.New(
		goldmark.WithExtensions(extension.Table, extension.Strikethrough, extension.TaskList),
		goldmark.WithRendererOptions(
			html.WithHardWraps(),
			renderer.WithNodeRenderers(util.Prioritized(rawHTMLAsText{}, 100)),
		),
	)
}

var md = newMarkdown()

func limit(s string) string {
	if len(s) <= MaxInput {
		return s
	}
	s = s[:MaxInput]
	// Do not leave half a UTF-8 sequence at the cut.
	for i := 0; i < utf8.UTFMax && len(s) > 0; i++ {
		if r, size := utf8.DecodeLastRuneInString(s); r != utf8.RuneError || size > 1 {
			break
		}
		s = s[:len(s)-1]
	}
	return s
}

func parse(src []byte) ast.Node {
	return md.Parser().Parse(text.NewReader(src))
}

// htmlStarts returns the offsets of the '<' opening each raw-HTML element
// goldmark finds (inline raw HTML and HTML blocks).
func htmlStarts(src []byte) []int {
	var offs []int
	_ = ast.Walk(parse(src), func(n ast.Node, entering bool) (ast.WalkStatus, error) {
		if !entering {
			return ast.WalkContinue, nil
		}
		switch n := n.(type) {
		case *ast.RawHTML:
			if n.Segments.Len() > 0 {
				offs = append(offs, n.Segments.At(0).Start)
			}
		case *ast.HTMLBlock:
			if n.Lines().Len() > 0 {
				seg := n.Lines().At(0)
				if i := bytes.IndexByte(src[seg.Start:seg.Stop], '<'); i >= 0 {
					offs = append(offs, seg.Start+i)
				}
			}
		}
		return ast.WalkContinue, nil
	})
	return offs
}

// Sanitize makes markdown conform to GFM-MIMI's "No HTML" rule: the '<' that
// opens any GFM HTML tag (inline or block, comments and declarations too)
// becomes "&lt;". Autolinks such as <mimi://example.com/u/alice> and code
// are left alone.
func Sanitize(markdown string) string {
	src := []byte(limit(markdown))
	if tooComplex(src) {
		return strings.ReplaceAll(string(src), "<", "&lt;")
	}
	for round := 0; round < 64; round++ {
		offs := htmlStarts(src)
		if len(offs) == 0 {
			return string(src)
		}
		sort.Ints(offs)
		out := make([]byte, 0, len(src)+3*len(offs))
		last := 0
		for _, o := range offs {
			if o < last || o >= len(src) || src[o] != '<' {
				continue
			}
			out = append(out, src[last:o]...)
			out = append(out, "&lt;"...)
			last = o + 1
		}
		src = append(out, src[last:]...)
	}
	// Pathological input: give up on precision and neutralise every '<'
	// outside what is certainly safe.
	return strings.ReplaceAll(string(src), "<", "&lt;")
}

var (
	entityLike = regexp.MustCompile(`&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});`)
	orderedMk  = regexp.MustCompile(`^([0-9]{1,9})([.)])`)
)

// escapeInline escapes what starts inline markdown anywhere in a line:
// ASCII punctuation with a meaning gets a backslash, '<' becomes "&lt;", and
// '&' becomes "&amp;" where it would otherwise start an entity reference.
func escapeInline(s string) string {
	var b strings.Builder
	b.Grow(len(s) + len(s)/8)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '\\', '`', '*', '_', '[', ']', '~', '|':
			b.WriteByte('\\')
			b.WriteByte(c)
		case '<':
			b.WriteString("&lt;")
		case '&':
			if loc := entityLike.FindStringIndex(s[i:]); loc != nil && loc[0] == 0 {
				b.WriteString("&amp;")
			} else {
				b.WriteByte('&')
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// Escape returns GFM-MIMI that renders as exactly the given plain text:
// markdown punctuation is backslash-escaped, '<' becomes "&lt;", things that
// would start a block at the beginning of a line (headings, quotes, lists,
// rules, indented code) are neutralised, leading and trailing blanks kept.
// Line breaks stay line breaks; runs of empty lines count as one.
func Escape(plain string) string {
	lines := strings.Split(limit(plain), "\n")
	for i, l := range lines {
		lines[i] = escapeLine(l)
	}
	return strings.Join(lines, "\n")
}

func escapeLine(l string) string {
	var b strings.Builder
	// Leading blanks would make indented code: write them as references.
	j := 0
	for j < len(l) && (l[j] == ' ' || l[j] == '\t') {
		if l[j] == ' ' {
			b.WriteString("&#32;")
		} else {
			b.WriteString("&#9;")
		}
		j++
	}
	rest := l[j:]
	// Trailing blanks would be dropped (or make a hard break): references too.
	k := len(rest)
	for k > 0 && (rest[k-1] == ' ' || rest[k-1] == '\t') {
		k--
	}
	tail := strings.NewReplacer(" ", "&#32;", "\t", "&#9;").Replace(rest[k:])
	rest = rest[:k]
	if m := orderedMk.FindStringSubmatch(rest); m != nil {
		b.WriteString(m[1] + `\` + m[2])
		rest = rest[len(m[0]):]
	} else if rest != "" && strings.ContainsRune("#>-+=", rune(rest[0])) {
		b.WriteByte('\\')
		b.WriteByte(rest[0])
		rest = rest[1:]
	}
	b.WriteString(escapeInline(rest))
	b.WriteString(tail)
	return b.String()
}

// rawHTMLAsText renders raw HTML nodes as escaped text, as GFM-MIMI
// receivers must.
type rawHTMLAsText struct{}

func (rawHTMLAsText) RegisterFuncs(reg renderer.NodeRendererFuncRegisterer) {
	reg.Register(ast.KindRawHTML, func(w util.BufWriter, src []byte, n ast.Node, entering bool) (ast.WalkStatus, error) {
		if entering {
			segs := n.(*ast.RawHTML).Segments
			for i := 0; i < segs.Len(); i++ {
				s := segs.At(i)
				_, _ = w.Write(util.EscapeHTML(s.Value(src)))
			}
		}
		return ast.WalkSkipChildren, nil
	})
	reg.Register(ast.KindHTMLBlock, func(w util.BufWriter, src []byte, n ast.Node, entering bool) (ast.WalkStatus, error) {
		if entering {
			_, _ = w.WriteString("<p>")
			lines := n.Lines()
			for i := 0; i < lines.Len(); i++ {
				s := lines.At(i)
				_, _ = w.Write(util.EscapeHTML(bytes.TrimRight(s.Value(src), "\n")))
				if i < lines.Len()-1 {
					_, _ = w.WriteString("<br>\n")
				}
			}
			_, _ = w.WriteString("</p>\n")
		}
		return ast.WalkSkipChildren, nil
	})
	// Matrix HTML has no <input>: show task boxes as text.
	reg.Register(east.KindTaskCheckBox, func(w util.BufWriter, _ []byte, n ast.Node, entering bool) (ast.WalkStatus, error) {
		if entering {
			if n.(*east.TaskCheckBox).IsChecked {
				_, _ = w.WriteString("[x] ")
			} else {
				_, _ = w.WriteString("[ ] ")
			}
		}
		return ast.WalkContinue, nil
	})
}

var _ renderer.NodeRenderer = rawHTMLAsText{}

// parserFor is kept for tests that need the configured parser.
var _ parser.Parser = md.Parser()
