#!/bin/sh
# Installs the Debian packages atolog builds and tests with, and nothing
# else. apt-get update runs only when something is actually missing, so a
# machine that already has everything never touches the network.
#
#   scripts/deps.sh          what the library, the CLI and the tests need
#   scripts/deps.sh bench    that, plus what the benchmarks need (gnuplot for
#                            the charts, the sqlite3 program for .dump)
#   scripts/deps.sh tsan     that, plus clang with its ThreadSanitizer
#                            runtime, libFuzzer and llvm-symbolizer
#                            (make tsan, make fuzz)
set -eu

PACKAGES="cmake make gcc pkg-config liblmdb-dev libmsgpack-dev libxxhash-dev libyajl-dev libjansson-dev libmicrohttpd-dev libcurl4-openssl-dev libsqlite3-dev"
BENCH_PACKAGES="gnuplot-nox sqlite3"
TSAN_PACKAGES="clang libclang-rt-14-dev llvm-14"

case "${1:-}" in
"") ;;
bench) PACKAGES="$PACKAGES $BENCH_PACKAGES" ;;
tsan) PACKAGES="$PACKAGES $TSAN_PACKAGES" ;;
*)
	echo "usage: $0 [bench|tsan]" >&2
	exit 2
	;;
esac

missing=""
for pkg in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $pkg"
	fi
done

[ -z "$missing" ] && exit 0

echo "deps: installing$missing" >&2
if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo
else
	SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
