package output

import (
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/mqctl/mqctl/internal/iostreams"
)

// Progress reports the advance of long work. It satisfies the small
// progress interfaces the domain packages accept.
type Progress interface {
	// Add records n more units done.
	Add(n int)
	// Finish clears the bar.
	Finish()
}

// NewProgress returns a bar on stderr when stderr is a terminal, and a
// progress that shows nothing otherwise, so piped output and CI logs stay
// clean. total < 0 means unknown.
func NewProgress(ios *iostreams.IOStreams, total int64, label string) Progress {
	if !ios.IsStderrTTY() {
		return nopProgress{}
	}
	bar := progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(ios.ErrOut),
		progressbar.OptionSetDescription(label),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("msg"),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetWidth(30),
	)
	return &barProgress{bar: bar}
}

type barProgress struct{ bar *progressbar.ProgressBar }

func (p *barProgress) Add(n int) { _ = p.bar.Add(n) }
func (p *barProgress) Finish()   { _ = p.bar.Finish() }

// SetTotal sets the total once it is known (a queue's depth, read when
// the work starts), so the bar shows done/total instead of done/-.
func (p *barProgress) SetTotal(n int64) {
	if n >= 0 {
		p.bar.ChangeMax64(n)
	}
}

type nopProgress struct{}

func (nopProgress) Add(int) {}
func (nopProgress) Finish() {}

// SetTotal does nothing: nothing is shown.
func (nopProgress) SetTotal(int64) {}
