package testwait

import (
	"testing"
	"time"
)

func TestPatience(t *testing.T) {
	for _, tc := range []struct {
		name      string
		ci, scale string
		want      float64
	}{
		{"quiet machine", "", "", 1},
		{"CI", "true", "", CIPatience},
		{"CI=1", "1", "", CIPatience},
		{"CI=false", "false", "", 1},
		{"CI unparsable", "yes please", "", 1},
		{"set", "", "2.5", 2.5},
		{"set wins over CI", "true", "8", 8},
		{"below 1 ignored", "true", "0.5", CIPatience},
		{"unparsable ignored", "", "fast", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"CI": tc.ci, "MIMI_TEST_PATIENCE": tc.scale}
			if got := patience(func(k string) string { return env[k] }); got != tc.want {
				t.Fatalf("patience = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestScale(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		f    float64
		want time.Duration
	}{
		{10 * time.Second, 1, 10 * time.Second},
		{10 * time.Second, 4, 40 * time.Second},
		{10 * time.Second, 2.5, 25 * time.Second},
		{time.Minute, 4, 3 * time.Minute},
		{4 * time.Minute, 4, 4*time.Minute + MaxExtra},
		{4 * time.Minute, 1, 4 * time.Minute},
	} {
		if got := scale(tc.d, tc.f); got != tc.want {
			t.Errorf("scale(%s, %v) = %s, want %s", tc.d, tc.f, got, tc.want)
		}
	}
}
