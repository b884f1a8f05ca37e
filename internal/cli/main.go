// Package cli is mqctl's command layer: flags, prompts and rendering. The
// work itself lives in the domain packages.
package cli

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/mqctl/mqctl/internal/config"
	"github.com/mqctl/mqctl/internal/iostreams"
)

// Main runs mqctl with the process's arguments and streams and returns the
// exit code.
func Main() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	f := NewFactory(iostreams.System(), os.LookupEnv)
	return Run(ctx, f, os.Args[1:])
}

// Run executes one command line against f and returns the exit code; tests
// call it with fake streams.
func Run(ctx context.Context, f *Factory, args []string) int {
	root := NewCmdRoot(f)
	root.SetArgs(args)
	root.SetOut(f.IO.Out)
	root.SetErr(f.IO.ErrOut)
	err := root.ExecuteContext(ctx)
	code := ExitCode(ctx, err, f.started)
	if err != nil {
		var r *config.Redactor
		if s, serr := f.Settings(); serr == nil || s.Redactor != nil {
			r = s.Redactor
		}
		printError(f.IO.ErrOut, r, err, code)
	}
	return code
}
