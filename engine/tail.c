/*
 * tail.c - what a read-only handle serves past the index: the log's
 * unindexed tail.
 *
 * A writer acknowledges a record once it is in the log (durable per the
 * sync mode) and indexes it a moment later. A writer that died in between
 * leaves acknowledged records that only the log holds, until the next
 * writer open indexes them. A reader must serve them all the same, and
 * must not become a writer to do so (a read never modifies a store). So a
 * read-only open with no live writer scans the log from the index's point
 * to its end, without writing, and keeps the records it finds in a recent
 * set of its own (engine/recent.c), which every read merges with the
 * index exactly as a writer's reads merge its own recent set.
 *
 * Rules:
 *  - Only when no writer holds the store: a live writer indexes within a
 *    millisecond or so, and its tail may hold frames written but not yet
 *    durable, which must not be served. The check is a shared flock of
 *    LOCK, let go at once; a writer that starts just after it makes the
 *    tail as the scan saw it no less true.
 *  - The scan follows engine/scan.c's rule. A torn end (an unacknowledged
 *    write) is where the tail ends; nothing is cut. Damage with frames
 *    synced after it is reported in the handle's statistics, with segment
 *    and offset (atolog_stats.damaged_*): what precedes it is served,
 *    nothing after it, and verify and a writer open report it too.
 *  - Registrations in the tail are left out: a registration is
 *    acknowledged only once indexed, so an unindexed one never was.
 *  - A compaction's pending journal says which segments the index does not
 *    describe (engine/journal.c); they are not scanned.
 *  - The set is fixed at open: a reader that wants later records opens
 *    again (or reads beside a live writer, which indexes them).
 *  - An index with no state row (a rebuild that stopped before its first
 *    batch) makes the whole log the tail, from the first segment.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "engine.h"
#include "error.h"

struct tail_scan {
	atolog_store *store;
	struct recent *set;
	uint64_t records;
};

/* Whether a writer process holds the store now. */
static bool tail_writer_live(const atolog_store *s)
{
	char path[PATH_MAX];
	bool live;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", s->dir, STORE_LOCK_FILE);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false; /* no writer ever ran, or it is unreadable */
	live = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
	if (!live)
		flock(fd, LOCK_UN);
	close(fd);
	return live;
}

static int tail_frame(const struct log_frame *f, void *ctx)
{
	struct tail_scan *t = ctx;
	struct record_view view;
	struct log_item item = { .kind = FRAME_KIND_RECORD };
	int rc;

	if (f->header.kind == FRAME_KIND_REGISTRY || f->header.kind == FRAME_KIND_SEAL)
		return ATOLOG_OK;
	if (f->header.kind != FRAME_KIND_RECORD)
		return err_set(ATOLOG_VERSION, "segment %016" PRIx64 " offset %" PRIu64
			       ": frame kind %u comes from a newer atolog", f->segment,
			       f->offset, f->header.kind);
	rc = record_view_decode(&view, f->payload, f->header.payload_len);
	if (rc == ATOLOG_OK) {
		const struct record_fields *rf = &view.fields;
		struct index_entry *e = &item.entry;

		memcpy(e->id, rf->id, UUID_SIZE);
		e->created_at = rf->created_at;
		e->seq = f->header.seq;
		e->loc = (struct index_loc){ f->segment, f->offset, f->length };
		e->project = (struct index_name){ rf->project.ptr, rf->project.len };
		e->session = (struct index_name){ rf->session_id.ptr, rf->session_id.len };
		e->client = (struct index_name){ rf->client.ptr, rf->client.len };
		rc = recent_reserve(t->set, &item, 1);
		if (rc == ATOLOG_OK) {
			recent_publish(t->set, &item, 1); /* copies the names */
			t->records++;
		}
	} else if (rc == ATOLOG_CORRUPT) {
		rc = err_context(rc, "segment %016" PRIx64 " offset %" PRIu64,
				 f->segment, f->offset);
	}
	record_view_free(&view);
	return rc;
}

/* Keeps where the first damage met is; the open goes on. */
static void tail_damaged(atolog_store *s, uint64_t segment, uint64_t offset)
{
	if (!s->open_stats.damaged_segment) {
		s->open_stats.damaged_segment = segment;
		s->open_stats.damaged_offset = offset;
	}
	err_clear();
}

/* Scans segment id from offset (after a frame of prev_kind there); *more
 * false once the tail has ended. */
