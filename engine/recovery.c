/*
 * recovery.c - what a writer does at open to make the index agree with the
 * log, whatever state a crash left them in.
 *
 *  1. Find where indexing stopped: the state row in meta names the last
 *     indexed frame. That frame is read back and checked; if it is gone or
 *     differs (the index outlived the log it described, or belongs to
 *     another store), or the index layout is not this build's, the index is
 *     emptied and rebuilt from the first segment.
 *  2. Scan forward from there to the end of the log, indexing every valid
 *     frame in batches (each batch commits the state that covers it).
 *  3. Decide how the log ends (engine/scan.c): a clean end; a torn tail in
 *     the newest segment, which is cut off once everything before it is
 *     indexed (an open that refuses the log changes no byte of it); or
 *     corruption, which fails the open with the segment and offset. A
 *     sealed segment must end with its seal frame.
 *  4. Make the newest segment the active one, or start a new one if it was
 *     sealed.
 *
 * The work is proportional to the unindexed tail, not to the store.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine.h"
#include "error.h"

/* Names of a batch's entries are copied here: the scanner's buffer moves. */
struct name_arena {
	char *buf;
	size_t len, cap;
};

struct recovery {
	atolog_store *store;
	struct index_state state;
	struct index_entry *entries;
	size_t n_entries;
	/* offsets into names, resolved to pointers when the batch is applied */
	size_t (*name_at)[3];
	struct name_arena names;
	uint64_t frames;
	uint64_t done, total; /* bytes read of the segments to read */
	uint64_t segment_base; /* done before this segment */
	/* Where the newest segment's valid frames end: a torn tail is cut
	 * only once every frame before it is indexed, so that an open that
	 * refuses the log (a duplicate id, say) leaves it as it found it. */
	struct scan_result tail;
};

static int arena_put(struct name_arena *a, struct text t, size_t *at)
{
	if (a->len + t.len > a->cap) {
		size_t cap = a->cap ? a->cap : 4096;
		char *grown;

		while (cap < a->len + t.len)
			cap *= 2;
		grown = realloc(a->buf, cap);
		if (!grown)
			return err_set(ENOMEM, "recovering the index");
		a->buf = grown;
		a->cap = cap;
	}
	if (t.len > 0)
		memcpy(a->buf + a->len, t.ptr, t.len);
	*at = a->len;
	a->len += t.len;
	return ATOLOG_OK;
}

static int recovery_flush(struct recovery *r)
{
	struct index_batch b = { .entries = r->entries, .n_entries = r->n_entries,
				 .state = &r->state };
	size_t dup = 0;
	int rc;

	/* No arena yet when every name so far was empty (offsets all 0). */
	const char *names = r->names.buf ? r->names.buf : "";

	for (size_t i = 0; i < r->n_entries; i++) {
		r->entries[i].project.ptr = names + r->name_at[i][0];
		r->entries[i].session.ptr = names + r->name_at[i][1];
		r->entries[i].client.ptr = names + r->name_at[i][2];
	}
	rc = index_apply(r->store->idx, &b, &dup);
	if (rc == ATOLOG_EXISTS)
		rc = err_set(ATOLOG_CORRUPT,
			     "segment %016" PRIx64 " offset %" PRIu64
			     ": an interaction id appears twice in the log",
			     r->entries[dup].loc.segment, r->entries[dup].loc.offset);
	r->n_entries = 0;
	r->names.len = 0;
	return rc;
}

static int recovery_add_record(struct recovery *r, const struct log_frame *f)
{
	struct index_entry *e = &r->entries[r->n_entries];
	struct record_view view;
	int rc = record_view_decode(&view, f->payload, f->header.payload_len);

	if (rc == ATOLOG_OK) {
		const struct record_fields *rf = &view.fields;

		memcpy(e->id, rf->id, UUID_SIZE);
		e->created_at = rf->created_at;
		e->seq = f->header.seq;
		e->loc.segment = f->segment;
		e->loc.offset = f->offset;
		e->loc.length = f->length;
		e->project.len = rf->project.len;
		e->session.len = rf->session_id.len;
		e->client.len = rf->client.len;
		rc = arena_put(&r->names, rf->project, &r->name_at[r->n_entries][0]);
		if (rc == ATOLOG_OK)
			rc = arena_put(&r->names, rf->session_id,
				       &r->name_at[r->n_entries][1]);
		if (rc == ATOLOG_OK)
			rc = arena_put(&r->names, rf->client,
				       &r->name_at[r->n_entries][2]);
	}
	record_view_free(&view);
	if (rc == ATOLOG_CORRUPT)
		return err_context(rc, "segment %016" PRIx64 " offset %" PRIu64,
				   f->segment, f->offset);
	if (rc == ATOLOG_OK)
		r->n_entries++;
	return rc;
}

