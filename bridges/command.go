package bridges

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"unicode/utf8"

	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// Commands are short texts a user sends to the gateway's own account (the functional account of
// Matrix client mode, say) to ask it for something: "invite bob@amt-b.example", "help". A
// CommandSet knows the commands an adapter offers, under a name per language; Parse recognises
// them in a message. Adapters register their commands, so a new command (search, start, consent)
// is one more CommandSpec and handler.

// MaxCommandLength bounds a message read as a command; longer ones are ordinary messages.
const MaxCommandLength = 1024

// maxCommandArgs bounds the arguments of a command.
const maxCommandArgs = 8

// CommandSpec describes one command.
type CommandSpec struct {
	// Name is the command's canonical (English) name, lower case, e.g. "invite".
	Name string
	// Names are its names per language, lower case, e.g. {German: "einladen"}; Name counts as
	// the English one.
	Names map[Language]string
	// Aliases are further language-neutral names, e.g. "?".
	Aliases []string
	// MinArgs and MaxArgs bound its arguments.
	MinArgs, MaxArgs int
	// Help is its line in the help text.
	Help Phrase
}

// Command is a recognised command.
type Command struct {
	// Name is the canonical name of the command (CommandSpec.Name).
	Name string
	// Args are its arguments: words without white space.
	Args []string
	// Lang is the language of the name the user wrote, when it has one: answer in it.
	Lang Language
}

// CommandResult says how Parse read a message.
type CommandResult uint8

// Parse results.
const (
	// NotCommand: an ordinary message, to be relayed.
	NotCommand CommandResult = iota
	// CommandOK: a command with acceptable arguments.
	CommandOK
	// CommandUnknown: the message was addressed to the gateway but names no command it knows.
	CommandUnknown
	// CommandBadArgs: a known command with too few or too many arguments.
	CommandBadArgs
)

// CommandSet is the set of commands an adapter understands. The zero value is empty; it is not
// safe for concurrent Add, but Parse may run concurrently once the set is complete.
type CommandSet struct {
	specs  []CommandSpec
	byName map[string]nameEntry
}

type nameEntry struct {
	spec int
	lang Language
}

// ErrCommandName is returned by Add for a name that is empty, not lower case, contains white
// space or is taken.
var ErrCommandName = errors.New("bridges: unusable command name")

// Add registers a command under its names.
func (s *CommandSet) Add(spec CommandSpec) error {
	if s.byName == nil {
		s.byName = map[string]nameEntry{}
	}
	names := map[string]Language{spec.Name: English}
	for l, n := range spec.Names {
		names[n] = l
	}
	for _, n := range spec.Aliases {
		names[n] = ""
	}
	for n := range names {
		if n == "" || n != strings.ToLower(n) || strings.ContainsFunc(n, isSpace) {
			return fmt.Errorf("%w: %q", ErrCommandName, n)
		}
		if _, taken := s.byName[n]; taken {
			return fmt.Errorf("%w: %q is taken", ErrCommandName, n)
		}
	}
	if spec.MinArgs < 0 || spec.MaxArgs < spec.MinArgs || spec.MaxArgs > maxCommandArgs {
		return fmt.Errorf("bridges: command %q: arguments %d..%d", spec.Name, spec.MinArgs, spec.MaxArgs)
	}
	s.specs = append(s.specs, spec)
	for n, l := range names {
		s.byName[n] = nameEntry{spec: len(s.specs) - 1, lang: l}
	}
	return nil
}

// MustAdd is Add for commands built into an adapter; it panics on a bad spec.
func (s *CommandSet) MustAdd(spec CommandSpec) {
	if err := s.Add(spec); err != nil {
		panic(err)
	}
}

// Specs returns the registered commands in the order they were added.
func (s *CommandSet) Specs() []CommandSpec { return s.specs }

