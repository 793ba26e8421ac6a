/*
 * fuzz_scan.c - recovery's walk over a segment file (scan_segment): the
 * input is the file, header included, in a memory file; the walk starts
 * after the 64-byte segment header, as recovery's does.
 *
 * An input whose first byte is odd has its frames' checksums made for it
 * as far as its headers chain (and the segment header's), so that what a
 * writer could have written, then damaged, is explored; an even one is
 * taken as it is.
 *
 * Properties, each checked against a reading of the bytes written from
 * the rules of docs/FORMAT.md §7:
 * the frames reported are contiguous from the start, each passes its
 * checksum and no frame follows a seal; the walk ends where the last of
 * them ends; a clean end has only zeros (or nothing) after it; a torn end
 * has no valid SYNC_START frame at any offset after it; and corruption is
 * reported, with the segment and offset, exactly when there is one.
 */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "codec.h"
#include "engine.h"
#include "fuzz.h"

#define FUZZ_SEGMENT_ID 7
#define FUZZ_SCAN_BRUTE_MAX (1u << 20) /* bytes brute-forced after a stop */

struct walk {
	const uint8_t *file;
	size_t size;
	uint64_t next;  /* where the next frame must start */
	uint8_t last_kind;
	size_t frames;
};

/* Whether a valid frame starts at off of buf (size bytes). */
static bool frame_valid_at(const uint8_t *buf, size_t size, size_t off,
			   struct frame_header *h)
{
	if (off + FRAME_HEADER_SIZE > size || !frame_header_read(buf + off, h))
		return false;
	if (h->payload_len > size - off - FRAME_HEADER_SIZE)
		return false;
	return frame_checksum_ok(buf + off, h->payload_len);
}

static int on_frame(const struct log_frame *f, void *ctx)
{
	struct walk *w = ctx;
	struct frame_header h;

	FUZZ_CHECK(f->segment == FUZZ_SEGMENT_ID);
	FUZZ_CHECK(f->offset == w->next);
	FUZZ_CHECK(w->last_kind != FRAME_KIND_SEAL);
	FUZZ_CHECK(frame_valid_at(w->file, w->size, f->offset, &h));
	FUZZ_CHECK(f->length == FRAME_HEADER_SIZE + h.payload_len);
	FUZZ_CHECK(memcmp(f->payload, w->file + f->offset + FRAME_HEADER_SIZE,
			  h.payload_len) == 0);
	w->next = f->offset + f->length;
	w->last_kind = h.kind;
	w->frames++;
	return 0;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i])
			return false;
	}
	return true;
}

/* The first offset after off where a valid SYNC_START frame starts, or 0,
 * by the rule of docs/FORMAT.md §7: a valid frame without the flag is
 * stepped over whole (its payload is not searched), anything else byte by
 * byte. Written from the rule, not from scan.c. */
static size_t sync_start_after(const uint8_t *buf, size_t size, size_t off)
{
	struct frame_header h;
	size_t p = off + 1;

	while (p + FRAME_HEADER_SIZE <= size) {
		if (!frame_valid_at(buf, size, p, &h)) {
			p++;
		} else if (h.flags & FRAME_FLAG_SYNC_START) {
			return p;
		} else {
			p += FRAME_HEADER_SIZE + h.payload_len;
		}
	}
	return 0;
}

static void check_scan(const uint8_t *buf, size_t size, int fd)
{
	struct walk w = { .file = buf, .size = size, .next = SEGMENT_HEADER_SIZE };
	struct scan_start from = { .segment_id = FUZZ_SEGMENT_ID,
				   .offset = SEGMENT_HEADER_SIZE };
	struct scan_result res;
	struct frame_header h;
	int rc = scan_segment(fd, &from, on_frame, &w, &res);

	FUZZ_CHECK(rc == ATOLOG_OK || rc == ATOLOG_CORRUPT || rc == ENOMEM);
	if (rc == ENOMEM)
		return;
	if (rc == ATOLOG_CORRUPT) {
		const char *msg = atolog_errmsg(NULL);

		FUZZ_CHECK(strstr(msg, "segment 0000000000000007 offset ") != NULL);
		/* After the seal, or before a later sync's frame. */
		FUZZ_CHECK(w.last_kind == FRAME_KIND_SEAL ||
			   size > FUZZ_SCAN_BRUTE_MAX ||
			   sync_start_after(buf, size, w.next) != 0);
		return;
	}
	FUZZ_CHECK(res.file_size == size);
	FUZZ_CHECK(res.valid_end == (size < SEGMENT_HEADER_SIZE ? SEGMENT_HEADER_SIZE
								: w.next));
	FUZZ_CHECK(res.last_kind == w.last_kind);
	if (w.next < size) {
		/* The walk stopped on something that is not a valid frame. */
		FUZZ_CHECK(!frame_valid_at(buf, size, w.next, &h) ||
			   w.last_kind == FRAME_KIND_SEAL);
	}
	if (res.end == SCAN_END_CLEAN) {
		FUZZ_CHECK(w.next >= size || all_zero(buf + w.next, size - w.next));
	} else {
		FUZZ_CHECK(res.end == SCAN_END_TORN && res.why != NULL);
		FUZZ_CHECK(size > FUZZ_SCAN_BRUTE_MAX ||
			   sync_start_after(buf, size, w.next) == 0);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *buf;
	int fd;

	if (size == 0)
		return 0;
	buf = fuzz_segment_input(data, size, &size);
	fd = memfd_create("fuzz-segment", MFD_CLOEXEC);
	FUZZ_CHECK(fd >= 0);
	FUZZ_CHECK(size == 0 || write(fd, buf, size) == (ssize_t)size);
	check_scan(buf, size, fd);
	close(fd);
	free(buf);
	return 0;
}
