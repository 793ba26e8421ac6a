/*
 * verify.c - atolog_store_verify: every frame's checksum, and the index
 * against the log, on a live store.
 *
 * The index is read in one transaction (index/verify.c), which fixes the
 * point of the log it describes: its state row. Up to that point every
 * interaction frame must be named by exactly one by_id row pointing at
 * it, and every by_id row must point at such a frame; each secondary
 * index must hold one entry per interaction. Frames past the point are a live writer's unindexed tail:
 * their checksums are checked, and they are counted, but not required in
 * the index. A sealed segment must end with its seal frame; the newest
 * may end torn (an unacknowledged write), but never before the point.
 *
 * Nothing is changed: a problem is counted, the first is kept with its
 * segment and offset, and the walk goes on, so one run lists the extent
 * of the damage. Running out of memory is no problem of the store: it
 * stops the walk with ENOMEM (verify_own_failure), never counted.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine.h"

#define VERIFY_LIVE_RESCANS 8 /* rescans of a live tail before a stop counts */

/* A by_id row, ordered by where it points. */
struct verify_row {
	struct index_loc loc;
	uint8_t id[INDEX_ID_SIZE];
	int64_t created_at;
	uint64_t seq;
	bool matched;
};

struct verify {
	atolog_store *store;
	struct index_check ic;
	struct verify_row *rows;
	size_t n_rows, cap_rows;
	uint64_t segment;    /* the one being scanned */
	bool state_frame_seen; /* the frame the state row names */
	uint64_t done_bytes, total_bytes;
	atolog_progress_fn progress;
	void *progress_ctx;
	atolog_verify_report *out;
	struct compact_view view; /* a pending journal's, if any */
	int failed;               /* the verify's own failure: the walk stops */
};

/* Whether rc is the verify's own failure rather than a finding about the
 * store (noted in v->failed, which stops the walk). */
static bool verify_own_failure(struct verify *v, int rc)
{
	if (rc != ENOMEM)
		return false;
	if (!v->failed)
		v->failed = rc;
	return true;
}

static void __attribute__((format(printf, 2, 3)))
verify_problem(struct verify *v, const char *fmt, ...)
{
	va_list ap;

	if (v->out->problems++ > 0)
		return;
	va_start(ap, fmt);
	vsnprintf(v->out->first_problem, sizeof(v->out->first_problem), fmt, ap);
	va_end(ap);
}

static int collect_row(const struct index_hit *hit, void *ctx)
{
	struct verify *v = ctx;

	if (v->n_rows == v->cap_rows) {
		size_t cap = v->cap_rows ? v->cap_rows * 2 : 4096;
		struct verify_row *grown = realloc(v->rows, cap * sizeof(*grown));

		if (!grown)
			return err_set(ENOMEM, "verify: %zu index rows", v->n_rows);
		v->rows = grown;
		v->cap_rows = cap;
	}
	v->rows[v->n_rows].loc = hit->loc;
	v->rows[v->n_rows].created_at = hit->created_at;
	v->rows[v->n_rows].seq = hit->seq;
	memcpy(v->rows[v->n_rows].id, hit->id, INDEX_ID_SIZE);
	v->rows[v->n_rows++].matched = false;
	return 0;
}

static int loc_cmp(const struct index_loc *a, const struct index_loc *b)
{
	if (a->segment != b->segment)
		return a->segment < b->segment ? -1 : 1;
	return a->offset < b->offset ? -1 : a->offset > b->offset;
}

static int row_cmp(const void *a, const void *b)
{
	return loc_cmp(&((const struct verify_row *)a)->loc,
		       &((const struct verify_row *)b)->loc);
}

static bool live_tail(const struct verify *v, uint64_t id, uint64_t offset);

/* Whether the frame at (segment, offset) lies before the index's point. */
static bool covered(const struct verify *v, uint64_t segment, uint64_t offset)
{
	return v->ic.has_state && !live_tail(v, segment, offset);
}

