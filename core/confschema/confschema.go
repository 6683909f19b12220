// Package confschema is what the components' configuration schemas are made of. Each component
// (core/bus, bridges/matrix, bridges/xmpp, ...) defines its own Config with yaml tags and a
// Validate that reports through Problems: every problem names the key it is about, by its path in
// the gateway's configuration document ("bus.external.urls[0]"), so that the config package, which
// composes the component schemas into that document, can place it at the key's file:line:column.
// ByteSize is a size written with a unit ("64MiB").
//
// The package imports nothing of the module, so every layer may use it.
package confschema

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Problem is one problem with a configuration value.
type Problem struct {
	// Key is the key path in the gateway's configuration document, e.g. "bus.mode" or
	// "partners[1].domain"; empty when the problem is about no single key.
	Key string
	// Msg says what is wrong.
	Msg string
	// Missing marks a required value that is not set (Required), as opposed to a wrong one.
	Missing bool
}

// Error formats the problem as "key: message".
func (p *Problem) Error() string {
	if p.Key == "" {
		return p.Msg
	}
	return p.Key + ": " + p.Msg
}

// Problems collects the problems of one validation. The zero value is ready to use.
type Problems struct {
	list []*Problem
}

// Errorf records a problem with the value at key.
func (p *Problems) Errorf(key, format string, args ...any) {
	p.list = append(p.list, &Problem{Key: key, Msg: fmt.Sprintf(format, args...)})
}

// If records a problem with the value at key when bad is true.
func (p *Problems) If(bad bool, key, format string, args ...any) {
	if bad {
		p.Errorf(key, format, args...)
	}
}

// Add records the problems in err, a component's Validate result: each Problem in it (joined or
// wrapped) as it is, any error without a Problem in it as a problem of key.
func (p *Problems) Add(key string, err error) {
	if err == nil {
		return
	}
	var pr *Problem
	if !errors.As(err, &pr) {
		p.Errorf(key, "%v", err)
		return
	}
	switch e := err.(type) {
	case *Problem:
		p.list = append(p.list, e)
	case interface{ Unwrap() []error }:
		for _, x := range e.Unwrap() {
			p.Add(key, x)
		}
	case interface{ Unwrap() error }:
		p.Add(key, e.Unwrap())
	}
}

// List returns the problems recorded so far, in order.
func (p *Problems) List() []*Problem { return p.list }

// Err returns the recorded problems joined (each a *Problem), or nil.
func (p *Problems) Err() error {
	errs := make([]error, len(p.list))
	for i, x := range p.list {
		errs[i] = x
	}
	return errors.Join(errs...)
}

// Required records a "missing required value" problem for key when value is empty; why, if set,
// says when the value is required. It reports whether the value is present.
func (p *Problems) Required(key, value, why string) bool {
	if strings.TrimSpace(value) != "" {
		return true
	}
	if why != "" {
		why = " " + why
	}
	p.list = append(p.list, &Problem{Key: key, Msg: "missing required value" + why, Missing: true})
	return false
}

// OneOf records a problem when value is none of allowed.
func (p *Problems) OneOf(key, value string, allowed ...string) {
	for _, a := range allowed {
		if value == a {
			return
		}
	}
	p.Errorf(key, "%q is not one of %s", value, strings.Join(allowed, ", "))
}

// HostPort records a problem when value is not host:port with a valid port (an empty host means
// every interface).
func (p *Problems) HostPort(key, value string) {
	_, port, err := net.SplitHostPort(value)
	if err != nil {
		p.Errorf(key, "%q is not host:port", value)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		p.Errorf(key, "%q has an invalid port", value)
	}
}

// Positive records a problem when n is not greater than zero.
func (p *Problems) Positive(key string, n int64) {
	if n <= 0 {
		p.Errorf(key, "must be greater than zero")
	}
}

// NotNegative records a problem when n is negative.
func (p *Problems) NotNegative(key string, n int64) {
	if n < 0 {
		p.Errorf(key, "must not be negative")
	}
}

// ValidDomain reports whether s is a DNS name: labels of letters, digits and hyphens, 1 to 253
// characters, no trailing dot.
func ValidDomain(s string) bool {
	if len(s) == 0 || len(s) > 253 || strings.HasSuffix(s, ".") {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
