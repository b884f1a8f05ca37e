#!/usr/bin/env bash
# Run RabbitMQ releases other than the system's beside it, for the version
# matrix (`make test-versions`). Each release lives in a Debian chroot built
# once per machine with debootstrap and cached; its node gets its own ports,
# node name, Erlang cookie and epmd, so it never meets the host's node or
# another version's.
#
#   scripts/broker-version.sh build VERSION   build the chroot (cached)
#   scripts/broker-version.sh up VERSION      build if needed, start the node, wait for AMQP and the API
#   scripts/broker-version.sh down VERSION    stop the node this script started
#   scripts/broker-version.sh env VERSION     print the MQCTL_TEST_* and MQCTL_NODE_* variables for it
#   scripts/broker-version.sh running VERSION exit 0 when its node answers
#   scripts/broker-version.sh versions        list the versions it knows
#
# VERSION is 4.0 (Debian trixie's rabbitmq-server) or 4.3 (Debian sid's).
# `system` stands for the node scripts/broker-up.sh manages (3.10 here).
#
# The Debian mirror is read from this machine's apt sources at run time, so
# the script uses whatever archive the machine is set up for.
#
# Environment: MQCTL_CHROOT_DIR (cache, /var/cache/mqctl/chroots),
# MQCTL_NODE_DIR (node data and logs, /var/tmp/mqctl-nodes), BROKER_WAIT (120).
set -euo pipefail

cache=${MQCTL_CHROOT_DIR:-/var/cache/mqctl/chroots}
nodes=${MQCTL_NODE_DIR:-/var/tmp/mqctl-nodes}
wait_s=${BROKER_WAIT:-120}

log() { printf 'broker %s: %s\n' "${version:-?}" "$*" >&2; }
die() { log "$*"; exit 1; }

# One line per version: version, Debian suite, AMQP port, API port. The
# distribution port is AMQP+20000 and epmd listens on AMQP-1000, both far
# from the defaults (5672, 15672, 25672, 4369).
table() {
	cat <<'EOF'
4.0 trixie 5740 15740
4.3 sid 5743 15743
EOF
}

lookup() {
	local line
	line=$(table | awk -v v="$1" '$1 == v') || true
	[[ -n $line ]] || die "unknown version '$1'; known: $(table | awk '{printf "%s ", $1}')(and 'system')"
	read -r version suite amqp_port mgmt_port <<<"$line"
	dist_port=$((amqp_port + 20000))
	epmd_port=$((amqp_port - 1000))
	root="$cache/rabbitmq-$suite"
	node="mqctl${version//./}@localhost"
	data="$nodes/$suite"
}

amqp_up() { (exec 3<>"/dev/tcp/127.0.0.1/$amqp_port") 2>/dev/null; }
mgmt_up() { curl -fsS -m 5 -u guest:guest "http://127.0.0.1:$mgmt_port/api/overview" >/dev/null 2>&1; }

# The first Debian archive URL of the host's apt sources (deb822 or
# one-line format); security and ports archives are passed over.
mirror() {
	local m
	m=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
		awk '/^URIs:/ {for (i = 2; i <= NF; i++) print $i}' |
		grep -E '/debian/?$' | grep -v -- '-security' | head -1) || true
	if [[ -z $m ]]; then
		m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
			awk '$1 == "deb" {for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; break}}' |
			grep -E '/debian/?$' | grep -v -- '-security' | head -1) || true
	fi
	[[ -n $m ]] || die "no Debian archive in /etc/apt/sources.list*; cannot build the $suite chroot"
	echo "${m%/}"
}

need_root() { [[ $(id -u) == 0 ]] || die "building and starting chroot nodes needs root"; }

ensure_debootstrap() {
	command -v debootstrap >/dev/null 2>&1 && return
	# Builds of two suites may start together; apt takes one at a time.
	mkdir -p "$cache"
	(
		flock 8
		command -v debootstrap >/dev/null 2>&1 && exit 0
		log "installing debootstrap"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq >&2 || true
		apt-get install -y -qq debootstrap >&2
	) 8>"$cache/.lock-apt"
}

mount_proc() {
	mountpoint -q "$1/proc" 2>/dev/null || mount -t proc proc "$1/proc"
}