static void verify_record(struct verify *v, const struct log_frame *f)
{
	struct verify_row key = { .loc = { f->segment, f->offset, f->length } }, *row;
	struct record_view view;
	char id[ATOLOG_ID_TEXT_LEN + 1];
	int rc = record_view_decode(&view, f->payload, f->header.payload_len);

	if (rc != ATOLOG_OK) {
		if (!verify_own_failure(v, rc))
			verify_problem(v, "segment %016" PRIx64 " offset %" PRIu64
				       ": the record does not decode: %s", f->segment,
				       f->offset, err_message(v->store));
		record_view_free(&view);
		return;
	}
	uuid_format(view.fields.id, id);
	v->out->records++;
	row = v->n_rows ? bsearch(&key, v->rows, v->n_rows, sizeof(*row), row_cmp) : NULL;
	if (!row)
		verify_problem(v, "segment %016" PRIx64 " offset %" PRIu64
			       ": interaction %s is not in the index", f->segment,
			       f->offset, id);
	else if (memcmp(row->id, view.fields.id, INDEX_ID_SIZE) != 0 ||
		 row->loc.length != f->length)
		verify_problem(v, "segment %016" PRIx64 " offset %" PRIu64
			       ": the index names another interaction here than %s",
			       f->segment, f->offset, id);
	else if (row->created_at != view.fields.created_at || row->seq != f->header.seq)
		verify_problem(v, "segment %016" PRIx64 " offset %" PRIu64
			       ": the index holds another time or sequence for %s",
			       f->segment, f->offset, id);
	else
		row->matched = true;
	record_view_free(&view);
}

/* A registration the index covers: each name and alias must resolve to
 * its project (rows are only ever added, so a later look sees them). */
static void verify_registry(struct verify *v, const struct log_frame *f)
{
	struct registry_view view;
	int decoded = registry_decode(&view, f->payload, f->header.payload_len);

	if (decoded != ATOLOG_OK) {
		if (!verify_own_failure(v, decoded))
			verify_problem(v, "segment %016" PRIx64 " offset %" PRIu64
				       ": the registration does not decode: %s",
				       f->segment, f->offset, err_message(v->store));
		registry_view_free(&view);
		return;
	}
	for (size_t i = 0; i <= view.n_aliases; i++) {
		struct text t = i == 0 ? view.name : view.aliases[i - 1];
		char key[ATOLOG_NAME_MAX_BYTES + 1], *canonical = NULL;
		struct index_name k = { .ptr = key };
		int rc = ATOLOG_NOTFOUND;

		if (t.len <= ATOLOG_NAME_MAX_BYTES) {
			k.len = text_fold_name(t.ptr, t.len, key);
			rc = index_registry_get(v->store->idx, k, &canonical);
		}
		if (verify_own_failure(v, rc))
			break;
		if (rc != ATOLOG_OK || strlen(canonical) != view.name.len ||
		    memcmp(canonical, view.name.ptr, view.name.len) != 0)
			verify_problem(v, "segment %016" PRIx64 " offset %" PRIu64
				       ": the registry does not map '%.*s' to '%.*s'",
				       f->segment, f->offset, (int)t.len, t.ptr,
				       (int)view.name.len, view.name.ptr);
		free(canonical);
	}
	registry_view_free(&view);
}

static int verify_frame(const struct log_frame *f, void *ctx)
{
	struct verify *v = ctx;
	const struct index_state *st = &v->ic.state;

	v->out->frames++;
	v->out->bytes += f->length;
	if (v->ic.has_state && f->segment == st->segment &&
	    f->offset == st->last_frame_offset && f->length == st->last_frame_length)
		v->state_frame_seen = true;
	if (!covered(v, f->segment, f->offset))
		v->out->unindexed_frames++;
	else if (f->header.kind == FRAME_KIND_RECORD)
		verify_record(v, f);
	else if (f->header.kind == FRAME_KIND_REGISTRY)
		verify_registry(v, f);
	if (v->progress && (v->out->frames & 4095) == 0)
		v->progress(v->done_bytes + f->offset, v->total_bytes, v->progress_ctx);
	return v->failed;
}

/* Checks how segment id ended. */
static void verify_segment_end(struct verify *v, uint64_t id, bool newest,
			       const struct scan_result *res)
{
	const struct index_state *st = &v->ic.state;

	if (!newest && (res->end == SCAN_END_TORN || res->last_kind != FRAME_KIND_SEAL))
		verify_problem(v, "segment %016" PRIx64 " offset %" PRIu64
			       ": a sealed segment ends without its seal frame",
			       id, res->valid_end);
	if (v->ic.has_state && id == st->segment && res->valid_end < st->end_offset)
		verify_problem(v, "segment %016" PRIx64 " offset %" PRIu64
			       ": %s, inside what the index holds (up to offset %"
			       PRIu64 ")", id, res->valid_end,
			       res->end == SCAN_END_TORN ? res->why : "the log ends",
			       st->end_offset);
}

/* Whether offset of segment id lies past the index's point, where a live
 * writer may be writing while the scan reads. */
