#!/usr/bin/env bash
# Grouping and filtering N dead letters (`mqctl dlq show --groups`, and
# with --where) against `mqctl dlq export` of the same queue, same broker,
# same run: messages per second and peak memory of each; the queue is
# checked to hold every message after each command.
#
#   scripts/bench/dlq-group-vs-export.sh [-n 100000] [-size 1024] [-runs 3] [-json]
#
# The broker: a private node on PORT (default 5696), or SHARED=1 (see
# bench_target in scripts/bench/lib/node.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/bench/lib/node.sh
make -s build
WORK=$(mktemp -d)
trap 'node_stop; rm -rf "$WORK"' EXIT
bench_target "$WORK" "${PORT:-5696}"
go run ./scripts/bench/dlqgroup -mqctl bin/mqctl -url "$url" -mgmt-url "$mgmt" "$@"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
