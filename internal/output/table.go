package output

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/lipgloss/table"
)

// Level marks a cell or row for highlighting on a terminal.
type Level int

// Levels, from neutral to alarming.
const (
	LevelNone Level = iota
	LevelOK
	LevelWarn
	LevelError
	LevelMuted
)

// TableData is what a command shows in table format.
type TableData struct {
	Headers []string
	Rows    [][]string
	// RowLevel, when set, colours a whole row on a terminal.
	RowLevel func(row int) Level
	// CellLevel, when set, colours one cell on a terminal; it wins over RowLevel.
	CellLevel func(row, col int) Level
	// Footer is printed under the table (a summary line).
	Footer string
}

// Tabular is implemented by results that have a table view.
type Tabular interface {
	Table() TableData
}

func (t TableData) level(row, col int) Level {
	if t.CellLevel != nil {
		if l := t.CellLevel(row, col); l != LevelNone {
			return l
		}
	}
	if t.RowLevel != nil {
		return t.RowLevel(row)
	}
	return LevelNone
}

// WriteTable renders t to w: a bordered, coloured lipgloss table when
// styles are coloured, otherwise plain text aligned with spaces, no escape
// codes, headers in capitals.
func WriteTable(w io.Writer, s *Styles, t TableData) error {
	if !s.Color {
		return writePlain(w, t)
	}
	tbl := table.New().
		Border(lipgloss.RoundedBorder()).
		BorderStyle(s.Border).
		Headers(t.Headers...).
		Rows(t.Rows...).
		StyleFunc(func(row, col int) lipgloss.Style {
			if row == table.HeaderRow {
				return s.Header
			}
			return s.ForLevel(t.level(row, col)).Padding(0, 1)
		})
	if s.Width > 0 && lipgloss.Width(tbl.Render()) > s.Width {
		// Too wide for the terminal: let lipgloss shrink and wrap the columns.
		tbl = tbl.Width(s.Width)
	}
	if _, err := fmt.Fprintln(w, tbl.Render()); err != nil {
		return err
	}
	if t.Footer != "" {
		_, err := fmt.Fprintln(w, s.Muted.Render(t.Footer))
		return err
	}
	return nil
}

func writePlain(w io.Writer, t TableData) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	headers := make([]string, len(t.Headers))
	for i, h := range t.Headers {
		headers[i] = strings.ToUpper(h)
	}
	fmt.Fprintln(tw, strings.Join(headers, "\t"))
	for _, r := range t.Rows {
		cells := make([]string, len(r))
		for i, c := range r {
			// A tab or newline inside a cell would break the alignment scripts rely on.
			cells[i] = strings.NewReplacer("\t", " ", "\n", " ").Replace(c)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if t.Footer != "" {
		_, err := fmt.Fprintln(w, t.Footer)
		return err
	}
	return nil
}
