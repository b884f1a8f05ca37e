package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	rabbithole "github.com/michaelklishin/rabbit-hole/v2"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/mqctl/mqctl/internal/brokertest"
)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func sameJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func rabbitholePolicy(pattern, applyTo string, def map[string]any) rabbithole.Policy {
	return rabbithole.Policy{Pattern: pattern, ApplyTo: applyTo, Definition: def}
}

// getEventually polls a queue until a message is there (messages travel
// through TTLs and dead lettering asynchronously); the context bounds it.
func getEventually(ctx context.Context, t *testing.T, ch *amqp.Channel, queue string) amqp.Delivery {
	t.Helper()
	for {
		d, ok, err := ch.Get(queue, false)
		if err != nil {
			t.Fatalf("get %s: %v", queue, err)
		}
		if ok {
			return d
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no message arrived on %s", queue)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func deathReason(d amqp.Delivery) string {
	if r, ok := d.Headers["x-first-death-reason"].(string); ok {
		return r
	}
	return fmt.Sprint(d.Headers["x-death"])
}

// httpGetDefinitions returns the vhost's definitions JSON exactly as the
// broker writes it.
func httpGetDefinitions(env *brokertest.Env) (string, error) {
	req, err := http.NewRequest(http.MethodGet, env.MgmtURL+"/api/definitions/"+url.PathEscape(env.Vhost), nil)
	if err != nil {
		return "", err
	}
	req.SetBasicAuth(env.User, env.Password)
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET definitions: %s: %s", resp.Status, b)
	}
	return string(b), err
}
