/*
 * fuzz_frame.c - the fixed layouts of a segment: the frame header, the
 * segment header and the seal frame's payload (codec/frame.c), with the
 * payload of a record or registry frame checked for bounds.
 *
 * An input whose first byte is odd has its checksums made for it (the
 * frame's over the header and payload that follow, the segment header's
 * over its first 56 bytes), so that what lies behind a checksum is
 * explored too; an even one is taken as it is.
 *
 * Properties: a header is read or refused, never a crash; one that reads
 * is written back to the same fields; a frame whose checksum was made
 * passes frame_checksum_ok, and one byte changed in it fails it; a
 * segment header that reads is written back to the same 64 bytes.
 */
#include <string.h>
#include <xxhash.h>

#include "bytes.h"
#include "codec.h"
#include "fuzz.h"

#define FUZZ_MP_DEPTH 8 /* containers nested in a payload, for mp_is_bounded */

static void check_frame(uint8_t *buf, size_t size, bool made)
{
	struct frame_header h, again;
	uint64_t last_seq;

	if (size < FRAME_HEADER_SIZE || !frame_header_read(buf, &h))
		return;
	if (h.payload_len > size - FRAME_HEADER_SIZE)
		return; /* a torn frame: scan's concern */
	if (made)
		frame_header_write(buf, h.kind, h.flags, h.seq, h.payload_len);
	FUZZ_CHECK(frame_header_read(buf, &again));
	FUZZ_CHECK(again.kind == h.kind && again.flags == h.flags &&
		   again.seq == h.seq && again.payload_len == h.payload_len);
	if (made) {
		FUZZ_CHECK(frame_checksum_ok(buf, h.payload_len));
		buf[size / 2] ^= 0x01;
		FUZZ_CHECK(!frame_checksum_ok(buf, h.payload_len) ||
			   size / 2 >= FRAME_HEADER_SIZE + h.payload_len);
		buf[size / 2] ^= 0x01;
	}
	if (!frame_checksum_ok(buf, h.payload_len))
		return;
	const uint8_t *payload = buf + FRAME_HEADER_SIZE;

	if (h.kind == FRAME_KIND_SEAL) {
		int rc = seal_decode(payload, h.payload_len, &last_seq);

		FUZZ_CHECK(rc == ATOLOG_OK || rc == ATOLOG_CORRUPT || rc == ENOMEM);
	} else {
		(void)mp_is_bounded(payload, h.payload_len, FUZZ_MP_DEPTH);
	}
}

static void check_segment_header(uint8_t *buf, size_t size, bool made)
{
	struct segment_header h, again;
	uint8_t written[SEGMENT_HEADER_SIZE];
	int rc;

	if (size < SEGMENT_HEADER_SIZE)
		return;
	if (made)
		put_le64(buf + SEGMENT_HEADER_SUM_AT,
			 XXH3_64bits(buf, SEGMENT_HEADER_SUM_AT));
	rc = segment_header_read(buf, &h);
	FUZZ_CHECK(rc == ATOLOG_OK || rc == ATOLOG_CORRUPT || rc == ATOLOG_VERSION);
	if (rc != ATOLOG_OK)
		return;
	segment_header_write(written, &h);
	FUZZ_CHECK(memcmp(written, buf, SEGMENT_HEADER_SIZE) == 0);
	FUZZ_CHECK(segment_header_read(written, &again) == ATOLOG_OK);
	FUZZ_CHECK(again.major == h.major && again.minor == h.minor &&
		   again.segment_id == h.segment_id &&
		   memcmp(again.store_id, h.store_id, UUID_SIZE) == 0 &&
		   again.created_at == h.created_at && again.compaction == h.compaction);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *buf;
	bool made;

	if (size == 0)
		return 0;
	made = data[0] & 1;
	buf = malloc(size - 1 ? size - 1 : 1);
	FUZZ_CHECK(buf != NULL);
	memcpy(buf, data + 1, size - 1);
	check_frame(buf, size - 1, made);
	memcpy(buf, data + 1, size - 1);
	check_segment_header(buf, size - 1, made);
	free(buf);
	return 0;
}
