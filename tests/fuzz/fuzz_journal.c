/*
 * fuzz_journal.c - reading the compaction journal (journal_parse): the
 * file a killed compaction leaves, which decides at the next open whether
 * its work is finished or undone.
 *
 * The first input byte is a mode: 0 takes the rest as the journal's text;
 * 1 makes its checksum line for it (the rest, then "\nxxh3 <its XXH3>\n"),
 * so that the fields behind the checksum are explored too; 2 reads the
 * rest as the values of a journal (nonce, first output, outputs, inputs),
 * formats it with journal_format and parses that.
 *
 * Properties: any bytes are a journal or ATOLOG_CORRUPT, never a crash or
 * a leak; what parses is exactly what journal_format writes for it (one
 * spelling of each journal, so no other text is ever taken as one).
 */
#include <inttypes.h>
#include <string.h>
#include <xxhash.h>

#include "engine.h"
#include "fuzz.h"

#define FUZZ_JOURNAL_MODES 3
#define FUZZ_JOURNAL_OUTPUTS_MAX 16 /* outputs drawn from one byte's range */

static uint64_t take_u64(const uint8_t **p, const uint8_t *end)
{
	uint64_t v = 0;

	for (int i = 0; i < 8 && *p < end; i++)
		v = v << 8 | *(*p)++;
	return v;
}

/* Mode 2: any journal within the bounds, written then read back. */
static void check_written(const uint8_t *data, size_t size)
{
	const uint8_t *p = data, *end = data + size;
	struct compact_journal j = { 0 }, back;
	size_t len;
	char *text;
	int rc;

	j.nonce = take_u64(&p, end);
	j.output = take_u64(&p, end);
	j.n_outputs = 1 + (p < end ? *p++ : 0) % FUZZ_JOURNAL_OUTPUTS_MAX;
	j.inputs = malloc(((size_t)(end - p) / 8 + 1) * sizeof(*j.inputs));
	FUZZ_CHECK(j.inputs != NULL);
	while (p < end)
		j.inputs[j.n_inputs++] = take_u64(&p, end);
	text = journal_format(&j, &len);
	FUZZ_CHECK(text != NULL && strlen(text) == len);
	rc = journal_parse(text, len, &back);
	FUZZ_CHECK(rc == ATOLOG_OK || rc == ENOMEM);
	if (rc == ATOLOG_OK) {
		FUZZ_CHECK(back.nonce == j.nonce && back.output == j.output &&
			   back.n_outputs == j.n_outputs && back.n_inputs == j.n_inputs);
		FUZZ_CHECK(j.n_inputs == 0 ||
			   memcmp(back.inputs, j.inputs, j.n_inputs * sizeof(*j.inputs)) == 0);
		free(back.inputs);
	}
	free(text);
	free(j.inputs);
}

/* The fields of data, then the checksum line journal_format would put. */
static char *with_checksum(const uint8_t *data, size_t size, size_t *len)
{
	char *text = malloc(size + 32);

	FUZZ_CHECK(text != NULL);
	memcpy(text, data, size);
	*len = size + (size_t)snprintf(text + size, 32, "\nxxh3 %016" PRIx64 "\n",
				       (uint64_t)XXH3_64bits(data, size));
	return text;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct compact_journal j, again;
	char *text, *written;
	size_t len;
	int rc;

	if (size == 0)
		return 0;
	if (data[0] % FUZZ_JOURNAL_MODES == 2) {
		check_written(data + 1, size - 1);
		return 0;
	}
	if (data[0] % FUZZ_JOURNAL_MODES == 1) {
		text = with_checksum(data + 1, size - 1, &size);
	} else {
		text = fuzz_strndup(data + 1, size - 1);
		size--;
	}
	rc = journal_parse(text, size, &j);

	FUZZ_CHECK(rc == ATOLOG_OK || rc == ATOLOG_CORRUPT || rc == ENOMEM);
	if (rc != ATOLOG_OK) {
		FUZZ_CHECK(j.inputs == NULL);
		free(text);
		return 0;
	}
	FUZZ_CHECK(j.n_outputs > 0 && j.n_outputs <= COMPACT_INPUTS_MAX);
	FUZZ_CHECK(j.n_inputs <= COMPACT_INPUTS_MAX);
	written = journal_format(&j, &len);
	if (written) {
		FUZZ_CHECK(len == size && memcmp(written, text, size) == 0);
		rc = journal_parse(written, len, &again);
		FUZZ_CHECK(rc == ATOLOG_OK || rc == ENOMEM);
		if (rc == ATOLOG_OK) {
			FUZZ_CHECK(again.nonce == j.nonce && again.output == j.output &&
				   again.n_outputs == j.n_outputs &&
				   again.n_inputs == j.n_inputs);
			FUZZ_CHECK(j.n_inputs == 0 ||
				   memcmp(again.inputs, j.inputs,
					  j.n_inputs * sizeof(*j.inputs)) == 0);
		}
		free(again.inputs);
		free(written);
	}
	free(j.inputs);
	free(text);
	return 0;
}
