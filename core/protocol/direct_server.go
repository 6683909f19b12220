package protocol

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// ConsentHandler is the optional capability of a Handler that takes part in consent (§5.7,
// §8). The server has checked the entry's operation against the endpoint and the domains of
// its users against the partner and us.
type ConsentHandler interface {
	// RequestConsent takes a request or a cancel of partner peer's user (Requester) to one of
	// our users (Target). The answer is 201 whether or not Target exists.
	RequestConsent(ctx context.Context, peer Peer, e *ConsentEntry) error
	// UpdateConsent takes a grant or a revoke of partner peer's user (Target) for one of our
	// users (Requester).
	UpdateConsent(ctx context.Context, peer Peer, e *ConsentEntry) error
}

// IdentifierQueryHandler is the optional capability of answering identifier queries about our
// users (§5.8).
type IdentifierQueryHandler interface {
	IdentifierQuery(ctx context.Context, peer Peer, req *IdentifierRequest) (*IdentifierResponse, error)
}

// AbuseHandler is the optional capability of a hub that takes abuse reports about its rooms
// (§5.9). body is the exact request body. A report whose franks do not verify is refused with a
// *StatusError (403).
type AbuseHandler interface {
	ReportAbuse(ctx context.Context, peer Peer, room event.RoomURI, r *AbuseReport, body []byte) error
}

// directPathDomain returns the provider domain a direct endpoint's path names. Reading R32: the
// endpoint table names {targetDomain}, {requesterDomain} and {domain} while the directory's
// templates name {targetUser} and {requesterUser}; we send the user URI the directory asks for
// and accept a user URI or a bare domain (which DecodePathID turned into "mimi://<domain>").
func directPathDomain(id IdentifierURI) (event.Domain, event.UserURI, error) {
	if u, err := event.ParseUserURI(string(id)); err == nil {
		return u.Domain(), u, nil
	}
	rest, ok := strings.CutPrefix(string(id), "mimi://")
	if !ok || rest == "" || strings.ContainsAny(rest, "/?#@") {
		return "", "", fmt.Errorf("%q is neither a user URI nor a domain", id)
	}
	return normDomain(rest), "", nil
}

// serveDirect serves requestConsent, updateConsent and identifierQuery (direct between the two
// providers) and reportAbuse (to a room's hub).
func (s *Server) serveDirect(w http.ResponseWriter, ctx context.Context, ep Endpoint, peer Peer, id IdentifierURI, room event.RoomURI, body []byte) {
	ours := normDomain(string(s.cfg.Domain))
	userOf := func(u IdentifierURI, d event.Domain, what string) (event.UserURI, string) {
		p, err := event.ParseUserURI(string(u))
		if err != nil {
			return "", fmt.Sprintf("%s %q is not a user URI", what, u)
		}
		if normDomain(string(p.Domain())) != d {
			return "", fmt.Sprintf("%s %s is not a user of %s", what, p, d)
		}
		return p, ""
	}
	switch ep {
	case EndpointRequestConsent, EndpointUpdateConsent:
		ch, ok := s.cfg.Handler.(ConsentHandler)
		if !ok {
			s.fail(w, http.StatusNotFound, "consent is not offered")
			return
		}
		e, err := DecodeConsentEntry(body)
		if err != nil {
			s.fail(w, http.StatusBadRequest, err.Error())
			return
		}
		// requestConsent: Target is ours, Requester the peer's; updateConsent the reverse.
		oursField, peersField, ops := e.Target, e.Requester, []ConsentOperation{ConsentRequest, ConsentCancel}
		if ep == EndpointUpdateConsent {
			oursField, peersField, ops = e.Requester, e.Target, []ConsentOperation{ConsentGrant, ConsentRevoke}
		}
		if e.Operation != ops[0] && e.Operation != ops[1] {
			s.fail(w, http.StatusBadRequest, fmt.Sprintf("%s does not take a consent %s", ep, e.Operation))
			return
		}
		local, detail := userOf(oursField, ours, "the user")
		if detail == "" {
			_, detail = userOf(peersField, peer.Domain, "the user")
		}
		if detail == "" {
			if d, u, err := directPathDomain(id); err != nil {
				detail = err.Error()
			} else if d != ours || (u != "" && u != local) {
				detail = "the path names another user or domain than the body"
			}
		}
		if detail != "" {
			s.fail(w, http.StatusBadRequest, detail)
			return
		}
		if ep == EndpointRequestConsent {
			err = ch.RequestConsent(ctx, peer, e)
		} else {
			err = ch.UpdateConsent(ctx, peer, e)
		}
		if err != nil {
			s.handlerError(w, ep, err)
			return
		}
		w.WriteHeader(http.StatusCreated)
	case EndpointIdentifierQuery:
		qh, ok := s.cfg.Handler.(IdentifierQueryHandler)
		if !ok {
			s.fail(w, http.StatusNotFound, "identifier queries are not offered")
			return
		}
		if d, _, err := directPathDomain(id); err != nil || d != ours {
			s.fail(w, http.StatusBadRequest, "the path must name this provider's domain")
			return
		}
		req, err := DecodeIdentifierRequest(body)
		if err != nil {
			s.fail(w, http.StatusBadRequest, err.Error())
			return
		}
		resp, err := qh.IdentifierQuery(ctx, peer, req)
		if err != nil {
			s.handlerError(w, ep, err)
			return
		}
		s.writeBody(w, ep, resp)
	case EndpointReportAbuse:
		ah, ok := s.cfg.Handler.(AbuseHandler)
		if !ok {
			s.fail(w, http.StatusNotFound, "abuse reports are not taken")
			return
		}
		r, err := DecodeAbuseReport(body)
		if err != nil {
			s.fail(w, http.StatusBadRequest, err.Error())
			return
		}
		if _, detail := userOf(r.Reporter, peer.Domain, "the reporting user"); detail != "" {
			s.fail(w, http.StatusBadRequest, detail)
			return
		}
		if len(r.Messages) == 0 {
			s.fail(w, http.StatusBadRequest, "a report names at least one message")
			return
		}
		if err := ah.ReportAbuse(ctx, peer, room, r, body); err != nil {
			s.handlerError(w, ep, err)
			return
		}
		w.WriteHeader(http.StatusCreated)
	}
}