// Parse reads text as a command. A text that starts with prefix (e.g. "!mimi"; case does not
// matter) is addressed to the gateway: the rest is the command, and a prefix alone asks for help
// ("help" must be registered). Without the prefix, text is a command only when bare is set (the
// adapter knows the message is addressed to the gateway, e.g. in a chat with it alone) and it
// reads exactly as a known command with acceptable arguments; anything else is NotCommand, so
// that an ordinary message is never swallowed. Only one line of at most MaxCommandLength bytes
// is ever a command.
func (s *CommandSet) Parse(text, prefix string, bare bool) (Command, CommandResult) {
	text = strings.TrimSpace(text)
	if text == "" || len(text) > MaxCommandLength || !utf8.ValidString(text) || strings.ContainsAny(text, "\r\n") {
		return Command{}, NotCommand
	}
	addressed := false
	if prefix != "" && len(text) >= len(prefix) && strings.EqualFold(text[:len(prefix)], prefix) {
		rest := text[len(prefix):]
		if r, _ := utf8.DecodeRuneInString(rest); rest == "" || isSpace(r) {
			addressed, text = true, strings.TrimSpace(rest)
		}
	}
	if !addressed && !bare {
		return Command{}, NotCommand
	}
	fields := strings.FieldsFunc(text, isSpace)
	if len(fields) == 0 {
		if e, ok := s.byName["help"]; ok {
			return Command{Name: s.specs[e.spec].Name}, CommandOK
		}
		return Command{}, CommandUnknown
	}
	name := strings.ToLower(fields[0])
	e, ok := s.byName[name]
	if !ok {
		if addressed {
			return Command{Name: truncateRunes(fields[0], 32)}, CommandUnknown
		}
		return Command{}, NotCommand
	}
	spec := s.specs[e.spec]
	c := Command{Name: spec.Name, Args: fields[1:], Lang: e.lang}
	if len(c.Args) < spec.MinArgs || len(c.Args) > spec.MaxArgs {
		if addressed {
			return c, CommandBadArgs
		}
		return Command{}, NotCommand
	}
	return c, CommandOK
}

// Help is the help text: an introduction naming prefix, then one line per command.
func (s *CommandSet) Help(lang Language, prefix string) string {
	var b strings.Builder
	b.WriteString(Say(lang, PhraseHelpIntro, prefix))
	for _, spec := range s.specs {
		b.WriteString("\n• ")
		b.WriteString(Say(lang, spec.Help))
	}
	return b.String()
}

// NameIn is the name of command name in lang (the canonical name when it has none there).
func (s *CommandSet) NameIn(name string, lang Language) string {
	e, ok := s.byName[name]
	if !ok {
		return name
	}
	if n, ok := s.specs[e.spec].Names[lang]; ok {
		return n
	}
	return s.specs[e.spec].Name
}

func isSpace(r rune) bool {
	return r == ' ' || r == '\t' || r == '\u00a0' || r == '\u2009' || r == '\u202f' || r == '\u3000'
}

func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "…"
}

// ErrAddress is returned (wrapped) by ParseAddress for text that is not a user's address.
var ErrAddress = errors.New("bridges: not a user address")

// ParseAddress reads how people write a MIMI user's address: the URI itself
// (mimi://amt-b.example/u/bob), an e-mail-like handle (bob@amt-b.example), or an XMPP URI
// (xmpp:bob@amt-b.example). The domain is lower-cased; the local part is kept as written.
func ParseAddress(s string) (event.UserURI, error) {
	s = strings.TrimSpace(s)
	if len(s) > event.MaxURILength || !utf8.ValidString(s) {
		return "", fmt.Errorf("%w: too long or not UTF-8", ErrAddress)
	}
	s = strings.TrimSuffix(strings.TrimPrefix(s, "<"), ">")
	if len(s) >= len("mimi://") && strings.EqualFold(s[:len("mimi://")], "mimi://") {
		host, path, _ := strings.Cut(s[len("mimi://"):], "/")
		u, err := event.ParseUserURI("mimi://" + strings.ToLower(host) + "/" + path)
		if err != nil {
			return "", fmt.Errorf("%w: %w", ErrAddress, err)
		}
		return u, nil
	}
	if rest, ok := strings.CutPrefix(s, "xmpp:"); ok {
		s, _, _ = strings.Cut(rest, "?")
		s = strings.TrimPrefix(s, "//")
	}
	local, domain, ok := cutLast(s, "@")
	if !ok || local == "" || domain == "" || strings.ContainsAny(local, "/\x00") || strings.ContainsFunc(s, isSpace) {
		return "", fmt.Errorf("%w: %q is neither mimi://<domain>/u/<user> nor user@domain", ErrAddress, truncateRunes(s, 64))
	}
	domain, _, _ = strings.Cut(domain, "/") // an XMPP resource
	u, err := event.ParseUserURI(string(event.NewUserURI(event.Domain(strings.ToLower(domain)), local)))
	if err != nil || !strings.Contains(domain, ".") && !strings.Contains(domain, ":") && domain != "localhost" {
		return "", fmt.Errorf("%w: %q: domain %q", ErrAddress, truncateRunes(s, 64), truncateRunes(domain, 64))
	}
	return u, nil
}

func cutLast(s, sep string) (before, after string, found bool) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):], true
	}
	return s, "", false
}

