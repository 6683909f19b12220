package xmpp

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/mimi-gateway/mimi-gateway/bridges"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/xstanza"
)

// A local user's chat message to the gateway's own address (the users component's domain, e.g.
// mimi.amt-b.example) is a command: help, search, start, consent, reachability (bridges/reach.go).
// The answer is a chat message from that address, in the user's language.

// gatewayCommands are the commands the gateway's address understands: help and the people's
// commands (bridges.Commands), start opening a 1:1 chat with the partner's user.
func (a *Adapter) gatewayCommands() *bridges.Commands {
	c := bridges.NewCommands(commandPrefix, a.reach, a.log)
	c.RegisterReach(map[string]bridges.CommandFunc{"start": a.cmdStart})
	return c
}

// commandPrefix may start a command to the gateway's address (it is not needed there).
const commandPrefix = "!mimi"

// gatewayCommand answers a local user's message to the gateway's address.
func (a *Adapter) gatewayCommand(ctx context.Context, m *xstanza.InMessage, from, to jid.JID, at time.Time) {
	body, _ := m.Text()
	if m.Lang != "" {
		a.langs.Note(from.Bare().String(), m.Lang)
	}
	answer, _, _ := a.commands.Answer(ctx, body, true, truncateText(body, 32), a.commandCall(from, at))
	sum := sha256.Sum256([]byte(from.String() + "\x00" + m.ID + "\x00" + body))
	out := &xstanza.OutMessage{From: to.Bare().String(), To: from.String(), Type: "chat", ID: "cmd-" + hex.EncodeToString(sum[:12]), Body: &answer}
	if err := a.users.Send(ctx, out); err != nil {
		a.log.Info("could not answer a command", "err", err)
	}
}

// commandCall is a command call of local user from, sent at at.
func (a *Adapter) commandCall(from jid.JID, at time.Time) bridges.CommandCall {
	call := bridges.CommandCall{Lang: a.langOf(from), Native: commandFrom{from, at}}
	call.User, _ = a.m.LocalUserURI(from) // none: the people's commands say they failed
	return call
}

// commandFrom is the sender of a command and when it was sent (bridges.CommandCall.Native).
type commandFrom struct {
	from jid.JID
	at   time.Time
}

// cmdStart opens a 1:1 chat of the sender with the partner's user the command names.
func (a *Adapter) cmdStart(ctx context.Context, c *bridges.CommandCall) (string, error) {
	f := c.Native.(commandFrom)
	if c.User == "" {
		return bridges.Say(c.Lang, bridges.PhraseCommandFailed, "sender"), nil
	}
	target, answer := bridges.ResolveStart(ctx, a.reach, c.User, c.Args[0], c.Lang)
	if answer != "" {
		return answer, nil
	}
	if target.Domain() == a.cfg.Provider {
		return bridges.Say(c.Lang, bridges.PhraseInviteLocal, bridges.Address(target)), nil
	}
	puppet, err := a.m.UserJID(ctx, target)
	if err != nil {
		return bridges.Say(c.Lang, bridges.PhraseInviteAddress, truncateText(c.Args[0], 80)), nil
	}
	o := origin{nativeRoom: dmNativeRoom(f.from, puppet), sender: f.from.Bare(), senderURI: c.User}
	if _, err := a.ensureDM(ctx, o, puppet.Bare(), target, f.at); err != nil {
		a.log.Warn("could not start a 1:1 conversation", "err", err)
		return bridges.Say(c.Lang, bridges.PhraseCommandFailed, "start"), nil
	}
	return bridges.Say(c.Lang, bridges.PhraseStarting, puppet.Bare().String()), nil
}

func truncateText(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

// Ad-hoc commands (XEP-0050) on the gateway's address: the same commands, listed under the
// node http://jabber.org/protocol/commands and executed in two steps: execute answers a form
// with one text field (the command's arguments), its submission runs the command and completes
// with the answer as a note. help completes at once.

// commandItems lists the commands for disco#items on the commands node.
func (a *Adapter) commandItems(lang bridges.Language) *xstanza.OutDiscoItems {
	items := &xstanza.OutDiscoItems{Node: xstanza.NSCommands}
	for _, s := range a.commands.Specs() {
		items.Items = append(items.Items, xstanza.OutDiscoItem{JID: a.cfg.Users.Domain, Node: s.Name, Name: a.commands.NameIn(s.Name, lang)})
	}
	return items
}

// adhocCommand answers an execute (or cancel) of a command by local user from: the form, or
// the result, which may take a partner's answer: it is sent from a goroutine, never on the
// read loop.
func (a *Adapter) adhocCommand(from jid.JID, iqID string, c *xstanza.InCommand) *xstanza.OutIQ {
	reply := &xstanza.OutIQ{From: a.cfg.Users.Domain, To: from.String(), ID: iqID, Type: "result"}
	lang := a.langOf(from)
	var spec *bridges.CommandSpec
	for _, s := range a.commands.Specs() {
		if s.Name == c.Node {
			spec = &s
		}
	}
	switch {
	case spec == nil:
		reply.Type, reply.Error = "error", xstanza.StanzaError(stanza.Cancel, stanza.ItemNotFound, "")
		return reply
	case c.Action == "cancel":
		reply.Command = &xstanza.OutCommand{Node: c.Node, SessionID: c.SessionID, Status: "canceled"}
		return reply
	case spec.MaxArgs > 0 && (c.Form == nil || c.Form.Type != "submit"):
		sid := c.SessionID
		if sid == "" {
			sum := sha256.Sum256([]byte(from.String() + "\x00" + iqID))
			sid = hex.EncodeToString(sum[:8])
		}
		reply.Command = &xstanza.OutCommand{Node: c.Node, SessionID: sid, Status: "executing",
			Form: &xstanza.OutXForm{Type: "form", Title: a.commands.NameIn(c.Node, lang), Instructions: bridges.Say(lang, spec.Help),
				Fields: []xstanza.OutFormField{{Var: "args", Type: "text-single", Label: a.commands.NameIn(c.Node, lang), Required: &xstanza.Present{}}}}}
		return reply
	}
	args := ""
	if c.Form != nil {
		for _, f := range c.Form.Fields {
			if f.Var == "args" && len(f.Values) > 0 {
				args = f.Values[0]
			}
		}
	}
	text := a.commands.NameIn(c.Node, lang) + " " + args
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd, res := a.commands.Parse(text, commandPrefix, true)
		answer := bridges.Say(lang, spec.Help)
		if res == bridges.CommandOK {
			call := a.commandCall(from, time.Now())
			call.Command, call.Lang = cmd, lang
			answer, _ = a.commands.Run(ctx, &call)
		}
		reply.Command = &xstanza.OutCommand{Node: c.Node, SessionID: c.SessionID, Status: "completed", Note: &xstanza.OutNote{Type: "info", Text: answer}}
		if err := a.users.Send(ctx, reply); err != nil {
			a.log.Info("could not answer an ad-hoc command", "err", err)
		}
	}()
	return nil
}
