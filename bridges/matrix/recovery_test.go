package matrix

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"testing"

	"maunium.net/go/mautrix"
)

// TestServerUnreachable: which failures mean that the homeserver did not answer (the handler
// waits for it and tries again at once) and which are answers (the bus's retries decide).
func TestServerUnreachable(t *testing.T) {
	refused := &url.Error{Op: "Put", URL: "http://127.0.0.1:1/_matrix/client/v3/rooms", Err: &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}}
	status := func(code int) error {
		return mautrix.HTTPError{Response: &http.Response{StatusCode: code}, RespError: &mautrix.RespError{ErrCode: "M_UNKNOWN"}}
	}
	a := &Adapter{}
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused", fmt.Errorf("matrix: send: %w", mautrix.HTTPError{WrappedError: refused, Message: "failed to send request"}), true},
		{"connection refused (pointer)", fmt.Errorf("matrix: send: %w", &mautrix.HTTPError{WrappedError: refused}), true},
		{"transport error", fmt.Errorf("matrix: join: %w", refused), true},
		{"bad gateway", status(http.StatusBadGateway), true},
		{"service unavailable", status(http.StatusServiceUnavailable), true},
		{"gateway timeout", status(http.StatusGatewayTimeout), true},
		{"internal server error", status(http.StatusInternalServerError), false},
		{"forbidden", status(http.StatusForbidden), false},
		{"cancelled", fmt.Errorf("matrix: send: %w", &url.Error{Op: "Put", URL: "http://x", Err: context.Canceled}), false},
		{"other", errors.New("matrix: no portal"), false},
		{"nil", nil, false},
	} {
		if got := a.ServerUnreachable(c.err); got != c.want {
			t.Errorf("%s: ServerUnreachable(%v) = %v, want %v", c.name, c.err, got, c.want)
		}
	}
}
