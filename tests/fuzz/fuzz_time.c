/*
 * fuzz_time.c - the two scalars a query or an import spells as text:
 * times (atolog_time_parse: since=, created_at) and ids (uuid_parse: GET
 * /interactions/{id}). The input is the text; a NUL inside ends it, as it
 * would in a C string.
 *
 * Properties: a time is parsed or refused, never a crash; a parsed time
 * lies in the range a record holds and, formatted in the ISO form, parses
 * back to the same microsecond, and in the seed's form to the same
 * second; an id that parses formats as 36 lowercase characters that parse
 * back to the same 16 bytes.
 */
#include <ctype.h>
#include <string.h>

#include "codec.h"
#include "fuzz.h"

static void check_time(const char *text)
{
	char iso[ATOLOG_TIME_ISO_LEN], seed[ATOLOG_TIME_SEED_LEN];
	int64_t us, again;
	int rc = atolog_time_parse(text, &us);

	FUZZ_CHECK(rc == ATOLOG_OK || rc == ATOLOG_INVALID);
	if (rc != ATOLOG_OK)
		return;
	FUZZ_CHECK(us >= TIME_MIN_US && us <= TIME_MAX_US);
	atolog_time_format_iso(us, iso);
	FUZZ_CHECK(atolog_time_parse(iso, &again) == ATOLOG_OK && again == us);
	atolog_time_format_seed(us, seed);
	FUZZ_CHECK(atolog_time_parse(seed, &again) == ATOLOG_OK &&
		   again == time_floor_second(us));
}

static void check_uuid(const char *text)
{
	uint8_t id[UUID_SIZE], again[UUID_SIZE];
	char out[ATOLOG_ID_TEXT_LEN + 1];

	if (uuid_parse(text, id) != 0)
		return;
	uuid_format(id, out);
	FUZZ_CHECK(strlen(out) == ATOLOG_ID_TEXT_LEN);
	for (size_t i = 0; i < ATOLOG_ID_TEXT_LEN; i++)
		FUZZ_CHECK(!isupper((unsigned char)out[i]));
	FUZZ_CHECK(uuid_parse(out, again) == 0);
	FUZZ_CHECK(memcmp(id, again, UUID_SIZE) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_strndup(data, size);

	check_time(text);
	check_uuid(text);
	free(text);
	return 0;
}
