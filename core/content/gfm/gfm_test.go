package gfm

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSanitize(t *testing.T) {
	cases := []struct{ in, want string }{
		{"plain text", "plain text"},
		{"a <b>bold</b> word", "a &lt;b>bold&lt;/b> word"},
		{"<div>\nblock\n</div>", "&lt;div>\nblock\n&lt;/div>"},
		{"<!-- comment -->", "&lt;!-- comment -->"},
		{"see <mimi://example.com/u/alice>", "see <mimi://example.com/u/alice>"},
		{"`<b>` in code", "`<b>` in code"},
		{"```\n<script>x</script>\n```", "```\n<script>x</script>\n```"},
		{"x < y and y > z", "x < y and y > z"},
		{"<img src=x onerror=alert(1)>", "&lt;img src=x onerror=alert(1)>"},
		{"text <span\nclass=\"a\">x</span>", "text &lt;span\nclass=\"a\">x&lt;/span>"},
	}
	for _, tc := range cases {
		if got := Sanitize(tc.in); got != tc.want {
			t.Errorf("Sanitize(%q) = %q, want %q", tc.in, got, tc.want)
		}
		// Idempotent, and no raw HTML left for a parser to find.
		if again := Sanitize(tc.want); again != tc.want {
			t.Errorf("Sanitize not idempotent on %q: %q", tc.want, again)
		}
		if offs := htmlStarts([]byte(tc.want)); len(offs) != 0 {
			t.Errorf("raw HTML left in %q at %v", tc.want, offs)
		}
	}
}

func TestEscapeRoundTrip(t *testing.T) {
	texts := []string{
		"Hello, world!",
		"# not a heading",
		"> not a quote",
		"- not a list\n+ nor this\n1. nor this\n2) nor this",
		"*not emphasis* _nor this_ **nor** ~~this~~",
		"[not](a link) ![nor](an image)",
		"<b>not html</b> &amp; &lt; entity-looking",
		"    not code",
		"a | b\n--- | ---\nnot | a table",
		"===\n---\n***",
		"back\\slash `tick`",
		"line one\nline two",
	}
	for _, s := range texts {
		md := Escape(s)
		if got := ToPlain(md); got != s {
			t.Errorf("ToPlain(Escape(%q)) = %q (escaped %q)", s, got, md)
		}
		if offs := htmlStarts([]byte(md)); len(offs) != 0 {
			t.Errorf("Escape(%q) = %q has raw HTML", s, md)
		}
	}
}

