/*
 * nomem_env.c - arms the failing allocator (nomem.h) in atolog_nomem, the
 * test copy of the CLI: with ATOLOG_NOMEM_FAIL=n in the environment,
 * allocation n of the main thread fails (counted from the start of the
 * process), and at exit it says on stderr whether it was reached:
 * "atolog_nomem: fired at n of COUNT" or "atolog_nomem: not reached (COUNT)".
 */
#include <stdio.h>
#include <stdlib.h>

#include "nomem.h"

static void nomem_env_arm(void) __attribute__((constructor));
static void nomem_env_report(void) __attribute__((destructor));

static void nomem_env_arm(void)
{
	const char *n = getenv("ATOLOG_NOMEM_FAIL");

	if (n)
		nomem_arm(strtol(n, NULL, 10), NOMEM_SELF);
}

static void nomem_env_report(void)
{
	const char *n = getenv("ATOLOG_NOMEM_FAIL");
	bool fired;
	long count;

	if (!n)
		return;
	count = nomem_disarm(&fired);
	if (fired)
		fprintf(stderr, "atolog_nomem: fired at %s of %ld\n", n, count);
	else
		fprintf(stderr, "atolog_nomem: not reached (%ld)\n", count);
}