// writeBody answers 200 with resp encoded.
func (s *Server) writeBody(w http.ResponseWriter, ep Endpoint, resp interface{ Encode() ([]byte, error) }) {
	out, err := resp.Encode()
	if err != nil {
		s.handlerError(w, ep, fmt.Errorf("encode response: %w", err))
		return
	}
	w.Header().Set("Content-Type", MediaType)
	w.Header().Set("Content-Length", fmt.Sprint(len(out)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}

// RequestConsent sends a request or a cancel of our user e.Requester to partner d, the
// provider of e.Target.
func (c *Client) RequestConsent(ctx context.Context, e *ConsentEntry) error {
	return c.sendConsent(ctx, EndpointRequestConsent, e.Target, e)
}

// UpdateConsent sends a grant or a revoke of our user e.Target to the provider of e.Requester.
func (c *Client) UpdateConsent(ctx context.Context, e *ConsentEntry) error {
	return c.sendConsent(ctx, EndpointUpdateConsent, e.Requester, e)
}

func (c *Client) sendConsent(ctx context.Context, ep Endpoint, to IdentifierURI, e *ConsentEntry) error {
	u, err := event.ParseUserURI(string(to))
	if err != nil {
		return fmt.Errorf("protocol: %s: %w", ep, err)
	}
	body, err := e.Encode()
	if err != nil {
		return err
	}
	status, _, err := c.do(ctx, u.Domain(), ep, to, body)
	if err != nil {
		return err
	}
	if status != http.StatusCreated && status != http.StatusOK && status != http.StatusAccepted {
		return &HTTPError{Endpoint: ep, Status: status}
	}
	return nil
}

// IdentifierQuery asks partner d which of its users match req.
func (c *Client) IdentifierQuery(ctx context.Context, d event.Domain, req *IdentifierRequest) (*IdentifierResponse, error) {
	body, err := req.Encode()
	if err != nil {
		return nil, err
	}
	b, err := c.expectBody(ctx, d, EndpointIdentifierQuery, IdentifierURI("mimi://"+string(d)), body)
	if err != nil {
		return nil, err
	}
	return DecodeIdentifierResponse(b)
}

// ReportAbuse sends an abuse report about room to its hub.
func (c *Client) ReportAbuse(ctx context.Context, room event.RoomURI, r *AbuseReport) error {
	body, err := r.Encode()
	if err != nil {
		return err
	}
	status, _, err := c.do(ctx, room.Domain(), EndpointReportAbuse, IdentifierURI(room), body)
	if err != nil {
		return err
	}
	if status != http.StatusCreated && status != http.StatusOK && status != http.StatusAccepted {
		return &HTTPError{Endpoint: EndpointReportAbuse, Status: status}
	}
	return nil
}

// PartnerDomains lists the configured partners' domains (a search without a domain asks each).
func (c *Client) PartnerDomains() []event.Domain { return c.cfg.Partners.Domains() }
