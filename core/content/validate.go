package content

import "time"

// Time windows of content-08 §9.1.
const (
	// MaxExpirySkew is how far in the past an absolute expiry, or in the
	// future any expiry, may lie ("more than a year").
	MaxExpirySkew = 365 * 24 * time.Hour
	// MaxFutureSkew is how far in the future a sender timestamp may lie
	// ("more than a few minutes").
	MaxFutureSkew = 5 * time.Minute
)

// CheckTimes applies the time-dependent discard rules of content-08 §9.1 at
// the given time: an absolute expiry more than a year in the past, any expiry
// more than a year in the future, and a sender timestamp (extension 3) more
// than a few minutes in the future. Decode does not apply them, so that old
// documents (the draft's examples, archives) can still be read.
func (m *Message) CheckTimes(now time.Time) error {
	if e := m.Expires; e != nil {
		if e.Relative {
			if time.Duration(e.Time)*time.Second > MaxExpirySkew {
				return verr("expires", -1, ErrStale, "relative expiry of %ds is more than a year (content-08 §9.1)", e.Time)
			}
		} else {
			at := time.Unix(int64(e.Time), 0)
			if at.Before(now.Add(-MaxExpirySkew)) {
				return verr("expires", -1, ErrStale, "absolute expiry %s is more than a year in the past (content-08 §9.1)", at.UTC().Format(time.RFC3339))
			}
			if at.After(now.Add(MaxExpirySkew)) {
				return verr("expires", -1, ErrStale, "absolute expiry %s is more than a year in the future (content-08 §9.1)", at.UTC().Format(time.RFC3339))
			}
		}
	}
	if ts, ok := m.Extensions.SenderTimestamp(); ok && ts.After(now.Add(MaxFutureSkew)) {
		return verr("mimiExtensions[3]", -1, ErrStale, "sender timestamp %s is in the future (content-08 §9.1)", ts.Format(time.RFC3339Nano))
	}
	return nil
}
