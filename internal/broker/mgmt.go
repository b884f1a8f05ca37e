package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	rabbithole "github.com/michaelklishin/rabbit-hole/v2"

	"github.com/mqctl/mqctl/internal/config"
	"github.com/mqctl/mqctl/internal/fail"
)

// NewMgmt returns a management API client with the settings' timeout and
// TLS. Its errors are typed: an unreachable API is operational with a hint,
// 401/403 are fail.Auth.
func NewMgmt(s config.Settings) (*rabbithole.Client, error) {
	c, _, err := NewMgmtAnswering(s)
	return c, err
}

// NewMgmtAnswering is NewMgmt that also returns which management API took
// the last request (of several, one per node), to name it in a report.
func NewMgmtAnswering(s config.Settings) (*rabbithole.Client, func() string, error) {
	rt, err := mgmtTransport(s)
	if err != nil {
		return nil, nil, err
	}
	c, err := rabbithole.NewTLSClient(s.MgmtURL, s.MgmtUser, s.MgmtPassword, rt)
	if err != nil {
		return nil, nil, fail.Usagef("invalid management URL: %v", err)
	}
	c.SetTimeout(mgmtClientTimeout(s))
	answered := func() string { return s.MgmtURL }
	if ft, ok := rt.(*failoverTransport); ok {
		answered = ft.answering
	}
	return c, answered, nil
}

// mgmtClientTimeout bounds a whole request: each management API tried
// gets its own --timeout (see failoverTransport).
func mgmtClientTimeout(s config.Settings) time.Duration {
	if s.Timeout <= 0 {
		return 0
	}
	return s.Timeout * time.Duration(max(1, len(s.MgmtURLs)))
}

// mgmtTransport is the HTTP transport every management API client shares:
// the settings' TLS, and 401 typed as fail.Auth.
func mgmtTransport(s config.Settings) (http.RoundTripper, error) {
	base := http.DefaultTransport.(*http.Transport).Clone()
	if strings.HasPrefix(s.MgmtURL, "https://") {
		c, err := TLSConfig(s.TLS)
		if err != nil {
			return nil, err
		}
		base.TLSClientConfig = c
	}
	var rt http.RoundTripper = &classifyingTransport{base: base, redactor: s.Redactor}
	if len(s.MgmtURLs) > 1 {
		rt = newFailoverTransport(rt, s.MgmtURLs, s.Timeout)
	}
	return rt, nil
}

// AuthError is returned by the management client on HTTP 401.
type AuthError struct {
	URL    string
	Status int
	// Reason is the API's own word, e.g. "Not administrator user" when the
	// credentials are right but the user's tags are not enough.
	Reason string
}

func (e *AuthError) Error() string {
	switch {
	case strings.Contains(e.Reason, "administrator"):
		return fmt.Sprintf("management API %s refused the request (401: %s): it needs a user with the administrator tag (`rabbitmqctl set_user_tags USER administrator`)", e.URL, e.Reason)
	case e.Status == http.StatusUnauthorized:
		return fmt.Sprintf("management API %s refused the credentials (401): wrong user or password, or the user lacks the management/monitoring tag", e.URL)
	}
	return fmt.Sprintf("management API %s refused access (%d)", e.URL, e.Status)
}

type classifyingTransport struct {
	base     http.RoundTripper
	redactor *config.Redactor
}

func (t *classifyingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	// rabbit-hole turns 401 into an untyped string; type it here instead.
	if resp.StatusCode == http.StatusUnauthorized {
		var body struct {
			Reason string `json:"reason"`
		}
		_ = json.NewDecoder(io.LimitReader(resp.Body, 4<<10)).Decode(&body)
		resp.Body.Close()
		api := req.URL.Scheme + "://" + req.URL.Host
		return nil, fail.Wrap(fail.Auth, &AuthError{URL: t.redactor.Redact(api), Status: resp.StatusCode, Reason: t.redactor.Redact(body.Reason)})
	}
	return resp, nil
}

