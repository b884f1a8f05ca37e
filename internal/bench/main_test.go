package bench

import (
	"testing"

	"go.uber.org/goleak"
)

// Every connection, producer, consumer, sampler and HTTP goroutine a run
// starts has ended when it returns.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
