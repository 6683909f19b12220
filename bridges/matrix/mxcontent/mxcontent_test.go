package mxcontent

import (
	"testing"

	"maunium.net/go/mautrix/id"
)

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

func TestWithoutMention(t *testing.T) {
	mention := []id.UserID{"@mimigw:localhost"}
	for _, c := range []struct {
		text      string
		mentions  []id.UserID
		rest      string
		addressed bool
	}{
		{"MIMI Gateway (Chatbot): invite bob@amt-b.example", mention, "invite bob@amt-b.example", true},
		{"mimigw, help", nil, "help", true},
		{"@mimigw:localhost: help", nil, "help", true},
		{"@mimigw:localhost help", mention, "help", true},
		{"@mimigw:localhost help", nil, "help", true},
		{"mimigw help me", nil, "mimigw help me", false},
		{"mimigwx: help", mention, "mimigwx: help", false},
		{"hello mimigw: help", mention, "hello mimigw: help", false},
		{"invite bob", nil, "invite bob", false},
	} {
		rest, addressed := WithoutMention(c.text, c.mentions, "@mimigw:localhost", "MIMI Gateway (Chatbot)")
		if rest != c.rest || addressed != c.addressed {
			t.Errorf("WithoutMention(%q) = %q, %v; want %q, %v", c.text, rest, addressed, c.rest, c.addressed)
		}
	}
}
