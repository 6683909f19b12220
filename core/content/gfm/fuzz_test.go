package gfm

import (
	"strings"
	"testing"
	"unicode/utf8"
)

var fuzzSeeds = []string{
	"Hi everyone, we just shipped release 2.0. __Good  work__!",
	"Kudos to [@Alice Smith](mimi://example.com/u/alice-smith) for making the release happen!",
	"<div>\n<b>x</b>\n</div>", "<!-- c --> <?pi?> <![CDATA[x]]> <!DOCTYPE html>",
	"| a | b |\n|---|---|\n| 1 | 2 |", "- [x] done\n- [ ] todo", "> q\n>> qq", "```\n<b>\n```",
	"<a href=\"https://matrix.to/#/@a:b\">A</a><br><ol start=\"3\"><li>x</li></ol>",
	"<pre><code class=\"language-go\">``x``</code></pre><table><tr><td>1</td></tr></table>",
}

// FuzzMarkdown: Sanitize leaves no raw HTML for a GFM parser to find and is
// idempotent; Escape round-trips through ToPlain; nothing panics.
func FuzzMarkdown(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 4096 {
			return
		}
		clean := Sanitize(s)
		if offs := htmlStarts([]byte(clean)); len(offs) != 0 {
			t.Fatalf("Sanitize(%q) = %q leaves raw HTML at %v", s, clean, offs)
		}
		if again := Sanitize(clean); again != clean {
			t.Fatalf("Sanitize not idempotent: %q -> %q -> %q", s, clean, again)
		}
		_ = ToHTML(s, nil)
		_ = ToPlain(s)
		_ = Links(s)
		// Escape is exact up to runs of empty lines, for text a chat
		// message can hold, within the MaxMarkup bound of ToPlain.
		if utf8.ValidString(s) && !strings.ContainsAny(s, "\r\x00\v\f") && strings.Trim(s, "\n") == s && !tooComplex([]byte(Escape(s))) {
			want := blankRun.ReplaceAllString(s, "\n\n")
			if got := ToPlain(Escape(s)); got != want {
				t.Fatalf("ToPlain(Escape(%q)) = %q, want %q", s, got, want)
			}
		}
	})
}

// FuzzFromHTML: converting any HTML gives markdown without raw HTML.
func FuzzFromHTML(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 4096 {
			return
		}
		md := FromHTML(s, nil)
		if offs := htmlStarts([]byte(md)); len(offs) != 0 {
			t.Fatalf("FromHTML(%q) = %q contains raw HTML at %v", s, md, offs)
		}
		_ = HTMLLinks(s)
	})
}