build() {
	need_root
	if [[ -x $root/usr/lib/rabbitmq/bin/rabbitmq-server ]]; then
		log "chroot cached at $root"
		return
	fi
	ensure_debootstrap
	mkdir -p "$cache"
	# Two builds of one suite (make test-versions run twice) must not share
	# a half-built tree: the second waits for the first.
	exec 9>"$cache/.lock-$suite"
	flock 9
	if [[ -x $root/usr/lib/rabbitmq/bin/rabbitmq-server ]]; then
		log "chroot cached at $root"
		return
	fi
	local m tmp start=$SECONDS
	m=$(mirror)
	tmp="$root.partial"
	umount "$tmp/proc" 2>/dev/null || true
	rm -rf "$tmp"
	log "building the $suite chroot with debootstrap (takes several minutes, once per machine)"
	# A snapshot archive's Release files may be past Valid-Until; debootstrap
	# does not check it, apt inside the chroot is told not to.
	debootstrap --variant=minbase "$suite" "$tmp" "$m" >"$cache/debootstrap-$suite.log" 2>&1 ||
		die "debootstrap failed; see $cache/debootstrap-$suite.log"
	echo 'Acquire::Check-Valid-Until "false";' >"$tmp/etc/apt/apt.conf.d/99mqctl-no-valid-until"
	# The package would boot a node on 5672 from its post-install script.
	printf '#!/bin/sh\nexit 101\n' >"$tmp/usr/sbin/policy-rc.d"
	chmod 755 "$tmp/usr/sbin/policy-rc.d"
	cp /etc/hosts "$tmp/etc/hosts"
	mount_proc "$tmp"
	if ! chroot "$tmp" env DEBIAN_FRONTEND=noninteractive LC_ALL=C sh -c \
		'apt-get update -qq && apt-get install -y -qq --no-install-recommends rabbitmq-server curl ca-certificates' \
		>>"$cache/debootstrap-$suite.log" 2>&1; then
		umount "$tmp/proc" || true
		die "installing rabbitmq-server in the chroot failed; see $cache/debootstrap-$suite.log"
	fi
	chroot "$tmp" apt-get clean >/dev/null 2>&1 || true
	umount "$tmp/proc" || true
	local got
	got=$(chroot "$tmp" dpkg-query -W -f '${Version}' rabbitmq-server)
	[[ $got == "$version".* ]] || log "warning: $suite ships rabbitmq-server $got, not $version.x"
	mv "$tmp" "$root"
	log "chroot ready: rabbitmq-server $got in $((SECONDS - start)) s"
}

# Commands run inside the chroot as root with the node's own environment.
in_root() {
	chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/srv/node LC_ALL=C.UTF-8 \
		RABBITMQ_NODENAME="$node" \
		RABBITMQ_NODE_PORT="$amqp_port" \
		RABBITMQ_DIST_PORT="$dist_port" \
		ERL_EPMD_PORT="$epmd_port" \
		RABBITMQ_MNESIA_BASE=/srv/node/mnesia \
		RABBITMQ_LOG_BASE=/srv/node/log \
		RABBITMQ_CONFIG_FILE=/srv/node/rabbitmq.conf \
		RABBITMQ_ENABLED_PLUGINS_FILE=/srv/node/enabled_plugins \
		RABBITMQ_CONF_ENV_FILE=/dev/null \
		"$@"
}

running() { amqp_up && mgmt_up; }

