/*
 * test_codec.c - unit test of the codec, the one module that turns values
 * into bytes and bytes into values.
 *
 * Why it matters: every byte atolog puts on disk or hands back to a caller
 * goes through the codec, and the codec alone decides whether a record is
 * well formed. A mistake here is either silent data loss (a time parsed a
 * few hours off, a field dropped on decode) or a crash on hostile bytes.
 * So this test pins exact values, computed independently (glibc's timegm
 * and gmtime_r, a table-driven UTF-8 validator, xxhash directly, msgpack-c
 * packing by hand), and feeds the decoders crafted and random garbage,
 * which must come back as ATOLOG_CORRUPT and never as a crash, a huge
 * allocation or a leak (CI runs it under ASan/UBSan/LSan).
 *
 * Areas: atolog_time_parse/format and time_floor_second; uuid text and
 * v7 generation; text_is_utf8/blank and text_fold_name; mp_is_bounded;
 * record_input_init/record_encode/record_view_decode/record_fields_flatten
 * including forward compatibility and fuzzing; frame and segment headers;
 * registry frames; atolog_interaction_from_json/to_json.
 *
 * Random inputs come from check_rand_*; the seed is printed and can be
 * replayed with ATOLOG_TEST_SEED=<n>.
 */
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <msgpack.h>
#include <xxhash.h>

#include "bytes.h"
#include "check.h"
#include "codec.h"
#include "error.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
/* A byte-string literal and its length, for tables of raw bytes. */
#define BYTES(lit) lit, sizeof(lit) - 1
#define US INT64_C(1000000)
#define T_2026_04_01_NOON INT64_C(1775044800) /* 2026-04-01T12:00:00Z */

/* ------------------------------------------------------------------------
 * Small helpers.
 */

/* Seconds since the epoch of a UTC civil time, by glibc (independent of
 * the codec's own calendar arithmetic). */
static int64_t utc_s(int y, int mo, int d, int h, int mi, int s)
{
	struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
			 .tm_hour = h, .tm_min = mi, .tm_sec = s };

	return (int64_t)timegm(&tm);
}

static int64_t utc_us(int y, int mo, int d, int h, int mi, int s, int64_t us)
{
	return utc_s(y, mo, d, h, mi, s) * US + us;
}

/* A copy of len bytes in a block of exactly len bytes, so that ASan sees
 * any read past the end. */
static void *exact_copy(const void *p, size_t len)
{
	void *q = malloc(len ? len : 1);

	if (!q)
		abort();
	memcpy(q, p, len);
	return q;
}

