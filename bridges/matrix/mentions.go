package matrix

import (
	"strings"

	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// toMIMILink rewrites a Matrix user permalink (https://matrix.to/#/@u:hs or matrix:u/u:hs) into
// the user's MIMI URI, so that a Matrix pill becomes a MIMI mention (content-08 §5.4). Other
// links stay as they are.
func (a *Adapter) toMIMILink(href string) string {
	if !strings.HasPrefix(href, "https://matrix.to/") && !strings.HasPrefix(href, "matrix:") {
		return href
	}
	u, err := id.ParseMatrixURIOrMatrixToURL(href)
	if err != nil || u.Sigil1 != '@' {
		return href
	}
	uri, err := a.userURI(u.UserID())
	if err != nil {
		return href
	}
	return string(uri)
}

// matrixUserOfLink returns the Matrix account (a local user or a ghost) of a MIMI user URI in
// a link, which Matrix clients show as a pill (mxcontent.FromMIMI).
func (a *Adapter) matrixUserOfLink(href string) (id.UserID, bool) {
	if !strings.HasPrefix(href, "mimi://") {
		return "", false
	}
	uri, err := event.ParseUserURI(href)
	if err != nil {
		return "", false
	}
	return a.matrixUser(uri), true
}
