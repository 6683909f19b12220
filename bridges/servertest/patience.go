package servertest

import (
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/testwait"
)

// Scale returns a polling deadline d scaled for the machine the tests run on (testwait.Scale:
// 4 times under CI, or $MIMI_TEST_PATIENCE times, adding at most 2 minutes).
func Scale(d time.Duration) time.Duration { return testwait.Scale(d) }