// MgmtError rewrites a management client error for humans: typed, with a
// hint, password-free.
func MgmtError(s config.Settings, what string, err error) error {
	if err == nil {
		return nil
	}
	msg := s.Redactor.Redact(err.Error())
	if k, ok := fail.KindOf(err); ok && k == fail.Auth {
		// The HTTP client's wrapping repeats the request's URL, query and
		// all; the AuthError inside names the API.
		var ae *AuthError
		if errors.As(err, &ae) {
			msg = ae.Error()
		}
		return fail.Authf("%s: %s", what, msg)
	}
	var er rabbithole.ErrorResponse
	if errors.As(err, &er) {
		switch er.StatusCode {
		case http.StatusForbidden:
			return fail.Authf("%s: permission refused by the management API (403): %s %s", what, er.Message, er.Reason)
		case http.StatusNotFound:
			return fmt.Errorf("%s: not found (404): %s", what, er.Reason)
		}
		return fmt.Errorf("%s: management API error %d: %s %s", what, er.StatusCode, er.Message, er.Reason)
	}
	if problem, hint, ok := MgmtUnreachable(s, err); ok {
		return fmt.Errorf("%s: %s; %s", what, problem, hint)
	}
	return fmt.Errorf("%s: %s", what, msg)
}

// MgmtUnreachable explains a management API request that got no HTTP
// response: what happened (naming the API's address, never the request's
// path and query) and what to try. ok is false for any other error,
// an interruption (context canceled) included.
func MgmtUnreachable(s config.Settings, err error) (problem, hint string, ok bool) {
	var ue *url.Error
	if k, _ := fail.KindOf(err); k == fail.Auth || !errors.As(err, &ue) || errors.Is(err, context.Canceled) {
		return "", "", false
	}
	var all *MgmtAllFailedError
	if errors.As(err, &all) {
		return s.Redactor.Redact(all.Error()),
			"check that the nodes run with the management plugin enabled (`rabbitmq-plugins enable rabbitmq_management`) and that the network lets port 15672 (15671 for https) through, point --mgmt-url at a reachable API, or raise --timeout", true
	}
	api := s.MgmtURL
	if u, perr := url.Parse(ue.URL); perr == nil && u.Host != "" {
		api = u.Scheme + "://" + u.Host
	}
	api = s.Redactor.Redact(api)
	var slow *SlowListError
	switch {
	case errors.As(err, &slow):
		return fmt.Sprintf("the management API at %s answered, but did not send the list within %s (--timeout %s plus %s for the objects the broker holds)", api, slow.Limit, s.Timeout, slow.Extra),
			"the broker is too busy to build the list: try again when it is quieter, or raise --timeout", true
	case ue.Timeout():
		return fmt.Sprintf("the management API at %s did not answer within %s", api, s.Timeout),
			"check that --mgmt-url names the management API's port (15672, 15671 for https) of a running node and that the network lets it through, or raise --timeout", true
	case isRefused(ue.Err):
		return fmt.Sprintf("the management API at %s refuses connections", api),
			"is the management plugin enabled? run `rabbitmq-plugins enable rabbitmq_management`, or point --mgmt-url at the API", true
	}
	cause := s.Redactor.Redact(ue.Err.Error())
	if strings.Contains(cause, "malformed HTTP response") || strings.Contains(cause, `"AMQP`) {
		// An AMQP listener answers an HTTP request with its protocol
		// header.
		return fmt.Sprintf("the peer at %s does not speak HTTP: it answered with the AMQP protocol header", api),
			"point --mgmt-url at the management API (port 15672, 15671 for https), not the AMQP port", true
	}
	hint = "check --mgmt-url"
	if advice := TLSAdvice(err); advice != "" {
		hint = advice
	}
	return fmt.Sprintf("cannot reach the management API at %s: %s", api, cause), hint, true
}

// isRefused reports whether err is a TCP connection refused.
func isRefused(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || strings.Contains(err.Error(), "connection refused")
}

// VhostMissing is the one error for a vhost the broker at where does not
// have, whichever protocol found out: a usage error (exit 2), since the
// URL or --vhost names it.
func VhostMissing(vhost, where string) error {
	return fail.Usagef("vhost %q does not exist on %s; create it with `rabbitmqctl add_vhost %s`, or fix the vhost named in the URL path, --vhost or the topology file", vhost, where, vhost)
}

// MgmtVhostError is MgmtError for a request about one vhost: a 404 means
// the vhost is not there (VhostMissing).
func MgmtVhostError(s config.Settings, vhost, what string, err error) error {
	if VhostNotFound(err) {
		return VhostMissing(vhost, s.MgmtURL)
	}
	return MgmtError(s, what, err)
}

// VhostNotFound reports a management API answer that the vhost of the
// request does not exist: 404 from the lists, 400 vhost_not_found from
// GET /api/definitions/{vhost}.
func VhostNotFound(err error) bool {
	var er rabbithole.ErrorResponse
	if !errors.As(err, &er) {
		return false
	}
	return er.StatusCode == http.StatusNotFound ||
		er.StatusCode == http.StatusBadRequest && strings.Contains(er.Message+" "+er.Reason, "vhost_not_found")
}
