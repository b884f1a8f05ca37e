#!/usr/bin/env bash
# Replay of N dead letters: `mqctl dlq replay` vs the broker's shovel-based
# move (the management UI's "Move messages"), same broker, same run, ids
# counted afterwards (zero lost, zero duplicated or the script fails), with
# the broker's and mqctl's CPU time per message.
#
#   scripts/bench/dlq-replay-vs-shovel.sh [-n 100000] [-size 1024] [-runs 3] [-origin-type classic|quorum]
#       [-mqctl-args "--window 4096"]
#
# By default it starts a private RabbitMQ node (scripts/bench/lib/node.sh) with the
# management and shovel plugins on PORT (default 5698; management
# PORT+10000) and stops it afterwards. SHARED=1 uses MQCTL_BENCH_URL
# (default amqp://guest:guest@localhost:5672/) and MQCTL_BENCH_MGMT_URL
# instead; that broker needs `rabbitmq-plugins enable rabbitmq_shovel
# rabbitmq_shovel_management`, and BROKER_PID (its OS pid) adds the CPU figures.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/bench/lib/node.sh
make -s build
WORK=$(mktemp -d)
trap 'node_stop; rm -rf "$WORK"' EXIT
if [[ ${SHARED:-0} == 1 ]]; then
	url=${MQCTL_BENCH_URL:-amqp://guest:guest@localhost:5672/}
	mgmt=${MQCTL_BENCH_MGMT_URL:-http://localhost:15672}
	pid=${BROKER_PID:-0}
else
	node_start "$WORK" "${PORT:-5698}" rabbitmq_shovel rabbitmq_shovel_management
	url=$NODE_AMQP/ mgmt=$NODE_MGMT pid=$NODE_PID
fi
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs" >&2
go run ./scripts/bench/dlqreplay -mqctl bin/mqctl -url "$url" -mgmt-url "$mgmt" -broker-pid "$pid" "$@"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