/* A row may only add to the registry: a writer refuses (ATOLOG_EXISTS) a
 * name or alias that already belongs to another project, so a log that
 * re-points one was not written by atolog. */
static int registry_row_fits(struct index *idx, const struct index_registry_row *row)
{
	char *canonical = NULL;
	int rc = index_registry_get(idx, row->key, &canonical);

	if (rc == ATOLOG_NOTFOUND)
		return ATOLOG_OK;
	if (rc == ATOLOG_OK && (strlen(canonical) != row->canonical.len ||
				memcmp(canonical, row->canonical.ptr, row->canonical.len) != 0))
		rc = err_set(ATOLOG_CORRUPT, "'%.*s' is registered for '%.*s', and "
			     "already belongs to '%s'", (int)row->spelling.len,
			     row->spelling.ptr, (int)row->canonical.len,
			     row->canonical.ptr, canonical);
	free(canonical);
	return rc;
}

/* Registry rows of one registration: the name and each alias. */
static int recovery_add_registry(struct recovery *r, const struct log_frame *f)
{
	struct registry_view view;
	struct index_registry_row *rows = NULL;
	char *folded = NULL;
	int rc = registry_decode(&view, f->payload, f->header.payload_len);

	if (rc == ATOLOG_OK) {
		rows = calloc(view.n_aliases + 1, sizeof(*rows));
		folded = malloc((view.n_aliases + 1) * (ATOLOG_NAME_MAX_BYTES + 1));
		if (!rows || !folded)
			rc = err_set(ENOMEM, "recovering the registry");
	}
	for (size_t i = 0; rc == ATOLOG_OK && i <= view.n_aliases; i++) {
		struct text t = i == 0 ? view.name : view.aliases[i - 1];
		char *key = folded + i * (ATOLOG_NAME_MAX_BYTES + 1);

		if (t.len > ATOLOG_NAME_MAX_BYTES) {
			rc = err_set(ATOLOG_CORRUPT, "registry name over %u bytes",
				     ATOLOG_NAME_MAX_BYTES);
			break;
		}
		rows[i].key.len = text_fold_name(t.ptr, t.len, key);
		rows[i].key.ptr = key;
		rows[i].canonical.ptr = view.name.ptr;
		rows[i].canonical.len = view.name.len;
		rows[i].spelling.ptr = t.ptr;
		rows[i].spelling.len = t.len;
		rc = registry_row_fits(r->store->idx, &rows[i]);
	}
	if (rc == ATOLOG_OK) {
		struct index_batch b = { .registry = rows,
					 .n_registry = view.n_aliases + 1,
					 .state = &r->state };

		rc = index_apply(r->store->idx, &b, NULL);
	}
	free(rows);
	free(folded);
	registry_view_free(&view);
	if (rc == ATOLOG_CORRUPT || rc == ATOLOG_VERSION)
		return err_context(rc, "segment %016" PRIx64 " offset %" PRIu64,
				   f->segment, f->offset);
	return rc;
}

/* A seal says how far the store had numbered when it was written: after a
 * compaction removed the newest records, the numbers go on from there. */
static int recovery_seal(struct recovery *r, const struct log_frame *f)
{
	uint64_t last_seq;
	int rc = seal_decode(f->payload, f->header.payload_len, &last_seq);

	if (rc != ATOLOG_OK)
		return err_context(rc, "segment %016" PRIx64 " offset %" PRIu64,
				   f->segment, f->offset);
	if (last_seq > r->state.last_seq)
		r->state.last_seq = last_seq;
	return ATOLOG_OK;
}

