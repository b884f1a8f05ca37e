#!/usr/bin/env bash
# Topology benchmark: N work queues (default 1,000) with retry (2 delay
# queues) and a DLQ each, applied in a private vhost, against the broker's
# own import of the same objects (one POST /api/definitions/{vhost}, as
# curl sends it). Reports validate, plan against an empty vhost, apply,
# plan again (must show zero changes), the import, apply/import in wall
# time and in broker CPU.
#
#   scripts/bench/topology.sh                       # 1,000 work queues = 4,000 queues
#   MQCTL_BENCH_QUEUES=1250 COUNT=3 scripts/bench/topology.sh   # 5,000 queues, 3 rounds
#
# The broker: a private node on PORT (default 5690; the open-files limit
# raised, its CPU measured), or SHARED=1 (see bench_target in
# scripts/bench/lib/node.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/bench/lib/node.sh
WORK=$(mktemp -d)
trap 'node_stop; rm -rf "$WORK"' EXIT
bench_target "$WORK" "${PORT:-5690}"
MQCTL_TEST_URL=$url MQCTL_TEST_MGMT_URL=$mgmt MQCTL_BENCH_BROKER_PID=$pid \
	go test -run '^$' -bench '^BenchmarkTopology1000$' -benchtime 1x -count "${COUNT:-1}" -timeout 60m ./internal/topology/
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
