package main

import (
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp"
	"github.com/mimi-gateway/mimi-gateway/config"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// xmppConfig maps the bridges.xmpp configuration section onto xmpp.Config. gatewayDomain is the
// gateway's MIMI domain (the top-level domain key): the provider of local users, and their XMPP
// domain unless bridges.xmpp.domain says otherwise.
func xmppConfig(c config.XMPPBridge, gatewayDomain string) xmpp.Config {
	out := xmpp.Config{
		Server: c.Server, Domain: c.Domain, Provider: event.Domain(gatewayDomain),
		Users:         xmpp.ComponentConfig{Domain: c.Users.Domain, Secret: c.Users.Secret},
		Rooms:         xmpp.ComponentConfig{Domain: c.Rooms.Domain, Secret: c.Rooms.Secret},
		HistoryOnJoin: c.HistoryOnJoin, HistoryKeep: c.HistoryKeep, MaxBodyBytes: int(c.MaxBody),
		DisableRoomCreation: !c.AllowRoomCreation,
		ReconnectMin:        c.ReconnectMin, ReconnectMax: c.ReconnectMax, Workers: c.Workers,
		UploadHosts: c.UploadHosts, MaxUploadBytes: int64(c.MaxUpload), UploadService: c.UploadService,
		KnownUsers: append([]string(nil), c.KnownUsers...),
		Language:   c.Language,
	}
	if out.Domain == "" {
		out.Domain = gatewayDomain
	}
	if out.HistoryOnJoin == 0 {
		out.HistoryOnJoin = -1 // 0 in the file disables history; 0 here would mean the default
	}
	if out.HistoryKeep == 0 {
		out.HistoryKeep = -1
	}
	return out
}
