package browse

import "github.com/charmbracelet/bubbles/key"

// keyMap is every key the browser answers to; help renders it.
type keyMap struct {
	// Move only names the movement keys in the footer.
	Move                                    key.Binding
	Up, Down, PageUp, PageDown, Top, Bottom key.Binding
	Open, Back                              key.Binding
	Mark, MarkGroup, Unmark                 key.Binding
	Replay, Purge                           key.Binding
	Yes, No                                 key.Binding
	Help, Quit                              key.Binding
}

func newKeyMap() keyMap {
	return keyMap{
		Move:      key.NewBinding(key.WithKeys("up", "down", "k", "j"), key.WithHelp("↑↓/jk", "move")),
		Up:        key.NewBinding(key.WithKeys("up", "k"), key.WithHelp("↑/k", "up")),
		Down:      key.NewBinding(key.WithKeys("down", "j"), key.WithHelp("↓/j", "down")),
		PageUp:    key.NewBinding(key.WithKeys("pgup", "ctrl+b"), key.WithHelp("pgup", "page up")),
		PageDown:  key.NewBinding(key.WithKeys("pgdown", "ctrl+f"), key.WithHelp("pgdn", "page down")),
		Top:       key.NewBinding(key.WithKeys("home", "g"), key.WithHelp("g/home", "first")),
		Bottom:    key.NewBinding(key.WithKeys("end", "G"), key.WithHelp("G/end", "last")),
		Open:      key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "open")),
		Back:      key.NewBinding(key.WithKeys("esc", "backspace"), key.WithHelp("esc", "back")),
		Mark:      key.NewBinding(key.WithKeys(" "), key.WithHelp("space", "mark")),
		MarkGroup: key.NewBinding(key.WithKeys("a"), key.WithHelp("a", "mark group")),
		Unmark:    key.NewBinding(key.WithKeys("u"), key.WithHelp("u", "unmark all")),
		Replay:    key.NewBinding(key.WithKeys("r"), key.WithHelp("r", "replay marked")),
		Purge:     key.NewBinding(key.WithKeys("p"), key.WithHelp("p", "purge marked")),
		Yes:       key.NewBinding(key.WithKeys("y", "Y"), key.WithHelp("y", "confirm")),
		No:        key.NewBinding(key.WithKeys("n", "N", "esc", "q"), key.WithHelp("n/esc", "cancel")),
		Help:      key.NewBinding(key.WithKeys("?"), key.WithHelp("?", "help")),
		Quit:      key.NewBinding(key.WithKeys("q", "ctrl+c"), key.WithHelp("q", "quit")),
	}
}

// ShortHelp is the footer line.
func (k keyMap) ShortHelp() []key.Binding {
	return []key.Binding{k.Move, k.Open, k.Back, k.Mark, k.MarkGroup, k.Replay, k.Purge, k.Help, k.Quit}
}

// FullHelp is what ? shows.
func (k keyMap) FullHelp() [][]key.Binding {
	return [][]key.Binding{
		{k.Up, k.Down, k.PageUp, k.PageDown, k.Top, k.Bottom},
		{k.Open, k.Back, k.Help, k.Quit},
		{k.Mark, k.MarkGroup, k.Unmark},
		{k.Replay, k.Purge},
	}
}
