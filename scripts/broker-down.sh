#!/usr/bin/env bash
# Stop the local RabbitMQ node started by broker-up.sh.
set -euo pipefail
PATH=$PATH:/usr/sbin
if command -v rabbitmqctl >/dev/null 2>&1; then
	rabbitmqctl stop >&2 && echo "broker: stopped" >&2
else
	echo "broker: rabbitmqctl not found; nothing to stop" >&2
fi
