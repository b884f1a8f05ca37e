#!/usr/bin/env bash
# Make sure a python3 that imports pika is here, for the example apps in
# examples/apps/python and the test that runs them against a real broker
# (internal/topology/apps_test.go). Quiet when pika is already there.
#
#   scripts/python-pika.sh          exit 0 when a python3 imports pika; as root,
#                                   install Debian's python3-pika when none does
#   scripts/python-pika.sh --which  the same, then print that python3's path
#
# Debian's package installs for /usr/bin/python3; a python3 found earlier on
# PATH (pyenv, a virtualenv) does not see it, so both are tried. PYTHON names
# the one interpreter to use instead.
set -euo pipefail

which_one=0
case ${1:-} in
--which) which_one=1 ;;
"") ;;
*) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac

candidates() {
	if [[ -n ${PYTHON:-} ]]; then
		echo "$PYTHON"
		return
	fi
	command -v python3 2>/dev/null || true
	[[ -x /usr/bin/python3 ]] && echo /usr/bin/python3
}

# found prints the first candidate that imports pika.
found() {
	local py
	while read -r py; do
		[[ -n $py ]] || continue
		if "$py" -c 'import pika' >/dev/null 2>&1; then
			echo "$py"
			return 0
		fi
	done < <(candidates)
	return 1
}

done_with() {
	if ((which_one)); then echo "$1"; fi
	exit 0
}

if py=$(found); then done_with "$py"; fi

if [[ $(id -u) != 0 ]]; then
	cat >&2 <<'EOF'
python-pika: no python3 here imports pika. Install it with
  sudo apt-get install -y python3-pika      (Debian/Ubuntu; for /usr/bin/python3)
or
  python3 -m pip install pika               (for the python3 on your PATH)
and set PYTHON to the interpreter that has it if it is not python3 on PATH.
EOF
	exit 1
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
export DEBIAN_FRONTEND=noninteractive
# Another apt run (a parallel test, the broker install) may hold the lock.
apt_install() { apt-get install -y -qq -o DPkg::Lock::Timeout=300 python3-pika >>"$log" 2>&1; }
if ! apt_install; then
	# A fresh machine has no package lists yet, or stale ones.
	apt-get update -qq -o DPkg::Lock::Timeout=300 >>"$log" 2>&1 || true
	if ! apt_install; then
		cat "$log" >&2
		echo "python-pika: apt-get install python3-pika failed (output above)" >&2
		exit 1
	fi
fi
if py=$(found); then done_with "$py"; fi
echo "python-pika: python3-pika is installed but no candidate interpreter ($(candidates | paste -sd' ')) imports pika" >&2
exit 1
