package cli

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/mqctl/mqctl/internal/brokertest"
	"github.com/mqctl/mqctl/internal/output"
)

func TestDemoFlags(t *testing.T) {
	var got *DemoOptions
	build := func(f *Factory) *cobra.Command {
		return NewCmdDemo(f, func(o *DemoOptions) error { got = o; return nil })
	}
	if err := runWithF(t, "demo", build, "demo"); err != nil {
		t.Fatal(err)
	}
	if got.Users != 20 || got.EmailLatency != 300*time.Millisecond || got.MaxAttempts != 3 || fmt.Sprint(got.Backoff) != "[1s 2s]" || got.Keep || got.Format != output.Table {
		t.Errorf("defaults = %+v", got)
	}
	if got.IO == nil || got.Settings == nil || got.Mgmt == nil {
		t.Error("options lack IO, Settings or Mgmt")
	}
	if err := runWithF(t, "demo", build, "demo", "--users", "5", "--keep", "--email-latency", "50ms", "--max-attempts", "4", "--backoff", "1s,2s,3s", "-o", "json"); err != nil {
		t.Fatal(err)
	}
	if got.Users != 5 || !got.Keep || got.EmailLatency != 50*time.Millisecond || got.MaxAttempts != 4 || fmt.Sprint(got.Backoff) != "[1s 2s 3s]" || got.Format != output.JSON {
		t.Errorf("options = %+v", got)
	}
	for _, args := range [][]string{
		{"demo", "--users", "0"},
		{"demo", "--max-attempts", "1"},
		{"demo", "--backoff", "0s"},
	} {
		got = nil
		if err := runWithF(t, "demo", build, args...); err == nil || got != nil {
			t.Errorf("%v: error %v, runF called %v; want a usage error before any work", args, err, got != nil)
		}
	}
}

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
	// Without --keep the vhost is gone at the end: no export pointing at it.
	if strings.Contains(res.Stderr, "export MQCTL_URL") {
		t.Errorf("the narration tells the reader to export a vhost it deletes:\n%s", res.Stderr)
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

// With --keep the vhost stays, and the end says how to point mqctl at it.
func TestDemoKeepSaysHowToUseTheVhost(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	res := runCLI(t, map[string]string{"MQCTL_URL": brokertest.BaseURL(), "MQCTL_MGMT_URL": env.MgmtURL},
		"demo", "--users", "2", "--backoff", "200ms", "--max-attempts", "2", "--email-latency", "10ms", "--keep", "-o", "json")
	var v demoView
	if err := json.Unmarshal([]byte(res.Stdout), &v); err != nil || res.Code != 0 {
		t.Fatalf("demo --keep: exit %d, %v\n%s", res.Code, err, res.Stderr)
	}
	defer func() { _, _ = env.Mgmt.DeleteVhost(v.Vhost) }()
	if !strings.Contains(res.Stderr, "kept vhost "+v.Vhost) || !strings.Contains(res.Stderr, "export MQCTL_URL=") || !strings.Contains(res.Stderr, url.PathEscape(v.Vhost)) {
		t.Errorf("demo --keep does not say how to use the kept vhost:\n%s", res.Stderr)
	}
}
