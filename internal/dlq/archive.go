package dlq

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/mqctl/mqctl/internal/fail"
)

// Archive is a JSONL file of records. Sync makes every record written so
// far durable; purge acks a message only after the Sync that covers it.
type Archive struct {
	f    *os.File
	w    *bufio.Writer
	Path string
}

// OpenArchive appends to path, creating it (and syncing its directory so
// the new file itself survives a crash). A torn last line, left by a run
// killed in the middle of a write, is cut off first: it was written after
// the last fsync, so its message was never acked and is still in its
// queue, and appending after it would spoil the next record too.
func OpenArchive(path string) (*Archive, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open archive: %w", err)
	}
	if err := trimTornLine(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("repair archive %s: %w", path, err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		f.Close()
		return nil, err
	}
	return &Archive{f: f, w: bufio.NewWriterSize(f, 1<<20), Path: path}, nil
}

// trimTornLine truncates f after its last newline.
func trimTornLine(f *os.File) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	end := st.Size()
	buf := make([]byte, 64<<10)
	for pos := end; pos > 0; {
		n := int64(len(buf))
		if pos < n {
			n = pos
		}
		pos -= n
		if _, err := f.ReadAt(buf[:n], pos); err != nil {
			return err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			if pos+int64(i)+1 == end {
				return nil // whole
			}
			return truncate(f, pos+int64(i)+1)
		}
	}
	if end == 0 {
		return nil
	}
	return truncate(f, 0)
}

func truncate(f *os.File, size int64) error {
	if err := f.Truncate(size); err != nil {
		return err
	}
	return f.Sync()
}

// CreateArchive creates a new file at path; it fails when path exists.
func CreateArchive(path string) (*Archive, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case errors.Is(err, fs.ErrExist):
		return nil, fail.Usagef("%s exists; choose another file or remove it", path)
	case errors.Is(err, fs.ErrNotExist):
		return nil, fail.Usagef("cannot create %s: directory %s does not exist", path, filepath.Dir(path))
	case errors.Is(err, fs.ErrPermission):
		return nil, fail.Usagef("cannot create %s: no permission to write in %s", path, filepath.Dir(path))
	case err != nil:
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	return &Archive{f: f, w: bufio.NewWriterSize(f, 1<<20), Path: path}, nil
}

// Write appends one record as a JSON line (buffered).
func (a *Archive) Write(r Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode record %s: %w", r.ID, err)
	}
	b = append(b, '\n')
	// Only whole records go to the file: a record that does not fit in
	// the buffer is not split over two writes, so a process killed between
	// two Syncs leaves whole lines (almost always: see OpenArchive).
	if len(b) > a.w.Available() && a.w.Buffered() > 0 {
		if err := a.w.Flush(); err != nil {
			return fmt.Errorf("write %s: %w", a.Path, err)
		}
	}
	if _, err := a.w.Write(b); err != nil {
		return fmt.Errorf("write %s: %w", a.Path, err)
	}
	return nil
}

// Sync flushes and fsyncs what was written.
func (a *Archive) Sync() error {
	if err := a.w.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", a.Path, err)
	}
	if err := a.f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", a.Path, err)
	}
	return nil
}

// Close syncs and closes the file.
func (a *Archive) Close() error {
	err := a.Sync()
	if cerr := a.f.Close(); err == nil {
		err = cerr
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}
