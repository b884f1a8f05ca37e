package bench

import (
	"sort"
	"time"
)

// Scenarios are named PerfTest command lines, so a comparison with other
// tools uses the same parameters. Flags given explicitly win over them.
var Scenarios = map[string]Config{
	// -x 1 -y 1 -s 1000 -c 1000 -q 1000 -A 100 -f persistent --queue-type classic -z 30
	"cq-confirm": {Producers: 1, Consumers: 1, Size: 1000, ConfirmWindow: 1000, Prefetch: 1000, MultiAckEvery: 100,
		Persistent: true, QueueType: QueueClassic, Duration: 30 * time.Second},
	// its quorum twin
	"qq-confirm": {Producers: 1, Consumers: 1, Size: 1000, ConfirmWindow: 1000, Prefetch: 1000, MultiAckEvery: 100,
		Persistent: true, QueueType: QueueQuorum, Duration: 30 * time.Second},
}

// ScenarioNames lists the scenarios in order.
func ScenarioNames() []string {
	names := make([]string, 0, len(Scenarios))
	for n := range Scenarios {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
