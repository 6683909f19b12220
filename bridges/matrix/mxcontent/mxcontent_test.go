package mxcontent

import "testing"

func TestReplyFallbackStripping(t *testing.T) {
	if got := StripReplyFallback("> <@a:hs> quoted\n> more\n\nanswer"); got != "answer" {
		t.Errorf("StripReplyFallback = %q", got)
	}
	if got := StripReplyFallback("no quote"); got != "no quote" {
		t.Errorf("StripReplyFallback = %q", got)
	}
	if got := stripHTMLReplyFallback("<mx-reply><blockquote>q</blockquote></mx-reply>answer"); got != "answer" {
		t.Errorf("stripHTMLReplyFallback = %q", got)
	}
}
