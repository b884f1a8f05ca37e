#!/usr/bin/env bash
# Benchmark of `mqctl backlog` at scale: creates QUEUES queues (default
# 5,000: half work queues dead-lettering through their own Q.dlx exchange
# to Q.dlq, half those DLQs) in a private vhost with one definitions import,
# then times `mqctl backlog -o json`, the table and `mqctl backlog check`
# RUNS times each and prints the median wall time and peak RSS. Not part of
# `go test`; run it by hand:
#
#   scripts/bench/backlog.sh                 # private node, 5,000 queues, 5 runs
#   QUEUES=10000 RUNS=7 scripts/bench/backlog.sh
#   SHARED=1 scripts/bench/backlog.sh        # use the broker at MGMT/AMQP instead
#   BASELINE=/tmp/main/mqctl scripts/bench/backlog.sh   # check: this tree against that binary
#
# By default it starts a private RabbitMQ node on free ports (its own data
# directory and the open-files limit raised to the hard limit) and stops it afterwards:
# thousands of classic queues on a node limited to 1,024 file descriptors
# exhaust its file handle cache when they are deleted (queues crash, new
# vhosts fail to start), which must not happen to a broker others use.
#
# Environment: SETTLE (seconds to wait after the import, default 60), PORT (private AMQP port, default 5699; management PORT+10000),
# SHARED=1 with MGMT (default http://localhost:15672), AMQP (default
# amqp://guest:guest@localhost:5672), USERPASS (default guest:guest),
# BASELINE (another mqctl binary, e.g. main's: its `backlog check` joins
# the check's side-by-side, against one curl of the request it sends).
set -euo pipefail

QUEUES=${QUEUES:-5000}
RUNS=${RUNS:-5}
SHARED=${SHARED:-0}
USERPASS=${USERPASS:-guest:guest}
VHOST=${VHOST:-"mqctl-bench-backlog-$$"}
KEEP=${KEEP:-0} # 1: keep the vhost (shared broker only)
WORK=$(mktemp -d)
BIN="$WORK/mqctl"

source "$(dirname "$0")/lib/node.sh"

