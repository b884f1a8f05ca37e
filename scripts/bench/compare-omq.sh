#!/usr/bin/env bash
# Run PerfTest's "cq-confirm" scenario and its quorum twin with mqctl and
# with omq (RabbitMQ's Go load tool), alternately, and print per run the
# receive rate, the client's CPU per message and the broker's CPU.
#
#   scripts/bench/compare-omq.sh OMQ_BINARY [ROUNDS] [SECONDS]
#
# OMQ_BINARY is an omq binary you built yourself; this script never builds
# or downloads it. mqctl is taken from $MQCTL (default: bin/mqctl).
# Broker: $AMQP_URL (default amqp://guest:guest@localhost:5672/) and its
# management API $MGMT_URL (default http://localhost:15672), used to
# declare omq's queue: omq declares queues over AMQP 1.0, which RabbitMQ
# 3.x does not offer, so it runs with --queues predeclared.
# The broker must run on this machine: its CPU is read from /proc.
set -euo pipefail

OMQ=${1:?usage: $0 OMQ_BINARY [ROUNDS] [SECONDS]}
ROUNDS=${2:-3}
SECONDS_PER_RUN=${3:-30}
MQCTL=${MQCTL:-bin/mqctl}
AMQP_URL=${AMQP_URL:-amqp://guest:guest@localhost:5672/}
MGMT_URL=${MGMT_URL:-http://localhost:15672}
MGMT_USER=${MGMT_USER:-guest}
MGMT_PASS=${MGMT_PASS:-guest}

port=$(sed -E 's|^amqps?://([^@/]*@)?[^:/]+:?([0-9]*).*|\2|' <<<"$AMQP_URL")
port=${port:-5672}
beam=$(ss -ltnp "sport = :$port" | sed -nE 's/.*"beam.smp",pid=([0-9]+).*/\1/p' | head -1)
[[ -n $beam ]] || { echo "no beam.smp listening on port $port on this machine" >&2; exit 1; }
tick=$(getconf CLK_TCK)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# run LABEL CMD...: runs CMD, prints "client_cpu_s broker_cpu_s" to $work/cpu.
run() {
	local b0 b1 start end
	b0=$(cpu_ticks "$beam")
	start=$(date +%s.%N)
	local TIMEFORMAT='%U %S'
	local rc=0
	{ time "$@" >"$work/out" 2>"$work/err"; } 2>"$work/time" || rc=$?
	if ((rc != 0)); then
		echo "warning: $1 exited $rc: $(tail -1 "$work/err")" >&2
	fi
	end=$(date +%s.%N)
	b1=$(cpu_ticks "$beam")
	read -r u s <"$work/time"
	python3 - "$u" "$s" "$b0" "$b1" "$tick" "$start" "$end" >"$work/cpu" <<'PY'
import sys
u, s, b0, b1, tick, start, end = map(float, sys.argv[1:])
wall = end - start
print(u + s, (b1 - b0) / tick, wall)
PY
}

mgmt() { curl -fsS -u "$MGMT_USER:$MGMT_PASS" -H 'content-type: application/json' "$@"; }
vhost=$(python3 -c 'import sys,urllib.parse as u; p=u.urlparse(sys.argv[1]).path[1:]; print(u.quote(u.unquote(p) or "/", safe=""))' "$AMQP_URL")

printf '%-8s %-6s %-5s %12s %12s %14s %12s\n' scenario tool round "recv msg/s" "messages" "client µs/msg" "broker cpu%"
for type in classic quorum; do
	for round in $(seq 1 "$ROUNDS"); do
		# mqctl
		run "$MQCTL" --url "$AMQP_URL" bench -x 1 -y 1 -s 1000 -c 1000 -q 1000 -A 100 -f persistent \
			--queue-type "$type" -z "$SECONDS_PER_RUN" -o json
		read -r cpu bcpu wall <"$work/cpu"
		read -r rate msgs < <(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["whole_run"]["received_per_sec"], r["totals"]["received"])' "$work/out")
		python3 -c 'import sys; t,ty,r,rate,msgs,cpu,b,w=sys.argv[1:]; print(f"{ty:<8} {t:<6} {r:<5} {float(rate):12.0f} {int(msgs):12d} {1e6*float(cpu)/max(1,int(msgs)):14.1f} {100*float(b)/float(w):12.0f}")' mqctl "$type" "$round" "$rate" "$msgs" "$cpu" "$bcpu" "$wall"

		# omq, same parameters; it acknowledges each message (it has no multi-ack)
		q="omq-compare-$type-$$"
		mgmt -X PUT "$MGMT_URL/api/queues/$vhost/$q" -d "{\"durable\":true,\"arguments\":{\"x-queue-type\":\"$type\"}}" >/dev/null
		run "$OMQ" amqp091-amqp091 --uri "$AMQP_URL" -x 1 -y 1 -s 1000 -c 1000 --consumer-credits 1000 \
			--message-durability --queues predeclared -t "/queues/$q" -T "/queues/$q" -z "${SECONDS_PER_RUN}s"
		mgmt -X DELETE "$MGMT_URL/api/queues/$vhost/$q" >/dev/null || true
		read -r cpu bcpu wall <"$work/cpu"
		line=$(grep -h 'TOTAL CONSUMED' "$work/out" "$work/err" | tail -1)
		msgs=$(sed -nE 's/.*messages=([0-9]+).*/\1/p' <<<"$line")
		rate=$(sed -nE 's/.*rate=([0-9.]+).*/\1/p' <<<"$line")
		python3 -c 'import sys; t,ty,r,rate,msgs,cpu,b,w=sys.argv[1:]; print(f"{ty:<8} {t:<6} {r:<5} {float(rate):12.0f} {int(msgs):12d} {1e6*float(cpu)/max(1,int(msgs)):14.1f} {100*float(b)/float(w):12.0f}")' omq "$type" "$round" "${rate:-0}" "${msgs:-0}" "$cpu" "$bcpu" "$wall"
	done
done
