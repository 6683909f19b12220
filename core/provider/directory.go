package provider

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/mimi-gateway/mimi-gateway/core/consent"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
)

// Finding people: partners ask us with identifierQuery (answered from Config.Directory, never
// finding a user who reaches nobody outside or does not exist), and our users ask partners
// through their commands (Search). The users' consent commands (Allow, Deny, Revoke,
// SetReachability, Requests) change the consent store and tell the requester's provider.

var _ protocol.IdentifierQueryHandler = (*Provider)(nil)

// IdentifierQuery implements protocol.IdentifierQueryHandler.
func (p *Provider) IdentifierQuery(ctx context.Context, peer protocol.Peer, req *protocol.IdentifierRequest) (*protocol.IdentifierResponse, error) {
	if p.cfg.Directory == nil {
		return &protocol.IdentifierResponse{Code: protocol.IdentifierUnsupportedField}, nil
	}
	resp, err := p.cfg.Directory.Query(ctx, req, p.hiddenFromPartners)
	if err != nil {
		return nil, err
	}
	p.log.Debug("identifier query", "peer", peer.Domain, "elements", len(req.Elements), "code", resp.Code.String())
	return resp, nil
}

// hiddenFromPartners reports whether u may not be found by partners: she reaches nobody
// outside, or she is neither listed in the directory nor known on a legacy network.
func (p *Provider) hiddenFromPartners(ctx context.Context, u event.UserURI) (bool, error) {
	if cs := p.consentStore(); cs != nil {
		r, _, err := cs.Reachability(ctx, u)
		if err != nil {
			return false, err
		}
		if r == consent.Nobody {
			return true, nil
		}
	}
	if p.cfg.Directory != nil && p.cfg.Directory.Listed(u) {
		return false, nil
	}
	if _, err := p.localNetwork(ctx, u); errors.Is(err, ErrUnknownUser) {
		return true, nil
	} else if err != nil {
		return false, err
	}
	return false, nil
}

// Found is a partner's user a search found.
type Found struct {
	User event.UserURI
	// Name is her published name, if any.
	Name string
}

// Search errors.
var (
	// ErrSearchRefused: the partner refuses the query (too broad, a field it does not publish).
	ErrSearchRefused = errors.New("provider: the partner does not answer such a search")
	// ErrAmbiguous: several users match.
	ErrAmbiguous = errors.New("provider: several users match")
	// ErrNoPartner: the text names a provider that is not a partner.
	ErrNoPartner = errors.New("provider: not a partner")
)