if [[ $SHARED == 1 ]]; then
	MGMT=${MGMT:-http://localhost:15672}
	AMQP=${AMQP:-amqp://guest:guest@localhost:5672}
else
	PORT=${PORT:-5699}
	KEEP=0
fi

cleanup() {
	if [[ $SHARED != 1 ]]; then
		node_stop
	elif [[ $KEEP != 1 ]]; then
		curl -fsS -m 300 -u "$USERPASS" -X DELETE "$MGMT/api/vhosts/$VHOST" >/dev/null || true
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT

cd "$(dirname "$0")/../.."
go build -o "$BIN" ./cmd/mqctl
if [[ $SHARED != 1 ]]; then
	node_start "$WORK" "$PORT"
	MGMT=$NODE_MGMT AMQP=$NODE_AMQP
fi

curl -fsS -u "$USERPASS" -X PUT "$MGMT/api/vhosts/$VHOST" >/dev/null
user=${USERPASS%%:*}
curl -fsS -u "$USERPASS" -X PUT -H 'content-type: application/json' \
	-d '{"configure":".*","write":".*","read":".*"}' "$MGMT/api/permissions/$VHOST/$user" >/dev/null

# One definitions document: QUEUES/2 work queues with x-dead-letter-*
# arguments, their Q.dlx exchanges, their Q.dlq queues and bindings.
pairs=$((QUEUES / 2))
{
	printf '{"queues":['
	for ((i = 0; i < pairs; i++)); do
		((i > 0)) && printf ','
		printf '{"name":"work.%d","vhost":"%s","durable":true,"auto_delete":false,"arguments":{"x-dead-letter-exchange":"work.%d.dlx","x-dead-letter-routing-key":"work.%d"}},' "$i" "$VHOST" "$i" "$i"
		printf '{"name":"work.%d.dlq","vhost":"%s","durable":true,"auto_delete":false,"arguments":{}}' "$i" "$VHOST"
	done
	printf '],"exchanges":['
	for ((i = 0; i < pairs; i++)); do
		((i > 0)) && printf ','
		printf '{"name":"work.%d.dlx","vhost":"%s","type":"direct","durable":true,"auto_delete":false,"internal":false,"arguments":{}}' "$i" "$VHOST"
	done
	printf '],"bindings":['
	for ((i = 0; i < pairs; i++)); do
		((i > 0)) && printf ','
		printf '{"source":"work.%d.dlx","vhost":"%s","destination":"work.%d.dlq","destination_type":"queue","routing_key":"work.%d","arguments":{}}' "$i" "$VHOST" "$i" "$i"
	done
	printf ']}'
} >"$WORK/defs.json"

start=$(date +%s.%N)
curl -fsS -u "$USERPASS" -X POST -H 'content-type: application/json' \
	--data-binary @"$WORK/defs.json" "$MGMT/api/definitions/$VHOST" >/dev/null
echo "imported $((pairs * 2)) queues, $pairs exchanges, $pairs bindings in $(echo "$(date +%s.%N) - $start" | bc) s"

# A node that just created thousands of queues is busy with their first
# statistics for a while; measure the steady state an operator sees.
sleep "${SETTLE:-60}"

export MQCTL_URL="$AMQP/$VHOST" MQCTL_MGMT_URL="$MGMT" MQCTL_CONFIG="$WORK/none.yaml"
# Check the listing is complete before timing it.
n=$("$BIN" backlog -o json | grep -c '"role":' || true)
echo "mqctl backlog lists $n queues"
[[ $n -eq $((pairs * 2)) ]] || { echo "expected $((pairs * 2)) queues" >&2; exit 1; }

# measure NAME CMD…: RUNS runs after one warm-up; median wall time, median
# CPU time of mqctl itself (user+sys: the client's share) and peak RSS.
median() { sort -g | sed -n "$(((RUNS + 1) / 2))p"; }
measure() {
	local name=$1
	shift
	"$@" >/dev/null 2>&1 || true
	local walls=() cpus=() rss=()
	for ((r = 0; r < RUNS; r++)); do
		/usr/bin/time -f '%e %U %S %M' -o "$WORK/time" "$@" >/dev/null 2>&1 || true
		read -r w u s m < <(tail -1 "$WORK/time")
		walls+=("$w")
		cpus+=("$(echo "$u + $s" | bc)")
		rss+=("$m")
	done
	local mw mc mr maxr
	mw=$(printf '%s\n' "${walls[@]}" | median)
	mc=$(printf '%s\n' "${cpus[@]}" | median)
	mr=$(printf '%s\n' "${rss[@]}" | median)
	maxr=$(printf '%s\n' "${rss[@]}" | sort -g | tail -1)
	printf '%-16s wall median %5.2f s (runs: %s)  mqctl CPU median %4.2f s  peak RSS median %4.1f MB, max %4.1f MB\n' \
		"$name" "$mw" "${walls[*]}" "$mc" "$(echo "$mr / 1024" | bc -l)" "$(echo "$maxr / 1024" | bc -l)"
}

# side_by_side: `mqctl backlog -o json` against one filtered curl of the
# same columns, alternating run by run, medians and their ratio: what the
# broker needs to answer is the floor mqctl is measured against.
cols="vhost,name,type,state,arguments,policy,effective_policy_definition,messages_ready,messages_unacknowledged,consumers,head_message_timestamp,leader,members,online,message_stats.publish_details.rate,message_stats.deliver_get_details.rate,message_stats.ack_details.rate"
side_by_side() {
	local m=() c=() w
	"$BIN" backlog -o json >/dev/null 2>&1 || true
	for ((r = 0; r < RUNS; r++)); do
		/usr/bin/time -f '%e' -o "$WORK/time" "$BIN" backlog -o json >/dev/null 2>&1 || true
		m+=("$(tail -1 "$WORK/time")")
		/usr/bin/time -f '%e' -o "$WORK/time" curl -fsS -u "$USERPASS" "$MGMT/api/queues/$VHOST?columns=$cols" >/dev/null 2>&1 || true
		c+=("$(tail -1 "$WORK/time")")
	done
	local mm mc
	mm=$(printf '%s\n' "${m[@]}" | median)
	mc=$(printf '%s\n' "${c[@]}" | median)
	printf 'side by side    mqctl backlog -o json median %5.2f s (runs: %s), one filtered curl median %5.2f s (runs: %s): ratio %.2fx\n' \
		"$mm" "${m[*]}" "$mc" "${c[*]}" "$(echo "$mm / $mc" | bc -l)"
}

# side_by_side_check: `mqctl backlog check` with count gates only, which
# reads the queue list as queue totals (disable_stats), against one curl
# of that request; with BASELINE, that binary's check against one curl of
# the request it sends (the list with statistics, no rates), all four
# alternating run by run. Wall time and, on the private node (or with
# BROKER_PID), the broker's CPU during each.
check_gates=(--max-ready 1000 --max-unacked 1000 --max-dlq 0)
totals_cols="vhost,name,type,state,arguments,policy,effective_policy_definition,messages_ready,messages_unacknowledged,leader,members,online"
stats_cols="vhost,name,type,state,arguments,policy,effective_policy_definition,messages_ready,messages_unacknowledged,consumers,head_message_timestamp,leader,members,online"
bpid=${NODE_PID:-${BROKER_PID:-0}}
bcpu() { if [[ $bpid != 0 ]]; then awk '{print $14 + $15}' "/proc/$bpid/stat"; else echo 0; fi; }
# timed W C CMD…: appends CMD's wall time to array W, the broker's CPU
# seconds meanwhile to array C.
timed() {
	local -n _w=$1 _c=$2
	shift 2
	local c0
	c0=$(bcpu)
	/usr/bin/time -f '%e' -o "$WORK/time" "$@" >/dev/null 2>&1 || true
	_w+=("$(tail -1 "$WORK/time")")
	_c+=("$(echo "($(bcpu) - $c0) / $(getconf CLK_TCK)" | bc -l)")
}
side_by_side_check() {
	local m=() mc=() c=() cc=() b=() bc=() d=() dc=()
	"$BIN" backlog check "${check_gates[@]}" >/dev/null 2>&1 || true
	for ((r = 0; r < RUNS; r++)); do
		timed m mc "$BIN" backlog check "${check_gates[@]}"
		timed c cc curl -fsS -u "$USERPASS" "$MGMT/api/queues/$VHOST?columns=$totals_cols&disable_stats=true&enable_queue_totals=true"
		[[ -n ${BASELINE:-} ]] || continue
		timed b bc "$BASELINE" backlog check "${check_gates[@]}"
		timed d dc curl -fsS -u "$USERPASS" "$MGMT/api/queues/$VHOST?columns=$stats_cols"
	done
	med() { printf '%s\n' "$@" | median; }
	printf 'side by side    mqctl backlog check median %5.2f s (runs: %s), broker CPU %4.2f s; one curl of its queue totals read median %5.2f s (runs: %s), broker CPU %4.2f s: ratio %.2fx wall, %.2fx broker CPU\n' \
		"$(med "${m[@]}")" "${m[*]}" "$(med "${mc[@]}")" "$(med "${c[@]}")" "${c[*]}" "$(med "${cc[@]}")" \
		"$(echo "$(med "${m[@]}") / $(med "${c[@]}")" | bc -l)" "$(echo "$(med "${mc[@]}") / $(med "${cc[@]}")" | bc -l)"
	[[ -n ${BASELINE:-} ]] || return 0
	printf 'side by side    baseline backlog check median %5.2f s (runs: %s), broker CPU %4.2f s; one curl of its statistics read median %5.2f s (runs: %s), broker CPU %4.2f s: ratio %.2fx wall\n' \
		"$(med "${b[@]}")" "${b[*]}" "$(med "${bc[@]}")" "$(med "${d[@]}")" "${d[*]}" "$(med "${dc[@]}")" \
		"$(echo "$(med "${b[@]}") / $(med "${d[@]}")" | bc -l)"
	printf 'side by side    this check / baseline check: %.2fx wall, %.2fx broker CPU\n' \
		"$(echo "$(med "${m[@]}") / $(med "${b[@]}")" | bc -l)" "$(echo "$(med "${mc[@]}") / $(med "${bc[@]}")" | bc -l)"
}

echo "load average before timing: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
side_by_side_check
side_by_side
measure "backlog -o json" "$BIN" backlog -o json
measure "backlog (table)" "$BIN" backlog
measure "backlog check" "$BIN" backlog check "${check_gates[@]}"
measure "check + stats" "$BIN" backlog check --max-ready 1000 --max-unacked 1000 --max-dlq 0 --min-consumers 0 --max-age 1h
echo "load average after timing: $(cut -d' ' -f1-3 /proc/loadavg)"
