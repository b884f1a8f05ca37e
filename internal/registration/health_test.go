package registration

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/mqctl/mqctl/internal/ledger"
)

// /healthz follows the relay: 200 connected, 200 through a short
// reconnect, 503 "degraded" once it has been away RelayDownAfter, and 200
// again when it is back.
func TestHealthzReportsTheRelay(t *testing.T) {
	db, err := ledger.Open(filepath.Join(t.TempDir(), "health.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	store, err := NewStore(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	h := &RelayHealth{since: now, now: func() time.Time { return now }}
	srv := httptest.NewServer(Handler(store, h))
	defer srv.Close()
	get := func() (int, map[string]any) {
		t.Helper()
		resp, err := http.Get(srv.URL + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	state := func(b map[string]any) any { r, _ := b["relay"].(map[string]any); return r["state"] }

	h.Observe(RelayEvent{Kind: "connected"})
	if code, b := get(); code != 200 || b["status"] != "ok" || state(b) != "connected" {
		t.Errorf("connected: %d %v", code, b)
	}
	h.Observe(RelayEvent{Kind: "disconnected", Err: errors.New("connection refused")})
	now = now.Add(RelayDownAfter / 2)
	if code, b := get(); code != 200 || state(b) != "disconnected" {
		t.Errorf("a short reconnect: %d %v", code, b)
	}
	now = now.Add(RelayDownAfter)
	if code, b := get(); code != 503 || b["status"] != "degraded" || b["relay"].(map[string]any)["last_error"] != "connection refused" {
		t.Errorf("away for long: %d %v", code, b)
	}
	h.Observe(RelayEvent{Kind: "connected"})
	if code, b := get(); code != 200 || b["status"] != "ok" {
		t.Errorf("back: %d %v", code, b)
	}
}
