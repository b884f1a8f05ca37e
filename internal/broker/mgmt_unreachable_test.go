package broker

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

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
