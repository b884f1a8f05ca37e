package output

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/charmbracelet/lipgloss"
	"github.com/goccy/go-yaml"

	"github.com/mqctl/mqctl/internal/iostreams"
)

type sample struct {
	QueueName string `json:"queue_name"`
	Ready     int    `json:"ready"`
}

type sampleList []sample

func (s sampleList) Table() TableData {
	rows := make([][]string, len(s))
	for i, q := range s {
		rows[i] = []string{q.QueueName, "n\t" + string(rune('0'+q.Ready))}
	}
	return TableData{Headers: []string{"queue", "ready"}, Rows: rows, Footer: "2 queues",
		RowLevel: func(int) Level { return LevelWarn }}
}

func TestTablePlainWhenPipedOrNoColor(t *testing.T) {
	data := sampleList{{"email", 3}, {"points.dlq", 0}}
	for _, setup := range []func(*iostreams.IOStreams){
		func(s *iostreams.IOStreams) {}, // piped
		func(s *iostreams.IOStreams) { s.SetTTY(true, true, true); s.SetNoColor(true) }, // NO_COLOR
	} {
		ios, _, out, _ := iostreams.Test()
		setup(ios)
		if err := Print(ios, Table, data); err != nil {
			t.Fatal(err)
		}
		got := out.String()
		if strings.Contains(got, "\x1b") {
			t.Errorf("escape codes in plain output: %q", got)
		}
		want := "QUEUE       READY\nemail       n 3\npoints.dlq  n 0\n2 queues\n"
		if got != want {
			t.Errorf("plain table =\n%q\nwant\n%q", got, want)
		}
	}
}

func TestTableStyledOnTerminal(t *testing.T) {
	ios, _, out, _ := iostreams.Test()
	ios.SetTTY(false, true, false)
	if err := Print(ios, Table, sampleList{{"email", 3}}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "\x1b[") || !strings.Contains(out.String(), "╭") {
		t.Errorf("terminal output should be a styled, bordered table: %q", out.String())
	}
}

func TestJSONAndYAMLShareFieldNames(t *testing.T) {
	data := sampleList{{"email", 3}}
	ios, _, out, _ := iostreams.Test()
	if err := Print(ios, JSON, data); err != nil {
		t.Fatal(err)
	}
	var fromJSON []map[string]any
	if err := json.Unmarshal(out.Bytes(), &fromJSON); err != nil {
		t.Fatalf("invalid JSON: %v", err)
	}
	ios, _, out, _ = iostreams.Test()
	if err := Print(ios, YAML, data); err != nil {
		t.Fatal(err)
	}
	var fromYAML []map[string]any
	if err := yaml.Unmarshal(out.Bytes(), &fromYAML); err != nil {
		t.Fatalf("invalid YAML: %v\n%s", err, out)
	}
	if fromJSON[0]["queue_name"] != "email" || fromYAML[0]["queue_name"] != "email" {
		t.Errorf("field names differ: json %v yaml %v", fromJSON, fromYAML)
	}
}

func TestParseFormat(t *testing.T) {
	if f, err := ParseFormat(""); err != nil || f != Table {
		t.Errorf("empty = %v %v", f, err)
	}
	if f, err := ParseFormat("JSON"); err != nil || f != JSON {
		t.Errorf("JSON = %v %v", f, err)
	}
	if _, err := ParseFormat("mermaid"); err == nil {
		t.Error("mermaid accepted by default")
	}
	if f, err := ParseFormat("mermaid", Table, "mermaid"); err != nil || f != "mermaid" {
		t.Errorf("mermaid where allowed = %v %v", f, err)
	}
}

func TestProgressSilentWhenStderrNotTerminal(t *testing.T) {
	ios, _, _, errOut := iostreams.Test()
	p := NewProgress(ios, 10, "replay")
	p.Add(5)
	p.Finish()
	if errOut.Len() != 0 {
		t.Errorf("progress wrote to a non-terminal stderr: %q", errOut)
	}
	ios.SetTTY(false, false, true)
	p = NewProgress(ios, 10, "replay")
	p.Add(3)
	defer p.Finish()
	if errOut.Len() == 0 {
		t.Error("no progress on a terminal stderr")
	}
}

func TestStyledTableFitsTerminalWidth(t *testing.T) {
	ios, _, out, _ := iostreams.Test()
	ios.SetTTY(false, true, false)
	ios.SetTerminalWidth(40)
	long := sampleList{{strings.Repeat("very-long-queue-name-", 5), 1}}
	if err := Print(ios, Table, long); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimRight(out.String(), "\n"), "\n") {
		if w := lipgloss.Width(line); w > 40 {
			t.Errorf("line is %d columns wide, terminal has 40: %q", w, line)
		}
	}
}
