package broker

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	rabbithole "github.com/michaelklishin/rabbit-hole/v2"

	"github.com/mqctl/mqctl/internal/config"
)

// RabbitMQ 3.x sends some import errors' reasons as Erlang character
// lists: they read as the text they are.
func TestErrorResponseReadsErlangCharacterLists(t *testing.T) {
	for body, want := range map[string]rabbithole.ErrorResponse{
		`{"error":"bad_request","reason":"inequivalent arg"}`:   {StatusCode: 400, Message: "bad_request", Reason: "inequivalent arg"},
		`{"error":"bad_request","reason":[110,111,32,113,117]}`: {StatusCode: 400, Message: "bad_request", Reason: "no qu"},
		`<html>Bad Request</html>`:                              {StatusCode: 400, Message: "HTTP 400"},
		`{"error":"bad_request","reason":{"nested":"object"}}`:  {StatusCode: 400, Message: "bad_request", Reason: `{"nested":"object"}`},
	} {
		if got := errorResponse(400, []byte(body)); got != want {
			t.Errorf("%s: %+v, want %+v", body, got, want)
		}
	}
}

// PostJSON sends the body as JSON within its own limit, not the client's
// timeout, and an error status comes back as a rabbithole.ErrorResponse.
func TestPostJSONHasItsOwnLimit(t *testing.T) {
	var got map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/api/definitions/v%2F1" && r.URL.RawPath != "/api/definitions/v%2F1" ||
			r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, `{"error":"bad_request","reason":"wrong request"}`, 400)
			return
		}
		b, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(b, &got)
		time.Sleep(300 * time.Millisecond) // longer than the client's timeout
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	r, err := NewMgmtReader(config.Settings{MgmtURL: srv.URL, MgmtURLs: []string{srv.URL}, Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.PostJSON(context.Background(), "definitions/v%2F1", []byte(`{"queues":[]}`), 5*time.Second); err != nil {
		t.Fatalf("post within its own limit: %v", err)
	}
	if _, ok := got["queues"]; !ok {
		t.Errorf("body received %v", got)
	}
	err = r.PostJSON(context.Background(), "definitions/other", []byte(`{}`), 5*time.Second)
	var er rabbithole.ErrorResponse
	if !errors.As(err, &er) || er.StatusCode != 400 || er.Reason != "wrong request" {
		t.Errorf("error status: %v", err)
	}

	// Several APIs: each try gets the post's limit, not --timeout.
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	r, err = NewMgmtReader(config.Settings{MgmtURL: dead.URL, MgmtURLs: []string{dead.URL, srv.URL}, Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.PostJSON(context.Background(), "definitions/v%2F1", []byte(`{"queues":[]}`), 5*time.Second); err != nil {
		t.Fatalf("post through a refused API to a slow one: %v", err)
	}
}

// GetJSONAllowing gives a list read --timeout plus its extra time, and a
// read that runs out of even that says so, naming both bounds.
func TestGetJSONAllowingWaitsLongerThanTimeout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(300 * time.Millisecond) // longer than the client's timeout
		_, _ = w.Write([]byte(`[{"name":"q1"}]`))
	}))
	defer srv.Close()
	s := config.Settings{MgmtURL: srv.URL, MgmtURLs: []string{srv.URL}, Timeout: 100 * time.Millisecond}
	r, err := NewMgmtReader(s)
	if err != nil {
		t.Fatal(err)
	}
	var qs []map[string]any
	if err := r.GetJSON(context.Background(), "queues/v", nil, &qs); err == nil || !isTimeout(err) {
		t.Fatalf("plain read: %v, want a timeout", err)
	}
	if err := r.GetJSONAllowing(context.Background(), "queues/v", nil, &qs, 10*time.Second); err != nil || len(qs) != 1 {
		t.Fatalf("read with extra time: %v, %v", qs, err)
	}
	err = r.GetJSONAllowing(context.Background(), "queues/v", nil, &qs, 50*time.Millisecond)
	var slow *SlowListError
	if !errors.As(err, &slow) || slow.Limit != 150*time.Millisecond {
		t.Fatalf("read out of its extra time: %v, want a SlowListError of 150ms", err)
	}
	problem, hint, ok := MgmtUnreachable(s, err)
	if !ok || !strings.Contains(problem, "within 150ms (--timeout 100ms plus 50ms") || !strings.Contains(hint, "raise --timeout") {
		t.Errorf("explained as %q; %q", problem, hint)
	}
}
