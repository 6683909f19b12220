package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mimi-gateway/mimi-gateway/config"
	"github.com/mimi-gateway/mimi-gateway/core/abuse"
	"github.com/mimi-gateway/mimi-gateway/core/bus"
	"github.com/mimi-gateway/mimi-gateway/core/consent"
	"github.com/mimi-gateway/mimi-gateway/core/console"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/ops"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
	"github.com/mimi-gateway/mimi-gateway/core/provider"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// runtimeHooks are what components share with the console at run time.
type runtimeHooks struct {
	// partnerClient is the MIMI endpoint's client (nil while the endpoint is off).
	partnerClient atomic.Pointer[protocol.Client]
	// provider is the MIMI endpoint (nil while it is off): its credential alerts; erasure makes
	// users leave their rooms through it.
	provider atomic.Pointer[provider.Provider]
	// reload is the same reload as SIGHUP: re-read, validate, swap, log, metrics.
	reload func() (config.ReloadReport, error)
	// environ is the process environment (the configuration's MIMI_GATEWAY_* layer).
	environ []string
}

// startConsole starts the admin console on admin_ui.address (if set) and the admin CLI's Unix
// socket (unless admin_ui.socket is off). Both stop first at shutdown.
func startConsole(ctx context.Context, d adapterDeps, sd *ops.Shutdown) error {
	cfg := d.Config
	au := cfg.AdminUI
	sock := cfg.SocketPath()
	if au.Address == "" && sock == "" {
		return nil
	}
	log := d.Log.With("component", "console")
	backend := console.Backend{
		Domain: cfg.Domain, Version: readBuildInfo().Version, Health: d.Admin, Metrics: d.Admin.Registry(),
		Partners: &partnersView{mgr: d.Manager, hooks: d.Hooks},
		Rooms:    &roomsView{st: d.Store, domain: event.Domain(cfg.Domain), hooks: d.Hooks},
		Config:   newFileEditor(d.Manager, cfg, d.Hooks),
		Sections: []console.Section{credentialAlertsSection(d.Hooks), consentSection(d.Store), abuseReportsSection(d.Store)},
	}
	if dl, ok := d.Bus.(bus.DeadLetters); ok {
		backend.DeadLetters = dl
	}
	cc := console.Config{
		Store: d.Store, Backend: backend, Logger: d.Log, Registerer: d.Admin.Registry(),
		PublicURL: au.PublicURL, IdleTimeout: au.IdleTimeout, AbsoluteTimeout: au.AbsoluteTimeout,
		LoginLimit: au.LoginLimit, LoginWindow: au.LoginWindow,
	}
	if au.OIDC.Issuer != "" {
		oc := &console.OIDCConfig{Issuer: au.OIDC.Issuer, ClientID: au.OIDC.ClientID, ClientSecret: au.OIDC.ClientSecret,
			GroupsClaim: au.OIDC.GroupsClaim, OperatorGroups: au.OIDC.OperatorGroups, ViewerGroups: au.OIDC.ViewerGroups}
		if au.OIDC.CAFile != "" {
			pool, err := protocol.LoadCertPool(au.OIDC.CAFile)
			if err != nil {
				return fmt.Errorf("admin_ui.oidc.ca_file: %w", err)
			}
			oc.HTTPClient = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
				TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, Proxy: http.ProxyFromEnvironment}}
		}
		cc.OIDC = oc
	}
	c, err := console.New(ctx, cc)
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	go c.Run(runCtx)
	var servers []*http.Server
	if au.Address != "" {
		ln, err := net.Listen("tcp", au.Address)
		if err != nil {
			cancel()
			return fmt.Errorf("admin_ui.address: %w", err)
		}
		srv := &http.Server{Handler: c.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute,
			WriteTimeout: time.Minute, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10,
			ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
		if au.TLSCertFile != "" {
			cert, err := tls.LoadX509KeyPair(au.TLSCertFile, au.TLSKeyFile)
			if err != nil {
				ln.Close()
				cancel()
				return fmt.Errorf("admin_ui.tls_cert_file: %w", err)
			}
			srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
			ln = tls.NewListener(ln, srv.TLSConfig)
		}
		if au.TLSCertFile == "" && !isLoopback(ln.Addr()) {
			log.Warn("the admin console serves plain HTTP on a non-loopback address: browsers send its Secure session cookie only over HTTPS, so put it behind a TLS-terminating proxy or set admin_ui.tls_cert_file")
		}
		servers = append(servers, srv)
		go serveLogged(log, srv, ln)
		log.Info("admin console listening", "address", ln.Addr().String(), "tls", au.TLSCertFile != "")
	}
	if sock != "" {
		ln, err := listenSocket(sock)
		if err != nil {
			cancel()
			return fmt.Errorf("admin_ui.socket: %w", err)
		}
		srv := &http.Server{Handler: c.APIHandler(), ReadHeaderTimeout: 10 * time.Second, WriteTimeout: 2 * time.Minute}
		servers = append(servers, srv)
		go serveLogged(log, srv, ln)
		log.Info("admin socket listening", "path", sock)
	}
	sd.Add(ops.PhaseNotReady, "console", func(ctx context.Context) error {
		cancel()
		var errs []error
		for _, s := range servers {
			errs = append(errs, s.Shutdown(ctx))
		}
		if sock != "" {
			_ = os.Remove(sock)
		}
		return errors.Join(errs...)
	})
	return nil
}

