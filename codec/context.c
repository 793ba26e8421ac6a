/*
 * context.c - the context pack, a JSON object the caller assembled, stored
 * as a native msgpack map (not as a JSON string inside the record), so that
 * the log stays self-describing and compact.
 *
 * JSON -> msgpack is one streaming pass of yajl's SAX parser: no tree is
 * built (yajl measured 2.4 us for a 695-byte pack where jansson's tree took
 * 16.5 us). msgpack wants a container's element count before its elements,
 * which a stream only knows at the end, so containers are written with
 * 32-bit headers (map32, array32) whose counts are patched when they close.
 *
 * Mapping: object <-> map with str keys, array <-> array, string <-> str,
 * an integer literal (no '.', 'e' or 'E') <-> int, exactly, from INT64_MIN
 * to UINT64_MAX; any other number <-> float64, the nearest to the literal;
 * true/false <-> bool, null <-> nil. A number msgpack cannot hold is
 * refused (ATOLOG_INVALID, naming its path), never changed: an integer
 * beyond 64 bits would otherwise become an approximate float, and a real
 * beyond float64 (1e400) an infinity, which JSON cannot print. Reading back
 * anything JSON cannot hold (bin, ext, non-string keys, NaN, infinities) is
 * corruption: this writer never produces it. A float64 is printed in its
 * shortest form that reads back to the same value, with ".0" if it looks
 * integral, so that it stays a float through a round trip.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_gen.h>
#include <yajl/yajl_parse.h>

#include "codec.h"
#include "error.h"

#define NUMBER_TEXT_MAX 64   /* longer number literals are copied to the heap */
#define PATH_KEY_SHOWN 40    /* bytes of a key a message shows */
#define PATH_SHOWN 160       /* bytes of a path a message shows */
#define NUMBER_SHOWN 40      /* bytes of a refused number a message shows */
#define BUILDER_WHY_SIZE 400 /* a refusal's message */

struct mp_container {
	size_t header_at; /* offset of the 5-byte header in the buffer */
	size_t key_at;    /* a map's current key: its bytes in the buffer */
	uint32_t key_len;
	uint32_t count;
	bool is_map;
};

struct mp_builder {
	msgpack_sbuffer *out;
	msgpack_packer pk;
	struct mp_container stack[ATOLOG_CONTEXT_MAX_DEPTH];
	unsigned depth;
	bool started;
	int rc;
	char why[BUILDER_WHY_SIZE];
};

static int builder_fail(struct mp_builder *b, int rc, const char *why)
{
	if (b->rc == ATOLOG_OK) {
		b->rc = rc;
		snprintf(b->why, sizeof(b->why), "%s", why);
	}
	return 0; /* tells yajl to stop */
}

/* Counts a value in an array (a map counts its keys instead). */
static int builder_value(struct mp_builder *b)
{
	if (!b->started)
		return builder_fail(b, ATOLOG_INVALID,
				    "context_pack must be a JSON object");
	if (b->depth > 0 && !b->stack[b->depth - 1].is_map)
		b->stack[b->depth - 1].count++;
	return 1;
}

static int builder_open(struct mp_builder *b, bool is_map)
{
	static const char map32[5] = { (char)0xdf }, array32[5] = { (char)0xdd };

	if (!b->started && !is_map)
		return builder_fail(b, ATOLOG_INVALID,
				    "context_pack must be a JSON object");
	b->started = true;
	if (!builder_value(b))
		return 0;
	if (b->depth == ATOLOG_CONTEXT_MAX_DEPTH)
		return builder_fail(b, ATOLOG_TOOBIG, "context_pack nests deeper "
				    "than " "the limit");
	b->stack[b->depth++] = (struct mp_container){ .header_at = b->out->size,
						     .is_map = is_map };
	if (msgpack_sbuffer_write(b->out, is_map ? map32 : array32, 5) != 0)
		return builder_fail(b, ENOMEM, "out of memory");
	return 1;
}

static int builder_close(struct mp_builder *b)
{
	struct mp_container *c = &b->stack[--b->depth];
	uint8_t *p = (uint8_t *)b->out->data + c->header_at + 1;

	p[0] = (uint8_t)(c->count >> 24);
	p[1] = (uint8_t)(c->count >> 16);
	p[2] = (uint8_t)(c->count >> 8);
	p[3] = (uint8_t)c->count;
	return 1;
}

static int packed(struct mp_builder *b, int rc)
{
	return rc == 0 ? 1 : builder_fail(b, ENOMEM, "out of memory");
}

static int on_null(void *ctx)
{
	struct mp_builder *b = ctx;

	return builder_value(b) && packed(b, msgpack_pack_nil(&b->pk));
}

