package bench

import (
	"encoding/binary"
	"testing"
	"time"
)

func TestHeaderRoundTrip(t *testing.T) {
	sent := time.Date(2026, 11, 25, 4, 30, 0, 123456789, time.UTC)
	for _, tc := range []struct {
		name   string
		millis bool
		want   time.Time
	}{
		{"nanoseconds", false, sent},
		{"milliseconds", true, sent.Truncate(time.Millisecond)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := make([]byte, 1000)
			EncodeHeader(body, 424242, sent, tc.millis)
			seq, got, ok := DecodeHeader(body)
			if !ok || seq != 424242 || !got.Equal(tc.want) {
				t.Fatalf("DecodeHeader = %d, %v, %v; want 424242, %v, true", seq, got, ok, tc.want)
			}
		})
	}
}

// The layout is PerfTest's: big-endian int32 sequence, then big-endian int64.
func TestHeaderLayoutIsPerfTests(t *testing.T) {
	body := make([]byte, HeaderLen)
	sent := time.UnixMilli(1_795_000_000_000)
	EncodeHeader(body, 7, sent, true)
	if got := binary.BigEndian.Uint32(body[0:4]); got != 7 {
		t.Errorf("sequence bytes = %d, want 7", got)
	}
	if got := binary.BigEndian.Uint64(body[4:12]); got != 1_795_000_000_000 {
		t.Errorf("timestamp bytes = %d, want 1795000000000", got)
	}
}

func TestDecodeHeaderFromOtherTools(t *testing.T) {
	now := time.Now()
	omq := make([]byte, 100)
	binary.BigEndian.PutUint32(omq, 1234) // omq's constant "sequence"
	binary.BigEndian.PutUint64(omq[4:], uint64(now.UnixNano()))
	if seq, got, ok := DecodeHeader(omq); !ok || seq != 1234 || !got.Equal(time.Unix(0, now.UnixNano())) {
		t.Errorf("omq body: %d, %v, %v", seq, got, ok)
	}

	perfTestMillis := make([]byte, 12)
	binary.BigEndian.PutUint64(perfTestMillis[4:], uint64(now.UnixMilli()))
	if _, got, ok := DecodeHeader(perfTestMillis); !ok || got.UnixMilli() != now.UnixMilli() {
		t.Errorf("PerfTest --use-millis body: %v, %v", got, ok)
	}

	// PerfTest's default is the JVM's System.nanoTime(): time since an
	// arbitrary origin, meaningless in another process.
	perfTestNano := make([]byte, 12)
	binary.BigEndian.PutUint64(perfTestNano[4:], uint64(5*time.Hour))
	if _, _, ok := DecodeHeader(perfTestNano); ok {
		t.Error("a monotonic nanoTime was taken for a wall-clock time")
	}

	if _, _, ok := DecodeHeader(make([]byte, 11)); ok {
		t.Error("an 11-byte body decoded")
	}
}
