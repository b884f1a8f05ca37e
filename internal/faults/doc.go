// Package faults is mqctl's reliability suite: tests that start private
// RabbitMQ nodes (brokertest.StartNodeWith, StartCluster), drive the real
// mqctl binary against them (mqctltest), break the broker, the network or
// mqctl itself in the middle of the work, and then count, Jepsen-style,
// every confirmed message: duplicates are allowed and reported, a single
// lost message fails the test.
//
// Every scenario reports its figures with Report; `make test-faults` runs
// the suite alone (the nodes need the machine's two cores) and collects
// the figures for RELIABILITY.md.
package faults

import (
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
)

// Figures are what one scenario measured.
type Figures struct {
	Scenario   string        `json:"scenario"`
	Confirmed  int           `json:"confirmed"`  // messages the broker confirmed to a producer
	Processed  int           `json:"processed"`  // distinct messages that reached their end (side effect, queue, archive)
	Lost       int           `json:"lost"`       // confirmed but never processed: must be 0
	Duplicated int           `json:"duplicated"` // processed more than once (allowed, reported)
	Recovery   time.Duration `json:"recovery"`   // from the fault's end to work flowing again
	Note       string        `json:"note,omitempty"`
}

func (f Figures) String() string {
	s := fmt.Sprintf("%s: confirmed %d, processed %d, lost %d, duplicated %d, recovery %s",
		f.Scenario, f.Confirmed, f.Processed, f.Lost, f.Duplicated, f.Recovery.Round(10*time.Millisecond))
	if f.Note != "" {
		s += " (" + f.Note + ")"
	}
	return s
}

var reportMu sync.Mutex

// Report logs the figures (visible with -v and on failure) and, when
// MQCTL_FAULTS_REPORT names a file, appends them to it as one JSON line.
// A lost message fails the test: that is the promise under test.
func Report(t testing.TB, f Figures) {
	t.Helper()
	t.Logf("FIGURES %s", f)
	if f.Lost != 0 {
		t.Errorf("%s: %d confirmed messages lost", f.Scenario, f.Lost)
	}
	path := os.Getenv("MQCTL_FAULTS_REPORT")
	if path == "" {
		return
	}
	reportMu.Lock()
	defer reportMu.Unlock()
	b, _ := json.Marshal(f)
	file, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Errorf("fault report: %v", err)
		return
	}
	defer file.Close()
	_, _ = file.Write(append(b, '\n'))
}
