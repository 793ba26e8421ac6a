/*
 * fuzz_batch.c - the two batch bodies of POST /interactions/batch: a JSON
 * array (atolog_interactions_from_json_array) and NDJSON
 * (batch_split_lines). The first input byte picks which; the rest is the
 * body.
 *
 * Properties: elements are reported in order from 0, each exactly once,
 * with an interaction (rc ATOLOG_OK) or a refusal and its reason, never
 * both; a refused document says why; for NDJSON, each non-blank line is
 * one element, judged as atolog_interaction_from_json judges it alone.
 */
#include <string.h>

#include "atolog.h"
#include "fuzz.h"
#include "server.h"

struct seen {
	size_t n;
	bool ndjson;
	const char *body, *end;
	const char *line; /* NDJSON: where the next line is looked for */
};

/* The next non-blank NDJSON line from s->line, as [*at, *at + *len). */
static bool next_line(struct seen *s, const char **at, size_t *len)
{
	while (s->line < s->end) {
		const char *nl = memchr(s->line, '\n', (size_t)(s->end - s->line));
		const char *stop = nl ? nl : s->end, *q = stop, *p = s->line;

		while (q > p && (q[-1] == '\r' || q[-1] == ' ' || q[-1] == '\t'))
			q--;
		s->line = stop + 1;
		if (q > p) {
			*at = p;
			*len = (size_t)(q - p);
			return true;
		}
	}
	return false;
}

static int on_item(size_t index, int rc, const char *why,
		   atolog_interaction *item, void *ctx)
{
	struct seen *s = ctx;

	FUZZ_CHECK(index == s->n);
	s->n++;
	if (rc == ATOLOG_OK) {
		FUZZ_CHECK(item != NULL);
	} else {
		FUZZ_CHECK(rc == ATOLOG_INVALID || rc == ATOLOG_TOOBIG || rc == ENOMEM);
		FUZZ_CHECK(item == NULL);
		FUZZ_CHECK(why != NULL && why[0] != '\0');
	}
	if (s->ndjson) {
		const char *line;
		size_t len;
		atolog_interaction *alone = NULL;

		FUZZ_CHECK(next_line(s, &line, &len));
		int rc_alone = atolog_interaction_from_json(line, len, &alone);

		FUZZ_CHECK(rc_alone == rc || rc_alone == ENOMEM || rc == ENOMEM);
		atolog_interaction_free(alone);
	}
	atolog_interaction_free(item);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct seen s = { 0 };
	const char *body;
	int rc;

	if (size == 0)
		return 0;
	s.ndjson = data[0] & 1;
	body = (const char *)data + 1;
	s.body = s.line = body;
	s.end = body + size - 1;
	if (s.ndjson) {
		const char *line;
		size_t len;

		rc = batch_split_lines(body, size - 1, on_item, &s);
		FUZZ_CHECK(rc == ATOLOG_OK);
		FUZZ_CHECK(!next_line(&s, &line, &len)); /* every line was seen */
	} else {
		rc = atolog_interactions_from_json_array(body, size - 1, on_item, &s);
		FUZZ_CHECK(rc == ATOLOG_OK || rc == ATOLOG_INVALID ||
			   rc == ATOLOG_TOOBIG || rc == ENOMEM);
		if (rc != ATOLOG_OK)
			FUZZ_CHECK(atolog_errmsg(NULL)[0] != '\0');
	}
	return 0;
}
