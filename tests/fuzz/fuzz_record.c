/*
 * fuzz_record.c - decoding a record's msgpack payload (record_view_decode),
 * as a read does once the frame's checksum has passed: bit rot the
 * checksum missed, a writer's bug, a hostile segment.
 *
 * Properties: any bytes are a record or ATOLOG_CORRUPT (never a crash, an
 * out-of-bounds read or a leak); a decoded record flattens for a reader
 * or is refused as corrupt; one that flattens, encoded again by
 * record_encode and decoded, flattens to the same interaction.
 */
#include <string.h>

#include "codec.h"
#include "fuzz.h"

/* The interaction of payload rendered as JSON; NULL when it is refused. */
static char *render(const void *payload, size_t len, msgpack_sbuffer *again)
{
	struct record_view view;
	atolog_interaction *out = NULL;
	char *json = NULL;
	int rc = record_view_decode(&view, payload, len);

	FUZZ_CHECK(rc == ATOLOG_OK || rc == ATOLOG_CORRUPT || rc == ENOMEM);
	if (rc == ATOLOG_OK) {
		rc = record_fields_flatten(&view.fields, 1, &out);
		FUZZ_CHECK(rc == ATOLOG_OK || rc == ATOLOG_CORRUPT || rc == ENOMEM);
	}
	if (rc == ATOLOG_OK) {
		rc = atolog_interaction_to_json(out, &json);
		FUZZ_CHECK(rc == ATOLOG_OK || rc == ENOMEM);
		if (rc == ATOLOG_OK && again) {
			rc = record_encode(&view.fields, again);
			FUZZ_CHECK(rc == ATOLOG_OK || rc == ENOMEM);
		}
	}
	atolog_interaction_free(out);
	record_view_free(&view);
	return json;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	msgpack_sbuffer again;
	char *first, *second;

	msgpack_sbuffer_init(&again);
	first = render(data, size, &again);
	if (first && again.size) {
		second = render(again.data, again.size, NULL);
		FUZZ_CHECK(second != NULL);
		FUZZ_CHECK(strcmp(first, second) == 0);
		free(second);
	}
	free(first);
	msgpack_sbuffer_destroy(&again);
	return 0;
}
