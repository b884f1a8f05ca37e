// Package bench is mqctl's load generator: a PerfTest-compatible
// producer/consumer benchmark (Run) and the sign-up benchmark that compares
// a synchronous request path with publish-and-return (RunRegister). It
// returns data; the CLI renders it.
package bench

import (
	"encoding/binary"
	"time"
)

// HeaderLen is the length of the PerfTest message header that starts every
// benchmark body: a big-endian int32 sequence number followed by a
// big-endian int64 timestamp.
const HeaderLen = 12

// millisCutoff separates the two timestamp units found in the wild: a value
// below it (the year 2100 in Unix milliseconds) is milliseconds (PerfTest
// --use-millis, omq --use-millis), above it nanoseconds (omq's default, and
// mqctl's). omq reads timestamps the same way.
const millisCutoff = 4102441200000

// EncodeHeader writes seq and the send time into body[:HeaderLen]. The
// timestamp is Unix nanoseconds, or Unix milliseconds when millis is set
// (for PerfTest consumers started with --use-millis). body must be at least
// HeaderLen long.
func EncodeHeader(body []byte, seq int32, sent time.Time, millis bool) {
	binary.BigEndian.PutUint32(body[0:4], uint32(seq))
	ts := sent.UnixNano()
	if millis {
		ts = sent.UnixMilli()
	}
	binary.BigEndian.PutUint64(body[4:12], uint64(ts))
}

// DecodeHeader reads the sequence number and send time from a benchmark
// body written by mqctl, omq or PerfTest (--use-millis). ok is false when
// the body is too short or the timestamp is not wall-clock time (PerfTest
// without --use-millis writes the JVM's monotonic nanoTime, which means
// nothing in another process).
func DecodeHeader(body []byte) (seq int32, sent time.Time, ok bool) {
	if len(body) < HeaderLen {
		return 0, time.Time{}, false
	}
	seq = int32(binary.BigEndian.Uint32(body[0:4]))
	ts := int64(binary.BigEndian.Uint64(body[4:12]))
	switch {
	case ts <= 0:
		return seq, time.Time{}, false
	case ts < millisCutoff:
		sent = time.UnixMilli(ts)
	default:
		sent = time.Unix(0, ts)
	}
	// A plausible wall-clock time: after 2001 (a monotonic nanoTime in
	// nanoseconds since boot falls well before that).
	if sent.Year() < 2001 {
		return seq, time.Time{}, false
	}
	return seq, sent, true
}
