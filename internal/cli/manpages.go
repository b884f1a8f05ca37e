package cli

import (
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// ManDate is the date man/ pages carry. It is fixed, not the time of
// generation, so that regenerating unchanged pages changes nothing and
// TestManPagesAreCurrent can compare byte for byte; bump it when the
// pages' content changes for a release.
var ManDate = time.Date(2026, time.December, 1, 0, 0, 0, 0, time.UTC)

// WriteManPages writes one section-1 man page per visible command of
// root's tree into dir (mqctl.1, mqctl-topology-apply.1, …), as packages
// install them under /usr/share/man/man1.
func WriteManPages(root *cobra.Command, dir string) error {
	date := ManDate
	root.DisableAutoGenTag = true // no "generated on <today>" footer
	return doc.GenManTree(root, &doc.GenManHeader{
		Title:   "MQCTL",
		Section: "1",
		Source:  "mqctl",
		Manual:  "mqctl manual",
		Date:    &date,
	}, dir)
}
