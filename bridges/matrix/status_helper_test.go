package matrix

import (
	"github.com/mimi-gateway/mimi-gateway/core/content"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// isStatus reports whether env is a receipt envelope whose status report holds status.
func isStatus(env *event.Envelope, status content.Status) bool {
	if env.Kind != event.KindReceipt {
		return false
	}
	m, err := content.Decode(env.Content)
	if err != nil {
		return false
	}
	rep, ok, err := m.StatusReport()
	if !ok || err != nil {
		return false
	}
	for _, r := range rep {
		if r.Status == status {
			return true
		}
	}
	return false
}