static int recovery_frame(const struct log_frame *f, void *ctx)
{
	struct recovery *r = ctx;
	int rc = ATOLOG_OK;

	/* A registration is committed on its own, with the state that covers
	 * it: what precedes it goes first, under the state before it, so
	 * that no commit claims the registration before its rows are in. */
	if (f->header.kind == FRAME_KIND_REGISTRY) {
		rc = recovery_flush(r);
		if (rc != ATOLOG_OK)
			return rc;
	}
	r->state.segment = f->segment;
	r->state.end_offset = f->offset + f->length;
	r->state.last_frame_offset = f->offset;
	r->state.last_frame_length = f->length;
	if (f->header.seq > r->state.last_seq)
		r->state.last_seq = f->header.seq;
	r->frames++;
	if ((r->frames & 4095) == 0 && r->store->opts.progress)
		r->store->opts.progress(r->segment_base + f->offset, r->total,
					r->store->opts.progress_ctx);
	if (f->header.kind == FRAME_KIND_RECORD) {
		r->state.n_records++;
		rc = recovery_add_record(r, f);
		if (rc == ATOLOG_OK && r->n_entries == RECOVERY_BATCH_RECORDS)
			rc = recovery_flush(r);
	} else if (f->header.kind == FRAME_KIND_REGISTRY) {
		rc = recovery_add_registry(r, f);
	} else if (f->header.kind == FRAME_KIND_SEAL) {
		rc = recovery_seal(r, f);
	} else {
		rc = err_set(ATOLOG_VERSION, "segment %016" PRIx64 " offset %" PRIu64
			     ": frame kind %u comes from a newer atolog", f->segment,
			     f->offset, f->header.kind);
	}
	return rc;
}

/* ------------------------------------------------------------------------
 * Where to start.
 */

static bool contains(const uint64_t *ids, size_t n, uint64_t id, size_t *at)
{
	for (size_t i = 0; i < n; i++) {
		if (ids[i] == id) {
			*at = i;
			return true;
		}
	}
	return false;
}

/*
 * Reads the last indexed frame back. ATOLOG_OK: it is there, *kind is
 * its kind. ATOLOG_NOTFOUND: the state does not describe this log (its
 * segment is gone, or the state contradicts itself): the index, derived
 * data, is rebuilt. The frame the index holds being damaged, or the log
 * ending before it, is ATOLOG_CORRUPT: that frame was acknowledged, so
 * this is not a torn tail to cut but damage to report. Any other failure
 * (EIO, ENOMEM) is passed on: a rebuild would only hide it.
 */
int state_frame_check(atolog_store *s, const struct index_state *st,
		      uint8_t *kind)
{
	struct segment_header hdr;
	uint8_t *frame = NULL;
	struct stat sb;
	int fd, rc;

	*kind = 0;
	if (st->last_frame_length == 0)
		return st->end_offset == SEGMENT_HEADER_SIZE ? ATOLOG_OK
							     : ATOLOG_NOTFOUND;
	if (st->last_frame_offset + st->last_frame_length != st->end_offset)
		return ATOLOG_NOTFOUND;
	rc = segment_open(s->segment_dir, st->segment, O_RDONLY, &hdr, &fd);
	if (rc == ENOENT)
		return ATOLOG_NOTFOUND;
	if (rc != ATOLOG_OK)
		return rc;
	if (fstat(fd, &sb) != 0) {
		rc = err_errno(errno, "segment %016" PRIx64, st->segment);
	} else if ((uint64_t)sb.st_size < st->end_offset) {
		rc = err_set(ATOLOG_CORRUPT, "segment %016" PRIx64 " offset %" PRIu64
			     ": the log ends there, before the end of the last frame "
			     "the index holds (%" PRIu64 "): acknowledged data is "
			     "missing", st->segment, (uint64_t)sb.st_size, st->end_offset);
	} else {
		for (uint8_t k = FRAME_KIND_RECORD; k <= FRAME_KIND_SEAL && !*kind; k++) {
			rc = segment_read_frame(fd, st->segment, st->last_frame_offset,
						st->last_frame_length, k, &frame);
			if (rc == ATOLOG_OK)
				*kind = k;
			else if (rc != ATOLOG_CORRUPT)
				break;
			free(frame);
			frame = NULL;
		}
		if (rc == ATOLOG_CORRUPT)
			rc = err_set(ATOLOG_CORRUPT, "segment %016" PRIx64 " offset %"
				     PRIu64 ": the last frame the index holds fails its "
				     "checksum: an acknowledged frame is damaged, not a "
				     "torn write (atolog verify shows the extent)",
				     st->segment, st->last_frame_offset);
	}
	close(fd);
	return rc;
}

/*
 * Decides the starting segment (index into ids), offset and previous frame
 * kind, emptying the index when it cannot be trusted.
 */
