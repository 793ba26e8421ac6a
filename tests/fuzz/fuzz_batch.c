/*
 * fuzz_batch.c - the two batch bodies of POST /interactions/batch: a JSON
 * array (atolog_interactions_from_json_array) and NDJSON
 * (batch_split_lines). The first input byte picks which; the rest is the
 * body.
 *
 * Properties: elements are reported in order from 0, each exactly once,
 * with an interaction (rc ATOLOG_OK) or a refusal and its
 * reason, never both; running out of memory stops the whole batch and is
 * no item's refusal; a refused document says why; an NDJSON body yields
 * one element per line holding anything but spaces, tabs and CRs, counted
 * independently of the splitter.
 */
#include "atolog.h"
#include "fuzz.h"
#include "server.h"

struct seen {
	size_t n;
};

/* Lines of the body holding a byte other than space, tab or CR: the items
 * an NDJSON body must yield, counted byte by byte without splitting. */
static size_t lines_with_content(const char *body, size_t len)
{
	size_t lines = 0;
	bool content = false;

	for (size_t i = 0; i < len; i++) {
		if (body[i] == '\n') {
			lines += content;
			content = false;
		} else if (body[i] != ' ' && body[i] != '\t' && body[i] != '\r') {
			content = true;
		}
	}
	return lines + content;
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
		/* Running out of memory stops a batch; it is no item's fault. */
		FUZZ_CHECK(rc == ATOLOG_INVALID || rc == ATOLOG_TOOBIG);
		FUZZ_CHECK(item == NULL);
		FUZZ_CHECK(why != NULL && why[0] != '\0');
	}
	atolog_interaction_free(item);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct seen s = { 0 };
	const char *body = (const char *)data + 1;
	size_t len;
	int rc;

	if (size == 0)
		return 0;
	len = size - 1;
	if (data[0] & 1) {
		rc = batch_split_lines(len ? body : NULL, len, on_item, &s);
		FUZZ_CHECK(rc == ATOLOG_OK || rc == ENOMEM);
		if (rc == ATOLOG_OK)
			FUZZ_CHECK(s.n == lines_with_content(body, len));
	} else {
		rc = atolog_interactions_from_json_array(body, len, on_item, &s);
		FUZZ_CHECK(rc == ATOLOG_OK || rc == ATOLOG_INVALID ||
			   rc == ATOLOG_TOOBIG || rc == ENOMEM);
		if (rc != ATOLOG_OK)
			FUZZ_CHECK(atolog_errmsg(NULL)[0] != '\0');
	}
	return 0;
}
