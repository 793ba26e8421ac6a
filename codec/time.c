/*
 * time.c - UTC microsecond timestamps: parsing the ISO 8601 shapes the
 * seed's `since` filter accepts, and printing the two forms atolog shows.
 *
 * Internally a time is an int64 count of microseconds since
 * 1970-01-01T00:00:00Z (proleptic Gregorian, no leap seconds), which covers
 * years 0001..9999 with room to spare. Accepted input:
 *
 *   YYYY-MM-DD [ (T|t|' ') HH:MM [ :SS [ (.|,) fraction ] ] [ zone ] ]
 *   zone = Z | z | (+|-)HH[:MM] | (+|-)HHMM
 *
 * (a zone belongs to a time of day: a bare date is a UTC midnight)
 *
 * surrounded by optional blanks. A time without a zone is UTC (the seed's
 * storage form "YYYY-MM-DD HH:MM:SS" is UTC by convention). Digits of the
 * fraction beyond the sixth are dropped. Everything else is rejected: where
 * the seed silently compares an unparseable string, atolog says so.
 */
#include <ctype.h>
#include <string.h>
#include <time.h>

#include "codec.h"
#include "error.h"

#define SECONDS_PER_DAY INT64_C(86400)

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar
 * (H. Hinnant's days_from_civil; exact for every year we accept). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	const int64_t era = (y >= 0 ? y : y - 399) / 400;
	const unsigned yoe = (unsigned)(y - era * 400);
	const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

	return era * 146097 + (int64_t)doe - 719468;
}

/* The inverse: y-m-d of a day count since 1970-01-01. */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	z += 719468;
	const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	const unsigned doe = (unsigned)(z - era * 146097);
	const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	const unsigned mp = (5 * doy + 2) / 153;

	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static bool is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned days_in_month(int64_t y, unsigned m)
{
	static const unsigned days[12] = { 31, 28, 31, 30, 31, 30,
					   31, 31, 30, 31, 30, 31 };

	return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

/* Reads exactly n digits at *p into *out and advances; false otherwise. */
static bool read_digits(const char **p, int n, unsigned *out)
{
	unsigned v = 0;

	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)(*p)[i]))
			return false;
		v = v * 10 + (unsigned)((*p)[i] - '0');
	}
	*p += n;
	*out = v;
	return true;
}

/* Reads a fraction's digits as microseconds (truncating past six). */
static bool read_fraction(const char **p, unsigned *us)
{
	const char *s = *p;
	unsigned v = 0;
	int n = 0;

	while (isdigit((unsigned char)s[n])) {
		if (n < 6)
			v = v * 10 + (unsigned)(s[n] - '0');
		n++;
	}
	if (n == 0)
		return false;
	for (int i = n; i < 6; i++)
		v *= 10;
	*p = s + n;
	*us = v;
	return true;
}

/* Reads an optional zone; *offset_s is seconds east of UTC. */
static bool read_zone(const char **p, int64_t *offset_s)
{
	const char *s = *p;
	unsigned hh, mm = 0;
	int sign;

	*offset_s = 0;
	if (*s == 'Z' || *s == 'z') {
		*p = s + 1;
		return true;
	}
	if (*s != '+' && *s != '-')
		return true; /* no zone: UTC */
	sign = *s == '-' ? -1 : 1;
	s++;
	if (!read_digits(&s, 2, &hh))
		return false;
	if (*s == ':') {
		s++;
		if (!read_digits(&s, 2, &mm))
			return false;
	} else if (isdigit((unsigned char)*s)) {
		if (!read_digits(&s, 2, &mm))
			return false;
	}
	if (hh > 23 || mm > 59)
		return false;
	*offset_s = sign * (int64_t)(hh * 3600 + mm * 60);
	*p = s;
	return true;
}

struct civil_time {
	unsigned year, month, day, hour, minute, second, micro;
	int64_t offset_s;
};

static bool read_clock(const char **p, struct civil_time *t)
{
	const char *s = *p;

	if (!read_digits(&s, 2, &t->hour) || *s++ != ':' ||
	    !read_digits(&s, 2, &t->minute))
		return false;
	if (*s == ':') {
		s++;
		if (!read_digits(&s, 2, &t->second))
			return false;
		if ((*s == '.' || *s == ',')) {
			s++;
			if (!read_fraction(&s, &t->micro))
				return false;
		}
	}
	*p = s;
	return true;
}

