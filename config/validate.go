package config

import (
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/confschema"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// validator collects the problems of validation (each naming its key path) and the warnings.
type validator struct {
	confschema.Problems
	warnings []string
}

// lenient records the problems of a section whose missing required values are warnings at load:
// the adapter refuses to start without them (bridges.matrix, so that `mimi-gateway matrix
// registration` and a check of the rest of the file work before its secrets are in place).
func (v *validator) lenient(err error) {
	var all confschema.Problems
	all.Add("", err)
	for _, p := range all.List() {
		if p.Missing {
			v.warnings = append(v.warnings, p.Error()+"; the adapter will not start without it")
		} else {
			v.Add("", p)
		}
	}
}

// place turns a problem into a FieldError at the position of its key or, for a key the user did
// not write (a missing required value), of its nearest written ancestor.
func place(p *confschema.Problem, pos map[string]Pos, file string) *FieldError {
	return &FieldError{Pos: posOf(p.Key, pos, file), Path: p.Key, Msg: p.Msg}
}

func posOf(path string, pos map[string]Pos, file string) Pos {
	for p := path; p != ""; p = parent(p) {
		if at, ok := pos[p]; ok {
			return at
		}
	}
	return Pos{File: file}
}

// parent returns the key path one level up: "a.b[2].c" → "a.b[2]" → "a.b" → "a" → "".
func parent(p string) string {
	if strings.HasSuffix(p, "]") {
		if i := strings.LastIndexByte(p, '['); i >= 0 {
			return p[:i]
		}
	}
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i]
	}
	return ""
}

func (c *Config) validate(v *validator) {
	if v.Required("domain", c.Domain, "(the provider's DNS domain)") {
		if !confschema.ValidDomain(c.Domain) {
			v.Errorf("domain", "%q is not a DNS domain name", c.Domain)
		} else if c.Domain == "localhost" || strings.HasSuffix(c.Domain, ".localhost") {
			v.warnings = append(v.warnings, fmt.Sprintf("domain is %q: partners cannot reach this gateway; set domain to your organisation's domain", c.Domain))
		}
	}
	v.Required("data_dir", c.DataDir, "")
	v.Positive("shutdown_timeout", int64(c.ShutdownTimeout))

	v.OneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	v.OneOf("log.format", c.Log.Format, "text", "json")

	if v.Required("admin.address", c.Admin.Address, "") {
		v.HostPort("admin.address", c.Admin.Address)
	}

	c.validateAdminUI(v)
	v.Add("bus", c.BusConfig().Validate())
	c.validateStore(v)
	c.validateRetention(v)
	c.validateMIMI(v)
	c.validateHA(v)
	v.Add("partners", protocol.ValidatePartners(c.Domain, c.Partners))
	if c.Bridges.Matrix.Enabled {
		v.lenient(c.matrix().Validate())
	}
	if c.Bridges.XMPP.Enabled {
		v.Add("bridges.xmpp", c.XMPPConfig().Validate())
	}
}

func (c *Config) validateRetention(v *validator) {
	r := &c.Retention
	for _, k := range []struct {
		key string
		d   time.Duration
	}{
		{"id_mappings", r.IDMappings}, {"dedupe_marks", r.DedupeMarks}, {"muc_history", r.MUCHistory},
		{"assets", r.Assets}, {"dead_letters", r.DeadLetters}, {"audit_log", r.AuditLog}, {"consent_records", r.ConsentRecords}, {"abuse_reports", r.AbuseReports},
	} {
		if k.d < 0 {
			v.Errorf("retention."+k.key, "must not be negative (0s keeps records for ever)")
		}
	}
	if r.DedupeMarks > 0 && r.DedupeMarks < c.Bus.MaxAge+24*time.Hour {
		v.Errorf("retention.dedupe_marks", "%s is shorter than bus.max_age plus a day (%s): a redelivered message could be processed twice", r.DedupeMarks, c.Bus.MaxAge+24*time.Hour)
	}
	v.Positive("retention.interval", int64(r.Interval))
}

