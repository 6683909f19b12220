package protocol

import (
	"crypto/x509"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/mimi-gateway/mimi-gateway/core/mls"
)

// This file keeps every reading we chose for a broken or open part of
// draft-ietf-mimi-protocol-06 in one place, so the next draft is a small change here. Each is
// listed with its draft section and reason in docs/interop.md ("protocol-06 readings").

// MediaType is the Content-Type of every request and response body except /notify's empty
// answer and the JSON directory (reading R1: the draft names no media type, §4/§5).
const MediaType = "application/mimi-protocol+tls"

// DirectoryPath is the well-known path of the endpoint directory (§5.1).
const DirectoryPath = "/.well-known/mimi-protocol-directory"

// APIPrefix is the path prefix of our endpoints; the draft's example directory uses /v1/ (§5.1).
const APIPrefix = "/v1/"

// FromLocalPart is the fixed local part of the From header (§4.1): From: mimi@<domain>.
const FromLocalPart = "mimi"

// Endpoint names one MIMI endpoint; the values are the directory keys (§5.1).
type Endpoint string

// The endpoints this package routes.
const (
	EndpointKeyMaterial     Endpoint = "keyMaterial"
	EndpointUpdate          Endpoint = "update"
	EndpointNotify          Endpoint = "notify"
	EndpointSubmitMessage   Endpoint = "submitMessage"
	EndpointGroupInfo       Endpoint = "groupInfo"
	EndpointProxyDownload   Endpoint = "proxyDownload"
	EndpointRequestConsent  Endpoint = "requestConsent"
	EndpointUpdateConsent   Endpoint = "updateConsent"
	EndpointIdentifierQuery Endpoint = "identifierQuery"
	EndpointReportAbuse     Endpoint = "reportAbuse"
)

// directoryVariables maps each endpoint we publish to its template variable. Reading R2: the
// draft's `update` template lacks the "/" before {roomId} (§5.1); we always put one.
var directoryVariables = []struct {
	e        Endpoint
	variable string
}{
	{EndpointKeyMaterial, "targetUser"},
	{EndpointUpdate, "roomId"},
	{EndpointNotify, "roomId"},
	{EndpointSubmitMessage, "roomId"},
	{EndpointGroupInfo, "roomId"},
	{EndpointProxyDownload, "downloadUrl"},
	{EndpointRequestConsent, "targetUser"},
	{EndpointUpdateConsent, "requesterUser"},
	{EndpointIdentifierQuery, "domain"},
	{EndpointReportAbuse, "roomId"},
}

// EncodePathID turns an identifier URI into the path variable of an endpoint URL. Reading R3
// (§5.1 says "with any needed percent-encoding", the flows write a.example/r/clubhouse): the
// whole URI, scheme included, percent-encoded as one path segment, so "/" inside it never splits
// the path and the receiver gets back exactly the URI the sender meant.
func EncodePathID(id IdentifierURI) string { return url.PathEscape(string(id)) }

// DecodePathID reverses EncodePathID. It also accepts the draft flows' scheme-less form
// ("a.example/r/clubhouse", possibly not escaped) and restores "mimi://" (reading R3).
func DecodePathID(escaped string) (IdentifierURI, error) {
	s, err := url.PathUnescape(escaped)
	if err != nil {
		return "", fmt.Errorf("protocol: path identifier %q: %w", escaped, err)
	}
	if s == "" {
		return "", fmt.Errorf("protocol: empty path identifier")
	}
	if !strings.Contains(s, "://") {
		s = "mimi://" + s
	}
	if len(s) > MaxURILength {
		return "", fmt.Errorf("protocol: path identifier of %d bytes (limit %d)", len(s), MaxURILength)
	}
	return IdentifierURI(s), nil
}

// NotifyAccepted reports whether a /notify answer counts as accepted. Reading R4: the draft says
// "201 Accepted" (§5.5); 201 is Created and 202 Accepted. We send 201 and accept 200, 201 and
// 202 from peers.
func NotifyAccepted(status int) bool {
	return status == http.StatusOK || status == http.StatusCreated || status == http.StatusAccepted
}