// Refusal is the answer to a message that is not a command the gateway can run: unknown (naming
// the command, else wrote, and the help command) or with the wrong arguments (the command's help
// line). ok is false for a command to run (CommandOK).
func (s *CommandSet) Refusal(cmd Command, res CommandResult, lang Language, wrote string) (answer string, ok bool) {
	switch res {
	case CommandOK:
		return "", false
	case CommandBadArgs:
		for _, sp := range s.specs {
			if sp.Name == cmd.Name {
				return Say(lang, sp.Help), true
			}
		}
		return "", true
	}
	name := cmd.Name
	if name == "" {
		name = wrote
	}
	return Say(lang, PhraseUnknownCommand, name, s.NameIn("help", lang)), true
}

// CommandFunc runs a recognised command and returns the answer. An error means the command could
// not be run now (bus or store down): the adapter lets the command's message come again.
type CommandFunc func(ctx context.Context, c *CommandCall) (string, error)

// CommandCall is a command a local user sent, with what the adapter knows about it.
type CommandCall struct {
	Command
	// Lang is the language of the answer: the command's, else the user's or the configured one.
	Lang Language
	// User is the sender; "" when the sender has no MIMI address.
	User event.UserURI
	// Room is the MIMI room of the conversation the command was sent in; "" outside one.
	Room event.RoomURI
	// Ref is the reference an answer "that did not work" names, for the logs.
	Ref string
	// Native is the adapter's own description of the message (its native event).
	Native any
}

// Commands is an adapter's command set with the handler of each command: help first, then what
// the adapter registers, with the people's commands of reach.go (RegisterReach) and their
// answers (RunReach) built in.
type Commands struct {
	CommandSet
	prefix string
	reach  Reach
	log    *slog.Logger
	run    map[string]CommandFunc
}

// NewCommands returns the command set with prefix (e.g. "!mimi") and help; reach runs the
// people's commands (nil: the MIMI endpoint does not run, and they say so).
func NewCommands(prefix string, reach Reach, log *slog.Logger) *Commands {
	c := &Commands{prefix: prefix, reach: reach, log: log, run: map[string]CommandFunc{}}
	c.Register(CommandSpec{Name: "help", Names: map[Language]string{German: "hilfe"}, Aliases: []string{"?"}, Help: PhraseHelpHelp},
		func(_ context.Context, call *CommandCall) (string, error) { return c.Help(call.Lang, prefix), nil })
	return c
}

// Register adds a command built into the adapter with its handler; it panics on a bad spec.
func (c *Commands) Register(spec CommandSpec, fn CommandFunc) {
	c.MustAdd(spec)
	c.run[spec.Name] = fn
}

// RegisterReach adds the people's commands (ReachCommands: search, start, consent,
// reachability), answered by RunReach unless own has a handler for the command's name.
func (c *Commands) RegisterReach(own map[string]CommandFunc) {
	for _, spec := range ReachCommands() {
		fn := own[spec.Name]
		if fn == nil {
			fn = c.runReach
		}
		c.Register(spec, fn)
	}
}

// runReach answers a people's command with RunReach.
func (c *Commands) runReach(ctx context.Context, call *CommandCall) (string, error) {
	if call.User == "" {
		return Say(call.Lang, PhraseCommandFailed, call.Ref), nil
	}
	answer, err := RunReach(ctx, c.reach, call.User, call.Command, call.Lang)
	if err != nil {
		c.log.Warn("command failed", "command", call.Name, "ref", call.Ref, "error", err)
		return Say(call.Lang, PhraseCommandFailed, call.Ref), nil
	}
	return answer, nil
}

// Answer reads text as a command (CommandSet.Parse with the prefix; bare as there) and returns
// the answer: the refusal of an unknown command or of wrong arguments (naming wrote when the
// message names no command), or what the command's handler answers, in the command's language,
// else call.Lang. res is NotCommand for an ordinary message: an adapter relays it, or, when it
// was sent to the gateway's own address, sends the answer, which says that it is no command.
func (c *Commands) Answer(ctx context.Context, text string, bare bool, wrote string, call CommandCall) (answer string, res CommandResult, err error) {
	cmd, res := c.Parse(text, c.prefix, bare)
	call.Command = cmd
	if call.Ref == "" {
		call.Ref = cmd.Name
	}
	if cmd.Lang != "" {
		call.Lang = cmd.Lang
	}
	if res != NotCommand {
		c.log.Info("command", "command", cmd.Name, "result", int(res), "ref", call.Ref)
	}
	if answer, refused := c.Refusal(cmd, res, call.Lang, wrote); refused {
		return answer, res, nil
	}
	answer, err = c.Run(ctx, &call)
	return answer, res, err
}

// Run runs a command that Parse recognised (CommandOK).
func (c *Commands) Run(ctx context.Context, call *CommandCall) (string, error) {
	return c.run[call.Name](ctx, call)
}
