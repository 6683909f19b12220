package main

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/mimi-gateway/mimi-gateway/bridges"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/provider"
)

// userDirectory answers the provider's questions about local users from the running adapters
// that implement bridges.UserChecker. run adds each adapter once it has started and marks the
// directory complete after the last one: until then a lookup is an error (the partner retries),
// never a wrong "no such user".
type userDirectory struct {
	mu       sync.RWMutex
	adapters []bridges.Adapter
	complete bool
}

var _ provider.UserDirectory = (*userDirectory)(nil)

// add makes a started adapter part of the directory.
func (d *userDirectory) add(a bridges.Adapter) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.adapters = append(d.adapters, a)
}

// markComplete says that every enabled adapter has been added.
func (d *userDirectory) markComplete() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.complete = true
}

// LookupUser asks each adapter in start order; the first that knows u serves her.
func (d *userDirectory) LookupUser(ctx context.Context, u event.UserURI) (event.Network, error) {
	d.mu.RLock()
	as, complete := d.adapters, d.complete
	d.mu.RUnlock()
	if !complete {
		return "", errors.New("the adapters are still starting")
	}
	var errs []error
	for _, a := range as {
		c, ok := a.(bridges.UserChecker)
		if !ok {
			continue
		}
		found, err := c.UserExists(ctx, u)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", a.Network(), err))
			continue
		}
		if found {
			return a.Network(), nil
		}
	}
	if len(errs) > 0 {
		return "", errors.Join(errs...)
	}
	return "", fmt.Errorf("%w: %s", provider.ErrNoSuchUser, u)
}
