#!/usr/bin/env bash
# Scaling curves: each main job of mqctl at three sizes, each size on a
# fresh private RabbitMQ node (never the shared one on 5672), measured as
# an operator runs it: wall time, mqctl's CPU (user+sys) and peak RSS, and
# the broker's CPU (its OS process, /proc/PID/stat) over the same interval.
#
#   job       sizes (small, medium, large)   commands measured
#   backlog   500 / 5,000 / 50,000 queues    backlog -o json
#   topology  100 / 1,000 / 10,000 work      topology plan (empty vhost), apply --yes,
#             queues with retry + DLQ        plan --exit-code (applied: no change)
#   dlq       10,000 / 100,000 / 1,000,000   dlq show -o json (its 20), show -o json --limit 0,
#             dead letters of 1 KiB          export --out F, replay --all --yes
#
#   bench/scale.sh                        # every size: 30-60 min, ~6 GB of disk
#   SIZES=small bench/scale.sh            # the smallest of each, one run: 1-3 min
#   SIZES=small,medium JOBS=dlq bench/scale.sh
#
# Writes OUT (default bench/results): scale.csv (raw rows, appended as
# each command ends, so a cut run keeps what it measured), scale.md (the
# table), scale.json and one PNG per job and figure (bench/scale, gonum
# plot). Environment: SIZES (small, medium, large, comma-separated, or
# all), JOBS (backlog,topology,dlq), RUNS (runs of each read-only command,
# default 3, 1 with SIZES=small; LARGE_RUNS for the large size, default
# 1; apply and replay run once), SHOW_ALL_MAX (largest DLQ that
# `dlq show --limit 0` runs on, default 100000: `dlq export` measures a
# whole large queue), APPLY_ARGS (flags added to topology apply, e.g.
# "--import-timeout 10m": on a loaded machine the default bound cuts
# imports the broker is still carrying out), PORT (AMQP port of the private node, 5700-5719, default
# 5701; management PORT+10000), APPEND=1 keeps an existing scale.csv,
# MQCTL (the mqctl binary measured, default bin/mqctl built from this
# tree: point it at another build to compare before and after a change).
# The machine is shared: run it under `nice -n 10`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench/lib/node.sh

SIZES=${SIZES:-all}
JOBS=${JOBS:-backlog,topology,dlq}
# One run each when only the small sizes run: the quick check.
[[ $SIZES == small ]] && RUNS=${RUNS:-1}
RUNS=${RUNS:-3}
LARGE_RUNS=${LARGE_RUNS:-1}
PORT=${PORT:-5701}
OUT=${OUT:-bench/results}
MQCTL=${MQCTL:-bin/mqctl}
[[ $SIZES == all ]] && SIZES=small,medium,large

declare -A size_of=(
	[backlog:small]=500 [backlog:medium]=5000 [backlog:large]=50000
	[topology:small]=100 [topology:medium]=1000 [topology:large]=10000
	[dlq:small]=10000 [dlq:medium]=100000 [dlq:large]=1000000
)
IFS=, read -ra tiers <<<"$SIZES"
IFS=, read -ra jobs <<<"$JOBS"
for t in "${tiers[@]}"; do
	[[ $t =~ ^(small|medium|large)$ ]] || { echo "SIZES: unknown size $t (small, medium, large or all)" >&2; exit 2; }
done
for j in "${jobs[@]}"; do
	[[ $j =~ ^(backlog|topology|dlq)$ ]] || { echo "JOBS: unknown job $j (backlog, topology, dlq)" >&2; exit 2; }
