package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"

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

// dlq show --limit 0 streams: -o json (and -o yaml) parse, hold every
// message asked for in queue order with the same fields, and the counts
// after them; the table stops at its cap and says so.
func TestDLQShowStreamsEveryMessage(t *testing.T) {
	t.Parallel()
	const n = 2500
	env := dlqFixture(t, n)
	e := env.Environ()
	type shown struct {
		Queue    string `json:"queue"`
		Depth    int    `json:"depth"`
		Read     int    `json:"read"`
		Shown    int    `json:"shown"`
		Messages []struct {
			ID          string `json:"id"`
			Body        string `json:"body"`
			BodyPreview string `json:"body_preview"`
			Death       struct {
				OriginQueue string `json:"origin_queue"`
			} `json:"death"`
		} `json:"messages"`
	}
	// YAML is checked on fewer: parsing it back costs the test far more
	// memory than writing it costs mqctl.
	for _, c := range []struct {
		format string
		limit  int
	}{{"json", 0}, {"yaml", 150}} {
		format, want := c.format, n
		if c.limit > 0 {
			want = c.limit
		}
		r := runCLI(t, e, "dlq", "show", "email.dlq", "--limit", fmt.Sprint(c.limit), "-o", format)
		var v shown
		var err error
		if format == "json" {
			err = json.Unmarshal([]byte(r.Stdout), &v)
		} else {
			err = yaml.Unmarshal([]byte(r.Stdout), &v)
		}
		if r.Code != 0 || err != nil {
			t.Fatalf("show -o %s: exit %d, %v\n%.300s%s", format, r.Code, err, r.Stdout, r.Stderr)
		}
		var ids []string
		for _, m := range v.Messages {
			ids = append(ids, m.ID)
			if m.Body == "" || m.BodyPreview == "" || m.Death.OriginQueue != "email" {
				t.Fatalf("-o %s: message %s lacks fields: %+v", format, m.ID, m)
			}
		}
		if v.Queue != "email.dlq" || v.Depth != n || v.Read != want || v.Shown != want || !slices.Equal(ids, evtIDs(1, want)) {
			t.Errorf("-o %s: queue %s depth %d read %d shown %d, %d messages", format, v.Queue, v.Depth, v.Read, v.Shown, len(ids))
		}
	}
	r := runCLI(t, e, "dlq", "show", "email.dlq", "--limit", "3", "-o", "json")
	var v shown
	if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &v) != nil || v.Shown != 3 || len(v.Messages) != 3 || v.Read != 3 {
		t.Errorf("show --limit 3: exit %d shown %d read %d\n%s", r.Code, v.Shown, v.Read, r.Stderr)
	}
	r = runCLI(t, e, "dlq", "show", "email.dlq", "--limit", "0")
	if r.Code != 0 || strings.Count(r.Stdout, "evt-") != maxTableRows ||
		!strings.Contains(r.Stdout, fmt.Sprintf("%d of %d message(s) in email.dlq shown", maxTableRows, n)) || !strings.Contains(r.Stdout, "the table stops at 1,000 rows") {
		t.Errorf("table: exit %d, %d rows\n%.300s", r.Code, strings.Count(r.Stdout, "evt-"), r.Stdout[max(0, len(r.Stdout)-300):])
	}
}