// Search asks partners, for local user requester, who matches text: an address
// (user@partner, mimi://partner/u/user, im: or xmpp: URIs) is searched at that partner as an
// e-mail address and as a handle; other text is searched as a name at every partner. It returns
// the users found (none: nobody, or nobody who may be found).
func (p *Provider) Search(ctx context.Context, requester event.UserURI, text string) ([]Found, error) {
	if p.client == nil {
		return nil, errors.New("provider: the MIMI endpoint is not running")
	}
	text = strings.TrimSpace(text)
	if d, ok := searchDomain(text); ok {
		if !slices.Contains(p.client.PartnerDomains(), d) {
			return nil, fmt.Errorf("%w: %s", ErrNoPartner, d)
		}
		var refused error
		for _, q := range []protocol.QueryElement{{Type: protocol.SearchEmail, Value: strings.TrimPrefix(text, "mailto:")}, {Type: protocol.SearchHandle, Value: handleOf(text)}} {
			if q.Type == protocol.SearchEmail && strings.Contains(text, "://") {
				continue
			}
			found, err := p.query(ctx, d, q)
			if errors.Is(err, ErrSearchRefused) {
				refused = err
				continue
			}
			if err != nil || len(found) > 0 {
				return found, err
			}
		}
		return nil, refused
	}
	var out []Found
	var firstErr error
	for _, d := range p.client.PartnerDomains() {
		found, err := p.query(ctx, d, protocol.QueryElement{Type: protocol.SearchPartialName, Value: text})
		if err != nil && !errors.Is(err, ErrAmbiguous) {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if errors.Is(err, ErrAmbiguous) && firstErr == nil {
			firstErr = err
		}
		out = append(out, found...)
	}
	if len(out) == 0 {
		return nil, firstErr
	}
	return out, nil
}

// query sends one identifier query to partner d.
func (p *Provider) query(ctx context.Context, d event.Domain, q protocol.QueryElement) ([]Found, error) {
	resp, err := p.client.IdentifierQuery(ctx, d, &protocol.IdentifierRequest{Elements: []protocol.QueryElement{q}})
	if err != nil {
		return nil, fmt.Errorf("provider: search at %s: %w", d, err)
	}
	switch resp.Code {
	case protocol.IdentifierSuccess:
	case protocol.IdentifierNotFound:
		return nil, nil
	case protocol.IdentifierAmbiguous:
		return nil, fmt.Errorf("%w at %s", ErrAmbiguous, d)
	default:
		return nil, fmt.Errorf("%w: %s answers %s", ErrSearchRefused, d, resp.Code)
	}
	var out []Found
	for _, u := range resp.URIs {
		uri, err := event.ParseUserURI(string(u))
		if err != nil || uri.Domain() != d {
			continue // a partner names only its own users
		}
		f := Found{User: uri}
		for _, pr := range resp.Profiles {
			if string(pr.StableURI) != string(u) {
				continue
			}
			for _, fl := range pr.Fields {
				if fl.Source == protocol.FieldVCardField && fl.Name == "fn" && len(fl.Value) <= 256 {
					f.Name = string(fl.Value)
				}
			}
		}
		out = append(out, f)
	}
	return out, nil
}

// searchDomain returns the provider domain an address names.
func searchDomain(s string) (event.Domain, bool) {
	if u, err := event.ParseUserURI(s); err == nil {
		return u.Domain(), true
	}
	if strings.ContainsAny(s, " \t") {
		return "", false
	}
	i := strings.LastIndex(s, "@")
	if i <= 0 || i == len(s)-1 {
		return "", false
	}
	d := strings.ToLower(s[i+1:])
	if !strings.Contains(d, ".") && d != "localhost" {
		return "", false
	}
	return event.Domain(d), true
}

// handleOf is the handle query value of an address: a URI as it is, user@domain as im:.
func handleOf(s string) string {
	if strings.Contains(s, ":") {
		return s
	}
	return "im:" + s
}

// Allow records that local user u accepts requester, a partner's user, and tells his provider.
// A failure to tell it is returned after the record is made (the user may try again).
func (p *Provider) Allow(ctx context.Context, u, requester event.UserURI) error {
	cs := p.consentStore()
	if cs == nil {
		return errors.New("provider: consent is not kept")
	}
	if err := cs.Grant(ctx, u, requester); err != nil {
		return err
	}
	return p.tellConsent(ctx, protocol.ConsentGrant, u, requester)
}

// Deny records that local user u refuses requester. His provider is not told (he learns
// nothing he could not learn from an unknown user).
func (p *Provider) Deny(ctx context.Context, u, requester event.UserURI) error {
	cs := p.consentStore()
	if cs == nil {
		return errors.New("provider: consent is not kept")
	}
	return cs.Deny(ctx, u, requester)
}

// Revoke withdraws local user u's consent for requester and tells his provider.
func (p *Provider) Revoke(ctx context.Context, u, requester event.UserURI) error {
	cs := p.consentStore()
	if cs == nil {
		return errors.New("provider: consent is not kept")
	}
	if err := cs.Revoke(ctx, u, requester); err != nil {
		return err
	}
	return p.tellConsent(ctx, protocol.ConsentRevoke, u, requester)
}

func (p *Provider) tellConsent(ctx context.Context, op protocol.ConsentOperation, u, requester event.UserURI) error {
	if requester.Domain() == p.cfg.Domain || p.client == nil {
		return nil
	}
	e := &protocol.ConsentEntry{Operation: op, Requester: protocol.IdentifierURI(requester), Target: protocol.IdentifierURI(u)}
	if err := p.client.UpdateConsent(ctx, e); err != nil {
		return fmt.Errorf("provider: tell %s: %w", requester.Domain(), err)
	}
	return nil
}

// SetReachability stores local user u's own setting ("" returns to the organisation's default).
func (p *Provider) SetReachability(ctx context.Context, u event.UserURI, r consent.Reachability) error {
	cs := p.consentStore()
	if cs == nil {
		return errors.New("provider: consent is not kept")
	}
	return cs.SetReachability(ctx, u, r)
}

// ConsentOverview is what a user's "consent list" shows.
type ConsentOverview struct {
	Setting consent.Reachability
	Own     bool // Setting is her own, not the organisation's default
	Granted []consent.Grant
	// Requests are the requests she made or received, newest first.
	Requests []consent.Request
}

// ConsentOf returns local user u's setting, the requesters she accepted and recent requests.
func (p *Provider) ConsentOf(ctx context.Context, u event.UserURI) (ConsentOverview, error) {
	cs := p.consentStore()
	if cs == nil {
		return ConsentOverview{}, errors.New("provider: consent is not kept")
	}
	var o ConsentOverview
	var err error
	if o.Setting, o.Own, err = cs.Reachability(ctx, u); err != nil {
		return o, err
	}
	if o.Granted, err = cs.Grants(ctx, u, 20); err != nil {
		return o, err
	}
	o.Requests, err = cs.Requests(ctx, u, 20)
	return o, err
}
