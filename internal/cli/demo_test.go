package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/mqctl/mqctl/internal/brokertest"
)

func TestDemoProvesExactlyOnceAndCleansUp(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t) // only for the base URLs; the demo makes its own vhost
	res := runCLI(t, map[string]string{"MQCTL_URL": brokertest.BaseURL(), "MQCTL_MGMT_URL": env.MgmtURL},
		"demo", "--users", "8", "--backoff", "200ms,400ms", "--email-latency", "20ms", "-o", "json")
	if res.Code != 0 {
		t.Fatalf("demo exited %d; stderr:\n%s", res.Code, res.Stderr)
	}
	var v demoView
	if err := json.Unmarshal([]byte(res.Stdout), &v); err != nil {
		t.Fatalf("demo -o json: %v\n%s", err, res.Stdout)
	}
	if !v.OK || len(v.Users) != 16 || v.Replayed != 8 || v.DeadLettered != 8 {
		t.Errorf("report: ok %v, %d users, %d replayed, %d dead-lettered; want ok, 16, 8, 8", v.OK, len(v.Users), v.Replayed, v.DeadLettered)
	}
	vips := 0
	for _, u := range v.Users {
		if u.Emails != 1 || u.Points != 1 || (u.VIP && u.Coupons != 1) || (!u.VIP && u.Coupons != 0) {
			t.Errorf("user %s: %+v", u.Name, u)
		}
		if u.VIP {
			vips++
		}
	}
	if vips != 4 {
		t.Errorf("%d VIPs, want every fourth of 16", vips)
	}
	// The story goes to stderr with -o json, commands included.
	for _, want := range []string{"mqctl topology apply", "mqctl consume email --down", "mqctl dlq replay email.dlq"} {
		if !strings.Contains(res.Stderr, want) {
			t.Errorf("narration lacks %q", want)
		}
	}
	vhosts, err := env.Mgmt.ListVhosts()
	if err != nil {
		t.Fatal(err)
	}
	for _, vh := range vhosts {
		if vh.Name == v.Vhost {
			t.Errorf("demo vhost %s still exists without --keep", v.Vhost)
		}
	}
}
