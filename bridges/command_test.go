package bridges

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mimi-gateway/mimi-gateway/core/event"
)

func testCommands(t testing.TB) *CommandSet {
	t.Helper()
	s := &CommandSet{}
	s.MustAdd(CommandSpec{Name: "help", Names: map[Language]string{German: "hilfe"}, Aliases: []string{"?"}, Help: PhraseHelpHelp})
	s.MustAdd(CommandSpec{Name: "invite", Names: map[Language]string{German: "einladen"}, MinArgs: 1, MaxArgs: 1, Help: PhraseHelpInvite})
	return s
}

func TestCommandParse(t *testing.T) {
	s := testCommands(t)
	for _, c := range []struct {
		name   string
		text   string
		bare   bool
		want   Command
		result CommandResult
	}{
		{"prefixed invite", "!mimi invite bob@amt-b.example", false, Command{Name: "invite", Args: []string{"bob@amt-b.example"}, Lang: English}, CommandOK},
		{"prefix in any case, spaces", "  !MIMI   einladen   mimi://amt-b.example/u/bob ", false, Command{Name: "invite", Args: []string{"mimi://amt-b.example/u/bob"}, Lang: German}, CommandOK},
		{"prefix alone is help", "!mimi", false, Command{Name: "help"}, CommandOK},
		{"bare help", "help", true, Command{Name: "help", Args: []string{}, Lang: English}, CommandOK},
		{"bare German help", "Hilfe", true, Command{Name: "help", Args: []string{}, Lang: German}, CommandOK},
		{"neutral alias", "?", true, Command{Name: "help", Args: []string{}}, CommandOK},
		{"bare invite", "invite bob@amt-b.example", true, Command{Name: "invite", Args: []string{"bob@amt-b.example"}, Lang: English}, CommandOK},
		{"no prefix, not bare", "invite bob@amt-b.example", false, Command{}, NotCommand},
		{"bare text that is no command", "help me with this patient", true, Command{}, NotCommand},
		{"bare unknown word", "hello", true, Command{}, NotCommand},
		{"prefixed unknown", "!mimi frobnicate now", false, Command{Name: "frobnicate"}, CommandUnknown},
		{"prefixed missing argument", "!mimi invite", false, Command{Name: "invite", Args: []string{}, Lang: English}, CommandBadArgs},
		{"prefixed extra argument", "!mimi invite a b", false, Command{Name: "invite", Args: []string{"a", "b"}, Lang: English}, CommandBadArgs},
		{"bare extra argument", "invite a b", true, Command{}, NotCommand},
		{"prefix glued to a word", "!mimixyz help", false, Command{}, NotCommand},
		{"two lines", "!mimi help\nand more", false, Command{}, NotCommand},
		{"too long", "!mimi invite " + strings.Repeat("a", MaxCommandLength), false, Command{}, NotCommand},
		{"not UTF-8", "!mimi invite \xff", false, Command{}, NotCommand},
		{"no-break space separates", "!mimi\u00a0invite\u00a0bob@amt-b.example", false, Command{Name: "invite", Args: []string{"bob@amt-b.example"}, Lang: English}, CommandOK},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, res := s.Parse(c.text, "!mimi", c.bare)
			if res != c.result || got.Name != c.want.Name || got.Lang != c.want.Lang || !slices.Equal(got.Args, c.want.Args) {
				t.Errorf("Parse(%q) = %+v, %d; want %+v, %d", c.text, got, res, c.want, c.result)
			}
		})
	}
}

func TestCommandAdd(t *testing.T) {
	s := testCommands(t)
	for _, spec := range []CommandSpec{
		{Name: "hilfe", Help: PhraseHelpHelp},
		{Name: "Search", Help: PhraseHelpHelp},
		{Name: "two words", Help: PhraseHelpHelp},
		{Name: "search", Aliases: []string{"?"}, Help: PhraseHelpHelp},
	} {
		if err := s.Add(spec); !errors.Is(err, ErrCommandName) {
			t.Errorf("Add(%+v) = %v, want ErrCommandName", spec, err)
		}
	}
	if err := s.Add(CommandSpec{Name: "search", MinArgs: 2, MaxArgs: 1}); err == nil {
		t.Error("Add accepted MaxArgs < MinArgs")
	}
	if err := s.Add(CommandSpec{Name: "search", Names: map[Language]string{German: "suchen"}, MinArgs: 1, MaxArgs: 3, Help: PhraseHelpHelp}); err != nil {
		t.Fatal(err)
	}
	if c, res := s.Parse("suchen Meier Berlin", "!mimi", true); res != CommandOK || c.Name != "search" || len(c.Args) != 2 {
		t.Errorf("a command added later: %+v %d", c, res)
	}
	if n := s.NameIn("invite", German); n != "einladen" {
		t.Errorf("NameIn = %q", n)
	}
	help := s.Help(German, "!mimi")
	if !strings.Contains(help, "!mimi") || !strings.Contains(help, "einladen ADRESSE") || strings.Count(help, "\n• ") != 3 {
		t.Errorf("help:\n%s", help)
	}
}