static int on_boolean(void *ctx, int v)
{
	struct mp_builder *b = ctx;

	return builder_value(b) &&
	       packed(b, v ? msgpack_pack_true(&b->pk) : msgpack_pack_false(&b->pk));
}

/* ------------------------------------------------------------------------
 * Numbers, and where a refused one sits.
 */

static bool key_is_plain(const char *k, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)k[i];

		if (!(c == '_' || c == '-' || (c >= '0' && c <= '9') ||
		      ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')))
			return false;
	}
	return true;
}

/* One step of a path: [3], .key, or ["other key"] (as a JSON string). The
 * key is cut after PATH_KEY_SHOWN bytes, at a character, so that the
 * message stays UTF-8. Returns the length written; step holds at least
 * 6 * PATH_KEY_SHOWN + 16 bytes. */
static size_t path_step(const struct mp_container *c, const char *buf, char *step)
{
	const char *k = buf + c->key_at;
	size_t len = c->key_len, n = 0;
	bool plain, cut = len > PATH_KEY_SHOWN;

	if (!c->is_map)
		return (size_t)sprintf(step, "[%" PRIu32 "]", c->count - 1);
	if (cut) {
		len = PATH_KEY_SHOWN;
		while (len > 0 && ((unsigned char)k[len] & 0xc0) == 0x80)
			len--;
	}
	plain = key_is_plain(k, len);
	n += (size_t)sprintf(step, plain ? "." : "[\"");
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)k[i];

		if (ch == '"' || ch == '\\')
			n += (size_t)sprintf(step + n, "\\%c", ch);
		else if (ch < 0x20)
			n += (size_t)sprintf(step + n, "\\u%04x", ch);
		else
			step[n++] = (char)ch;
	}
	n += (size_t)sprintf(step + n, "%s%s", cut ? "..." : "", plain ? "" : "\"]");
	return n;
}

/* Where the value being read sits: context_pack.files[2]["a b"]. A path
 * longer than PATH_SHOWN ends in "...". */
static void builder_path(const struct mp_builder *b, char out[PATH_SHOWN + 4])
{
	char step[6 * PATH_KEY_SHOWN + 16];
	size_t n = (size_t)sprintf(out, "context_pack");

	for (unsigned i = 0; i < b->depth; i++) {
		size_t len = path_step(&b->stack[i], b->out->data, step);

		if (n + len > PATH_SHOWN) {
			memcpy(out + n, "...", 4);
			return;
		}
		memcpy(out + n, step, len + 1);
		n += len;
	}
}

/* Refuses the number text (NUL-terminated, len bytes), with its path. */
static int number_refused(struct mp_builder *b, const char *text, size_t len,
			  bool integer)
{
	char path[PATH_SHOWN + 4];
	int shown = len > NUMBER_SHOWN ? NUMBER_SHOWN : (int)len;

	if (b->rc != ATOLOG_OK)
		return 0;
	builder_path(b, path);
	if (integer)
		snprintf(b->why, sizeof(b->why), "%s: the integer %.*s%s does not fit "
			 "in 64 bits (integers are kept exactly from %" PRId64 " to %"
			 PRIu64 "; send a larger one as a string)", path, shown, text,
			 (size_t)shown < len ? "..." : "", INT64_MIN, UINT64_MAX);
	else
		snprintf(b->why, sizeof(b->why), "%s: the number %.*s%s is beyond the "
			 "range of a 64-bit float (about 1.8e308)", path, shown, text,
			 (size_t)shown < len ? "..." : "");
	b->rc = ATOLOG_INVALID;
	return 0;
}

/* An integer literal stays an integer, exactly; anything else is the
 * nearest float64. What neither holds is refused (1 packed, 0 refused). */
static int pack_number(struct mp_builder *b, const char *text, size_t len)
{
	bool integer = !strpbrk(text, ".eE");
	char *end;
	double d;

	if (integer) {
		long long v;
		unsigned long long u;

		errno = 0;
		v = strtoll(text, &end, 10);
		if (errno == 0 && *end == '\0')
			return packed(b, msgpack_pack_int64(&b->pk, v));
		errno = 0;
		u = strtoull(text, &end, 10);
		if (errno == 0 && *end == '\0' && text[0] != '-')
			return packed(b, msgpack_pack_uint64(&b->pk, u));
		return number_refused(b, text, len, true);
	}
	/* Underflow is rounding: 1e-400 is 0.0, as every JSON reader says. */
	d = strtod(text, NULL);
	if (isinf(d))
		return number_refused(b, text, len, false);
	return packed(b, msgpack_pack_double(&b->pk, d));
}

