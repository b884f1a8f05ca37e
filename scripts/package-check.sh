#!/usr/bin/env bash
# Checks what `goreleaser release --snapshot` left in dist/: the .deb
# installs on this machine (dpkg -i, when root; else it is unpacked) and
# `mqctl --version` runs from it, its man pages and completions sit where
# man and the shells look, the .rpm and the Homebrew cask carry the same.
# The .deb is removed again afterwards if this script installed it.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "package-check: $*" >&2; exit 1; }

arch=$(dpkg --print-architecture)
deb=$(ls dist/mqctl_*_"$arch".deb 2>/dev/null | head -n1)
[[ -n $deb ]] || die "no dist/mqctl_*_$arch.deb: run goreleaser release --snapshot --clean first"

want=(
	/usr/bin/mqctl
	/usr/share/man/man1/mqctl.1.gz
	/usr/share/man/man1/mqctl-dlq-replay.1.gz
	/usr/share/bash-completion/completions/mqctl
	/usr/share/zsh/vendor-completions/_mqctl
	/usr/share/fish/vendor_completions.d/mqctl.fish
)
listing=$(dpkg-deb -c "$deb")
for f in "${want[@]}"; do
	grep -q " \.$f\$" <<<"$listing" || die "$deb lacks $f"
done

if [[ $EUID -eq 0 ]] && ! dpkg -s mqctl >/dev/null 2>&1; then
	dpkg -i "$deb" >/dev/null
	trap 'dpkg -r mqctl >/dev/null' EXIT
	bin=/usr/bin/mqctl
	out=$(mqctl --version)
	man -w mqctl-topology-apply >/dev/null || die "man does not find mqctl-topology-apply(1) after dpkg -i"
	# bash-completion loads the installed script and completes a subcommand.
	bash -c 'source /usr/share/bash-completion/completions/mqctl && declare -F __start_mqctl >/dev/null' ||
		die "the installed bash completion does not define __start_mqctl"
	echo "package-check: dpkg -i $deb: $out"
else
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	dpkg-deb -x "$deb" "$tmp"
	bin=$tmp/usr/bin/mqctl
	out=$("$bin" --version)
	echo "package-check: unpacked $deb (not root, or mqctl already installed): $out"
fi
[[ $out == "mqctl "* ]] || die "mqctl --version printed: $out"

rpm=$(ls dist/mqctl-*.x86_64.rpm dist/mqctl-*."$(uname -m)".rpm 2>/dev/null | head -n1)
[[ -n $rpm ]] || die "no .rpm in dist/"
cask=dist/homebrew/Casks/mqctl.rb
[[ -f $cask ]] || die "no Homebrew cask at $cask"
for line in 'binary "mqctl"' 'manpage "man/mqctl.1"' 'manpage "man/mqctl-dlq-replay.1"' 'bash_completion "completions/mqctl.bash"'; do
	grep -qF "$line" "$cask" || die "$cask lacks $line"
done
echo "package-check: $(basename "$deb"), $(basename "$rpm"), $cask: ok"