// FuzzCommandParse: Parse never panics; what it accepts is a registered command with arguments
// in bounds and without white space, found only where the message is addressed to the gateway;
// the canonical form of an accepted command reads back as the same command.
func FuzzCommandParse(f *testing.F) {
	for _, s := range []string{"!mimi invite bob@amt-b.example", "help", "!mimi", "einladen x", "!MIMI\u00a0hilfe", "? ?", "invite \xff", "!mimi invite a b c"} {
		f.Add(s, true)
		f.Add(s, false)
	}
	set := testCommands(f)
	f.Fuzz(func(t *testing.T, text string, bare bool) {
		c, res := set.Parse(text, "!mimi", bare)
		if res == NotCommand {
			return
		}
		if !bare && !strings.HasPrefix(strings.ToLower(strings.TrimSpace(text)), "!mimi") {
			t.Fatalf("%q read as a command without the prefix", text)
		}
		if res != CommandOK {
			return
		}
		if c.Lang != "" && c.Lang != English && c.Lang != German {
			t.Fatalf("language %q", c.Lang)
		}
		var spec *CommandSpec
		for i := range set.Specs() {
			if set.Specs()[i].Name == c.Name {
				spec = &set.Specs()[i]
			}
		}
		if spec == nil || len(c.Args) < spec.MinArgs || len(c.Args) > spec.MaxArgs {
			t.Fatalf("%q: %+v is not an acceptable command", text, c)
		}
		for _, a := range c.Args {
			if a == "" || strings.ContainsFunc(a, isSpace) || !utf8.ValidString(a) {
				t.Fatalf("%q: argument %q", text, a)
			}
		}
		again, res2 := set.Parse(strings.Join(append([]string{"!mimi", c.Name}, c.Args...), " "), "!mimi", false)
		if res2 != CommandOK || again.Name != c.Name || !slices.Equal(again.Args, c.Args) {
			t.Fatalf("%q: canonical form reads as %+v (%d), want %+v", text, again, res2, c)
		}
	})
}

func TestParseAddress(t *testing.T) {
	for _, c := range []struct {
		in   string
		want event.UserURI
	}{
		{"mimi://amt-b.example/u/bob", "mimi://amt-b.example/u/bob"},
		{"MIMI://Amt-B.example/u/Bob", "mimi://amt-b.example/u/Bob"},
		{"<mimi://amt-b.example/u/bob>", "mimi://amt-b.example/u/bob"},
		{"bob@amt-b.example", "mimi://amt-b.example/u/bob"},
		{"Bob.Meier@AMT-B.example", "mimi://amt-b.example/u/Bob.Meier"},
		{"xmpp:bob@amt-b.example", "mimi://amt-b.example/u/bob"},
		{"xmpp:bob@amt-b.example/phone?message", "mimi://amt-b.example/u/bob"},
		{"a%b@amt-b.example", event.NewUserURI("amt-b.example", "a%b")},
		{"bob@localhost", "mimi://localhost/u/bob"},
		{"bob", ""},
		{"@amt-b.example", ""},
		{"bob@", ""},
		{"bob@amt_b.example", ""},
		{"bob@intranet", ""},
		{"mimi://amt-b.example/r/room", ""},
		{"mimi://amt-b.example", ""},
		{"bob smith@amt-b.example", ""},
		{"a/b@amt-b.example", ""},
		{strings.Repeat("a", 2000) + "@amt-b.example", ""},
	} {
		got, err := ParseAddress(c.in)
		if got != c.want || (err == nil) != (c.want != "") {
			t.Errorf("ParseAddress(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
		if err != nil && !errors.Is(err, ErrAddress) {
			t.Errorf("ParseAddress(%q) error %v does not wrap ErrAddress", c.in, err)
		}
	}
}

// FuzzParseAddress: never panics; an accepted address is a valid user URI with a lower-case
// domain.
func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{"mimi://amt-b.example/u/bob", "bob@amt-b.example", "xmpp:bob@amt-b.example/r?x", "<MIMI://A.B/u/%41>", "@", "a@b@c.d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseAddress(s)
		if err != nil {
			return
		}
		if _, err := event.ParseUserURI(string(u)); err != nil {
			t.Fatalf("%q gave invalid %q: %v", s, u, err)
		}
		if d := string(u.Domain()); d != strings.ToLower(d) || d == "" {
			t.Fatalf("%q gave domain %q", s, d)
		}
	})
}

