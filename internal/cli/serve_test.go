package cli

import (
	"testing"

	"github.com/spf13/cobra"
)

func TestServeFlags(t *testing.T) {
	for _, tc := range []struct {
		args                 []string
		listen, db           string
		verbose, wantConnect bool
	}{
		{[]string{"serve"}, "127.0.0.1:8080", "mqctl-registration.db", false, true},
		{[]string{"serve", "--listen", "0.0.0.0:0", "--db", "/var/lib/app.db", "-v"}, "0.0.0.0:0", "/var/lib/app.db", true, true},
	} {
		var got *ServeOptions
		err := runWithF(t, "serve", func(f *Factory) *cobra.Command {
			return NewCmdServe(f, func(o *ServeOptions) error { got = o; return nil })
		}, tc.args...)
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if got.Listen != tc.listen || got.DB != tc.db || got.Verbose != tc.verbose {
			t.Errorf("%v: listen %q, db %q, verbose %v; want %q, %q, %v", tc.args, got.Listen, got.DB, got.Verbose, tc.listen, tc.db, tc.verbose)
		}
		if got.IO == nil || got.Settings == nil || got.Dialer == nil {
			t.Errorf("%v: options lack IO, Settings or Dialer", tc.args)
		}
	}
	if err := runWithF(t, "serve", func(f *Factory) *cobra.Command {
		return NewCmdServe(f, func(*ServeOptions) error { t.Error("runF called for a bad --listen"); return nil })
	}, "serve", "--listen", "8080"); err == nil {
		t.Error("--listen 8080 accepted; want host:port")
	}
}
