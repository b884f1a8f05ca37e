# Sourced by the benchmark scripts: a private RabbitMQ node on its own
# ports and data directory, so a benchmark never loads or breaks a broker
# others use (thousands of queues on a node limited to 1,024 file
# descriptors exhaust its file handle cache, for one).
#
#   node_start DIR PORT PLUGINS…   boots the node (AMQP PORT, management
#                                  PORT+10000), open-files limit raised to
#                                  the hard limit; sets NODE, NODE_AMQP,
#                                  NODE_MGMT and NODE_PID
#   node_stop                      stops it (call from an EXIT trap)

NODE=""

# node_ctl ARGS…: rabbitmqctl for the private node, with its own cookie.
node_ctl() {
	HOME="$NODE_DIR" RABBITMQ_NODENAME="$NODE" /usr/lib/rabbitmq/bin/rabbitmqctl -n "$NODE" "$@"
}

node_start() {
	NODE_DIR=$1
	local port=$2
	shift 2
	local mport=$((port + 10000)) plugins
	plugins=$(IFS=,; echo "rabbitmq_management${*:+,$*}")
	NODE="mqctl-bench-$$@localhost"
	NODE_AMQP="amqp://guest:guest@localhost:$port"
	NODE_MGMT="http://localhost:$mport"
	mkdir -p "$NODE_DIR/node/log" "$NODE_DIR/node/mnesia"
	printf 'mqctl-bench-cookie-%s' "$$" >"$NODE_DIR/.erlang.cookie"
	chmod 400 "$NODE_DIR/.erlang.cookie"
	printf 'listeners.tcp.default = %d\nmanagement.tcp.port = %d\n' "$port" "$mport" >"$NODE_DIR/node/rabbitmq.conf"
	printf '[%s].\n' "$plugins" >"$NODE_DIR/node/enabled_plugins"
	(
		ulimit -n "$(ulimit -Hn)"
		HOME="$NODE_DIR" RABBITMQ_NODENAME="$NODE" RABBITMQ_NODE_PORT="$port" \
			RABBITMQ_DIST_PORT=$((port + 20000)) RABBITMQ_MNESIA_BASE="$NODE_DIR/node/mnesia" \
			RABBITMQ_LOG_BASE="$NODE_DIR/node/log" RABBITMQ_CONFIG_FILE="$NODE_DIR/node/rabbitmq.conf" \
			RABBITMQ_ENABLED_PLUGINS_FILE="$NODE_DIR/node/enabled_plugins" RABBITMQ_CONF_ENV_FILE=/dev/null \
			/usr/lib/rabbitmq/bin/rabbitmq-server -detached
	)
	for _ in $(seq 1 90); do
		if curl -fsS -m 2 -u guest:guest "$NODE_MGMT/api/overview" >/dev/null 2>&1; then
			NODE_PID=$(node_ctl eval 'os:getpid().' | tr -d '"')
			echo "private node $NODE: AMQP $port, management $mport, OS pid $NODE_PID" >&2
			return 0
		fi
		sleep 1
	done
	echo "private node did not start; see $NODE_DIR/node/log" >&2
	return 1
}

node_stop() {
	[[ -n $NODE ]] && node_ctl stop >/dev/null 2>&1 || true
}

# bench_target WORK PORT PLUGINS…: the broker a side-by-side benchmark
# runs against; sets url, mgmt and pid. By default a private node
# (node_start WORK PORT PLUGINS…); SHARED=1 uses MQCTL_BENCH_URL (default
# amqp://guest:guest@localhost:5672/) and MQCTL_BENCH_MGMT_URL, whose
# broker needs the plugins enabled, and BROKER_PID (its OS pid) for the
# CPU figures.
bench_target() {
	if [[ ${SHARED:-0} == 1 ]]; then
		url=${MQCTL_BENCH_URL:-amqp://guest:guest@localhost:5672/}
		mgmt=${MQCTL_BENCH_MGMT_URL:-http://localhost:15672}
		pid=${BROKER_PID:-0}
	else
		node_start "$@"
		url=$NODE_AMQP/ mgmt=$NODE_MGMT pid=$NODE_PID
	fi
	echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs" >&2
}
