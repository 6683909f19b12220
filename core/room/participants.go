package room

import (
	"fmt"
	"slices"
	"unicode/utf8"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/tlspl"
)

// Participant is a UserRolePair: a user and its role (protocol-06 §7.5).
type Participant struct {
	User event.UserURI
	Role RoleIndex
}

// ParticipantList is ParticipantListData, the value of the participant_list component. Every
// user appears once and has a non-zero role; the order matters (updates address entries by
// index).
type ParticipantList struct {
	Participants []Participant
}

// RoleChange is a UserindexRolePair: the participant at Index (into the list before the update)
// gets Role.
type RoleChange struct {
	Index uint32
	Role  RoleIndex
}

// ParticipantListUpdate is the AppDataUpdate payload of participant_list: role changes and
// removals by index into the current list, and participants appended (see Apply).
type ParticipantListUpdate struct {
	Changed []RoleChange
	Removed []uint32
	Added   []Participant
}

// Index returns the position of u in l, or -1.
func (l *ParticipantList) Index(u event.UserURI) int {
	return slices.IndexFunc(l.Participants, func(p Participant) bool { return p.User == u })
}

// RoleOf returns u's role, or RoleNone when u is not listed.
func (l *ParticipantList) RoleOf(u event.UserURI) RoleIndex {
	if i := l.Index(u); i >= 0 {
		return l.Participants[i].Role
	}
	return RoleNone
}

func writeParticipants(w *tlspl.Writer, ps []Participant) {
	w.Vector(func(w *tlspl.Writer) {
		for _, p := range ps {
			w.Opaque([]byte(p.User))
			w.Uint32(uint32(p.Role))
		}
	})
}

func readParticipants(r *tlspl.Reader) []Participant {
	var out []Participant
	r.ForEach(func(r *tlspl.Reader) {
		if len(out) >= MaxParticipants {
			r.SetError(fmt.Errorf("more than %d participants", MaxParticipants))
			return
		}
		u := readUser(r)
		out = append(out, Participant{User: u, Role: RoleIndex(r.Uint32())})
	})
	return out
}

// readUser reads a user URI (opaque<V>, UTF-8, a valid mimi user URI).
func readUser(r *tlspl.Reader) event.UserURI {
	b := r.Opaque()
	if r.Err() != nil {
		return ""
	}
	if len(b) > MaxURI || !utf8.Valid(b) {
		r.SetError(fmt.Errorf("user URI of %d bytes or not UTF-8", len(b)))
		return ""
	}
	u, err := event.ParseUserURI(string(b))
	if err != nil {
		r.SetError(err)
		return ""
	}
	if string(u) != string(b) {
		r.SetError(fmt.Errorf("user URI %q not in canonical form", b))
	}
	return u
}

// Encode returns the TLS-PL encoding of ParticipantListData.
func (l *ParticipantList) Encode() ([]byte, error) {
	var w tlspl.Writer
	writeParticipants(&w, l.Participants)
	return w.Bytes()
}

// Validate checks that every user is listed once with a non-zero role.
func (l *ParticipantList) Validate() error {
	if len(l.Participants) > MaxParticipants {
		return fmt.Errorf("%w: more than %d participants", ErrInvalid, MaxParticipants)
	}
	seen := make(map[event.UserURI]bool, len(l.Participants))
	for _, p := range l.Participants {
		if p.Role == RoleNone {
			return fmt.Errorf("%w: participant %s with role 0", ErrInvalid, p.User)
		}
		if seen[p.User] {
			return fmt.Errorf("%w: participant %s listed twice", ErrInvalid, p.User)
		}
		seen[p.User] = true
	}
	return nil
}

// DecodeParticipantList decodes and validates ParticipantListData.
func DecodeParticipantList(b []byte) (*ParticipantList, error) {
	r := tlspl.NewReader(b)
	l := &ParticipantList{Participants: readParticipants(r)}
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("%w: participant list: %w", ErrInvalid, err)
	}
	if err := l.Validate(); err != nil {
		return nil, err
	}
	return l, nil
}

