package room

import (
	"fmt"
	"slices"

	"github.com/mimi-gateway/mimi-gateway/core/tlspl"
)

// RoleChangeTargets is SingleSourceRoleChangeTargets: a holder of the role may move a
// participant from role From to any of Targets (room-policy-03 §4.1).
type RoleChangeTargets struct {
	From    RoleIndex
	Targets []RoleIndex
}

// RoleDef is one Role of room-policy-03 §4.1. A nil maximum is unlimited.
type RoleDef struct {
	Index        RoleIndex
	Name         string
	Description  string
	Capabilities []Capability
	// MinParticipants and MaxParticipants bound the participant-list entries with this role.
	MinParticipants uint32
	MaxParticipants *uint32
	// MinActive and MaxActive bound the entries with this role that have clients in the group.
	MinActive uint32
	MaxActive *uint32
	// AuthorizedChanges are the role changes a holder of this role may make (with the
	// capability the change needs).
	AuthorizedChanges []RoleChangeTargets
}

// Roles is RoleData, the value of the roles_list component. An update replaces it.
type Roles struct {
	Roles []RoleDef
}

// Role returns the definition of role i.
func (rs *Roles) Role(i RoleIndex) (*RoleDef, bool) {
	for k := range rs.Roles {
		if rs.Roles[k].Index == i {
			return &rs.Roles[k], true
		}
	}
	return nil, false
}

// Has reports whether the role holds capability c.
func (r *RoleDef) Has(c Capability) bool { return slices.Contains(r.Capabilities, c) }

// MayChange reports whether the role's authorized_role_changes allow from → to.
func (r *RoleDef) MayChange(from, to RoleIndex) bool {
	for _, t := range r.AuthorizedChanges {
		if t.From == from && slices.Contains(t.Targets, to) {
			return true
		}
	}
	return false
}

func writeOptionalUint32(w *tlspl.Writer, v *uint32) {
	w.Optional(v != nil, func(w *tlspl.Writer) { w.Uint32(*v) })
}

func readOptionalUint32(r *tlspl.Reader) *uint32 {
	var v uint32
	if r.Optional(func(r *tlspl.Reader) { v = r.Uint32() }) {
		return &v
	}
	return nil
}

// Encode returns the TLS-PL encoding of RoleData.
func (rs *Roles) Encode() ([]byte, error) {
	var w tlspl.Writer
	w.Vector(func(w *tlspl.Writer) {
		for _, r := range rs.Roles {
			w.Uint32(uint32(r.Index))
			w.Opaque([]byte(r.Name))
			w.Opaque([]byte(r.Description))
			w.Vector(func(w *tlspl.Writer) {
				for _, c := range r.Capabilities {
					w.Uint16(uint16(c))
				}
			})
			w.Uint32(r.MinParticipants)
			writeOptionalUint32(w, r.MaxParticipants)
			w.Uint32(r.MinActive)
			writeOptionalUint32(w, r.MaxActive)
			w.Vector(func(w *tlspl.Writer) {
				for _, t := range r.AuthorizedChanges {
					w.Uint32(uint32(t.From))
					w.Vector(func(w *tlspl.Writer) {
						for _, x := range t.Targets {
							w.Uint32(uint32(x))
						}
					})
				}
			})
		}
	})
	return w.Bytes()
}

