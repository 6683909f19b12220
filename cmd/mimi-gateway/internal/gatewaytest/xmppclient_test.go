package gatewaytest

import (
	"bytes"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/prosodytest"
	"github.com/mimi-gateway/mimi-gateway/core/protocol/protocoltest"
)

// TestXMPPClient: two users on Prosody with STARTTLS exchange a message with a namespaced
// child, and a file goes through the upload service and can be fetched from its GET URL.
func TestXMPPClient(t *testing.T) {
	ca := protocoltest.NewCA(t)
	cert := ca.Issue(t, "amt-b.example", "upload.amt-b.example")
	srv := prosodytest.Start(t, prosodytest.Config{Domain: "amt-b.example", Users: map[string]string{"bob": "pw-bob", "dora": "pw-dora"},
		Upload: true, Certificate: &cert})
	bob := DialXMPP(t, srv, ca.Pool, "bob", "pw-bob", "phone")
	dora := DialXMPP(t, srv, ca.Pool, "dora", "pw-dora", "desk")
	if bob.Bare != "bob@amt-b.example" {
		t.Fatalf("bound %q", bob.JID)
	}
	bob.Send(t, `<message to='dora@amt-b.example' type='chat' id='m1'><body>Hallo &amp; gute Nacht</body><reply xmlns='urn:xmpp:reply:0' to='dora@amt-b.example' id='x'/></message>`)
	got := dora.Expect(t, 10*time.Second, "bob's message", func(s *Stanza) bool { return s.XMLName.Local == "message" && s.Attr("id") == "m1" })
	if got.Body() != "Hallo & gute Nacht" || got.Child("urn:xmpp:reply:0", "reply") == nil {
		t.Fatalf("received %s", got.String())
	}
	data := bytes.Repeat([]byte("Arztbrief "), 500)
	url := bob.Upload(t, "brief.txt", "text/plain", data)
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(b, data) {
		t.Fatalf("GET %s: %s, %d bytes", url, resp.Status, len(b))
	}
	srv.Kill(t)
	Eventually(t, 10*time.Second, "bob's session to end", func() error {
		if bob.Connected() {
			return io.ErrNoProgress
		}
		return nil
	})
	srv.Restart(t)
	bob.Reconnect(t)
	dora.Reconnect(t)
	bob.Send(t, `<message to='dora@amt-b.example' type='chat' id='m2'><body>wieder da</body></message>`)
	dora.Expect(t, 10*time.Second, "message after the restart", func(s *Stanza) bool { return s.Body() == "wieder da" })
}