func (c *Config) validateStore(v *validator) {
	s := &c.Store
	v.OneOf("store.driver", string(s.Driver), string(store.SQLite), string(store.Postgres))
	if s.MaxOpenConns < 0 {
		v.Errorf("store.max_open_conns", "must not be negative")
	}
	switch s.Driver {
	case store.SQLite:
		if p := s.SQLite.Path; p == ":memory:" || strings.HasPrefix(p, "file:") || strings.ContainsAny(p, "?#") {
			v.Errorf("store.sqlite.path", "%q must be a plain file path", p)
		}
		v.OneOf("store.sqlite.synchronous", s.SQLite.Synchronous, "full", "normal", "extra")
		if s.SQLite.BusyTimeout < 0 {
			v.Errorf("store.sqlite.busy_timeout", "must not be negative")
		}
		if c.Bus.Mode == "external" {
			v.warnings = append(v.warnings, "bus.mode is external but store.driver is sqlite: run a single replica, or use postgres")
		}
	case store.Postgres:
		v.Required("store.postgres.dsn", s.Postgres.DSN, "(store.driver is postgres; or set dsn_file)")
		v.Required("store.encryption.key", s.Encryption.Key, "(store.driver is postgres: every replica needs the same key; set key_file)")
	}
}

func (c *Config) validateMIMI(v *validator) {
	m := &c.MIMI
	v.Add("mimi.assets", m.Assets.Validate())
	v.Positive("mimi.unreachable_notice", int64(m.UnreachableNotice))
	v.OneOf("mimi.reachability", m.Reachability, "partners", "consent", "nobody")
	for i, f := range m.Directory.Publish {
		v.OneOf(fmt.Sprintf("mimi.directory.publish[%d]", i), f, "handle", "nick", "email", "phone", "partialName")
	}
	for i, e := range m.Directory.Entries {
		v.Required(fmt.Sprintf("mimi.directory.entries[%d].user", i), e.User, "")
	}
	v.Positive("mimi.key_packages.claimed_expiry", int64(m.KeyPackages.ClaimedExpiry))
	v.Positive("mimi.key_packages.max_claimed", int64(m.KeyPackages.MaxClaimed))
	v.Positive("mimi.limits.body_budget", int64(m.Limits.BodyBudget))
	v.Positive("mimi.limits.partner_concurrency", int64(m.Limits.PartnerConcurrency))
	k := m.Limits.KeyMaterial
	v.Positive("mimi.limits.key_material.partner_interval", int64(k.PartnerInterval))
	v.Positive("mimi.limits.key_material.partner_burst", int64(k.PartnerBurst))
	v.Positive("mimi.limits.key_material.target_interval", int64(k.TargetInterval))
	v.Positive("mimi.limits.key_material.target_burst", int64(k.TargetBurst))
	if m.Address == "" {
		return
	}
	v.HostPort("mimi.address", m.Address)
	v.Required("mimi.cert_file", m.CertFile, "(mimi.address is set)")
	v.Required("mimi.key_file", m.KeyFile, "(mimi.address is set)")
	v.Required("mimi.client_ca_file", m.ClientCAFile, "(mimi.address is set)")
}

func (c *Config) validateHA(v *validator) {
	v.Positive("ha.lease_ttl", int64(c.HA.LeaseTTL))
	if c.HA.LeaseTTL > 0 && c.HA.LeaseTTL < 3*time.Second {
		v.Errorf("ha.lease_ttl", "%s is shorter than 3s: a leader under load could lose its lease between renewals", c.HA.LeaseTTL)
	}
	if c.HA.AdvertiseAddress != "" {
		v.HostPort("ha.advertise_address", c.HA.AdvertiseAddress)
	} else if c.HAEnabled() && c.MIMI.Address != "" {
		if host, _, err := net.SplitHostPort(c.MIMI.Address); err == nil {
			if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
				v.Errorf("ha.advertise_address", "required with several replicas when mimi.address (%s) listens on every interface: the address at which the other replicas reach this one (e.g. the pod IP and port)", c.MIMI.Address)
			}
		}
	}
}
