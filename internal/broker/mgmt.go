package broker

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	rabbithole "github.com/michaelklishin/rabbit-hole/v2"

	"github.com/mqctl/mqctl/internal/config"
	"github.com/mqctl/mqctl/internal/fail"
)

// NewMgmt returns a management API client with the settings' timeout and
// TLS. Its errors are typed: an unreachable API is operational with a hint,
// 401/403 are fail.Auth.
func NewMgmt(s config.Settings) (*rabbithole.Client, error) {
	rt, err := mgmtTransport(s)
	if err != nil {
		return nil, err
	}
	c, err := rabbithole.NewTLSClient(s.MgmtURL, s.MgmtUser, s.MgmtPassword, rt)
	if err != nil {
		return nil, fail.Usagef("invalid management URL: %v", err)
	}
	c.SetTimeout(s.Timeout)
	return c, nil
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
	return &classifyingTransport{base: base, redactor: s.Redactor}, nil
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
		return nil, fail.Wrap(fail.Auth, &AuthError{URL: t.redactor.Redact(req.URL.Redacted()), Status: resp.StatusCode, Reason: t.redactor.Redact(body.Reason)})
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
	if advice := TLSAdvice(err); advice != "" {
		// The request URL (a page of queues with every column) buries the
		// reason; its scheme and host are enough.
		var ue *url.Error
		if errors.As(err, &ue) {
			if u, perr := url.Parse(ue.URL); perr == nil {
				msg = strings.Replace(msg, ue.Error(), fmt.Sprintf("%s %s://%s: %v", ue.Op, u.Scheme, u.Host, ue.Err), 1)
			}
		}
		return fmt.Errorf("%s: %s; %s", what, msg, advice)
	}
	if strings.Contains(msg, "connection refused") {
		return fmt.Errorf("%s: %s; is the management plugin enabled? run `rabbitmq-plugins enable rabbitmq_management`", what, msg)
	}
	return fmt.Errorf("%s: %s", what, msg)
}
