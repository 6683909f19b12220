package main

import (
	"context"
	"errors"
	"testing"

	"github.com/mimi-gateway/mimi-gateway/bridges"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/provider"
)

// listAdapter is an adapter that knows a fixed set of users (as the XMPP adapter's known_users
// list does), or fails every lookup when err is set.
type listAdapter struct {
	net   event.Network
	users map[event.UserURI]bool
	err   error
}

func (a *listAdapter) Network() event.Network                              { return a.net }
func (a *listAdapter) Start(context.Context) error                         { return nil }
func (a *listAdapter) Stop(context.Context) error                          { return nil }
func (a *listAdapter) Ready(context.Context) error                         { return nil }
func (a *listAdapter) Core() *bridges.Core                                 { return nil }
func (a *listAdapter) HandleMessage(context.Context, *bridges.Event) error { return nil }
func (a *listAdapter) UserExists(_ context.Context, u event.UserURI) (bool, error) {
	return a.users[u], a.err
}

// plainAdapter cannot check users.
type plainAdapter struct{}

func (plainAdapter) Network() event.Network                              { return event.NetworkMatrix }
func (plainAdapter) Start(context.Context) error                         { return nil }
func (plainAdapter) Stop(context.Context) error                          { return nil }
func (plainAdapter) Ready(context.Context) error                         { return nil }
func (plainAdapter) Core() *bridges.Core                                 { return nil }
func (plainAdapter) HandleMessage(context.Context, *bridges.Event) error { return nil }

var _ bridges.UserChecker = (*listAdapter)(nil)

func TestUserDirectory(t *testing.T) {
	alice, bob, carol := event.UserURI("mimi://a.example/u/alice"), event.UserURI("mimi://a.example/u/bob"), event.UserURI("mimi://a.example/u/carol")
	matrix := &listAdapter{net: event.NetworkMatrix, users: map[event.UserURI]bool{alice: true}}
	xmpp := &listAdapter{net: event.NetworkXMPP, users: map[event.UserURI]bool{alice: true, bob: true}}
	down := &listAdapter{net: event.NetworkMatrix, err: errors.New("homeserver unreachable")}
	tests := []struct {
		name     string
		adapters []bridges.Adapter
		complete bool
		u        event.UserURI
		want     event.Network
		noSuch   bool // the error wraps provider.ErrNoSuchUser
		fails    bool // another error
	}{
		{"first that knows her", []bridges.Adapter{matrix, xmpp}, true, alice, event.NetworkMatrix, false, false},
		{"start order decides", []bridges.Adapter{xmpp, matrix}, true, alice, event.NetworkXMPP, false, false},
		{"only one knows", []bridges.Adapter{matrix, xmpp}, true, bob, event.NetworkXMPP, false, false},
		{"nobody knows", []bridges.Adapter{matrix, xmpp}, true, carol, "", true, false},
		{"no adapter can check", []bridges.Adapter{&plainAdapter{}}, true, alice, "", true, false},
		{"still starting", []bridges.Adapter{matrix}, false, alice, "", false, true},
		{"one down, other knows", []bridges.Adapter{down, xmpp}, true, bob, event.NetworkXMPP, false, false},
		{"one down, other does not know", []bridges.Adapter{down, xmpp}, true, carol, "", false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := &userDirectory{}
			for _, a := range tc.adapters {
				d.add(a)
			}
			if tc.complete {
				d.markComplete()
			}
			got, err := d.LookupUser(t.Context(), tc.u)
			switch {
			case tc.noSuch && !errors.Is(err, provider.ErrNoSuchUser):
				t.Fatalf("LookupUser(%s) = %q, %v; want ErrNoSuchUser", tc.u, got, err)
			case tc.fails && (err == nil || errors.Is(err, provider.ErrNoSuchUser)):
				t.Fatalf("LookupUser(%s) = %q, %v; want an error that is not ErrNoSuchUser", tc.u, got, err)
			case !tc.noSuch && !tc.fails && (err != nil || got != tc.want):
				t.Fatalf("LookupUser(%s) = %q, %v; want %s", tc.u, got, err, tc.want)
			}
		})
	}
}