static bool read_iso8601(const char *s, struct civil_time *t)
{
	memset(t, 0, sizeof(*t));
	while (isspace((unsigned char)*s))
		s++;
	if (!read_digits(&s, 4, &t->year) || *s++ != '-' ||
	    !read_digits(&s, 2, &t->month) || *s++ != '-' ||
	    !read_digits(&s, 2, &t->day))
		return false;
	if ((*s == 'T' || *s == 't' || *s == ' ') &&
	    isdigit((unsigned char)s[1])) {
		s++;
		if (!read_clock(&s, t) || !read_zone(&s, &t->offset_s))
			return false;
	}
	while (isspace((unsigned char)*s))
		s++;
	if (*s != '\0')
		return false;
	return t->year >= 1 && t->month >= 1 && t->month <= 12 &&
	       t->day >= 1 && t->day <= days_in_month(t->year, t->month) &&
	       t->hour <= 23 && t->minute <= 59 && t->second <= 59;
}

int time_parse(const char *text, int64_t *out_us)
{
	struct civil_time t;
	int64_t seconds, us;

	if (!text || !read_iso8601(text, &t))
		return err_set(ATOLOG_INVALID,
			       "not an ISO 8601 time: \"%.64s\" (expected e.g. "
			       "2026-04-01T12:00:00Z or 2026-04-01 12:00:00)",
			       text ? text : "(null)");
	seconds = days_from_civil(t.year, t.month, t.day) * SECONDS_PER_DAY +
		  t.hour * 3600 + t.minute * 60 + t.second - t.offset_s;
	us = seconds * TIME_US_PER_SEC + t.micro;
	/* An offset can carry year 1 or 9999 outside what a record holds and
	 * what the formats print: refused rather than clamped. */
	if (us < TIME_MIN_US || us > TIME_MAX_US)
		return err_set(ATOLOG_INVALID,
			       "time out of range: \"%.64s\" (after the offset it "
			       "must lie within 0001-01-01 and 9999-12-31 UTC)", text);
	*out_us = us;
	return ATOLOG_OK;
}

int atolog_time_parse(const char *text, int64_t *out_us)
{
	err_begin(NULL);
	return time_parse(text, out_us);
}

int64_t time_floor_second(int64_t us)
{
	int64_t r = us % TIME_US_PER_SEC;

	return r < 0 ? us - r - TIME_US_PER_SEC : us - r;
}

int64_t time_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * TIME_US_PER_SEC + ts.tv_nsec / 1000;
}

int64_t time_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * TIME_US_PER_SEC + ts.tv_nsec / 1000;
}

struct civil_split {
	int64_t year;
	unsigned month, day, hour, minute, second, micro;
};

static void split_time(int64_t us, struct civil_split *c)
{
	int64_t secs, days, rem;

	/* Records hold years 1..9999; clamp so any int64 still prints. */
	if (us < TIME_MIN_US)
		us = TIME_MIN_US;
	if (us > TIME_MAX_US)
		us = TIME_MAX_US;
	secs = time_floor_second(us) / TIME_US_PER_SEC;
	days = secs >= 0 ? secs / SECONDS_PER_DAY
			 : (secs - SECONDS_PER_DAY + 1) / SECONDS_PER_DAY;
	rem = secs - days * SECONDS_PER_DAY;
	civil_from_days(days, &c->year, &c->month, &c->day);
	c->hour = (unsigned)(rem / 3600);
	c->minute = (unsigned)(rem / 60 % 60);
	c->second = (unsigned)(rem % 60);
	c->micro = (unsigned)(us - time_floor_second(us));
}

/* Writes v as exactly width decimal digits, zero-padded; returns the end. */
static char *put_digits(char *p, uint64_t v, int width)
{
	for (int i = width - 1; i >= 0; i--) {
		p[i] = (char)('0' + v % 10);
		v /= 10;
	}
	return p + width;
}

/* "YYYY-MM-DD?HH:MM:SS" with sep between date and time. */
static char *put_date_time(char *p, int64_t us, char sep, unsigned *micro)
{
	struct civil_split c;

	split_time(us, &c);
	p = put_digits(p, (uint64_t)c.year, 4);
	*p++ = '-';
	p = put_digits(p, c.month, 2);
	*p++ = '-';
	p = put_digits(p, c.day, 2);
	*p++ = sep;
	p = put_digits(p, c.hour, 2);
	*p++ = ':';
	p = put_digits(p, c.minute, 2);
	*p++ = ':';
	p = put_digits(p, c.second, 2);
	*micro = c.micro;
	return p;
}

void atolog_time_format_seed(int64_t us, char buf[ATOLOG_TIME_SEED_LEN])
{
	unsigned micro;
	char *p = put_date_time(buf, us, ' ', &micro);

	*p = '\0';
}

void atolog_time_format_iso(int64_t us, char buf[ATOLOG_TIME_ISO_LEN])
{
	unsigned micro;
	char *p = put_date_time(buf, us, 'T', &micro);

	*p++ = '.';
	p = put_digits(p, micro, 6);
	*p++ = 'Z';
	*p = '\0';
}
