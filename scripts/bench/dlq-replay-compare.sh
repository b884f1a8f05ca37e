#!/usr/bin/env bash
# Client CPU of `mqctl dlq replay --all`, two builds side by side: OLD
# (a binary, or a git revision built into a temporary worktree) and this
# tree's bin/mqctl replay identical DLQs of N dead letters in the same run,
# alternating which goes first; ids are counted afterwards (zero lost, zero
# duplicated or the script fails). Prints the medians of mqctl's CPU time
# (user+system) per message, wall time and peak RSS.
#
#   scripts/bench/dlq-replay-compare.sh OLD [-n 50000] [-size 1024] [-runs 3]
#       [-origin-type classic|quorum] [-mqctl-args "--window 1024"]
#
#   scripts/bench/dlq-replay-compare.sh 95a28f5 -n 50000 -runs 3
#
# The broker: a private node on PORT (default 5730), or SHARED=1 (see
# bench_target in scripts/bench/lib/node.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/bench/lib/node.sh
old=${1:?usage: $0 OLD-BINARY-OR-REVISION [dlqreplay flags]}
shift
make -s build
WORK=$(mktemp -d)
cleanup() {
	node_stop
	if [[ -d $WORK/old-tree ]]; then git worktree remove --force "$WORK/old-tree"; fi
	rm -rf "$WORK"
}
trap cleanup EXIT
if [[ ! -x $old ]]; then
	git worktree add --detach "$WORK/old-tree" "$old" >/dev/null
	(cd "$WORK/old-tree" && go build -o "$WORK/mqctl-old" ./cmd/mqctl)
	old=$WORK/mqctl-old
fi
bench_target "$WORK" "${PORT:-5730}"
go run ./scripts/bench/dlqreplay -compare "$old" -mqctl bin/mqctl -url "$url" -mgmt-url "$mgmt" -broker-pid "$pid" "$@"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
