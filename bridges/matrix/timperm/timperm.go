// Package timperm reads TI-Messenger's invite permissions: the account data
// de.gematik.tim.account.permissionconfig.pro.v1 (A_26389; the Basis variant has the same shape)
// with which an account says who may invite it.
package timperm

import (
	"encoding/json"

	"maunium.net/go/mautrix/id"
)

// Config is the invite permission account data.
type Config struct {
	DefaultSetting   string                     `json:"defaultSetting"`
	ServerExceptions map[string]json.RawMessage `json:"serverExceptions"`
	UserExceptions   map[string]json.RawMessage `json:"userExceptions"`
	GroupExceptions  []json.RawMessage          `json:"groupExceptions"`
}

// Allows reports whether inviter may invite the account, and why: the default ("allow all" or
// "block all") is inverted for listed users and servers. Group exceptions (isInsuredPerson) need a
// directory lookup (VZD-FHIR) and are not applied here.
func (c *Config) Allows(inviter id.UserID) (bool, string) {
	_, server, _ := inviter.Parse()
	_, userListed := c.UserExceptions[string(inviter)]
	_, serverListed := c.ServerExceptions[server]
	exception := userListed || serverListed
	switch c.DefaultSetting {
	case "block all":
		if exception {
			return true, "listed exception to block all"
		}
		return false, "block all"
	default:
		if exception {
			return false, "listed exception to allow all"
		}
		return true, "allow all"
	}
}
