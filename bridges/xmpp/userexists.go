package xmpp

import (
	"context"
	"strings"

	"mellium.im/xmpp/jid"

	"github.com/mimi-gateway/mimi-gateway/bridges"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

var _ bridges.UserChecker = (*Adapter)(nil)

// UserExists reports whether u is a user of the organisation's XMPP server, from the
// administrator's list (Config.KnownUsers): XMPP servers do not tell a component whether an
// account exists (Prosody answers disco#info, disco#items, vcard-temp, jabber:iq:last and PEP
// queries to a bare JID the same way for an account that exists and one that does not).
func (a *Adapter) UserExists(_ context.Context, u event.UserURI) (bool, error) {
	if u.Domain() != a.m.Provider {
		return false, nil
	}
	j, err := jid.New(u.Local(), a.m.Domain, "")
	if err != nil || j.Localpart() != u.Local() {
		return false, nil // no XMPP account can have this name
	}
	return a.known(j.Localpart()), nil
}

// known reports whether localpart is in the administrator's list of users ("*" is everyone).
func (a *Adapter) known(localpart string) bool {
	for _, k := range a.cfg.KnownUsers {
		if k == "*" || strings.EqualFold(k, localpart) {
			return true
		}
	}
	return false
}
