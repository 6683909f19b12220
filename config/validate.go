package config

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// validator collects validation errors and maps key paths to positions.
type validator struct {
	pos      map[string]Pos
	file     string
	errs     Errors
	warnings []string
}

// errorf records a problem with the key at path. Its position is that of the key itself or, for a
// key the user did not write (a missing required value), of its nearest written ancestor.
func (v *validator) errorf(path, format string, args ...any) {
	v.errs = append(v.errs, &FieldError{Pos: v.posOf(path), Path: path, Msg: fmt.Sprintf(format, args...)})
}

// required records a "missing required value" error for path when value is empty.
func (v *validator) required(path, value, why string) bool {
	if strings.TrimSpace(value) != "" {
		return true
	}
	if why != "" {
		why = " " + why
	}
	v.errorf(path, "missing required value%s", why)
	return false
}

func (v *validator) posOf(path string) Pos {
	for p := path; p != ""; p = parent(p) {
		if pos, ok := v.pos[p]; ok {
			return pos
		}
	}
	return Pos{File: v.file}
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

func (v *validator) oneOf(path, value string, allowed ...string) {
	for _, a := range allowed {
		if value == a {
			return
		}
	}
	v.errorf(path, "%q is not one of %s", value, strings.Join(allowed, ", "))
}

func (v *validator) hostPort(path, value string) {
	host, port, err := net.SplitHostPort(value)
	if err != nil {
		v.errorf(path, "%q is not host:port", value)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		v.errorf(path, "%q has an invalid port", value)
	}
	_ = host // empty host means all interfaces
}

func (v *validator) positive(path string, n int64) {
	if n <= 0 {
		v.errorf(path, "must be greater than zero")
	}
}

// validDomain checks a DNS name: labels of letters, digits and hyphens, 1..253 characters.
func validDomain(s string) bool {
	if len(s) == 0 || len(s) > 253 || strings.HasSuffix(s, ".") {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

func (c *Config) validate(v *validator) {
	if v.required("domain", c.Domain, "(the provider's DNS domain)") {
		if !validDomain(c.Domain) {
			v.errorf("domain", "%q is not a DNS domain name", c.Domain)
		} else if c.Domain == "localhost" || strings.HasSuffix(c.Domain, ".localhost") {
			v.warnings = append(v.warnings, fmt.Sprintf("domain is %q: partners cannot reach this gateway; set domain to your organisation's domain", c.Domain))
		}
	}
	v.required("data_dir", c.DataDir, "")
	v.positive("shutdown_timeout", int64(c.ShutdownTimeout))

	v.oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	v.oneOf("log.format", c.Log.Format, "text", "json")

	if v.required("admin.address", c.Admin.Address, "") {
		v.hostPort("admin.address", c.Admin.Address)
	}

	c.validateAdminUI(v)
	c.validateBus(v)
	c.validateStore(v)
	c.validateRetention(v)
	c.validateMIMI(v)
	c.validateHA(v)
	c.validatePartners(v)
	c.Bridges.Matrix.validate(v)
	c.Bridges.XMPP.validate(v)
}

func (c *Config) validateBus(v *validator) {
	b := &c.Bus
	v.oneOf("bus.mode", b.Mode, "embedded", "external")
	v.positive("bus.dedupe_window", int64(b.DedupeWindow))
	v.positive("bus.ack_wait", int64(b.AckWait))
	v.positive("bus.max_deliveries", int64(b.MaxDeliveries))
	v.positive("bus.partitions", int64(b.Partitions))
	v.positive("bus.max_age", int64(b.MaxAge))
	v.positive("bus.max_bytes", int64(b.MaxBytes))
	if b.DedupeWindow > b.MaxAge {
		v.errorf("bus.dedupe_window", "%s exceeds max_age %s", b.DedupeWindow, b.MaxAge)
	}
	for i, d := range b.Backoff {
		if d < 0 {
			v.errorf(fmt.Sprintf("bus.backoff[%d]", i), "must not be negative")
		}
	}
	switch b.Mode {
	case "embedded":
		if b.Embedded.Listen != "" {
			v.hostPort("bus.embedded.listen", b.Embedded.Listen)
		}
		v.positive("bus.embedded.max_memory", int64(b.Embedded.MaxMemory))
		v.positive("bus.embedded.max_store", int64(b.Embedded.MaxStore))
		v.oneOf("bus.embedded.cipher", b.Embedded.Cipher, "chacha", "aes")
		if b.Embedded.SyncInterval < 0 {
			v.errorf("bus.embedded.sync_interval", "must not be negative")
		}
	case "external":
		if len(b.External.URLs) == 0 {
			v.errorf("bus.external.urls", "missing required value (bus.mode is external)")
		}
		for i, u := range b.External.URLs {
			p := fmt.Sprintf("bus.external.urls[%d]", i)
			// Messages never repeat a URL's user information: it may hold a password.
			pu, err := url.Parse(u)
			if err != nil || pu.Host == "" {
				v.errorf(p, "not a URL such as nats://host:4222")
				continue
			}
			switch pu.Scheme {
			case "nats", "tls", "ws", "wss":
			default:
				v.errorf(p, "%q: scheme must be nats, tls, ws or wss", pu.Redacted())
			}
		}
		switch b.External.Replicas {
		case 1, 3, 5:
		default:
			v.errorf("bus.external.replicas", "%d is not one of 1, 3, 5", b.External.Replicas)
		}
		if b.External.CredsFile != "" && b.External.NKeySeedFile != "" {
			v.errorf("bus.external.nkey_seed_file", "set either creds_file or nkey_seed_file, not both")
		}
		t := b.External.TLS
		if (t.CertFile == "") != (t.KeyFile == "") {
			v.errorf("bus.external.tls", "cert_file and key_file go together")
		}
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
			v.errorf("retention."+k.key, "must not be negative (0s keeps records for ever)")
		}
	}
	if r.DedupeMarks > 0 && r.DedupeMarks < c.Bus.MaxAge+24*time.Hour {
		v.errorf("retention.dedupe_marks", "%s is shorter than bus.max_age plus a day (%s): a redelivered message could be processed twice", r.DedupeMarks, c.Bus.MaxAge+24*time.Hour)
	}
	v.positive("retention.interval", int64(r.Interval))
}

func (c *Config) validateStore(v *validator) {
	s := &c.Store
	v.oneOf("store.driver", string(s.Driver), string(store.SQLite), string(store.Postgres))
	if s.MaxOpenConns < 0 {
		v.errorf("store.max_open_conns", "must not be negative")
	}
	switch s.Driver {
	case store.SQLite:
		if p := s.SQLite.Path; p == ":memory:" || strings.HasPrefix(p, "file:") || strings.ContainsAny(p, "?#") {
			v.errorf("store.sqlite.path", "%q must be a plain file path", p)
		}
		v.oneOf("store.sqlite.synchronous", s.SQLite.Synchronous, "full", "normal", "extra")
		if s.SQLite.BusyTimeout < 0 {
			v.errorf("store.sqlite.busy_timeout", "must not be negative")
		}
		if c.Bus.Mode == "external" {
			v.warnings = append(v.warnings, "bus.mode is external but store.driver is sqlite: run a single replica, or use postgres")
		}
	case store.Postgres:
		v.required("store.postgres.dsn", s.Postgres.DSN, "(store.driver is postgres; or set dsn_file)")
		v.required("store.encryption.key", s.Encryption.Key, "(store.driver is postgres: every replica needs the same key; set key_file)")
	}
}

func (c *Config) validateMIMI(v *validator) {
	m := &c.MIMI
	v.positive("mimi.assets.expiry", int64(m.Assets.Expiry))
	v.positive("mimi.assets.max_size", int64(m.Assets.MaxSize))
	v.positive("mimi.assets.sweep_interval", int64(m.Assets.SweepInterval))
	v.positive("mimi.unreachable_notice", int64(m.UnreachableNotice))
	v.oneOf("mimi.reachability", m.Reachability, "partners", "consent", "nobody")
	for i, f := range m.Directory.Publish {
		v.oneOf(fmt.Sprintf("mimi.directory.publish[%d]", i), f, "handle", "nick", "email", "phone", "partialName")
	}
	for i, e := range m.Directory.Entries {
		v.required(fmt.Sprintf("mimi.directory.entries[%d].user", i), e.User, "")
	}
	v.positive("mimi.key_packages.claimed_expiry", int64(m.KeyPackages.ClaimedExpiry))
	v.positive("mimi.key_packages.max_claimed", int64(m.KeyPackages.MaxClaimed))
	v.positive("mimi.limits.body_budget", int64(m.Limits.BodyBudget))
	v.positive("mimi.limits.partner_concurrency", int64(m.Limits.PartnerConcurrency))
	k := m.Limits.KeyMaterial
	v.positive("mimi.limits.key_material.partner_interval", int64(k.PartnerInterval))
	v.positive("mimi.limits.key_material.partner_burst", int64(k.PartnerBurst))
	v.positive("mimi.limits.key_material.target_interval", int64(k.TargetInterval))
	v.positive("mimi.limits.key_material.target_burst", int64(k.TargetBurst))
	if m.Address == "" {
		return
	}
	v.hostPort("mimi.address", m.Address)
	v.required("mimi.cert_file", m.CertFile, "(mimi.address is set)")
	v.required("mimi.key_file", m.KeyFile, "(mimi.address is set)")
	v.required("mimi.client_ca_file", m.ClientCAFile, "(mimi.address is set)")
}

func (c *Config) validatePartners(v *validator) {
	seen := make(map[string]int)
	for i, p := range c.Partners {
		path := fmt.Sprintf("partners[%d]", i)
		if v.required(path+".domain", p.Domain, "") {
			d := strings.ToLower(p.Domain)
			if !validDomain(d) {
				v.errorf(path+".domain", "%q is not a DNS domain name", p.Domain)
			} else if j, dup := seen[d]; dup {
				v.errorf(path+".domain", "%q is already partners[%d]", p.Domain, j)
			} else {
				seen[d] = i
			}
			if d == strings.ToLower(c.Domain) {
				v.errorf(path+".domain", "%q is the gateway's own domain", p.Domain)
			}
		}
		switch {
		case p.BaseURL == "" && !p.Discovery:
			v.errorf(path+".base_url", "missing required value (or set discovery: true)")
		case p.BaseURL != "" && p.Discovery:
			v.errorf(path+".discovery", "set either base_url or discovery, not both")
		case p.BaseURL != "":
			u, err := url.Parse(p.BaseURL)
			switch {
			case err != nil || u.Host == "":
				v.errorf(path+".base_url", "not a URL such as https://mimi.partner.example/")
			case u.Scheme != "https":
				v.errorf(path+".base_url", "%q is not an https URL", u.Redacted())
			}
		}
	}
}

func (c *Config) validateHA(v *validator) {
	v.positive("ha.lease_ttl", int64(c.HA.LeaseTTL))
	if c.HA.LeaseTTL > 0 && c.HA.LeaseTTL < 3*time.Second {
		v.errorf("ha.lease_ttl", "%s is shorter than 3s: a leader under load could lose its lease between renewals", c.HA.LeaseTTL)
	}
	if c.HA.AdvertiseAddress != "" {
		v.hostPort("ha.advertise_address", c.HA.AdvertiseAddress)
	} else if c.HAEnabled() && c.MIMI.Address != "" {
		if host, _, err := net.SplitHostPort(c.MIMI.Address); err == nil {
			if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
				v.errorf("ha.advertise_address", "required with several replicas when mimi.address (%s) listens on every interface: the address at which the other replicas reach this one (e.g. the pod IP and port)", c.MIMI.Address)
			}
		}
	}
}
