package main

import (
	"context"
	"errors"

	"github.com/mimi-gateway/mimi-gateway/bridges"
	"github.com/mimi-gateway/mimi-gateway/core/consent"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/provider"
)

// reachBridge gives the adapters' commands (search, consent, reachability) the running MIMI
// endpoint: bridges.Reach over the provider in the runtime hooks, looked up on every call (the
// endpoint starts before the adapters and may be off).
type reachBridge struct{ hooks *runtimeHooks }

var _ bridges.Reach = reachBridge{}

func (r reachBridge) provider() (*provider.Provider, error) {
	if r.hooks == nil {
		return nil, bridges.ErrReachUnavailable
	}
	p := r.hooks.provider.Load()
	if p == nil {
		return nil, bridges.ErrReachUnavailable
	}
	return p, nil
}

func (r reachBridge) Search(ctx context.Context, user event.UserURI, text string) ([]bridges.Person, error) {
	p, err := r.provider()
	if err != nil {
		return nil, err
	}
	found, err := p.Search(ctx, user, text)
	switch {
	case errors.Is(err, provider.ErrAmbiguous):
		return nil, errors.Join(bridges.ErrSearchAmbiguous, err)
	case errors.Is(err, provider.ErrSearchRefused):
		return nil, errors.Join(bridges.ErrSearchRefused, err)
	case errors.Is(err, provider.ErrNoPartner):
		return nil, errors.Join(bridges.ErrNotPartner, err)
	case err != nil:
		return nil, err
	}
	out := make([]bridges.Person, 0, len(found))
	for _, f := range found {
		out = append(out, bridges.Person{User: f.User, Name: f.Name})
	}
	return out, nil
}

func (r reachBridge) Allow(ctx context.Context, user, other event.UserURI) error {
	p, err := r.provider()
	if err != nil {
		return err
	}
	return p.Allow(ctx, user, other)
}

func (r reachBridge) Deny(ctx context.Context, user, other event.UserURI) error {
	p, err := r.provider()
	if err != nil {
		return err
	}
	return p.Deny(ctx, user, other)
}

func (r reachBridge) Revoke(ctx context.Context, user, other event.UserURI) error {
	p, err := r.provider()
	if err != nil {
		return err
	}
	return p.Revoke(ctx, user, other)
}

func (r reachBridge) SetReachability(ctx context.Context, user event.UserURI, setting string) error {
	p, err := r.provider()
	if err != nil {
		return err
	}
	return p.SetReachability(ctx, user, consent.Reachability(setting))
}

func (r reachBridge) Consent(ctx context.Context, user event.UserURI) (bridges.ConsentView, error) {
	p, err := r.provider()
	if err != nil {
		return bridges.ConsentView{}, err
	}
	o, err := p.ConsentOf(ctx, user)
	if err != nil {
		return bridges.ConsentView{}, err
	}
	v := bridges.ConsentView{Setting: string(o.Setting), Own: o.Own}
	for _, g := range o.Granted {
		v.Accepted = append(v.Accepted, g.Requester)
	}
	for _, q := range o.Requests {
		v.Requests = append(v.Requests, bridges.ConsentRequest{Requester: q.Requester, Target: q.Target, State: string(q.State)})
	}
	return v, nil
}

func (r reachBridge) Report(ctx context.Context, user event.UserURI, room event.RoomURI, messageID []byte, note string) error {
	p, err := r.provider()
	if err != nil {
		return err
	}
	err = p.Report(ctx, user, room, messageID, note)
	if errors.Is(err, provider.ErrNotReportable) {
		return errors.Join(bridges.ErrNotReportable, err)
	}
	return err
}