// TestCommandRefusal: an unknown command is named (or what the user wrote) with the help
// command; wrong arguments get the command's help line; a good command is run, not refused.
func TestCommandRefusal(t *testing.T) {
	s := testCommands(t)
	for _, c := range []struct {
		text    string
		bare    bool
		lang    Language
		want    string
		refused bool
	}{
		{"!mimi invite bob@b.example", false, English, "", false},
		{"!mimi", false, English, "", false},
		{"!mimi einladen", false, German, Say(German, PhraseHelpInvite), true},
		{"!mimi frobnicate now", false, English, Say(English, PhraseUnknownCommand, "frobnicate", "help"), true},
		{"hello", true, German, Say(German, PhraseUnknownCommand, "hello", "hilfe"), true}, // not a command: named as written
	} {
		cmd, res := s.Parse(c.text, "!mimi", c.bare)
		got, refused := s.Refusal(cmd, res, c.lang, c.text)
		if got != c.want || refused != c.refused {
			t.Errorf("%q: Refusal = %q, %v; want %q, %v", c.text, got, refused, c.want, c.refused)
		}
	}
}

// TestCommandsAnswer: Commands answers help, runs a registered handler with the call (in the
// language of the command's name, else the call's), refuses unknown commands and wrong
// arguments, answers the people's commands without a MIMI endpoint, and leaves ordinary
// messages alone.
func TestCommandsAnswer(t *testing.T) {
	c := NewCommands("!mimi", nil, slog.New(slog.DiscardHandler))
	var got *CommandCall
	c.Register(CommandSpec{Name: "invite", Names: map[Language]string{German: "einladen"}, MinArgs: 1, MaxArgs: 1, Help: PhraseHelpInvite},
		func(_ context.Context, call *CommandCall) (string, error) {
			got = call
			return "invited " + call.Args[0], nil
		})
	c.RegisterReach(nil)
	fail := errors.New("store down")
	c.Register(CommandSpec{Name: "flaky", Help: PhraseHelpHelp}, func(context.Context, *CommandCall) (string, error) { return "", fail })
	user := event.UserURI("mimi://klinik-a.example/u/alice")
	for _, tc := range []struct {
		name, text string
		bare       bool
		res        CommandResult
		answer     string // a prefix of the answer
		err        error
	}{
		{"ordinary message", "good morning", false, NotCommand, Say(German, PhraseUnknownCommand, "good…", "hilfe"), nil},
		{"help", "!mimi", false, CommandOK, Say(German, PhraseHelpIntro, "!mimi"), nil},
		{"handler in the name's language", "einladen bob@amt-b.example", true, CommandOK, "invited bob@amt-b.example", nil},
		{"unknown", "!mimi frobnicate", false, CommandUnknown, Say(German, PhraseUnknownCommand, "frobnicate", "hilfe"), nil},
		{"wrong arguments", "!mimi invite", false, CommandBadArgs, Say(English, PhraseHelpInvite), nil},
		{"people's command without an endpoint", "!mimi search bob", false, CommandOK, "", nil},
		{"handler error", "!mimi flaky", false, CommandOK, "", fail},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got = nil
			answer, res, err := c.Answer(t.Context(), tc.text, tc.bare, "good…", CommandCall{Lang: German, User: user, Ref: "$ev"})
			if res != tc.res || !errors.Is(err, tc.err) || !strings.HasPrefix(answer, tc.answer) || (tc.res == CommandOK && tc.err == nil && answer == "") {
				t.Fatalf("Answer(%q) = %q, %v, %v; want %q…, %v, %v", tc.text, answer, res, err, tc.answer, tc.res, tc.err)
			}
		})
	}
	if _, _, _ = c.Answer(t.Context(), "!mimi invite bob@amt-b.example", false, "", CommandCall{Lang: German, User: user, Ref: "$ev"}); got == nil ||
		got.Lang != English || got.User != user || got.Ref != "$ev" || got.Name != "invite" {
		t.Errorf("handler got %+v", got)
	}
}
