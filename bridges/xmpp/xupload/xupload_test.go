package xupload_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"

	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/prosodytest"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/xconn"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/xupload"
)

// TestPut puts a file on a real Prosody's upload service (mod_http_file_share) as a component and
// gets the same bytes back from the URL it returns; a service that is not there is an error.
func TestPut(t *testing.T) {
	p := prosodytest.Start(t, prosodytest.Config{
		Domain:     "localhost",
		Components: []prosodytest.Component{{Domain: "mimi.localhost", Secret: "s"}},
		Upload:     true,
	})
	c := xconn.New(xconn.Config{Name: "users", Addr: jid.MustParse("mimi.localhost"), Secret: "s", Server: p.ComponentAddr(),
		ReconnectMin: 50 * time.Millisecond, ReconnectMax: time.Second, DialTimeout: 5 * time.Second, SendTimeout: 5 * time.Second,
		Log: slog.New(slog.DiscardHandler), Metrics: xconn.Metrics{
			Connected:  prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "connected"}, []string{"component"}),
			Reconnects: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "reconnects"}, []string{"component"}),
			Sent:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sent"}, []string{"component"}),
			Panics:     prometheus.NewCounter(prometheus.CounterOpts{Name: "panics"}),
		}}, func(xmlstream.TokenReadEncoder, *xml.StartElement) {})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := c.WaitUp(wctx); err != nil {
		t.Fatalf("component not connected: %v", err)
	}

	file := bytes.Repeat([]byte("Entlassbrief "), 1000)
	svc := xupload.Service{JID: jid.MustParse(p.UploadDomain), Conn: c, HTTP: &http.Client{Timeout: 10 * time.Second}, Timeout: 10 * time.Second}
	url, err := svc.Put(ctx, "brief.txt", "text/plain", file)
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(got, file) {
		t.Fatalf("GET %s: %s, %d bytes (%v), want the %d bytes put", url, resp.Status, len(got), err, len(file))
	}

	svc.JID = jid.MustParse("nothing.localhost")
	if url, err := svc.Put(ctx, "brief.txt", "text/plain", file); err == nil {
		t.Fatalf("Put to a service that does not exist returned %s", url)
	}
}
