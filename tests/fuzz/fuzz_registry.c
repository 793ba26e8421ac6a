/*
 * fuzz_registry.c - decoding a registry frame's payload (registry_decode).
 *
 * Properties: any bytes are a registration, ATOLOG_CORRUPT or
 * ATOLOG_VERSION (an op this version does not know), never a crash or a
 * leak; a decoded one, encoded again by registry_encode, decodes to the
 * same name and aliases in the same order.
 */
#include <string.h>

#include "codec.h"
#include "fuzz.h"

static bool same_text(struct text a, struct text b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct registry_view view, again;
	msgpack_sbuffer sb;
	int rc = registry_decode(&view, data, size);

	FUZZ_CHECK(rc == ATOLOG_OK || rc == ATOLOG_CORRUPT || rc == ATOLOG_VERSION ||
		   rc == ENOMEM);
	if (rc != ATOLOG_OK) {
		registry_view_free(&view);
		return 0;
	}
	msgpack_sbuffer_init(&sb);
	rc = registry_encode(view.name, view.aliases, view.n_aliases, &sb);
	FUZZ_CHECK(rc == ATOLOG_OK || rc == ENOMEM);
	if (rc == ATOLOG_OK) {
		rc = registry_decode(&again, sb.data, sb.size);
		FUZZ_CHECK(rc == ATOLOG_OK || rc == ENOMEM);
		if (rc == ATOLOG_OK) {
			FUZZ_CHECK(same_text(again.name, view.name));
			FUZZ_CHECK(again.n_aliases == view.n_aliases);
			for (size_t i = 0; i < view.n_aliases; i++)
				FUZZ_CHECK(same_text(again.aliases[i], view.aliases[i]));
		}
		registry_view_free(&again);
	}
	msgpack_sbuffer_destroy(&sb);
	registry_view_free(&view);
	return 0;
}
