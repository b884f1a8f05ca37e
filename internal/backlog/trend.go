package backlog

import "strings"

// History remembers each queue's ready count over the last refreshes of
// `backlog --watch`, to show where it is heading.
type History struct {
	size int
	seen map[qkey][]int
}

// NewHistory keeps up to size samples per queue.
func NewHistory(size int) *History {
	return &History{size: max(size, 2), seen: map[qkey][]int{}}
}

// Record adds the report's ready counts; queues gone from the report, or
// whose ready count is unknown, are forgotten: a trend across a gap would
// claim a change nobody saw.
func (h *History) Record(rep Report) {
	next := make(map[qkey][]int, len(rep.Queues))
	for _, r := range rep.Queues {
		if r.Ready == nil {
			continue
		}
		k := qkey{r.Vhost, r.Name}
		s := append(h.seen[k], *r.Ready)
		if len(s) > h.size {
			s = s[len(s)-h.size:]
		}
		next[k] = s
	}
	h.seen = next
}

// Delta is the change of ready since the previous refresh (0 on the first).
func (h *History) Delta(r Row) int {
	s := h.seen[qkey{r.Vhost, r.Name}]
	if len(s) < 2 {
		return 0
	}
	return s[len(s)-1] - s[len(s)-2]
}

// Arrow is ↑, ↓ or → for the last change of ready.
func (h *History) Arrow(r Row) string {
	switch d := h.Delta(r); {
	case d > 0:
		return "↑"
	case d < 0:
		return "↓"
	}
	return "→"
}

var sparks = []rune("▁▂▃▄▅▆▇█")

// Sparkline draws the remembered ready counts scaled between their
// minimum and maximum, so a small change on a deep queue still shows.
func (h *History) Sparkline(r Row) string {
	s := h.seen[qkey{r.Vhost, r.Name}]
	if len(s) == 0 {
		return ""
	}
	lo, hi := s[0], s[0]
	for _, v := range s {
		lo, hi = min(lo, v), max(hi, v)
	}
	var b strings.Builder
	for _, v := range s {
		i := 0
		if hi > lo {
			i = (v - lo) * (len(sparks) - 1) / (hi - lo)
		}
		b.WriteRune(sparks[i])
	}
	return b.String()
}
