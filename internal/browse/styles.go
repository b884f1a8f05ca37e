package browse

import (
	"github.com/charmbracelet/lipgloss"

	"github.com/mqctl/mqctl/internal/output"
)

// Styles are the browser's styles, all derived from mqctl's own
// (output.Styles), so colours and NO_COLOR behave as in every table: with
// colour off every style renders plain text.
type Styles struct {
	Title   lipgloss.Style
	Header  lipgloss.Style // column headings
	Cursor  lipgloss.Style // the row under the cursor
	Marked  lipgloss.Style
	Muted   lipgloss.Style
	OK      lipgloss.Style
	Warn    lipgloss.Style
	Error   lipgloss.Style
	Bold    lipgloss.Style
	Confirm lipgloss.Style // the confirmation box
}

// NewStyles derives the browser's styles from base.
func NewStyles(base *output.Styles) Styles {
	r := base.Renderer
	s := Styles{
		Title:  base.Title,
		Header: base.Bold.Foreground(lipgloss.Color("252")),
		Muted:  base.Muted,
		OK:     base.OK,
		Warn:   base.Warn,
		Error:  base.Error,
		Bold:   base.Bold,
		Marked: base.Code,
		Cursor: r.NewStyle().Reverse(true),
		Confirm: r.NewStyle().Border(lipgloss.RoundedBorder()).BorderForeground(lipgloss.Color("214")).
			Padding(0, 1),
	}
	if !base.Color {
		// Without colour the cursor still has to show: reverse video is
		// an escape code too, so the cursor row carries a ">" instead.
		s.Cursor = r.NewStyle()
	}
	return s
}
