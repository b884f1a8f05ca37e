package output

import (
	"strings"
	"testing"

	"github.com/charmbracelet/x/ansi"

	"github.com/mqctl/mqctl/internal/iostreams"
)

// deadLetters is a dlq-show-like table: a long id that must stay whole,
// prose worth cutting, times worth keeping whole or not at all, wide
// (CJK, emoji) characters, and columns ranked for hiding.
func deadLetters() TableData {
	return TableData{
		Headers: []string{"id", "origin", "reason", "deaths", "first death", "last death", "body"},
		Rows: [][]string{
			{"msg-7f3a9c1e-2b4d-4e8f-9a6b-0c1d2e3f4a5b", "email", "rejected (after failed: smtp 421 service not available, closing transmission channel)", "3",
				"2026-12-01T10:00:00Z", "2026-12-01T11:30:00Z", `{"to":"ops@example.com","subject":"weekly report"}`},
			{"order-42", "注文処理キュー", "failed: 在庫が不足しています。再試行してください", "1",
				"2026-12-02T09:15:00Z", "2026-12-02T09:15:00Z", `{"item":"🎁 gift box","qty":2}`},
			{"short", "points", "expired\twith a tab\nand a newline", "12", "2026-12-03T00:00:00Z", "2026-12-03T01:00:00Z", "-"},
		},
		Columns: map[string]Column{
			"id":          {Keep: true},
			"origin":      {Min: 8, Drop: 1},
			"reason":      {Min: 16},
			"deaths":      {Drop: 3},
			"first death": {Keep: true, Drop: 5},
			"last death":  {Keep: true, Drop: 2},
			"body":        {Min: 12, Drop: 4},
		},
		Footer: "3 of 3 message(s) in email.dlq shown; none consumed",
	}
}

var deadLetterIDs = []string{"msg-7f3a9c1e-2b4d-4e8f-9a6b-0c1d2e3f4a5b", "order-42", "short"}

// render writes t as a terminal of that width shows it, styled or (with
// NO_COLOR) plain, and returns the table's lines and the lines under it.
func render(t *testing.T, data TableData, width int, color bool) (table, under []string) {
	t.Helper()
	ios, _, out, _ := iostreams.Test()
	ios.SetTTY(false, true, false)
	ios.SetNoColor(!color)
	ios.SetTerminalWidth(width)
	if err := WriteTable(ios.Out, NewStyles(ios, ios.Out), data); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	n := len(data.Rows) + 1 // header and rows
	if color {
		n += 3 // top, header and bottom rules
	}
	if len(lines) < n {
		t.Fatalf("%d lines, want at least %d:\n%s", len(lines), n, out)
	}
	return lines[:n], lines[n:]
}

func TestTableFitsTerminal(t *testing.T) {
	for _, c := range []struct {
		width  int
		hidden []string // styled; plain has 2 columns fewer of overhead each
	}{
		{60, []string{"origin", "deaths", "first death", "last death", "body"}},
		{80, []string{"deaths", "first death", "last death", "body"}},
		{120, []string{"first death", "body"}},
		{200, nil},
	} {
		for _, color := range []bool{true, false} {
			table, under := render(t, deadLetters(), c.width, color)
			plain := make([]string, len(table))
			for i, line := range table {
				plain[i] = ansi.Strip(line)
				if w := ansi.StringWidth(line); w > c.width {
					t.Errorf("width %d color %v: line is %d wide: %q", c.width, color, w, plain[i])
				}
			}
			rows := plain[len(plain)-len(deadLetterIDs):]
			if color {
				rows = plain[3 : len(plain)-1]
			}
			for i, id := range deadLetterIDs {
				if !strings.Contains(rows[i], " "+id+" ") && !strings.HasPrefix(rows[i], id+" ") {
					t.Errorf("width %d color %v: id %q not whole in row %q", c.width, color, id, rows[i])
				}
			}
			if c.width < 200 && !strings.Contains(rows[0], "…") {
				t.Errorf("width %d color %v: the long reason is not cut: %q", c.width, color, rows[0])
			}
			if strings.Contains(strings.Join(rows, "\n"), "closing transmission channel") {
				t.Errorf("width %d color %v: reason shown whole, should be cut", c.width, color)
			}
			if want := "3 of 3 message(s) in email.dlq shown; none consumed"; ansi.Strip(under[0]) != want {
				t.Errorf("width %d color %v: footer %q", c.width, color, under[0])
			}
			if !color {
				continue // plain is narrower: it may hide fewer
			}
			header := plain[1]
			for _, h := range c.hidden {
				if strings.Contains(header, " "+h+" ") {
					t.Errorf("width %d: hidden column %q in header %q", c.width, h, header)
				}
			}
			if len(c.hidden) == 0 {
				if len(under) != 1 {
					t.Errorf("width %d: nothing hidden, yet lines under the table: %q", c.width, under)
				}
				continue
			}
			if len(under) != 2 {
				t.Fatalf("width %d: want footer and hidden-columns note, got %q", c.width, under)
			}
			want := "(columns hidden to fit " + itoa(c.width) + " columns: " + strings.Join(c.hidden, ", ") + "; widen the terminal or use -o json)"
			if got := ansi.Strip(under[1]); got != want {
				t.Errorf("width %d: note\n%q\nwant\n%q", c.width, got, want)
			}
		}
	}
}