done
((PORT >= 5700 && PORT <= 5719)) || { echo "PORT must be within 5700-5719 (reserved for benchmarks)" >&2; exit 2; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mqctl-scale.XXXXXX")

# What the sizes need, said before anything starts: the million dead
# letters sit on disk twice at most (the DLQ, then the origin queue after
# replay) plus the export file (~1.6 GB) and the broker's indexes; 50,000
# queues want far more open files than the usual 1,024 (16,384 asked; 20,000 here) and a few GB of the
# broker's memory.
need_gb=1 need_files=4096 need_mem_gb=2
for t in "${tiers[@]}"; do
	if [[ $t == large ]]; then
		[[ ,$JOBS, == *,dlq,* ]] && need_gb=8
		need_files=16384 need_mem_gb=8
	elif [[ $t == medium ]] && ((need_gb < 2)); then
		need_gb=2
	fi
done
avail_gb=$(df -Pk "$WORK" | awk 'NR==2 {print int($4 / 1048576)}')
# Root may raise the hard limit for this script and the nodes it starts.
(($(ulimit -Hn) >= need_files)) 2>/dev/null || ulimit -Hn "$need_files" 2>/dev/null || true
hard_files=$(ulimit -Hn)
[[ $hard_files == unlimited ]] && hard_files=1048576
mem_gb=$(awk '/MemAvailable/ {print int($2 / 1048576)}' /proc/meminfo)
echo "needs for SIZES=$SIZES JOBS=$JOBS: ${need_gb} GB free disk under $WORK (have $avail_gb), open-files hard limit >= $need_files for the node (have $hard_files), ${need_mem_gb} GB free memory (have $mem_gb)" >&2
if ((avail_gb < need_gb)); then
	echo "not enough disk: set TMPDIR to a file system with ${need_gb} GB free" >&2
	rm -rf "$WORK"
	exit 1
fi
if ((hard_files < need_files)); then
	echo "open-files hard limit $hard_files < $need_files: raise it (ulimit -Hn, as root) before the large sizes" >&2
	rm -rf "$WORK"
	exit 1
fi
((mem_gb >= need_mem_gb)) || echo "warning: only $mem_gb GB of memory available; the broker may raise its memory alarm" >&2

# node_down stops the run's node, waits for its OS process to end and
# removes its data, so the next size starts from nothing.
node_down() {
	[[ -n $NODE ]] || return 0
	node_stop
	for _ in $(seq 1 120); do
		kill -0 "$NODE_PID" 2>/dev/null || break
		sleep 1
	done
	NODE=""
	rm -rf "$WORK/node" "$WORK/.erlang.cookie"
}
cleanup() {
	node_down || true
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

make -s build
go build -o "$WORK/scale" ./bench/scale
mkdir -p "$OUT"
CSV=$OUT/scale.csv
# runs.md says how each invocation that wrote into CSV ran; scale.md
# begins with it.
meta=$OUT/runs.md
[[ ${APPEND:-0} == 1 ]] || rm -f "$CSV" "$meta"

failed=()
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for t in "${tiers[@]}"; do
	runs=$RUNS
	[[ $t == large ]] && runs=$LARGE_RUNS
	for j in "${jobs[@]}"; do
		n=${size_of[$j:$t]}
		echo "== $j at $n ($t), $(date -u +%H:%M:%S), load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
		node_start "$WORK" "$PORT"
		versions=$(curl -fsS -u guest:guest "$NODE_MGMT/api/overview" | sed -E 's/.*"rabbitmq_version":"([^"]*)".*"erlang_version":"([^"]*)".*/RabbitMQ \1, Erlang \2/') || true
		if ! "$WORK/scale" run -job "$j" -size "$n" -runs "$runs" -mqctl "$MQCTL" -url "$NODE_AMQP/" -mgmt-url "$NODE_MGMT" \
			-broker-pid "$NODE_PID" -work "$WORK" -csv "$CSV" -show-all-max "${SHOW_ALL_MAX:-100000}" -apply-args "${APPLY_ARGS:-}"; then
			failed+=("$j:$n")
		fi
		node_down
		rm -f "$WORK"/export.jsonl* "$WORK"/*.journal "$WORK"/backlog.json
	done
done

{
	echo "- Measured $started to $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(nproc) CPUs ($(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)), shared with other work: load average $load_before before, $(cut -d' ' -f1-3 /proc/loadavg) after."
	echo "  ${versions:-RabbitMQ version unknown}; $("$MQCTL" --version 2>/dev/null | head -1); $(go version | cut -d' ' -f3)."
	echo "  Each size on a fresh private node, default settings."
	echo "  Command: \`${MQCTL_TIMEOUT:+MQCTL_TIMEOUT=$MQCTL_TIMEOUT }SIZES=$SIZES JOBS=$JOBS RUNS=$RUNS LARGE_RUNS=$LARGE_RUNS SHOW_ALL_MAX=${SHOW_ALL_MAX:-100000}${APPLY_ARGS:+ APPLY_ARGS=\"$APPLY_ARGS\"} nice -n 10 bench/scale.sh\`"
	if ((${#failed[@]} > 0)); then
		echo "  Runs that stopped early (see the status column): ${failed[*]}."
	fi
	echo
} >>"$meta"
"$WORK/scale" plot -csv "$CSV" -dir "$OUT" -meta "$meta"
echo "results: $OUT/scale.md" >&2
((${#failed[@]} == 0))
