#!/usr/bin/env bash
# Bring up a local RabbitMQ node with the management plugin and wait until
# both AMQP and the HTTP API answer. Used by `make broker`, `make test`,
# `make demo` and CI.
#
#   1. A broker whose AMQP port and management API already answer: use it.
#   2. A local node that answers AMQP but lacks the management plugin:
#      enable the plugin on it.
#   3. Nothing answers: start the installed rabbitmq-server, installing
#      Debian's package first when we are root and apt-get exists.
#   4. None of that possible: say what to do instead, and fail.
#
# Environment: BROKER_HOST (127.0.0.1), BROKER_AMQP_PORT (5672),
# BROKER_MGMT_PORT (15672), BROKER_USER/BROKER_PASSWORD (guest/guest),
# BROKER_WAIT (seconds to wait for start-up, 120).
set -euo pipefail

host=${BROKER_HOST:-127.0.0.1}
amqp_port=${BROKER_AMQP_PORT:-5672}
mgmt_port=${BROKER_MGMT_PORT:-15672}
user=${BROKER_USER:-guest}
pass=${BROKER_PASSWORD:-guest}
wait_s=${BROKER_WAIT:-120}

log() { printf 'broker: %s\n' "$*" >&2; }

amqp_up() { (exec 3<>"/dev/tcp/$host/$amqp_port") 2>/dev/null; }

mgmt_up() {
	if command -v curl >/dev/null 2>&1; then
		curl -fsS -m 5 -u "$user:$pass" "http://$host:$mgmt_port/api/overview" >/dev/null 2>&1
	else
		(exec 3<>"/dev/tcp/$host/$mgmt_port") 2>/dev/null
	fi
}

# The AMQP port can open a moment before the management listener and the
# API can answer before the default user exists; wait for both.
wait_ready() {
	local deadline=$((SECONDS + wait_s))
	while ((SECONDS < deadline)); do
		if amqp_up && mgmt_up; then
			log "ready: amqp://$host:$amqp_port, http://$host:$mgmt_port"
			return 0
		fi
		sleep 1
	done
	log "gave up after ${wait_s}s waiting for amqp://$host:$amqp_port and http://$host:$mgmt_port"
	return 1
}

advice() {
	cat >&2 <<'MSG'
broker: no RabbitMQ could be started here. Either
  - install it: `sudo apt-get install rabbitmq-server` (Debian/Ubuntu) or see
    https://www.rabbitmq.com/docs/download, then run `make broker` again; or
  - run the official container:
      docker run -d --name rabbitmq -p 5672:5672 -p 15672:15672 rabbitmq:3-management
  - or point mqctl at an existing broker: MQCTL_TEST_URL=amqp://user:pass@host:5672/
    MQCTL_TEST_MGMT_URL=http://host:15672 (tests) / MQCTL_URL, MQCTL_MGMT_URL.
MSG
}

local_host() { [[ $host == 127.0.0.1 || $host == localhost || $host == ::1 ]]; }

# `mqctl dlq replay` hands whole-DLQ moves to a broker shovel, and its
# tests check that path: a local node gets the shovel plugins too.
shovels() {
	curl -fsS -m 5 -u "$user:$pass" "http://$host:$mgmt_port/api/shovels" >/dev/null 2>&1 && return 0
	if local_host && command -v rabbitmq-plugins >/dev/null 2>&1; then
		log "enabling rabbitmq_shovel and rabbitmq_shovel_management (dlq replay's shovel path)"
		rabbitmq-plugins enable rabbitmq_shovel rabbitmq_shovel_management >&2 && return 0
	fi
	log "the shovel plugins are not enabled here: dlq replay moves every message itself, and its shovel tests fail"
	return 1
}

PATH=$PATH:/usr/sbin
if amqp_up && mgmt_up; then
	log "using the broker already answering at $host:$amqp_port (management on $mgmt_port)"
	shovels
	exit $?
fi

if ! local_host; then
	log "$host is not this machine; cannot start or configure it"
	advice
	exit 1
fi

if ! command -v rabbitmq-server >/dev/null 2>&1 && [[ ! -x /usr/sbin/rabbitmq-server ]]; then
	if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
		log "rabbitmq-server not installed: installing Debian's package"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq >&2
		apt-get install -y -qq rabbitmq-server >&2
	else
		log "rabbitmq-server is not installed and we cannot install it (need root and apt-get)"
		advice
		exit 1
	fi
fi
if amqp_up; then
	log "a local node answers AMQP but not the management API: enabling rabbitmq_management"
	rabbitmq-plugins enable rabbitmq_management >&2 || {
		log "could not enable the plugin (are we allowed to talk to the node? try as root)"
		advice
		exit 1
	}
	wait_ready && shovels
	exit $?
fi

log "starting rabbitmq-server"
# A soft limit of 1024 open files runs out at a few thousand queues and
# crashes the node's file-handle cache; take what the hard limit allows.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
# Enabling offline writes enabled_plugins before boot, so the node starts
# with the API and no second step is needed.
rabbitmq-plugins enable --offline rabbitmq_management rabbitmq_shovel rabbitmq_shovel_management >&2
rabbitmq-server -detached >&2 || true
# await_startup fails at once while the node is not yet registered; retry.
deadline=$((SECONDS + wait_s))
until rabbitmqctl await_startup --timeout 30 >/dev/null 2>&1; do
	if ((SECONDS >= deadline)); then
		log "the node did not start; see /var/log/rabbitmq/"
		advice
		exit 1
	fi
	sleep 2
done
wait_ready
