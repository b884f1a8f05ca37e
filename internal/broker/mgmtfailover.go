package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// failoverTransport sends each management API request to the first of
// several APIs (one per cluster node) that takes it, the way the AMQP
// dialer fails over between --url nodes: each try gets its own timeout,
// and the API that answered is tried first next time. Any node's API
// shows the whole cluster, so which one answers does not change a result.
type failoverTransport struct {
	next    http.RoundTripper
	bases   []string // base URLs without credentials or trailing '/'
	timeout time.Duration
	current atomic.Int32
}

func newFailoverTransport(next http.RoundTripper, bases []string, timeout time.Duration) *failoverTransport {
	return &failoverTransport{next: next, bases: bases, timeout: timeout}
}

// answering is the base URL of the API tried first: the one that took
// the last request.
func (t *failoverTransport) answering() string { return t.bases[t.current.Load()] }

func (t *failoverTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	full := req.URL.String()
	rest, ok := "", false
	for _, b := range t.bases {
		if r, found := strings.CutPrefix(full, b); found {
			rest, ok = r, true
			break
		}
	}
	if !ok {
		return t.next.RoundTrip(req)
	}
	start := int(t.current.Load())
	var tried []mgmtAttempt
	for n := range t.bases {
		i := (start + n) % len(t.bases)
		resp, err := t.try(req, t.bases[i]+rest, n > 0)
		if err == nil {
			t.current.Store(int32(i))
			return resp, nil
		}
		tried = append(tried, mgmtAttempt{API: t.bases[i], Err: err})
		if req.Context().Err() != nil || !worthAnotherNode(req, err) {
			if n == 0 {
				return nil, err
			}
			break
		}
	}
	return nil, &MgmtAllFailedError{Attempts: tried, Timeout: t.timeout}
}

// try sends req to target under its own timeout; the timeout ends when
// the response body is closed.
func (t *failoverTransport) try(req *http.Request, target string, again bool) (*http.Response, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	ctx, cancel := req.Context(), context.CancelFunc(func() {})
	limit := t.timeout
	if l, ok := ctx.Value(tryLimitKey{}).(time.Duration); ok {
		limit = l
	}
	if limit > 0 {
		ctx, cancel = context.WithTimeout(ctx, limit)
	}
	r := req.Clone(ctx)
	r.URL, r.Host = u, ""
	if again && req.Body != nil && req.Body != http.NoBody {
		if req.GetBody == nil {
			cancel()
			return nil, errors.New("request body cannot be sent twice")
		}
		if r.Body, err = req.GetBody(); err != nil {
			cancel()
			return nil, err
		}
	}
	resp, err := t.next.RoundTrip(r)
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

// tryLimitKey carries, in a request's context, the time one node gets
// for it in place of --timeout (PostJSON: a definitions import).
type tryLimitKey struct{}

// worthAnotherNode reports whether err says nothing reached the API, so
// the next node may take the request: the connection was refused or not
// made in time, or, for a read, no answer came in time.
func worthAnotherNode(req *http.Request, err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	if isRefused(err) {
		return true
	}
	read := req.Method == http.MethodGet || req.Method == http.MethodHead
	return read && (errors.Is(err, context.DeadlineExceeded) || isTimeout(err))
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

type mgmtAttempt struct {
	API string
	Err error
}

// MgmtAllFailedError says that none of the management APIs took a
// request, with what each did.
type MgmtAllFailedError struct {
	Attempts []mgmtAttempt
	Timeout  time.Duration
}

func (e *MgmtAllFailedError) Error() string {
	parts := make([]string, len(e.Attempts))
	for i, a := range e.Attempts {
		parts[i] = a.API + ": " + e.describe(a.Err)
	}
	return "no management API answered (" + strings.Join(parts, "; ") + ")"
}

func (e *MgmtAllFailedError) describe(err error) string {
	switch {
	case isRefused(err):
		return "refuses connections"
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		return fmt.Sprintf("no answer within %s", e.Timeout)
	}
	return err.Error()
}

// Unwrap lets errors.Is see every attempt's cause.
func (e *MgmtAllFailedError) Unwrap() []error {
	errs := make([]error, len(e.Attempts))
	for i, a := range e.Attempts {
		errs[i] = a.Err
	}
	return errs
}
