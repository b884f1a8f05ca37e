#!/usr/bin/env bash
# Replay of N dead letters: `mqctl dlq replay` vs the broker's shovel-based
# move (the management UI's "Move messages"), same broker, same run, ids
# counted afterwards (zero lost, zero duplicated or the script fails).
#
#   bench/dlq-replay-vs-shovel.sh [-n 100000] [-size 1024] [-runs 3] [-origin-type classic|quorum]
#       [-broker-pid PID] [-mqctl-args "--window 4096"]
#
# Needs the shovel plugins: rabbitmq-plugins enable rabbitmq_shovel rabbitmq_shovel_management
# Broker: MQCTL_BENCH_URL (default amqp://guest:guest@localhost:5672/), MQCTL_BENCH_MGMT_URL.
set -euo pipefail
cd "$(dirname "$0")/.."
make -s build
exec go run ./bench/dlqreplay \
  -mqctl bin/mqctl \
  -url "${MQCTL_BENCH_URL:-amqp://guest:guest@localhost:5672/}" \
  -mgmt-url "${MQCTL_BENCH_MGMT_URL:-http://localhost:15672}" \
  "$@"
