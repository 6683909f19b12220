package content

import (
	"math"
	"testing"
	"time"
)

func TestURLExpiry(t *testing.T) {
	for _, tc := range []struct {
		in   time.Time
		want uint32
	}{
		{time.Time{}, 0},
		{time.Unix(-5, 0), 0},
		{time.Unix(1_800_000_000, 999), 1_800_000_000},
		{time.Unix(1<<33, 0), math.MaxUint32},
	} {
		if got := URLExpiry(tc.in); got != tc.want {
			t.Errorf("URLExpiry(%v) = %d, want %d", tc.in, got, tc.want)
		}
	}
}
