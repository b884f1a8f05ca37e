//go:build unix

package migrate

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lock takes an exclusive lock next to the journal, so two runs on one
// machine never migrate the same queue at once. The kernel releases it
// when the process ends, even when it is killed.
func lock(journalPath string) (unlock func(), err error) {
	if err := os.MkdirAll(filepath.Dir(journalPath), 0o700); err != nil {
		return nil, fmt.Errorf("create migration journal directory: %w", err)
	}
	path := journalPath + ".lock"
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open migration lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("another mqctl is migrating this queue (it holds %s); wait for it to finish", path)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}
