package cli

import (
	"context"
	"testing"

	"github.com/mqctl/mqctl/internal/iostreams"
	"github.com/mqctl/mqctl/internal/output"
)

func TestDLQShowFlags(t *testing.T) {
	o := mustParse(t, "dlq show", NewCmdDLQShow, "email.dlq")
	if o.Queue != "email.dlq" || o.Limit != 20 || o.Preview != 60 || o.Format != output.Table {
		t.Errorf("defaults: %+v", o)
	}
	o = mustParse(t, "dlq show", NewCmdDLQShow, "email.dlq", "--limit", "0", "--preview", "200", "-o", "json")
	if o.Limit != 0 || o.Preview != 200 || o.Format != output.JSON {
		t.Errorf("--limit 0 --preview 200: %+v", o)
	}
	refusesFlags(t, "dlq show", NewCmdDLQShow, []string{}, []string{"a", "b"}, []string{"q", "--limit", "x"}, []string{"q", "-o", "xml"})
}

func TestDLQShowBrokerDownPrintsNothing(t *testing.T) {
	ios, _, out, _ := iostreams.Test()
	err := dlqShowRun(context.Background(), &DLQShowOptions{IO: ios, Dial: brokerDown, Queue: "email.dlq", Limit: 20})
	if err == nil || ExitCode(context.Background(), err, true) != ExitError {
		t.Errorf("err = %v, want an operational error", err)
	}
	if out.Len() != 0 {
		t.Errorf("printed %q", out)
	}
}
