package cli

import (
	"bufio"
	"fmt"
	"strings"

	"github.com/mqctl/mqctl/internal/fail"
	"github.com/mqctl/mqctl/internal/iostreams"
)

// Confirm guards a destructive action: --yes proceeds, a terminal is asked,
// and anything else is refused with a usage error (exit 2) before any change.
func Confirm(ios *iostreams.IOStreams, yes bool, action string) error {
	if yes {
		return nil
	}
	if !ios.CanPrompt() {
		return fail.Usagef("refusing to %s without --yes when not on a terminal; nothing was changed", action)
	}
	fmt.Fprintf(ios.ErrOut, "%s? [y/N] ", capitalize(action))
	line, _ := bufio.NewReader(ios.In).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return nil
	}
	return fail.Usagef("not confirmed; nothing was changed")
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
