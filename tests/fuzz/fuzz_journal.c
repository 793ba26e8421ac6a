/*
 * fuzz_journal.c - reading the compaction journal (journal_parse): the
 * file a killed compaction leaves, which decides at the next open whether
 * its work is finished or undone.
 *
 * An input whose first byte is odd gets its checksum line made for it
 * (the rest of the input, then "\nxxh3 <its XXH3>\n"), so that the fields
 * behind the checksum are explored too; an even one is taken as it is.
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
	if (data[0] & 1) {
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
