package broker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	rabbithole "github.com/michaelklishin/rabbit-hole/v2"

	"github.com/mqctl/mqctl/internal/config"
	"github.com/mqctl/mqctl/internal/fail"
)

// MgmtReader reads management API resources that rabbit-hole cannot
// express: column selection, fields it does not decode, and cancellation
// through a context. It shares NewMgmt's TLS, timeout and typed 401, and
// its HTTP errors are rabbithole.ErrorResponse so MgmtError reads them.
type MgmtReader struct {
	base       string
	user, pass string
	hc         *http.Client
	// apis is how many management APIs a request may try in turn.
	apis int
	// timeout is --timeout: what one API gets for one request.
	timeout time.Duration
}

// NewMgmtReader returns a reader for the settings' management API.
func NewMgmtReader(s config.Settings) (*MgmtReader, error) {
	if _, err := url.Parse(s.MgmtURL); err != nil {
		return nil, fail.Usagef("invalid management URL: %v", err)
	}
	rt, err := mgmtTransport(s)
	if err != nil {
		return nil, err
	}
	return &MgmtReader{
		base:    strings.TrimRight(s.MgmtURL, "/"),
		user:    s.MgmtUser,
		pass:    s.MgmtPassword,
		hc:      &http.Client{Transport: rt, Timeout: mgmtClientTimeout(s)},
		apis:    max(1, len(s.MgmtURLs)),
		timeout: s.Timeout,
	}, nil
}

// GetJSON decodes GET /api/<path>?<query> into v. path segments must
// already be escaped (url.PathEscape a vhost).
func (m *MgmtReader) GetJSON(ctx context.Context, path string, query url.Values, v any) error {
	return m.do(ctx, m.hc, http.MethodGet, path, query, nil, v)
}

// Timeout is --timeout: what one management API gets for one request.
func (m *MgmtReader) Timeout() time.Duration { return m.timeout }

// GetJSONAllowing is GetJSON with extra time beyond --timeout: the
// broker builds a list of tens of thousands of objects whole before it
// sends a byte, so the bound that tells a dead API from a live one would
// cut a read the broker is carrying out. A timeout is a *SlowListError.
func (m *MgmtReader) GetJSONAllowing(ctx context.Context, path string, query url.Values, v any, extra time.Duration) error {
	if m.timeout <= 0 { // no bound at all
		return m.GetJSON(ctx, path, query, v)
	}
	limit := m.timeout + extra
	hc, ctx := m.within(ctx, limit)
	err := m.do(ctx, hc, http.MethodGet, path, query, nil, v)
	if err != nil && isTimeout(err) {
		return &SlowListError{Limit: limit, Extra: extra, Err: err}
	}
	return err
}

// SlowListError is a list read that did not come within the extended
// bound GetJSONAllowing gave it.
type SlowListError struct {
	Limit, Extra time.Duration
	Err          error
}

func (e *SlowListError) Error() string {
	return fmt.Sprintf("no answer within %s: %v", e.Limit, e.Err)
}

func (e *SlowListError) Unwrap() error { return e.Err }

// PostJSON sends body (JSON) with POST /api/<path>, bounded by limit
// instead of the client's timeout: a definitions import of thousands of
// objects takes the broker longer than any read.
func (m *MgmtReader) PostJSON(ctx context.Context, path string, body []byte, limit time.Duration) error {
	hc, ctx := m.within(ctx, limit)
	return m.do(ctx, hc, http.MethodPost, path, nil, body, nil)
}

// within is the client and context of a request that each management API
// tried may take up to limit for, in place of --timeout.
func (m *MgmtReader) within(ctx context.Context, limit time.Duration) (*http.Client, context.Context) {
	hc := *m.hc
	hc.Timeout = limit * time.Duration(m.apis)
	return &hc, context.WithValue(ctx, tryLimitKey{}, limit)
}

// PutJSON sends body (JSON) with PUT /api/<path>: it creates or replaces
// one object (a runtime parameter, say).
func (m *MgmtReader) PutJSON(ctx context.Context, path string, body []byte) error {
	return m.do(ctx, m.hc, http.MethodPut, path, nil, body, nil)
}

// Delete sends DELETE /api/<path>.
func (m *MgmtReader) Delete(ctx context.Context, path string) error {
	return m.do(ctx, m.hc, http.MethodDelete, path, nil, nil, nil)
}

// do sends one request and decodes a success into v (nil: discard it);
// an HTTP error becomes a rabbithole.ErrorResponse.
func (m *MgmtReader) do(ctx context.Context, hc *http.Client, method, path string, query url.Values, body []byte, v any) error {
	u := m.base + "/api/" + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	req.SetBasicAuth(m.user, m.pass)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= http.StatusBadRequest {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return errorResponse(resp.StatusCode, b)
	}
	if v == nil {
		_, err := io.Copy(io.Discard, resp.Body)
		return err
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("decode %s: %w", path, err)
	}
	return nil
}

// errorResponse reads the API's error body, {"error":…,"reason":…}.
// RabbitMQ 3.x sends some reasons as Erlang character lists (JSON arrays
// of code points), which rabbit-hole cannot decode: they are read as the
// text they are.
func errorResponse(status int, body []byte) rabbithole.ErrorResponse {
	er := rabbithole.ErrorResponse{StatusCode: status}
	var raw struct {
		Error  json.RawMessage `json:"error"`
		Reason json.RawMessage `json:"reason"`
	}
	if json.Unmarshal(body, &raw) != nil {
		er.Message = fmt.Sprintf("HTTP %d", status)
		return er
	}
	er.Message, er.Reason = erlangText(raw.Error), erlangText(raw.Reason)
	return er
}

// erlangText is a JSON string, or an array of code points, as text.
func erlangText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var points []rune
	if json.Unmarshal(raw, &points) == nil {
		return string(points)
	}
	return strings.TrimSpace(string(raw))
}
