#!/usr/bin/env bash
# A classic queue of N messages turned into a quorum queue:
# `mqctl topology apply --migrate` vs the same migration by hand with the
# management UI's "Move messages" (a shovel each way), and one UI move
# alone, same broker, same run, ids counted afterwards (zero lost, zero
# duplicated or the script fails), with the broker's CPU per message.
#
#   scripts/bench/migrate-vs-shovel.sh [-n 100000] [-size 1024] [-runs 3]
#
# The broker: a private node with the shovel plugins on PORT (default 5697),
# or SHARED=1 (see bench_target in scripts/bench/lib/node.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/bench/lib/node.sh
make -s build
WORK=$(mktemp -d)
trap 'node_stop; rm -rf "$WORK"' EXIT
bench_target "$WORK" "${PORT:-5697}" rabbitmq_shovel rabbitmq_shovel_management
go run ./scripts/bench/migrate -mqctl bin/mqctl -url "$url" -mgmt-url "$mgmt" -broker-pid "$pid" "$@"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
