#!/bin/sh
# Installs the build into a scratch prefix with cmake --install and builds a
# small program against it with nothing but pkg-config: the library, the one
# header and the pkg-config file must be enough. The man page must be there.
#   install_check.sh BUILD_DIR CC [EXTRA_CFLAGS...]
set -eu
build=$1
cc=$2
shift 2
prefix=$(mktemp -d "${TMPDIR:-/tmp}/atolog-install-XXXXXX")
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
test -x "$prefix/bin/atolog"
test -f "$prefix/include/atolog.h"
test -f "$prefix/share/man/man1/atolog.1"
pc=$(find "$prefix" -name atolog.pc)
test -n "$pc"
cat >"$prefix/probe.c" <<'C'
#include <atolog.h>
#include <stdio.h>

int main(int argc, char **argv)
{
	atolog_store *s;
	atolog_interaction in = { .prompt = "installed" }, *out;
	int rc = atolog_store_open(argv[argc - 1], NULL, &s);

	if (rc == ATOLOG_OK)
		rc = atolog_interaction_record(s, &in, &out);
	if (rc != ATOLOG_OK) {
		fprintf(stderr, "probe: %s\n", atolog_errmsg(NULL));
		return 1;
	}
	puts(out->id);
	atolog_interaction_free(out);
	return atolog_store_close(s) == ATOLOG_OK ? 0 : 1;
}
C
PKG_CONFIG_PATH=$(dirname "$pc")
export PKG_CONFIG_PATH
# shellcheck disable=SC2046
"$cc" "$@" -o "$prefix/probe" "$prefix/probe.c" $(pkg-config --cflags --libs atolog)
"$prefix/probe" "$prefix/store" >/dev/null
# The installed command reads what the probe wrote.
"$prefix/bin/atolog" --data "$prefix/store" stats | grep -q '"records":1'
# The man page is well-formed enough for man(1) to render, when present.
if command -v man >/dev/null 2>&1; then
	man -l "$prefix/share/man/man1/atolog.1" >/dev/null 2>&1
fi
echo "install_check: ok"