static int on_number(void *ctx, const char *s, size_t len)
{
	struct mp_builder *b = ctx;
	char small[NUMBER_TEXT_MAX + 1], *text = small;
	int r;

	if (!builder_value(b))
		return 0;
	if (len > NUMBER_TEXT_MAX && !(text = malloc(len + 1)))
		return builder_fail(b, ENOMEM, "out of memory");
	memcpy(text, s, len);
	text[len] = '\0';
	r = pack_number(b, text, len);
	if (text != small)
		free(text);
	return r;
}

/* yajl lets overlong forms and surrogates through: check strictly. */
static int builder_utf8(struct mp_builder *b, const unsigned char *s, size_t len)
{
	if (text_is_utf8((const char *)s, len))
		return 1;
	return builder_fail(b, ATOLOG_INVALID, "context_pack holds a string that "
			    "is not valid UTF-8");
}

static int on_string(void *ctx, const unsigned char *s, size_t len)
{
	struct mp_builder *b = ctx;

	return builder_value(b) && builder_utf8(b, s, len) &&
	       packed(b, msgpack_pack_str_with_body(&b->pk, s, len));
}

static int on_map_key(void *ctx, const unsigned char *s, size_t len)
{
	struct mp_builder *b = ctx;
	struct mp_container *c = &b->stack[b->depth - 1];

	c->count++;
	if (!builder_utf8(b, s, len) ||
	    !packed(b, msgpack_pack_str_with_body(&b->pk, s, len)))
		return 0;
	/* Where the key's bytes now are: a message may name it (builder_path). */
	c->key_at = b->out->size - len;
	c->key_len = (uint32_t)len;
	return 1;
}

static int on_start_map(void *ctx)
{
	return builder_open(ctx, true);
}

static int on_start_array(void *ctx)
{
	return builder_open(ctx, false);
}

static int on_end(void *ctx)
{
	return builder_close(ctx);
}

static const yajl_callbacks builder_callbacks = {
	.yajl_null = on_null,
	.yajl_boolean = on_boolean,
	.yajl_number = on_number,
	.yajl_string = on_string,
	.yajl_start_map = on_start_map,
	.yajl_map_key = on_map_key,
	.yajl_end_map = on_end,
	.yajl_start_array = on_start_array,
	.yajl_end_array = on_end,
};

void json_parse_reason(yajl_handle h, const char *text, size_t len, char *out,
		       size_t size)
{
	unsigned char *msg = yajl_get_error(h, 0, (const unsigned char *)text, len);
	const char *m = msg ? (const char *)msg : "parse error";
	int line = (int)strcspn(m, "\n"); /* one line: no excerpt, no arrow */

	snprintf(out, size, "%.*s at byte %zu", line, m, yajl_get_bytes_consumed(h));
	if (msg)
		yajl_free_error(h, msg);
}

int context_json_to_msgpack(const char *json, size_t len, msgpack_sbuffer *out)
{
	struct mp_builder b = { .out = out };
	yajl_handle h;
	yajl_status st;
	char reason[160];
	size_t at;

	if (!json_surrogates_paired(json, len, &at))
		return err_set(ATOLOG_INVALID, "context_pack is not JSON: an unpaired "
			       "UTF-16 surrogate escape at byte %zu", at);
	h = yajl_alloc(&builder_callbacks, NULL, &b);
	if (!h)
		return err_set(ENOMEM, "parsing context_pack");
	msgpack_packer_init(&b.pk, out, msgpack_sbuffer_write);
	st = yajl_parse(h, (const unsigned char *)json, len);
	if (st == yajl_status_ok)
		st = yajl_complete_parse(h);
	if (st == yajl_status_error)
		json_parse_reason(h, json, len, reason, sizeof(reason));
	yajl_free(h);
	if (b.rc == ATOLOG_TOOBIG)
		return err_set(b.rc, "context_pack nests deeper than %u levels",
			       ATOLOG_CONTEXT_MAX_DEPTH);
	if (b.rc != ATOLOG_OK)
		return err_set(b.rc, "%s", b.why);
	if (st != yajl_status_ok)
		return err_set(ATOLOG_INVALID, "context_pack is not JSON: %s", reason);
	if (!b.started)
		return err_set(ATOLOG_INVALID, "context_pack must be a JSON object");
	return ATOLOG_OK;
}

/* ------------------------------------------------------------------------
 * msgpack -> JSON.
 */

/* Writes v in decimal, at least min_digits long (zero-padded); returns
 * the end. snprintf costs more than the rest of a number's conversion. */
