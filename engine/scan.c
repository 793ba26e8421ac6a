/*
 * scan.c - walking the frames of a segment and deciding where its valid
 * log ends.
 *
 * Frames are read in order from a start offset. The walk stops at the
 * first frame that is not valid (see codec/frame.c for validity) and
 * classifies the stop by one explicit rule:
 *
 *   - end of file, or zero bytes from there to the end of file (space that
 *     was pre-allocated and never written): a clean end;
 *   - a bad frame after which no valid frame carries SYNC_START: a torn
 *     tail. Everything from the bad frame on was written after the last
 *     completed fdatasync, so none of it was acknowledged as durable; the
 *     OS may have written its pages in any order, leaving holes before
 *     frames that did reach the disk. Recovery cuts the file there;
 *   - a bad frame followed by a valid SYNC_START frame: corruption. That
 *     frame was written after an fdatasync that covered the bad one, so
 *     durable, acknowledged bytes have changed. This is reported with the
 *     segment and offset and never skipped.
 *
 * A seal frame ends a segment: any valid frame after one is corruption.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine.h"
#include "error.h"

#define SCAN_CHUNK (1u << 20)

/* A window over the file, refilled as the walk moves. */
struct log_reader {
	int fd;
	uint8_t *buf;
	size_t cap;
	uint64_t base; /* file offset of buf[0] */
	size_t len;    /* valid bytes in buf */
	uint64_t file_size;
};

/* Makes [off, off+n) available; *out NULL when the file is shorter. */
static int reader_fetch(struct log_reader *r, uint64_t off, size_t n,
			const uint8_t **out)
{
	size_t want, got;
	int rc;

	*out = NULL;
	if (off >= r->base && off + n <= r->base + r->len) {
		*out = r->buf + (off - r->base);
		return ATOLOG_OK;
	}
	if (off + n > r->file_size)
		return ATOLOG_OK;
	/* A chunk, or less where the file ends (a small segment is read
	 * without a megabyte's buffer). */
	want = r->file_size - off < SCAN_CHUNK ? (size_t)(r->file_size - off)
					       : SCAN_CHUNK;
	if (want < n)
		want = n;
	if (want > r->cap) {
		uint8_t *grown = realloc(r->buf, want);

		if (!grown)
			return err_set(ENOMEM, "scanning the log");
		r->buf = grown;
		r->cap = want;
	}
	rc = io_pread_all(r->fd, r->buf, want, off, &got);
	if (rc != 0)
		return err_errno(rc, "reading the log at offset %" PRIu64, off);
	r->base = off;
	r->len = got;
	if (got >= n)
		*out = r->buf;
	return ATOLOG_OK;
}

/* Why the frame at off is not valid, or NULL if it is (frame filled). */
static int frame_at(struct log_reader *r, uint64_t off, struct log_frame *f,
		    const char **why)
{
	const uint8_t *p;
	int rc;

	*why = NULL;
	rc = reader_fetch(r, off, FRAME_HEADER_SIZE, &p);
	if (rc != ATOLOG_OK)
		return rc;
	if (!p) {
		*why = "incomplete frame header";
		return ATOLOG_OK;
	}
	if (!frame_header_read(p, &f->header)) {
		*why = frame_header_is_zero(p) ? "zero bytes" : "implausible frame header";
		return ATOLOG_OK;
	}
	rc = reader_fetch(r, off, FRAME_HEADER_SIZE + (size_t)f->header.payload_len, &p);
	if (rc != ATOLOG_OK)
		return rc;
	if (!p) {
		*why = "incomplete frame";
		return ATOLOG_OK;
	}
	if (!frame_checksum_ok(p, f->header.payload_len)) {
		*why = "frame checksum mismatch";
		return ATOLOG_OK;
	}
	f->offset = off;
	f->length = FRAME_HEADER_SIZE + f->header.payload_len;
	f->payload = p + FRAME_HEADER_SIZE;
	return ATOLOG_OK;
}