// Encode returns the TLS-PL encoding of the ParticipantListUpdate.
func (u *ParticipantListUpdate) Encode() ([]byte, error) {
	var w tlspl.Writer
	w.Vector(func(w *tlspl.Writer) {
		for _, c := range u.Changed {
			w.Uint32(c.Index)
			w.Uint32(uint32(c.Role))
		}
	})
	w.Vector(func(w *tlspl.Writer) {
		for _, i := range u.Removed {
			w.Uint32(i)
		}
	})
	writeParticipants(&w, u.Added)
	return w.Bytes()
}

// DecodeParticipantListUpdate decodes a ParticipantListUpdate. Whether it applies to a list is
// Apply's question.
func DecodeParticipantListUpdate(b []byte) (*ParticipantListUpdate, error) {
	r := tlspl.NewReader(b)
	u := &ParticipantListUpdate{}
	r.ForEach(func(r *tlspl.Reader) {
		if len(u.Changed) >= MaxParticipants {
			r.SetError(fmt.Errorf("more than %d role changes", MaxParticipants))
			return
		}
		u.Changed = append(u.Changed, RoleChange{Index: r.Uint32(), Role: RoleIndex(r.Uint32())})
	})
	r.ForEach(func(r *tlspl.Reader) {
		if len(u.Removed) >= MaxParticipants {
			r.SetError(fmt.Errorf("more than %d removals", MaxParticipants))
			return
		}
		u.Removed = append(u.Removed, r.Uint32())
	})
	u.Added = readParticipants(r)
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("%w: participant list update: %w", ErrInvalid, err)
	}
	return u, nil
}

// Apply returns the list after u, leaving l unchanged. The order (docs/interop.md P6):
//
//  1. role changes, each addressing an entry of l by index;
//  2. removals, each addressing an entry of l by index (indices of the list before the update,
//     so removals do not shift each other and a change and a removal see the same entries);
//  3. the remaining entries keep their order, and the added participants are appended in order.
//
// An index out of range, an entry changed or removed twice (or both), a change to role 0, an
// added user that is already listed (after the removals, too: re-adding a removed user touches
// it twice), added twice, or added with role 0 make the update invalid.
func (l *ParticipantList) Apply(u *ParticipantListUpdate) (*ParticipantList, error) {
	n := len(l.Participants)
	out := slices.Clone(l.Participants)
	touched := make(map[uint32]bool, len(u.Changed)+len(u.Removed))
	for _, c := range u.Changed {
		if int64(c.Index) >= int64(n) {
			return nil, fmt.Errorf("%w: role change of index %d in a list of %d", ErrInvalid, c.Index, n)
		}
		if touched[c.Index] {
			return nil, fmt.Errorf("%w: %s changed twice", ErrInvalid, out[c.Index].User)
		}
		if c.Role == RoleNone {
			return nil, fmt.Errorf("%w: role change of %s to role 0 (use a removal)", ErrInvalid, out[c.Index].User)
		}
		touched[c.Index] = true
		out[c.Index].Role = c.Role
	}
	removed := make(map[uint32]bool, len(u.Removed))
	for _, i := range u.Removed {
		if int64(i) >= int64(n) {
			return nil, fmt.Errorf("%w: removal of index %d in a list of %d", ErrInvalid, i, n)
		}
		if touched[i] {
			return nil, fmt.Errorf("%w: %s touched twice", ErrInvalid, out[i].User)
		}
		touched[i] = true
		removed[i] = true
	}
	kept := out[:0:0]
	for i, p := range out {
		if !removed[uint32(i)] {
			kept = append(kept, p)
		}
	}
	listed := make(map[event.UserURI]bool, n+len(u.Added))
	for _, p := range l.Participants {
		listed[p.User] = true
	}
	for _, a := range u.Added {
		if a.Role == RoleNone {
			return nil, fmt.Errorf("%w: %s added with role 0", ErrInvalid, a.User)
		}
		if listed[a.User] {
			return nil, fmt.Errorf("%w: %s added but listed before or added twice", ErrInvalid, a.User)
		}
		listed[a.User] = true
		kept = append(kept, a)
	}
	res := &ParticipantList{Participants: kept}
	if err := res.Validate(); err != nil {
		return nil, err
	}
	return res, nil
}