static char *put_u64(char *out, uint64_t v, int min_digits)
{
	char digits[20];
	int n = 0;

	do {
		digits[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n < min_digits)
		digits[n++] = '0';
	while (n)
		*out++ = digits[--n];
	return out;
}

#define DECIMAL_FAST_FRACTION 9 /* fraction digits the fast path tries */
#define DECIMAL_FAST_LIMIT 1e15  /* m below this: at most 15 digits */

/*
 * The fast path of gen_double, for the values context packs mostly hold
 * (scores, timings: a few decimals): the fewest fraction digits k such
 * that m / 10^k reads back as v. IEEE division is correctly rounded, as
 * strtod is, so (double)m / 10^k == v says exactly that "m e-k" reads back
 * as v, without printing or parsing. Limited to where %.15g prints fixed
 * notation (1e-4 <= |v| < 1e15) and m has at most 15 digits, where %.15g
 * prints the same digits, so the output does not depend on the path.
 * Returns the length written, or 0 to leave v to the slow path.
 */
static int decimal_fast(double v, char *text)
{
	static const double p10[DECIMAL_FAST_FRACTION + 1] = {
		1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9
	};
	double a = fabs(v);

	if (!(a >= 1e-4 && a < DECIMAL_FAST_LIMIT))
		return 0;
	for (int k = 0; k <= DECIMAL_FAST_FRACTION; k++) {
		double x = a * p10[k];
		long long m;
		char *p = text;

		if (x >= DECIMAL_FAST_LIMIT)
			return 0;
		m = llround(x);
		if (m >= (long long)DECIMAL_FAST_LIMIT || (double)m / p10[k] != a)
			continue;
		if (v < 0)
			*p++ = '-';
		p = put_u64(p, (uint64_t)m / (uint64_t)p10[k], 1);
		*p++ = '.';
		p = put_u64(p, k ? (uint64_t)m % (uint64_t)p10[k] : 0, k ? k : 1);
		*p = '\0';
		return (int)(p - text);
	}
	return 0;
}

/* The shortest text that reads back as v, marked as a float. */
static int gen_double(yajl_gen g, double v)
{
	char text[40];
	int n = decimal_fast(v, text); /* at most 1 + 15 + 1 + 1 bytes */

	if (n > 0)
		return yajl_gen_number(g, text, (size_t)n) == yajl_gen_status_ok ? 0 : -1;
	for (int digits = 15; digits <= 17; digits++) {
		n = snprintf(text, sizeof(text) - 2, "%.*g", digits, v);
		if (strtod(text, NULL) == v)
			break;
	}
	if (!strpbrk(text, ".eEn")) {
		text[n++] = '.';
		text[n++] = '0';
		text[n] = '\0';
	}
	return yajl_gen_number(g, text, (size_t)n) == yajl_gen_status_ok ? 0 : -1;
}

static int gen_scalar(yajl_gen g, const msgpack_object *o)
{
	char text[24];

	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		return yajl_gen_null(g) == yajl_gen_status_ok ? 0 : -1;
	case MSGPACK_OBJECT_BOOLEAN:
		return yajl_gen_bool(g, o->via.boolean) == yajl_gen_status_ok ? 0 : -1;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		return yajl_gen_number(g, text, (size_t)(put_u64(text, o->via.u64, 1) - text)) ==
			       yajl_gen_status_ok ? 0 : -1;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		text[0] = '-';
		return yajl_gen_number(g, text, (size_t)(put_u64(text + 1,
				       -(uint64_t)o->via.i64, 1) - text)) ==
			       yajl_gen_status_ok ? 0 : -1;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		return isfinite(o->via.f64) ? gen_double(g, o->via.f64) : -1;
	case MSGPACK_OBJECT_STR:
		return json_gen_string(g, o->via.str.ptr, o->via.str.size);
	default:
		return -1; /* bin, ext: not JSON */
	}
}

int json_gen_string(yajl_gen g, const char *s, size_t len)
{
	if (!text_is_utf8(s, len))
		return -1;
	return yajl_gen_string(g, (const unsigned char *)s, len) ==
	       yajl_gen_status_ok ? 0 : -1;
}

/* True when a later key of the map repeats key i: JSON readers (and the
 * seed's dicts) keep the last of equal keys, so the earlier is not shown. */
static bool key_repeated_later(const msgpack_object_map *m, uint32_t i)
{
	const msgpack_object_str *k = &m->ptr[i].key.via.str;

	for (uint32_t j = i + 1; j < m->size; j++) {
		const msgpack_object_str *l = &m->ptr[j].key.via.str;

		if (m->ptr[j].key.type == MSGPACK_OBJECT_STR && l->size == k->size &&
		    memcmp(l->ptr, k->ptr, k->size) == 0)
			return true;
	}
	return false;
}

