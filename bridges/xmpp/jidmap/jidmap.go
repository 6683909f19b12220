// Package jidmap converts between the JIDs the XMPP adapter shows and the MIMI URIs they stand
// for: local users, puppets of partner users on the users component, rooms on the rooms
// component, and the nicknames of MIMI members in MUCs. An identity that cannot be escaped
// (XEP-0106) into a localpart that round-trips gets an opaque localpart, kept in the adapter's
// xmpp_opaque table (Opaque).
package jidmap

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/jidescape"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// ErrUnknownJID is returned for a JID that maps to no MIMI user or room.
var ErrUnknownJID = errors.New("xmpp: JID maps to no MIMI identity")

// opaquePrefix starts the localparts of identities that cannot be escaped into a JID that
// round-trips (upper case, which PRECIS folds; characters PRECIS refuses; over-long IDs). Escaped
// localparts of puppets always contain \40 and so never look like one.
const opaquePrefix = "x-"

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

func opaqueLocal(uri string) string {
	sum := sha256.Sum256([]byte(uri))
	return opaquePrefix + strings.ToLower(b32.EncodeToString(sum[:]))[:20]
}

// IsOpaque reports whether local has the form of an opaque localpart.
func IsOpaque(local string) bool {
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

// Mapper converts between JIDs and MIMI URIs:
//
//	alice@Domain                   <-> mimi://Provider/u/alice
//	<xep0106(id@P)>@Users.Domain   <-> mimi://P/u/id            (puppets of partner users)
//	<xep0106(id)>@Rooms.Domain     <-> mimi://Provider/r/id     (rooms hosted by this gateway)
//	<xep0106(id@H)>@Rooms.Domain   <-> mimi://H/r/id            (rooms hosted by hub H)
//
// Identities that cannot be escaped into a round-tripping localpart get an opaque localpart
// recorded in Opaque.
type Mapper struct {
	Domain   string // the organisation's XMPP server: local users
	Provider event.Domain
	Users    string // the users component
	Rooms    string // the rooms component
	Opaque   Opaque
}

// IsLocal reports whether j is a user of the organisation's XMPP server.
func (m *Mapper) IsLocal(j jid.JID) bool {
	return j.Localpart() != "" && j.Domainpart() == m.Domain
}

// LocalUserURI maps a local user's JID to its MIMI URI.
func (m *Mapper) LocalUserURI(j jid.JID) (event.UserURI, error) {
	if !m.IsLocal(j) {
		return "", fmt.Errorf("%w: %s is not a user of %s", ErrUnknownJID, j.Bare(), m.Domain)
	}
	return event.NewUserURI(m.Provider, j.Localpart()), nil
}

// UserURI maps any user JID the adapter knows (a local user or a puppet) to its MIMI URI.
func (m *Mapper) UserURI(ctx context.Context, j jid.JID) (event.UserURI, error) {
	switch j.Domainpart() {
	case m.Domain:
		return m.LocalUserURI(j)
	case m.Users:
		return m.PuppetURI(ctx, j)
	}
	return "", fmt.Errorf("%w: %s", ErrUnknownJID, j.Bare())
}

// PuppetURI maps a puppet JID on the users component to the MIMI user it stands for.
func (m *Mapper) PuppetURI(ctx context.Context, j jid.JID) (event.UserURI, error) {
	local := j.Localpart()
	if j.Domainpart() != m.Users || local == "" {
		return "", fmt.Errorf("%w: %s is not a puppet", ErrUnknownJID, j.Bare())
	}
	if IsOpaque(local) {
		uri, err := m.Opaque.URI(ctx, local)
		if err != nil {
			return "", err
		}
		return event.ParseUserURI(uri)
	}
	id, provider, ok := splitLast(jidescape.Unescape(local))
	if !ok || event.Domain(provider) == m.Provider {
		return "", fmt.Errorf("%w: %s", ErrUnknownJID, j.Bare())
	}
	u := event.NewUserURI(event.Domain(provider), id)
	if _, err := event.ParseUserURI(string(u)); err != nil {
		return "", fmt.Errorf("%w: %s: %w", ErrUnknownJID, j.Bare(), err)
	}
	// Only the canonical escaping of a URI names its puppet, so one MIMI user has one JID.
	if want, err := m.escapedLocal(string(id) + "@" + provider); err != nil || want != local {
		return "", fmt.Errorf("%w: %s is not the canonical puppet of %s", ErrUnknownJID, j.Bare(), u)
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
func (m *Mapper) escapedLocal(s string) (string, error) {
	e, err := jidescape.Escape(s)
	if err != nil {
		return "", err
	}
	if !roundTrips(e, m.Users) {
		return "", fmt.Errorf("%w: %q does not survive PRECIS", jidescape.ErrEscape, s)
	}
	return e, nil
}

// UserJID maps a MIMI user to its bare JID: a local user's own JID, or a puppet.
func (m *Mapper) UserJID(ctx context.Context, u event.UserURI) (jid.JID, error) {
	if _, err := event.ParseUserURI(string(u)); err != nil {
		return jid.JID{}, err
	}
	// The canonical percent-encoding, which can be longer than the URI it came from: check again.
	u = event.NewUserURI(u.Domain(), u.Local())
	if _, err := event.ParseUserURI(string(u)); err != nil {
		return jid.JID{}, err
	}
	if u.Domain() == m.Provider {
		j, err := jid.New(u.Local(), m.Domain, "")
		if err != nil || j.Localpart() != u.Local() {
			return jid.JID{}, fmt.Errorf("%w: %s has no XMPP account form", ErrUnknownJID, u)
		}
		return j, nil
	}
	local, err := m.escapedLocal(u.Local() + "@" + string(u.Domain()))
	if err != nil {
		if local, err = m.Opaque.Put(ctx, opaqueLocal(string(u)), string(u)); err != nil {
			return jid.JID{}, err
		}
	}
	return jid.New(local, m.Users, "")
}

// RoomLocal returns the MUC localpart for a room URI (before any database lookup).
func (m *Mapper) RoomLocal(ctx context.Context, r event.RoomURI) (string, error) {
	if _, err := event.ParseRoomURI(string(r)); err != nil {
		return "", err
	}
	r = event.NewRoomURI(r.Domain(), r.Local()) // canonical percent-encoding; may be longer
	if _, err := event.ParseRoomURI(string(r)); err != nil {
		return "", err
	}
	s := r.Local()
	if r.Domain() != m.Provider {
		s += "@" + string(r.Domain())
	}
	e, err := jidescape.Escape(s)
	if err == nil && roundTrips(e, m.Rooms) && !IsOpaque(e) {
		return e, nil
	}
	return m.Opaque.Put(ctx, opaqueLocal(string(r)), string(r))
}

// NewRoomURI is the URI of a room a local user creates by joining local@rooms.
func (m *Mapper) NewRoomURI(local string) (event.RoomURI, error) {
	id := jidescape.Unescape(local)
	if strings.ContainsRune(id, '@') || IsOpaque(local) {
		return "", fmt.Errorf("%w: %q cannot name a new room", ErrUnknownJID, local)
	}
	r := event.NewRoomURI(m.Provider, id)
	if _, err := event.ParseRoomURI(string(r)); err != nil {
		return "", err
	}
	return r, nil
}

// RoomJID returns the MUC bare JID of the room with the MUC localpart local.
func (m *Mapper) RoomJID(local string) (jid.JID, error) {
	return jid.New(local, m.Rooms, "")
}

// NickFor returns the nickname a MIMI member shows in MUCs: the user part, followed by the
// provider for users of partner providers, so that nicks are unique by construction.
//
// A nick that is not a valid resourcepart (control characters, over-long, changed by PRECIS)
// becomes "mimi-" and a hash of the URI: the XMPP server would refuse stanzas from an invalid
// occupant JID.
func (m *Mapper) NickFor(u event.UserURI) string {
	n := u.Local()
	if u.Domain() != m.Provider {
		n += "@" + string(u.Domain())
	}
	if j, err := jid.New("room", m.Rooms, n); err == nil && j.Resourcepart() == n && n != "" {
		return n
	}
	sum := sha256.Sum256([]byte(u))
	return "mimi-" + strings.ToLower(b32.EncodeToString(sum[:]))[:12]
}

// Opaque is the adapter's xmpp_opaque table: the opaque localparts of URIs that cannot be
// escaped into a JID.
type Opaque struct {
	S   *store.Store
	Now func() time.Time
}

// Put records an opaque localpart for a URI that cannot be escaped into a JID; it returns the
// localpart already stored for the URI, if any.
func (o Opaque) Put(ctx context.Context, local, uri string) (string, error) {
	if _, err := o.S.ExecContext(ctx, `INSERT INTO xmpp_opaque (local, uri, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
		local, uri, o.Now().UnixMilli()); err != nil {
		return "", fmt.Errorf("xmpp: store opaque localpart: %w", err)
	}
	var got string
	if err := o.S.QueryRowContext(ctx, `SELECT local FROM xmpp_opaque WHERE uri = ?`, uri).Scan(&got); err != nil {
		return "", fmt.Errorf("xmpp: read opaque localpart: %w", err)
	}
	return got, nil
}

// URI returns the URI an opaque localpart stands for (ErrUnknownJID when none).
func (o Opaque) URI(ctx context.Context, local string) (string, error) {
	var uri string
	err := o.S.QueryRowContext(ctx, `SELECT uri FROM xmpp_opaque WHERE local = ?`, local).Scan(&uri)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrUnknownJID
	}
	if err != nil {
		return "", fmt.Errorf("xmpp: read opaque localpart: %w", err)
	}
	return uri, nil
}
