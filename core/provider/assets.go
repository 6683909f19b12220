package provider

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/mimi-gateway/mimi-gateway/core/assets"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
)

// AssetSource is where the provider finds attachment ciphertext: core/assets.Store.
type AssetSource interface {
	// OpenCiphertext returns our stored asset id and its size (assets.ErrNotFound when unknown
	// or expired).
	OpenCiphertext(ctx context.Context, id string) (io.ReadCloser, int64, error)
	// OpenCiphertextURL returns the ciphertext at an asset URL: ours, or a partner's fetched
	// directly; any other host is assets.ErrNotAllowed.
	OpenCiphertextURL(ctx context.Context, rawURL string) (io.ReadCloser, int64, error)
}

var (
	_ AssetSource                   = (*assets.Store)(nil)
	_ protocol.AssetHandler         = (*Provider)(nil)
	_ protocol.ProxyDownloadHandler = (*Provider)(nil)
)

// OpenAsset implements protocol.AssetHandler: a partner downloads an attachment one of our users
// sent (ciphertext only; the key is in the MLS-encrypted message).
func (p *Provider) OpenAsset(ctx context.Context, _ protocol.Peer, id string) (io.ReadCloser, int64, error) {
	if p.cfg.Assets == nil {
		return nil, 0, &protocol.StatusError{Status: http.StatusNotFound, Detail: "this provider stores no assets"}
	}
	rc, n, err := p.cfg.Assets.OpenCiphertext(ctx, id)
	if err != nil {
		return nil, 0, assetStatus(err)
	}
	return rc, n, nil
}

// ProxyDownload implements protocol.ProxyDownloadHandler (§5.10): as hub we fetch an asset for a
// partner whose users are in one of our rooms. Only our own assets and those of configured
// partners (the URL host is their asset domain) are served, so the hub is no open proxy: other
// hosts are answered 403, without any connection attempt. The ciphertext is streamed with the
// owner's Content-Length when it sent one, within the store's size limit.
func (p *Provider) ProxyDownload(ctx context.Context, peer protocol.Peer, download string, w http.ResponseWriter) error {
	if p.cfg.Assets == nil {
		return &protocol.StatusError{Status: http.StatusNotFound, Detail: "this provider proxies no assets"}
	}
	rc, n, err := p.cfg.Assets.OpenCiphertextURL(ctx, download)
	if err != nil {
		p.log.Info("proxyDownload refused or failed", "peer", peer.Domain, "err", err)
		return assetStatus(err)
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if n >= 0 {
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
	}
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, rc); err != nil {
		// The status is sent; the receiver's hash check catches a truncated body.
		p.log.Warn("proxyDownload interrupted", "peer", peer.Domain, "err", err)
	}
	return nil
}

// assetStatus maps asset errors onto HTTP answers.
func assetStatus(err error) error {
	var he *protocol.HTTPError
	switch {
	case errors.Is(err, protocol.ErrAssetURL):
		return &protocol.StatusError{Status: http.StatusBadRequest, Detail: "not an asset URL https://<host>/assets/<id>", Err: err}
	case errors.Is(err, assets.ErrNotAllowed):
		return &protocol.StatusError{Status: http.StatusForbidden, Detail: "the asset host is not an asset domain of a partner of this hub", Err: err}
	case errors.Is(err, assets.ErrNotFound):
		return &protocol.StatusError{Status: http.StatusNotFound, Detail: "no such asset (unknown or expired)", Err: err}
	case errors.As(err, &he) && (he.Status == http.StatusNotFound || he.Status == http.StatusGone):
		return &protocol.StatusError{Status: http.StatusNotFound, Detail: "the asset's provider does not have it (unknown or expired)", Err: err}
	case errors.Is(err, protocol.ErrAssetTooLarge):
		return &protocol.StatusError{Status: http.StatusBadGateway, Detail: "the asset exceeds the size limit", Err: err}
	case errors.As(err, &he):
		return &protocol.StatusError{Status: http.StatusBadGateway, Detail: "the asset's provider answered " + strconv.Itoa(he.Status), Err: err}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	return &protocol.StatusError{Status: http.StatusBadGateway, Detail: "the asset's provider could not be reached", Err: err}
}