func itoa(n int) string {
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

func TestCutIsWidthAware(t *testing.T) {
	for _, c := range []struct {
		in    string
		width int
		want  string
	}{
		{"expired", 10, "expired"},
		{"rejected by the consumer", 10, "rejected…"},
		{"注文処理キュー", 14, "注文処理キュー"},
		{"注文処理キュー", 7, "注文処…"},
		{"注文処理キュー", 6, "注文…"},   // the third character would end past column 6
		{"🎁 gift box", 4, "🎁…"}, // no space before the ellipsis
		{"x", 1, "x"},
	} {
		got := cut(c.in, c.width)
		if got != c.want {
			t.Errorf("cut(%q, %d) = %q, want %q", c.in, c.width, got, c.want)
		}
		if w := ansi.StringWidth(got); w > c.width {
			t.Errorf("cut(%q, %d) is %d wide", c.in, c.width, w)
		}
	}
}

func TestCutStartKeepsTheEnd(t *testing.T) {
	for _, c := range []struct {
		in    string
		width int
		want  string
	}{
		{"email.dlq 3", 11, "email.dlq 3"},
		{"registration.points.dlq 17", 12, "…ints.dlq 17"},
		{"注文処理キュー.dlq 5", 10, "…ー.dlq 5"}, // ュ would start before the cut
		{"a.dlq 1, b.dlq 22", 8, "….dlq 22"},
	} {
		got := cutStart(c.in, c.width)
		if got != c.want {
			t.Errorf("cutStart(%q, %d) = %q, want %q", c.in, c.width, got, c.want)
		}
		if w := ansi.StringWidth(got); w > c.width {
			t.Errorf("cutStart(%q, %d) is %d wide", c.in, c.width, w)
		}
	}
}

func TestKeepColumnWiderThanTerminalStaysWhole(t *testing.T) {
	id := strings.Repeat("0123456789", 5)
	data := TableData{
		Headers: []string{"id", "reason", "count"},
		Rows:    [][]string{{id, "a reason long enough to be cut", "7"}},
		Columns: map[string]Column{"id": {Keep: true}, "count": {Drop: 1}},
	}
	table, under := render(t, data, 40, true)
	row := ansi.Strip(table[3])
	if !strings.Contains(row, id) {
		t.Errorf("id cut: %q", row)
	}
	if strings.Contains(row, "long enough") {
		t.Errorf("other columns should give way to the id first: %q", row)
	}
	if len(under) != 1 || !strings.Contains(under[0], "column hidden to fit 40 columns: count;") {
		t.Errorf("want a note naming count: %q", under)
	}
}

func TestMaxCapsColumnOnWideTerminal(t *testing.T) {
	data := TableData{
		Headers: []string{"queue", "trend"},
		Rows:    [][]string{{"email", strings.Repeat("▁▂▃▄▅▆▇█", 5)}},
		Columns: map[string]Column{"trend": {Max: 12}},
	}
	table, _ := render(t, data, 200, true)
	if got := ansi.StringWidth(table[0]); got != 1+7+1+14+1 {
		t.Errorf("table is %d wide, want the trend column capped at 12: %q", got, ansi.Strip(table[3]))
	}
}

func TestCellLevelFollowsColumnsWhenSomeAreHidden(t *testing.T) {
	data := deadLetters()
	data.CellLevel = func(row, col int) Level {
		if row == 2 && col == 3 { // deaths
			return LevelError
		}
		return LevelNone
	}
	ios, _, out, _ := iostreams.Test()
	ios.SetTTY(false, true, false)
	ios.SetTerminalWidth(120) // first death and body hidden, deaths shown
	s := NewStyles(ios, ios.Out)
	if err := WriteTable(ios.Out, s, data); err != nil {
		t.Fatal(err)
	}
	if want := s.Error.Padding(0, 1).Render("12"); !strings.Contains(out.String(), want) {
		t.Errorf("deaths cell of row 3 not marked as an error:\n%s", out)
	}
}

// Piped output is what scripts read: every value whole, whatever the
// attributes, and no note (there is no terminal to fit).
func TestPipedTableIgnoresColumns(t *testing.T) {
	ios, _, out, _ := iostreams.Test()
	ios.SetTerminalWidth(60) // not a terminal: the width does not apply
	if err := Print(ios, Table, tabular(deadLetters())); err != nil {
		t.Fatal(err)
	}
	want := `ID                                        ORIGIN   REASON                                                                                 DEATHS  FIRST DEATH           LAST DEATH            BODY
msg-7f3a9c1e-2b4d-4e8f-9a6b-0c1d2e3f4a5b  email    rejected (after failed: smtp 421 service not available, closing transmission channel)  3       2026-12-01T10:00:00Z  2026-12-01T11:30:00Z  {"to":"ops@example.com","subject":"weekly report"}
order-42                                  注文処理キュー  failed: 在庫が不足しています。再試行してください                                                           1       2026-12-02T09:15:00Z  2026-12-02T09:15:00Z  {"item":"🎁 gift box","qty":2}
short                                     points   expired with a tab and a newline                                                       12      2026-12-03T00:00:00Z  2026-12-03T01:00:00Z  -
3 of 3 message(s) in email.dlq shown; none consumed
`
	if got := out.String(); got != want {
		t.Errorf("piped table =\n%s\nwant\n%s", got, want)
	}
}

type tabular TableData

func (t tabular) Table() TableData { return TableData(t) }

func TestTableNeverHidesEveryColumn(t *testing.T) {
	data := TableData{
		Headers: []string{"a", "b"},
		Rows:    [][]string{{strings.Repeat("x", 30), strings.Repeat("y", 30)}},
		Columns: map[string]Column{"a": {Drop: 1}, "b": {Drop: 2}},
	}
	table, under := render(t, data, 12, true)
	if row := ansi.Strip(table[3]); row != "│ xxxxxxx… │" {
		t.Errorf("row %q, want column a cut to fit 12 columns", row)
	}
	if len(under) != 1 || ansi.Strip(under[0]) != "(column hidden to fit 12 columns: b; widen the terminal or use -o json)" {
		t.Errorf("note %q", under)
	}
}
