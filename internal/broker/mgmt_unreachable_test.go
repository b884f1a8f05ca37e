package broker

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mqctl/mqctl/internal/brokertest"
	"github.com/mqctl/mqctl/internal/config"
	"github.com/mqctl/mqctl/internal/fail"
)

func mgmtSettings(t *testing.T, mgmtURL string, timeout time.Duration) config.Settings {
	t.Helper()
	s, err := config.Resolve(config.Flags{URLs: []string{"amqp://u:pw-three@127.0.0.1:1/"}, MgmtURL: mgmtURL, Timeout: timeout},
		func(string) (string, bool) { return "", false }, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestMgmtErrorNamesTheAPIAndWhatToTry(t *testing.T) {
	silent := silentListener(t)
	denied := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusUnauthorized) }))
	defer denied.Close()
	for _, c := range []struct {
		name, url string
		kind      fail.Kind
		want      []string
	}{
		{"refused", "http://127.0.0.1:1", fail.Operational, []string{"the management API at http://127.0.0.1:1 refuses connections", "rabbitmq-plugins enable rabbitmq_management"}},
		{"black hole", "http://" + silent, fail.Operational, []string{"the management API at http://" + silent + " did not answer within 300ms", "raise --timeout"}},
		{"credentials", denied.URL, fail.Auth, []string{"management API " + denied.URL + " refused the credentials (401)"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := mgmtSettings(t, c.url, 300*time.Millisecond)
			api, err := NewMgmtReader(s)
			if err != nil {
				t.Fatal(err)
			}
			var v any
			err = MgmtError(s, "list queues", api.GetJSON(context.Background(), "queues/%2F", map[string][]string{"columns": {"name,messages"}}, &v))
			msg := err.Error()
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q lacks %q", msg, w)
				}
			}
			if strings.Contains(msg, "columns") || strings.Contains(msg, "pw-three") {
				t.Errorf("error %q repeats the request's query or shows the password", msg)
			}
			if k, _ := fail.KindOf(err); k != c.kind {
				t.Errorf("kind = %v, want %v", k, c.kind)
			}
		})
	}
}

func TestMgmtFailsOverToTheNextNodesAPI(t *testing.T) {
	env := brokertest.New(t)
	silent := silentListener(t)
	const timeout = 500 * time.Millisecond
	for _, c := range []struct{ name, dead string }{
		{"refused first", "http://127.0.0.1:1"},
		{"black hole first", "http://" + silent},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := env.Settings(t)
			s.MgmtURLs = []string{c.dead, env.MgmtURL}
			s.MgmtURL = c.dead
			s.Timeout = timeout
			// Both clients: rabbit-hole's and the column-selecting reader.
			hole, err := NewMgmt(s)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			if _, err := hole.GetVhost(env.Vhost); err != nil {
				t.Fatalf("vhost through the second API: %v", err)
			}
			if took := time.Since(start); took > timeout+2*time.Second {
				t.Errorf("the first request took %s: the dead API held it past its own timeout", took)
			}
			// The API that answered is tried first next time: no new wait.
			start = time.Now()
			if _, err := hole.GetVhost(env.Vhost); err != nil {
				t.Fatal(err)
			}
			if took := time.Since(start); took >= timeout {
				t.Errorf("the second request took %s: it went to the dead API again", took)
			}
			api, err := NewMgmtReader(s)
			if err != nil {
				t.Fatal(err)
			}
			var qs []map[string]any
			if err := api.GetJSON(context.Background(), "queues/"+env.VhostPath(), nil, &qs); err != nil {
				t.Fatalf("queues through the second API: %v", err)
			}
		})
	}
}

func TestMgmtAllAPIsDownNamesEach(t *testing.T) {
	silent := silentListener(t)
	s := mgmtSettings(t, "http://127.0.0.1:1,http://"+silent, 300*time.Millisecond)
	if len(s.MgmtURLs) != 2 {
		t.Fatalf("mgmt urls = %v", s.MgmtURLs)
	}
	api, err := NewMgmtReader(s)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	start := time.Now()
	err = MgmtError(s, "list queues", api.GetJSON(context.Background(), "queues/%2F", nil, &v))
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("took %s with two APIs of 300ms each", took)
	}
	msg := err.Error()
	for _, w := range []string{"no management API answered", "http://127.0.0.1:1: refuses connections", "http://" + silent + ": no answer within 300ms", "--mgmt-url"} {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q lacks %q", msg, w)
		}
	}
	if k, _ := fail.KindOf(err); k != fail.Operational {
		t.Errorf("kind = %v, want operational", k)
	}
}
