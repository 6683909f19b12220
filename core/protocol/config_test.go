package protocol_test

import (
	"testing"

	"github.com/mimi-gateway/mimi-gateway/core/protocol"
	"github.com/mimi-gateway/mimi-gateway/core/protocol/protocoltest"
)

func TestFromConfig(t *testing.T) {
	ca := protocoltest.NewCA(t)
	certFile, keyFile := protocoltest.WriteFiles(t, ca.Issue(t, "a.example"))
	cert, pool, err := protocol.LoadTLS(certFile, keyFile, ca.File)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Leaf == nil || cert.Leaf.DNSNames[0] != "a.example" || pool == nil {
		t.Fatalf("certificate %v", cert.Leaf)
	}
	if _, _, err := protocol.LoadTLS(certFile, keyFile, keyFile); err == nil {
		t.Fatal("a CA file without certificates was accepted")
	}

	ps, err := protocol.PartnersFromConfig([]protocol.PartnerConfig{
		{Domain: "B.Example", BaseURL: "https://mimi.b.example/base", CAFile: ca.File},
		{Domain: "c.example", Discovery: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	set := protocol.NewPartners(ps...)
	b, ok := set.Lookup("b.example")
	if !ok || b.BaseURL.String() != "https://mimi.b.example/base/" || b.RootCAs == nil {
		t.Fatalf("b.example: %+v, %v", b, ok)
	}
	c, ok := set.Lookup("C.EXAMPLE")
	if !ok || c.BaseURL != nil || c.RootCAs != nil {
		t.Fatalf("c.example: %+v, %v", c, ok)
	}
	if _, ok := set.Lookup("d.example"); ok {
		t.Fatal("unconfigured partner found")
	}
	if _, err := protocol.PartnersFromConfig([]protocol.PartnerConfig{{Domain: "b.example", BaseURL: "http://b.example/"}}); err == nil {
		t.Fatal("http base URL accepted")
	}
}