static int gen_map(yajl_gen g, const msgpack_object_map *m)
{
	if (yajl_gen_map_open(g) != yajl_gen_status_ok)
		return -1;
	for (uint32_t i = 0; i < m->size; i++) {
		const msgpack_object_kv *kv = &m->ptr[i];

		if (kv->key.type != MSGPACK_OBJECT_STR)
			return -1;
		if (key_repeated_later(m, i))
			continue;
		if (gen_scalar(g, &kv->key) != 0 || context_gen(g, &kv->val) != 0)
			return -1;
	}
	return yajl_gen_map_close(g) == yajl_gen_status_ok ? 0 : -1;
}

int context_gen(yajl_gen g, const msgpack_object *o)
{
	if (o->type == MSGPACK_OBJECT_MAP)
		return gen_map(g, &o->via.map);
	if (o->type == MSGPACK_OBJECT_ARRAY) {
		if (yajl_gen_array_open(g) != yajl_gen_status_ok)
			return -1;
		for (uint32_t i = 0; i < o->via.array.size; i++) {
			if (context_gen(g, &o->via.array.ptr[i]) != 0)
				return -1;
		}
		return yajl_gen_array_close(g) == yajl_gen_status_ok ? 0 : -1;
	}
	return gen_scalar(g, o);
}

/* No yajl_gen_validate_utf8: every string reaches the generator checked
 * already, by json_gen_string or, when copied from JSON text, by yajl's
 * parser (which validates unless told not to). Checking twice cost a
 * tenth of rendering a context pack. */
yajl_gen json_gen_new(void)
{
	return yajl_gen_alloc(NULL);
}

int json_gen_take(yajl_gen g, char **out)
{
	const unsigned char *buf;
	size_t len;

	if (yajl_gen_get_buf(g, &buf, &len) != yajl_gen_status_ok)
		return err_set(ENOMEM, "rendering JSON");
	*out = strndup((const char *)buf, len);
	return *out ? ATOLOG_OK : err_set(ENOMEM, "rendering JSON");
}

int context_to_json(const msgpack_object *obj, char **out)
{
	yajl_gen g = json_gen_new();
	int rc;

	if (!g)
		return err_set(ENOMEM, "rendering context_pack");
	rc = context_gen(g, obj) == 0
		     ? json_gen_take(g, out)
		     : err_set(ATOLOG_CORRUPT, "context_pack holds a value JSON "
			       "cannot represent");
	yajl_gen_free(g);
	return rc;
}

/* ------------------------------------------------------------------------
 * JSON -> JSON: replaying parse events into a generator, to embed a JSON
 * text as a value of a larger document (yajl has no "raw" output).
 */

static int copy_null(void *g)
{
	return yajl_gen_null(g) == yajl_gen_status_ok;
}

static int copy_boolean(void *g, int v)
{
	return yajl_gen_bool(g, v) == yajl_gen_status_ok;
}

static int copy_number(void *g, const char *s, size_t len)
{
	return yajl_gen_number(g, s, len) == yajl_gen_status_ok;
}

static int copy_string(void *g, const unsigned char *s, size_t len)
{
	return yajl_gen_string(g, s, len) == yajl_gen_status_ok;
}

static int copy_map_open(void *g)
{
	return yajl_gen_map_open(g) == yajl_gen_status_ok;
}

static int copy_map_close(void *g)
{
	return yajl_gen_map_close(g) == yajl_gen_status_ok;
}

static int copy_array_open(void *g)
{
	return yajl_gen_array_open(g) == yajl_gen_status_ok;
}

static int copy_array_close(void *g)
{
	return yajl_gen_array_close(g) == yajl_gen_status_ok;
}

static const yajl_callbacks copy_callbacks = {
	.yajl_null = copy_null,
	.yajl_boolean = copy_boolean,
	.yajl_number = copy_number,
	.yajl_string = copy_string,
	.yajl_start_map = copy_map_open,
	.yajl_map_key = copy_string,
	.yajl_end_map = copy_map_close,
	.yajl_start_array = copy_array_open,
	.yajl_end_array = copy_array_close,
};

int json_gen_copy(yajl_gen g, const char *json, size_t len)
{
	yajl_handle h = yajl_alloc(&copy_callbacks, NULL, g);
	yajl_status st;

	if (!h)
		return -1;
	st = yajl_parse(h, (const unsigned char *)json, len);
	if (st == yajl_status_ok)
		st = yajl_complete_parse(h);
	yajl_free(h);
	return st == yajl_status_ok ? 0 : -1;
}