/*
 * The offset of the first valid SYNC_START frame after off, or 0 if there is
 * none. Valid frames without the flag are stepped over whole; anything else
 * is searched byte by byte, since a damaged length says nothing.
 */
static int find_sync_start_after(struct log_reader *r, uint64_t off,
				 uint64_t *found)
{
	struct log_frame f;
	const char *why;
	uint64_t p = off + 1;
	int rc;

	*found = 0;
	while (p + FRAME_HEADER_SIZE <= r->file_size) {
		rc = frame_at(r, p, &f, &why);
		if (rc != ATOLOG_OK)
			return rc;
		if (why) {
			p++;
			continue;
		}
		if (f.header.flags & FRAME_FLAG_SYNC_START) {
			*found = p;
			return ATOLOG_OK;
		}
		p += f.length;
	}
	return ATOLOG_OK;
}

static int rest_is_zero(struct log_reader *r, uint64_t off, bool *zero)
{
	*zero = true;
	while (off < r->file_size && *zero) {
		size_t n = r->file_size - off < SCAN_CHUNK ? (size_t)(r->file_size - off)
							   : SCAN_CHUNK;
		const uint8_t *p;
		int rc = reader_fetch(r, off, n, &p);

		if (rc != ATOLOG_OK)
			return rc;
		for (size_t i = 0; p && i < n; i++) {
			if (p[i] != 0) {
				*zero = false;
				break;
			}
		}
		off += n;
	}
	return ATOLOG_OK;
}

/* Applies the rule in the header comment to a bad frame at off. */
static int classify_stop(struct log_reader *r, const struct scan_start *from,
			 uint64_t off, const char *why, struct scan_result *res)
{
	uint64_t next;
	bool zero;
	int rc;

	res->valid_end = off;
	rc = rest_is_zero(r, off, &zero);
	if (rc != ATOLOG_OK)
		return rc;
	if (zero) {
		res->end = SCAN_END_CLEAN;
		return ATOLOG_OK;
	}
	rc = find_sync_start_after(r, off, &next);
	if (rc != ATOLOG_OK)
		return rc;
	if (next)
		return err_set(ATOLOG_CORRUPT,
			       "segment %016" PRIx64 " offset %" PRIu64
			       ": %s, and a frame written after a later sync "
			       "follows at offset %" PRIu64,
			       from->segment_id, off, why, next);
	res->end = SCAN_END_TORN;
	res->why = why;
	return ATOLOG_OK;
}

int scan_segment(int fd, const struct scan_start *from,
		 int (*fn)(const struct log_frame *frame, void *ctx), void *ctx,
		 struct scan_result *res)
{
	const uint64_t segment_id = from->segment_id;
	struct log_reader r = { .fd = fd };
	uint64_t off = from->offset;
	struct stat st;
	int rc = ATOLOG_OK;

	if (fstat(fd, &st) != 0)
		return err_errno(errno, "segment %016" PRIx64, segment_id);
	r.file_size = (uint64_t)st.st_size;
	memset(res, 0, sizeof(*res));
	res->file_size = r.file_size;
	res->last_kind = from->prev_kind;
	while (rc == ATOLOG_OK) {
		struct log_frame f = { .segment = segment_id };
		const char *why;

		res->valid_end = off; /* where a stop, for any reason, leaves it */
		if (off >= r.file_size) {
			res->end = SCAN_END_CLEAN;
			res->valid_end = off;
			break;
		}
		rc = frame_at(&r, off, &f, &why);
		if (rc != ATOLOG_OK)
			break;
		if (why) {
			rc = classify_stop(&r, from, off, why, res);
			break;
		}
		if (res->last_kind == FRAME_KIND_SEAL) {
			rc = err_set(ATOLOG_CORRUPT,
				     "segment %016" PRIx64 " offset %" PRIu64
				     ": a frame follows the seal", segment_id, off);
			break;
		}
		rc = fn(&f, ctx);
		res->last_kind = f.header.kind;
		off += f.length;
	}
	free(r.buf);
	return rc;
}
