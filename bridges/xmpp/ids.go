package xmpp

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"

	"mellium.im/xmpp/jid"

	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/jidescape"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// errUnknownJID is returned for a JID that maps to no MIMI user or room.
var errUnknownJID = errors.New("xmpp: JID maps to no MIMI identity")

// opaquePrefix starts the localparts of identities that cannot be escaped into a JID that
// round-trips (upper case, which PRECIS folds; characters PRECIS refuses; over-long IDs). Escaped
// localparts of puppets always contain \40 and so never look like one.
const opaquePrefix = "x-"

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

func opaqueLocal(uri string) string {
	sum := sha256.Sum256([]byte(uri))
	return opaquePrefix + strings.ToLower(b32.EncodeToString(sum[:]))[:20]
}

func isOpaque(local string) bool {
	if len(local) != len(opaquePrefix)+20 || !strings.HasPrefix(local, opaquePrefix) {
		return false
	}
	for _, c := range local[len(opaquePrefix):] {
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

// roundTrips reports whether local is a valid localpart that PRECIS leaves unchanged.
func roundTrips(local, domain string) bool {
	j, err := jid.New(local, domain, "")
	return err == nil && j.Localpart() == local
}

// mapper converts between JIDs and MIMI URIs:
//
//	alice@Domain                   <-> mimi://Provider/u/alice
//	<xep0106(id@P)>@Users.Domain   <-> mimi://P/u/id            (puppets of partner users)
//	<xep0106(id)>@Rooms.Domain     <-> mimi://Provider/r/id     (rooms hosted by this gateway)
//	<xep0106(id@H)>@Rooms.Domain   <-> mimi://H/r/id            (rooms hosted by hub H)
//
// Identities that cannot be escaped into a round-tripping localpart get an opaque localpart
// recorded in the database.
type mapper struct {
	domain   string // local users
	provider event.Domain
	users    string // users component
	rooms    string // rooms component
	db       *db
}

// isLocal reports whether j is a user of the organisation's XMPP server.
func (m *mapper) isLocal(j jid.JID) bool {
	return j.Localpart() != "" && j.Domainpart() == m.domain
}

// localUserURI maps a local user's JID to its MIMI URI.
func (m *mapper) localUserURI(j jid.JID) (event.UserURI, error) {
	if !m.isLocal(j) {
		return "", fmt.Errorf("%w: %s is not a user of %s", errUnknownJID, j.Bare(), m.domain)
	}
	return event.NewUserURI(m.provider, j.Localpart()), nil
}

// userURI maps any user JID the adapter knows (a local user or a puppet) to its MIMI URI.
func (m *mapper) userURI(ctx context.Context, j jid.JID) (event.UserURI, error) {
	switch j.Domainpart() {
	case m.domain:
		return m.localUserURI(j)
	case m.users:
		return m.puppetURI(ctx, j)
	}
	return "", fmt.Errorf("%w: %s", errUnknownJID, j.Bare())
}

// puppetURI maps a puppet JID on the users component to the MIMI user it stands for.
func (m *mapper) puppetURI(ctx context.Context, j jid.JID) (event.UserURI, error) {
	local := j.Localpart()
	if j.Domainpart() != m.users || local == "" {
		return "", fmt.Errorf("%w: %s is not a puppet", errUnknownJID, j.Bare())
	}
	if isOpaque(local) {
		uri, err := m.db.opaqueURI(ctx, local)
		if err != nil {
			return "", err
		}
		return event.ParseUserURI(uri)
	}
	id, provider, ok := splitLast(jidescape.Unescape(local))
	if !ok || event.Domain(provider) == m.provider {
		return "", fmt.Errorf("%w: %s", errUnknownJID, j.Bare())
	}
	u := event.NewUserURI(event.Domain(provider), id)
	if _, err := event.ParseUserURI(string(u)); err != nil {
		return "", fmt.Errorf("%w: %s: %w", errUnknownJID, j.Bare(), err)
	}
	// Only the canonical escaping of a URI names its puppet, so one MIMI user has one JID.
	if want, err := m.escapedLocal(string(id) + "@" + provider); err != nil || want != local {
		return "", fmt.Errorf("%w: %s is not the canonical puppet of %s", errUnknownJID, j.Bare(), u)
	}
	return u, nil
}

// splitLast splits s at its last '@'.
func splitLast(s string) (string, string, bool) {
	i := strings.LastIndexByte(s, '@')
	if i <= 0 || i == len(s)-1 {
		return "", "", false
	}
	return s[:i], s[i+1:], true
}

// escapedLocal escapes s for the users component and checks that it round-trips.
func (m *mapper) escapedLocal(s string) (string, error) {
	e, err := jidescape.Escape(s)
	if err != nil {
		return "", err
	}
	if !roundTrips(e, m.users) {
		return "", fmt.Errorf("%w: %q does not survive PRECIS", jidescape.ErrEscape, s)
	}
	return e, nil
}

// userJID maps a MIMI user to its bare JID: a local user's own JID, or a puppet.
func (m *mapper) userJID(ctx context.Context, u event.UserURI) (jid.JID, error) {
	if _, err := event.ParseUserURI(string(u)); err != nil {
		return jid.JID{}, err
	}
	// The canonical percent-encoding, which can be longer than the URI it came from: check again.
	u = event.NewUserURI(u.Domain(), u.Local())
	if _, err := event.ParseUserURI(string(u)); err != nil {
		return jid.JID{}, err
	}
	if u.Domain() == m.provider {
		j, err := jid.New(u.Local(), m.domain, "")
		if err != nil || j.Localpart() != u.Local() {
			return jid.JID{}, fmt.Errorf("%w: %s has no XMPP account form", errUnknownJID, u)
		}
		return j, nil
	}
	local, err := m.escapedLocal(u.Local() + "@" + string(u.Domain()))
	if err != nil {
		if local, err = m.db.putOpaque(ctx, opaqueLocal(string(u)), string(u)); err != nil {
			return jid.JID{}, err
		}
	}
	return jid.New(local, m.users, "")
}

// roomLocal returns the MUC localpart for a room URI (before any database lookup).
func (m *mapper) roomLocal(ctx context.Context, r event.RoomURI) (string, error) {
	if _, err := event.ParseRoomURI(string(r)); err != nil {
		return "", err
	}
	r = event.NewRoomURI(r.Domain(), r.Local()) // canonical percent-encoding; may be longer
	if _, err := event.ParseRoomURI(string(r)); err != nil {
		return "", err
	}
	s := r.Local()
	if r.Domain() != m.provider {
		s += "@" + string(r.Domain())
	}
	e, err := jidescape.Escape(s)
	if err == nil && roundTrips(e, m.rooms) && !isOpaque(e) {
		return e, nil
	}
	return m.db.putOpaque(ctx, opaqueLocal(string(r)), string(r))
}

// newRoomURI is the URI of a room a local user creates by joining local@rooms.
func (m *mapper) newRoomURI(local string) (event.RoomURI, error) {
	id := jidescape.Unescape(local)
	if strings.ContainsRune(id, '@') || isOpaque(local) {
		return "", fmt.Errorf("%w: %q cannot name a new room", errUnknownJID, local)
	}
	r := event.NewRoomURI(m.provider, id)
	if _, err := event.ParseRoomURI(string(r)); err != nil {
		return "", err
	}
	return r, nil
}

// roomJID returns the MUC bare JID of a room.
func (m *mapper) roomJID(r room) (jid.JID, error) {
	return jid.New(r.MUCLocal, m.rooms, "")
}

// nickFor returns the nickname a MIMI member shows in MUCs: the user part, followed by the
// provider for users of partner providers, so that nicks are unique by construction.
//
// A nick that is not a valid resourcepart (control characters, over-long, changed by PRECIS)
// becomes "mimi-" and a hash of the URI: the XMPP server would refuse stanzas from an invalid
// occupant JID.
func (m *mapper) nickFor(u event.UserURI) string {
	n := u.Local()
	if u.Domain() != m.provider {
		n += "@" + string(u.Domain())
	}
	if j, err := jid.New("room", m.rooms, n); err == nil && j.Resourcepart() == n && n != "" {
		return n
	}
	sum := sha256.Sum256([]byte(u))
	return "mimi-" + strings.ToLower(b32.EncodeToString(sum[:]))[:12]
}
