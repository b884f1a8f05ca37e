package output

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/goccy/go-yaml"

	"github.com/mqctl/mqctl/internal/iostreams"
)

// TextRenderer is implemented by results with a custom terminal view (a
// flow drawing, a report) instead of, or besides, a table.
type TextRenderer interface {
	RenderText(w io.Writer, s *Styles) error
}

// Print writes v to ios.Out in format f. For JSON and YAML, v is marshalled
// as is (its json tags are the contract); for table, v must be Tabular or a
// TextRenderer.
func Print(ios *iostreams.IOStreams, f Format, v any) error {
	switch f {
	case JSON:
		return WriteJSON(ios.Out, v)
	case YAML:
		return WriteYAML(ios.Out, v)
	}
	s := NewStyles(ios, ios.Out)
	switch r := v.(type) {
	case TextRenderer:
		return r.RenderText(ios.Out, s)
	case Tabular:
		return WriteTable(ios.Out, s, r.Table())
	}
	return fmt.Errorf("internal: %T has no table view", v)
}

// WriteJSON writes v as indented JSON followed by a newline.
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// WriteYAML writes v as YAML with the same field names as its JSON form, so
// the two formats never drift apart.
func WriteYAML(w io.Writer, v any) error {
	js, err := json.Marshal(v)
	if err != nil {
		return err
	}
	y, err := yaml.JSONToYAML(js)
	if err != nil {
		return err
	}
	_, err = w.Write(y)
	return err
}
