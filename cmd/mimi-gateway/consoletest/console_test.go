// Package consoletest drives the admin console of a real gateway process with Debian's headless
// Chromium: sign-in (local account and OpenID Connect), partners, dead letters, the
// configuration editor, roles and CSRF, with a screenshot of each page.
//
// Screenshots go to $MIMI_CONSOLE_SCREENSHOTS, or to a new temporary directory whose path the
// test logs. Chromium comes from .ci/install-chromium.
package consoletest

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/mimi-gateway/mimi-gateway/cmd/mimi-gateway/internal/gatewaytest"
	"github.com/mimi-gateway/mimi-gateway/core/bus"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/protocol/protocoltest"
)

func TestMain(m *testing.M) { gatewaytest.Main(m) }

const (
	opPassword     = "operator password 4 the console"
	viewerPassword = "viewer password 4 the console"
)

// browser is one headless Chromium with the test's helpers.
type browser struct {
	t       *testing.T
	ctx     context.Context
	base    string
	shots   string
	secrets []string
	n       int
}

func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("Debian's chromium is not installed: run .ci/install-chromium (apt-get install chromium)")
	return ""
}

func newBrowser(t *testing.T, base string, secrets []string) *browser {
	t.Helper()
	dir := os.Getenv("MIMI_CONSOLE_SCREENSHOTS")
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "mimi-console-screenshots-"); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", dir)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("ignore-certificate-errors", true), chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("lang", "en-US"), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelA() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return &browser{t: t, ctx: ctx, base: base, shots: dir, secrets: secrets}
}

// do runs actions that return nothing, bounded in time.
func (b *browser) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 90*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// get runs one action that returns a value, bounded in time.
func get[T any](b *browser, what string, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 90*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
	return v
}

// submit clicks sel and waits for the page it leads to.
func (b *browser) submit(sel string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 90*time.Second)
	defer cancel()
	if _, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel))); err != nil {
		b.t.Fatalf("click %s: %v", sel, err)
	}
}

func (b *browser) open(path string) {
	b.t.Helper()
	b.do("open "+path, chromedp.Navigate(b.base+path), chromedp.WaitReady(chromedp.CSS("body")))
}

// shot saves a screenshot of the page and checks that it shows none of the secrets.
func (b *browser) shot(name string) string {
	b.t.Helper()
	png := get(b, "screenshot "+name, chromedp.FullScreenshot(100))
	html := get(b, "html of "+name, chromedp.OuterHTML(chromedp.CSS("html")))
	b.n++
	if err := os.WriteFile(filepath.Join(b.shots, fmt.Sprintf("%02d-%s.png", b.n, name)), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	for _, s := range b.secrets {
		if strings.Contains(html, s) {
			b.t.Errorf("page %s shows the secret %q", name, s)
		}
	}
	return html
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	return get(b, "text of "+sel, chromedp.Text(chromedp.CSS(sel)))
}

func (b *browser) value(sel string) string {
	b.t.Helper()
	return get(b, "value of "+sel, chromedp.Value(chromedp.CSS(sel)))
}

func (b *browser) exists(sel string) bool {
	b.t.Helper()
	return get(b, "count "+sel, chromedp.Evaluate[int](fmt.Sprintf("document.querySelectorAll(%q).length", sel))) > 0
}

func (b *browser) login(user, password string) {
	b.t.Helper()
	b.open("/login")
	b.do("fill in the sign-in form", chromedp.SendKeys(chromedp.CSS("#username"), user), chromedp.SendKeys(chromedp.CSS("#password"), password))
	b.submit("#signin-local")
	if got := b.text("#who"); got != user {
		b.t.Fatalf("signed in as %q, want %q", got, user)
	}
}

func (b *browser) logout() {
	b.t.Helper()
	b.submit("header form button")
	b.do("sign-in page", chromedp.WaitVisible(chromedp.CSS("#username")))
}

// cookies returns the browser's cookies for the console.
func (b *browser) cookies() []*http.Cookie {
	b.t.Helper()
	res, err := chromedp.Call(b.ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{b.base}})
	if err != nil {
		b.t.Fatal(err)
	}
	var out []*http.Cookie
	for _, c := range res.Cookies {
		out = append(out, &http.Cookie{Name: c.Name, Value: c.Value})
	}
	return out
}