static int recovery_start(struct recovery *r, const uint64_t *ids, size_t n,
			  size_t *first, uint64_t *offset, uint8_t *prev_kind)
{
	atolog_store *s = r->store;
	uint32_t version = 0;
	int rc = index_version(s->idx, &version);

	if (rc != ATOLOG_OK && rc != ATOLOG_CORRUPT)
		return rc;
	if (version > INDEX_VERSION)
		return err_set(ATOLOG_VERSION, "the index has layout %u, newer than "
			       "this build's %u", version, INDEX_VERSION);
	if (rc == ATOLOG_OK && version == INDEX_VERSION) {
		rc = index_state_get(s->idx, &r->state);
		if (rc == ATOLOG_CORRUPT)
			rc = ATOLOG_NOTFOUND; /* the state row itself: rebuilt */
		if (rc == ATOLOG_OK &&
		    (memcmp(r->state.store_id, s->store_id, UUID_SIZE) != 0 ||
		     !contains(ids, n, r->state.segment, first)))
			rc = ATOLOG_NOTFOUND;
		if (rc == ATOLOG_OK)
			rc = state_frame_check(s, &r->state, prev_kind);
		if (rc == ATOLOG_OK) {
			*offset = r->state.end_offset;
			return ATOLOG_OK;
		}
		if (rc != ATOLOG_NOTFOUND)
			return rc;
	}
	/* Rebuild: the index is derived data, whatever is wrong with it. */
	err_clear();
	s->open_stats.index_rebuilt = 1;
	rc = index_clear(s->idx);
	if (rc != ATOLOG_OK)
		return rc;
	memset(&r->state, 0, sizeof(r->state));
	memcpy(r->state.store_id, s->store_id, UUID_SIZE);
	r->state.segment = ids[0];
	r->state.end_offset = SEGMENT_HEADER_SIZE;
	*first = 0;
	*offset = SEGMENT_HEADER_SIZE;
	*prev_kind = 0;
	return ATOLOG_OK;
}

/* ------------------------------------------------------------------------
 * The scan.
 */

/* Cuts a torn tail; a clean zero tail is pre-allocated space and stays. */
static int recovery_cut_tail(atolog_store *s, int fd, uint64_t id,
			     const struct scan_result *res)
{
	int rc;

	if (res->end != SCAN_END_TORN)
		return ATOLOG_OK;
	rc = io_ftruncate(&s->w.io, fd, res->valid_end);
	if (rc == 0)
		rc = io_fdatasync(&s->w.io, fd);
	if (rc != 0)
		return err_errno(rc, "segment %016" PRIx64
				 ": cutting the torn tail at offset %" PRIu64,
				 id, res->valid_end);
	s->open_stats.truncated_bytes += res->file_size - res->valid_end;
	return ATOLOG_OK;
}

/* Scans one segment; keeps the newest one open as the active segment. */
static int recovery_segment(struct recovery *r, uint64_t id, bool newest,
			    uint64_t offset, uint8_t prev_kind, uint8_t *last_kind)
{
	atolog_store *s = r->store;
	struct segment_header hdr;
	struct scan_result res;
	int fd, rc;

	rc = segment_open(s->segment_dir, id, newest ? O_RDWR : O_RDONLY, &hdr, &fd);
	if (rc != ATOLOG_OK)
		return rc;
	if (memcmp(hdr.store_id, s->store_id, UUID_SIZE) != 0)
		rc = err_set(ATOLOG_CORRUPT, "segment %016" PRIx64
			     " belongs to another store", id);
	if (rc == ATOLOG_OK) {
		struct scan_start from = {
			.segment_id = id, .offset = offset, .prev_kind = prev_kind,
		};

		rc = scan_segment(fd, &from, recovery_frame, r, &res);
	}
	if (rc == ATOLOG_OK && !newest &&
	    (res.end == SCAN_END_TORN || res.last_kind != FRAME_KIND_SEAL))
		rc = err_set(ATOLOG_CORRUPT, "segment %016" PRIx64 " offset %" PRIu64
			     ": a sealed segment ends without its seal frame",
			     id, res.valid_end);
	if (rc != ATOLOG_OK || !newest) {
		close(fd);
		return rc;
	}
	s->w.active.id = id;
	s->w.active.fd = fd;
	s->w.active.size = res.valid_end;
	r->tail = res;
	*last_kind = res.last_kind;
	return ATOLOG_OK;
}

/* Once the log is indexed: cuts the newest segment's torn tail, then
 * makes what the last writer left durable (it may be only in the page
 * cache) before new frames follow, so the first of them may say
 * SYNC_START truthfully. */
static int recovery_settle_tail(struct recovery *r)
{
	atolog_store *s = r->store;
	int rc = recovery_cut_tail(s, s->w.active.fd, s->w.active.id, &r->tail), e;

	if (rc != ATOLOG_OK)
		return rc;
	e = io_fdatasync(&s->w.io, s->w.active.fd);
	return e ? err_errno(e, "segment %016" PRIx64 ": syncing at open",
			     s->w.active.id)
		 : ATOLOG_OK;
}

