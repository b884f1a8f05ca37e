#!/usr/bin/env bash
# Replay of N dead letters: `mqctl dlq replay` vs the broker's shovel-based
# move (the management UI's "Move messages"), same broker, same run, ids
# counted afterwards (zero lost, zero duplicated or the script fails), with
# the broker's and mqctl's CPU time per message.
#
#   scripts/bench/dlq-replay-vs-shovel.sh [-n 100000] [-size 1024] [-runs 3] [-origin-type classic|quorum]
#       [-mqctl-args "--window 4096"]
#
# The broker: a private node with the shovel plugins on PORT (default 5698),
# or SHARED=1 (see bench_target in scripts/bench/lib/node.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/bench/lib/node.sh
make -s build
WORK=$(mktemp -d)
trap 'node_stop; rm -rf "$WORK"' EXIT
bench_target "$WORK" "${PORT:-5698}" rabbitmq_shovel rabbitmq_shovel_management
go run ./scripts/bench/dlqreplay -mqctl bin/mqctl -url "$url" -mgmt-url "$mgmt" -broker-pid "$pid" "$@"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
