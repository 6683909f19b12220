package confschema

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

// TestProblems checks the helpers' messages and that Add keeps the key of every Problem in a
// component's joined error and files any other error under the given key.
func TestProblems(t *testing.T) {
	var inner Problems
	inner.Required("bus.external.urls", " ", "(bus.mode is external)")
	inner.OneOf("bus.mode", "cluster", "embedded", "external")
	inner.HostPort("admin.address", "localhost")
	inner.HostPort("admin.address", "localhost:99999")
	inner.Positive("bus.partitions", 0)
	inner.NotNegative("bus.backoff[1]", -1)
	var p Problems
	p.Add("bridges.xmpp", fmt.Errorf("xmpp: %w", errors.Join(inner.Err(), errors.New("plain"))))
	p.Add("bus", nil)
	var got []string
	for _, x := range p.List() {
		got = append(got, x.Error())
	}
	want := []string{
		`bus.external.urls: missing required value (bus.mode is external)`,
		`bus.mode: "cluster" is not one of embedded, external`,
		`admin.address: "localhost" is not host:port`,
		`admin.address: "localhost:99999" has an invalid port`,
		`bus.partitions: must be greater than zero`,
		`bus.backoff[1]: must not be negative`,
		`bridges.xmpp: plain`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("problems:\n%q\nwant\n%q", got, want)
	}
	var none Problems
	if none.Required("k", "v", "") != true || none.Err() != nil {
		t.Errorf("a present value is a problem: %v", none.Err())
	}
}

func TestValidDomain(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want bool
	}{
		{"klinik-a.example", true}, {"Amt-B.example", true}, {"localhost", true},
		{"", false}, {"a..b", false}, {"-a.example", false}, {"a.example.", false}, {"a b.example", false},
	} {
		if got := ValidDomain(tt.in); got != tt.want {
			t.Errorf("ValidDomain(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