static bool live_tail(const struct verify *v, uint64_t id, uint64_t offset)
{
	const struct index_state *st = &v->ic.state;

	return v->ic.has_state &&
	       (id > st->segment || (id == st->segment && offset >= st->end_offset));
}

/*
 * Scans one segment. Past the index's point a live writer may fill bytes
 * between the scan's reads, so a stop there can look like damage (zeros
 * read, then a later frame found): the scan is repeated, a stop at the
 * same offset twice is reported, and one that still moves after
 * VERIFY_LIVE_RESCANS passes is the writer's tail, not counted. Before the
 * point nothing moves, so one failure is enough. Returns the verify's own
 * failure, if any.
 */
static int verify_segment(struct verify *v, uint64_t id, bool newest)
{
	struct segment_header hdr;
	struct scan_start from = { .segment_id = id, .offset = SEGMENT_HEADER_SIZE };
	struct scan_result res;
	struct stat sb;
	uint64_t failed_at = UINT64_MAX;
	int fd, rc = segment_open(v->store->segment_dir, id, O_RDONLY, &hdr, &fd);

	v->out->segments++;
	if (verify_own_failure(v, rc))
		return rc;
	if (rc != ATOLOG_OK) {
		verify_problem(v, "%s", err_message(v->store));
		return ATOLOG_OK;
	}
	if (v->ic.has_state && memcmp(hdr.store_id, v->ic.state.store_id, UUID_SIZE) != 0)
		verify_problem(v, "segment %016" PRIx64 " belongs to another store", id);
	for (int attempt = 0;; attempt++) {
		atolog_verify_report before = *v->out;

		rc = scan_segment(fd, &from, verify_frame, v, &res);
		if (rc != ATOLOG_CORRUPT || !live_tail(v, id, res.valid_end) ||
		    res.valid_end == failed_at)
			break;
		if (attempt == VERIFY_LIVE_RESCANS) {
			/* Still moving: the writer outruns the scan. What
			 * lies past the point is not the index's yet. */
			rc = ATOLOG_OK;
			res.end = SCAN_END_TORN;
			break;
		}
		failed_at = res.valid_end;
		*v->out = before; /* the next pass counts the same frames again */
	}
	if (rc == ATOLOG_OK)
		verify_segment_end(v, id, newest, &res);
	else if (!verify_own_failure(v, rc))
		verify_problem(v, "%s", err_message(v->store));
	if (fstat(fd, &sb) == 0)
		v->done_bytes += (uint64_t)sb.st_size;
	close(fd);
	return v->failed;
}

/* What only the whole walk can tell: rows no frame matched, counts. */
static void verify_totals(struct verify *v)
{
	const struct index_check *ic = &v->ic;
	/* Every interaction has an entry in each (an empty name is a name). */
	const uint64_t got[] = { ic->by_time, ic->by_project, ic->by_session, ic->by_client,
				 ic->by_seq };
	static const char *const names[] = { "by_time", "by_project", "by_session",
					     "by_client", "by_seq" };

	for (size_t i = 0; i < v->n_rows; i++) {
		if (!v->rows[i].matched) {
			verify_problem(v, "segment %016" PRIx64 " offset %" PRIu64
				       ": the index names an interaction there that the "
				       "log does not hold", v->rows[i].loc.segment,
				       v->rows[i].loc.offset);
		}
	}
	for (size_t i = 0; i < sizeof(got) / sizeof(got[0]); i++) {
		if (got[i] != v->out->records)
			verify_problem(v, "%s holds %" PRIu64 " entries for %" PRIu64
				       " interactions in the log", names[i], got[i],
				       v->out->records);
	}
	if (ic->has_state && ic->state.last_frame_length &&
	    (!v->state_frame_seen ||
	     ic->state.last_frame_offset + ic->state.last_frame_length != ic->state.end_offset))
		verify_problem(v, "segment %016" PRIx64 " offset %" PRIu64
			       ": the index's state names a frame of %" PRIu32 " bytes "
			       "there ending at %" PRIu64 ", which the log does not hold",
			       ic->state.segment, ic->state.last_frame_offset,
			       ic->state.last_frame_length, ic->state.end_offset);
	if (ic->has_state && !ic->state.last_frame_length &&
	    ic->state.end_offset != SEGMENT_HEADER_SIZE)
		verify_problem(v, "segment %016" PRIx64 ": the index's state names no "
			       "frame but an end at %" PRIu64, ic->state.segment,
			       ic->state.end_offset);
	if (ic->has_state && ic->state.n_records != v->out->records)
		verify_problem(v, "the index counts %" PRIu64 " interactions, the log "
			       "holds %" PRIu64, ic->state.n_records, v->out->records);
}

