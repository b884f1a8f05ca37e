#!/usr/bin/env bash
# Topology benchmark: 1,000 work queues with retry (2 delay queues) and a DLQ
# each (5,001 objects... see the "objects" metric), on the local broker in
# private vhosts that are deleted afterwards. Reports validate, plan against
# an empty vhost, apply, plan again (must show zero changes), the broker's own
# definitions import of the same objects, and apply/import.
#
#   scripts/bench/topology.sh                       # 1,000 queues
#   MQCTL_BENCH_QUEUES=200 scripts/bench/topology.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
exec go test -run '^$' -bench '^BenchmarkTopology1000$' -benchtime 1x -count "${COUNT:-1}" -timeout 30m ./internal/topology/
