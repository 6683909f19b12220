// Package directory answers partners' identifier queries (draft-ietf-mimi-protocol §5.8) about
// the organisation's users from what its admin publishes: a list of entries (a user with her
// name, nick, e-mail address, phone number) and the fields that may be searched and shown. A
// field the admin does not publish is neither searchable nor ever returned; a user who reaches
// nobody outside the organisation is never found.
//
//	d, err := directory.New(directory.Config{Domain: "amt-b.example", Publish: []directory.Field{directory.Handle, directory.Email}, Entries: entries})
//	resp, err := d.Query(ctx, req, hidden) // hidden(u) true: answered as if u did not exist
//
// The answers, for the query as a whole:
//
//   - success: exactly one user matches every element; her URI and her published fields.
//   - notFound: nobody matches (also a user who may not be found).
//   - ambiguous: several users match; no URI is named, so a broad query lists nobody.
//   - unsupportedField: an element of a type this provider does not publish (or know).
//   - forbidden: a query that would enumerate users: no element, more than MaxElements,
//     an empty or wildcard-like value ("*", "%", "?"), a name part shorter than MinNameLength.
package directory

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
)

// Field is a searchable and showable field of an entry, named as the draft's search types.
type Field string

// Fields.
const (
	// Handle is the user's address: mimi://d/u/x, im:x@d, xmpp:x@d or x@d.
	Handle Field = "handle"
	// Nick is a short name.
	Nick Field = "nick"
	// Email is an e-mail address.
	Email Field = "email"
	// Phone is a phone number in international format (+4930...).
	Phone Field = "phone"
	// PartialName is the display name, searched by parts.
	PartialName Field = "partialName"
)

// Fields lists the fields a directory can publish.
var Fields = []Field{Handle, Nick, Email, Phone, PartialName}

// Valid reports whether f is one of Fields.
func (f Field) Valid() bool { return slices.Contains(Fields, f) }

// searchType is the draft's search type of f.
func (f Field) searchType() protocol.SearchIdentifierType {
	t, _ := protocol.ParseSearchType(string(f))
	return t
}

// vcard is the vCard property (RFC 6350) a published field is shown as.
var vcard = map[Field]string{Handle: "impp", Nick: "nickname", Email: "email", Phone: "tel", PartialName: "fn"}

// Limits of a query.
const (
	// MaxElements is the most elements a query may have.
	MaxElements = 8
	// MinNameLength is the fewest letters a partialName element (and each of its words) must have.
	MinNameLength = 3
)

// Entry is one published user.
type Entry struct {
	// User is the user's local part (bob) or MIMI URI (mimi://amt-b.example/u/bob).
	User  string `yaml:"user"`
	Name  string `yaml:"name"`
	Nick  string `yaml:"nick"`
	Email string `yaml:"email"`
	Phone string `yaml:"phone"`
}

// Config is a directory's content.
type Config struct {
	// Domain is the organisation's MIMI domain; every entry's user is of it.
	Domain event.Domain
	// Publish lists the fields partners may search and see. Empty: nothing is published and
	// every query is answered unsupportedField.
	Publish []Field
	// Entries are the published users.
	Entries []Entry
}

// ErrConfig is wrapped by New's errors.
var ErrConfig = errors.New("directory: invalid configuration")

type entry struct {
	user  event.UserURI
	name  string
	words []string // the name's words, case-folded
	nick  string
	email string
	phone string
}

// Directory answers identifier queries.
type Directory struct {
	domain  event.Domain
	publish map[Field]bool
	entries []entry
	byUser  map[event.UserURI]int
}

