// Package output renders command results: styled tables on a terminal, plain
// aligned text when piped or with NO_COLOR, JSON and YAML for scripts, and
// progress on stderr only when stderr is a terminal.
package output

import (
	"strings"

	"github.com/mqctl/mqctl/internal/fail"
)

// Format is an output format selected with -o.
type Format string

// The formats every data-printing command accepts; some commands add their
// own (topology show adds mermaid).
const (
	Table Format = "table"
	JSON  Format = "json"
	YAML  Format = "yaml"
)

// Standard is the set of formats accepted by default.
var Standard = []Format{Table, JSON, YAML}

// ParseFormat validates s against allowed (Standard when none is given). An
// empty s means table.
func ParseFormat(s string, allowed ...Format) (Format, error) {
	if len(allowed) == 0 {
		allowed = Standard
	}
	if s == "" {
		s = string(Table)
	}
	names := make([]string, len(allowed))
	for i, a := range allowed {
		if string(a) == strings.ToLower(s) {
			return a, nil
		}
		names[i] = string(a)
	}
	return "", fail.Usagef("invalid value %q for flag -o/--output: want one of %s", s, strings.Join(names, ", "))
}