static int tail_segment(struct tail_scan *t, uint64_t id, uint64_t offset,
			uint8_t prev_kind, const uint8_t store_id[UUID_SIZE],
			bool newest, bool *more)
{
	atolog_store *s = t->store;
	struct scan_start from = { .segment_id = id, .offset = offset,
				   .prev_kind = prev_kind };
	struct segment_header hdr;
	struct scan_result res;
	int fd, rc = segment_open(s->segment_dir, id, O_RDONLY, &hdr, &fd);

	*more = false;
	if (rc != ATOLOG_OK)
		return rc;
	if (memcmp(hdr.store_id, store_id, UUID_SIZE) != 0)
		rc = err_set(ATOLOG_CORRUPT, "segment %016" PRIx64
			     " belongs to another store", id);
	if (rc == ATOLOG_OK)
		rc = scan_segment(fd, &from, tail_frame, t, &res);
	close(fd);
	if (rc == ATOLOG_CORRUPT) {
		tail_damaged(s, id, res.valid_end);
		return ATOLOG_OK;
	}
	if (rc != ATOLOG_OK)
		return rc;
	if (!newest && (res.end == SCAN_END_TORN || res.last_kind != FRAME_KIND_SEAL)) {
		err_set(ATOLOG_CORRUPT, "segment %016" PRIx64 " offset %" PRIu64
			": a sealed segment ends without its seal frame", id,
			res.valid_end);
		tail_damaged(s, id, res.valid_end);
		return ATOLOG_OK;
	}
	*more = res.end == SCAN_END_CLEAN;
	return ATOLOG_OK;
}

/*
 * The kind of the last frame the index holds: a state that ends on a
 * seal (a writer stopped between its seal and the next segment) resumes
 * in the next segment, not in a sealed one's empty rest. A damaged frame
 * there is the read path's to report (it is indexed); the tail goes on.
 */
static uint8_t tail_prev_kind(atolog_store *s, const struct index_state *st)
{
	uint8_t kind = 0;

	if (state_frame_check(s, st, &kind) != ATOLOG_OK)
		kind = 0;
	err_clear();
	return kind;
}

/*
 * No state row: the index was emptied for a rebuild that stopped before
 * its first batch (or never written). The log is then all tail, from the
 * first segment, and the store id is that segment's.
 */
static int tail_state_from_log(atolog_store *s, struct index_state *st)
{
	struct segment_header hdr;
	uint64_t *ids = NULL;
	size_t n = 0;
	int fd, rc = segment_list(s->segment_dir, &ids, &n);

	memset(st, 0, sizeof(*st));
	if (rc == ATOLOG_OK && n > 0)
		rc = segment_open(s->segment_dir, ids[0], O_RDONLY, &hdr, &fd);
	if (rc == ATOLOG_OK && n > 0) {
		close(fd);
		memcpy(st->store_id, hdr.store_id, UUID_SIZE);
		st->segment = ids[0];
		st->end_offset = SEGMENT_HEADER_SIZE;
	}
	free(ids);
	return rc;
}

/* The segments past the index's point, in order, that the index's log
 * holds (a pending compaction's other side left out). */
static int tail_scan(struct tail_scan *t, const struct index_state *st,
		     const struct compact_view *view)
{
	atolog_store *s = t->store;
	uint8_t prev_kind = tail_prev_kind(s, st);
	uint64_t *ids = NULL;
	size_t n = 0, first = 0;
	bool more = true;
	int rc = segment_list(s->segment_dir, &ids, &n);

	while (rc == ATOLOG_OK && n > 0 && compact_view_ignores(view, ids[n - 1]))
		n--; /* the newest is the newest of the index's log */
	while (rc == ATOLOG_OK && first < n && ids[first] < st->segment)
		first++;
	if (rc == ATOLOG_OK && (first == n || ids[first] != st->segment))
		rc = err_set(ATOLOG_CORRUPT, "segment %016" PRIx64 ", which holds the "
			     "last frame the index names, is missing", st->segment);
	for (size_t i = first; rc == ATOLOG_OK && more && i < n; i++) {
		if (compact_view_ignores(view, ids[i]))
			continue;
		rc = tail_segment(t, ids[i], i == first ? st->end_offset : SEGMENT_HEADER_SIZE,
				  i == first ? prev_kind : 0, st->store_id, i + 1 == n,
				  &more);
	}
	free(ids);
	return rc;
}

int tail_load(atolog_store *s)
{
	struct tail_scan t = { .store = s, .set = &s->tail };
	struct compact_view view;
	struct index_state st;
	int rc;

	if (tail_writer_live(s))
		return ATOLOG_OK;
	rc = index_state_get(s->idx, &st);
	if (rc == ATOLOG_NOTFOUND) {
		err_clear();
		rc = tail_state_from_log(s, &st);
		if (rc == ATOLOG_OK && !st.segment)
			return ATOLOG_OK; /* no segment: nothing to serve */
	}
	if (rc == ATOLOG_OK)
		rc = compact_view_read(s, &view);
	if (rc != ATOLOG_OK)
		return rc;
	rc = recent_init(&s->tail, &st);
	if (rc == ATOLOG_OK) {
		s->tail_ready = true;
		recent_plan_sync(&s->tail); /* one thread fills it, as a leader */
		rc = tail_scan(&t, &st, &view);
	}
	compact_view_free(&view);
	s->open_stats.tail_records = t.records;
	return rc;
}
