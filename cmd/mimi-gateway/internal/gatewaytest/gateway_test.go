package gatewaytest

import (
	"time"

	mevent "maunium.net/go/mautrix/event"

	"strings"
	"testing"

	"github.com/mimi-gateway/mimi-gateway/core/protocol/protocoltest"
)

func TestMain(m *testing.M) { Main(m) }

func TestMergeYAML(t *testing.T) {
	for _, tc := range []struct {
		name string
		docs []string
		want string
	}{
		{"empty", nil, ""},
		{"one", []string{"a: 1\n"}, "a: 1\n"},
		{"scalar replaced", []string{"a: 1\nb: 2\n", "a: 3\n"}, "a: 3\nb: 2\n"},
		{"nested merged", []string{"x:\n  a: 1\n  b: 2\n", "x:\n  b: 3\n  c: 4\n"}, "x:\n    a: 1\n    b: 3\n    c: 4\n"},
		{"sequence replaced", []string{"l: [1, 2]\n", "l: [3]\n"}, "l: [3]\n"},
		{"empty layer skipped", []string{"a: 1\n", ""}, "a: 1\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := MergeYAML(tc.docs...)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
	if _, err := MergeYAML("- a\n"); err == nil || !strings.Contains(err.Error(), "not a mapping") {
		t.Fatalf("a sequence document: %v", err)
	}
}

// TestGatewaysRestart starts two gateways that are each other's partners, kills one with
// SIGKILL and restarts it on the same data: it becomes ready again and keeps its data dir.
func TestGatewaysRestart(t *testing.T) {
	ca := protocoltest.NewCA(t)
	a := New(t, ca, Options{Domain: "klinik-a.example"})
	b := New(t, ca, Options{Domain: "amt-b.example", Layers: []string{"shutdown_timeout: 9s\n"}})
	Connect(a, b)
	a.Start(t)
	b.Start(t)
	a.WaitReady(t, defaultReady)
	b.WaitReady(t, defaultReady)
	cfg, err := b.Config()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"shutdown_timeout: 9s", "domain: klinik-a.example", "base_url: https://" + a.MIMIAddr + "/"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("b's configuration lacks %q:\n%s", want, cfg)
		}
	}
	b.Kill()
	if b.Running() {
		t.Fatal("b runs after Kill")
	}
	b.StartReady(t)
	if got := strings.Count(b.Log(), "==== gatewaytest: start"); got != 2 {
		t.Fatalf("b's log shows %d starts, want 2", got)
	}
	if !strings.Contains(b.Metrics(t), "mimi_gateway") {
		t.Fatal("b's /metrics has no gateway metrics")
	}
	a.Stop()
	if err := a.ExitError(); err != nil {
		t.Fatalf("a after SIGTERM: %v", err)
	}
}

// TestOrgs starts three organisations as the end-to-end suite does (Matrix appservice mode,
// Matrix client mode, XMPP), each gateway a partner of the others, and their users' clients.
func TestOrgs(t *testing.T) {
	ca := protocoltest.NewCA(t)
	a := NewMatrixOrg(t, ca, MatrixOptions{Domain: "amt-a.example", Mode: ModeAppservice})
	k := NewMatrixOrg(t, ca, MatrixOptions{Domain: "klinik-k.example", Mode: ModeClient})
	x := NewXMPPOrg(t, ca, XMPPOptions{Domain: "amt-x.example", Users: map[string]string{"bob": "pw-bob"}})
	Connect(a.Gateway, k.Gateway, x.Gateway)
	for _, g := range []*Gateway{a.Gateway, k.Gateway, x.Gateway} {
		g.Start(t)
	}
	for _, g := range []*Gateway{a.Gateway, k.Gateway, x.Gateway} {
		g.WaitReady(t, defaultReady)
	}
	alice := a.User(t, "alice")
	if alice.UserID != a.UserID("alice") {
		t.Fatalf("alice is %s", alice.UserID)
	}
	room := alice.CreateRoom(t, "Ward", true, false)
	alice.SendText(t, room, "hello")
	alice.WaitEvent(t, 30*time.Second, "her own message", func(e *mevent.Event) bool { return Body(e) == "hello" })
	bob := x.Client(t, "bob", "phone")
	if bob.Bare != "bob@amt-x.example" {
		t.Fatalf("bob is %s", bob.JID)
	}
	if got := x.Puppet("alice", "amt-a.example"); got != `alice\40amt-a.example@mimi.amt-x.example` {
		t.Fatalf("puppet %s", got)
	}
	if a.Bot != "@mimibot:amt-a.example" || k.Bot != "@mimi-gateway:klinik-k.example" {
		t.Fatalf("bots %s %s", a.Bot, k.Bot)
	}
}
