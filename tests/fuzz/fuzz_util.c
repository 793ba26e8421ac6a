/*
 * fuzz_util.c - helpers of fuzz.h, linked into every target.
 */
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <xxhash.h>

#include "bytes.h"
#include "codec.h"
#include "fuzz.h"

char *fuzz_strndup(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	FUZZ_CHECK(s != NULL);
	if (size)
		memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

void fuzz_make_checksums(uint8_t *buf, size_t size)
{
	struct frame_header h;
	size_t off = SEGMENT_HEADER_SIZE;

	if (size < SEGMENT_HEADER_SIZE)
		return;
	put_le64(buf + SEGMENT_HEADER_SUM_AT, XXH3_64bits(buf, SEGMENT_HEADER_SUM_AT));
	while (off + FRAME_HEADER_SIZE <= size && frame_header_read(buf + off, &h) &&
	       h.payload_len <= size - off - FRAME_HEADER_SIZE) {
		frame_header_write(buf + off, h.kind, h.flags, h.seq, h.payload_len);
		off += FRAME_HEADER_SIZE + h.payload_len;
	}
}

uint8_t *fuzz_segment_input(const uint8_t *data, size_t size, size_t *len)
{
	uint8_t *buf = malloc(size);

	FUZZ_CHECK(buf != NULL);
	*len = size - 1;
	memcpy(buf, data + 1, *len);
	if (data[0] & 1)
		fuzz_make_checksums(buf, *len);
	return buf;
}

static int remove_entry(const char *path, const struct stat *st, int flag,
			struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

void fuzz_remove_tree(const char *path)
{
	nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}