// DecodeRoles decodes and validates RoleData.
func DecodeRoles(b []byte) (*Roles, error) {
	r := tlspl.NewReader(b)
	rs := &Roles{}
	r.ForEach(func(r *tlspl.Reader) {
		if len(rs.Roles) >= MaxRoles {
			r.SetError(fmt.Errorf("more than %d roles", MaxRoles))
			return
		}
		var d RoleDef
		d.Index = RoleIndex(r.Uint32())
		d.Name = readText(r, "role name", MaxText)
		d.Description = readText(r, "role description", MaxText)
		r.ForEach(func(r *tlspl.Reader) {
			if len(d.Capabilities) >= MaxCapabilities {
				r.SetError(fmt.Errorf("more than %d capabilities", MaxCapabilities))
				return
			}
			d.Capabilities = append(d.Capabilities, Capability(r.Uint16()))
		})
		d.MinParticipants = r.Uint32()
		d.MaxParticipants = readOptionalUint32(r)
		d.MinActive = r.Uint32()
		d.MaxActive = readOptionalUint32(r)
		r.ForEach(func(r *tlspl.Reader) {
			if len(d.AuthorizedChanges) >= MaxRoles {
				r.SetError(fmt.Errorf("more than %d role change entries", MaxRoles))
				return
			}
			t := RoleChangeTargets{From: RoleIndex(r.Uint32())}
			r.ForEach(func(r *tlspl.Reader) {
				if len(t.Targets) >= MaxRoles {
					r.SetError(fmt.Errorf("more than %d role change targets", MaxRoles))
					return
				}
				t.Targets = append(t.Targets, RoleIndex(r.Uint32()))
			})
			d.AuthorizedChanges = append(d.AuthorizedChanges, t)
		})
		rs.Roles = append(rs.Roles, d)
	})
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("%w: roles list: %w", ErrInvalid, err)
	}
	if err := rs.Validate(); err != nil {
		return nil, err
	}
	return rs, nil
}

// Validate checks the role list: role indexes unique, capabilities unique per role, maxima not
// below minima, authorized_role_changes naming only defined roles (or 0) with one entry per
// source role and unique targets, role 1 (when defined) named "banned", and role 0 holding
// canOpenJoin only if no other role does (room-policy-03 §4.2: canOpenJoin is for role 0 only).
func (rs *Roles) Validate() error {
	defined := map[RoleIndex]bool{RoleNone: true}
	for _, r := range rs.Roles {
		if defined[r.Index] && r.Index != RoleNone {
			return fmt.Errorf("%w: role %d defined twice", ErrInvalid, r.Index)
		}
		defined[r.Index] = true
	}
	zeros := 0
	for _, r := range rs.Roles {
		if r.Index == RoleNone {
			zeros++
		}
		if r.Index == RoleBanned && r.Name != BannedRoleName {
			return fmt.Errorf("%w: role 1 is named %q, not %q", ErrInvalid, r.Name, BannedRoleName)
		}
		if r.Index != RoleNone && r.Has(CanOpenJoin) {
			return fmt.Errorf("%w: role %d holds canOpenJoin (role 0 only)", ErrInvalid, r.Index)
		}
		caps := map[Capability]bool{}
		for _, c := range r.Capabilities {
			if caps[c] {
				return fmt.Errorf("%w: role %d lists capability 0x%04x twice", ErrInvalid, r.Index, uint16(c))
			}
			caps[c] = true
		}
		if r.MaxParticipants != nil && *r.MaxParticipants < r.MinParticipants {
			return fmt.Errorf("%w: role %d: maximum participants below minimum", ErrInvalid, r.Index)
		}
		if r.MaxActive != nil && *r.MaxActive < r.MinActive {
			return fmt.Errorf("%w: role %d: maximum active participants below minimum", ErrInvalid, r.Index)
		}
		from := map[RoleIndex]bool{}
		for _, t := range r.AuthorizedChanges {
			if !defined[t.From] || from[t.From] {
				return fmt.Errorf("%w: role %d: role change entry from %d undefined or repeated", ErrInvalid, r.Index, t.From)
			}
			from[t.From] = true
			seen := map[RoleIndex]bool{}
			for _, x := range t.Targets {
				if !defined[x] || seen[x] {
					return fmt.Errorf("%w: role %d: role change target %d undefined or repeated", ErrInvalid, r.Index, x)
				}
				seen[x] = true
			}
		}
	}
	if zeros > 1 {
		return fmt.Errorf("%w: role 0 defined twice", ErrInvalid)
	}
	return nil
}
