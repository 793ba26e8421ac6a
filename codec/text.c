/*
 * text.c - the few text rules a record enforces: strings are valid UTF-8
 * (msgpack str and JSON both promise it), a prompt is "blank" when it holds
 * only whitespace as Python's str.strip() sees it (the seed's rule), and
 * project names match the registry without regard to ASCII case or
 * surrounding ASCII blanks, the same in every locale.
 */
#include <string.h>

#include "codec.h"

/* Decodes one code point at s[*i]; -1 when the sequence is not valid UTF-8
 * (overlong forms, surrogates and values past U+10FFFF are invalid). */
static int32_t utf8_next(const unsigned char *s, size_t len, size_t *i)
{
	unsigned char c = s[*i];
	int32_t cp, min;
	size_t n;

	if (c < 0x80) {
		*i += 1;
		return c;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		n = 1, cp = c & 0x1f, min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 2, cp = c & 0x0f, min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 3, cp = c & 0x07, min = 0x10000;
	} else {
		return -1;
	}
	if (len - *i <= n)
		return -1;
	for (size_t k = 1; k <= n; k++) {
		if ((s[*i + k] & 0xc0) != 0x80)
			return -1;
		cp = (cp << 6) | (s[*i + k] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return -1;
	*i += n + 1;
	return cp;
}

/* True when the 8 bytes at p are all ASCII (the common case, checked a
 * word at a time; memcpy keeps the load aligned-safe). */
static bool ascii8(const char *p)
{
	uint64_t w;

	memcpy(&w, p, sizeof(w));
	return (w & UINT64_C(0x8080808080808080)) == 0;
}

bool text_is_utf8(const char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		if (len - i >= 8 && ascii8(s + i)) {
			i += 8;
			continue;
		}
		if (utf8_next((const unsigned char *)s, len, &i) < 0)
			return false;
	}
	return true;
}

/* Python's str.isspace() set. */
static bool is_unicode_space(int32_t cp)
{
	if ((cp >= 0x09 && cp <= 0x0d) || (cp >= 0x1c && cp <= 0x20))
		return true;
	switch (cp) {
	case 0x85: case 0xa0: case 0x1680: case 0x2028: case 0x2029:
	case 0x202f: case 0x205f: case 0x3000:
		return true;
	default:
		return cp >= 0x2000 && cp <= 0x200a;
	}
}

bool text_is_blank(const char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		int32_t cp = utf8_next((const unsigned char *)s, len, &i);

		if (cp < 0 || !is_unicode_space(cp))
			return false;
	}
	return true;
}

/* The registry's blanks: ASCII space, \t \n \v \f \r. Not isspace():
 * that follows the host program's locale, and registry keys must not. */
static bool ascii_blank(char c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

struct text text_from_cstr(const char *s)
{
	struct text t = { .ptr = s ? s : "", .len = s ? strlen(s) : 0 };

	return t;
}

struct text text_trim(const char *s, size_t len)
{
	struct text t = { .ptr = s, .len = len };

	while (t.len > 0 && ascii_blank(t.ptr[0])) {
		t.ptr++;
		t.len--;
	}
	while (t.len > 0 && ascii_blank(t.ptr[t.len - 1]))
		t.len--;
	return t;
}

size_t text_fold_name(const char *s, size_t len, char *out)
{
	struct text t = text_trim(s, len);

	for (size_t i = 0; i < t.len; i++) {
		char c = t.ptr[i];

		out[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
	}
	out[t.len] = '\0';
	return t.len;
}

/* The UTF-16 code unit of the \uXXXX escape at s[i] ('\\' at i), or -1. */
static int32_t json_escape_unit(const char *s, size_t len, size_t i)
{
	int32_t v = 0;

	if (len - i < 6 || s[i] != '\\' || s[i + 1] != 'u')
		return -1;
	for (size_t k = 2; k < 6; k++) {
		char c = s[i + k];
		int d = c >= '0' && c <= '9' ? c - '0' :
			c >= 'a' && c <= 'f' ? c - 'a' + 10 :
			c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;

		if (d < 0)
			return -1;
		v = v * 16 + d;
	}
	return v;
}

/*
 * yajl turns a high surrogate escape without its low half into '?' and
 * refuses a low one alone: one silently changes the text, so both are
 * refused here, before yajl sees the document. A backslash can only stand
 * inside a string in valid JSON, so no string tracking is needed: every
 * escape is stepped over whole, and anything else is yajl's to judge.
 */
bool json_surrogates_paired(const char *s, size_t len, size_t *at)
{
	for (size_t i = 0; i + 1 < len; i++) {
		const char *bs = memchr(s + i, '\\', len - i);
		int32_t u;

		if (!bs)
			break;
		i = (size_t)(bs - s);
		u = json_escape_unit(s, len, i);
		if (u < 0xd800 || u > 0xdfff) {
			i++; /* \" \\ \n ... or a plain \uXXXX */
			continue;
		}
		if (u >= 0xdc00 || json_escape_unit(s, len, i + 6) < 0xdc00 ||
		    json_escape_unit(s, len, i + 6) > 0xdfff) {
			*at = i;
			return false;
		}
		i += 11;
	}
	return true;
}
