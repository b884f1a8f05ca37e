//go:build unix

package audit

import (
	"os"
	"syscall"
)

// lockFile holds f exclusively until it is closed, so two mqctl runs never
// interleave their lines.
func lockFile(f *os.File) error { return syscall.Flock(int(f.Fd()), syscall.LOCK_EX) }