static int verify_run(struct verify *v)
{
	uint64_t *ids = NULL;
	size_t n = 0;
	int rc = index_check(v->store->idx, collect_row, v, &v->ic);

	if (rc != ATOLOG_OK)
		return rc;
	v->out->index_entries = v->ic.by_id;
	if (v->ic.problems) {
		verify_problem(v, "index: %s", v->ic.first_problem);
		v->out->problems += v->ic.problems - 1;
	}
	if (v->n_rows) /* qsort and bsearch want a real array */
		qsort(v->rows, v->n_rows, sizeof(*v->rows), row_cmp);
	rc = segment_list(v->store->segment_dir, &ids, &n);
	if (rc != ATOLOG_OK)
		return rc;
	for (size_t i = 0; i < n; i++) {
		char path[PATH_MAX];
		struct stat sb;

		segment_path(path, sizeof(path), v->store->segment_dir, ids[i]);
		if (stat(path, &sb) == 0)
			v->total_bytes += (uint64_t)sb.st_size;
	}
	while (n > 0 && compact_view_ignores(&v->view, ids[n - 1]))
		n--, v->out->set_aside++; /* the newest is the index's newest */
	for (size_t i = 0; i < n && rc == ATOLOG_OK; i++) {
		if (compact_view_ignores(&v->view, ids[i]))
			v->out->set_aside++;
		else
			rc = verify_segment(v, ids[i], i + 1 == n);
	}
	free(ids);
	if (rc != ATOLOG_OK)
		return rc;
	verify_totals(v);
	if (v->progress)
		v->progress(v->total_bytes, v->total_bytes, v->progress_ctx);
	return ATOLOG_OK;
}

static int pending_kind(const struct compact_view *v)
{
	if (!v->pending)
		return ATOLOG_PENDING_NONE;
	if (!v->committed)
		return ATOLOG_PENDING_UNDO;
	return v->swapped ? ATOLOG_PENDING_RETIRE : ATOLOG_PENDING_REINDEX;
}

/*
 * One pass; *raced when a compaction (of another process: this one's are
 * held off by maint_lock) may have moved segments under it: its count or
 * its journal changed during the pass. A journal that stays as it was is
 * a compaction that was interrupted: the pass checks the log the index
 * describes and sets the journal's other side aside (compact_view_read).
 */
static int verify_pass(atolog_store *s, atolog_progress_fn progress, void *ctx,
		       atolog_verify_report *out, bool *raced)
{
	struct verify v = { .store = s, .progress = progress, .progress_ctx = ctx,
			    .out = out };
	struct compact_view after_view = { .pending = false };
	uint64_t before = 0, after = 0;
	int rc = index_last_compaction(s->idx, &before);

	memset(out, 0, sizeof(*out));
	if (rc == ATOLOG_OK)
		rc = compact_view_read(s, &v.view);
	if (rc == ATOLOG_OK) {
		out->pending_compaction = pending_kind(&v.view);
		rc = verify_run(&v);
	}
	free(v.rows);
	if (rc == ATOLOG_OK || rc == ENOENT) {
		*raced = compact_view_read(s, &after_view) != ATOLOG_OK ||
			 pending_kind(&after_view) != pending_kind(&v.view) ||
			 after_view.nonce != v.view.nonce ||
			 index_last_compaction(s->idx, &after) != ATOLOG_OK ||
			 after != before;
		err_clear();
	}
	compact_view_free(&v.view);
	compact_view_free(&after_view);
	return rc;
}

int atolog_store_verify(atolog_store *s, atolog_progress_fn progress, void *ctx,
			atolog_verify_report *out)
{
	bool raced = false;
	int rc;

	err_begin(s);
	lock_acquire(&s->maint_lock);
	for (int attempt = 0;; attempt++) {
		rc = verify_pass(s, progress, ctx, out, &raced);
		if (!raced || attempt == MAINT_COMPACTION_RETRIES)
			break;
		err_clear();
		usleep(MAINT_RETRY_WAIT_MS * 1000);
	}
	lock_release(&s->maint_lock);
	if (rc != ATOLOG_OK)
		return rc;
	if (out->problems)
		return err_set(ATOLOG_CORRUPT, "%" PRIu64 " problem%s; the first: %s",
			       out->problems, out->problems == 1 ? "" : "s",
			       out->first_problem);
	return ATOLOG_OK;
}
