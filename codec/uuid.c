/*
 * uuid.c - UUID text form and time-ordered generation.
 *
 * Ids are stored as 16 raw bytes and shown in the canonical lowercase
 * 8-4-4-4-12 form. Generated ids are UUID v7 (RFC 9562): 48 bits of Unix
 * milliseconds, then the version, a 12-bit counter, the variant and 62
 * random bits. Because they grow with time, new ids land at the right edge
 * of the by_id B-tree (an append, not a random insert), which measurably
 * speeds up indexing; they are still valid UUIDs for any consumer.
 */
#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include "codec.h"
#include "error.h"

static int hex_value(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int uuid_parse(const char *text, uint8_t out[UUID_SIZE])
{
	static const int dash_at[] = { 8, 13, 18, 23 };
	uint8_t id[UUID_SIZE];
	size_t pos = 0;

	if (!text || strlen(text) != ATOLOG_ID_TEXT_LEN)
		goto fail_shape;
	for (size_t d = 0; d < 4; d++) {
		if (text[dash_at[d]] != '-')
			goto fail_shape;
	}
	for (size_t i = 0, d = 0; i < UUID_SIZE; i++) {
		int hi, lo;

		if (d < 4 && pos == (size_t)dash_at[d]) {
			pos++; /* a dash, checked above: never one elsewhere */
			d++;
		}
		hi = hex_value((unsigned char)text[pos]);
		lo = hex_value((unsigned char)text[pos + 1]);
		if (hi < 0 || lo < 0)
			goto fail_shape;
		id[i] = (uint8_t)(hi << 4 | lo);
		pos += 2;
	}
	memcpy(out, id, UUID_SIZE);
	return ATOLOG_OK;

fail_shape:
	return err_set(ATOLOG_INVALID,
		       "not a UUID: \"%.40s\" (expected "
		       "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)",
		       text ? text : "(null)");
}

void uuid_format(const uint8_t id[UUID_SIZE], char out[ATOLOG_ID_TEXT_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	size_t pos = 0;

	for (size_t i = 0; i < UUID_SIZE; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[pos++] = '-';
		out[pos++] = hex[id[i] >> 4];
		out[pos++] = hex[id[i] & 0xf];
	}
	out[pos] = '\0';
}

void uuid_v7_init(struct uuid_v7_gen *gen)
{
	memset(gen, 0, sizeof(*gen));
	gen->pool_used = sizeof(gen->pool);
}

static int uuid_random(struct uuid_v7_gen *gen, uint8_t *out, size_t n)
{
	if (gen->pool_used + n > sizeof(gen->pool)) {
		ssize_t got = getrandom(gen->pool, sizeof(gen->pool), 0);

		if (got != (ssize_t)sizeof(gen->pool))
			return err_errno(got < 0 ? errno : EIO,
					 "getrandom for a new id");
		gen->pool_used = 0;
	}
	memcpy(out, gen->pool + gen->pool_used, n);
	gen->pool_used += n;
	return ATOLOG_OK;
}

int uuid_v7_next(struct uuid_v7_gen *gen, int64_t now_us, uint8_t out[UUID_SIZE])
{
	int64_t ms = now_us / 1000;
	uint8_t rnd[10];
	int rc;

	rc = uuid_random(gen, rnd, sizeof(rnd));
	if (rc != ATOLOG_OK)
		return rc;
	if (ms > gen->last_ms) {
		gen->last_ms = ms;
		/* Start the counter low but random, leaving room to count. */
		gen->counter = (uint16_t)(((rnd[0] << 8) | rnd[1]) & 0x3ff);
	} else if (++gen->counter > 0xfff) {
		/* 4096 ids in one millisecond: borrow the next one. */
		gen->last_ms++;
		gen->counter = 0;
	}
	ms = gen->last_ms;
	for (int i = 0; i < 6; i++)
		out[i] = (uint8_t)(ms >> (40 - 8 * i));
	out[6] = (uint8_t)(0x70 | (gen->counter >> 8));
	out[7] = (uint8_t)(gen->counter & 0xff);
	out[8] = (uint8_t)(0x80 | (rnd[2] & 0x3f));
	memcpy(out + 9, rnd + 3, 7);
	return ATOLOG_OK;
}