func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

func serveLogged(log *slog.Logger, srv *http.Server, ln net.Listener) {
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("console listener stopped", "err", err)
	}
}

// listenSocket listens on a Unix socket only the gateway's user may use. A socket file left by
// a crash is replaced; any other file at the path is an error.
func listenSocket(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket", path)
		}
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("%s is in use by another running gateway", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, err
		}
	}
	// The data dir is 0700, so nobody else reaches the socket before the chmod.
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// partnersView shows the configured partners and checks them with the endpoint's client.
type partnersView struct {
	mgr   *config.Manager
	hooks *runtimeHooks
}

var _ console.Partners = (*partnersView)(nil)

func (p *partnersView) Partners(context.Context) []console.PartnerInfo {
	cl := p.hooks.partnerClient.Load()
	var out []console.PartnerInfo
	for _, cp := range p.mgr.Current().Partners {
		pi := console.PartnerInfo{Domain: event.Domain(cp.Domain), BaseURL: cp.BaseURL, Discovery: cp.Discovery}
		if cp.CAFile != "" {
			pi.CAChain, _ = certChain(cp.CAFile)
		}
		if cl != nil {
			pi.Reachability = cl.Reachability(pi.Domain)
		}
		out = append(out, pi)
	}
	return out
}

func (p *partnersView) Own() []protocol.CertInfo {
	f := p.mgr.Current().MIMI.CertFile
	if f == "" {
		return nil
	}
	chain, _ := certChain(f)
	return chain
}

func (p *partnersView) Check(ctx context.Context, d event.Domain) protocol.CheckResult {
	cl := p.hooks.partnerClient.Load()
	if cl == nil {
		return protocol.CheckResult{Domain: d, Time: time.Now().UTC(), Error: "the MIMI endpoint is off (mimi.address is empty)"}
	}
	return cl.Check(ctx, d)
}

// certChain describes the certificates of a PEM file.
func certChain(file string) ([]protocol.CertInfo, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var out []protocol.CertInfo
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return out, err
		}
		out = append(out, protocol.DescribeCert(c))
	}
	return out, nil
}

// roomsView reads rooms, backlog and KeyPackage stock from the store (empty while the endpoint
// is off: its tables may not exist yet).
type roomsView struct {
	st     *store.Store
	domain event.Domain
	hooks  *runtimeHooks
}

var _ console.Rooms = (*roomsView)(nil)

func (r *roomsView) on() bool { return r.hooks.partnerClient.Load() != nil }

func (r *roomsView) Rooms(ctx context.Context) ([]provider.RoomSummary, error) {
	if !r.on() {
		return nil, nil
	}
	return provider.ListRooms(ctx, r.st, r.domain)
}

func (r *roomsView) Backlog(ctx context.Context) ([]protocol.Backlog, error) {
	if !r.on() {
		return nil, nil
	}
	return protocol.ListBacklog(ctx, r.st)
}

func (r *roomsView) KeyPackages(ctx context.Context) ([]provider.KeyPackageStock, error) {
	if !r.on() {
		return nil, nil
	}
	return provider.ListKeyPackageStock(ctx, r.st, time.Now())
}

// sectionText is a section's texts by language.
var sectionText = map[string]map[string]string{
	"en": {"off": "The MIMI endpoint is off (mimi.address is empty).", "none": "None.",
		"time": "Time", "room": "Room", "hub": "Hub", "user": "User", "reason": "Reason",
		"kind": "Kind", "value": "Setting or requester", "setting": "setting", "grant": "grant",
		"noconsent":    "No consent records: the consent store is not in use on this gateway yet.",
		"alerts_note":  "A partner's room contained a member that claims one of our users with a key this gateway did not create. The change was refused.",
		"consent_note": "Users' own reachability settings and the requesters they accepted (newest first).",
		"from":         "From provider", "reporter": "Reported by", "accused": "Reported user", "note": "Note", "messages": "Messages",
		"noabuse":    "No abuse reports: none was received yet.",
		"abuse_note": "Abuse reports about rooms this gateway hosts, accepted because the hub's franking of every reported message verified (newest first)."},
	"de": {"off": "Der MIMI-Endpunkt ist aus (mimi.address ist leer).", "none": "Keine.",
		"time": "Zeit", "room": "Raum", "hub": "Hub", "user": "Nutzer", "reason": "Grund",
		"kind": "Art", "value": "Einstellung oder Anfragender", "setting": "Einstellung", "grant": "Einwilligung",
		"noconsent":    "Keine Einwilligungen: Dieses Gateway nutzt den Einwilligungsspeicher noch nicht.",
		"alerts_note":  "Ein Raum eines Partners enthielt ein Mitglied, das sich mit einem Schlüssel, den dieses Gateway nicht erzeugt hat, als einer unserer Nutzer ausgibt. Die Änderung wurde abgelehnt.",
		"consent_note": "Eigene Erreichbarkeitseinstellungen der Nutzer und die Anfragenden, denen sie zugestimmt haben (neueste zuerst).",
		"from":         "Von Anbieter", "reporter": "Gemeldet von", "accused": "Gemeldete Person", "note": "Anmerkung", "messages": "Nachrichten",
		"noabuse":    "Keine Missbrauchsmeldungen: Es ist noch keine eingegangen.",
		"abuse_note": "Missbrauchsmeldungen zu Räumen, deren Hub dieses Gateway ist; angenommen, weil die Frankierung des Hubs für jede gemeldete Nachricht geprüft wurde (neueste zuerst)."},
}