// post sends a form to the console with the browser's cookies, as a forged request would.
func post(t *testing.T, hc *http.Client, base, path string, cookies []*http.Cookie, form url.Values) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, c := range cookies {
		req.AddCookie(c)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// cli runs `mimi-gateway admin ...` against the gateway, with stdin.
func cli(t *testing.T, g *gatewaytest.Gateway, stdin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, gatewaytest.Binary(t), append([]string{"--config", g.ConfigFile, "admin"}, args...)...)
	cmd.Dir, cmd.Env, cmd.Stdin = g.Dir, []string{"PATH=" + os.Getenv("PATH"), "HOME=" + g.Dir}, strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("mimi-gateway admin %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// deadLetterSource consumes mimi.in for XMPP on the gateway's embedded NATS (through its
// loopback listener) and refuses each envelope permanently once, so that it is dead-lettered;
// a replayed envelope is accepted.
type deadLetterSource struct {
	b        *bus.NATS
	mu       sync.Mutex
	seen     map[event.EventID]int
	accepted atomic.Int32
}

func newDeadLetterSource(t *testing.T, natsAddr string) *deadLetterSource {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := bus.Open(ctx, bus.Config{Mode: bus.ModeExternal, External: bus.ExternalConfig{URLs: []string{"nats://" + natsAddr}, Replicas: 1}},
		slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	d := &deadLetterSource{b: b, seen: map[event.EventID]int{}}
	sub, err := b.ConsumeIn(ctx, "consoletest", event.NetworkXMPP, func(_ context.Context, dl bus.Delivery) error {
		d.mu.Lock()
		d.seen[dl.Envelope.ID]++
		n := d.seen[dl.Envelope.ID]
		d.mu.Unlock()
		if n == 1 {
			return bus.Permanent(errors.New("no portal for this room (test)"))
		}
		d.accepted.Add(1)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Stop(context.Background()) })
	return d
}

func (d *deadLetterSource) publish(t *testing.T, id string) {
	t.Helper()
	room := event.NewRoomURI("a.example", "console-room")
	env := &event.Envelope{
		ID: event.NewEventID(event.NetworkXMPP, "console-room", event.NativeEventID(id)), Kind: event.KindMessage, Room: room,
		Sender: event.NewUserURI("b.example", "bob"), Content: []byte("message content that no page may show"),
		Origin: event.Origin{Network: event.NetworkXMPP}, Timestamp: time.Now().UTC(),
	}
	if err := d.b.PublishIn(context.Background(), event.NetworkXMPP, env); err != nil {
		t.Fatal(err)
	}
}

func waitDeadLetters(t *testing.T, g *gatewaytest.Gateway, n int) []bus.DeadLetter {
	t.Helper()
	var items []bus.DeadLetter
	gatewaytest.Eventually(t, time.Minute, fmt.Sprintf("%d dead letters", n), func() error {
		out := cli(t, g, "", "dlq", "list", "--json")
		items = nil
		if err := json.Unmarshal([]byte(out), &items); err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		if len(items) != n {
			return fmt.Errorf("%d dead letters", len(items))
		}
		return nil
	})
	return items
}

// TestConsole drives the console of gateway a.example, whose one partner is gateway b.example.
func TestConsole(t *testing.T) {
	ca := protocoltest.NewCA(t)
	oidcSecret := "oidc-client-secret-" + rand8(t)
	xmppSecret := "xmpp-component-secret-" + rand8(t)
	provider := newIDP(t, "mimi-console", oidcSecret)

	consoleAddr, natsAddr := gatewaytest.FreeAddr(t), gatewaytest.FreeAddr(t)
	_, port, _ := strings.Cut(consoleAddr, ":")
	base := "https://localhost:" + port
	certFile, keyFile := protocoltest.WriteFiles(t, ca.Issue(t, "localhost"))
	provider.SignIn("alice", []string{"staff", "mimi-operators"}, base+"/oidc/callback")
	layer := fmt.Sprintf(`
log:
  level: info
admin_ui:
  address: %q
  public_url: %q
  tls_cert_file: %q
  tls_key_file: %q
  oidc:
    issuer: %q
    client_id: mimi-console
    client_secret: %q
    ca_file: %q
    operator_groups: [mimi-operators]
    viewer_groups: [mimi-viewers]
bus:
  embedded:
    listen: %q
bridges:
  xmpp:
    users:
      secret: %q
`, consoleAddr, base, certFile, keyFile, provider.Issuer(), oidcSecret, provider.CAFile, natsAddr, xmppSecret)
	a := gatewaytest.New(t, ca, gatewaytest.Options{Domain: "a.example", Layers: []string{layer}})
	partner := gatewaytest.New(t, ca, gatewaytest.Options{Domain: "b.example"})
	gatewaytest.Connect(a, partner)
	a.WriteConfig(t)
	cli(t, a, opPassword+"\n", "passwd", "--user", "op", "--role", "operator")
	cli(t, a, viewerPassword+"\n", "passwd", "--user", "viewer", "--role", "viewer")
	partner.StartReady(t)
	a.StartReady(t)

	secrets := []string{oidcSecret, xmppSecret, opPassword, viewerPassword, "message content that no page may show"}
	b := newBrowser(t, base, secrets)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	// Sign-in with the local account, the overview.
	b.open("/")
	b.shot("login")
	b.login("op", opPassword)
	b.shot("overview")

	// Partners: b.example answers; stopped, it is shown unreachable.
	b.open("/partners")
	b.submit(`button[id="check-b.example"]`)
	if got := b.text(`section[aria-labelledby="p-b.example"] td.reach`); !strings.Contains(got, "Reachable") {
		t.Errorf("partner after a successful check: %q", got)
	}
	if html := b.shot("partners"); !strings.Contains(html, "DNS: b.example") {
		t.Error("the partners page shows no certificate chain for b.example")
	}
	if out := cli(t, a, "", "partners", "check"); !strings.Contains(out, "b.example") || !strings.Contains(out, "ok") {
		t.Errorf("admin partners check: %s", out)
	}
	partner.Stop()
	b.open("/partners")
	b.submit(`button[id="check-b.example"]`)
	if got := b.text(`section[aria-labelledby="p-b.example"] td.reach`); !strings.Contains(got, "unreachable") {
		t.Errorf("partner after it stopped: %q", got)
	}
	b.shot("partners-unreachable")
	b.open("/")
	if html := b.shot("overview-partner-down"); !strings.Contains(html, "unreachable") {
		t.Error("the overview does not show the stopped partner as unreachable")
	}

	// Rooms and KeyPackages (empty on a fresh gateway), and the CLI's view.
	b.open("/rooms")
	b.shot("rooms")
	b.open("/keypackages")
	b.shot("keypackages")
	if out := cli(t, a, "", "rooms"); !strings.Contains(out, "ROOM") {
		t.Errorf("admin rooms: %s", out)
	}

	// Dead letters: replay one and see it delivered; discard another with the CLI.
	src := newDeadLetterSource(t, natsAddr)
	src.publish(t, "first")
	src.publish(t, "second")
	items := waitDeadLetters(t, a, 2)
	b.open("/deadletters")
	b.shot("deadletters")
	b.open(fmt.Sprintf("/deadletters/%d", items[0].Seq))
	b.shot("deadletter")
	b.open("/deadletters")
	b.submit(fmt.Sprintf("#replay-%d", items[0].Seq))
	if got := b.text(".flash"); !strings.Contains(got, "replayed") {
		t.Errorf("after replay: %q", got)
	}
	b.shot("deadletter-replayed")
	gatewaytest.Eventually(t, time.Minute, "the replayed envelope delivered", func() error {
		if src.accepted.Load() != 1 {
			return errors.New("not delivered yet")
		}
		return nil
	})
	if out := cli(t, a, "", "dlq", "discard", fmt.Sprint(items[1].Seq)); !strings.Contains(out, "discarded") {
		t.Errorf("admin dlq discard: %s", out)
	}
	waitDeadLetters(t, a, 0)

	// A request without the CSRF token is refused, also with a valid session.
	opCookies := b.cookies()
	if code := post(t, hc, base, "/config/apply", opCookies, url.Values{"text": {"domain: evil.example\n"}}); code != http.StatusForbidden {
		t.Errorf("POST without CSRF token: status %d, want 403", code)
	}

	// The configuration: a typo is shown at its line; fixed, applied, reloaded; rolled back.
	b.open("/config")
	b.shot("config")
	text := b.value("#config-text")
	if !strings.Contains(text, "level: info") || strings.Contains(text, xmppSecret) || strings.Contains(text, oidcSecret) {
		t.Fatalf("editor text:\n%s", text)
	}
	typo := strings.Replace(text, "level: info", "levle: debug", 1)
	typoLine := 1 + strings.Count(typo[:strings.Index(typo, "levle")], "\n")
	b.do("type a typo", chromedp.SetValue(chromedp.CSS("#config-text"), typo))
	b.submit("#config-check")
	if got := b.text("#config-errors"); !strings.Contains(got, fmt.Sprintf(":%d:", typoLine)) || !strings.Contains(got, "levle") {
		t.Errorf("errors for the typo on line %d: %q", typoLine, got)
	}
	if !b.exists(fmt.Sprintf("li#line-%d.badline", typoLine)) {
		t.Errorf("line %d is not marked", typoLine)
	}
	b.shot("config-error")
	fixed := strings.Replace(text, "level: info", "level: debug", 1) + "shutdown_timeout: 9s\n"
	b.do("fix it", chromedp.SetValue(chromedp.CSS("#config-text"), fixed))
	b.submit("#config-check")
	if got := b.text("#config-diff"); !strings.Contains(got, "+ ") || !strings.Contains(got, "level: debug") {
		t.Errorf("diff: %q", got)
	}
	if got := b.text("#restart-keys"); !strings.Contains(got, "shutdown_timeout") {
		t.Errorf("restart keys: %q", got)
	}
	b.shot("config-diff")
	b.submit("#config-apply")
	if got := b.text(".flash"); !strings.Contains(got, "applied") {
		t.Errorf("after apply: %q", got)
	}
	b.shot("config-applied")
	a.WaitLog(t, time.Minute, "log level changed")
	if disk, _ := os.ReadFile(a.ConfigFile); !strings.Contains(string(disk), "level: debug") || !strings.Contains(string(disk), xmppSecret) {
		t.Errorf("the file after apply lost the change or the secret:\n%s", disk)
	}
	b.open("/config")
	b.submit(`button[id^="rollback-"]`)
	if got := b.text(".flash"); !strings.Contains(got, "applied") {
		t.Errorf("after rollback: %q", got)
	}
	b.shot("config-rolled-back")
	if disk, _ := os.ReadFile(a.ConfigFile); !strings.Contains(string(disk), "level: info") || strings.Contains(string(disk), "shutdown_timeout: 9s") {
		t.Errorf("the file after rollback:\n%s", disk)
	}
	b.open("/audit")
	if html := b.shot("audit"); !strings.Contains(html, "config.rollback") || !strings.Contains(html, "dlq.replay") {
		t.Error("the audit log lacks the rollback or the replay")
	}
	// The views that other parts of the gateway add (sections).
	b.open("/s/credential-alerts")
	if got := b.text("main h1"); got != "Credential alerts" {
		t.Errorf("credential alerts page title %q", got)
	}
	b.shot("credential-alerts")
	b.open("/s/consent")
	b.shot("consent")
	b.open("/?lang=de")
	if html := b.shot("overview-de"); !strings.Contains(html, `lang="de"`) || !strings.Contains(html, "Übersicht") {
		t.Error("no German overview")
	}
	b.open("/?lang=en")

	// A viewer sees but cannot change anything.
	b.logout()
	b.login("viewer", viewerPassword)
	src.publish(t, "third")
	items = waitDeadLetters(t, a, 1)
	b.open("/deadletters")
	if b.exists(`button[id^="replay-"]`) || b.exists(`button[id^="discard-"]`) {
		t.Error("the viewer is offered replay or discard")
	}
	b.shot("viewer-deadletters")
	b.open("/config")
	if b.exists("#config-text") || b.exists(`button[id^="rollback-"]`) {
		t.Error("the viewer is offered the editor or rollback")
	}
	b.shot("viewer-config")
	csrf := b.value(`header form input[name="csrf"]`)
	vc := b.cookies()
	for _, p := range []string{fmt.Sprintf("/deadletters/%d/replay", items[0].Seq), fmt.Sprintf("/deadletters/%d/discard", items[0].Seq), "/config/rollback"} {
		if code := post(t, hc, base, p, vc, url.Values{"csrf": {csrf}}); code != http.StatusForbidden {
			t.Errorf("viewer POST %s: status %d, want 403", p, code)
		}
	}
	waitDeadLetters(t, a, 1)

	// OpenID Connect: a member of an operator group signs in; someone in no allowed group is refused.
	b.logout()
	b.submit("#signin-oidc")
	b.do("overview after OIDC sign-in", chromedp.WaitVisible(chromedp.CSS("nav")))
	if got := b.text("#who"); got != "alice" {
		t.Errorf("signed in through OIDC as %q, want alice", got)
	}
	b.shot("overview-oidc")
	// As an operator through OIDC, discard the viewer's dead letter on its page, confirmed.
	b.open(fmt.Sprintf("/deadletters/%d", items[0].Seq))
	b.do("confirm the discard", chromedp.Click(chromedp.CSS("#confirm-discard")))
	b.shot("deadletter-discard")
	b.submit(fmt.Sprintf("#discard-%d", items[0].Seq))
	if got := b.text(".flash"); !strings.Contains(got, "discarded") {
		t.Errorf("after discard: %q", got)
	}
	waitDeadLetters(t, a, 0)
	b.logout()
	provider.SignIn("mallory", []string{"staff"}, base+"/oidc/callback")
	b.submit("#signin-oidc")
	if got := b.text(".error"); !strings.Contains(got, "none of the groups") {
		t.Errorf("sign-in of someone in no allowed group: %q", got)
	}
	b.shot("oidc-refused")
	if provider.Issued() != 2 {
		t.Errorf("ID tokens issued: %d, want 2", provider.Issued())
	}

	// No secret in the gateway's log either.
	log := a.Log()
	for _, s := range secrets {
		if strings.Contains(log, s) {
			t.Errorf("the gateway log shows the secret %q", s)
		}
	}
}

func rand8(*testing.T) string { return rand.Text()[:8] }
