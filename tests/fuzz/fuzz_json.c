/*
 * fuzz_json.c - the JSON interaction parser (atolog_interaction_from_json),
 * and what the store does with what it accepts.
 *
 * Properties: any input is parsed or refused with a message, never a
 * crash or a leak; an accepted interaction that passes validation goes
 * through the record codec (encode, decode, flatten) with every text field
 * byte for byte the same; and rendering is a fixed point: the JSON of the
 * stored interaction, parsed and stored again, renders the same.
 */
#include <string.h>

#include "codec.h"
#include "fuzz.h"

#define FUZZ_SEQ 42
#define FUZZ_TIME_US INT64_C(1767225600000000) /* 2026-01-01, when none given */
static const char fuzz_id[] = "0190c1a8-0000-7000-8000-000000000001";

static bool same_text(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") == 0; /* absent reads as "" */
}

static bool same_list(const char *const *a, size_t na, const char *const *b,
		      size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++) {
		if (strcmp(a[i], b[i]) != 0)
			return false;
	}
	return true;
}

/* in through record_encode and back, as a write then a read would. */
static atolog_interaction *store_and_read(const atolog_interaction *in)
{
	struct record_input rin;
	struct record_view view;
	msgpack_sbuffer sb;
	atolog_interaction *out = NULL;
	int rc = record_input_init(&rin, in);

	if (rc != ATOLOG_OK) {
		FUZZ_CHECK(rc == ENOMEM); /* validation said yes */
		return NULL;
	}
	FUZZ_CHECK(uuid_parse(in->id[0] ? in->id : fuzz_id, rin.fields.id) == 0);
	rin.fields.created_at = in->has_created_at ? in->created_at : FUZZ_TIME_US;
	msgpack_sbuffer_init(&sb);
	rc = record_encode(&rin.fields, &sb);
	FUZZ_CHECK(rc == ATOLOG_OK || rc == ENOMEM);
	if (rc == ATOLOG_OK) {
		rc = record_view_decode(&view, sb.data, sb.size);
		FUZZ_CHECK(rc == ATOLOG_OK || rc == ENOMEM);
		if (rc == ATOLOG_OK) {
			rc = record_fields_flatten(&view.fields, FUZZ_SEQ, &out);
			FUZZ_CHECK(rc == ATOLOG_OK || rc == ENOMEM);
			record_view_free(&view);
		}
	}
	msgpack_sbuffer_destroy(&sb);
	record_input_free(&rin);
	return out;
}

static void check_same_fields(const atolog_interaction *in,
			      const atolog_interaction *out)
{
	FUZZ_CHECK(strcmp(out->prompt, in->prompt) == 0);
	FUZZ_CHECK(same_text(out->response, in->response));
	FUZZ_CHECK(same_text(out->response_summary, in->response_summary));
	FUZZ_CHECK(same_text(out->project, in->project));
	FUZZ_CHECK(same_text(out->client, in->client));
	FUZZ_CHECK(same_text(out->session_id, in->session_id));
	FUZZ_CHECK(same_list(out->memories_used, out->n_memories_used,
			     in->memories_used, in->n_memories_used));
	FUZZ_CHECK(same_list(out->chunks_used, out->n_chunks_used,
			     in->chunks_used, in->n_chunks_used));
	FUZZ_CHECK(out->seq == FUZZ_SEQ);
	if (in->has_created_at)
		FUZZ_CHECK(out->created_at == in->created_at);
	if (in->id[0])
		FUZZ_CHECK(strcmp(out->id, in->id) == 0);
}

/* The stored form of json's interaction rendered as JSON, or NULL when it
 * is refused (or memory ran out). */
static char *stored_json(const char *json, size_t len, bool check)
{
	atolog_interaction *in = NULL, *out;
	char *text = NULL;
	int rc = atolog_interaction_from_json(json, len, &in);

	if (rc != ATOLOG_OK) {
		FUZZ_CHECK(rc == ATOLOG_INVALID || rc == ATOLOG_TOOBIG || rc == ENOMEM);
		FUZZ_CHECK(in == NULL);
		FUZZ_CHECK(atolog_errmsg(NULL)[0] != '\0');
		return NULL;
	}
	rc = atolog_interaction_validate(in);
	FUZZ_CHECK(rc == ATOLOG_OK || rc == ATOLOG_INVALID ||
		   rc == ATOLOG_TOOBIG || rc == ENOMEM);
	out = rc == ATOLOG_OK ? store_and_read(in) : NULL;
	if (out) {
		if (check)
			check_same_fields(in, out);
		rc = atolog_interaction_to_json(out, &text);
		FUZZ_CHECK(rc == ATOLOG_OK || rc == ENOMEM);
	}
	atolog_interaction_free(out);
	atolog_interaction_free(in);
	return text;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *first = stored_json((const char *)data, size, true), *second;

	if (!first)
		return 0;
	second = stored_json(first, strlen(first), true);
	FUZZ_CHECK(second != NULL);
	FUZZ_CHECK(strcmp(first, second) == 0);
	free(second);
	free(first);
	return 0;
}
