//go:build !unix

package audit

import "os"

// lockFile does nothing where flock(2) is missing; each line still goes
// out in one append write.
func lockFile(*os.File) error { return nil }
