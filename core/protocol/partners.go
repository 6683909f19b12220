package protocol

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/mimi-gateway/mimi-gateway/core/confschema"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// Partner is a configured partner provider. Only configured partners may call us, and only they
// can be reached (the client is no open proxy).
type Partner struct {
	// Domain is the partner's provider domain (lower case).
	Domain event.Domain
	// BaseURL, when set, is a static override of the partner's endpoint base (the endpoints are
	// BaseURL + "v1/<endpoint>/<id>"); nil means discovery through the well-known directory.
	BaseURL *url.URL
	// RootCAs verify the partner's server certificate; nil means the system roots.
	RootCAs *x509.CertPool
}

// Partners is the reloadable set of partners, shared by Server and Client. It is safe for
// concurrent use; Set swaps the whole set atomically.
type Partners struct {
	m atomic.Pointer[map[event.Domain]Partner]
}

// NewPartners returns a set holding ps.
func NewPartners(ps ...Partner) *Partners {
	p := new(Partners)
	p.Set(ps)
	return p
}

// Set replaces the set (configuration reload).
func (p *Partners) Set(ps []Partner) {
	m := make(map[event.Domain]Partner, len(ps))
	for _, x := range ps {
		x.Domain = normDomain(string(x.Domain))
		m[x.Domain] = x
	}
	p.m.Store(&m)
}

// Lookup returns the partner with domain d.
func (p *Partners) Lookup(d event.Domain) (Partner, bool) {
	m := p.m.Load()
	if m == nil {
		return Partner{}, false
	}
	x, ok := (*m)[normDomain(string(d))]
	return x, ok
}

// Domains lists the partners' domains in order.
func (p *Partners) Domains() []event.Domain {
	m := p.m.Load()
	if m == nil {
		return nil
	}
	out := make([]event.Domain, 0, len(*m))
	for d := range *m {
		out = append(out, d)
	}
	slices.Sort(out)
	return out
}

func normDomain(s string) event.Domain {
	return event.Domain(strings.TrimSuffix(strings.ToLower(s), "."))
}

// PartnerConfig is one entry of the configuration's partners list (the yaml tags are its keys;
// config embeds the list and checks it with ValidatePartners).
type PartnerConfig struct {
	// Domain is the partner provider's domain.
	Domain string `yaml:"domain"`
	// BaseURL is the partner's MIMI endpoint (https); empty requires Discovery.
	BaseURL string `yaml:"base_url"`
	// Discovery finds the endpoint through the partner domain's well-known directory.
	Discovery bool `yaml:"discovery"`
	// CAFile verifies the partner's server certificate; empty means the system roots.
	CAFile string `yaml:"ca_file"`
}

// ValidatePartners checks the partners section of the gateway whose own domain is self and returns
// every problem, each a *confschema.Problem naming its key (partners[i].domain, ...).
func ValidatePartners(self string, cps []PartnerConfig) error {
	var v confschema.Problems
	seen := make(map[string]int)
	for i, p := range cps {
		path := fmt.Sprintf("partners[%d]", i)
		if v.Required(path+".domain", p.Domain, "") {
			d := strings.ToLower(p.Domain)
			if !confschema.ValidDomain(d) {
				v.Errorf(path+".domain", "%q is not a DNS domain name", p.Domain)
			} else if j, dup := seen[d]; dup {
				v.Errorf(path+".domain", "%q is already partners[%d]", p.Domain, j)
			} else {
				seen[d] = i
			}
			v.If(d == strings.ToLower(self), path+".domain", "%q is the gateway's own domain", p.Domain)
		}
		switch {
		case p.BaseURL == "" && !p.Discovery:
			v.Errorf(path+".base_url", "missing required value (or set discovery: true)")
		case p.BaseURL != "" && p.Discovery:
			v.Errorf(path+".discovery", "set either base_url or discovery, not both")
		case p.BaseURL != "":
			u, err := url.Parse(p.BaseURL)
			switch {
			case err != nil || u.Host == "":
				v.Errorf(path+".base_url", "not a URL such as https://mimi.partner.example/")
			case u.Scheme != "https":
				v.Errorf(path+".base_url", "%q is not an https URL", u.Redacted())
			}
		}
	}
	return v.Err()
}

// PartnersFromConfig maps the configuration's partners list onto Partner values, reading each
// ca_file.
func PartnersFromConfig(cps []PartnerConfig) ([]Partner, error) {
	out := make([]Partner, 0, len(cps))
	for i, cp := range cps {
		p := Partner{Domain: normDomain(cp.Domain)}
		if cp.BaseURL != "" {
			u, err := url.Parse(cp.BaseURL)
			if err != nil || u.Scheme != "https" || u.Host == "" {
				return nil, fmt.Errorf("protocol: partners[%d].base_url: not an https URL", i)
			}
			if !strings.HasSuffix(u.Path, "/") {
				u.Path += "/"
			}
			p.BaseURL = u
		}
		if cp.CAFile != "" {
			pool, err := LoadCertPool(cp.CAFile)
			if err != nil {
				return nil, fmt.Errorf("protocol: partners[%d].ca_file: %w", i, err)
			}
			p.RootCAs = pool
		}
		out = append(out, p)
	}
	return out, nil
}

// LoadCertPool reads PEM certificates from a file into a pool.
func LoadCertPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate", file)
	}
	return pool, nil
}

// LoadTLS loads the mimi section's certificate (cert_file, key_file) and the CAs that verify
// partners' client certificates (client_ca_file).
func LoadTLS(certFile, keyFile, clientCAFile string) (tls.Certificate, *x509.CertPool, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("protocol: mimi.cert_file/mimi.key_file: %w", err)
	}
	pool, err := LoadCertPool(clientCAFile)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("protocol: mimi.client_ca_file: %w", err)
	}
	return cert, pool, nil
}
