package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// PruneDeadLetters removes the dead letters stored before `before` (retention of dead letters;
// the stream's own MaxAge is the backstop) and returns how many it removed.
func (b *NATS) PruneDeadLetters(ctx context.Context, before time.Time) (int64, error) {
	return b.removeDeadLettersWhere(ctx, func(d DeadLetter, _ *event.Envelope) (bool, bool) {
		if !d.Time.Before(before) {
			return false, true // in time order: the rest are newer
		}
		return true, false
	})
}

// EraseDeadLetters removes every dead letter whose envelope match selects (erasure of a
// person's data), and those whose data cannot be read when match selects nil, and returns how
// many it removed.
func (b *NATS) EraseDeadLetters(ctx context.Context, match func(env *event.Envelope) bool) (int64, error) {
	return b.removeDeadLettersWhere(ctx, func(d DeadLetter, env *event.Envelope) (bool, bool) {
		return match(env), false
	})
}

// removeDeadLettersWhere walks the dead letters oldest first; f says whether to remove one and
// whether to stop.
func (b *NATS) removeDeadLettersWhere(ctx context.Context, f func(DeadLetter, *event.Envelope) (remove, stop bool)) (int64, error) {
	var removed int64
	var after uint64
	for {
		page, err := b.ListDeadLetters(ctx, after, MaxDeadLetterList)
		if err != nil {
			return removed, err
		}
		for _, d := range page {
			after = d.Seq
			var env *event.Envelope
			if m, err := b.deadLetterMsg(ctx, d.Seq); err == nil {
				if data, err := b.DeadLetterData(m.Header, m.Data); err == nil {
					env, _ = event.Unmarshal(data)
				}
			}
			remove, stop := f(d, env)
			if remove {
				if err := b.removeDeadLetter(ctx, d.Seq); err != nil && !errors.Is(err, ErrDeadLetterNotFound) {
					return removed, fmt.Errorf("bus: remove dead letter %d: %w", d.Seq, err)
				}
				removed++
			}
			if stop {
				return removed, nil
			}
		}
		if len(page) < MaxDeadLetterList {
			return removed, nil
		}
	}
}