// handshakeContentType returns the content type a HandshakeBundle or FanoutMessage selects on.
// Reading R5: the draft allows PublicMessage or SemiPrivateMessage (§5.3); SemiPrivateMessage has
// no wire format yet, so we accept PublicMessage and PrivateMessage, whose content_type is in
// the clear, and refuse any other wire format.
func handshakeContentType(m *mls.MLSMessage) (mls.ContentType, error) {
	switch {
	case m == nil:
		return 0, fmt.Errorf("%w: no message", ErrMalformed)
	case m.WireFormat == mls.WireFormatPublicMessage && m.PublicMessage != nil:
		return m.PublicMessage.Content.ContentType, nil
	case m.WireFormat == mls.WireFormatPrivateMessage && m.PrivateMessage != nil:
		return m.PrivateMessage.ContentType, nil
	default:
		return 0, fmt.Errorf("%w: handshake carried as %s", ErrMalformed, m.WireFormat)
	}
}

// FanoutKind is what a FanoutMessage carries, which decides its trailing fields.
type FanoutKind uint8

// Fanout kinds.
const (
	FanoutApplication FanoutKind = iota + 1 // PrivateMessage, content_type application: optional<Frank>
	FanoutWelcome                           // Welcome: RatchetTreeOption
	FanoutProposal                          // proposal: MLSMessage moreProposals<V>
	FanoutCommit                            // commit: MLSMessage externalProposals<V>
)

// String names the kind.
func (k FanoutKind) String() string {
	switch k {
	case FanoutApplication:
		return "application"
	case FanoutWelcome:
		return "welcome"
	case FanoutProposal:
		return "proposal"
	case FanoutCommit:
		return "commit"
	}
	return fmt.Sprintf("FanoutKind(%d)", uint8(k))
}

// fanoutKind classifies the message of a FanoutMessage. Reading R6 (§5.5): the draft selects on
// a `protocol` the struct does not contain (we take the room's protocol, mls10, implied; there is
// no field on the wire) and on message.wire_format with content-type cases; we select on the
// wire format (mls_welcome) and, for Public/PrivateMessage, on the content_type.
func fanoutKind(m *mls.MLSMessage) (FanoutKind, error) {
	if m != nil && m.WireFormat == mls.WireFormatWelcome && m.Welcome != nil {
		return FanoutWelcome, nil
	}
	ct, err := handshakeContentType(m)
	if err != nil {
		return 0, err
	}
	switch ct {
	case mls.ContentTypeApplication:
		return FanoutApplication, nil
	case mls.ContentTypeProposal:
		return FanoutProposal, nil
	case mls.ContentTypeCommit:
		return FanoutCommit, nil
	}
	return 0, fmt.Errorf("%w: content type %d", ErrMalformed, ct)
}

// keyMaterialSignatureSuite is the cipher suite whose signature scheme signs and verifies a
// KeyMaterialRequest. Reading R7: the draft does not say (§5.2); the requester's first acceptable
// cipher suite is the natural choice (the request has no other suite).
func keyMaterialSignatureSuite(r *KeyMaterialRequest) (mls.CipherSuite, error) {
	if len(r.AcceptableCipherSuites) == 0 {
		return 0, fmt.Errorf("%w: no acceptable cipher suite", ErrMalformed)
	}
	return r.AcceptableCipherSuites[0], nil
}

// groupInfoTBSJoiningCodeOptional: reading R8 (§5.6). The request carries `opaque joiningCode<V>`
// but the TBS writes `optional opaque joiningCode<V>`. We follow both texts literally: the
// request always has the vector (empty when there is no code), the TBS has optional<> with
// present = a non-empty code.
const groupInfoTBSJoiningCodeOptional = true

// groupInfoEncryptionLabel is the EncryptWithLabel label of GroupInfoRatchetTreeTBE (§5.6).
const groupInfoEncryptionLabel = "GroupInfo and ratchet_tree encryption"

// Signature labels (§5.2, §5.6); "MLS 1.0 " is prepended by SignWithLabel.
const (
	labelKeyMaterialRequest = "KeyMaterialRequestTBS"
	labelGroupInfoRequest   = "GroupInfoRequestTBS"
	labelGroupInfoResponse  = "GroupInfoResponseTBS"
)

// clientCertificateKeyUsages are the extended key usages a partner's client certificate may have
// (any of them). Reading R24: WebPKI server certificates are used as client certificates (§4.1),
// and WebPKI CAs are dropping clientAuth from them, so serverAuth is accepted too.
var clientCertificateKeyUsages = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}