static int recovery_read_store_id(atolog_store *s, uint64_t first_id)
{
	struct segment_header hdr;
	int fd, rc;

	rc = segment_open(s->segment_dir, first_id, O_RDONLY, &hdr, &fd);
	if (rc != ATOLOG_OK)
		return rc;
	close(fd);
	memcpy(s->store_id, hdr.store_id, UUID_SIZE);
	return ATOLOG_OK;
}

/* A new store: random store id, first segment, empty index. */
static int recovery_create(atolog_store *s)
{
	struct index_state state = { .segment = SEGMENT_FIRST_ID,
				     .end_offset = SEGMENT_HEADER_SIZE };
	struct index_batch b = { .state = &state };
	int rc = uuid_v7_next(&s->w.ids, time_now_us(), s->store_id);

	if (rc == ATOLOG_OK)
		rc = segment_create(&s->w.io, s->segment_dir, SEGMENT_FIRST_ID,
				    s->store_id, &s->w.active);
	if (rc == ATOLOG_OK)
		rc = index_clear(s->idx);
	memcpy(state.store_id, s->store_id, UUID_SIZE);
	if (rc == ATOLOG_OK)
		rc = index_apply(s->idx, &b, NULL);
	if (rc == ATOLOG_OK)
		rc = index_rebuilt(s->idx);
	s->w.state = state;
	s->w.next_seq = 1;
	return rc;
}

static uint64_t segment_bytes(const atolog_store *s, uint64_t id)
{
	char path[PATH_MAX];
	struct stat st;

	segment_path(path, sizeof(path), s->segment_dir, id);
	return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* For progress: the bytes of the segments recovery will read. */
static uint64_t segments_bytes(const atolog_store *s, const uint64_t *ids, size_t n)
{
	uint64_t total = 0;

	for (size_t i = 0; i < n; i++)
		total += segment_bytes(s, ids[i]);
	return total;
}

static int recovery_scan(struct recovery *r, const uint64_t *ids, size_t n)
{
	atolog_store *s = r->store;
	uint8_t prev_kind = 0, last_kind = 0;
	uint64_t offset = SEGMENT_HEADER_SIZE;
	size_t first = 0;
	int rc;

	rc = recovery_start(r, ids, n, &first, &offset, &prev_kind);
	if (rc == ATOLOG_OK && s->opts.progress)
		r->total = segments_bytes(s, ids + first, n - first);
	for (size_t i = first; rc == ATOLOG_OK && i < n; i++) {
		rc = recovery_segment(r, ids[i], i == n - 1, offset, prev_kind,
				      &last_kind);
		offset = SEGMENT_HEADER_SIZE;
		prev_kind = 0;
		r->segment_base += segment_bytes(s, ids[i]);
	}
	if (rc == ATOLOG_OK && s->opts.progress)
		s->opts.progress(r->total, r->total, s->opts.progress_ctx);
	if (rc == ATOLOG_OK)
		rc = recovery_flush(r);
	if (rc == ATOLOG_OK)
		rc = recovery_settle_tail(r);
	if (rc != ATOLOG_OK)
		return rc;
	s->w.state = r->state;
	s->w.next_seq = r->state.last_seq + 1;
	s->open_stats.recovered_frames = r->frames;
	if (last_kind == FRAME_KIND_SEAL) {
		/* Crashed between sealing and creating the next segment. */
		close(s->w.active.fd);
		s->w.active.fd = -1;
		rc = segment_create(&s->w.io, s->segment_dir, ids[n - 1] + 1,
				    s->store_id, &s->w.active);
	}
	return rc;
}

int recovery_run(atolog_store *s)
{
	struct recovery r = { .store = s };
	uint64_t *ids = NULL;
	size_t n = 0;
	int rc = segment_list(s->segment_dir, &ids, &n);

	if (rc != ATOLOG_OK)
		return rc;
	if (n == 0) {
		free(ids);
		return recovery_create(s);
	}
	r.entries = calloc(RECOVERY_BATCH_RECORDS, sizeof(*r.entries));
	r.name_at = calloc(RECOVERY_BATCH_RECORDS, sizeof(*r.name_at));
	if (!r.entries || !r.name_at)
		rc = err_set(ENOMEM, "recovering the index");
	if (rc == ATOLOG_OK)
		rc = recovery_read_store_id(s, ids[0]);
	if (rc == ATOLOG_OK)
		rc = recovery_scan(&r, ids, n);
	if (rc == ATOLOG_OK) /* a rebuild, if any, is whole now */
		rc = index_rebuilt(s->idx);
	free(r.entries);
	free(r.name_at);
	free(r.names.buf);
	free(ids);
	return rc;
}
