#!/usr/bin/env bash
# The version matrix: every integration suite against each RabbitMQ
# release, and the core fault scenarios against those in FAULT_VERSIONS.
# Nodes come from scripts/broker-version.sh (chroots built once per machine);
# a node this script started is stopped again when its leg ends.
#
#   scripts/test-versions.sh [VERSION…]     default: system 4.0 4.3
#
# Environment: GO (go), TESTFLAGS (-count=1 -timeout 15m), FAULT_VERSIONS
# (4.3), FAULT_RUN (the -run pattern of the fault scenarios to repeat).
set -uo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
TESTFLAGS=${TESTFLAGS:--count=1 -timeout 15m}
FAULT_VERSIONS=${FAULT_VERSIONS:-4.3}
# A 3-node cluster whose quorum leader is SIGKILLed under load, the broker
# killed mid produce, dlq replay and purge killed at random points and rerun.
FAULT_RUN=${FAULT_RUN:-'^(TestCluster|TestCrashBrokerKilledMidProduceAndMidServeConsume|TestDLQReplayKilledAtRandomPointsLosesNothing|TestDLQPurgeKilledAtRandomPointsArchivesEverything)$/^(LeaderKilledUnderLoad|produce)$'}
versions=("$@")
[[ ${#versions[@]} -gt 0 ]] || versions=(system 4.0 4.3)

# Build the chroots a fresh machine lacks side by side (mostly download and
# unpack time), before any suite needs the cores.
builds=()
for v in "${versions[@]}"; do
	[[ $v == system ]] && continue
	scripts/broker-version.sh build "$v" &
	builds+=($!)
done
for pid in "${builds[@]}"; do wait "$pid" || true; done

summary=()
failed=0
for v in "${versions[@]}"; do
	start=$SECONDS
	started=0
	scripts/broker-version.sh running "$v" 2>/dev/null || started=1
	if ! scripts/broker-version.sh up "$v"; then
		summary+=("$v: no broker")
		failed=1
		continue
	fi
	# The variables point brokertest at the node and at the release's
	# chroot for private nodes; `system` clears them.
	eval "$(scripts/broker-version.sh env "$v" | sed 's/^/export /')"
	[[ -n $MQCTL_NODE_ROOT ]] || unset MQCTL_NODE_ROOT MQCTL_NODE_EPMD_PORT
	ver=$(curl -fsS -m 10 -u guest:guest "$MQCTL_TEST_MGMT_URL/api/overview" |
		sed -n 's/.*"rabbitmq_version":"\([^"]*\)".*/\1/p')
	echo "=== RabbitMQ $ver ($v): integration suites"
	result=ok
	# shellcheck disable=SC2086
	$GO test $TESTFLAGS $($GO list ./... | grep -v /internal/faults) || result=FAILED
	if [[ " $FAULT_VERSIONS " == *" $v "* ]]; then
		echo "=== RabbitMQ $ver ($v): fault scenarios"
		log=$(mktemp)
		rm -f "faults-report-$v.jsonl"
		# shellcheck disable=SC2086
		if MQCTL_FAULTS_REPORT=$PWD/faults-report-$v.jsonl $GO test $TESTFLAGS -v -run "$FAULT_RUN" ./internal/faults >"$log" 2>&1; then
			grep -E '^(--- |ok|PASS)|FIGURES' "$log"
		else
			result=FAILED
			tail -n 200 "$log"
		fi
		rm -f "$log"
	fi
	if ((started)); then
		scripts/broker-version.sh down "$v" || true
	fi
	summary+=("RabbitMQ $ver ($v): $result in $((SECONDS - start)) s")
	[[ $result == ok ]] || failed=1
done
echo "=== version matrix"
printf '%s\n' "${summary[@]}"
exit $failed