// New checks cfg and returns its Directory.
func New(cfg Config) (*Directory, error) {
	d := &Directory{domain: cfg.Domain, publish: map[Field]bool{}, byUser: map[event.UserURI]int{}}
	for _, f := range cfg.Publish {
		if !f.Valid() {
			return nil, fmt.Errorf("%w: unknown field %q (known: handle, nick, email, phone, partialName)", ErrConfig, f)
		}
		d.publish[f] = true
	}
	for i, e := range cfg.Entries {
		u := event.UserURI(e.User)
		if !strings.HasPrefix(e.User, "mimi://") {
			u = event.NewUserURI(cfg.Domain, e.User)
		}
		if _, err := event.ParseUserURI(string(u)); err != nil || u.Domain() != cfg.Domain {
			return nil, fmt.Errorf("%w: entry %d: user %q is not a user of %s", ErrConfig, i+1, e.User, cfg.Domain)
		}
		if _, dup := d.byUser[u]; dup {
			return nil, fmt.Errorf("%w: entry %d: %s is listed twice", ErrConfig, i+1, u)
		}
		phone := normPhone(e.Phone)
		if e.Phone != "" && phone == "" {
			return nil, fmt.Errorf("%w: entry %d: phone %q is not in international format (+4930...)", ErrConfig, i+1, e.Phone)
		}
		d.byUser[u] = len(d.entries)
		d.entries = append(d.entries, entry{user: u, name: strings.TrimSpace(e.Name), words: nameWords(e.Name),
			nick: fold(e.Nick), email: fold(e.Email), phone: phone})
	}
	return d, nil
}

// Publishes reports whether f is published.
func (d *Directory) Publishes(f Field) bool { return d.publish[f] }

// Hidden reports whether u may not be found (she reaches nobody outside, say) or is not known
// at all; Exists is asked about handles of users without an entry.
type Hidden func(ctx context.Context, u event.UserURI) (bool, error)

// Query answers req. hidden(u) true makes u count as if she did not exist; an error of hidden
// is returned (the caller answers 5xx and the partner asks again).
func (d *Directory) Query(ctx context.Context, req *protocol.IdentifierRequest, hidden Hidden) (*protocol.IdentifierResponse, error) {
	code := d.check(req)
	if code != protocol.IdentifierSuccess {
		return &protocol.IdentifierResponse{Code: code}, nil
	}
	var found []event.UserURI
	for _, u := range d.candidates(req) {
		h, err := hidden(ctx, u)
		if err != nil {
			return nil, fmt.Errorf("directory: %w", err)
		}
		if !h {
			found = append(found, u)
		}
	}
	switch len(found) {
	case 0:
		return &protocol.IdentifierResponse{Code: protocol.IdentifierNotFound}, nil
	case 1:
		return &protocol.IdentifierResponse{Code: protocol.IdentifierSuccess, URIs: []protocol.IdentifierURI{protocol.IdentifierURI(found[0])},
			Profiles: []protocol.UserProfile{d.profile(found[0])}}, nil
	}
	return &protocol.IdentifierResponse{Code: protocol.IdentifierAmbiguous}, nil
}

// check returns the code of a query that is not searched at all, or success.
func (d *Directory) check(req *protocol.IdentifierRequest) protocol.IdentifierQueryCode {
	if len(req.Elements) == 0 || len(req.Elements) > MaxElements {
		return protocol.IdentifierForbidden
	}
	unsupported := false
	for _, e := range req.Elements {
		f := Field(e.Type.String())
		if !f.Valid() || !d.publish[f] {
			unsupported = true
			continue
		}
		if wildcardLike(e.Value) {
			return protocol.IdentifierForbidden
		}
		if f == PartialName {
			ws := nameWords(e.Value)
			if len(ws) == 0 {
				return protocol.IdentifierForbidden
			}
			for _, w := range ws {
				if utf8.RuneCountInString(w) < MinNameLength {
					return protocol.IdentifierForbidden
				}
			}
		}
	}
	if unsupported {
		return protocol.IdentifierUnsupportedField
	}
	return protocol.IdentifierSuccess
}

// wildcardLike reports whether v is empty, only punctuation and spaces, or holds a character
// that other directories read as a wildcard.
func wildcardLike(v string) bool {
	if strings.ContainsAny(v, "*%?") || !utf8.ValidString(v) {
		return true
	}
	return !strings.ContainsFunc(v, func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) })
}