up() {
	if running; then
		log "using the node already answering on $amqp_port (API $mgmt_port)"
		# A node started by an older copy of this script may lack the
		# shovel plugins that dlq replay's shovel path needs.
		if ! curl -fsS -m 5 -u guest:guest "http://127.0.0.1:$mgmt_port/api/shovels" >/dev/null 2>&1; then
			log "enabling rabbitmq_shovel and rabbitmq_shovel_management"
			in_root /usr/lib/rabbitmq/bin/rabbitmq-plugins -n "$node" enable rabbitmq_shovel rabbitmq_shovel_management >&2
		fi
		return
	fi
	build
	need_root
	if amqp_up || (exec 3<>"/dev/tcp/127.0.0.1/$mgmt_port") 2>/dev/null; then
		die "port $amqp_port or $mgmt_port is taken by something else; not starting $node"
	fi
	mount_proc "$root"
	# The node's data lives in the chroot at /srv/node, bind-mounted from a
	# fresh folder: every start is a clean node, the cache stays pristine.
	umount "$root/srv/node" 2>/dev/null || true
	rm -rf "$data"
	mkdir -p "$data/log" "$root/srv/node"
	mount --bind "$data" "$root/srv/node"
	head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$data/.erlang.cookie"
	chmod 400 "$data/.erlang.cookie"
	echo '[rabbitmq_management,rabbitmq_shovel,rabbitmq_shovel_management].' >"$data/enabled_plugins"
	cat >"$data/rabbitmq.conf" <<EOF
listeners.tcp.default = $amqp_port
management.tcp.port = $mgmt_port
loopback_users = none
EOF
	# The 4.3 node denies transient non-exclusive queues, as RabbitMQ plans
	# for all brokers and operators may set today, so the matrix holds a
	# broker that refuses them (Debian's 4.3.6 still permits them).
	if [[ $version == 4.3 ]]; then
		echo 'deprecated_features.permit.transient_nonexcl_queues = false' >>"$data/rabbitmq.conf"
	fi
	log "starting $node (RabbitMQ $(chroot "$root" dpkg-query -W -f '${Version}' rabbitmq-server)) on AMQP $amqp_port, API $mgmt_port"
	ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
	in_root /usr/lib/rabbitmq/bin/rabbitmq-server -detached >>"$data/log/start.out" 2>&1 || true
	local deadline=$((SECONDS + wait_s))
	until running; do
		if ((SECONDS >= deadline)); then
			tail -20 "$data"/log/*.log >&2 2>/dev/null || true
			die "$node did not answer within ${wait_s}s; logs in $data/log"
		fi
		sleep 1
	done
	log "ready: amqp://127.0.0.1:$amqp_port, http://127.0.0.1:$mgmt_port"
}

down() {
	[[ -d $root ]] || { log "no chroot at $root; nothing to stop"; return; }
	if [[ -d $data ]] && mountpoint -q "$root/srv/node" 2>/dev/null; then
		in_root /usr/lib/rabbitmq/bin/rabbitmqctl -n "$node" stop >/dev/null 2>&1 || true
		# epmd of this node only: it listens on our own port.
		in_root /usr/lib/erlang/bin/epmd -port "$epmd_port" -kill >/dev/null 2>&1 || true
		pkill -f -- "-sname $node|-name $node|epmd.*-port $epmd_port" 2>/dev/null || true
		umount "$root/srv/node" 2>/dev/null || true
	fi
	umount "$root/proc" 2>/dev/null || true
	log "stopped $node"
}

# What points the integration tests at the node (MQCTL_TEST_*) and makes
# brokertest.StartNode run private nodes of the same release (MQCTL_NODE_*).
env_of() {
	echo "MQCTL_TEST_URL=amqp://guest:guest@127.0.0.1:$amqp_port/"
	echo "MQCTL_TEST_MGMT_URL=http://127.0.0.1:$mgmt_port"
	echo "MQCTL_NODE_ROOT=$root"
	echo "MQCTL_NODE_EPMD_PORT=$epmd_port"
}

cmd=${1:-}
case $cmd in
versions) table | awk '{print $1 " (Debian " $2 ")"}'; exit 0 ;;
build | up | down | env | running) ;;
*) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
[[ $# -ge 2 ]] || die "usage: $0 $cmd VERSION"
if [[ $2 == system ]]; then
	# The host's own node: broker-up.sh starts it; it is never stopped here.
	version=system
	case $cmd in
	up) exec "$(dirname "$0")/broker-up.sh" ;;
	env) echo "MQCTL_TEST_URL=amqp://guest:guest@127.0.0.1:${BROKER_AMQP_PORT:-5672}/"
		echo "MQCTL_TEST_MGMT_URL=http://127.0.0.1:${BROKER_MGMT_PORT:-15672}"
		echo "MQCTL_NODE_ROOT="
		echo "MQCTL_NODE_EPMD_PORT=" ;;
	*) log "nothing to $cmd: the system node is managed by scripts/broker-up.sh" ;;
	esac
	exit 0
fi
lookup "$2"
case $cmd in
build) build ;;
up) up ;;
down) down ;;
env) env_of ;;
running) running ;;
esac
