package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// TestForwarder: a standby's MIMI listener passes a connection's bytes both ways to the leader
// it finds at that moment, closes it when there is none, and accepts nothing after Close.
func TestForwarder(t *testing.T) {
	leader, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer leader.Close()
	go func() {
		for {
			c, err := leader.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }() // an echo stands in for the leader's TLS listener
		}
	}()
	var current atomic.Value
	current.Store("")
	f, err := startForwarder("127.0.0.1:0", func(context.Context) (string, error) {
		if a := current.Load().(string); a != "" {
			return a, nil
		}
		return "", errors.New("no leader")
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	addr := f.ln.Addr().String()

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatalf("without a leader the connection stayed open and gave %d bytes", n)
	}
	c.Close()

	current.Store(leader.Addr().String())
	c, err = net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	if _, err := c.Write([]byte("client hello")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len("client hello"))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "client hello" {
		t.Fatalf("through the forwarder: %q, %v", got, err)
	}

	f.Close() // ends the forwarded connection too
	if _, err := io.ReadFull(c, make([]byte, 1)); err == nil {
		t.Fatal("a forwarded connection outlived Close")
	}
	c.Close()
	if c, err := net.DialTimeout("tcp", addr, 5*time.Second); err == nil {
		c.Close()
		t.Fatal("the forwarder still accepts after Close")
	}
}
