package broker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

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
		base: strings.TrimRight(s.MgmtURL, "/"),
		user: s.MgmtUser,
		pass: s.MgmtPassword,
		hc:   &http.Client{Transport: rt, Timeout: mgmtClientTimeout(s)},
	}, nil
}

// GetJSON decodes GET /api/<path>?<query> into v. path segments must
// already be escaped (url.PathEscape a vhost).
func (m *MgmtReader) GetJSON(ctx context.Context, path string, query url.Values, v any) error {
	u := m.base + "/api/" + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.SetBasicAuth(m.user, m.pass)
	req.Header.Set("Accept", "application/json")
	resp, err := m.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= http.StatusBadRequest {
		er := rabbithole.ErrorResponse{StatusCode: resp.StatusCode}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(body, &er) != nil {
			er.Message = fmt.Sprintf("HTTP %d", resp.StatusCode)
		}
		er.StatusCode = resp.StatusCode
		return er
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("decode %s: %w", path, err)
	}
	return nil
}
