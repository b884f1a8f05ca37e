package output

import (
	"io"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"

	"github.com/mqctl/mqctl/internal/iostreams"
)

// Styles is every style mqctl uses, in one place. When colour is disabled
// the renderer has the ASCII profile and every style renders plain text, so
// code may apply styles unconditionally.
type Styles struct {
	Color    bool
	Renderer *lipgloss.Renderer
	// Width is the terminal width tables must fit in; 0 means no limit.
	Width int

	Title  lipgloss.Style
	Header lipgloss.Style
	Cell   lipgloss.Style
	Border lipgloss.Style
	OK     lipgloss.Style
	Warn   lipgloss.Style
	Error  lipgloss.Style
	Muted  lipgloss.Style
	Bold   lipgloss.Style
	Code   lipgloss.Style
}

// NewStyles builds the styles for writing to w, coloured only when ios says
// colour is enabled.
func NewStyles(ios *iostreams.IOStreams, w io.Writer) *Styles {
	r := lipgloss.NewRenderer(w)
	color := ios.ColorEnabled()
	if color {
		r.SetColorProfile(termenv.ANSI256)
	} else {
		r.SetColorProfile(termenv.Ascii)
	}
	return &Styles{
		Color:    color,
		Renderer: r,
		Width:    ios.TerminalWidth(),
		Title:    r.NewStyle().Bold(true).Foreground(lipgloss.Color("39")),
		Header:   r.NewStyle().Bold(true).Foreground(lipgloss.Color("252")).Padding(0, 1),
		Cell:     r.NewStyle().Padding(0, 1),
		Border:   r.NewStyle().Foreground(lipgloss.Color("240")),
		OK:       r.NewStyle().Foreground(lipgloss.Color("42")),
		Warn:     r.NewStyle().Foreground(lipgloss.Color("214")),
		Error:    r.NewStyle().Foreground(lipgloss.Color("196")).Bold(true),
		Muted:    r.NewStyle().Foreground(lipgloss.Color("244")),
		Bold:     r.NewStyle().Bold(true),
		Code:     r.NewStyle().Foreground(lipgloss.Color("75")),
	}
}

// ForLevel returns the style that marks a cell of that level.
func (s *Styles) ForLevel(l Level) lipgloss.Style {
	switch l {
	case LevelOK:
		return s.OK
	case LevelWarn:
		return s.Warn
	case LevelError:
		return s.Error
	case LevelMuted:
		return s.Muted
	default:
		return s.Renderer.NewStyle()
	}
}