func TestToPlain(t *testing.T) {
	cases := []struct{ in, want string }{
		{"Hi everyone, we just shipped release 2.0. __Good  work__!", "Hi everyone, we just shipped release 2.0. Good  work!"},
		{"**bold** and *em* and ~~gone~~ and `code`", "bold and em and gone and code"},
		{"[@Alice Smith](mimi://example.com/u/alice-smith) look", "@Alice Smith look"},
		{"see [docs](https://example.com/docs)", "see docs (https://example.com/docs)"},
		{"<https://example.com>", "https://example.com"},
		{"# Title\n\npara", "Title\n\npara"},
		{"- a\n- b\n  - c", "- a\n- b\n  - c"},
		{"1. one\n2. two", "1. one\n2. two"},
		{"- [x] done\n- [ ] todo", "- [x] done\n- [ ] todo"},
		{"> quoted\n> more", "> quoted\n> more"},
		{"| a | b |\n|---|---|\n| 1 | 2 |", "a | b\n1 | 2"},
		{"&lt;b> stays text", "<b> stays text"},
		{"```go\nfmt.Println()\n```", "fmt.Println()"},
		{"line1\nline2", "line1\nline2"},
	}
	for _, tc := range cases {
		if got := ToPlain(tc.in); got != tc.want {
			t.Errorf("ToPlain(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestToHTML(t *testing.T) {
	cases := []struct{ in, want string }{
		{"**bold** *em* ~~del~~ `code`", "<p><strong>bold</strong> <em>em</em> <del>del</del> <code>code</code></p>"},
		{"a <b>raw</b>", "<p>a &lt;b&gt;raw&lt;/b&gt;</p>"},
		{"<script>alert(1)</script>", "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>"},
		{"[x](javascript:alert(1))", "<p>x</p>"},
		{"line1\nline2", "<p>line1<br>\nline2</p>"},
		{"www.example.com", "<p>www.example.com</p>"},
		{"![pic](https://evil.example/x.png)", "<p><img alt=\"pic\"></p>"},
		{"- [x] done", "<ul>\n<li>[x] done</li>\n</ul>"},
	}
	for _, tc := range cases {
		if got := ToHTML(tc.in, nil); got != tc.want {
			t.Errorf("ToHTML(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	pill := ToHTML("[@Alice](mimi://example.com/u/alice)", func(href string) string {
		if href == "mimi://example.com/u/alice" {
			return "https://matrix.to/#/@alice:example.com"
		}
		return href
	})
	if pill != `<p><a href="https://matrix.to/#/@alice:example.com">@Alice</a></p>` {
		t.Errorf("pill: %q", pill)
	}
}

func TestFromHTML(t *testing.T) {
	cases := []struct{ in, want string }{
		{"<b>bold</b> and <i>it</i>", "**bold** and *it*"},
		{"<strong>a</strong><em>b</em><del>c</del><code>d</code>", "**a***b*~~c~~`d`"},
		{"<p>one</p><p>two</p>", "one\n\ntwo"},
		{"a<br>b", "a\\\nb"},
		{`<a href="https://example.com/a_(b)">link</a>`, "[link](https://example.com/a_%28b%29)"},
		{`<a href="javascript:alert(1)">x</a>`, "x"},
		{"<script>alert(1)</script>hi", "hi"},
		{"<mx-reply><blockquote>quoted reply</blockquote></mx-reply>answer", "answer"},
		{"<h2>Head</h2><p># not heading</p>", "## Head\n\n\\# not heading"},
		{"<ul><li>a</li><li>b</li></ul>", "- a\n- b"},
		{`<ol start="3"><li>c</li><li>d</li></ol>`, "3. c\n4. d"},
		{"<blockquote><p>q1</p><p>q2</p></blockquote>", "> q1\n>\n> q2"},
		{`<pre><code class="language-go">x := 1
</code></pre>`, "```go\nx := 1\n```"},
		{"<p>1 &lt; 2 &amp;&amp; *x*</p>", "1 &lt; 2 && \\*x\\*"},
		{"<table><tr><th>a</th><th>b</th></tr><tr><td>1</td><td>2</td></tr></table>", "| a | b |\n| --- | --- |\n| 1 | 2 |"},
		{"<hr>", "* * *"},
		{"<font color=\"red\">red</font> <u>under</u>", "red under"},
	}
	for _, tc := range cases {
		got := FromHTML(tc.in, nil)
		if got != tc.want {
			t.Errorf("FromHTML(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if offs := htmlStarts([]byte(got)); len(offs) != 0 {
			t.Errorf("FromHTML(%q) = %q contains raw HTML", tc.in, got)
		}
	}
	mention := FromHTML(`Hi <a href="https://matrix.to/#/@alice:example.com">Alice</a>`, func(href string) string {
		if strings.HasPrefix(href, "https://matrix.to/#/@alice:") {
			return "mimi://example.com/u/alice"
		}
		return href
	})
	if mention != "Hi [Alice](mimi://example.com/u/alice)" {
		t.Errorf("mention: %q", mention)
	}
}

// TestHTMLRoundTrip: markdown → HTML → markdown keeps the meaning (same
// HTML when rendered again).
func TestHTMLRoundTrip(t *testing.T) {
	for _, md := range []string{
		"**bold** and *em*",
		"- a\n- b",
		"> quote",
		"## Heading",
		"text with [link](https://example.com/)",
		"1. one\n2. two",
		"`code` and ~~gone~~",
		"| a | b |\n| --- | --- |\n| 1 | 2 |",
	} {
		h := ToHTML(md, nil)
		back := FromHTML(h, nil)
		if h2 := ToHTML(back, nil); h2 != h {
			t.Errorf("round trip of %q: html %q, back %q, html again %q", md, h, back, h2)
		}
	}
}

func TestLimit(t *testing.T) {
	long := strings.Repeat("a", MaxInput-1) + "ü" + "tail"
	got := limit(long)
	if len(got) != MaxInput-1 || !utf8.ValidString(got) {
		t.Errorf("limit cut to %d octets, valid %v", len(got), utf8.ValidString(got))
	}
	if out := ToPlain(strings.Repeat("x", 2*MaxInput)); len(out) != MaxInput {
		t.Errorf("ToPlain of oversized input gave %d octets", len(out))
	}
}

// TestComplexityGuard: past MaxMarkup the markdown functions do not parse
// (goldmark is super-linear on crafted delimiter runs) and degrade safely.
func TestComplexityGuard(t *testing.T) {
	in := strings.Repeat("*a_", MaxMarkup) + "<b>x</b> [@A](mimi://a/u/b)"
	if got := Sanitize(in); strings.Contains(got, "<") || !strings.Contains(got, "&lt;b>") {
		t.Errorf("Sanitize fallback left '<': %q", got[len(got)-40:])
	}
	if got := ToPlain(in); got != in {
		t.Error("ToPlain fallback changed the text")
	}
	if got := ToHTML(in, nil); !strings.HasPrefix(got, "<p>*a_") || strings.Contains(got, "<b>") {
		t.Errorf("ToHTML fallback: %q", got[len(got)-60:])
	}
	if got := Links(in); got != nil {
		t.Errorf("Links fallback: %v", got)
	}
	// Just under the bound the parser still runs.
	small := strings.Repeat("*a_", MaxMarkup/2-10) + "[@A](mimi://a/u/b)"
	if got := Links(small); len(got) != 1 {
		t.Errorf("Links under the bound: %v", got)
	}
}
