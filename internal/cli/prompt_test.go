package cli

import (
	"strings"
	"testing"

	"github.com/mqctl/mqctl/internal/fail"
	"github.com/mqctl/mqctl/internal/iostreams"
)

func TestConfirm(t *testing.T) {
	// --yes always proceeds.
	ios, _, _, _ := iostreams.Test()
	if err := Confirm(ios, true, "purge 3 messages"); err != nil {
		t.Fatal(err)
	}
	// No terminal, no --yes: refused as a usage error.
	err := Confirm(ios, false, "purge 3 messages")
	if k, _ := fail.KindOf(err); k != fail.Usage || !strings.Contains(err.Error(), "--yes") {
		t.Fatalf("non-terminal: %v", err)
	}
	// A terminal: the answer decides.
	for answer, ok := range map[string]bool{"y\n": true, "yes\n": true, "n\n": false, "\n": false, "": false} {
		ios, in, _, errOut := iostreams.Test()
		ios.SetTTY(true, true, true)
		in.WriteString(answer)
		err := Confirm(ios, false, "purge 3 messages")
		if (err == nil) != ok {
			t.Errorf("answer %q: err = %v", answer, err)
		}
		if !strings.Contains(errOut.String(), "Purge 3 messages? [y/N]") {
			t.Errorf("prompt = %q", errOut.String())
		}
	}
}
