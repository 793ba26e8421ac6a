/*
 * mpcheck.c - a bounds walk over msgpack bytes before msgpack-c sees them.
 *
 * Why: msgpack-c trusts the counts and lengths in its input. A five-byte
 * array header claiming four billion elements makes it allocate for four
 * billion objects before it notices the data ends; nesting deeper than its
 * fixed stack (MSGPACK_EMBED_STACK_SIZE, 32) fails mid-parse. A frame
 * checksum proves the bytes are the ones written, not that a writer was
 * honest, so every payload is walked here first: each string, binary and
 * extension length must fit in what remains, each container count must be
 * coverable by the remaining bytes (an element takes at least one), the
 * nesting must stay within max_depth, and the buffer must hold exactly one
 * object. The walk decodes nothing; msgpack-c still does the parsing.
 */
#include "codec.h"

struct mp_cursor {
	const uint8_t *p;
	size_t left;
};

/* Reads a big-endian unsigned of n bytes (msgpack's byte order). */
static bool mp_read_uint(struct mp_cursor *c, size_t n, uint64_t *out)
{
	uint64_t v = 0;

	if (c->left < n)
		return false;
	for (size_t i = 0; i < n; i++)
		v = (v << 8) | c->p[i];
	c->p += n;
	c->left -= n;
	*out = v;
	return true;
}

static bool mp_skip(struct mp_cursor *c, uint64_t n)
{
	if (c->left < n)
		return false;
	c->p += n;
	c->left -= n;
	return true;
}

static bool mp_walk(struct mp_cursor *c, unsigned depth_left);

static bool mp_walk_items(struct mp_cursor *c, uint64_t n, unsigned depth_left)
{
	if (depth_left == 0 || n > c->left)
		return false;
	for (uint64_t i = 0; i < n; i++) {
		if (!mp_walk(c, depth_left - 1))
			return false;
	}
	return true;
}

/* Width of the length field of the sized types (str, bin, ext, containers). */
static size_t mp_len_width(uint8_t t)
{
	switch (t) {
	case 0xc4: case 0xc7: case 0xd9:
		return 1;
	case 0xc5: case 0xc8: case 0xda: case 0xdc: case 0xde:
		return 2;
	default:
		return 4;
	}
}

static bool mp_walk(struct mp_cursor *c, unsigned depth_left)
{
	uint64_t n;
	uint8_t t;

	if (c->left == 0)
		return false;
	t = *c->p++;
	c->left--;
	if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3)
		return true; /* fixint, nil, bool */
	if (t >= 0x80 && t <= 0x8f)
		return mp_walk_items(c, 2u * (t & 0x0f), depth_left);
	if (t >= 0x90 && t <= 0x9f)
		return mp_walk_items(c, t & 0x0f, depth_left);
	if (t >= 0xa0 && t <= 0xbf)
		return mp_skip(c, t & 0x1f);
	switch (t) {
	case 0xca: return mp_skip(c, 4);
	case 0xcb: return mp_skip(c, 8);
	case 0xcc: case 0xd0: return mp_skip(c, 1);
	case 0xcd: case 0xd1: return mp_skip(c, 2);
	case 0xce: case 0xd2: return mp_skip(c, 4);
	case 0xcf: case 0xd3: return mp_skip(c, 8);
	case 0xd4: return mp_skip(c, 2);
	case 0xd5: return mp_skip(c, 3);
	case 0xd6: return mp_skip(c, 5);
	case 0xd7: return mp_skip(c, 9);
	case 0xd8: return mp_skip(c, 17);
	case 0xc4: case 0xc5: case 0xc6: /* bin */
	case 0xd9: case 0xda: case 0xdb: /* str */
		return mp_read_uint(c, mp_len_width(t), &n) && mp_skip(c, n);
	case 0xc7: case 0xc8: case 0xc9: /* ext: length, then a type byte */
		return mp_read_uint(c, mp_len_width(t), &n) && mp_skip(c, n + 1);
	case 0xdc: case 0xdd: /* array */
		return mp_read_uint(c, mp_len_width(t), &n) &&
		       mp_walk_items(c, n, depth_left);
	case 0xde: case 0xdf: /* map */
		return mp_read_uint(c, mp_len_width(t), &n) &&
		       mp_walk_items(c, 2 * n, depth_left);
	default: /* 0xc1 is never used */
		return false;
	}
}

bool mp_is_bounded(const void *buf, size_t len, unsigned max_depth)
{
	struct mp_cursor c = { .p = buf, .left = len };

	return mp_walk(&c, max_depth) && c.left == 0;
}