// candidates returns the users that match every element (the check passed).
func (d *Directory) candidates(req *protocol.IdentifierRequest) []event.UserURI {
	var out []event.UserURI
	var handleOnly event.UserURI
	for i := range d.entries {
		if d.matchesAll(&d.entries[i], req) {
			out = append(out, d.entries[i].user)
		}
	}
	// A handle names one user whether or not she has an entry: her address is no secret once
	// handles are published. Only a query of handles alone finds a user without an entry.
	if len(out) == 0 {
		for _, e := range req.Elements {
			if Field(e.Type.String()) != Handle {
				return nil
			}
			u, ok := d.handleUser(e.Value)
			if !ok || (handleOnly != "" && handleOnly != u) {
				return nil
			}
			handleOnly = u
		}
		if handleOnly != "" {
			out = append(out, handleOnly)
		}
	}
	return out
}

func (d *Directory) matchesAll(e *entry, req *protocol.IdentifierRequest) bool {
	for _, q := range req.Elements {
		v := q.Value
		switch Field(q.Type.String()) {
		case Handle:
			u, ok := d.handleUser(v)
			if !ok || u != e.user {
				return false
			}
		case Nick:
			if e.nick == "" || fold(v) != e.nick {
				return false
			}
		case Email:
			if e.email == "" || fold(strings.TrimPrefix(strings.TrimSpace(v), "mailto:")) != e.email {
				return false
			}
		case Phone:
			if e.phone == "" || normPhone(v) != e.phone {
				return false
			}
		case PartialName:
			if !namePrefixes(nameWords(v), e.words) {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// handleUser reads a handle of one of our users: mimi://d/u/x, im:x@d, xmpp:x@d or x@d.
func (d *Directory) handleUser(v string) (event.UserURI, bool) {
	v = strings.TrimSpace(v)
	if u, err := event.ParseUserURI(v); err == nil {
		return u, u.Domain() == d.domain
	}
	for _, p := range []string{"im:", "xmpp:"} {
		if len(v) > len(p) && strings.EqualFold(v[:len(p)], p) {
			v = v[len(p):]
		}
	}
	i := strings.LastIndex(v, "@")
	if i <= 0 || !strings.EqualFold(v[i+1:], string(d.domain)) || strings.ContainsAny(v[:i], "/ ") {
		return "", false
	}
	u := event.NewUserURI(d.domain, v[:i])
	if _, err := event.ParseUserURI(string(u)); err != nil {
		return "", false
	}
	return u, true
}

// profile returns u's published fields.
func (d *Directory) profile(u event.UserURI) protocol.UserProfile {
	p := protocol.UserProfile{StableURI: protocol.IdentifierURI(u)}
	add := func(f Field, v string) {
		if v != "" && d.publish[f] {
			p.Fields = append(p.Fields, protocol.ProfileField{Source: protocol.FieldVCardField, Name: vcard[f], Value: []byte(v)})
		}
	}
	add(Handle, "im:"+u.Local()+"@"+string(u.Domain()))
	i, ok := d.byUser[u]
	if !ok {
		return p
	}
	e := d.entries[i]
	add(PartialName, e.name)
	add(Nick, e.nick)
	add(Email, e.email)
	add(Phone, e.phone)
	return p
}

// namePrefixes reports whether every query word starts a different word of the name.
func namePrefixes(q, name []string) bool {
	used := make([]bool, len(name))
	for _, w := range q {
		hit := false
		for i, n := range name {
			if !used[i] && strings.HasPrefix(n, w) {
				used[i], hit = true, true
				break
			}
		}
		if !hit {
			return false
		}
	}
	return len(q) > 0
}

func nameWords(s string) []string {
	return strings.FieldsFunc(fold(s), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '\'' })
}

func fold(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// normPhone returns +digits of an international number written with spaces, dashes, dots or
// parentheses, or "" for anything else.
func normPhone(s string) string {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "+") {
		return ""
	}
	var b strings.Builder
	b.WriteByte('+')
	for _, r := range s[1:] {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == ' ' || r == '-' || r == '.' || r == '(' || r == ')':
		default:
			return ""
		}
	}
	if b.Len() < 4 || b.Len() > 16 {
		return ""
	}
	return b.String()
}

// Listed reports whether u has an entry.
func (d *Directory) Listed(u event.UserURI) bool {
	_, ok := d.byUser[u]
	return ok
}