func texts(lang string) map[string]string {
	if t, ok := sectionText[lang]; ok {
		return t
	}
	return sectionText["en"]
}

// credentialAlertsSection lists the endpoint's credential alerts (newest first).
func credentialAlertsSection(h *runtimeHooks) console.Section {
	return console.Section{Path: "credential-alerts", Title: map[string]string{"en": "Credential alerts", "de": "Schlüssel-Warnungen"},
		Load: func(ctx context.Context, lang string) (console.Table, error) {
			L := texts(lang)
			p := h.provider.Load()
			if p == nil {
				return console.Table{Note: L["off"]}, nil
			}
			alerts, err := p.CredentialAlerts(ctx, 200)
			if err != nil {
				return console.Table{}, err
			}
			t := console.Table{Note: L["alerts_note"], Columns: []string{L["time"], L["room"], L["hub"], L["user"], L["reason"]}}
			for _, a := range alerts {
				t.Rows = append(t.Rows, []string{a.SeenAt.UTC().Format(time.DateTime + " UTC"), string(a.Room), string(a.Hub), string(a.User), a.Reason})
			}
			if len(t.Rows) == 0 {
				t.Note += " " + L["none"]
			}
			return t, nil
		}}
}

// consentSection lists users' reachability settings and consent grants.
func consentSection(st *store.Store) console.Section {
	return console.Section{Path: "consent", Title: map[string]string{"en": "Consent", "de": "Einwilligungen"},
		Load: func(ctx context.Context, lang string) (console.Table, error) {
			L := texts(lang)
			if v, err := st.SchemaVersion(ctx, "consent"); err != nil || v == 0 {
				return console.Table{Note: L["noconsent"]}, err
			}
			settings, grants, err := consent.List(ctx, st, 500)
			if err != nil {
				return console.Table{}, err
			}
			t := console.Table{Note: L["consent_note"], Columns: []string{L["kind"], L["user"], L["value"], L["time"]}}
			for _, s := range settings {
				t.Rows = append(t.Rows, []string{L["setting"], string(s.User), string(s.Setting), s.Updated.Format(time.DateTime + " UTC")})
			}
			for _, g := range grants {
				t.Rows = append(t.Rows, []string{L["grant"], string(g.Target), string(g.Requester), g.Granted.Format(time.DateTime + " UTC")})
			}
			if len(t.Rows) == 0 {
				t.Note += " " + L["none"]
			}
			return t, nil
		}}
}

// abuseReportsSection lists the abuse reports the endpoint accepted as the hub of a room.
func abuseReportsSection(st *store.Store) console.Section {
	return console.Section{Path: "abuse-reports", Title: map[string]string{"en": "Abuse reports", "de": "Missbrauchsmeldungen"},
		Load: func(ctx context.Context, lang string) (console.Table, error) {
			L := texts(lang)
			if v, err := st.SchemaVersion(ctx, abuse.Component); err != nil || v == 0 {
				return console.Table{Note: L["noabuse"]}, err
			}
			reports, err := abuse.List(ctx, st, 200)
			if err != nil {
				return console.Table{}, err
			}
			t := console.Table{Note: L["abuse_note"], Columns: []string{L["time"], L["room"], L["from"], L["reporter"], L["accused"], L["note"], L["messages"]}}
			for _, r := range reports {
				msgs := make([]string, 0, len(r.Messages))
				for _, m := range r.Messages {
					msgs = append(msgs, m.Accepted.Format(time.DateTime+" UTC")+" "+string(m.Sender)+": "+m.Text())
				}
				t.Rows = append(t.Rows, []string{r.Received.Format(time.DateTime + " UTC"), string(r.Room), string(r.From), string(r.Reporter),
					string(r.Accused), r.Note, strings.Join(msgs, "\n")})
			}
			if len(t.Rows) == 0 {
				t.Note += " " + L["none"]
			}
			return t, nil
		}}
}
