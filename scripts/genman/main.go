// Command genman writes mqctl's man pages into a directory (`make man`
// writes man/; TestManPagesAreCurrent fails when man/ is stale).
package main

import (
	"fmt"
	"os"

	"github.com/mqctl/mqctl/internal/cli"
	"github.com/mqctl/mqctl/internal/iostreams"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: genman DIR")
		os.Exit(2)
	}
	dir := os.Args[1]
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	root := cli.NewCmdRoot(cli.NewFactory(iostreams.System(), func(string) (string, bool) { return "", false }))
	if err := cli.WriteManPages(root, dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
