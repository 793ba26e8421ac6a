#!/bin/sh
# Runs every test program under valgrind (memcheck) on a build without
# sanitizers; the CLI that test_cli drives runs under valgrind too, through
# a wrapper. Any error or definite leak fails the run.
set -eu
build=${1:-build-valgrind}
VALGRIND="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect"

wrapper=$(mktemp)
trap 'rm -f "$wrapper"' EXIT
printf '#!/bin/sh\nexec %s %s/atolog "$@"\n' "$VALGRIND" "$(cd "$build" && pwd)" > "$wrapper"
chmod +x "$wrapper"

status=0
for t in $(find "$build/tests" -maxdepth 1 -type f -name 'test_*' -perm -u+x | sort); do
	echo "valgrind: $t" >&2
	if ! ATOLOG_CLI="$wrapper" $VALGRIND "$t"; then
		echo "valgrind: $t FAILED" >&2
		status=1
	fi
done
exit $status