static double elapsed_s(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) +
	       (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* Encodes code point cp as UTF-8 into out (4 bytes room); returns length. */
static size_t utf8_put(uint32_t cp, char *out)
{
	unsigned char *o = (unsigned char *)out;

	if (cp < 0x80) {
		o[0] = (unsigned char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (unsigned char)(0xc0 | cp >> 6);
		o[1] = (unsigned char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (unsigned char)(0xe0 | cp >> 12);
		o[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
		o[2] = (unsigned char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (unsigned char)(0xf0 | cp >> 18);
	o[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
	o[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
	o[3] = (unsigned char)(0x80 | (cp & 0x3f));
	return 4;
}

/* A random scalar value (no surrogates), biased to every encoding width. */
static uint32_t rand_code_point(void)
{
	static const uint32_t top[] = { 0x7f, 0x7ff, 0xffff, 0x10ffff };
	uint32_t cp;

	do {
		cp = (uint32_t)check_rand_below(top[check_rand_below(4)] + 1);
	} while ((cp >= 0xd800 && cp <= 0xdfff) || cp == 0);
	return cp;
}

/* A malloc'ed random valid UTF-8 string of up to max_cps code points. */
static char *rand_utf8(size_t max_cps)
{
	size_t n = check_rand_below(max_cps + 1), len = 0;
	char *s = malloc(4 * n + 1);

	if (!s)
		abort();
	for (size_t i = 0; i < n; i++)
		len += utf8_put(rand_code_point(), s + len);
	s[len] = '\0';
	return s;
}

static bool json_text_equal(const char *a, const char *b)
{
	json_t *ja = json_loads(a, 0, NULL), *jb = json_loads(b, 0, NULL);
	bool eq = ja && jb && json_equal(ja, jb);

	json_decref(ja);
	json_decref(jb);
	return eq;
}

/* ------------------------------------------------------------------------
 * atolog_time_parse.
 */

static void expect_time(const char *text, int64_t want)
{
	int64_t got = INT64_MIN;
	int rc;

	rc = atolog_time_parse(text, &got);
	if (rc != ATOLOG_OK || got != want)
		CHECK_FAILF("atolog_time_parse(\"%s\") = %d (%s), %" PRId64 "; want %" PRId64,
		     text, rc, atolog_errmsg(NULL), got, want);
}

static void expect_time_invalid(const char *text)
{
	int64_t got = 12345;
	char quoted[128];
	int rc;

	rc = atolog_time_parse(text, &got);
	if (rc != ATOLOG_INVALID) {
		CHECK_FAILF("atolog_time_parse(\"%s\") = %d, %" PRId64 "; want ATOLOG_INVALID",
		     text ? text : "(null)", rc, got);
		return;
	}
	if (got != 12345)
		CHECK_FAILF("atolog_time_parse(\"%s\") wrote its output on failure", text);
	snprintf(quoted, sizeof(quoted), "\"%s\"", text ? text : "(null)");
	if (!strstr(atolog_errmsg(NULL), quoted))
		CHECK_FAILF("message \"%s\" does not quote the input %s",
		     atolog_errmsg(NULL), quoted);
	/* The internal entry point agrees. */
	err_begin(NULL);
	if (time_parse(text, &got) != ATOLOG_INVALID || got != 12345)
		CHECK_FAILF("time_parse(\"%s\") accepted what atolog_time_parse refused",
		     text ? text : "(null)");
}

static void test_time_parse_known(void)
{
	const int64_t noon = T_2026_04_01_NOON * US;

	/* Anchors: glibc agrees with the literal epoch values. */
	CHECK_INT(utc_s(2026, 4, 1, 12, 0, 0), T_2026_04_01_NOON);
	CHECK_INT(utc_s(1970, 1, 1, 0, 0, 0), 0);
	CHECK_INT(utc_s(2000, 1, 1, 0, 0, 0), 946684800);
	CHECK_INT(utc_s(1, 1, 1, 0, 0, 0), INT64_C(-62135596800));
	CHECK_INT(utc_s(9999, 12, 31, 23, 59, 59), INT64_C(253402300799));

	expect_time("2026-04-01T12:00:00Z", noon);
	expect_time("1970-01-01T00:00:00Z", 0);
	expect_time("1969-12-31T23:59:59Z", -US);
	expect_time("1969-12-31T23:59:59.999999Z", -1);
	expect_time("2000-01-01T00:00:00Z", INT64_C(946684800) * US);
	expect_time("0001-01-01T00:00:00Z", TIME_MIN_US);
	expect_time("9999-12-31T23:59:59.999999Z", TIME_MAX_US);
	expect_time("1900-03-01T00:00:00Z", utc_us(1900, 3, 1, 0, 0, 0, 0));
	expect_time("1600-02-29T06:07:08Z", utc_us(1600, 2, 29, 6, 7, 8, 0));
	expect_time("0400-12-31T23:59:59Z", utc_us(400, 12, 31, 23, 59, 59, 0));
}

static void test_time_parse_shapes(void)
{
	const int64_t t = utc_us(2026, 4, 1, 12, 34, 56, 0);
	const int64_t hm = utc_us(2026, 4, 1, 12, 34, 0, 0);

	/* Separators. */
	expect_time("2026-04-01T12:34:56Z", t);
	expect_time("2026-04-01t12:34:56Z", t);
	expect_time("2026-04-01 12:34:56Z", t);
	/* Zone letter either case, or none (UTC). */
	expect_time("2026-04-01T12:34:56z", t);
	expect_time("2026-04-01T12:34:56", t);
	/* The seed's storage form. */
	expect_time("2026-04-01 12:34:56", t);
	/* Seconds optional. */
	expect_time("2026-04-01T12:34", hm);
	expect_time("2026-04-01T12:34Z", hm);
	expect_time("2026-04-01 12:34", hm);
	expect_time("2026-04-01T12:34+02:00", hm - 2 * 3600 * US);
	/* Date only: midnight UTC. */
	expect_time("2026-04-01", utc_us(2026, 4, 1, 0, 0, 0, 0));
	/* Fractions of 1..9 digits, '.' or ','; past six digits truncated. */
	expect_time("2026-04-01T12:34:56.7Z", t + 700000);
	expect_time("2026-04-01T12:34:56.78Z", t + 780000);
	expect_time("2026-04-01T12:34:56.789Z", t + 789000);
	expect_time("2026-04-01T12:34:56.7891Z", t + 789100);
	expect_time("2026-04-01T12:34:56.78912Z", t + 789120);
	expect_time("2026-04-01T12:34:56.789123Z", t + 789123);
	expect_time("2026-04-01T12:34:56.7891239Z", t + 789123);
	expect_time("2026-04-01T12:34:56.78912399Z", t + 789123);
	expect_time("2026-04-01T12:34:56.789123999Z", t + 789123);
	expect_time("2026-04-01T12:34:56,5Z", t + 500000);
	expect_time("2026-04-01T12:34:56,000001", t + 1);
	expect_time("2026-04-01T12:34:56.000000Z", t);
	expect_time("2026-04-01T12:34:56.999999999", t + 999999);
	expect_time("2026-04-01 12:34:56.25", t + 250000);
	expect_time("2026-04-01T12:34:56.5+01:00", t + 500000 - 3600 * US);
	/* Offsets: +HH:MM, -HH:MM, +HHMM, -HHMM, +HH, -HH. */
	expect_time("2026-04-01T12:34:56+05:30", t - (5 * 3600 + 30 * 60) * US);
	expect_time("2026-04-01T12:34:56-05:30", t + (5 * 3600 + 30 * 60) * US);
	expect_time("2026-04-01T12:34:56+0530", t - (5 * 3600 + 30 * 60) * US);
	expect_time("2026-04-01T12:34:56-0530", t + (5 * 3600 + 30 * 60) * US);
	expect_time("2026-04-01T12:34:56+05", t - 5 * 3600 * US);
	expect_time("2026-04-01T12:34:56-05", t + 5 * 3600 * US);
	expect_time("2026-04-01T12:34:56+00:00", t);
	expect_time("2026-04-01T12:34:56-00:00", t);
	expect_time("2026-04-01T12:34:56+23:59", t - (23 * 3600 + 59 * 60) * US);
	expect_time("2026-04-01T12:34:56-23:59", t + (23 * 3600 + 59 * 60) * US);
	expect_time("2026-04-01 12:34:56+01:00", t - 3600 * US);
	/* Surrounding blanks. */
	expect_time("  2026-04-01T12:34:56Z  ", t);
	expect_time("\t2026-04-01 12:34:56\n", t);
	expect_time(" 2026-04-01 ", utc_us(2026, 4, 1, 0, 0, 0, 0));
	expect_time("\r\n2026-04-01T12:34:56.5+02:00\t ", t + 500000 - 2 * 3600 * US);
}

static void test_time_parse_boundaries(void)
{
	/* Offsets carry across day, month and year boundaries. */
	expect_time("2026-01-01T00:30:00+01:00", utc_us(2025, 12, 31, 23, 30, 0, 0));
	expect_time("2025-12-31T23:30:00-01:00", utc_us(2026, 1, 1, 0, 30, 0, 0));
	expect_time("2026-03-01T00:00:00+00:01", utc_us(2026, 2, 28, 23, 59, 0, 0));
	expect_time("2024-03-01T00:00:00+00:01", utc_us(2024, 2, 29, 23, 59, 0, 0));
	expect_time("2024-02-29T23:00:00-02:00", utc_us(2024, 3, 1, 1, 0, 0, 0));
	expect_time("2026-04-30T22:00:00-0300", utc_us(2026, 5, 1, 1, 0, 0, 0));
	expect_time("2026-05-01T01:00:00+03", utc_us(2026, 4, 30, 22, 0, 0, 0));
	expect_time("1970-01-01T00:00:00+00:01", -60 * US);
	expect_time("1970-01-01T00:00:00.000001+01:00", -3600 * US + 1);
	expect_time("1969-12-31T23:00:00-01:00", 0);
	/* Leap days: Gregorian rules. */
	expect_time("2024-02-29", utc_us(2024, 2, 29, 0, 0, 0, 0));
	expect_time("2000-02-29T12:00:00Z", utc_us(2000, 2, 29, 12, 0, 0, 0));
	expect_time("0004-02-29", utc_us(4, 2, 29, 0, 0, 0, 0));
	expect_time_invalid("2023-02-29");
	expect_time_invalid("2023-02-29T00:00:00Z");
	expect_time_invalid("1900-02-29");
	expect_time_invalid("2100-02-29");
	expect_time_invalid("2024-02-30");
	/* Month lengths. */
	expect_time("2026-01-31", utc_us(2026, 1, 31, 0, 0, 0, 0));
	expect_time("2026-04-30", utc_us(2026, 4, 30, 0, 0, 0, 0));
	expect_time("2026-12-31T23:59:59.999999Z", utc_us(2026, 12, 31, 23, 59, 59, 999999));
	expect_time_invalid("2026-06-31");
	expect_time_invalid("2026-09-31");
	expect_time_invalid("2026-11-31");
	expect_time_invalid("2026-01-32");
	/* An offset may not carry the instant out of the range a record
	 * holds (found by fuzz_time: formatting clamped it). */
	expect_time("0001-01-01T00:00:00-00:01", TIME_MIN_US + 60 * US);
	expect_time("9999-12-31T23:59:59.999999+00:01", TIME_MAX_US - 60 * US);
	expect_time_invalid("0001-01-01T00:00:00+00:01");
	expect_time_invalid("0001-01-01T00:59:59+01");
	expect_time_invalid("9999-12-31T23:59:59-00:01");
	expect_time_invalid("9999-12-31T23:00:00-0100");
}

static void test_time_parse_rejects(void)
{
	static const char *const bad[] = {
		"", " ", "yesterday", "now", "2026-13-01", "2026-00-10",
		"2026-04-00", "2026-04-31", "0000-01-01",
		"2026-04-01T25:00", "2026-04-01T12:60", "2026-04-01T12:00:61",
		"2026-04-01T12:00:60", "2026-04-01T12:00:00+24:00",
		"2026-04-01T12:00:00-24:00", "2026-04-01T12:00:00+05:60",
		"2026-04-01T12:00:00+2400", "2026-04-01T12", "2026-04-01T",
		"2026-4-1", "2026-04-1", "26-04-01", "20260401",
		"2026/04/01", "+2026-04-01", "-2026-04-01", "2026-04-01T1:00",
		"2026-04-01T12:0", "2026-04-01T12:00:0", "2026-04-01T12:00:00.",
		"2026-04-01T12:00:00,", "2026-04-01T12:00.5",
		"2026-04-01T12:00:00+5", "2026-04-01T12:00:00+05:3",
		"2026-04-01T12:00:00+053", "2026-04-01T12:00:00+05:",
		"2026-04-01T12:00:00+", "2026-04-01T12:00:00Zjunk",
		"2026-04-01T12:00:00Z Z", "2026-04-01T12:00:00ZZ",
		"2026-04-01T12:00:00 junk", "2026-04-01junk", "2026-04-01 x",
		"2026-04-01T12:00:00+05:00:00", "2026-04-01T12:00:00.5.5",
		"2026-04-01X12:00:00", "2026-04-01T12:00:00\x01",
		"\xef\xbc\x92\xef\xbc\x90\xef\xbc\x92\xef\xbc\x96-04-01",
	};

	for (size_t i = 0; i < ARRAY_LEN(bad); i++)
		expect_time_invalid(bad[i]);
	/* NULL is refused too; the message then quotes "(null)". */
	expect_time_invalid(NULL);
}

/* ------------------------------------------------------------------------
 * Time formatting and flooring.
 */

static void expect_format(int64_t us, const char *seed, const char *iso)
{
	char *sbuf = malloc(ATOLOG_TIME_SEED_LEN); /* exact size: ASan */
	char *ibuf = malloc(ATOLOG_TIME_ISO_LEN);

	if (!sbuf || !ibuf)
		abort();
	atolog_time_format_seed(us, sbuf);
	atolog_time_format_iso(us, ibuf);
	if (strcmp(sbuf, seed) != 0)
		CHECK_FAILF("format_seed(%" PRId64 ") = \"%s\", want \"%s\"", us, sbuf, seed);
	if (strcmp(ibuf, iso) != 0)
		CHECK_FAILF("format_iso(%" PRId64 ") = \"%s\", want \"%s\"", us, ibuf, iso);
	CHECK_INT(strlen(sbuf), ATOLOG_TIME_SEED_LEN - 1);
	CHECK_INT(strlen(ibuf), ATOLOG_TIME_ISO_LEN - 1);
	free(sbuf);
	free(ibuf);
}

static void test_time_format(void)
{
	const int64_t noon = T_2026_04_01_NOON * US;

	expect_format(0, "1970-01-01 00:00:00", "1970-01-01T00:00:00.000000Z");
	expect_format(1, "1970-01-01 00:00:00", "1970-01-01T00:00:00.000001Z");
	expect_format(999999, "1970-01-01 00:00:00", "1970-01-01T00:00:00.999999Z");
	expect_format(US, "1970-01-01 00:00:01", "1970-01-01T00:00:01.000000Z");
	expect_format(noon, "2026-04-01 12:00:00", "2026-04-01T12:00:00.000000Z");
	expect_format(noon + 5, "2026-04-01 12:00:00", "2026-04-01T12:00:00.000005Z");
	expect_format(noon + 123456, "2026-04-01 12:00:00",
		      "2026-04-01T12:00:00.123456Z");
	expect_format(noon + 10000, "2026-04-01 12:00:00",
		      "2026-04-01T12:00:00.010000Z");
	/* Before 1970: the fraction counts up from the floor second. */
	expect_format(-1, "1969-12-31 23:59:59", "1969-12-31T23:59:59.999999Z");
	expect_format(-US, "1969-12-31 23:59:59", "1969-12-31T23:59:59.000000Z");
	expect_format(-US - 1, "1969-12-31 23:59:58", "1969-12-31T23:59:58.999999Z");
	expect_format(-500000, "1969-12-31 23:59:59", "1969-12-31T23:59:59.500000Z");
	expect_format(-86400 * US, "1969-12-31 00:00:00",
		      "1969-12-31T00:00:00.000000Z");
	expect_format(utc_us(1900, 2, 28, 23, 59, 59, 1), "1900-02-28 23:59:59",
		      "1900-02-28T23:59:59.000001Z");
	expect_format(utc_us(1900, 3, 1, 0, 0, 0, 0), "1900-03-01 00:00:00",
		      "1900-03-01T00:00:00.000000Z");
	expect_format(utc_us(2024, 2, 29, 8, 9, 10, 11), "2024-02-29 08:09:10",
		      "2024-02-29T08:09:10.000011Z");
	expect_format(TIME_MIN_US, "0001-01-01 00:00:00", "0001-01-01T00:00:00.000000Z");
	expect_format(TIME_MIN_US + 1, "0001-01-01 00:00:00",
		      "0001-01-01T00:00:00.000001Z");
	expect_format(TIME_MAX_US, "9999-12-31 23:59:59", "9999-12-31T23:59:59.999999Z");
	/* Out of the record range: clamped, still printable. */
	expect_format(INT64_MIN, "0001-01-01 00:00:00", "0001-01-01T00:00:00.000000Z");
	expect_format(INT64_MAX, "9999-12-31 23:59:59", "9999-12-31T23:59:59.999999Z");
}

static void test_time_floor(void)
{
	static const struct {
		int64_t in, want;
	} cases[] = {
		{ 0, 0 },
		{ 1, 0 },
		{ 999999, 0 },
		{ 1000000, 1000000 },
		{ 1999999, 1000000 },
		{ -1, -1000000 },
		{ -999999, -1000000 },
		{ -1000000, -1000000 },
		{ -1000001, -2000000 },
		{ -1999999, -2000000 },
		{ -2000000, -2000000 },
		{ TIME_MIN_US, TIME_MIN_US },
		{ TIME_MIN_US + 1, TIME_MIN_US },
		{ TIME_MAX_US, TIME_MAX_US - 999999 },
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		int64_t got = time_floor_second(cases[i].in);

		if (got != cases[i].want)
			CHECK_FAILF("time_floor_second(%" PRId64 ") = %" PRId64 ", want %" PRId64,
			     cases[i].in, got, cases[i].want);
	}
	for (int i = 0; i < 20000; i++) {
		int64_t x = TIME_MIN_US +
			    (int64_t)check_rand_below((uint64_t)(TIME_MAX_US - TIME_MIN_US) + 1);
		int64_t f = time_floor_second(x);

		if (f > x || x - f >= US || f % US != 0) {
			CHECK_FAILF("time_floor_second(%" PRId64 ") = %" PRId64, x, f);
			break;
		}
	}
}

/* "YYYY-MM-DDTHH:MM:SS.ffffffZ" by glibc's gmtime_r. */
static void iso_by_glibc(int64_t us, char *buf, size_t size)
{
	int64_t s = us / US, frac = us % US;
	struct tm tm;
	time_t tt;

	if (frac < 0) {
		frac += US;
		s--;
	}
	tt = (time_t)s;
	gmtime_r(&tt, &tm);
	snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, (int)frac);
}

static void test_time_roundtrip_random(void)
{
	int bad = 0;

	for (int i = 0; i < 30000 && bad < 10; i++) {
		int64_t x, back = 0;
		char iso[ATOLOG_TIME_ISO_LEN], seed[ATOLOG_TIME_SEED_LEN], ref[128];

		switch (i % 3) {
		case 0: /* anywhere in years 1..9999 */
			x = TIME_MIN_US + (int64_t)check_rand_below(
						  (uint64_t)(TIME_MAX_US - TIME_MIN_US) + 1);
			break;
		case 1: /* around the epoch */
			x = (int64_t)check_rand_below(UINT64_C(200000) * 86400 * US) -
			    INT64_C(100000) * 86400 * US;
			break;
		default: /* near the ends */
			x = check_rand_below(2) ? TIME_MIN_US + (int64_t)check_rand_below(400 * 86400 * US)
						: TIME_MAX_US - (int64_t)check_rand_below(400 * 86400 * US);
			break;
		}
		atolog_time_format_iso(x, iso);
		atolog_time_format_seed(x, seed);
		iso_by_glibc(x, ref, sizeof(ref));
		if (strcmp(iso, ref) != 0) {
			CHECK_FAILF("format_iso(%" PRId64 ") = \"%s\", glibc says \"%s\"", x, iso, ref);
			bad++;
		}
		if (strncmp(seed, ref, 10) != 0 || seed[10] != ' ' ||
		    strncmp(seed + 11, ref + 11, 8) != 0 || seed[19] != '\0') {
			CHECK_FAILF("format_seed(%" PRId64 ") = \"%s\", glibc says \"%s\"", x, seed, ref);
			bad++;
		}
		if (atolog_time_parse(iso, &back) != ATOLOG_OK || back != x) {
			CHECK_FAILF("parse(format_iso(%" PRId64 ")) = %" PRId64 " (\"%s\")", x, back, iso);
			bad++;
		}
		back = 0;
		if (atolog_time_parse(seed, &back) != ATOLOG_OK ||
		    back != time_floor_second(x)) {
			CHECK_FAILF("parse(format_seed(%" PRId64 ")) = %" PRId64, x, back);
			bad++;
		}
	}
}

/* ------------------------------------------------------------------------
 * UUIDs.
 */

static void expect_uuid_invalid(const char *text)
{
	uint8_t id[UUID_SIZE];

	memset(id, 0xaa, sizeof(id));
	err_begin(NULL);
	if (uuid_parse(text, id) != ATOLOG_INVALID) {
		CHECK_FAILF("uuid_parse(\"%s\") accepted", text ? text : "(null)");
		return;
	}
	for (size_t i = 0; i < UUID_SIZE; i++) {
		if (id[i] != 0xaa) {
			CHECK_FAILF("uuid_parse(\"%s\") wrote its output on failure", text);
			break;
		}
	}
	CHECK_MSG(NULL, "not a UUID");
}

static void test_uuid_text(void)
{
	static const uint8_t known[UUID_SIZE] = {
		0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
		0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10,
	};
	static const char *const bad[] = {
		"",
		"0123456789abcdeffedcba9876543210",
		"01234567-89ab-cdef-fedc-ba987654321",
		"01234567-89ab-cdef-fedc-ba98765432100",
		"01234567-89ab-cdef-fedc-ba987654321g",
		"g1234567-89ab-cdef-fedc-ba9876543210",
		"01234567-89ab-cdef-fedcba98-76543210",
		"0123456-789ab-cdef-fedc-ba9876543210",
		"01234567089ab-cdef-fedc-ba9876543210",
		"01234567-89ab0cdef-fedc-ba9876543210",
		"01234567-89ab-cdef0fedc-ba9876543210",
		"01234567-89ab-cdef-fedc0ba9876543210",
		"01234567_89ab_cdef_fedc_ba9876543210",
		" 01234567-89ab-cdef-fedc-ba987654321",
		"01234567-89ab-cdef-fedc-ba987654321 ",
		"{1234567-89ab-cdef-fedc-ba987654321}",
		"01234567-89ab-cdef-fedc-ba98765432-0",
		"-1234567-89ab-cdef-fedc-ba9876543210",
		"0x234567-89ab-cdef-fedc-ba9876543210",
		"01234567-89ab-cdef-fedc-ba987654321\xc3",
		"01234567-+9ab-cdef-fedc-ba9876543210",
	};
	char text[ATOLOG_ID_TEXT_LEN + 1];
	uint8_t id[UUID_SIZE];

	uuid_format(known, text);
	CHECK_STR(text, "01234567-89ab-cdef-fedc-ba9876543210");
	err_begin(NULL);
	CHECK_RC(uuid_parse("01234567-89ab-cdef-fedc-ba9876543210", id), ATOLOG_OK, NULL);
	CHECK(memcmp(id, known, UUID_SIZE) == 0);
	memset(id, 0, sizeof(id));
	CHECK_RC(uuid_parse("01234567-89AB-CDEF-FEDC-BA9876543210", id), ATOLOG_OK, NULL);
	CHECK(memcmp(id, known, UUID_SIZE) == 0);
	memset(id, 0, sizeof(id));
	CHECK_RC(uuid_parse("01234567-89aB-CdEf-FeDc-bA9876543210", id), ATOLOG_OK, NULL);
	CHECK(memcmp(id, known, UUID_SIZE) == 0);
	uuid_format(id, text);
	CHECK_STR(text, "01234567-89ab-cdef-fedc-ba9876543210");
	memset(id, 0xff, sizeof(id));
	uuid_format(id, text);
	CHECK_STR(text, "ffffffff-ffff-ffff-ffff-ffffffffffff");
	memset(id, 0, sizeof(id));
	uuid_format(id, text);
	CHECK_STR(text, "00000000-0000-0000-0000-000000000000");

	for (size_t i = 0; i < ARRAY_LEN(bad); i++)
		expect_uuid_invalid(bad[i]);
	expect_uuid_invalid(NULL);

	/* Random round trips, in lower and upper case. */
	for (int i = 0; i < 2000; i++) {
		uint8_t a[UUID_SIZE], b[UUID_SIZE];
		char upper[ATOLOG_ID_TEXT_LEN + 1];

		for (size_t k = 0; k < UUID_SIZE; k++)
			a[k] = (uint8_t)check_rand();
		uuid_format(a, text);
		CHECK_INT(strlen(text), ATOLOG_ID_TEXT_LEN);
		for (size_t k = 0; k <= ATOLOG_ID_TEXT_LEN; k++)
			upper[k] = (char)(text[k] >= 'a' && text[k] <= 'f' ?
					  text[k] - 'a' + 'A' : text[k]);
		memset(b, 0, sizeof(b));
		if (uuid_parse(text, b) != ATOLOG_OK || memcmp(a, b, UUID_SIZE) != 0) {
			CHECK_FAILF("uuid round trip of %s", text);
			break;
		}
		memset(b, 0, sizeof(b));
		if (uuid_parse(upper, b) != ATOLOG_OK || memcmp(a, b, UUID_SIZE) != 0) {
			CHECK_FAILF("uuid round trip of %s", upper);
			break;
		}
	}
}

static int64_t uuid_ms(const uint8_t id[UUID_SIZE])
{
	int64_t ms = 0;

	for (int i = 0; i < 6; i++)
		ms = ms << 8 | id[i];
	return ms;
}

static unsigned uuid_counter(const uint8_t id[UUID_SIZE])
{
	return (unsigned)(id[6] & 0x0f) << 8 | id[7];
}

/* Checks id against its predecessor; returns false after a failure. */
static bool uuid_v7_ok(const uint8_t *prev, const uint8_t id[UUID_SIZE],
		       int64_t now_us, long i)
{
	int64_t ms = uuid_ms(id), now_ms = now_us / 1000;

	if (id[6] >> 4 != 7 || id[8] >> 6 != 2) {
		CHECK_FAILF("id %ld: version %u variant %u", i, id[6] >> 4, id[8] >> 6);
		return false;
	}
	if (ms < now_ms) {
		CHECK_FAILF("id %ld: timestamp %" PRId64 " ms before now %" PRId64, i, ms, now_ms);
		return false;
	}
	if (!prev)
		return true;
	if (memcmp(prev, id, UUID_SIZE) >= 0) {
		CHECK_FAILF("id %ld is not greater than its predecessor", i);
		return false;
	}
	if (now_ms > uuid_ms(prev) && ms != now_ms) {
		CHECK_FAILF("id %ld: timestamp %" PRId64 " although now is %" PRId64
		     " and the last id had %" PRId64, i, ms, now_ms, uuid_ms(prev));
		return false;
	}
	if (ms == uuid_ms(prev) && uuid_counter(id) != uuid_counter(prev) + 1) {
		CHECK_FAILF("id %ld: counter %u after %u in the same millisecond", i,
		     uuid_counter(id), uuid_counter(prev));
		return false;
	}
	if (ms > uuid_ms(prev) && now_ms <= uuid_ms(prev) &&
	    (ms != uuid_ms(prev) + 1 || uuid_counter(prev) != 0xfff)) {
		CHECK_FAILF("id %ld: jumped to %" PRId64 " ms without exhausting the counter", i, ms);
		return false;
	}
	return true;
}

static void test_uuid_v7_same_ms(void)
{
	enum { N = 100000 };
	const int64_t now = T_2026_04_01_NOON * US + 123456;
	struct uuid_v7_gen gen;
	uint8_t *ids = malloc((size_t)N * UUID_SIZE);
	unsigned same_tail = 0;

	if (!ids)
		abort();
	uuid_v7_init(&gen);
	for (long i = 0; i < N; i++) {
		uint8_t *id = ids + i * UUID_SIZE;

		CHECK_RC(uuid_v7_next(&gen, now, id), ATOLOG_OK, NULL);
		if (!uuid_v7_ok(i ? id - UUID_SIZE : NULL, id, now, i))
			break;
		if (i && memcmp(id + 9, id - UUID_SIZE + 9, 7) == 0)
			same_tail++;
	}
	/* First id carries the clock's millisecond exactly. */
	CHECK_INT(uuid_ms(ids), now / 1000);
	/* 100000 ids in one millisecond must borrow later milliseconds, but
	 * never more than one per 4096 ids (plus the random start). */
	CHECK(uuid_ms(ids + (N - 1) * UUID_SIZE) > now / 1000);
	CHECK(uuid_ms(ids + (N - 1) * UUID_SIZE) <= now / 1000 + N / 3072 + 2);
	/* The 56 random bits really vary. */
	CHECK(same_tail < 3);
	free(ids);
}

static void test_uuid_v7_advancing(void)
{
	struct uuid_v7_gen gen;
	uint8_t prev[UUID_SIZE], id[UUID_SIZE];
	int64_t now = T_2026_04_01_NOON * US;

	uuid_v7_init(&gen);
	for (long i = 0; i < 100000; i++) {
		switch (check_rand_below(8)) {
		case 0: /* the clock steps back (NTP) */
			now -= (int64_t)check_rand_below(5000);
			break;
		case 1: /* a burst in the same microsecond */
			break;
		case 2: /* a jump */
			now += (int64_t)check_rand_below(10 * US);
			break;
		default:
			now += (int64_t)check_rand_below(1500);
			break;
		}
		CHECK_RC(uuid_v7_next(&gen, now, id), ATOLOG_OK, NULL);
		if (!uuid_v7_ok(i ? prev : NULL, id, now, i))
			break;
		if (i == 0)
			CHECK_INT(uuid_ms(id), now / 1000);
		memcpy(prev, id, UUID_SIZE);
	}

	/* Two generators at once each stay ordered. */
	uuid_v7_init(&gen);
	CHECK_RC(uuid_v7_next(&gen, 5 * US, prev), ATOLOG_OK, NULL);
	CHECK_INT(uuid_ms(prev), 5000);
	CHECK_RC(uuid_v7_next(&gen, 5 * US + 999, id), ATOLOG_OK, NULL);
	CHECK_INT(uuid_ms(id), 5000);
	CHECK_INT(uuid_counter(id), uuid_counter(prev) + 1);
	memcpy(prev, id, UUID_SIZE);
	CHECK_RC(uuid_v7_next(&gen, 5 * US + 1000, id), ATOLOG_OK, NULL);
	CHECK_INT(uuid_ms(id), 5001);
	CHECK(memcmp(prev, id, UUID_SIZE) < 0);
}

/* ------------------------------------------------------------------------
 * Text.
 */

/* Well-formed UTF-8 by the table of RFC 3629 section 4. */
static bool utf8_reference(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		unsigned char lo = 0x80, hi = 0xbf;
		size_t n;

		if (c <= 0x7f) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
		} else if (c == 0xe0) {
			n = 2, lo = 0xa0;
		} else if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef) {
			n = 2;
		} else if (c == 0xed) {
			n = 2, hi = 0x9f;
		} else if (c == 0xf0) {
			n = 3, lo = 0x90;
		} else if (c >= 0xf1 && c <= 0xf3) {
			n = 3;
		} else if (c == 0xf4) {
			n = 3, hi = 0x8f;
		} else {
			return false;
		}
		if (len - i - 1 < n)
			return false;
		if (s[i + 1] < lo || s[i + 1] > hi)
			return false;
		for (size_t k = 2; k <= n; k++) {
			if (s[i + k] < 0x80 || s[i + k] > 0xbf)
				return false;
		}
		i += n + 1;
	}
	return true;
}

static bool utf8_of(const char *s, size_t len)
{
	char *copy = exact_copy(s, len);
	bool ok = text_is_utf8(copy, len);

	free(copy);
	return ok;
}

static bool blank_of(const char *s, size_t len)
{
	char *copy = exact_copy(s, len);
	bool ok = text_is_blank(copy, len);

	free(copy);
	return ok;
}

static void test_utf8_cases(void)
{
	static const struct {
		const char *s;
		size_t len;
		bool valid;
	} cases[] = {
		{ BYTES(""), true },
		{ BYTES("plain ascii"), true },
		{ BYTES("a\0b"), true },
		{ BYTES("\x7f"), true },
		{ BYTES("\xc2\x80"), true },          /* U+0080 */
		{ BYTES("\xc3\xa9"), true },          /* e acute */
		{ BYTES("\xdf\xbf"), true },          /* U+07FF */
		{ BYTES("\xe0\xa0\x80"), true },      /* U+0800 */
		{ BYTES("\xe2\x82\xac"), true },      /* euro */
		{ BYTES("\xed\x9f\xbf"), true },      /* U+D7FF */
		{ BYTES("\xee\x80\x80"), true },      /* U+E000 */
		{ BYTES("\xef\xbf\xbf"), true },      /* U+FFFF */
		{ BYTES("\xf0\x90\x80\x80"), true },  /* U+10000 */
		{ BYTES("\xf0\x9f\x98\x80"), true },  /* emoji */
		{ BYTES("\xf4\x8f\xbf\xbf"), true },  /* U+10FFFF */
		{ BYTES("x\xe6\x97\xa5\xe6\x9c\xac" "y"), true },
		/* Overlong forms. */
		{ BYTES("\xc0\x80"), false },
		{ BYTES("\xc0\xaf"), false },
		{ BYTES("\xc1\xbf"), false },
		{ BYTES("\xe0\x80\x80"), false },
		{ BYTES("\xe0\x9f\xbf"), false },
		{ BYTES("\xf0\x80\x80\x80"), false },
		{ BYTES("\xf0\x8f\xbf\xbf"), false },
		/* Surrogates. */
		{ BYTES("\xed\xa0\x80"), false },
		{ BYTES("\xed\xbf\xbf"), false },
		{ BYTES("\xed\xa0\xbd\xed\xb8\x80"), false },
		/* Past U+10FFFF, and bytes that never occur. */
		{ BYTES("\xf4\x90\x80\x80"), false },
		{ BYTES("\xf5\x80\x80\x80"), false },
		{ BYTES("\xf7\xbf\xbf\xbf"), false },
		{ BYTES("\xf8\x88\x80\x80\x80"), false },
		{ BYTES("\xfe"), false },
		{ BYTES("\xff"), false },
		/* Truncated sequences. */
		{ BYTES("\xc3"), false },
		{ BYTES("\xe2\x82"), false },
		{ BYTES("\xe2"), false },
		{ BYTES("\xf0\x9f\x98"), false },
		{ BYTES("\xf0\x9f"), false },
		{ BYTES("abc\xc3"), false },
		{ BYTES("\xc3\xa9\xe2\x82"), false },
		/* A valid string cut by len. */
		{ "\xc3\xa9", 1, false },
		{ "\xf0\x9f\x98\x80", 3, false },
		/* Bare or misplaced continuation bytes. */
		{ BYTES("\x80"), false },
		{ BYTES("\xbf"), false },
		{ BYTES("a\x80" "b"), false },
		{ BYTES("\xc3\xa9\xa9"), false },
		{ BYTES("\xc3\x41"), false },
		{ BYTES("\xe2\x28\xa1"), false },
		{ BYTES("\xe2\x82\x28"), false },
		{ BYTES("\xf0\x9f\x98\x28"), false },
		{ BYTES("\xc3\xc3\xa9"), false },
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		bool got = utf8_of(cases[i].s, cases[i].len);

		if (got != cases[i].valid)
			CHECK_FAILF("text_is_utf8 case %zu is %d, want %d", i, got, cases[i].valid);
		if (utf8_reference((const unsigned char *)cases[i].s, cases[i].len) !=
		    cases[i].valid)
			CHECK_FAILF("reference validator disagrees on case %zu", i);
	}
}

static void test_utf8_random(void)
{
	static const unsigned char interesting[] = {
		0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1,
		0xc2, 0xdf, 0xe0, 0xe1, 0xec, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf3,
		0xf4, 0xf5, 0xf8, 0xff,
	};
	unsigned char buf[16];
	int bad = 0;

	for (int i = 0; i < 50000 && bad < 10; i++) {
		size_t len = check_rand_below(sizeof(buf) + 1), n = 0;

		while (n < len) {
			switch (check_rand_below(4)) {
			case 0:
				buf[n++] = (unsigned char)check_rand();
				break;
			case 1:
				buf[n++] = interesting[check_rand_below(sizeof(interesting))];
				break;
			default: {
				char cp[4];
				size_t k = utf8_put(rand_code_point(), cp);

				for (size_t j = 0; j < k && n < len; j++)
					buf[n++] = (unsigned char)cp[j];
				break;
			}
			}
		}
		if (utf8_of((const char *)buf, len) != utf8_reference(buf, len)) {
			char hex[3 * sizeof(buf) + 1] = "";

			for (size_t k = 0; k < len; k++)
				snprintf(hex + 3 * k, 4, "%02x ", buf[k]);
			CHECK_FAILF("text_is_utf8 disagrees with RFC 3629 on [%s]", hex);
			bad++;
		}
	}
	/* Every valid code point encodes to valid UTF-8. */
	for (uint32_t cp = 1; cp <= 0x10ffff; cp += (cp < 0x3000 ? 1 : 97)) {
		char s[4];

		if (cp >= 0xd800 && cp <= 0xdfff)
			continue;
		if (!text_is_utf8(s, utf8_put(cp, s))) {
			CHECK_FAILF("U+%04X rejected", cp);
			break;
		}
	}
}

static void test_blank(void)
{
	static const struct {
		const char *s;
		bool blank;
	} cases[] = {
		{ "", true },
		{ " ", true },
		{ " \t\n\r\v\f", true },
		{ "\x1c\x1d\x1e\x1f", true },
		{ "\xe3\x80\x80", true },                  /* U+3000 */
		{ "\xc2\xa0", true },                      /* U+00A0 */
		{ "\xc2\x85", true },                      /* U+0085 */
		{ "\xe2\x80\xa8\xe2\x80\xa9", true },      /* U+2028, U+2029 */
		{ "\xe2\x80\x80\xe2\x80\x8a", true },      /* U+2000, U+200A */
		{ "\xe1\x9a\x80", true },                  /* U+1680 */
		{ "\xe2\x80\xaf\xe2\x81\x9f", true },      /* U+202F, U+205F */
		{ " \xe3\x80\x80\t\xc2\xa0\n ", true },
		{ "a", false },
		{ " a ", false },
		{ "\xe3\x80\x80x", false },
		{ "x\xe3\x80\x80", false },
		{ "\xc2\xa0" "0", false },
		{ "\xe2\x80\x8b", false },                 /* U+200B: not a space */
		{ "\xef\xbb\xbf", false },                 /* BOM */
		{ "\xc3\xa9", false },
		{ "\xff", false },                         /* invalid UTF-8 */
		{ " \xc2", false },                        /* truncated */
		{ "\xe3\x80", false },
		{ "_", false },
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		bool got = blank_of(cases[i].s, strlen(cases[i].s));

		if (got != cases[i].blank)
			CHECK_FAILF("text_is_blank(\"%s\") is %d, want %d", cases[i].s, got,
			     cases[i].blank);
	}
}

static void expect_fold(const char *in, const char *want)
{
	size_t len = strlen(in);
	char *out = malloc(len + 1); /* exactly what the contract asks */
	char *copy = exact_copy(in, len);
	size_t n;

	if (!out)
		abort();
	memset(out, '#', len + 1);
	n = text_fold_name(copy, len, out);
	if (n != strlen(want) || strcmp(out, want) != 0)
		CHECK_FAILF("text_fold_name(\"%s\") = \"%.*s\" (%zu), want \"%s\"", in,
		     (int)(n <= len ? n : len), out, n, want);
	free(out);
	free(copy);
}

static void test_fold(void)
{
	expect_fold("atolog", "atolog");
	expect_fold("  MyProject  ", "myproject");
	expect_fold("\tAtoLog-CORE_2\n", "atolog-core_2");
	expect_fold("My  Big Project", "my  big project");
	expect_fold(" \r\n\t\v\f", "");
	expect_fold("", "");
	expect_fold("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz");
	expect_fold("@[`{", "@[`{");
	/* Non-ASCII bytes pass through: no Unicode case mapping. */
	expect_fold("\xc3\x84" "BC", "\xc3\x84" "bc");
	expect_fold(" \xd0\x9f\xd0\xa0\xd0\x9e\xd0\x95\xd0\x9a\xd0\xa2 X ",
		    "\xd0\x9f\xd0\xa0\xd0\x9e\xd0\x95\xd0\x9a\xd0\xa2 x");
	expect_fold("\xc3\xa9T\xc3\xa9", "\xc3\xa9t\xc3\xa9");
	/* Only ASCII blanks are trimmed, whatever the locale: not U+00A0,
	 * not U+3000, not the 0x1c..0x1f separators. */
	expect_fold("\xc2\xa0" "Ab\xc2\xa0", "\xc2\xa0" "ab\xc2\xa0");
	expect_fold("\xe3\x80\x80X", "\xe3\x80\x80x");
	expect_fold("\x1c" "A\x1f", "\x1c" "a\x1f");
	expect_fold("\x85Z\xa0", "\x85z\xa0");
}

static void expect_trim(const char *in, size_t skip, size_t len)
{
	size_t n = strlen(in);
	char *copy = exact_copy(in, n);
	struct text t = text_trim(copy, n);

	if (t.ptr != copy + skip || t.len != len)
		CHECK_FAILF("text_trim(\"%s\") = +%td,%zu; want +%zu,%zu", in,
		     t.ptr - copy, t.len, skip, len);
	free(copy);
}

static void test_trim(void)
{
	expect_trim("", 0, 0);
	expect_trim("abc", 0, 3);
	expect_trim("  abc  ", 2, 3);
	expect_trim("\t\n\v\f\r a b \r\n", 6, 3);
	expect_trim("     ", 5, 0);
	expect_trim("\xc2\xa0x\xc2\xa0", 0, 5);
	expect_trim("\x1c x", 0, 3);
	expect_trim(" \x1fx", 1, 2);
}

/* ------------------------------------------------------------------------
 * mp_is_bounded.
 */

static bool bounded_of(const void *p, size_t len, unsigned depth)
{
	void *copy = exact_copy(p, len);
	bool ok = mp_is_bounded(copy, len, depth);

	free(copy);
	return ok;
}

/* A packed object must pass; every strict prefix, and the object with a
 * trailing byte, must fail. */
static void expect_bounded_object(const char *what, const msgpack_sbuffer *sb,
				  unsigned depth, bool all_prefixes)
{
	uint8_t *more;

	if (!bounded_of(sb->data, sb->size, depth)) {
		CHECK_FAILF("mp_is_bounded rejects %s (%zu bytes)", what, sb->size);
		return;
	}
	for (size_t cut = 0; cut < sb->size; cut++) {
		if (!all_prefixes && cut != 0 && cut != sb->size / 2 &&
		    cut + 1 != sb->size && cut > 16)
			continue;
		if (bounded_of(sb->data, cut, depth)) {
			CHECK_FAILF("mp_is_bounded accepts %s cut to %zu of %zu bytes", what,
			     cut, sb->size);
			break;
		}
	}
	more = malloc(sb->size + 1);
	if (!more)
		abort();
	memcpy(more, sb->data, sb->size);
	more[sb->size] = 0xc0;
	if (mp_is_bounded(more, sb->size + 1, depth))
		CHECK_FAILF("mp_is_bounded accepts %s followed by a trailing byte", what);
	free(more);
}

static void test_mp_wellformed(void)
{
	static const int64_t ints[] = {
		0, 1, 127, 128, 255, 256, 65535, 65536, INT64_C(4294967295),
		INT64_C(4294967296), INT64_MAX, -1, -32, -33, -128, -129,
		-32768, -32769, INT64_C(-2147483648), INT64_C(-2147483649), INT64_MIN,
	};
	static const size_t lens[] = { 0, 1, 2, 3, 4, 5, 8, 15, 16, 17, 31, 32,
				       255, 256, 65535, 65536, 70000 };
	uint8_t *body = calloc(1, 70000);
	msgpack_sbuffer sb;
	msgpack_packer pk;
	char what[64];

	if (!body)
		abort();
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);

	/* Scalars, at depth 0. */
	msgpack_pack_nil(&pk);
	expect_bounded_object("nil", &sb, 0, true);
	msgpack_sbuffer_clear(&sb);
	msgpack_pack_true(&pk);
	expect_bounded_object("true", &sb, 0, true);
	msgpack_sbuffer_clear(&sb);
	msgpack_pack_false(&pk);
	expect_bounded_object("false", &sb, 0, true);
	msgpack_sbuffer_clear(&sb);
	for (size_t i = 0; i < ARRAY_LEN(ints); i++) {
		msgpack_sbuffer_clear(&sb);
		msgpack_pack_int64(&pk, ints[i]);
		snprintf(what, sizeof(what), "int %" PRId64, ints[i]);
		expect_bounded_object(what, &sb, 0, true);
	}
	msgpack_sbuffer_clear(&sb);
	msgpack_pack_uint64(&pk, UINT64_MAX);
	expect_bounded_object("uint64 max", &sb, 0, true);
	msgpack_sbuffer_clear(&sb);
	msgpack_pack_float(&pk, 1.5f);
	expect_bounded_object("float32", &sb, 0, true);
	msgpack_sbuffer_clear(&sb);
	msgpack_pack_double(&pk, -2.25);
	expect_bounded_object("float64", &sb, 0, true);

	/* Strings, binaries and extensions of every length class. */
	for (size_t i = 0; i < ARRAY_LEN(lens); i++) {
		bool small = lens[i] < 300;

		msgpack_sbuffer_clear(&sb);
		msgpack_pack_str_with_body(&pk, body, lens[i]);
		snprintf(what, sizeof(what), "str of %zu", lens[i]);
		expect_bounded_object(what, &sb, 0, small);
		msgpack_sbuffer_clear(&sb);
		msgpack_pack_bin_with_body(&pk, body, lens[i]);
		snprintf(what, sizeof(what), "bin of %zu", lens[i]);
		expect_bounded_object(what, &sb, 0, small);
		msgpack_sbuffer_clear(&sb);
		msgpack_pack_ext(&pk, lens[i], 7);
		msgpack_pack_ext_body(&pk, body, lens[i]);
		snprintf(what, sizeof(what), "ext of %zu", lens[i]);
		expect_bounded_object(what, &sb, 0, small);
	}

	/* Containers of every length class. */
	static const size_t counts[] = { 0, 1, 15, 16, 17, 65535, 65536 };

	for (size_t i = 0; i < ARRAY_LEN(counts); i++) {
		bool small = counts[i] < 100;

		msgpack_sbuffer_clear(&sb);
		msgpack_pack_array(&pk, counts[i]);
		for (size_t k = 0; k < counts[i]; k++)
			msgpack_pack_int64(&pk, (int64_t)k - 40);
		snprintf(what, sizeof(what), "array of %zu", counts[i]);
		expect_bounded_object(what, &sb, 1, small);
		if (bounded_of(sb.data, sb.size, 0))
			CHECK_FAILF("%s passes at max_depth 0", what);
		msgpack_sbuffer_clear(&sb);
		msgpack_pack_map(&pk, counts[i]);
		for (size_t k = 0; k < counts[i]; k++) {
			msgpack_pack_uint64(&pk, k);
			msgpack_pack_str_with_body(&pk, "v", 1);
		}
		snprintf(what, sizeof(what), "map of %zu", counts[i]);
		expect_bounded_object(what, &sb, 1, small);
		if (bounded_of(sb.data, sb.size, 0))
			CHECK_FAILF("%s passes at max_depth 0", what);
	}

	/* A record-like mix. */
	msgpack_sbuffer_clear(&sb);
	msgpack_pack_map(&pk, 3);
	msgpack_pack_str_with_body(&pk, "a", 1);
	msgpack_pack_array(&pk, 3);
	msgpack_pack_nil(&pk);
	msgpack_pack_double(&pk, 3.5);
	msgpack_pack_map(&pk, 1);
	msgpack_pack_str_with_body(&pk, "x", 1);
	msgpack_pack_bin_with_body(&pk, body, 3);
	msgpack_pack_str_with_body(&pk, "b", 1);
	msgpack_pack_ext(&pk, 16, -1);
	msgpack_pack_ext_body(&pk, body, 16);
	msgpack_pack_int64(&pk, -5);
	msgpack_pack_array(&pk, 0);
	expect_bounded_object("a mixed map", &sb, 3, true);
	CHECK(!bounded_of(sb.data, sb.size, 2));

	msgpack_sbuffer_destroy(&sb);
	free(body);
}

static void test_mp_crafted(void)
{
	static const struct {
		const char *what;
		const char *bytes;
		size_t len;
		bool ok;
	} cases[] = {
		{ "empty buffer", BYTES(""), false },
		{ "0xc1", BYTES("\xc1"), false },
		{ "0xc1 in an array", BYTES("\x92\x01\xc1"), false },
		{ "two objects", BYTES("\x01\x02"), false },
		{ "map then nil", BYTES("\x80\xc0"), false },
		{ "array32 of 0xffffffff", BYTES("\xdd\xff\xff\xff\xff\x01\x02\x03"), false },
		{ "array16 of 0xffff", BYTES("\xdc\xff\xff\x01\x02"), false },
		{ "array32 header cut", BYTES("\xdd\xff\xff"), false },
		{ "map32 of 0xffffffff", BYTES("\xdf\xff\xff\xff\xff\x01\x02\x03\x04"), false },
		{ "map16 of 0xffff", BYTES("\xde\xff\xff\x01\x02"), false },
		{ "map32 header cut", BYTES("\xdf\x00"), false },
		{ "fixmap with a key only", BYTES("\x81\x01"), false },
		{ "fixmap of 2 with 3 items", BYTES("\x82\x01\x02\x03"), false },
		{ "fixarray of 3 with 2", BYTES("\x93\x01\x02"), false },
		{ "map32 of 1, exact", BYTES("\xdf\x00\x00\x00\x01\x01\x02"), true },
		{ "array32 of 2, exact", BYTES("\xdd\x00\x00\x00\x02\xc0\xc3"), true },
		{ "str32 past the end", BYTES("\xdb\xff\xff\xff\xff" "abc"), false },
		{ "str32 one short", BYTES("\xdb\x00\x00\x00\x04" "abc"), false },
		{ "str32 exact", BYTES("\xdb\x00\x00\x00\x03" "abc"), true },
		{ "str16 past the end", BYTES("\xda\x01\x00" "abc"), false },
		{ "str8 past the end", BYTES("\xd9\x05" "abc"), false },
		{ "str8 length cut", BYTES("\xd9"), false },
		{ "fixstr past the end", BYTES("\xa5" "abc"), false },
		{ "bin32 past the end", BYTES("\xc6\xff\xff\xff\xff\x00"), false },
		{ "bin32 exact", BYTES("\xc6\x00\x00\x00\x01\x00"), true },
		{ "bin16 past the end", BYTES("\xc5\x00\x09" "12345678"), false },
		{ "bin8 past the end", BYTES("\xc4\x02\x00"), false },
		{ "bin32 length cut", BYTES("\xc6\x00\x00"), false },
		{ "ext32 past the end", BYTES("\xc9\xff\xff\xff\xff\x01\x00"), false },
		{ "ext32 missing type", BYTES("\xc9\x00\x00\x00\x00"), false },
		{ "ext32 exact", BYTES("\xc9\x00\x00\x00\x01\x01\xaa"), true },
		{ "ext16 past the end", BYTES("\xc8\x00\x05\x01\xaa"), false },
		{ "ext8 one short", BYTES("\xc7\x03\x01\xaa\xbb"), false },
		{ "ext8 exact", BYTES("\xc7\x02\x05\xaa\xbb"), true },
		{ "ext8 of 0", BYTES("\xc7\x00\x05"), true },
		{ "ext8 of 0 no type", BYTES("\xc7\x00"), false },
		{ "fixext1 cut", BYTES("\xd4\x01"), false },
		{ "fixext2 cut", BYTES("\xd5\x01\x00"), false },
		{ "fixext4 cut", BYTES("\xd6\x01\x00\x00\x00"), false },
		{ "fixext8 cut", BYTES("\xd7\x01\x00\x00\x00\x00\x00\x00\x00"), false },
		{ "fixext16 cut", BYTES("\xd8\x01" "012345678901234"), false },
		{ "fixext16 exact", BYTES("\xd8\x01" "0123456789012345"), true },
		{ "uint8 cut", BYTES("\xcc"), false },
		{ "uint16 cut", BYTES("\xcd\x01"), false },
		{ "uint32 cut", BYTES("\xce\x01\x02\x03"), false },
		{ "uint64 cut", BYTES("\xcf\x01\x02\x03\x04\x05\x06\x07"), false },
		{ "int8 cut", BYTES("\xd0"), false },
		{ "int16 cut", BYTES("\xd1\xff"), false },
		{ "int32 cut", BYTES("\xd2\xff\xff\xff"), false },
		{ "int64 cut", BYTES("\xd3\xff\xff\xff\xff\xff\xff\xff"), false },
		{ "float32 cut", BYTES("\xca\x3f\xc0\x00"), false },
		{ "float64 cut", BYTES("\xcb\x40\x09\x21\xfb\x54\x44\x2d"), false },
		{ "float64 exact", BYTES("\xcb\x40\x09\x21\xfb\x54\x44\x2d\x18"), true },
		{ "array with a cut float", BYTES("\x92\xc0\xcb\x00\x00"), false },
		{ "negative fixint", BYTES("\xe0"), true },
		{ "positive fixint", BYTES("\x7f"), true },
	};
	struct timespec t0;

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		bool got = bounded_of(cases[i].bytes, cases[i].len, 4);

		if (got != cases[i].ok)
			CHECK_FAILF("mp_is_bounded(%s) is %d, want %d", cases[i].what, got,
			     cases[i].ok);
	}

	/* The huge counts are refused by arithmetic, not by walking or
	 * allocating: many calls take no measurable time. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < 20000; i++) {
		CHECK(!mp_is_bounded("\xdd\xff\xff\xff\xff\x01", 6, 25));
		CHECK(!mp_is_bounded("\xdf\xff\xff\xff\xff\x01\x02", 7, 25));
		CHECK(!mp_is_bounded("\xdb\xff\xff\xff\xff" "a", 6, 25));
		CHECK(!mp_is_bounded("\xc6\xff\xff\xff\xff" "a", 6, 25));
		CHECK(!mp_is_bounded("\xc9\xff\xff\xff\xff\x01" "a", 7, 25));
	}
	CHECK(elapsed_s(&t0) < 2.0);
	/* An honest array of one million nils is walked, and quickly. */
	{
		size_t n = 1000000;
		uint8_t *big = malloc(5 + n);

		if (!big)
			abort();
		big[0] = 0xdd;
		big[1] = (uint8_t)(n >> 24);
		big[2] = (uint8_t)(n >> 16);
		big[3] = (uint8_t)(n >> 8);
		big[4] = (uint8_t)n;
		memset(big + 5, 0xc0, n);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		CHECK(mp_is_bounded(big, 5 + n, 1));
		CHECK(!mp_is_bounded(big, 4 + n, 1));
		big[4]++;
		CHECK(!mp_is_bounded(big, 5 + n, 1));
		CHECK(elapsed_s(&t0) < 2.0);
		free(big);
	}
}

static void test_mp_depth(void)
{
	uint8_t buf[160];

	for (unsigned d = 1; d <= 64; d++) {
		/* d nested arrays: d-1 one-element arrays around an empty one. */
		memset(buf, 0x91, d - 1);
		buf[d - 1] = 0x90;
		if (!bounded_of(buf, d, d))
			CHECK_FAILF("%u nested arrays rejected at max_depth %u", d, d);
		if (!bounded_of(buf, d, d + 7))
			CHECK_FAILF("%u nested arrays rejected at max_depth %u", d, d + 7);
		if (bounded_of(buf, d, d - 1))
			CHECK_FAILF("%u nested arrays accepted at max_depth %u", d, d - 1);
		/* d nested maps: {0: {0: ... {0: 1}}} */
		for (unsigned k = 0; k < d; k++) {
			buf[2 * k] = 0x81;
			buf[2 * k + 1] = 0x00;
		}
		buf[2 * d] = 0x01;
		if (!bounded_of(buf, 2 * d + 1, d))
			CHECK_FAILF("%u nested maps rejected at max_depth %u", d, d);
		if (bounded_of(buf, 2 * d + 1, d - 1))
			CHECK_FAILF("%u nested maps accepted at max_depth %u", d, d - 1);
	}
	/* Depth counts along the deepest branch, not the first one. */
	CHECK(bounded_of("\x93\x01\x91\x90\x02", 5, 3));
	CHECK(!bounded_of("\x93\x01\x91\x90\x02", 5, 2));
	/* A map key may itself be a container and counts for depth. */
	CHECK(bounded_of("\x81\x91\x01\x02", 4, 2));
	CHECK(!bounded_of("\x81\x91\x01\x02", 4, 1));
	/* Scalars have depth 0. */
	CHECK(bounded_of("\x05", 1, 0));
}

/* Packs a random msgpack object; returns its container nesting. */
static unsigned pack_random_object(msgpack_packer *pk, unsigned depth_left)
{
	static const size_t lens[] = { 0, 1, 2, 3, 4, 5, 8, 16, 17, 31, 32, 40 };
	static const uint8_t body[40];
	unsigned deepest = 0, d;
	size_t n;

	switch (check_rand_below(depth_left ? 13 : 10)) {
	case 0:
		msgpack_pack_nil(pk);
		return 0;
	case 1:
		if (check_rand_below(2))
			msgpack_pack_true(pk);
		else
			msgpack_pack_false(pk);
		return 0;
	case 2:
		msgpack_pack_int64(pk, (int64_t)(check_rand() >> (1 + check_rand_below(63))) *
					       (check_rand_below(2) ? 1 : -1));
		return 0;
	case 3:
		msgpack_pack_uint64(pk, check_rand() >> check_rand_below(64));
		return 0;
	case 4:
		msgpack_pack_double(pk, (double)check_rand() / 7.0);
		return 0;
	case 5:
		msgpack_pack_float(pk, (float)check_rand_below(1000) / 8.0f);
		return 0;
	case 6:
		n = lens[check_rand_below(ARRAY_LEN(lens))];
		msgpack_pack_str_with_body(pk, body, n);
		return 0;
	case 7:
		n = lens[check_rand_below(ARRAY_LEN(lens))];
		msgpack_pack_bin_with_body(pk, body, n);
		return 0;
	case 8:
	case 9:
		n = lens[check_rand_below(ARRAY_LEN(lens))];
		msgpack_pack_ext(pk, n, (int8_t)check_rand());
		msgpack_pack_ext_body(pk, body, n);
		return 0;
	case 10:
	case 11:
		n = check_rand_below(5);
		msgpack_pack_array(pk, n);
		for (size_t i = 0; i < n; i++) {
			d = pack_random_object(pk, depth_left - 1);
			deepest = d > deepest ? d : deepest;
		}
		return deepest + 1;
	default:
		n = check_rand_below(4);
		msgpack_pack_map(pk, n);
		for (size_t i = 0; i < 2 * n; i++) {
			d = pack_random_object(pk, depth_left - 1);
			deepest = d > deepest ? d : deepest;
		}
		return deepest + 1;
	}
}

/* What msgpack-c makes of the bytes: true when it unpacks exactly one
 * object covering the whole buffer. Only called on bounded input. */
static bool msgpack_c_accepts(const void *p, size_t len)
{
	msgpack_unpacked u;
	size_t off = 0;
	bool ok;

	msgpack_unpacked_init(&u);
	ok = msgpack_unpack_next(&u, p, len, &off) == MSGPACK_UNPACK_SUCCESS &&
	     off == len;
	msgpack_unpacked_destroy(&u);
	return ok;
}

static void test_mp_random(void)
{
	static const uint8_t alphabet[] = {
		0x00, 0x01, 0x7f, 0x80, 0x81, 0x82, 0x8f, 0x90, 0x91, 0x92, 0x9f,
		0xa0, 0xa1, 0xa3, 0xbf, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6,
		0xc7, 0xc8, 0xc9, 0xca, 0xcb, 0xcc, 0xcd, 0xce, 0xcf, 0xd0, 0xd1,
		0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xdb, 0xdc,
		0xdd, 0xde, 0xdf, 0xe0, 0xff,
	};
	msgpack_sbuffer sb;
	msgpack_packer pk;
	uint8_t buf[48];
	int bad = 0, accepted = 0;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	/* Random well-formed objects: accepted at their exact depth. */
	for (int i = 0; i < 3000 && bad < 5; i++) {
		unsigned depth;

		msgpack_sbuffer_clear(&sb);
		depth = pack_random_object(&pk, (unsigned)check_rand_below(6));
		if (!msgpack_c_accepts(sb.data, sb.size)) {
			CHECK_FAILF("msgpack-c refuses random object %d", i);
			bad++;
		}
		if (!bounded_of(sb.data, sb.size, depth) ||
		    (depth > 0 && bounded_of(sb.data, sb.size, depth - 1))) {
			CHECK_FAILF("random object %d of depth %u misjudged", i, depth);
			bad++;
			continue;
		}
		if (sb.size > 0 && bounded_of(sb.data, check_rand_below(sb.size), 8)) {
			CHECK_FAILF("a strict prefix of random object %d is accepted", i);
			bad++;
		}
	}
	/* Random byte soup: whenever the walk accepts, msgpack-c must parse
	 * exactly one object. (The converse is not tried: on unbounded input
	 * msgpack-c may allocate for billions of elements, which is the point
	 * of the walk.) */
	for (int i = 0; i < 40000 && bad < 10; i++) {
		size_t len = 1 + check_rand_below(sizeof(buf));
		bool walk;

		for (size_t k = 0; k < len; k++)
			buf[k] = check_rand_below(3) ? alphabet[check_rand_below(sizeof(alphabet))]
						     : (uint8_t)check_rand();
		walk = bounded_of(buf, len, 16);
		accepted += walk;
		if (walk && !msgpack_c_accepts(buf, len)) {
			CHECK_FAILF("mp_is_bounded accepts %zu bytes msgpack-c refuses", len);
			bad++;
		}
	}
	/* The soup is not all rejected at the first byte. */
	CHECK(accepted > 200);
	msgpack_sbuffer_destroy(&sb);
}

/* ------------------------------------------------------------------------
 * Records: validation, encoding and decoding.
 */

static const char *const FULL_CONTEXT =
	"{\"system\":\"you are a careful agent\","
	"\"files\":[{\"path\":\"a.c\",\"lines\":[1,2,3]},{\"path\":\"b.c\",\"lines\":[]}],"
	"\"n\":-42,\"zero\":0,\"big\":9223372036854775807,"
	"\"nzero\":-0.0,\"dmax\":1.7976931348623157e+308,"
	"\"small\":-9223372036854775808,\"pi\":3.141592653589793,"
	"\"tiny\":-2.5e-300,\"half\":0.5,\"t\":true,\"f\":false,\"z\":null,"
	"\"empty_obj\":{},\"empty_arr\":[],\"empty_str\":\"\","
	"\"uni\":\"\\u00e9\\u4e2d\\ud83d\\ude00\","
	"\"esc\":\"quote\\\" back\\\\ nl\\n tab\\t\","
	"\"nested\":{\"a\":{\"b\":[[null,{\"c\":[true]}]]}}}";

static const char *const MEMS[] = { "mem-1", "\xe3\x83\xa1\xe3\x83\xa2-2", "" };
static const char *const CHUNKS[] = { "chunk-a", "chunk-b" };

static void set_full_interaction(atolog_interaction *src)
{
	memset(src, 0, sizeof(*src));
	src->prompt = "Explain \xe2\x82\xac and \xf0\x9f\x98\x80 \xe2\x80\x94 please";
	src->response = "";
	src->response_summary = "short \xc3\xa9t\xc3\xa9";
	src->project = "Atolog-\xd0\x9f\xd1\x80\xd0\xbe\xd0\xb5\xd0\xba\xd1\x82";
	src->client = "claude-code";
	src->session_id = "sess-\xe6\x97\xa5\xe6\x9c\xac";
	src->memories_used = MEMS;
	src->n_memories_used = ARRAY_LEN(MEMS);
	src->chunks_used = CHUNKS;
	src->n_chunks_used = ARRAY_LEN(CHUNKS);
	src->context_pack = FULL_CONTEXT;
}

/* Compares a flattened interaction with the source it came from. */
static void expect_same_interaction(const char *what, const atolog_interaction *got,
				    const atolog_interaction *want)
{
#define SAME_STR(field)                                                       \
	do {                                                                  \
		const char *g_ = got->field ? got->field : "(null)";          \
		const char *w_ = want->field ? want->field : "";              \
		if (strcmp(g_, w_) != 0)                                      \
			CHECK_FAILF("%s: " #field " is \"%s\", want \"%s\"", what, g_, w_); \
	} while (0)
	SAME_STR(prompt);
	SAME_STR(response);
	SAME_STR(response_summary);
	SAME_STR(project);
	SAME_STR(client);
	SAME_STR(session_id);
#undef SAME_STR
	if (got->n_memories_used != want->n_memories_used) {
		CHECK_FAILF("%s: %zu memories_used, want %zu", what, got->n_memories_used,
		     want->n_memories_used);
	} else {
		for (size_t i = 0; i < want->n_memories_used; i++) {
			if (strcmp(got->memories_used[i], want->memories_used[i]) != 0)
				CHECK_FAILF("%s: memories_used[%zu] is \"%s\", want \"%s\"", what,
				     i, got->memories_used[i], want->memories_used[i]);
		}
	}
	if (got->n_chunks_used != want->n_chunks_used) {
		CHECK_FAILF("%s: %zu chunks_used, want %zu", what, got->n_chunks_used,
		     want->n_chunks_used);
	} else {
		for (size_t i = 0; i < want->n_chunks_used; i++) {
			if (strcmp(got->chunks_used[i], want->chunks_used[i]) != 0)
				CHECK_FAILF("%s: chunks_used[%zu] is \"%s\", want \"%s\"", what, i,
				     got->chunks_used[i], want->chunks_used[i]);
		}
	}
	if (!got->context_pack ||
	    !json_text_equal(got->context_pack,
			     want->context_pack ? want->context_pack : "{}"))
		CHECK_FAILF("%s: context_pack is %s, want %s", what,
		     got->context_pack ? got->context_pack : "(null)",
		     want->context_pack ? want->context_pack : "{}");
}

/* Validates src, stamps id and time, encodes, decodes, flattens, and
 * compares everything with src. */
static void roundtrip_record(const char *what, const atolog_interaction *src,
			     const uint8_t id[UUID_SIZE], int64_t created_at,
			     uint64_t seq)
{
	struct record_input in;
	struct record_view view;
	atolog_interaction *rec = NULL;
	msgpack_sbuffer sb;
	char id_text[ATOLOG_ID_TEXT_LEN + 1];
	void *payload;
	int rc;

	err_begin(NULL);
	rc = record_input_init(&in, src);
	if (rc != ATOLOG_OK) {
		CHECK_FAILF("%s: record_input_init = %d: %s", what, rc, atolog_errmsg(NULL));
		return;
	}
	memcpy(in.fields.id, id, UUID_SIZE);
	in.fields.created_at = created_at;
	msgpack_sbuffer_init(&sb);
	CHECK_RC(record_encode(&in.fields, &sb), ATOLOG_OK, NULL);
	CHECK(mp_is_bounded(sb.data, sb.size, 1 + ATOLOG_CONTEXT_MAX_DEPTH));

	/* Flattening the input directly gives the same record. */
	CHECK_RC(record_fields_flatten(&in.fields, seq, &rec), ATOLOG_OK, NULL);
	if (rec) {
		expect_same_interaction(what, rec, src);
		atolog_interaction_free(rec);
		rec = NULL;
	}
	record_input_free(&in);

	payload = exact_copy(sb.data, sb.size);
	rc = record_view_decode(&view, payload, sb.size);
	if (rc != ATOLOG_OK) {
		CHECK_FAILF("%s: record_view_decode = %d: %s", what, rc, atolog_errmsg(NULL));
	} else {
		CHECK(memcmp(view.fields.id, id, UUID_SIZE) == 0);
		CHECK_INT(view.fields.created_at, created_at);
		CHECK(view.fields.context_bytes.len == 0);
		CHECK_RC(record_fields_flatten(&view.fields, seq, &rec), ATOLOG_OK, NULL);
	}
	if (rec) {
		uuid_format(id, id_text);
		CHECK_STR(rec->id, id_text);
		CHECK_INT(rec->has_created_at, 1);
		CHECK_INT(rec->created_at, created_at);
		CHECK_INT(rec->seq, seq);
		expect_same_interaction(what, rec, src);
		atolog_interaction_free(rec);
	}
	/* Re-encoding a decoded view (context from msgpack) keeps it all. */
	if (rc == ATOLOG_OK) {
		msgpack_sbuffer again;
		struct record_view view2;

		msgpack_sbuffer_init(&again);
		CHECK_RC(record_encode(&view.fields, &again), ATOLOG_OK, NULL);
		CHECK_RC(record_view_decode(&view2, again.data, again.size), ATOLOG_OK, NULL);
		rec = NULL;
		CHECK_RC(record_fields_flatten(&view2.fields, seq, &rec), ATOLOG_OK, NULL);
		if (rec) {
			expect_same_interaction(what, rec, src);
			atolog_interaction_free(rec);
		}
		record_view_free(&view2);
		msgpack_sbuffer_destroy(&again);
	}
	record_view_free(&view);
	free(payload);
	msgpack_sbuffer_destroy(&sb);
}

static void rand_id(uint8_t id[UUID_SIZE])
{
	for (size_t i = 0; i < UUID_SIZE; i++)
		id[i] = (uint8_t)check_rand();
}

static void test_record_roundtrip(void)
{
	atolog_interaction src;
	uint8_t id[UUID_SIZE];

	set_full_interaction(&src);
	rand_id(id);
	roundtrip_record("full record", &src, id, T_2026_04_01_NOON * US + 123456, 77);

	/* Empty and absent things. */
	src.n_chunks_used = 0;
	src.chunks_used = NULL;
	src.memories_used = NULL;
	src.n_memories_used = 0;
	src.response = NULL;
	src.response_summary = "";
	src.project = NULL;
	src.client = "";
	src.session_id = NULL;
	src.context_pack = NULL;
	rand_id(id);
	roundtrip_record("sparse record", &src, id, -1, 0);

	src.context_pack = "{}";
	roundtrip_record("empty context", &src, id, TIME_MIN_US, UINT64_MAX);
	src.context_pack = "  {\"a\" : [ 1 , 2 ] }  ";
	roundtrip_record("spaced context", &src, id, TIME_MAX_US, 1);
	src.prompt = "x";
	roundtrip_record("one-byte prompt", &src, id, TIME_MIN_US, 1);
	src.prompt = "a\xe3\x80\x80";
	roundtrip_record("prompt ending in U+3000", &src, id, TIME_MAX_US - 1, 2);

	/* Random records. */
	for (int i = 0; i < 300; i++) {
		char *strs[6], *refs[8], ctx[128];
		const char *crefs[8];
		size_t n_mem = check_rand_below(5), n_chunk = check_rand_below(4);

		for (size_t k = 0; k < 6; k++)
			strs[k] = rand_utf8(k == 0 ? 40 : 12);
		for (size_t k = 0; k < n_mem + n_chunk; k++)
			crefs[k] = refs[k] = rand_utf8(10);
		snprintf(ctx, sizeof(ctx), "{\"i\":%d,\"r\":%" PRId64 ",\"l\":[%d,\"s\"]}",
			 i, (int64_t)check_rand(), i - 150);
		memset(&src, 0, sizeof(src));
		/* A prompt must not be blank: a blank one becomes "p". */
		src.prompt = strs[0];
		if (!strs[0][0] || text_is_blank(strs[0], strlen(strs[0]))) {
			free(strs[0]);
			strs[0] = strdup("p");
			src.prompt = strs[0];
		}
		src.response = strs[1];
		src.response_summary = strs[2];
		src.project = strs[3];
		src.client = strs[4];
		src.session_id = strs[5];
		src.memories_used = crefs;
		src.n_memories_used = n_mem;
		src.chunks_used = crefs + n_mem;
		src.n_chunks_used = n_chunk;
		src.context_pack = check_rand_below(4) ? ctx : NULL;
		rand_id(id);
		roundtrip_record("random record", &src, id,
				 TIME_MIN_US + (int64_t)check_rand_below(
						       (uint64_t)(TIME_MAX_US - TIME_MIN_US)),
				 check_rand());
		for (size_t k = 0; k < 6; k++)
			free(strs[k]);
		for (size_t k = 0; k < n_mem + n_chunk; k++)
			free(refs[k]);
	}
}

/* record_input_init must fail with want and a message containing text. */
static void expect_input_error(const char *what, const atolog_interaction *src,
			       int want, const char *text)
{
	struct record_input in;
	int rc;

	err_begin(NULL);
	rc = record_input_init(&in, src);
	if (rc != want) {
		CHECK_FAILF("%s: record_input_init = %d (%s), want %d (%s)", what, rc,
		     atolog_strerror(rc), want, atolog_strerror(want));
	} else if (!strstr(atolog_errmsg(NULL), text)) {
		CHECK_FAILF("%s: message \"%s\" lacks \"%s\"", what, atolog_errmsg(NULL), text);
	}
	if (rc == ATOLOG_OK)
		record_input_free(&in);
}

static void expect_input_ok(const char *what, const atolog_interaction *src)
{
	struct record_input in;
	int rc;

	err_begin(NULL);
	rc = record_input_init(&in, src);
	if (rc != ATOLOG_OK)
		CHECK_FAILF("%s: record_input_init = %d: %s", what, rc, atolog_errmsg(NULL));
	else
		record_input_free(&in);
}

static void test_record_validation(void)
{
	static const char *const blanks[] = {
		"", " ", "\t\n\r ", "\xe3\x80\x80", " \xc2\xa0 \xe3\x80\x80\t",
	};
	const size_t text_max = ATOLOG_TEXT_MAX_BYTES, name_max = ATOLOG_NAME_MAX_BYTES;
	atolog_interaction src;
	char *big = malloc(text_max + 2);
	const char **many = malloc((ATOLOG_REFS_MAX + 1) * sizeof(char *));
	const char *with_null[] = { "ok", NULL, "ok" };
	const char *bad_utf8[] = { "ok", "bad\xff" };
	struct {
		const char *field;
		const char **slot;
	} names[3];

	if (!big || !many)
		abort();
	memset(&src, 0, sizeof(src));
	expect_input_error("NULL interaction", NULL, ATOLOG_INVALID,
			   "prompt must be non-empty");
	expect_input_error("NULL prompt", &src, ATOLOG_INVALID, "prompt must be non-empty");
	for (size_t i = 0; i < ARRAY_LEN(blanks); i++) {
		src.prompt = blanks[i];
		expect_input_error("blank prompt", &src, ATOLOG_INVALID,
				   "prompt must be non-empty");
	}
	src.prompt = "\xe3\x80\x80x";
	expect_input_ok("prompt with an ideographic space and a letter", &src);

	/* Invalid UTF-8, field by field. */
	set_full_interaction(&src);
	src.prompt = "bad\xc0\x80";
	expect_input_error("prompt utf8", &src, ATOLOG_INVALID, "prompt");
	set_full_interaction(&src);
	src.response = "\xed\xa0\x80";
	expect_input_error("response utf8", &src, ATOLOG_INVALID, "response");
	set_full_interaction(&src);
	src.response_summary = "\xf4\x90\x80\x80";
	expect_input_error("summary utf8", &src, ATOLOG_INVALID, "response_summary");
	set_full_interaction(&src);
	src.project = "\x80";
	expect_input_error("project utf8", &src, ATOLOG_INVALID, "project");
	set_full_interaction(&src);
	src.client = "c\xc3";
	expect_input_error("client utf8", &src, ATOLOG_INVALID, "client");
	set_full_interaction(&src);
	src.session_id = "\xff";
	expect_input_error("session utf8", &src, ATOLOG_INVALID, "session_id");
	set_full_interaction(&src);
	src.memories_used = bad_utf8;
	src.n_memories_used = 2;
	expect_input_error("memory utf8", &src, ATOLOG_INVALID, "memories_used[1]");
	set_full_interaction(&src);
	src.chunks_used = bad_utf8;
	src.n_chunks_used = 2;
	expect_input_error("chunk utf8", &src, ATOLOG_INVALID, "chunks_used[1]");

	/* NULL refs. */
	set_full_interaction(&src);
	src.memories_used = with_null;
	src.n_memories_used = 3;
	expect_input_error("NULL memory", &src, ATOLOG_INVALID, "memories_used[1]");
	set_full_interaction(&src);
	src.chunks_used = with_null;
	src.n_chunks_used = 2;
	expect_input_error("NULL chunk", &src, ATOLOG_INVALID, "chunks_used[1]");
	set_full_interaction(&src);
	src.chunks_used = NULL;
	src.n_chunks_used = 1;
	expect_input_error("NULL chunk array", &src, ATOLOG_INVALID, "chunks_used");

	/* Size limits: exactly at the limit passes, one more is TOOBIG. */
	memset(big, 'a', text_max + 1);
	big[text_max + 1] = '\0';
	set_full_interaction(&src);
	src.prompt = big;
	expect_input_error("prompt over limit", &src, ATOLOG_TOOBIG, "prompt");
	src.prompt = "p";
	src.response = big;
	expect_input_error("response over limit", &src, ATOLOG_TOOBIG, "response");
	src.response = "";
	src.response_summary = big;
	expect_input_error("summary over limit", &src, ATOLOG_TOOBIG, "response_summary");
	big[text_max] = '\0';
	expect_input_ok("summary at the limit", &src);
	src.response_summary = "";
	src.prompt = big;
	expect_input_ok("prompt at the limit", &src);

	names[0].field = "project";
	names[0].slot = &src.project;
	names[1].field = "client";
	names[1].slot = &src.client;
	names[2].field = "session_id";
	names[2].slot = &src.session_id;
	for (size_t i = 0; i < ARRAY_LEN(names); i++) {
		set_full_interaction(&src);
		big[name_max + 1] = '\0';
		*names[i].slot = big;
		expect_input_error(names[i].field, &src, ATOLOG_TOOBIG, names[i].field);
		big[name_max] = '\0';
		expect_input_ok(names[i].field, &src);
		big[name_max] = 'a';
		big[name_max + 1] = 'a';
	}
	CHECK_RC(record_check_name("project", big, name_max), ATOLOG_OK, NULL);
	CHECK_RC(record_check_name("project", big, name_max + 1), ATOLOG_TOOBIG, NULL);
	CHECK_RC(record_check_name("client", "\xff", 1), ATOLOG_INVALID, NULL);
	CHECK_MSG(NULL, "client");

	/* One ref over its byte limit. */
	set_full_interaction(&src);
	big[ATOLOG_REF_MAX_BYTES + 1] = '\0';
	many[0] = big;
	src.memories_used = many;
	src.n_memories_used = 1;
	expect_input_error("long memory", &src, ATOLOG_TOOBIG, "memories_used");
	big[ATOLOG_REF_MAX_BYTES] = '\0';
	expect_input_ok("memory at the limit", &src);

	/* Ref counts. */
	for (size_t i = 0; i <= ATOLOG_REFS_MAX; i++)
		many[i] = "m";
	set_full_interaction(&src);
	src.memories_used = many;
	src.n_memories_used = ATOLOG_REFS_MAX + 1;
	expect_input_error("too many memories", &src, ATOLOG_TOOBIG, "memories_used");
	src.n_memories_used = ATOLOG_REFS_MAX;
	expect_input_ok("memories at the limit", &src);
	src.n_memories_used = 0;
	src.chunks_used = many;
	src.n_chunks_used = ATOLOG_REFS_MAX + 1;
	expect_input_error("too many chunks", &src, ATOLOG_TOOBIG, "chunks_used");
	src.n_chunks_used = ATOLOG_REFS_MAX;
	src.memories_used = many;
	src.n_memories_used = ATOLOG_REFS_MAX;
	expect_input_ok("both at the limit", &src);

	/* context_pack must be a JSON object. */
	static const char *const not_objects[] = {
		"[]", "3", "\"s\"", "", "{", "not json", "{} {}", "{\"a\":}",
		"[{}]", "true", "{\"a\":1,}",
	};
	set_full_interaction(&src);
	for (size_t i = 0; i < ARRAY_LEN(not_objects); i++) {
		src.context_pack = not_objects[i];
		expect_input_error(not_objects[i], &src, ATOLOG_INVALID, "context_pack");
	}
	src.context_pack = "{\"k\":\"\xff\"}";
	expect_input_error("context with bad utf8", &src, ATOLOG_INVALID, "context_pack");

	free(big);
	free(many);
}

/* A context_pack of depth levels, alternating objects and arrays. */
static char *nested_context(unsigned depth)
{
	char *s = malloc(16 * depth + 16), *p = s;

	if (!s)
		abort();
	for (unsigned i = 0; i < depth; i++)
		p += sprintf(p, i % 2 == 0 ? "{\"k%u\":" : "[%u,", i);
	p += sprintf(p, "\"leaf\"");
	for (unsigned i = depth; i-- > 0;)
		*p++ = i % 2 == 0 ? '}' : ']';
	*p = '\0';
	return s;
}

static void test_record_context_depth(void)
{
	const unsigned max = ATOLOG_CONTEXT_MAX_DEPTH;
	atolog_interaction src;
	uint8_t id[UUID_SIZE];
	char *ok = nested_context(max), *deep = nested_context(max + 1);
	char *deeper = nested_context(200);
	msgpack_sbuffer sb;

	/* The streaming encoder's own depth rule. */
	msgpack_sbuffer_init(&sb);
	CHECK_RC(context_json_to_msgpack(ok, strlen(ok), &sb), ATOLOG_OK, NULL);
	msgpack_sbuffer_clear(&sb);
	CHECK_RC(context_json_to_msgpack(deep, strlen(deep), &sb), ATOLOG_TOOBIG, NULL);
	msgpack_sbuffer_clear(&sb);
	CHECK_RC(context_json_to_msgpack(deeper, strlen(deeper), &sb), ATOLOG_TOOBIG,
		 NULL);
	msgpack_sbuffer_destroy(&sb);

	memset(&src, 0, sizeof(src));
	src.prompt = "deep";
	src.context_pack = ok;
	expect_input_ok("context at the max depth", &src);
	rand_id(id);
	roundtrip_record("context at the max depth", &src, id, 0, 1);
	src.context_pack = deep;
	expect_input_error("context one level too deep", &src, ATOLOG_TOOBIG,
			   "context_pack");
	src.context_pack = deeper;
	expect_input_error("context far too deep", &src, ATOLOG_TOOBIG, "context_pack");

	free(ok);
	free(deep);
	free(deeper);
}

static void test_record_encode_toobig(void)
{
	const size_t text_max = ATOLOG_TEXT_MAX_BYTES;
	char *big = malloc(text_max + 1);
	atolog_interaction src;
	struct record_input in;
	msgpack_sbuffer sb;

	if (!big)
		abort();
	memset(big, 'z', text_max);
	big[text_max] = '\0';
	memset(&src, 0, sizeof(src));
	src.prompt = big;
	src.response = big;
	CHECK_RC(record_input_init(&in, &src), ATOLOG_OK, NULL);
	msgpack_sbuffer_init(&sb);
	err_begin(NULL);
	CHECK_RC(record_encode(&in.fields, &sb), ATOLOG_TOOBIG, NULL);
	CHECK_MSG(NULL, "record");
	record_input_free(&in);
	msgpack_sbuffer_destroy(&sb);
	free(big);
}

/* ------------------------------------------------------------------------
 * Records written by hand: forward compatibility and corruption.
 */

static const uint8_t TEST_ID[UUID_SIZE] = {
	0x01, 0x96, 0x4a, 0x3b, 0x2c, 0x1d, 0x7e, 0x0f,
	0x80, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
};
#define TEST_TIME (T_2026_04_01_NOON * US + 654321)

static const char *const STD_KEYS[] = {
	"v", "id", "created_at", "prompt", "response", "response_summary",
	"project", "client", "session_id", "memories_used", "chunks_used",
	"context_pack",
};

static void pk_str(msgpack_packer *pk, const char *s)
{
	msgpack_pack_str_with_body(pk, s, strlen(s));
}

/* The standard value of each record key. */
static void pack_std_value(msgpack_packer *pk, const char *key)
{
	if (!strcmp(key, "v")) {
		msgpack_pack_uint32(pk, RECORD_VERSION);
	} else if (!strcmp(key, "id")) {
		msgpack_pack_bin_with_body(pk, TEST_ID, UUID_SIZE);
	} else if (!strcmp(key, "created_at")) {
		msgpack_pack_int64(pk, TEST_TIME);
	} else if (!strcmp(key, "prompt")) {
		pk_str(pk, "hello");
	} else if (!strcmp(key, "response")) {
		pk_str(pk, "world");
	} else if (!strcmp(key, "response_summary")) {
		pk_str(pk, "sum");
	} else if (!strcmp(key, "project")) {
		pk_str(pk, "proj");
	} else if (!strcmp(key, "client")) {
		pk_str(pk, "cli");
	} else if (!strcmp(key, "session_id")) {
		pk_str(pk, "sess");
	} else if (!strcmp(key, "memories_used")) {
		msgpack_pack_array(pk, 2);
		pk_str(pk, "m1");
		pk_str(pk, "m2");
	} else if (!strcmp(key, "chunks_used")) {
		msgpack_pack_array(pk, 1);
		pk_str(pk, "c1");
	} else if (!strcmp(key, "context_pack")) {
		msgpack_pack_map(pk, 1);
		pk_str(pk, "k");
		msgpack_pack_array(pk, 3);
		msgpack_pack_int64(pk, 1);
		pk_str(pk, "two");
		msgpack_pack_nil(pk);
	}
}

typedef void (*value_packer)(msgpack_packer *pk);

/* Packs the standard record, leaving out the keys in omit (bit i for
 * STD_KEYS[i]) and packing override for the key named over. */
static void pack_record(msgpack_sbuffer *sb, unsigned omit, const char *over,
			value_packer override)
{
	msgpack_packer pk;
	size_t n = 0;

	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	for (size_t i = 0; i < ARRAY_LEN(STD_KEYS); i++)
		n += !(omit & 1u << i);
	msgpack_pack_map(&pk, n);
	for (size_t i = 0; i < ARRAY_LEN(STD_KEYS); i++) {
		if (omit & 1u << i)
			continue;
		pk_str(&pk, STD_KEYS[i]);
		if (over && !strcmp(over, STD_KEYS[i]))
			override(&pk);
		else
			pack_std_value(&pk, STD_KEYS[i]);
	}
}

/* Decodes bytes (in an exact-size copy); checks rc; on success flattens
 * into *out when out is not NULL. */
static int decode_bytes(const void *bytes, size_t len, atolog_interaction **out)
{
	struct record_view view;
	void *copy = exact_copy(bytes, len);
	int rc;

	err_begin(NULL);
	rc = record_view_decode(&view, copy, len);
	if (rc == ATOLOG_OK && out)
		rc = record_fields_flatten(&view.fields, 9, out);
	record_view_free(&view);
	free(copy);
	return rc;
}

static void expect_std_fields(const char *what, const atolog_interaction *rec,
			      unsigned omit)
{
	static const char *const m[] = { "m1", "m2" }, *const c[] = { "c1" };
	atolog_interaction want;
	char id_text[ATOLOG_ID_TEXT_LEN + 1];

	memset(&want, 0, sizeof(want));
#define STD(i, field, value) want.field = (omit & 1u << (i)) ? "" : (value)
	STD(3, prompt, "hello");
	STD(4, response, "world");
	STD(5, response_summary, "sum");
	STD(6, project, "proj");
	STD(7, client, "cli");
	STD(8, session_id, "sess");
#undef STD
	want.context_pack = (omit & 1u << 11) ? NULL : "{\"k\":[1,\"two\",null]}";
	if (!(omit & 1u << 11))
		CHECK_STR(rec->context_pack, "{\"k\":[1,\"two\",null]}");
	else
		CHECK_STR(rec->context_pack, "{}");
	if (!(omit & 1u << 9)) {
		want.memories_used = m;
		want.n_memories_used = 2;
	}
	if (!(omit & 1u << 10)) {
		want.chunks_used = c;
		want.n_chunks_used = 1;
	}
	expect_same_interaction(what, rec, &want);
	uuid_format(TEST_ID, id_text);
	CHECK_STR(rec->id, id_text);
	CHECK_INT(rec->created_at, TEST_TIME);
	CHECK_INT(rec->seq, 9);
}

static void test_record_forward_compat(void)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	atolog_interaction *rec = NULL;
	static const uint8_t blob[5] = { 1, 2, 3, 4, 5 };

	/* The standard hand-packed record decodes to its values. */
	msgpack_sbuffer_init(&sb);
	pack_record(&sb, 0, NULL, NULL);
	CHECK_RC(decode_bytes(sb.data, sb.size, &rec), ATOLOG_OK, NULL);
	if (rec)
		expect_std_fields("hand-packed record", rec, 0);
	atolog_interaction_free(rec);
	rec = NULL;

	/* A newer writer: higher "v", unknown keys of every shape, before,
	 * between and after the known ones, in another key order. */
	msgpack_sbuffer_clear(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, ARRAY_LEN(STD_KEYS) + 6);
	pk_str(&pk, "aa_first");
	msgpack_pack_map(&pk, 2);
	pk_str(&pk, "nested");
	msgpack_pack_array(&pk, 3);
	msgpack_pack_int64(&pk, -7);
	pk_str(&pk, "x");
	msgpack_pack_map(&pk, 1);
	pk_str(&pk, "deep");
	msgpack_pack_nil(&pk);
	pk_str(&pk, "bin");
	msgpack_pack_bin_with_body(&pk, blob, sizeof(blob));
	for (size_t i = ARRAY_LEN(STD_KEYS); i-- > 0;) {
		pk_str(&pk, STD_KEYS[i]);
		if (!strcmp(STD_KEYS[i], "v"))
			msgpack_pack_uint32(&pk, 99);
		else
			pack_std_value(&pk, STD_KEYS[i]);
		if (i == 6) {
			pk_str(&pk, "embedding");
			msgpack_pack_array(&pk, 4);
			for (int k = 0; k < 4; k++)
				msgpack_pack_double(&pk, k * 0.25);
		}
	}
	pk_str(&pk, "zz_ext");
	msgpack_pack_ext(&pk, 5, 42);
	msgpack_pack_ext_body(&pk, blob, sizeof(blob));
	pk_str(&pk, "zz_nil");
	msgpack_pack_nil(&pk);
	pk_str(&pk, "");
	msgpack_pack_true(&pk);
	pk_str(&pk, "prompt_v2");
	msgpack_pack_array(&pk, 0);
	CHECK_RC(decode_bytes(sb.data, sb.size, &rec), ATOLOG_OK, NULL);
	if (rec)
		expect_std_fields("record from a newer writer", rec, 0);
	atolog_interaction_free(rec);
	rec = NULL;

	/* Missing optional keys decode as empty: every subset of them. */
	for (unsigned omit = 0; omit < 1u << 9; omit++) {
		/* bits over v, response..context_pack: 0, 4..11 */
		unsigned mask = (omit & 1u) | (omit >> 1) << 4;
		char what[64];

		msgpack_sbuffer_clear(&sb);
		pack_record(&sb, mask, NULL, NULL);
		snprintf(what, sizeof(what), "record without keys 0x%x", mask);
		rec = NULL;
		CHECK_RC(decode_bytes(sb.data, sb.size, &rec), ATOLOG_OK, NULL);
		if (rec)
			expect_std_fields(what, rec, mask);
		atolog_interaction_free(rec);
	}

	/* Missing required keys are corruption. */
	for (unsigned i = 1; i <= 3; i++) {
		msgpack_sbuffer_clear(&sb);
		pack_record(&sb, 1u << i, NULL, NULL);
		CHECK_RC(decode_bytes(sb.data, sb.size, NULL), ATOLOG_CORRUPT, NULL);
		CHECK_MSG(NULL, "required");
	}
	msgpack_sbuffer_clear(&sb);
	pack_record(&sb, 0xfff, NULL, NULL);
	CHECK_RC(decode_bytes(sb.data, sb.size, NULL), ATOLOG_CORRUPT, NULL);
	msgpack_sbuffer_destroy(&sb);
}

static void v_int(msgpack_packer *pk)
{
	msgpack_pack_int64(pk, 7);
}

static void v_nil(msgpack_packer *pk)
{
	msgpack_pack_nil(pk);
}

static void v_true(msgpack_packer *pk)
{
	msgpack_pack_true(pk);
}

static void v_double(msgpack_packer *pk)
{
	msgpack_pack_double(pk, 1.5);
}

static void v_str(msgpack_packer *pk)
{
	pk_str(pk, "x");
}

static void v_str16(msgpack_packer *pk)
{
	pk_str(pk, "0123456789abcdef");
}

static void v_bin15(msgpack_packer *pk)
{
	msgpack_pack_bin_with_body(pk, TEST_ID, 15);
}

static void v_bin16(msgpack_packer *pk)
{
	msgpack_pack_bin_with_body(pk, TEST_ID, 16);
}

static void v_bin0(msgpack_packer *pk)
{
	msgpack_pack_bin_with_body(pk, TEST_ID, 0);
}

static void v_empty_array(msgpack_packer *pk)
{
	msgpack_pack_array(pk, 0);
}

static void v_empty_map(msgpack_packer *pk)
{
	msgpack_pack_map(pk, 0);
}

static void v_uint_max(msgpack_packer *pk)
{
	msgpack_pack_uint64(pk, UINT64_MAX);
}


static void v_bin17(msgpack_packer *pk)
{
	static const uint8_t b[17];

	msgpack_pack_bin_with_body(pk, b, 17);
}

static void v_array_int(msgpack_packer *pk)
{
	msgpack_pack_array(pk, 2);
	pk_str(pk, "ok");
	msgpack_pack_int64(pk, 1);
}

static void v_array_nil(msgpack_packer *pk)
{
	msgpack_pack_array(pk, 1);
	msgpack_pack_nil(pk);
}

static void v_ext(msgpack_packer *pk)
{
	msgpack_pack_ext(pk, 1, 1);
	msgpack_pack_ext_body(pk, "x", 1);
}

static void test_record_wrong_types(void)
{
	static const struct {
		const char *key;
		value_packer value;
	} cases[] = {
		{ "id", v_int }, { "id", v_bin15 }, { "id", v_bin17 },
		{ "id", v_bin0 }, { "id", v_str16 }, { "id", v_nil },
		{ "id", v_ext },
		{ "created_at", v_str }, { "created_at", v_double },
		{ "created_at", v_nil }, { "created_at", v_true },
		{ "created_at", v_uint_max }, { "created_at", v_bin16 },
		{ "prompt", v_int }, { "prompt", v_nil }, { "prompt", v_bin16 },
		{ "prompt", v_empty_array }, { "prompt", v_empty_map },
		{ "response", v_int }, { "response", v_nil },
		{ "response_summary", v_true }, { "project", v_bin16 },
		{ "client", v_double }, { "session_id", v_empty_array },
		{ "memories_used", v_str }, { "memories_used", v_array_int },
		{ "memories_used", v_empty_map }, { "memories_used", v_nil },
		{ "chunks_used", v_array_nil }, { "chunks_used", v_int },
		{ "context_pack", v_empty_array }, { "context_pack", v_str },
		{ "context_pack", v_nil }, { "context_pack", v_int },
	};
	msgpack_sbuffer sb;
	msgpack_packer pk;

	msgpack_sbuffer_init(&sb);
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		int rc;

		msgpack_sbuffer_clear(&sb);
		pack_record(&sb, 0, cases[i].key, cases[i].value);
		rc = decode_bytes(sb.data, sb.size, NULL);
		if (rc != ATOLOG_CORRUPT)
			CHECK_FAILF("record with a bad %s (case %zu) decodes with %d, want CORRUPT",
			     cases[i].key, i, rc);
	}
	/* Unknown keys may hold anything, "v" included. */
	msgpack_sbuffer_clear(&sb);
	pack_record(&sb, 0, "v", v_str);
	CHECK_RC(decode_bytes(sb.data, sb.size, NULL), ATOLOG_OK, NULL);

	/* A key that is not a string. */
	msgpack_sbuffer_clear(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 4);
	for (size_t i = 1; i <= 3; i++) {
		pk_str(&pk, STD_KEYS[i]);
		pack_std_value(&pk, STD_KEYS[i]);
	}
	msgpack_pack_int64(&pk, 3);
	pk_str(&pk, "x");
	CHECK_RC(decode_bytes(sb.data, sb.size, NULL), ATOLOG_CORRUPT, NULL);

	/* context_pack contents JSON cannot hold: decode succeeds (the view
	 * is lazy) but the flat copy reports corruption. */
	static const value_packer bad_ctx[] = { v_ext, v_bin16 };
	for (size_t i = 0; i < ARRAY_LEN(bad_ctx); i++) {
		atolog_interaction *rec = NULL;
		int rc;

		msgpack_sbuffer_clear(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		msgpack_pack_map(&pk, 4);
		for (size_t k = 1; k <= 3; k++) {
			pk_str(&pk, STD_KEYS[k]);
			pack_std_value(&pk, STD_KEYS[k]);
		}
		pk_str(&pk, "context_pack");
		msgpack_pack_map(&pk, 1);
		pk_str(&pk, "k");
		bad_ctx[i](&pk);
		rc = decode_bytes(sb.data, sb.size, &rec);
		CHECK_RC(rc, ATOLOG_CORRUPT, NULL);
		if (rc == ATOLOG_OK)
			atolog_interaction_free(rec);
	}
	/* Non-string key, invalid UTF-8 string, NaN inside context_pack. */
	for (int variant = 0; variant < 3; variant++) {
		atolog_interaction *rec = NULL;
		int rc;

		msgpack_sbuffer_clear(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		msgpack_pack_map(&pk, 4);
		for (size_t k = 1; k <= 3; k++) {
			pk_str(&pk, STD_KEYS[k]);
			pack_std_value(&pk, STD_KEYS[k]);
		}
		pk_str(&pk, "context_pack");
		msgpack_pack_map(&pk, 1);
		if (variant == 0) {
			msgpack_pack_int64(&pk, 1);
			msgpack_pack_int64(&pk, 2);
		} else if (variant == 1) {
			pk_str(&pk, "k");
			msgpack_pack_str_with_body(&pk, "\xff\xfe", 2);
		} else {
			pk_str(&pk, "k");
			msgpack_pack_double(&pk, NAN);
		}
		rc = decode_bytes(sb.data, sb.size, &rec);
		CHECK_RC(rc, ATOLOG_CORRUPT, NULL);
		if (rc == ATOLOG_OK)
			atolog_interaction_free(rec);
	}
	msgpack_sbuffer_destroy(&sb);
}

/* Packs the standard record with raw bytes as the value of key. */
static int decode_with_raw(const char *key, const void *raw, size_t n,
			   atolog_interaction **out)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	int rc;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, ARRAY_LEN(STD_KEYS));
	for (size_t i = 0; i < ARRAY_LEN(STD_KEYS); i++) {
		pk_str(&pk, STD_KEYS[i]);
		if (!strcmp(key, STD_KEYS[i]))
			msgpack_sbuffer_write(&sb, raw, n);
		else
			pack_std_value(&pk, STD_KEYS[i]);
	}
	*out = NULL;
	rc = decode_bytes(sb.data, sb.size, out);
	msgpack_sbuffer_destroy(&sb);
	return rc;
}

/* created_at packed by msgpack-c from value; the decode result. */
static int decode_time(int64_t value, atolog_interaction **out)
{
	msgpack_sbuffer v;
	msgpack_packer pk;
	int rc;

	msgpack_sbuffer_init(&v);
	msgpack_packer_init(&pk, &v, msgpack_sbuffer_write);
	msgpack_pack_int64(&pk, value);
	rc = decode_with_raw("created_at", v.data, v.size, out);
	msgpack_sbuffer_destroy(&v);
	return rc;
}

/* A name field of len bytes of c (optionally with a NUL at nul_at). */
static int decode_name(const char *key, size_t len, size_t nul_at)
{
	atolog_interaction *rec = NULL;
	msgpack_sbuffer v;
	msgpack_packer pk;
	char *name = malloc(len + 1);
	int rc;

	if (!name)
		abort();
	memset(name, 'n', len);
	if (nul_at < len)
		name[nul_at] = '\0';
	msgpack_sbuffer_init(&v);
	msgpack_packer_init(&pk, &v, msgpack_sbuffer_write);
	msgpack_pack_str_with_body(&pk, name, len);
	rc = decode_with_raw(key, v.data, v.size, &rec);
	if (rc == ATOLOG_OK && nul_at >= len) {
		const char *got = !strcmp(key, "project") ? rec->project :
				  !strcmp(key, "client") ? rec->client : rec->session_id;

		CHECK_INT(strlen(got), len);
	}
	atolog_interaction_free(rec);
	msgpack_sbuffer_destroy(&v);
	free(name);
	return rc;
}

static void test_record_decode_rules(void)
{
	static const struct {
		const char *raw;
		size_t len;
		int64_t want;
	} times[] = {
		{ BYTES("\x00"), 0 },
		{ BYTES("\x7f"), 127 },
		{ BYTES("\xe0"), -32 },
		{ BYTES("\xcc\x05"), 5 },
		{ BYTES("\xcd\x01\x00"), 256 },
		{ BYTES("\xce\x00\x01\x00\x00"), 65536 },
		{ BYTES("\xcf\x00\x00\x00\x00\x00\x00\x00\x08"), 8 },
		{ BYTES("\xd0\xff"), -1 },
		{ BYTES("\xd0\x05"), 5 },
		{ BYTES("\xd1\xff\x00"), -256 },
		{ BYTES("\xd2\x80\x00\x00\x00"), INT64_C(-2147483648) },
		{ BYTES("\xd3\x00\x00\x00\x00\x00\x00\x00\x07"), 7 },
		{ BYTES("\xd3\xff\xff\xff\xff\xff\xff\xff\xfe"), -2 },
	};
	static const char *const bad_times[] = {
		"\xcf\x80\x00\x00\x00\x00\x00\x00\x00",  /* uint64 over INT64_MAX */
		"\xcf\xff\xff\xff\xff\xff\xff\xff\xff",
		"\xd3\x80\x00\x00\x00\x00\x00\x00\x00",  /* INT64_MIN */
		"\xcf\x7f\xff\xff\xff\xff\xff\xff\xff",  /* INT64_MAX */
	};
	static const char *const names[] = { "project", "client", "session_id" };
	atolog_interaction *rec;
	int rc;

	/* created_at: any integer encoding of an in-range value. */
	for (size_t i = 0; i < ARRAY_LEN(times); i++) {
		rc = decode_with_raw("created_at", times[i].raw, times[i].len, &rec);
		if (rc != ATOLOG_OK || rec->created_at != times[i].want)
			CHECK_FAILF("created_at case %zu: rc %d, %" PRId64 ", want %" PRId64, i, rc,
			     rc == ATOLOG_OK ? rec->created_at : 0, times[i].want);
		atolog_interaction_free(rec);
	}
	for (size_t i = 0; i < ARRAY_LEN(bad_times); i++) {
		rc = decode_with_raw("created_at", bad_times[i], 9, &rec);
		if (rc != ATOLOG_CORRUPT)
			CHECK_FAILF("created_at bad case %zu decodes with %d", i, rc);
		if (rc == ATOLOG_OK)
			atolog_interaction_free(rec);
	}
	/* created_at: the record range, 0001..9999, exactly. */
	CHECK_RC(decode_time(TIME_MIN_US, &rec), ATOLOG_OK, NULL);
	if (rec)
		CHECK_INT(rec->created_at, TIME_MIN_US);
	atolog_interaction_free(rec);
	CHECK_RC(decode_time(TIME_MAX_US, &rec), ATOLOG_OK, NULL);
	if (rec)
		CHECK_INT(rec->created_at, TIME_MAX_US);
	atolog_interaction_free(rec);
	CHECK_RC(decode_time(TIME_MIN_US - 1, &rec), ATOLOG_CORRUPT, NULL);
	CHECK_RC(decode_time(TIME_MAX_US + 1, &rec), ATOLOG_CORRUPT, NULL);
	CHECK_RC(decode_time(INT64_MIN, &rec), ATOLOG_CORRUPT, NULL);
	CHECK_RC(decode_time(INT64_MAX, &rec), ATOLOG_CORRUPT, NULL);

	/* Readers accept every encoding of str and bin. */
	rc = decode_with_raw("prompt", BYTES("\xd9\x03" "abc"), &rec);
	CHECK_RC(rc, ATOLOG_OK, NULL);
	if (rc == ATOLOG_OK)
		CHECK_STR(rec->prompt, "abc");
	atolog_interaction_free(rec);
	rc = decode_with_raw("prompt", BYTES("\xda\x00\x03" "abd"), &rec);
	CHECK_RC(rc, ATOLOG_OK, NULL);
	if (rc == ATOLOG_OK)
		CHECK_STR(rec->prompt, "abd");
	atolog_interaction_free(rec);
	rc = decode_with_raw("response", BYTES("\xdb\x00\x00\x00\x02" "xy"), &rec);
	CHECK_RC(rc, ATOLOG_OK, NULL);
	if (rc == ATOLOG_OK)
		CHECK_STR(rec->response, "xy");
	atolog_interaction_free(rec);
	rc = decode_with_raw("id", BYTES("\xc5\x00\x10" "0123456789abcdef"), &rec);
	CHECK_RC(rc, ATOLOG_OK, NULL);
	if (rc == ATOLOG_OK)
		CHECK_STR(rec->id, "30313233-3435-3637-3839-616263646566");
	atolog_interaction_free(rec);
	rc = decode_with_raw("id", BYTES("\xc6\x00\x00\x00\x10" "fedcba9876543210"), &rec);
	CHECK_RC(rc, ATOLOG_OK, NULL);
	if (rc == ATOLOG_OK)
		CHECK_STR(rec->id, "66656463-6261-3938-3736-353433323130");
	atolog_interaction_free(rec);
	rc = decode_with_raw("memories_used",
			     BYTES("\xdc\x00\x02\xd9\x01" "a\xa0"), &rec);
	CHECK_RC(rc, ATOLOG_OK, NULL);
	if (rc == ATOLOG_OK && rec->n_memories_used == 2) {
		CHECK_STR(rec->memories_used[0], "a");
		CHECK_STR(rec->memories_used[1], "");
	} else {
		CHECK_FAILF("memories_used as array16 with str8: rc %d", rc);
	}
	atolog_interaction_free(rec);
	rc = decode_with_raw("context_pack",
			     BYTES("\xde\x00\x01\xa1k\xdd\x00\x00\x00\x01\xca\x3f\xc0\x00\x00"),
			     &rec);
	CHECK_RC(rc, ATOLOG_OK, NULL);
	if (rc == ATOLOG_OK)
		CHECK_STR(rec->context_pack, "{\"k\":[1.5]}");
	atolog_interaction_free(rec);
	/* A uint 64 above INT64_MAX inside context_pack stays exact. */
	rc = decode_with_raw("context_pack",
			     BYTES("\x81\xa1u\xcf\xff\xff\xff\xff\xff\xff\xff\xff"), &rec);
	CHECK_RC(rc, ATOLOG_OK, NULL);
	if (rc == ATOLOG_OK)
		CHECK_STR(rec->context_pack, "{\"u\":18446744073709551615}");
	atolog_interaction_free(rec);
	/* Duplicate keys in context_pack: the last wins. */
	rc = decode_with_raw("context_pack", BYTES("\x82\xa1k\x01\xa1k\x02"), &rec);
	CHECK_RC(rc, ATOLOG_OK, NULL);
	if (rc == ATOLOG_OK)
		CHECK_STR(rec->context_pack, "{\"k\":2}");
	atolog_interaction_free(rec);
	/* Infinity is not JSON either. */
	rc = decode_with_raw("context_pack",
			     BYTES("\x81\xa1k\xcb\x7f\xf0\x00\x00\x00\x00\x00\x00"), &rec);
	CHECK_RC(rc, ATOLOG_CORRUPT, NULL);
	if (rc == ATOLOG_OK)
		atolog_interaction_free(rec);

	/* Text that is not UTF-8 was never written by a writer: corrupt, in
	 * every text field and in context_pack (found by fuzz_record: the
	 * record decoded, and only rendering it failed). */
	{
		static const struct {
			const char *key, *raw;
			size_t len;
		} bad_text[] = {
			{ "prompt", BYTES("\xa2\xc0\xaf") },         /* overlong '/' */
			{ "response", BYTES("\xa3\xed\xa0\x80") },  /* a surrogate */
			{ "response_summary", BYTES("\xa1\xff") },
			{ "project", BYTES("\xa2" "a\x80") },
			{ "session_id", BYTES("\xa1\xe0") },         /* cut short */
			{ "memories_used", BYTES("\x92\xa1" "a\xa1\xfe") },
			{ "chunks_used", BYTES("\x91\xa2\xf8\x88") },
			{ "context_pack", BYTES("\x81\xa1k\xa1\xff") },
		};

		for (size_t i = 0; i < ARRAY_LEN(bad_text); i++) {
			rc = decode_with_raw(bad_text[i].key, bad_text[i].raw,
					     bad_text[i].len, &rec);
			if (rc != ATOLOG_CORRUPT)
				CHECK_FAILF("%s not UTF-8 decodes with %d", bad_text[i].key, rc);
			if (rc == ATOLOG_OK)
				atolog_interaction_free(rec);
		}
	}

	/* Duplicate record keys: the reader keeps the last occurrence. */
	{
		msgpack_sbuffer sb;
		msgpack_packer pk;

		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		msgpack_pack_map(&pk, 8);
		for (size_t k = 1; k <= 3; k++) {
			pk_str(&pk, STD_KEYS[k]);
			pack_std_value(&pk, STD_KEYS[k]);
		}
		pk_str(&pk, "prompt");
		pk_str(&pk, "second");
		pk_str(&pk, "memories_used");
		msgpack_pack_array(&pk, 2);
		pk_str(&pk, "a");
		pk_str(&pk, "b");
		pk_str(&pk, "memories_used");
		msgpack_pack_array(&pk, 1);
		pk_str(&pk, "c");
		pk_str(&pk, "created_at");
		msgpack_pack_int64(&pk, -5);
		pk_str(&pk, "project");
		pk_str(&pk, "p2");
		rec = NULL;
		CHECK_RC(decode_bytes(sb.data, sb.size, &rec), ATOLOG_OK, NULL);
		if (rec) {
			CHECK_STR(rec->prompt, "second");
			CHECK_INT(rec->created_at, -5);
			CHECK_STR(rec->project, "p2");
			CHECK_INT(rec->n_memories_used, 1);
			if (rec->n_memories_used == 1)
				CHECK_STR(rec->memories_used[0], "c");
		}
		atolog_interaction_free(rec);
		msgpack_sbuffer_destroy(&sb);
	}

	/* Names become index keys: at most 256 bytes and no 0x00. */
	for (size_t i = 0; i < ARRAY_LEN(names); i++) {
		if (decode_name(names[i], ATOLOG_NAME_MAX_BYTES, SIZE_MAX) != ATOLOG_OK)
			CHECK_FAILF("%s of %u bytes refused on decode", names[i],
			     ATOLOG_NAME_MAX_BYTES);
		if (decode_name(names[i], ATOLOG_NAME_MAX_BYTES + 1, SIZE_MAX) !=
		    ATOLOG_CORRUPT)
			CHECK_FAILF("%s of %u bytes accepted on decode", names[i],
			     ATOLOG_NAME_MAX_BYTES + 1);
		if (decode_name(names[i], 400, SIZE_MAX) != ATOLOG_CORRUPT)
			CHECK_FAILF("%s of 400 bytes accepted on decode", names[i]);
		if (decode_name(names[i], 5, 2) != ATOLOG_CORRUPT)
			CHECK_FAILF("%s with a 0x00 accepted on decode", names[i]);
		if (decode_name(names[i], 1, 0) != ATOLOG_CORRUPT)
			CHECK_FAILF("%s \"\\0\" accepted on decode", names[i]);
	}
}

static void test_record_not_map(void)
{
	static const struct {
		const char *what;
		const char *bytes;
		size_t len;
	} cases[] = {
		{ "empty", BYTES("") },
		{ "nil", BYTES("\xc0") },
		{ "int", BYTES("\x05") },
		{ "string", BYTES("\xa3" "abc") },
		{ "empty array", BYTES("\x90") },
		{ "array", BYTES("\x92\x01\x02") },
		{ "bin", BYTES("\xc4\x01\x00") },
		{ "empty map", BYTES("\x80") },
		{ "map then junk", BYTES("\x80\x00") },
		{ "truncated map", BYTES("\x83\xa1" "a") },
		{ "0xc1", BYTES("\xc1") },
		{ "array32 of 0xffffffff", BYTES("\xdd\xff\xff\xff\xff\x00\x00") },
		{ "map32 of 0xffffffff", BYTES("\xdf\xff\xff\xff\xff\x00\x00") },
		{ "map with a huge str key", BYTES("\x81\xdb\xff\xff\xff\xff\x00") },
		{ "map with a huge bin value", BYTES("\x81\xa2id\xc6\xff\xff\xff\xff") },
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		int rc = decode_bytes(cases[i].bytes, cases[i].len, NULL);

		if (rc != ATOLOG_CORRUPT)
			CHECK_FAILF("record_view_decode(%s) = %d, want CORRUPT", cases[i].what, rc);
	}

	/* A valid record followed by anything is not one record. */
	msgpack_sbuffer sb;
	uint8_t *more;

	msgpack_sbuffer_init(&sb);
	pack_record(&sb, 0, NULL, NULL);
	more = malloc(sb.size + 1);
	if (!more)
		abort();
	memcpy(more, sb.data, sb.size);
	more[sb.size] = 0xc0;
	CHECK_RC(decode_bytes(more, sb.size + 1, NULL), ATOLOG_CORRUPT, NULL);
	free(more);
	/* Nesting past the record's limit (map + context depth) fails before
	 * msgpack-c's fixed stack is reached; at the limit it decodes. */
	for (unsigned depth = ATOLOG_CONTEXT_MAX_DEPTH; depth <= 40; depth++) {
		msgpack_packer pk;
		int rc;

		msgpack_sbuffer_clear(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		msgpack_pack_map(&pk, 4);
		for (size_t k = 1; k <= 3; k++) {
			pk_str(&pk, STD_KEYS[k]);
			pack_std_value(&pk, STD_KEYS[k]);
		}
		pk_str(&pk, "context_pack");
		for (unsigned d = 0; d < depth; d++) {
			msgpack_pack_map(&pk, 1);
			pk_str(&pk, "k");
		}
		msgpack_pack_int64(&pk, 1);
		rc = decode_bytes(sb.data, sb.size, NULL);
		if (rc != (depth <= ATOLOG_CONTEXT_MAX_DEPTH ? ATOLOG_OK : ATOLOG_CORRUPT))
			CHECK_FAILF("record with context depth %u decodes with %d", depth, rc);
	}
	/* Every strict prefix of a record is corrupt. */
	msgpack_sbuffer_clear(&sb);
	pack_record(&sb, 0, NULL, NULL);
	for (size_t cut = 0; cut < sb.size; cut++) {
		if (decode_bytes(sb.data, cut, NULL) != ATOLOG_CORRUPT) {
			CHECK_FAILF("record cut to %zu of %zu bytes is not CORRUPT", cut, sb.size);
			break;
		}
	}
	msgpack_sbuffer_destroy(&sb);
}

/* Decoding hostile bytes never crashes and says OK or CORRUPT. */
static bool fuzz_one(const uint8_t *bytes, size_t len)
{
	atolog_interaction *rec = NULL;
	int rc = decode_bytes(bytes, len, &rec);

	atolog_interaction_free(rec);
	return rc == ATOLOG_OK || rc == ATOLOG_CORRUPT;
}

static void test_record_fuzz(void)
{
	static const uint8_t alphabet[] = {
		0x80, 0x81, 0x82, 0x8c, 0x90, 0x91, 0x93, 0xa0, 0xa2, 0xa6, 0xc0,
		0xc1, 0xc2, 0xc4, 0xc6, 0xc7, 0xc9, 0xcb, 0xcc, 0xd3, 0xd4, 0xd8,
		0xd9, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xff, 0x00, 0x10, 0x01,
	};
	atolog_interaction src;
	struct record_input in;
	msgpack_sbuffer sb;
	uint8_t *buf;
	int bad = 0, decoded = 0;

	/* A valid encoded record to mutate. */
	set_full_interaction(&src);
	CHECK_RC(record_input_init(&in, &src), ATOLOG_OK, NULL);
	memcpy(in.fields.id, TEST_ID, UUID_SIZE);
	in.fields.created_at = TEST_TIME;
	msgpack_sbuffer_init(&sb);
	CHECK_RC(record_encode(&in.fields, &sb), ATOLOG_OK, NULL);
	record_input_free(&in);
	buf = malloc(sb.size + 300);
	if (!buf)
		abort();

	/* Random garbage of random lengths. */
	for (int i = 0; i < 4000 && bad < 5; i++) {
		size_t len = check_rand_below(300);

		for (size_t k = 0; k < len; k++)
			buf[k] = check_rand_below(2) ? (uint8_t)check_rand()
						     : alphabet[check_rand_below(sizeof(alphabet))];
		if (check_rand_below(2) && len > 0)
			buf[0] = (uint8_t)(0x80 | check_rand_below(16)); /* a fixmap */
		if (!fuzz_one(buf, len)) {
			CHECK_FAILF("garbage %d (%zu bytes) gives neither OK nor CORRUPT", i, len);
			bad++;
		}
	}
	/* Single-byte mutations (and a few double ones) of the valid record. */
	for (int i = 0; i < 6000 && bad < 10; i++) {
		size_t pos = check_rand_below(sb.size);
		int rc;

		memcpy(buf, sb.data, sb.size);
		switch (check_rand_below(3)) {
		case 0:
			buf[pos] ^= (uint8_t)(1u << check_rand_below(8));
			break;
		case 1:
			buf[pos] = (uint8_t)check_rand();
			break;
		default:
			buf[pos] = alphabet[check_rand_below(sizeof(alphabet))];
			buf[check_rand_below(sb.size)] = (uint8_t)check_rand();
			break;
		}
		atolog_interaction *rec = NULL;

		rc = decode_bytes(buf, sb.size, &rec);
		if (rc == ATOLOG_OK) {
			decoded++;
			atolog_interaction_free(rec);
		} else if (rc != ATOLOG_CORRUPT) {
			CHECK_FAILF("mutation %d at %zu gives %d", i, pos, rc);
			bad++;
		}
	}
	/* Plenty of mutations only touch string bytes, so some must decode:
	 * otherwise the loop above tested nothing. */
	CHECK(decoded > 100);
	free(buf);
	msgpack_sbuffer_destroy(&sb);
}

/* ------------------------------------------------------------------------
 * Frames and segment headers.
 */

static void test_frame_roundtrip(void)
{
	static const uint32_t lens[] = { 0, 1, 40, 1000 };
	static const uint8_t kinds[] = { FRAME_KIND_RECORD, FRAME_KIND_REGISTRY,
					 FRAME_KIND_SEAL };
	static const uint64_t seqs[] = { 0, 1, 0x0123456789abcdefULL, UINT64_MAX };

	for (size_t l = 0; l < ARRAY_LEN(lens); l++) {
		for (size_t k = 0; k < ARRAY_LEN(kinds); k++) {
			uint32_t len = lens[l];
			uint64_t seq = seqs[(l + k) % ARRAY_LEN(seqs)];
			uint8_t *frame = malloc(FRAME_HEADER_SIZE + len);
			struct frame_header h;

			if (!frame)
				abort();
			memset(frame, 0xee, FRAME_HEADER_SIZE);
			for (uint32_t i = 0; i < len; i++)
				frame[FRAME_HEADER_SIZE + i] = (uint8_t)check_rand();
			frame_header_write(frame, kinds[k], 0, seq, len);
			/* The layout, byte by byte. */
			CHECK_INT(get_le32(frame + 8), len);
			CHECK_INT(frame[12], kinds[k]);
			CHECK_INT(frame[13], 0);
			CHECK_INT(frame[14], 0);
			CHECK_INT(frame[15], 0);
			CHECK(get_le64(frame + 16) == seq);
			CHECK(get_le64(frame) ==
			      XXH3_64bits(frame + 8, FRAME_HEADER_SIZE - 8 + (size_t)len));
			memset(&h, 0x55, sizeof(h));
			CHECK(frame_header_read(frame, &h));
			CHECK(h.checksum == get_le64(frame));
			CHECK_INT(h.payload_len, len);
			CHECK_INT(h.kind, kinds[k]);
			CHECK_INT(h.flags, 0);
			CHECK_INT(h.reserved, 0);
			CHECK(h.seq == seq);
			CHECK(frame_checksum_ok(frame, len));
			CHECK(!frame_header_is_zero(frame));
			free(frame);
		}
	}
}

static void test_frame_bitflips(void)
{
	enum { LEN = 40 };
	uint8_t frame[FRAME_HEADER_SIZE + LEN];
	int missed = 0;

	for (size_t i = 0; i < LEN; i++)
		frame[FRAME_HEADER_SIZE + i] = (uint8_t)check_rand();
	frame_header_write(frame, FRAME_KIND_RECORD, 0, 42, LEN);
	CHECK(frame_checksum_ok(frame, LEN));
	for (size_t bit = 0; bit < 8 * sizeof(frame); bit++) {
		struct frame_header h;
		bool header_ok, sum_ok;
		uint32_t len;

		frame[bit / 8] ^= (uint8_t)(1u << bit % 8);
		header_ok = frame_header_read(frame, &h);
		/* A reader trusts the length only after the header check. */
		len = header_ok && h.payload_len <= LEN ? h.payload_len : LEN;
		sum_ok = frame_checksum_ok(frame, len);
		if (header_ok && sum_ok) {
			CHECK_FAILF("flipping bit %zu of the frame goes unnoticed", bit);
			missed++;
		}
		/* The checksum alone catches every flip at the true length. */
		if (frame_checksum_ok(frame, LEN)) {
			CHECK_FAILF("checksum misses bit %zu", bit);
			missed++;
		}
		frame[bit / 8] ^= (uint8_t)(1u << bit % 8);
		if (missed > 5)
			break;
	}
	CHECK(frame_checksum_ok(frame, LEN));
}

static void test_frame_header_rejects(void)
{
	uint8_t hdr[FRAME_HEADER_SIZE], zero[FRAME_HEADER_SIZE];
	struct frame_header h;

	frame_header_write(hdr, FRAME_KIND_SEAL, 0, 7, 0);
	CHECK(frame_header_read(hdr, &h));
	/* codec.h: only kind 0 is implausible; a checksum-valid frame of an
	 * unknown kind is the engine's to refuse (ATOLOG_VERSION), so the
	 * header check must not make it look like damage. */
	for (unsigned kind = 0; kind < 256; kind++) {
		bool want = kind != 0;

		hdr[12] = (uint8_t)kind;
		if (frame_header_read(hdr, &h) != want)
			CHECK_FAILF("frame_header_read with kind %u is %d", kind, !want);
	}
	hdr[12] = FRAME_KIND_RECORD;
	for (unsigned b = 0; b < 8; b++) {
		hdr[13] = (uint8_t)(1u << b);
		/* Only SYNC_START (bit 0) has a meaning in format 1. */
		if (frame_header_read(hdr, &h) != (b == 0))
			CHECK_FAILF("flags bit %u %s", b, b == 0 ? "refused" : "accepted");
		if (b == 0)
			CHECK_INT(h.flags, FRAME_FLAG_SYNC_START);
		hdr[13] = 0;
		hdr[14] = (uint8_t)(1u << b);
		if (frame_header_read(hdr, &h))
			CHECK_FAILF("reserved bit %u accepted", b);
		hdr[14] = 0;
		hdr[15] = (uint8_t)(1u << b);
		if (frame_header_read(hdr, &h))
			CHECK_FAILF("reserved bit %u accepted", b + 8);
		hdr[15] = 0;
	}
	CHECK(frame_header_read(hdr, &h));
	put_le32(hdr + 8, FRAME_PAYLOAD_MAX);
	CHECK(frame_header_read(hdr, &h));
	CHECK_INT(h.payload_len, FRAME_PAYLOAD_MAX);
	put_le32(hdr + 8, FRAME_PAYLOAD_MAX + 1);
	CHECK(!frame_header_read(hdr, &h));
	put_le32(hdr + 8, UINT32_MAX);
	CHECK(!frame_header_read(hdr, &h));
	put_le32(hdr + 8, 0x80000000u);
	CHECK(!frame_header_read(hdr, &h));

	/* All-zero headers: pre-allocated space. */
	memset(zero, 0, sizeof(zero));
	CHECK(frame_header_is_zero(zero));
	CHECK(!frame_header_read(zero, &h));
	for (size_t i = 0; i < FRAME_HEADER_SIZE; i++) {
		zero[i] = 1;
		if (frame_header_is_zero(zero))
			CHECK_FAILF("header with byte %zu set counts as zero", i);
		zero[i] = 0x80;
		if (frame_header_is_zero(zero))
			CHECK_FAILF("header with byte %zu = 0x80 counts as zero", i);
		zero[i] = 0;
	}
}

static void test_segment_header(void)
{
	struct segment_header h = { .major = SEGMENT_FORMAT_MAJOR,
				    .minor = SEGMENT_FORMAT_MINOR,
				    .segment_id = 0x0123456789abcdefULL,
				    .created_at = -123456789 };
	struct segment_header got;
	uint8_t buf[SEGMENT_HEADER_SIZE], copy[SEGMENT_HEADER_SIZE];

	rand_id(h.store_id);
	memset(buf, 0xcc, sizeof(buf));
	segment_header_write(buf, &h);
	/* The layout. */
	CHECK(memcmp(buf, "ATOLOGSG", 8) == 0);
	CHECK_INT(buf[8] | buf[9] << 8, SEGMENT_FORMAT_MAJOR);
	CHECK_INT(buf[10] | buf[11] << 8, SEGMENT_FORMAT_MINOR);
	CHECK_INT(get_le32(buf + 12), SEGMENT_HEADER_SIZE);
	CHECK(get_le64(buf + 16) == h.segment_id);
	CHECK(memcmp(buf + 24, h.store_id, UUID_SIZE) == 0);
	CHECK(get_le64(buf + 40) == (uint64_t)h.created_at);
	CHECK(get_le64(buf + 48) == 0);
	CHECK(get_le64(buf + 56) == XXH3_64bits(buf, 56));

	memset(&got, 0, sizeof(got));
	CHECK_RC(segment_header_read(buf, &got), ATOLOG_OK, NULL);
	CHECK_INT(got.major, SEGMENT_FORMAT_MAJOR);
	CHECK_INT(got.minor, SEGMENT_FORMAT_MINOR);
	CHECK(got.segment_id == h.segment_id);
	CHECK(memcmp(got.store_id, h.store_id, UUID_SIZE) == 0);
	CHECK_INT(got.created_at, h.created_at);

	/* Bad magic. */
	memcpy(copy, buf, sizeof(buf));
	memcpy(copy, "ATOLOGSX", 8);
	err_begin(NULL);
	CHECK_RC(segment_header_read(copy, &got), ATOLOG_CORRUPT, NULL);
	CHECK_MSG(NULL, "magic");
	/* Any flipped byte anywhere. */
	for (size_t i = 0; i < SEGMENT_HEADER_SIZE; i++) {
		int rc;

		memcpy(copy, buf, sizeof(buf));
		copy[i] ^= (uint8_t)(1u << (i % 8));
		rc = segment_header_read(copy, &got);
		if (rc != ATOLOG_CORRUPT)
			CHECK_FAILF("segment header with byte %zu flipped reads as %d", i, rc);
	}
	/* A newer major, honestly checksummed. */
	memcpy(copy, buf, sizeof(buf));
	copy[8] = SEGMENT_FORMAT_MAJOR + 1;
	copy[9] = 0;
	put_le64(copy + 56, XXH3_64bits(copy, 56));
	err_begin(NULL);
	CHECK_RC(segment_header_read(copy, &got), ATOLOG_VERSION, NULL);
	CHECK_MSG(NULL, "newer");
	copy[8] = 0;
	copy[9] = 1; /* major 256 */
	put_le64(copy + 56, XXH3_64bits(copy, 56));
	CHECK_RC(segment_header_read(copy, &got), ATOLOG_VERSION, NULL);
	/* Major 0 never existed. */
	memcpy(copy, buf, sizeof(buf));
	copy[8] = 0;
	copy[9] = 0;
	put_le64(copy + 56, XXH3_64bits(copy, 56));
	CHECK_RC(segment_header_read(copy, &got), ATOLOG_CORRUPT, NULL);
	/* A newer minor is compatible. */
	memcpy(copy, buf, sizeof(buf));
	copy[10] = 9;
	put_le64(copy + 56, XXH3_64bits(copy, 56));
	CHECK_RC(segment_header_read(copy, &got), ATOLOG_OK, NULL);
	CHECK_INT(got.minor, 9);
	/* A header size other than 64, honestly checksummed. */
	memcpy(copy, buf, sizeof(buf));
	put_le32(copy + 12, 128);
	put_le64(copy + 56, XXH3_64bits(copy, 56));
	CHECK_RC(segment_header_read(copy, &got), ATOLOG_CORRUPT, NULL);
	/* All zeros. */
	memset(copy, 0, sizeof(copy));
	CHECK_RC(segment_header_read(copy, &got), ATOLOG_CORRUPT, NULL);
}

static void test_seal(void)
{
	msgpack_sbuffer sb;
	msgpack_unpacked u;
	size_t off = 0;

	msgpack_sbuffer_init(&sb);
	CHECK_RC(seal_encode(UINT64_MAX - 1, &sb), ATOLOG_OK, NULL);
	CHECK(mp_is_bounded(sb.data, sb.size, 1));
	msgpack_unpacked_init(&u);
	CHECK(msgpack_unpack_next(&u, sb.data, sb.size, &off) == MSGPACK_UNPACK_SUCCESS);
	CHECK(u.data.type == MSGPACK_OBJECT_MAP && u.data.via.map.size == 1);
	if (u.data.type == MSGPACK_OBJECT_MAP && u.data.via.map.size == 1) {
		const msgpack_object_kv *kv = u.data.via.map.ptr;

		CHECK(kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == 8 &&
		      memcmp(kv->key.via.str.ptr, "last_seq", 8) == 0);
		CHECK(kv->val.type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
		      kv->val.via.u64 == UINT64_MAX - 1);
	}
	msgpack_unpacked_destroy(&u);
	msgpack_sbuffer_destroy(&sb);
}

/* ------------------------------------------------------------------------
 * Registry frames.
 */

static int registry_of(const void *bytes, size_t len, struct registry_view *view)
{
	void *copy = exact_copy(bytes, len);
	int rc;

	err_begin(NULL);
	rc = registry_decode(view, copy, len);
	/* Callers look only at rc: the view points into the freed copy. */
	free(copy);
	return rc;
}

static void test_registry(void)
{
	const struct text name = { BYTES("Atolog \xc3\xa9") };
	const struct text aliases[] = {
		{ BYTES("atolog-core") }, { BYTES("\xe6\x97\xa5") }, { BYTES("x y") },
	};
	/* Names no writer registers: blank, holding 0x00, not UTF-8. */
	const struct text bad_names[] = {
		{ BYTES("") }, { BYTES(" \t") }, { BYTES("a\0b") }, { BYTES("\xff") },
	};
	struct registry_view view;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	void *copy;

	msgpack_sbuffer_init(&sb);
	for (size_t i = 0; i < ARRAY_LEN(bad_names); i++) {
		msgpack_sbuffer_clear(&sb);
		CHECK_RC(registry_encode(name, &bad_names[i], 1, &sb), ATOLOG_OK, NULL);
		CHECK_RC(registry_of(sb.data, sb.size, &view), ATOLOG_CORRUPT, NULL);
		registry_view_free(&view);
		msgpack_sbuffer_clear(&sb);
		CHECK_RC(registry_encode(bad_names[i], NULL, 0, &sb), ATOLOG_OK, NULL);
		CHECK_RC(registry_of(sb.data, sb.size, &view), ATOLOG_CORRUPT, NULL);
		registry_view_free(&view);
	}
	for (size_t n = 0; n <= ARRAY_LEN(aliases); n++) {
		msgpack_sbuffer_clear(&sb);
		CHECK_RC(registry_encode(name, aliases, n, &sb), ATOLOG_OK, NULL);
		copy = exact_copy(sb.data, sb.size);
		CHECK_RC(registry_decode(&view, copy, sb.size), ATOLOG_OK, NULL);
		CHECK(view.name.len == name.len &&
		      memcmp(view.name.ptr, name.ptr, name.len) == 0);
		CHECK_INT(view.n_aliases, n);
		for (size_t i = 0; i < n && i < view.n_aliases; i++)
			CHECK(view.aliases[i].len == aliases[i].len &&
			      memcmp(view.aliases[i].ptr, aliases[i].ptr, aliases[i].len) == 0);
		registry_view_free(&view);
		free(copy);
	}

	/* An op this build does not know is a newer format, not corruption. */
	static const char *const ops[] = { "project_remove", "project_addx", "", "PROJECT_ADD" };
	for (size_t i = 0; i < ARRAY_LEN(ops); i++) {
		msgpack_sbuffer_clear(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		msgpack_pack_map(&pk, 3);
		pk_str(&pk, "op");
		pk_str(&pk, ops[i]);
		pk_str(&pk, "name");
		pk_str(&pk, "p");
		pk_str(&pk, "aliases");
		msgpack_pack_array(&pk, 0);
		CHECK_RC(registry_of(sb.data, sb.size, &view), ATOLOG_VERSION, NULL);
		registry_view_free(&view);
	}

	/* Unknown keys are skipped; aliases may be absent. */
	msgpack_sbuffer_clear(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 3);
	pk_str(&pk, "name");
	pk_str(&pk, "solo");
	pk_str(&pk, "future");
	msgpack_pack_array(&pk, 1);
	msgpack_pack_int64(&pk, -1);
	pk_str(&pk, "op");
	pk_str(&pk, "project_add");
	copy = exact_copy(sb.data, sb.size);
	CHECK_RC(registry_decode(&view, copy, sb.size), ATOLOG_OK, NULL);
	CHECK(view.name.len == 4 && memcmp(view.name.ptr, "solo", 4) == 0);
	CHECK_INT(view.n_aliases, 0);
	registry_view_free(&view);
	free(copy);

	/* Corrupt shapes. */
	static const struct {
		const char *what;
		const char *bytes;
		size_t len;
	} bad[] = {
		{ "empty", BYTES("") },
		{ "array", BYTES("\x91\xa1x") },
		{ "no op", BYTES("\x81\xa4name\xa1p") },
		{ "no name", BYTES("\x81\xa2op\xabproject_add") },
		{ "name not a string",
		  BYTES("\x82\xa2op\xabproject_add\xa4name\x05") },
		{ "aliases not a list",
		  BYTES("\x83\xa2op\xabproject_add\xa4name\xa1p\xa7" "aliases\xa1x") },
		{ "alias not a string",
		  BYTES("\x83\xa2op\xabproject_add\xa4name\xa1p\xa7" "aliases\x91\x01") },
		{ "unknown key nested too deep",
		  BYTES("\x83\xa2op\xabproject_add\xa4name\xa1p\xa1x\x91\x91\x01") },
		{ "aliases nested too deep",
		  BYTES("\x83\xa2op\xabproject_add\xa4name\xa1p\xa7" "aliases\x91\x91\xa1x") },
		{ "huge aliases count",
		  BYTES("\x83\xa2op\xabproject_add\xa4name\xa1p\xa7" "aliases\xdd\xff\xff\xff\xff") },
		{ "trailing byte", BYTES("\x82\xa2op\xabproject_add\xa4name\xa1p\xc0") },
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		int rc = registry_of(bad[i].bytes, bad[i].len, &view);

		if (rc != ATOLOG_CORRUPT)
			CHECK_FAILF("registry_decode(%s) = %d, want CORRUPT", bad[i].what, rc);
		registry_view_free(&view);
	}

	/* A repeated "aliases" key: OK or CORRUPT, but never a leak (LSan). */
	msgpack_sbuffer_clear(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 4);
	pk_str(&pk, "op");
	pk_str(&pk, "project_add");
	pk_str(&pk, "name");
	pk_str(&pk, "p");
	pk_str(&pk, "aliases");
	msgpack_pack_array(&pk, 1);
	pk_str(&pk, "a1");
	pk_str(&pk, "aliases");
	msgpack_pack_array(&pk, 1);
	pk_str(&pk, "a2");
	{
		int rc = registry_of(sb.data, sb.size, &view);

		CHECK(rc == ATOLOG_OK || rc == ATOLOG_CORRUPT);
		registry_view_free(&view);
	}

	/* Mutations: OK, CORRUPT or VERSION, never a crash. */
	msgpack_sbuffer_clear(&sb);
	CHECK_RC(registry_encode(name, aliases, ARRAY_LEN(aliases), &sb), ATOLOG_OK, NULL);
	for (int i = 0; i < 3000; i++) {
		uint8_t *m = exact_copy(sb.data, sb.size);
		int rc;

		m[check_rand_below(sb.size)] = (uint8_t)check_rand();
		err_begin(NULL);
		rc = registry_decode(&view, m, sb.size);
		registry_view_free(&view);
		free(m);
		if (rc != ATOLOG_OK && rc != ATOLOG_CORRUPT && rc != ATOLOG_VERSION) {
			CHECK_FAILF("registry mutation %d gives %d", i, rc);
			break;
		}
	}
	msgpack_sbuffer_destroy(&sb);
}

/* ------------------------------------------------------------------------
 * JSON in and out.
 */

static int from_json(const char *json, atolog_interaction **out)
{
	*out = NULL;
	return atolog_interaction_from_json(json, strlen(json), out);
}

/* from_json must fail with want and a message containing text. */
static void expect_json_error(const char *json, int want, const char *text)
{
	atolog_interaction *rec = NULL;
	int rc = from_json(json, &rec);

	if (rc != want) {
		CHECK_FAILF("from_json(%s) = %d (%s), want %d: %s", json, rc,
		     atolog_strerror(rc), want, atolog_errmsg(NULL));
	} else if (!strstr(atolog_errmsg(NULL), text)) {
		CHECK_FAILF("from_json(%s): message \"%s\" lacks \"%s\"", json,
		     atolog_errmsg(NULL), text);
	}
	if (rc == ATOLOG_OK)
		atolog_interaction_free(rec);
	else if (rec)
		CHECK_FAILF("from_json(%s) wrote *out on failure", json);
}

static void test_from_json_full(void)
{
	static const char body[] =
		"{\"prompt\":\"How do I open a store? \\u00e9\","
		"\"response\":\"Call atolog_store_open.\","
		"\"response_summary\":\"open it\",\"project\":\"atolog\","
		"\"client\":\"cli\",\"session_id\":\"s-1\","
		"\"memories_used\":[\"m1\",\"m2\"],\"chunks_used\":[\"c1\"],"
		"\"context_pack\":{\"k\":[1,{\"x\":null}],\"r\":2.5},"
		"\"reinforce\":true,\"extract\":false}";
	static const char *const m[] = { "m1", "m2" }, *const c[] = { "c1" };
	atolog_interaction want = {
		.prompt = "How do I open a store? \xc3\xa9",
		.response = "Call atolog_store_open.",
		.response_summary = "open it",
		.project = "atolog",
		.client = "cli",
		.session_id = "s-1",
		.memories_used = m,
		.n_memories_used = 2,
		.chunks_used = c,
		.n_chunks_used = 1,
		.context_pack = "{\"k\":[1,{\"x\":null}],\"r\":2.5}",
	};
	atolog_interaction *rec = NULL;
	char *padded;

	CHECK_RC(from_json(body, &rec), ATOLOG_OK, NULL);
	if (rec) {
		expect_same_interaction("seed body", rec, &want);
		CHECK_STR(rec->context_pack, "{\"k\":[1,{\"x\":null}],\"r\":2.5}");
		CHECK_STR(rec->id, "");
		CHECK_INT(rec->has_created_at, 0);
		CHECK_INT(rec->created_at, 0);
		CHECK_INT(rec->seq, 0);
	}
	atolog_interaction_free(rec);

	/* Only the first len bytes count. */
	padded = malloc(sizeof(body) + 8);
	if (!padded)
		abort();
	memcpy(padded, body, sizeof(body) - 1);
	memcpy(padded + sizeof(body) - 1, "garbage", 8);
	rec = NULL;
	CHECK_RC(atolog_interaction_from_json(padded, sizeof(body) - 1, &rec), ATOLOG_OK, NULL);
	if (rec)
		expect_same_interaction("seed body with a length", rec, &want);
	atolog_interaction_free(rec);
	free(padded);

	/* Only a prompt: everything else empty. */
	memset(&want, 0, sizeof(want));
	want.prompt = "p";
	rec = NULL;
	CHECK_RC(from_json(" {\"prompt\":\"p\"} ", &rec), ATOLOG_OK, NULL);
	if (rec) {
		expect_same_interaction("prompt only", rec, &want);
		CHECK_STR(rec->context_pack, "{}");
		CHECK_STR(rec->id, "");
		CHECK_INT(rec->has_created_at, 0);
	}
	atolog_interaction_free(rec);

	/* Unknown fields are ignored; null is absent. */
	rec = NULL;
	CHECK_RC(from_json("{\"future\":{\"a\":[1,2,{}]},\"temperature\":0.7,"
			   "\"prompt\":\"p\",\"tags\":[\"x\",3],\"n\":null,"
			   "\"response\":null,\"response_summary\":null,"
			   "\"project\":null,\"client\":null,\"session_id\":null,"
			   "\"memories_used\":null,\"chunks_used\":null,"
			   "\"context_pack\":null,\"reinforce\":null,"
			   "\"extract\":null,\"id\":null,\"created_at\":null,"
			   "\"created_at_iso\":null}", &rec),
		 ATOLOG_OK, NULL);
	if (rec) {
		expect_same_interaction("nulls", rec, &want);
		CHECK_STR(rec->context_pack, "{}");
		CHECK_STR(rec->id, "");
		CHECK_INT(rec->has_created_at, 0);
	}
	atolog_interaction_free(rec);

	/* reinforce / extract: booleans only. */
	static const char *const bools[] = {
		"{\"prompt\":\"p\",\"reinforce\":false,\"extract\":true}",
		"{\"prompt\":\"p\",\"reinforce\":true}",
		"{\"prompt\":\"p\",\"extract\":false}",
	};
	for (size_t i = 0; i < ARRAY_LEN(bools); i++) {
		rec = NULL;
		CHECK_RC(from_json(bools[i], &rec), ATOLOG_OK, NULL);
		atolog_interaction_free(rec);
	}
	expect_json_error("{\"prompt\":\"p\",\"reinforce\":1}", ATOLOG_INVALID, "reinforce");
	expect_json_error("{\"prompt\":\"p\",\"reinforce\":\"true\"}", ATOLOG_INVALID,
			  "reinforce");
	expect_json_error("{\"prompt\":\"p\",\"extract\":[]}", ATOLOG_INVALID, "extract");
	expect_json_error("{\"prompt\":\"p\",\"extract\":0}", ATOLOG_INVALID, "extract");
	expect_json_error("{\"prompt\":\"p\",\"extract\":{}}", ATOLOG_INVALID, "extract");

	/* Empty lists are lists. */
	rec = NULL;
	CHECK_RC(from_json("{\"prompt\":\"p\",\"memories_used\":[],\"chunks_used\":[]}", &rec),
		 ATOLOG_OK, NULL);
	if (rec) {
		CHECK_INT(rec->n_memories_used, 0);
		CHECK_INT(rec->n_chunks_used, 0);
	}
	atolog_interaction_free(rec);
}

static void test_from_json_errors(void)
{
	/* Wrong types, each naming its field. */
	expect_json_error("{\"prompt\":3}", ATOLOG_INVALID, "prompt");
	expect_json_error("{\"prompt\":[\"p\"]}", ATOLOG_INVALID, "prompt");
	expect_json_error("{\"prompt\":true}", ATOLOG_INVALID, "prompt");
	expect_json_error("{\"prompt\":\"p\",\"project\":[]}", ATOLOG_INVALID, "project");
	expect_json_error("{\"prompt\":\"p\",\"response\":5}", ATOLOG_INVALID, "response");
	expect_json_error("{\"prompt\":\"p\",\"response_summary\":{}}", ATOLOG_INVALID,
			  "response_summary");
	expect_json_error("{\"prompt\":\"p\",\"client\":false}", ATOLOG_INVALID, "client");
	expect_json_error("{\"prompt\":\"p\",\"session_id\":1.5}", ATOLOG_INVALID,
			  "session_id");
	expect_json_error("{\"prompt\":\"p\",\"memories_used\":\"x\"}", ATOLOG_INVALID,
			  "memories_used");
	expect_json_error("{\"prompt\":\"p\",\"memories_used\":{}}", ATOLOG_INVALID,
			  "memories_used");
	expect_json_error("{\"prompt\":\"p\",\"memories_used\":[1]}", ATOLOG_INVALID,
			  "memories_used");
	expect_json_error("{\"prompt\":\"p\",\"memories_used\":[\"a\",null]}",
			  ATOLOG_INVALID, "memories_used[1]");
	expect_json_error("{\"prompt\":\"p\",\"chunks_used\":[[\"a\"]]}", ATOLOG_INVALID,
			  "chunks_used");
	expect_json_error("{\"prompt\":\"p\",\"chunks_used\":7}", ATOLOG_INVALID,
			  "chunks_used");
	expect_json_error("{\"prompt\":\"p\",\"context_pack\":[]}", ATOLOG_INVALID,
			  "context_pack");
	expect_json_error("{\"prompt\":\"p\",\"context_pack\":\"x\"}", ATOLOG_INVALID,
			  "context_pack");
	expect_json_error("{\"prompt\":\"p\",\"context_pack\":\"{}\"}", ATOLOG_INVALID,
			  "context_pack");
	expect_json_error("{\"prompt\":\"p\",\"context_pack\":4}", ATOLOG_INVALID,
			  "context_pack");
	/* Missing or null prompt. */
	expect_json_error("{}", ATOLOG_INVALID, "prompt is required");
	expect_json_error("{\"response\":\"r\"}", ATOLOG_INVALID, "prompt is required");
	expect_json_error("{\"prompt\":null}", ATOLOG_INVALID, "prompt");
	/* Not JSON, or not an object. */
	expect_json_error("{", ATOLOG_INVALID, "malformed JSON");
	expect_json_error("", ATOLOG_INVALID, "malformed JSON");
	expect_json_error("{\"prompt\":\"p\",}", ATOLOG_INVALID, "malformed JSON");
	expect_json_error("{\"prompt\":\"p\"} x", ATOLOG_INVALID, "malformed JSON");
	expect_json_error("prompt=p", ATOLOG_INVALID, "malformed JSON");
	expect_json_error("{\"prompt\":\"\xff\"}", ATOLOG_INVALID, "malformed JSON");
	expect_json_error("[]", ATOLOG_INVALID, "object");
	expect_json_error("[{\"prompt\":\"p\"}]", ATOLOG_INVALID, "object");
	/* A surrogate escape without its other half: yajl would turn a lone
	 * high half into '?', so both kinds are refused. */
	expect_json_error("{\"prompt\":\"a\\ud800x\"}", ATOLOG_INVALID, "surrogate");
	expect_json_error("{\"prompt\":\"a\\udc00\"}", ATOLOG_INVALID, "surrogate");
	expect_json_error("{\"prompt\":\"\\ud83d\\u0041\"}", ATOLOG_INVALID,
			  "surrogate");
	expect_json_error("{\"prompt\":\"\\ud83d\"}", ATOLOG_INVALID, "surrogate");
	expect_json_error("{\"prompt\":\"p\",\"context_pack\":{\"k\":\"\\udbff\"}}",
			  ATOLOG_INVALID, "surrogate");
	{
		atolog_interaction *rec = NULL;

		/* A pair is one code point; an escaped backslash before "ud800"
		 * is no escape at all. */
		CHECK_RC(from_json("{\"prompt\":\"\\ud83d\\ude00 \\\\ud800\"}", &rec),
			 ATOLOG_OK, NULL);
		CHECK_STR(rec->prompt, "\xf0\x9f\x98\x80 \\ud800");
		atolog_interaction_free(rec);
	}

	/* A context pack nested past yajl's own generator limit (128) is the
	 * input's fault, like one past ours (24): never "out of memory". */
	for (int levels = 25; levels <= 300; levels += 275) {
		char doc[1024];
		size_t n = (size_t)snprintf(doc, sizeof(doc), "{\"prompt\":\"p\",\"context_pack\":{\"a\":");

		for (int i = 0; i < levels; i++)
			doc[n++] = '[';
		for (int i = 0; i < levels; i++)
			doc[n++] = ']';
		memcpy(doc + n, "}}", 3);
		expect_json_error(doc, ATOLOG_TOOBIG, "nests deeper than 24 levels");
	}

	/* A document over the limit is refused before parsing. */
	{
		size_t len = (size_t)ATOLOG_JSON_MAX_BYTES + 1;
		char *doc = malloc(len);
		atolog_interaction *rec = NULL;

		if (!doc)
			abort();
		memset(doc, ' ', len);
		memcpy(doc, "{\"prompt\":\"p\"}", 14);
		CHECK_RC(atolog_interaction_from_json(doc, len, &rec), ATOLOG_TOOBIG, NULL);
		CHECK(rec == NULL);
		rec = NULL;
		CHECK_RC(atolog_interaction_from_json(doc, len - 1, &rec), ATOLOG_OK, NULL);
		atolog_interaction_free(rec);
		free(doc);
	}
}

/* A field named twice is refused, null or not, whatever the order: taking
 * one would drop the other. The strings, lists and context pack already
 * copied are freed (LeakSanitizer fails the run if not). Unknown fields
 * are ignored however often they come, and so are keys inside them and
 * inside context_pack (kept there, the last shown: see decode rules). */
static void test_from_json_repeated_keys(void)
{
	static const char *const values[] = {
		[0] = "\"p\"", [1] = "[\"a\",\"b\"]", [2] = "{\"k\":[1,\"s\"]}", [3] = "true",
		[4] = "\"01234567-89ab-cdef-fedc-ba9876543210\"",
		[5] = "\"2026-04-01 12:00:00\"",
	};
	static const struct {
		const char *field;
		unsigned value;
	} fields[] = {
		{ "prompt", 0 }, { "response", 0 }, { "response_summary", 0 },
		{ "project", 0 }, { "client", 0 }, { "session_id", 0 },
		{ "memories_used", 1 }, { "chunks_used", 1 }, { "context_pack", 2 },
		{ "reinforce", 3 }, { "extract", 3 }, { "id", 4 }, { "created_at", 5 },
		{ "created_at_iso", 5 },
	};
	atolog_interaction *rec = NULL;

	for (size_t i = 0; i < ARRAY_LEN(fields); i++) {
		const char *v = values[fields[i].value];
		char json[512], why[64];

		snprintf(why, sizeof(why), "%s is given twice", fields[i].field);
		/* value then value, value then null, null then value; after
		 * other fields (the prompt among them: "prompt" itself is then
		 * named on its first repeat) and before the prompt. */
		for (int shape = 0; shape < 3; shape++) {
			const char *first = shape == 2 ? "null" : v;
			const char *second = shape == 1 ? "null" : v;

			snprintf(json, sizeof(json), "{\"prompt\":\"x\",\"memories_used\":[\"m\"],"
				 "\"%s\":%s,\"response\":\"r\",\"%s\":%s}", fields[i].field,
				 first, fields[i].field, second);
			expect_json_error(json, ATOLOG_INVALID, why);
			snprintf(json, sizeof(json), "{\"%s\":%s,\"%s\":%s,\"prompt\":\"x\"}",
				 fields[i].field, first, fields[i].field, second);
			expect_json_error(json, ATOLOG_INVALID, why);
		}
	}
	/* The first repeat is named. */
	expect_json_error("{\"prompt\":\"p\",\"chunks_used\":[\"a\",\"b\"],"
			  "\"chunks_used\":[\"c\"],\"prompt\":\"q\"}", ATOLOG_INVALID,
			  "chunks_used is given twice");

	/* Unknown fields may repeat; keys inside values are not the body's. */
	CHECK_RC(from_json("{\"tag\":1,\"prompt\":\"p\",\"tag\":{\"prompt\":2,\"prompt\":3},"
			   "\"context_pack\":{\"prompt\":1,\"a\":{\"b\":1,\"b\":2}},\"tag\":null}",
			   &rec), ATOLOG_OK, NULL);
	if (rec) {
		CHECK_STR(rec->prompt, "p");
		CHECK_STR(rec->context_pack, "{\"prompt\":1,\"a\":{\"b\":2}}");
	}
	atolog_interaction_free(rec);
}

static void test_from_json_identity(void)
{
	atolog_interaction *rec = NULL;
	const int64_t t = T_2026_04_01_NOON * US;

	CHECK_RC(from_json("{\"prompt\":\"p\",\"id\":\"01234567-89AB-cdef-fedc-BA9876543210\","
			   "\"created_at\":\"2026-04-01T12:00:00.5Z\"}", &rec),
		 ATOLOG_OK, NULL);
	if (rec) {
		CHECK_STR(rec->id, "01234567-89ab-cdef-fedc-ba9876543210");
		CHECK_INT(rec->has_created_at, 1);
		CHECK_INT(rec->created_at, t + 500000);
	}
	atolog_interaction_free(rec);

	/* The seed's storage form, and other ISO shapes. */
	rec = NULL;
	CHECK_RC(from_json("{\"prompt\":\"p\",\"created_at\":\"2026-04-01 12:00:00\"}", &rec),
		 ATOLOG_OK, NULL);
	if (rec) {
		CHECK_INT(rec->created_at, t);
		CHECK_INT(rec->has_created_at, 1);
		CHECK_STR(rec->id, "");
	}
	atolog_interaction_free(rec);
	rec = NULL;
	CHECK_RC(from_json("{\"prompt\":\"p\",\"created_at\":\"2026-04-01T14:00+02:00\"}", &rec),
		 ATOLOG_OK, NULL);
	if (rec)
		CHECK_INT(rec->created_at, t);
	atolog_interaction_free(rec);

	/* created_at_iso wins over created_at, whichever comes first. */
	rec = NULL;
	CHECK_RC(from_json("{\"prompt\":\"p\",\"created_at\":\"2026-04-01 12:00:00\","
			   "\"created_at_iso\":\"2026-04-01T12:00:00.123456Z\"}", &rec),
		 ATOLOG_OK, NULL);
	if (rec)
		CHECK_INT(rec->created_at, t + 123456);
	atolog_interaction_free(rec);
	rec = NULL;
	CHECK_RC(from_json("{\"created_at_iso\":\"1999-12-31T23:59:59.000001Z\","
			   "\"created_at\":\"2026-04-01 12:00:00\",\"prompt\":\"p\"}", &rec),
		 ATOLOG_OK, NULL);
	if (rec)
		CHECK_INT(rec->created_at, utc_us(1999, 12, 31, 23, 59, 59, 1));
	atolog_interaction_free(rec);
	/* ... even when created_at is junk; a null iso falls back. */
	rec = NULL;
	CHECK_RC(from_json("{\"prompt\":\"p\",\"created_at\":\"junk\","
			   "\"created_at_iso\":\"2026-04-01T12:00:00Z\"}", &rec),
		 ATOLOG_OK, NULL);
	if (rec)
		CHECK_INT(rec->created_at, t);
	atolog_interaction_free(rec);
	rec = NULL;
	CHECK_RC(from_json("{\"prompt\":\"p\",\"created_at\":\"2026-04-01 12:00:01\","
			   "\"created_at_iso\":null}", &rec),
		 ATOLOG_OK, NULL);
	if (rec)
		CHECK_INT(rec->created_at, t + US);
	atolog_interaction_free(rec);
	/* Only created_at_iso. */
	rec = NULL;
	CHECK_RC(from_json("{\"prompt\":\"p\",\"created_at_iso\":\"1969-12-31T23:59:59.999999Z\"}",
			   &rec), ATOLOG_OK, NULL);
	if (rec) {
		CHECK_INT(rec->created_at, -1);
		CHECK_INT(rec->has_created_at, 1);
	}
	atolog_interaction_free(rec);

	/* Bad identities. */
	expect_json_error("{\"prompt\":\"p\",\"id\":\"nope\"}", ATOLOG_INVALID, "id");
	expect_json_error("{\"prompt\":\"p\",\"id\":\"\"}", ATOLOG_INVALID, "id");
	expect_json_error("{\"prompt\":\"p\",\"id\":\"0123456789abcdeffedcba9876543210\"}",
			  ATOLOG_INVALID, "id");
	expect_json_error("{\"prompt\":\"p\",\"id\":42}", ATOLOG_INVALID, "id");
	expect_json_error("{\"prompt\":\"p\",\"created_at\":\"yesterday\"}", ATOLOG_INVALID,
			  "created_at");
	expect_json_error("{\"prompt\":\"p\",\"created_at\":\"2026-04-31\"}", ATOLOG_INVALID,
			  "created_at");
	expect_json_error("{\"prompt\":\"p\",\"created_at\":1775044800}", ATOLOG_INVALID,
			  "created_at");
	expect_json_error("{\"prompt\":\"p\",\"created_at_iso\":\"2026-04-01T25:00\","
			  "\"created_at\":\"2026-04-01 12:00:00\"}",
			  ATOLOG_INVALID, "created_at");
}

/* ------------------------------------------------------------------------
 * JSON arrays of bodies, checked element by element against from_json on
 * each element's own text (an independent path: one document per element).
 */

/* Elements: good bodies, refused bodies and things that are not objects. */
static const char *const array_elements[] = {
	"{\"prompt\":\"p1\",\"project\":\"a\",\"memories_used\":[\"m\"]}",
	"{\"prompt\":\"p2\",\"context_pack\":{\"k\":[1,{\"z\":[[]]}],\"s\":\"}\"}}",
	"{\"prompt\":\"\\u00e9t\\u00e9\",\"client\":\"c\",\"extract\":true}",
	"{\"prompt\":\"p3\",\"unknown\":{\"deep\":[{\"prompt\":5}]},\"x\":[1,2]}",
	"{\"prompt\":5}",
	"{\"prompt\":\"p\",\"memories_used\":[\"m\",7,\"n\"]}",
	"{\"prompt\":\"p\",\"context_pack\":[1,2]}",
	"{\"response\":\"no prompt\"}",
	"{\"prompt\":\"p\",\"reinforce\":\"yes\"}",
	"{\"prompt\":\"p\",\"id\":\"not-a-uuid\"}",
	"{\"prompt\":\"p\",\"created_at\":\"yesterday\"}",
	"{\"prompt\":\"p\",\"chunks_used\":{\"a\":[1]}}",
	"{\"prompt\":\"p\",\"session_id\":[\"s\",{\"t\":1}]}",
	"{\"prompt\":\"p\",\"memories_used\":[\"a\",\"b\"],\"memories_used\":null}",
	"{\"chunks_used\":[\"a\"],\"prompt\":\"p\",\"chunks_used\":[\"b\"]}",
	"{}",
	"17", "\"text\"", "null", "true", "[1,{\"prompt\":\"x\"}]", "[]",
};

struct array_seen {
	size_t n;
	int rcs[64];
	char whys[64][160];
	atolog_interaction *items[64];
};

static int array_collect(size_t index, int rc, const char *why,
			 atolog_interaction *item, void *ctx)
{
	struct array_seen *seen = ctx;

	if (index != seen->n || seen->n == 64) {
		atolog_interaction_free(item);
		return -1;
	}
	seen->rcs[seen->n] = rc;
	snprintf(seen->whys[seen->n], sizeof(seen->whys[0]), "%s", why);
	seen->items[seen->n++] = item;
	return 0;
}

static void array_seen_free(struct array_seen *seen)
{
	for (size_t i = 0; i < seen->n; i++)
		atolog_interaction_free(seen->items[i]);
}

/* The element as its own document: what the array parser must agree with. */
static void expect_element(size_t i, const char *element,
			   const struct array_seen *seen)
{
	atolog_interaction *want = NULL;
	int rc = from_json(element, &want);
	bool is_object = element[0] == '{';

	if (!is_object)
		rc = ATOLOG_INVALID;
	CHECK_INT(seen->rcs[i], rc);
	if (rc == ATOLOG_OK && seen->items[i]) {
		expect_same_interaction(element, seen->items[i], want);
		CHECK_STR(seen->whys[i], "");
	} else {
		CHECK(seen->items[i] == NULL);
		if (!strstr(seen->whys[i], is_object ? atolog_errmsg(NULL)
						     : "must be a JSON object"))
			CHECK_FAILF("element %zu (%s): why \"%s\", alone \"%s\"", i,
			     element, seen->whys[i], atolog_errmsg(NULL));
	}
	atolog_interaction_free(want);
}

static void test_json_array_random(void)
{
	const size_t n_kinds = sizeof(array_elements) / sizeof(array_elements[0]);

	for (int round = 0; round < 200; round++) {
		size_t n = check_rand_below(40), picks[40], len = 0;
		char doc[16384];
		struct array_seen seen = { 0 };

		len += (size_t)snprintf(doc + len, sizeof(doc) - len, " [");
		for (size_t i = 0; i < n; i++) {
			picks[i] = check_rand_below(n_kinds);
			len += (size_t)snprintf(doc + len, sizeof(doc) - len, "%s%s\n",
						i ? "," : "", array_elements[picks[i]]);
		}
		len += (size_t)snprintf(doc + len, sizeof(doc) - len, "] ");
		CHECK_RC(atolog_interactions_from_json_array(doc, len, array_collect,
							     &seen),
			 ATOLOG_OK, NULL);
		CHECK_INT(seen.n, n);
		for (size_t i = 0; i < n && i < seen.n; i++)
			expect_element(i, array_elements[picks[i]], &seen);
		array_seen_free(&seen);
	}
}

/* Documents refused whole: not an array, or not well formed. */
static void test_json_array_refused(void)
{
	static const struct {
		const char *doc;
		size_t before; /* elements delivered before the fault */
		const char *why;
	} cases[] = {
		{ "{\"prompt\":\"p\"}", 0, "expected a JSON array" },
		{ "5", 0, "expected a JSON array" },
		{ "", 0, "malformed JSON" },
		{ "[{\"prompt\":\"p\"},", 1, "malformed JSON" },
		{ "[{\"prompt\":\"p\"}] [", 1, "malformed JSON" },
		{ "[{\"prompt\":\"p\"}, {\"prompt\" \"q\"}]", 1, "malformed JSON" },
		{ "[{\"prompt\":\"\\ud800\"}]", 0, "surrogate" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct array_seen seen = { 0 };
		int rc = atolog_interactions_from_json_array(
			cases[i].doc, strlen(cases[i].doc), array_collect, &seen);

		if (rc != ATOLOG_INVALID || !strstr(atolog_errmsg(NULL), cases[i].why))
			CHECK_FAILF("array %s: %d \"%s\", want INVALID \"%s\"", cases[i].doc,
			     rc, atolog_errmsg(NULL), cases[i].why);
		CHECK_INT(seen.n, cases[i].before);
		array_seen_free(&seen);
	}
}

/* fn's answer stops the parse and is returned. */
static int array_stop_at_two(size_t index, int rc, const char *why,
			     atolog_interaction *item, void *ctx)
{
	size_t *calls = ctx;

	(void)rc;
	(void)why;
	atolog_interaction_free(item);
	++*calls;
	return index == 1 ? 42 : 0;
}

static void test_json_array_stop(void)
{
	static const char doc[] = "[{\"prompt\":\"a\"},{\"prompt\":\"b\"},{\"prompt\":\"c\"}]";
	size_t calls = 0;

	CHECK_INT(atolog_interactions_from_json_array(doc, strlen(doc),
						      array_stop_at_two, &calls),
		  42);
	CHECK_INT(calls, 2);
}

/* A body refused after strings, lists and a context pack were copied, or
 * cut short, alone and as an array element: nothing copied is kept (LSan). */
static void test_from_json_error_frees(void)
{
	static const char *const bodies[] = {
		"{\"memories_used\":[\"a\",\"b\"],\"response\":\"r\",\"prompt\":5}",
		"{\"prompt\":\"p\",\"chunks_used\":[\"a\",\"b\",1]}",
		"{\"context_pack\":{\"a\":[\"b\",{\"c\":1}]},\"prompt\":\"p\",\"client\":[]}",
		"{\"prompt\":\"p\",\"memories_used\":[\"a\"],\"id\":\"not-a-uuid\"}",
		"{\"prompt\":\"p\",\"memories_used\":[\"a\"],\"context_pack\":{\"x\":\"\\udc00\"}}",
		"{\"prompt\":\"p\",\"chunks_used\":[\"a\"",
		"{\"prompt\":\"p\",\"context_pack\":{\"a\":[1,",
	};

	for (size_t i = 0; i < ARRAY_LEN(bodies); i++) {
		struct array_seen seen = { 0 };
		atolog_interaction *rec = NULL;
		char doc[512];

		CHECK_INT(from_json(bodies[i], &rec), ATOLOG_INVALID);
		CHECK(rec == NULL);
		snprintf(doc, sizeof(doc), "[%s]", bodies[i]);
		CHECK(atolog_interactions_from_json_array(doc, strlen(doc), array_collect,
							  &seen) != ATOLOG_OK ||
		      (seen.n == 1 && seen.rcs[0] == ATOLOG_INVALID));
		array_seen_free(&seen);
	}
}

static void test_to_json_exact(void)
{
	static const char *const m[] = { "m1", "m\xc3\xa9" };
	atolog_interaction rec = {
		.id = "01234567-89ab-cdef-fedc-ba9876543210",
		.has_created_at = 1,
		.created_at = T_2026_04_01_NOON * US + 123456,
		.seq = 42,
		.prompt = "p \"q\" \xc3\xa9\n",
		.response = "r",
		.response_summary = "",
		.project = "proj",
		.client = "cli",
		.session_id = "s",
		.memories_used = m,
		.n_memories_used = 2,
		.context_pack = "{\"b\":1,\"a\":[true,null]}",
	};
	char *out = NULL;

	err_begin(NULL);
	CHECK_RC(atolog_interaction_to_json(&rec, &out), ATOLOG_OK, NULL);
	CHECK_STR(out, "{\"id\":\"01234567-89ab-cdef-fedc-ba9876543210\","
		       "\"prompt\":\"p \\\"q\\\" \xc3\xa9\\n\",\"response\":\"r\","
		       "\"response_summary\":\"\",\"project\":\"proj\","
		       "\"client\":\"cli\",\"session_id\":\"s\","
		       "\"memories_used\":[\"m1\",\"m\xc3\xa9\"],\"chunks_used\":[],"
		       "\"context_pack\":{\"b\":1,\"a\":[true,null]},"
		       "\"created_at\":\"2026-04-01 12:00:00\","
		       "\"created_at_iso\":\"2026-04-01T12:00:00.123456Z\",\"seq\":42}");
	free(out);

	/* NULL strings are "", NULL context is {}; times before 1970. */
	memset(&rec, 0, sizeof(rec));
	rec.created_at = -1;
	out = NULL;
	CHECK_RC(atolog_interaction_to_json(&rec, &out), ATOLOG_OK, NULL);
	CHECK_STR(out, "{\"id\":\"\",\"prompt\":\"\",\"response\":\"\","
		       "\"response_summary\":\"\",\"project\":\"\",\"client\":\"\","
		       "\"session_id\":\"\",\"memories_used\":[],\"chunks_used\":[],"
		       "\"context_pack\":{},\"created_at\":\"1969-12-31 23:59:59\","
		       "\"created_at_iso\":\"1969-12-31T23:59:59.999999Z\",\"seq\":0}");
	free(out);

	/* What cannot be rendered. No output, and nothing leaked (LSan). */
	memset(&rec, 0, sizeof(rec));
	rec.prompt = "p";
	rec.context_pack = "{not json";
	out = NULL;
	CHECK_RC(atolog_interaction_to_json(&rec, &out), ATOLOG_INVALID, NULL);
	CHECK(out == NULL);
	rec.context_pack = "{\"a\":1}";
	rec.prompt = "bad \xff";
	CHECK_RC(atolog_interaction_to_json(&rec, &out), ATOLOG_INVALID, NULL);
	CHECK(out == NULL);
	rec.prompt = "p";
	rec.session_id = "\xc0\x80";
	rec.context_pack = NULL;
	CHECK_RC(atolog_interaction_to_json(&rec, &out), ATOLOG_INVALID, NULL);
	CHECK(out == NULL);
	rec.session_id = "s";
	rec.memories_used = (const char *const[]){ "\xed\xa0\x80" };
	rec.n_memories_used = 1;
	rec.context_pack = "{\"a\":1}";
	CHECK_RC(atolog_interaction_to_json(&rec, &out), ATOLOG_INVALID, NULL);
	CHECK(out == NULL);
}

/* from_json(to_json(x)) gives x back, for records made by the codec. */
/* The model of a float's JSON text: the fewest of 15..17 significant
 * digits that read back, with ".0" when it would look like an integer. */
static void model_double_text(double v, char *out, size_t size)
{
	int n = 0;

	for (int digits = 15; digits <= 17; digits++) {
		n = snprintf(out, size, "%.*g", digits, v);
		if (strtod(out, NULL) == v)
			break;
	}
	if (!strpbrk(out, ".eEn"))
		snprintf(out + n, size - (size_t)n, ".0");
}

static double random_double(void)
{
	static const double p10[] = { 1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10 };
	double v;
	uint64_t bits;

	switch (check_rand_below(3)) {
	case 0: /* a short decimal, as scores and timings are */
		v = (double)check_rand_below(UINT64_C(1) << (1 + check_rand_below(52))) /
		    p10[check_rand_below(11)];
		break;
	case 1: /* any finite double */
		do {
			bits = check_rand();
			memcpy(&v, &bits, sizeof(v));
		} while (!isfinite(v));
		break;
	default: /* around the edges of fixed notation */
		v = (check_rand_below(2) ? 1e-4 : 1e15) *
		    (1 + ((double)check_rand_below(2001) - 1000) * 1e-16);
		break;
	}
	return check_rand_below(2) ? -v : v;
}

/* ------------------------------------------------------------------------
 * Numbers in a context pack: exact through msgpack and back, or refused.
 */

enum num_kind { NUM_INT, NUM_UINT, NUM_REAL };

struct num_case {
	const char *in;   /* the literal */
	enum num_kind kind;
	int64_t i;        /* NUM_INT */
	uint64_t u;       /* NUM_UINT */
	double d;         /* NUM_REAL: compared bit for bit */
	const char *out;  /* the literal atolog prints */
};

/* The msgpack value of {"x": literal}, as stored, against the case. */
static void expect_packed_number(const struct num_case *c, const msgpack_sbuffer *sb)
{
	msgpack_unpacked u;
	size_t off = 0;
	const msgpack_object *v = NULL;

	msgpack_unpacked_init(&u);
	if (msgpack_unpack_next(&u, sb->data, sb->size, &off) == MSGPACK_UNPACK_SUCCESS &&
	    u.data.type == MSGPACK_OBJECT_MAP && u.data.via.map.size == 1)
		v = &u.data.via.map.ptr[0].val;
	if (!v) {
		CHECK_FAILF("%s: not stored as a one-key map", c->in);
	} else if (c->kind == NUM_REAL) {
		if (v->type != MSGPACK_OBJECT_FLOAT64 ||
		    memcmp(&v->via.f64, &c->d, sizeof(double)) != 0)
			CHECK_FAILF("%s: stored as type %d %a, want float64 %a", c->in,
				    v->type, v->via.f64, c->d);
	} else if (c->kind == NUM_UINT || c->i >= 0) {
		uint64_t want = c->kind == NUM_UINT ? c->u : (uint64_t)c->i;

		if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER || v->via.u64 != want)
			CHECK_FAILF("%s: stored as type %d %" PRIu64 ", want uint %" PRIu64,
				    c->in, v->type, v->via.u64, want);
	} else if (v->type != MSGPACK_OBJECT_NEGATIVE_INTEGER || v->via.i64 != c->i) {
		CHECK_FAILF("%s: stored as type %d %" PRId64 ", want int %" PRId64, c->in,
			    v->type, v->via.i64, c->i);
	}
	msgpack_unpacked_destroy(&u);
}

/* Integer literals are kept exactly over the whole 64-bit range (int64 and
 * uint64); reals are the nearest float64 and print back to the same bits. */
static void test_context_numbers_exact(void)
{
	static const struct num_case cases[] = {
		{ "0", NUM_INT, 0, 0, 0, "0" },
		{ "-0", NUM_INT, 0, 0, 0, "0" }, /* the integer zero */
		{ "-1", NUM_INT, -1, 0, 0, "-1" },
		{ "9223372036854775807", NUM_INT, INT64_MAX, 0, 0, "9223372036854775807" },
		{ "-9223372036854775808", NUM_INT, INT64_MIN, 0, 0, "-9223372036854775808" },
		{ "9223372036854775808", NUM_UINT, 0, UINT64_C(9223372036854775808), 0,
		  "9223372036854775808" },
		{ "18446744073709551615", NUM_UINT, 0, UINT64_MAX, 0, "18446744073709551615" },
		{ "0.1", NUM_REAL, 0, 0, 0.1, "0.1" },
		{ "-0.0", NUM_REAL, 0, 0, -0.0, "-0.0" },
		{ "1e2", NUM_REAL, 0, 0, 100.0, "100.0" },
		{ "1e308", NUM_REAL, 0, 0, 1e308, "1e+308" },
		{ "1.7976931348623157e308", NUM_REAL, 0, 0, 1.7976931348623157e308,
		  "1.7976931348623157e+308" },
		{ "-1.7976931348623157E+308", NUM_REAL, 0, 0, -1.7976931348623157e308,
		  "-1.7976931348623157e+308" },
		{ "5e-324", NUM_REAL, 0, 0, 5e-324, "4.94065645841247e-324" },
		{ "2.2250738585072014e-308", NUM_REAL, 0, 0, 2.2250738585072014e-308,
		  "2.2250738585072014e-308" },
		/* Below the smallest subnormal: rounds to zero, as in any reader. */
		{ "1e-400", NUM_REAL, 0, 0, 0.0, "0.0" },
		{ "-1e-400", NUM_REAL, 0, 0, -0.0, "-0.0" },
		/* A real by its notation: the nearest float64, like any reader. */
		{ "123456789012345678901234567890.0", NUM_REAL, 0, 0,
		  123456789012345678901234567890.0, "1.2345678901234568e+29" },
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		const struct num_case *c = &cases[i];
		char json[128], want[128], body[192];
		msgpack_sbuffer sb;
		msgpack_unpacked u;
		size_t off = 0;
		char *out = NULL;
		atolog_interaction *rec = NULL;

		snprintf(json, sizeof(json), "{\"x\":%s}", c->in);
		snprintf(want, sizeof(want), "{\"x\":%s}", c->out);
		msgpack_sbuffer_init(&sb);
		err_begin(NULL);
		CHECK_RC(context_json_to_msgpack(json, strlen(json), &sb), ATOLOG_OK, NULL);
		expect_packed_number(c, &sb);
		msgpack_unpacked_init(&u);
		if (msgpack_unpack_next(&u, sb.data, sb.size, &off) == MSGPACK_UNPACK_SUCCESS)
			CHECK_RC(context_to_json(&u.data, &out), ATOLOG_OK, NULL);
		if (out)
			CHECK_STR(out, want);
		free(out);
		msgpack_unpacked_destroy(&u);
		msgpack_sbuffer_destroy(&sb);

		/* And the same through a body. */
		snprintf(body, sizeof(body), "{\"prompt\":\"p\",\"context_pack\":%s}", json);
		CHECK_RC(from_json(body, &rec), ATOLOG_OK, NULL);
		if (rec)
			CHECK_STR(rec->context_pack, want);
		atolog_interaction_free(rec);
	}
}

/* A number msgpack cannot hold: refused as invalid input, with its path and
 * its text, wherever it comes in (a body, a batch element, the C API). */
static void test_context_numbers_refused(void)
{
	static const struct {
		const char *context, *path, *text;
	} cases[] = {
		{ "{\"a\":1e400}", "context_pack.a: the number 1e400 ", "64-bit float" },
		{ "{\"a\":[-1e400]}", "context_pack.a[0]: the number -1e400 ", "float" },
		{ "{\"a\":1E+400}", "context_pack.a: ", "1E+400" },
		{ "{\"a\":2e308}", "context_pack.a: ", "2e308" },
		{ "{\"a\":1.8e308}", "context_pack.a: ", "1.8e308" },
		{ "{\"a\":-17976931348623159e292}", "context_pack.a: ", "float" },
		{ "{\"k\":1,\"a\":{\"b\":[0,123456789012345678901234567890]}}",
		  "context_pack.a.b[1]: the integer 123456789012345678901234567890 ",
		  "64 bits" },
		{ "{\"a\":18446744073709551616}", "context_pack.a: ", "18446744073709551616" },
		{ "{\"a\":-9223372036854775809}", "context_pack.a: ", "-9223372036854775809" },
		{ "{\"a\":-18446744073709551615}", "context_pack.a: ", "-18446744073709551615" },
		{ "{\"a b\":{\"q\\\"\":[[{\"\":1e999}]]}}",
		  "context_pack[\"a b\"][\"q\\\"\"][0][0][\"\"]: ", "1e999" },
		{ "{\"\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9"
		  "\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9"
		  "\\u00e9\":1e400}",
		  "context_pack[\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
		  "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
		  "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9...\"]: ", "1e400" },
	};
	char digits[320];

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		char body[512], doc[600];
		msgpack_sbuffer sb;
		struct array_seen seen = { 0 };
		atolog_interaction in = { .prompt = "p", .context_pack = cases[i].context };
		const char *m;

		msgpack_sbuffer_init(&sb);
		err_begin(NULL);
		CHECK_RC(context_json_to_msgpack(cases[i].context, strlen(cases[i].context),
						 &sb), ATOLOG_INVALID, NULL);
		msgpack_sbuffer_destroy(&sb);
		m = atolog_errmsg(NULL);
		if (strncmp(m, cases[i].path, strlen(cases[i].path)) != 0 ||
		    !strstr(m, cases[i].text) || !text_is_utf8(m, strlen(m)))
			CHECK_FAILF("%s: message \"%s\", want it to open with \"%s\" and "
				    "hold \"%s\"", cases[i].context, m, cases[i].path,
				    cases[i].text);

		snprintf(body, sizeof(body), "{\"prompt\":\"p\",\"context_pack\":%s}",
			 cases[i].context);
		expect_json_error(body, ATOLOG_INVALID, cases[i].path);
		snprintf(doc, sizeof(doc), "[{\"prompt\":\"ok\"},%s]", body);
		CHECK_RC(atolog_interactions_from_json_array(doc, strlen(doc), array_collect,
							     &seen), ATOLOG_OK, NULL);
		CHECK_INT(seen.n, 2);
		CHECK_INT(seen.rcs[0], ATOLOG_OK);
		CHECK_INT(seen.rcs[1], ATOLOG_INVALID);
		CHECK(strstr(seen.whys[1], cases[i].path) != NULL);
		array_seen_free(&seen);
		CHECK_RC(atolog_interaction_validate(&in), ATOLOG_INVALID, NULL);
		CHECK_MSG(NULL, cases[i].path);
	}

	/* A long literal is cut in the message, which stays short. */
	memset(digits, '9', sizeof(digits) - 1);
	digits[sizeof(digits) - 1] = '\0';
	{
		char json[400];
		msgpack_sbuffer sb;

		snprintf(json, sizeof(json), "{\"n\":%s}", digits);
		msgpack_sbuffer_init(&sb);
		CHECK_RC(context_json_to_msgpack(json, strlen(json), &sb), ATOLOG_INVALID,
			 NULL);
		msgpack_sbuffer_destroy(&sb);
		CHECK_MSG(NULL, "context_pack.n: the integer "
			  "9999999999999999999999999999999999999999... does not fit");
		CHECK(strlen(atolog_errmsg(NULL)) < 300);
	}
	/* So is a long path: its start, then "...". */
	{
		char json[512];
		size_t n = 0;
		msgpack_sbuffer sb;

		for (int i = 0; i < 20; i++)
			n += (size_t)sprintf(json + n, "{\"k123456789\":");
		n += (size_t)sprintf(json + n, "[1e400]");
		for (int i = 0; i < 20; i++)
			json[n++] = '}';
		json[n] = '\0';
		msgpack_sbuffer_init(&sb);
		CHECK_RC(context_json_to_msgpack(json, n, &sb), ATOLOG_INVALID, NULL);
		msgpack_sbuffer_destroy(&sb);
		CHECK_MSG(NULL, "context_pack.k123456789.k123456789.k123456789.");
		CHECK_MSG(NULL, "k123456789...: the number 1e400 is beyond");
	}
}

/* Floats in a context pack come back as the model's text, whichever path
 * formatted them. */
static void test_context_doubles(void)
{
	for (int i = 0; i < 20000; i++) {
		double v = random_double();
		char in_text[40], want[48], json[128];
		atolog_interaction *rec = NULL;
		const char *x;
		char *out = NULL;

		snprintf(in_text, sizeof(in_text), "%.17e", v); /* a float, never an int */
		model_double_text(v, want, sizeof(want));
		snprintf(json, sizeof(json), "{\"prompt\":\"p\",\"context_pack\":{\"x\":%s}}",
			 in_text);
		if (from_json(json, &rec) != ATOLOG_OK) {
			CHECK_FAILF("%s: %s", json, atolog_errmsg(NULL));
			continue;
		}
		x = strstr(rec->context_pack, "\"x\":");
		CHECK(x != NULL);
		if (x && (strncmp(x + 4, want, strlen(want)) != 0 ||
			  x[4 + strlen(want)] != '}'))
			CHECK_FAILF("%s (%a): context_pack %s, want x = %s", in_text, v,
			     rec->context_pack, want);
		free(out);
		atolog_interaction_free(rec);
	}
}

static void test_json_roundtrip(void)
{
	for (int i = 0; i < 200; i++) {
		atolog_interaction src, *flat = NULL, *back = NULL;
		struct record_input in;
		char *strs[6], *refs[6], ctx[160], *json = NULL;
		const char *crefs[6];
		size_t n_mem = check_rand_below(4), n_chunk = check_rand_below(3);
		int64_t t = TIME_MIN_US + (int64_t)check_rand_below(
						    (uint64_t)(TIME_MAX_US - TIME_MIN_US));

		for (size_t k = 0; k < 6; k++)
			strs[k] = rand_utf8(k == 0 ? 30 : 8);
		for (size_t k = 0; k < n_mem + n_chunk; k++)
			crefs[k] = refs[k] = rand_utf8(6);
		snprintf(ctx, sizeof(ctx),
			 "{\"i\":%d,\"neg\":%" PRId64 ",\"r\":%d.25,\"o\":{\"a\":[null,false]}}",
			 i, -(int64_t)(check_rand() >> 1), i);
		memset(&src, 0, sizeof(src));
		src.prompt = "prompt";
		src.response = strs[1];
		src.response_summary = strs[2];
		src.project = strs[3];
		src.client = strs[4];
		src.session_id = strs[5];
		src.memories_used = crefs;
		src.n_memories_used = n_mem;
		src.chunks_used = crefs + n_mem;
		src.n_chunks_used = n_chunk;
		src.context_pack = ctx;
		if (strs[0][0] && !text_is_blank(strs[0], strlen(strs[0])))
			src.prompt = strs[0];

		CHECK_RC(record_input_init(&in, &src), ATOLOG_OK, NULL);
		rand_id(in.fields.id);
		in.fields.created_at = t;
		CHECK_RC(record_fields_flatten(&in.fields, (uint64_t)i, &flat), ATOLOG_OK, NULL);
		record_input_free(&in);
		if (flat)
			CHECK_RC(atolog_interaction_to_json(flat, &json), ATOLOG_OK, NULL);
		if (json)
			CHECK_RC(from_json(json, &back), ATOLOG_OK, NULL);
		if (back) {
			expect_same_interaction("json round trip", back, flat);
			CHECK_STR(back->id, flat->id);
			CHECK_INT(back->has_created_at, 1);
			CHECK_INT(back->created_at, t);
		}
		atolog_interaction_free(back);
		atolog_interaction_free(flat);
		free(json);
		for (size_t k = 0; k < 6; k++)
			free(strs[k]);
		for (size_t k = 0; k < n_mem + n_chunk; k++)
			free(refs[k]);
	}
}

int main(int argc, char **argv)
{
	check_args(argc, argv);
	check_rand_init("test_codec");

	CHECK_RUN(test_time_parse_known);
	CHECK_RUN(test_time_parse_shapes);
	CHECK_RUN(test_time_parse_boundaries);
	CHECK_RUN(test_time_parse_rejects);
	CHECK_RUN(test_time_format);
	CHECK_RUN(test_time_floor);
	CHECK_RUN(test_time_roundtrip_random);

	CHECK_RUN(test_uuid_text);
	CHECK_RUN(test_uuid_v7_same_ms);
	CHECK_RUN(test_uuid_v7_advancing);

	CHECK_RUN(test_utf8_cases);
	CHECK_RUN(test_utf8_random);
	CHECK_RUN(test_blank);
	CHECK_RUN(test_fold);
	CHECK_RUN(test_trim);

	CHECK_RUN(test_mp_wellformed);
	CHECK_RUN(test_mp_crafted);
	CHECK_RUN(test_mp_depth);
	CHECK_RUN(test_mp_random);

	CHECK_RUN(test_record_roundtrip);
	CHECK_RUN(test_record_validation);
	CHECK_RUN(test_record_context_depth);
	CHECK_RUN(test_record_encode_toobig);
	CHECK_RUN(test_record_forward_compat);
	CHECK_RUN(test_record_wrong_types);
	CHECK_RUN(test_record_decode_rules);
	CHECK_RUN(test_record_not_map);
	CHECK_RUN(test_record_fuzz);

	CHECK_RUN(test_frame_roundtrip);
	CHECK_RUN(test_frame_bitflips);
	CHECK_RUN(test_frame_header_rejects);
	CHECK_RUN(test_segment_header);
	CHECK_RUN(test_seal);
	CHECK_RUN(test_registry);

	CHECK_RUN(test_from_json_full);
	CHECK_RUN(test_from_json_errors);
	CHECK_RUN(test_from_json_repeated_keys);
	CHECK_RUN(test_from_json_identity);
	CHECK_RUN(test_json_array_random);
	CHECK_RUN(test_json_array_refused);
	CHECK_RUN(test_json_array_stop);
	CHECK_RUN(test_from_json_error_frees);
	CHECK_RUN(test_to_json_exact);
	CHECK_RUN(test_context_numbers_exact);
	CHECK_RUN(test_context_numbers_refused);
	CHECK_RUN(test_context_doubles);
	CHECK_RUN(test_json_roundtrip);

	return check_report("test_codec");
}
