/*
 * compact.c - atolog_store_compact: sealed segments rewritten into fewer,
 * full ones, without the records retention removes.
 *
 * The plan is read from the index alone: segment sizes, and (for
 * retention) a walk of by_project, which holds each interaction's project
 * and time in its key. The inputs are the sealed segments under the small
 * size and those holding a record to remove; nothing is done for a lone
 * small segment with nothing to remove.
 *
 * The copy runs beside writers and readers: the inputs are sealed, so
 * immutable, and are read with every frame's checksum checked (damage
 * stops the compaction with its segment and offset, before anything
 * changed). Frames kept are copied byte for byte (seq, flags and checksum
 * included) into new segments filled to segment_size, under temporary
 * names; registry frames are kept; seals are dropped.
 *
 * The swap holds the log for a moment (writer_exclusive_begin: callers
 * queue, readers go on). It seals the active segment N, gives the new
 * segments the next ids N+1.., writes the journal, renames them (the
 * commit point), then swaps the index in one transaction: every kept
 * record's by_id row moves, every removed record leaves all six by_
 * databases and its counts, and the state row moves to the end of the last new segment,
 * which becomes the active one (writers append after the old records it
 * holds). The index is synced before anything old is deleted. New ids are
 * above every old one, so a segment id is never reused and an old place a
 * reader holds can only be a file that is gone (engine/read.c).
 *
 * Order in the log no longer follows sequence numbers after a compaction,
 * and nothing depends on it: the index orders by (created_at, seq), ids
 * are unique, registry rows never contradict each other, and recovery
 * takes the highest seq it sees, seals included (a seal carries the
 * store's highest seq, so removing the newest records never lets a number
 * be given twice).
 *
 * engine/journal.c holds the journal, the crash rules, and how old
 * segments are deleted only when no reader has them open.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine.h"
#include "error.h"

/* What retention removes: every clause given must hold. */
struct compact_rule {
	bool active;
	bool by_project;
	char *project; /* canonical */
	size_t project_len;
	bool by_time;
	int64_t before;
};

static bool rule_selects(const struct compact_rule *r, const char *project,
			 size_t len, int64_t created_at)
{
	if (!r->active)
		return false;
	if (r->by_project &&
	    (len != r->project_len || memcmp(project, r->project, len) != 0))
		return false;
	return !r->by_time || created_at < r->before;
}

/* ------------------------------------------------------------------------
 * The plan.
 */

struct plan_segment {
	uint64_t id;
	uint64_t size;
	uint64_t removed, removed_bytes;
	bool input;
};

struct plan {
	struct plan_segment *segs; /* sealed, by id */
	size_t n_segs;
	uint64_t small_bytes;
	uint64_t segment_size;
	bool apply;                /* count only what a run removes */
	atolog_compact_report *report; /* removals by project, totals */
};

static int plan_segment_cmp(const void *key, const void *elem)
{
	uint64_t id = *(const uint64_t *)key;
	const struct plan_segment *s = elem;

	return id < s->id ? -1 : id > s->id;
}

static int project_cmp(const void *key, const void *elem)
{
	const struct index_name *k = key;
	const char *name = ((const atolog_compact_project *)elem)->project;
	size_t len = strlen(name);
	int c = memcmp(k->ptr, name, k->len < len ? k->len : len);

	return c ? c : (k->len > len) - (k->len < len);
}

/* The report's entry for a project, inserted in name order. */
static atolog_compact_project *report_project(atolog_compact_report *r,
					      struct index_name name)
{
	atolog_compact_project *at;
	size_t lo = 0, hi = r->n_projects;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = project_cmp(&name, &r->projects[mid]);

		if (c == 0)
			return &r->projects[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	/* Grown one at a time: projects are few next to records. */
	at = realloc(r->projects, (r->n_projects + 1) * sizeof(*at));
	if (!at)
		return NULL;
	r->projects = at;
	memmove(at + lo + 1, at + lo, (r->n_projects - lo) * sizeof(*at));
	at[lo] = (atolog_compact_project){ .project = strndup(name.ptr, name.len) };
	if (!at[lo].project) {
		memmove(at + lo, at + lo + 1, (r->n_projects - lo) * sizeof(*at));
		return NULL;
	}
	r->n_projects++;
	return &at[lo];
}

static int report_removal(atolog_compact_report *r, struct index_name project,
			  uint32_t bytes)
{
	atolog_compact_project *proj = report_project(r, project);

	if (!proj)
		return err_set(ENOMEM, "compaction: the report");
	proj->records++;
	proj->bytes += bytes;
	r->records_removed++;
	r->bytes_removed += bytes;
	return ATOLOG_OK;
}

static int plan_hit(const struct index_retained *hit, void *ctx)
{
	struct plan *p = ctx;
	struct plan_segment *seg =
		p->n_segs ? bsearch(&hit->loc.segment, p->segs, p->n_segs,
				    sizeof(*p->segs), plan_segment_cmp)
			  : NULL;

	if (seg) { /* else in the active segment, which a run seals first */
		seg->removed++;
		seg->removed_bytes += hit->loc.length;
	}
	/* A run counts what it removes (run_remove); a dry run, this. */
	return p->apply ? 0 : report_removal(p->report, hit->project, hit->loc.length);
}

/* The sealed segments (every one but the newest) and their sizes. */
static int plan_list(atolog_store *s, struct plan *p)
{
	uint64_t *ids = NULL;
	size_t n = 0;
	int rc = segment_list(s->segment_dir, &ids, &n);

	if (rc == ATOLOG_OK && n > 1) {
		p->segs = calloc(n - 1, sizeof(*p->segs));
		if (!p->segs)
			rc = err_set(ENOMEM, "compaction: planning");
	}
	for (size_t i = 0; rc == ATOLOG_OK && i + 1 < n; i++) {
		char path[PATH_MAX];
		struct stat st;

		segment_path(path, sizeof(path), s->segment_dir, ids[i]);
		if (stat(path, &st) != 0) {
			/* st says nothing then: the plan stops here. */
			rc = err_errno(errno, "compaction: %s", path);
			break;
		}
		p->segs[i] = (struct plan_segment){ .id = ids[i],
						    .size = (uint64_t)st.st_size };
		p->n_segs = i + 1;
	}
	free(ids);
	return rc;
}

/* Marks the inputs: worth it only if two or more merge, or one loses
 * records. */
static void plan_choose(struct plan *p)
{
	atolog_compact_report *r = p->report;
	size_t n_small = 0;
	bool removes = false;

	for (size_t i = 0; i < p->n_segs; i++) {
		n_small += p->segs[i].size < p->small_bytes;
		removes |= p->segs[i].removed > 0;
	}
	for (size_t i = 0; i < p->n_segs; i++) {
		struct plan_segment *seg = &p->segs[i];

		seg->input = seg->removed > 0 ||
			     (seg->size < p->small_bytes && (n_small > 1 || removes));
		if (!seg->input)
			continue;
		r->segments_in++;
		r->bytes_in += seg->size;
		/* An estimate, for a dry run: what stays of it (its header
		 * and seal go); a run counts what it wrote. */
		r->bytes_out += seg->size - seg->removed_bytes - SEGMENT_HEADER_SIZE;
	}
	if (r->segments_in) {
		r->bytes_out += SEGMENT_HEADER_SIZE;
		r->segments_out = (r->bytes_out + p->segment_size - 1) / p->segment_size;
	}
}

static int plan_build(atolog_store *s, const struct compact_rule *rule,
		      struct plan *p)
{
	struct index_retention ret = {
		.project = { rule->by_project ? rule->project : NULL, rule->project_len },
		.before = rule->by_time ? rule->before : INT64_MAX,
		.fn = plan_hit, .ctx = p,
	};
	int rc = plan_list(s, p);

	if (rc == ATOLOG_OK && rule->active)
		rc = index_retention_scan(s->idx, &ret);
	if (rc == ATOLOG_OK)
		plan_choose(p);
	return rc;
}

/* ------------------------------------------------------------------------
 * The copy: kept frames of the inputs into new segments.
 */

struct output {
	int fd;
	char tmp[PATH_MAX];
	uint64_t size;        /* bytes written and buffered */
	uint64_t last_offset; /* of its last frame */
	uint32_t last_length; /* 0: none yet */
};

struct names { /* where an entry's names start in the arena */
	size_t project, session, client;
};

struct run {
	atolog_store *s;
	const struct compact_rule *rule;
	uint64_t nonce;
	uint64_t seal_seq;    /* last_seq in the seals of full new segments */
	struct output *outs;
	size_t n_outs;
	size_t n_published;   /* outputs renamed to their segment names */
	uint64_t named_first; /* the id output 0's header has (0: none) */
	bool swapped;         /* the index took the swap */
	uint64_t waiting;     /* old segments a reader still holds */
	uint64_t pause_us;    /* writers held */
	atolog_compact_report *report;
	uint8_t *buf;         /* the current output's pending bytes */
	size_t buffered;
	struct index_move *moves;
	size_t n_moves, cap_moves;
	struct index_entry *removed;
	struct names *name_at;
	size_t n_removed, cap_removed;
	char *names;
	size_t names_len, names_cap;
	uint64_t done, total; /* progress: input bytes read */
	const atolog_compact_options *opts;
};

static struct output *run_out(struct run *r)
{
	return &r->outs[r->n_outs - 1];
}

static void output_tmp_path(const atolog_store *s, size_t k, char *out, size_t size)
{
	snprintf(out, size, "%s/%s%zu%s.tmp", s->segment_dir, COMPACT_OUTPUT_PREFIX, k,
		 SEGMENT_SUFFIX);
}

/* Writes what is buffered for the current output. */
static int run_flush(struct run *r)
{
	struct output *o = run_out(r);
	int e;

	if (r->buffered == 0)
		return ATOLOG_OK;
	e = io_pwrite_all(&r->s->compact_io, o->fd, r->buf, r->buffered, o->size - r->buffered);
	r->buffered = 0;
	if (r->opts->progress)
		r->opts->progress(r->done, r->total, r->opts->progress_ctx);
	return e ? err_errno(e, "compaction: writing %s", o->tmp) : ATOLOG_OK;
}

/* Starts output k: a header whose id is filled in at the swap. */
static int output_begin(struct run *r)
{
	struct output *grown = realloc(r->outs, (r->n_outs + 1) * sizeof(*grown));
	struct output *o;

	if (!grown)
		return err_set(ENOMEM, "compaction: a new segment");
	r->outs = grown;
	o = &r->outs[r->n_outs++];
	*o = (struct output){ .size = SEGMENT_HEADER_SIZE };
	output_tmp_path(r->s, r->n_outs - 1, o->tmp, sizeof(o->tmp));
	o->fd = open(o->tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (o->fd < 0)
		return err_errno(errno, "compaction: creating %s", o->tmp);
	memset(r->buf, 0, SEGMENT_HEADER_SIZE);
	r->buffered = SEGMENT_HEADER_SIZE;
	return ATOLOG_OK;
}

static int run_put(struct run *r, const void *bytes, uint32_t len)
{
	struct output *o = run_out(r);
	int rc = ATOLOG_OK;

	if (r->buffered + len > COMPACT_WRITE_BUFFER)
		rc = run_flush(r);
	if (rc == ATOLOG_OK && len > COMPACT_WRITE_BUFFER) {
		int e = io_pwrite_all(&r->s->compact_io, o->fd, bytes, len, o->size);

		if (e)
			rc = err_errno(e, "compaction: writing %s", o->tmp);
	} else if (rc == ATOLOG_OK) {
		memcpy(r->buf + r->buffered, bytes, len);
		r->buffered += len;
	}
	if (rc == ATOLOG_OK)
		o->size += len;
	return rc;
}

/* Ends the current output with a seal frame (it will not be the active
 * segment), then syncs it. */
static int output_end(struct run *r, bool seal)
{
	struct output *o = run_out(r);
	int rc = ATOLOG_OK, e;

	if (seal) {
		msgpack_sbuffer sb;

		rc = seal_frame_build(r->seal_seq, 0, &sb);
		if (rc == ATOLOG_OK)
			rc = run_put(r, sb.data, (uint32_t)sb.size);
		msgpack_sbuffer_destroy(&sb);
	}
	if (rc == ATOLOG_OK)
		rc = run_flush(r);
	if (rc == ATOLOG_OK && (e = io_fdatasync(&r->s->compact_io, o->fd)) != 0)
		rc = err_errno(e, "compaction: syncing %s", o->tmp);
	return rc;
}

/* Appends a kept frame, starting a new output when this one is full. */
static int run_keep(struct run *r, const struct log_frame *f, struct index_loc *to)
{
	struct output *o = run_out(r);
	int rc = ATOLOG_OK;

	if (o->last_length && o->size + f->length > r->s->opts.segment_size) {
		rc = output_end(r, true);
		if (rc == ATOLOG_OK)
			rc = output_begin(r);
		o = run_out(r);
	}
	if (rc != ATOLOG_OK)
		return rc;
	/* Placed by output number; the swap adds the first new id. */
	*to = (struct index_loc){ r->n_outs - 1, o->size, f->length };
	o->last_offset = o->size;
	o->last_length = f->length;
	return run_put(r, f->payload - FRAME_HEADER_SIZE, f->length);
}

static int grow(void **arr, size_t *cap, size_t n, size_t size)
{
	size_t want = *cap ? *cap * 2 : 1024;
	void *p;

	if (n < *cap)
		return ATOLOG_OK;
	p = realloc(*arr, want * size);
	if (!p)
		return err_set(ENOMEM, "compaction: %zu records", n);
	*arr = p;
	*cap = want;
	return ATOLOG_OK;
}

static int names_put(struct run *r, struct text t, size_t *at)
{
	if (r->names_len + t.len + 1 > r->names_cap) {
		size_t cap = (r->names_cap + t.len + 1) * 2;
		char *p = realloc(r->names, cap);

		if (!p)
			return err_set(ENOMEM, "compaction: names");
		r->names = p;
		r->names_cap = cap;
	}
	*at = r->names_len;
	memcpy(r->names + r->names_len, t.ptr, t.len);
	r->names_len += t.len;
	r->names[r->names_len++] = '\0';
	return ATOLOG_OK;
}

/* A record retention removes: what the index needs to drop it. */
static int run_remove(struct run *r, const struct log_frame *f,
		      const struct record_fields *v)
{
	struct index_entry *e;
	struct names *at;
	size_t cap = r->cap_removed;
	int rc = grow((void **)&r->removed, &r->cap_removed, r->n_removed,
		      sizeof(*r->removed));

	if (rc == ATOLOG_OK && r->cap_removed != cap) {
		struct names *p = realloc(r->name_at, r->cap_removed * sizeof(*p));

		if (!p) {
			r->cap_removed = cap; /* keep both arrays' capacity one */
			return err_set(ENOMEM, "compaction: %zu records", r->n_removed);
		}
		r->name_at = p;
	}
	if (rc != ATOLOG_OK)
		return rc;
	e = &r->removed[r->n_removed];
	at = &r->name_at[r->n_removed];
	*e = (struct index_entry){ .created_at = v->created_at, .seq = f->header.seq,
				   .loc = { f->segment, f->offset, f->length } };
	memcpy(e->id, v->id, UUID_SIZE);
	e->project.len = v->project.len;
	e->session.len = v->session_id.len;
	e->client.len = v->client.len;
	rc = report_removal(r->report, (struct index_name){ v->project.ptr, v->project.len },
			    f->length);
	if (rc == ATOLOG_OK)
		rc = names_put(r, v->project, &at->project);
	if (rc == ATOLOG_OK)
		rc = names_put(r, v->session_id, &at->session);
	if (rc == ATOLOG_OK)
		rc = names_put(r, v->client, &at->client);
	if (rc == ATOLOG_OK)
		r->n_removed++;
	return rc;
}

static int copy_record(struct run *r, const struct log_frame *f)
{
	struct record_view view;
	struct index_move *m;
	int rc = record_view_decode(&view, f->payload, f->header.payload_len);

	if (rc != ATOLOG_OK) {
		record_view_free(&view);
		return err_context(rc, "segment %016" PRIx64 " offset %" PRIu64,
				   f->segment, f->offset);
	}
	if (rule_selects(r->rule, view.fields.project.ptr, view.fields.project.len,
			 view.fields.created_at)) {
		rc = run_remove(r, f, &view.fields);
	} else {
		rc = grow((void **)&r->moves, &r->cap_moves, r->n_moves,
			  sizeof(*r->moves));
		if (rc == ATOLOG_OK) {
			m = &r->moves[r->n_moves];
			memcpy(m->id, view.fields.id, UUID_SIZE);
			m->from = (struct index_loc){ f->segment, f->offset, f->length };
			rc = run_keep(r, f, &m->to);
		}
		if (rc == ATOLOG_OK)
			r->n_moves++;
	}
	record_view_free(&view);
	return rc;
}

static int copy_frame(const struct log_frame *f, void *ctx)
{
	struct run *r = ctx;
	struct index_loc unused;

	r->done += f->length;
	switch (f->header.kind) {
	case FRAME_KIND_RECORD:
		return copy_record(r, f);
	case FRAME_KIND_REGISTRY:
		return run_keep(r, f, &unused);
	case FRAME_KIND_SEAL:
		return ATOLOG_OK; /* the inputs' seals end nothing now */
	default:
		return err_set(ATOLOG_VERSION, "segment %016" PRIx64 " offset %" PRIu64
			       ": frame kind %u comes from a newer atolog",
			       f->segment, f->offset, f->header.kind);
	}
}

static int copy_segment(struct run *r, uint64_t id)
{
	struct scan_start from = { .segment_id = id, .offset = SEGMENT_HEADER_SIZE };
	struct segment_header hdr;
	struct scan_result res;
	int fd, rc = segment_open(r->s->segment_dir, id, O_RDONLY, &hdr, &fd);

	if (rc != ATOLOG_OK)
		return rc;
	rc = scan_segment(fd, &from, copy_frame, r, &res);
	close(fd);
	if (rc == ATOLOG_OK && (res.end != SCAN_END_CLEAN ||
				res.last_kind != FRAME_KIND_SEAL))
		rc = err_set(ATOLOG_CORRUPT, "segment %016" PRIx64 " offset %" PRIu64
			     ": a sealed segment ends without its seal frame",
			     id, res.valid_end);
	return rc;
}

static int copy_inputs(struct run *r, const struct plan *p)
{
	int rc = output_begin(r);

	for (size_t i = 0; i < p->n_segs && rc == ATOLOG_OK; i++) {
		if (p->segs[i].input)
			rc = copy_segment(r, p->segs[i].id);
	}
	if (rc == ATOLOG_OK)
		rc = output_end(r, false); /* the last becomes the active one */
	if (rc == ATOLOG_OK)
		store_compact_step(r->s, COMPACT_STEP_WRITTEN);
	return rc;
}

/* ------------------------------------------------------------------------
 * The swap.
 */

/* Gives output k its id and the run's nonce; syncs it. */
static int output_name(struct run *r, size_t k, uint64_t id)
{
	struct segment_header h = { .major = SEGMENT_FORMAT_MAJOR,
				    .minor = SEGMENT_FORMAT_MINOR,
				    .segment_id = id, .created_at = time_now_us(),
				    .compaction = r->nonce };
	uint8_t header[SEGMENT_HEADER_SIZE];
	int e;

	memcpy(h.store_id, r->s->store_id, UUID_SIZE);
	segment_header_write(header, &h);
	e = io_pwrite_all(&r->s->compact_io, r->outs[k].fd, header, sizeof(header), 0);
	if (e == 0)
		e = io_fdatasync(&r->s->compact_io, r->outs[k].fd);
	return e ? err_errno(e, "compaction: %s", r->outs[k].tmp) : ATOLOG_OK;
}

/* Names every output first + k in its header (before the swap, with the
 * id the next segment would get; the swap checks it). */
static int outputs_name(struct run *r, uint64_t first)
{
	int rc = ATOLOG_OK;

	for (size_t k = 0; k < r->n_outs && rc == ATOLOG_OK; k++)
		rc = output_name(r, k, first + k);
	if (rc == ATOLOG_OK)
		r->named_first = first;
	return rc;
}

static int output_rename(struct run *r, size_t k, uint64_t id)
{
	char path[PATH_MAX];

	segment_path(path, sizeof(path), r->s->segment_dir, id);
	if (rename(r->outs[k].tmp, path) != 0)
		return err_errno(errno, "compaction: naming %s", path);
	snprintf(r->outs[k].tmp, sizeof(r->outs[k].tmp), "%s", path);
	r->n_published = k + 1;
	return ATOLOG_OK;
}

static int sync_segment_dir(struct run *r)
{
	int e = io_fsync_dir(&r->s->compact_io, r->s->segment_dir);

	return e ? err_errno(e, "compaction: syncing %s", r->s->segment_dir) : ATOLOG_OK;
}

/* Renames the outputs in order. The last is the commit point, so the
 * others' names are made durable before it is renamed. */
static int outputs_publish(struct run *r, uint64_t first)
{
	int rc = ATOLOG_OK;

	for (size_t k = 0; k + 1 < r->n_outs && rc == ATOLOG_OK; k++)
		rc = output_rename(r, k, first + k);
	if (rc == ATOLOG_OK && r->n_outs > 1) {
		store_compact_step(r->s, COMPACT_STEP_RENAMED_ONE);
		rc = sync_segment_dir(r);
	}
	if (rc == ATOLOG_OK)
		rc = output_rename(r, r->n_outs - 1, first + r->n_outs - 1);
	if (rc == ATOLOG_OK)
		rc = sync_segment_dir(r);
	return rc;
}

/* The index change: moves to real ids, removals with their names. The
 * state moves to the end of the last output. *committed: the transaction
 * committed (a failure after it is not undone). */
static int swap_index(struct run *r, uint64_t first, struct index_state *st,
		      bool *committed)
{
	atolog_store *s = r->s;
	const struct output *last = &r->outs[r->n_outs - 1];
	struct index_compaction c;
	int rc = ATOLOG_OK;

	*committed = false;
	lock_acquire(&s->w.lock);
	*st = s->w.state;
	lock_release(&s->w.lock);
	st->segment = first + r->n_outs - 1;
	st->end_offset = last->size;
	st->last_frame_offset = last->last_length ? last->last_offset : 0;
	st->last_frame_length = last->last_length;
	st->n_records = st->n_records > r->n_removed ? st->n_records - r->n_removed : 0;
	for (size_t i = 0; i < r->n_moves; i++)
		r->moves[i].to.segment = first + r->moves[i].to.segment;
	for (size_t i = 0; i < r->n_removed; i++) {
		r->removed[i].project.ptr = r->names + r->name_at[i].project;
		r->removed[i].session.ptr = r->names + r->name_at[i].session;
		r->removed[i].client.ptr = r->names + r->name_at[i].client;
	}
	c = (struct index_compaction){ .moves = r->moves, .n_moves = r->n_moves,
				       .removed = r->removed, .n_removed = r->n_removed,
				       .state = st, .nonce = r->nonce };
	/* Until synced, a machine crash may damage an unsynced index: the
	 * marker says so, and the idle flush must not remove it meanwhile. */
	lock_acquire(&s->marker_lock);
	if (!s->marker_present && store_needs_marker(s))
		rc = store_marker_write(s);
	if (rc == ATOLOG_OK)
		rc = index_compact_apply(s->idx, &c);
	*committed = rc == ATOLOG_OK;
	if (rc == ATOLOG_OK)
		store_compact_step(s, COMPACT_STEP_INDEX_COMMITTED);
	if (rc == ATOLOG_OK)
		rc = index_sync(s->idx);
	lock_release(&s->marker_lock);
	return rc;
}

/*
 * Something failed before the index took the swap: the store is put back
 * as before. The last output goes first (its name is the commit point),
 * then the others, then the journal; the writer gets a fresh successor to
 * the segment the swap sealed, as a roll would (its id may be that of an
 * output that never committed: no index row ever named one, so no reader
 * holds a place in it).
 */
static int swap_undo(struct run *r, int rc)
{
	atolog_store *s = r->s;
	char msg[ERR_MSG_SIZE];
	struct segment next;
	bool ok = true;

	/* It sets io_failed and makes a segment the active one: the log
	 * holder's fields (commit.c, invariant 6), and the swap holds it. */
	assert(writer_holds_log(s));
	snprintf(msg, sizeof(msg), "%s", err_message(s));
	for (size_t k = r->n_published; ok && k-- > 0;) {
		ok = unlink(r->outs[k].tmp) == 0 || errno == ENOENT;
		r->outs[k].tmp[0] = '\0'; /* that name may soon be the writer's */
		if (ok && k + 1 == r->n_published)
			ok = sync_segment_dir(r) == ATOLOG_OK;
	}
	r->n_published = 0;
	if (!ok || sync_segment_dir(r) != ATOLOG_OK || journal_remove(s) != ATOLOG_OK ||
	    segment_create(&s->w.io, s->segment_dir, s->w.active.id + 1, s->store_id,
			   &next) != ATOLOG_OK)
		s->w.io_failed = true; /* the next open finishes or undoes it */
	else
		writer_adopt(s, &next, NULL);
	return err_set(rc, "%s", msg);
}

static int swap_locked(struct run *r, struct compact_journal *j)
{
	atolog_store *s = r->s;
	struct index_state st;
	bool committed = false;
	int rc;

	assert(writer_holds_log(s)); /* "locked": the log, held exclusive */
	rc = writer_seal(s);
	if (rc != ATOLOG_OK)
		return rc; /* the handle has failed, as a failed roll */
	store_compact_step(s, COMPACT_STEP_SEALED);
	j->output = s->w.active.id + 1;
	if (j->output != r->named_first) /* the writer rolled meanwhile */
		rc = outputs_name(r, j->output);
	if (rc == ATOLOG_OK)
		rc = journal_write(s, j);
	if (rc == ATOLOG_OK) {
		store_compact_step(s, COMPACT_STEP_JOURNALED);
		rc = outputs_publish(r, j->output);
	}
	if (rc == ATOLOG_OK) {
		store_compact_step(s, COMPACT_STEP_RENAMED);
		rc = swap_index(r, j->output, &st, &committed);
	}
	if (rc != ATOLOG_OK && !committed)
		return swap_undo(r, rc);
	if (rc != ATOLOG_OK) {
		/* Committed, not known durable: only a reopen can tell. */
		char msg[ERR_MSG_SIZE];

		snprintf(msg, sizeof(msg), "compaction: syncing the index failed (%s); "
			 "reopen the store, which finishes the compaction",
			 err_message(s));
		writer_fail(s, ATOLOG_FAILED, msg);
		return err_set(rc, "%s", msg);
	}
	store_compact_step(s, COMPACT_STEP_INDEXED);
	writer_adopt(s, &(struct segment){ st.segment, run_out(r)->fd, run_out(r)->size },
		     &st);
	run_out(r)->fd = -1; /* the writer's now */
	return ATOLOG_OK;
}

/* Deletes (or sets aside) the inputs and drops the journal. A failure here
 * leaves the compaction applied, and the journal for the next compaction
 * or open to finish: it is reported, not undone. */
static int swap_finish(struct run *r, const struct compact_journal *j)
{
	atolog_store *s = r->s;
	int rc;

	/* Nothing of this handle keeps an old segment open. */
	segment_fds_flush(&s->fds);
	rc = compact_retire(s, j->inputs, j->n_inputs, &r->waiting);
	if (rc == ATOLOG_OK)
		rc = journal_remove(s);
	if (rc == ATOLOG_OK)
		store_compact_step(s, COMPACT_STEP_DONE);
	return rc;
}

static int run_swap(struct run *r, const struct plan *p)
{
	atolog_store *s = r->s;
	struct compact_journal j = { .nonce = r->nonce, .n_outputs = r->n_outs };
	int64_t t0;
	int rc = ATOLOG_OK;

	j.inputs = calloc(p->report->segments_in + 1, sizeof(*j.inputs));
	if (!j.inputs)
		return err_set(ENOMEM, "compaction: the journal");
	for (size_t i = 0; i < p->n_segs; i++) {
		if (p->segs[i].input)
			j.inputs[j.n_inputs++] = p->segs[i].id;
	}
	lock_acquire(&s->w.lock);
	j.output = s->w.active_id + 1; /* what the swap will most likely find */
	lock_release(&s->w.lock);
	/* The slow part (a sync per output) before writers are held. */
	rc = outputs_name(r, j.output);
	if (rc == ATOLOG_OK) {
		t0 = time_mono_us();
		rc = writer_exclusive_begin(s);
		if (rc == ATOLOG_OK)
			rc = swap_locked(r, &j);
		writer_exclusive_end(s);
		r->pause_us += (uint64_t)(time_mono_us() - t0);
	}
	if (rc == ATOLOG_OK) {
		r->swapped = true;
		if (swap_finish(r, &j) != ATOLOG_OK) {
			/* Applied all the same: the journal stays, and the next
			 * compaction or open deletes the old segments. */
			err_clear();
			r->waiting = j.n_inputs;
		}
	}
	free(j.inputs);
	return rc;
}

static void run_free(struct run *r)
{
	for (size_t k = 0; k < r->n_outs; k++) {
		if (r->outs[k].fd < 0)
			continue;
		close(r->outs[k].fd);
		if (k >= r->n_published && r->outs[k].tmp[0])
			unlink(r->outs[k].tmp); /* a copy that never committed */
	}
	free(r->outs);
	free(r->buf);
	free(r->moves);
	free(r->removed);
	free(r->name_at);
	free(r->names);
}

static int compact_apply(atolog_store *s, const struct compact_rule *rule,
			 const atolog_compact_options *o, struct plan *p)
{
	struct run r = { .s = s, .rule = rule, .opts = o, .report = p->report,
			 .total = p->report->bytes_in };
	int rc = ATOLOG_OK;

	if (getrandom(&r.nonce, sizeof(r.nonce), 0) != sizeof(r.nonce))
		return err_errno(errno, "compaction: a nonce");
	r.nonce |= 1; /* 0 means "no compaction" in a header */
	lock_acquire(&s->w.lock);
	r.seal_seq = s->w.state.last_seq;
	lock_release(&s->w.lock);
	r.buf = malloc(COMPACT_WRITE_BUFFER);
	if (!r.buf)
		rc = err_set(ENOMEM, "compaction: a write buffer");
	if (rc == ATOLOG_OK)
		rc = copy_inputs(&r, p);
	if (rc == ATOLOG_OK)
		rc = run_swap(&r, p);
	if (rc == ATOLOG_OK) {
		atolog_compact_report *out = p->report;

		out->applied = 1;
		out->records_moved = r.n_moves;
		out->segments_out = r.n_outs;
		out->segments_waiting += r.waiting;
		out->pause_us += r.pause_us;
		out->bytes_out = 0;
		for (size_t k = 0; k < r.n_outs; k++)
			out->bytes_out += r.outs[k].size;
	}
	run_free(&r);
	return rc;
}

/* ------------------------------------------------------------------------
 * The entry point.
 */

static int rule_init(atolog_store *s, const atolog_compact_options *o,
		     struct compact_rule *rule)
{
	int rc;

	memset(rule, 0, sizeof(*rule));
	rule->by_time = (o->flags & ATOLOG_COMPACT_BEFORE) != 0;
	rule->before = o->before;
	rule->by_project = (o->flags & ATOLOG_COMPACT_PROJECT) != 0;
	rule->active = rule->by_time || rule->by_project;
	if (!rule->by_project)
		return ATOLOG_OK;
	if (!o->project || !*o->project)
		return err_set(ATOLOG_INVALID, "compaction: retention by project "
			       "needs a project name");
	if (strlen(o->project) > ATOLOG_NAME_MAX_BYTES)
		return err_set(ATOLOG_INVALID, "compaction: the project name is over "
			       "%u bytes", ATOLOG_NAME_MAX_BYTES);
	/* Records hold the canonical name: an alias selects its project. */
	rc = store_resolve_project(s, o->project, strlen(o->project),
				       &rule->project);
	if (rc == ATOLOG_OK)
		rule->project_len = strlen(rule->project);
	return rc;
}

/* Retention may remove records of the active segment: it is sealed
 * first, so that it is a sealed segment like the others. */
static int seal_active(atolog_store *s, atolog_compact_report *out)
{
	int64_t t0 = time_mono_us();
	int rc = writer_exclusive_begin(s);

	if (rc == ATOLOG_OK && s->w.active.size > SEGMENT_HEADER_SIZE)
		rc = writer_roll(s);
	writer_exclusive_end(s);
	out->pause_us += (uint64_t)(time_mono_us() - t0);
	return rc;
}

/* The plan reads the index: everything acknowledged must be in it. */
static int index_level(atolog_store *s)
{
	int rc = writer_exclusive_begin(s);

	writer_exclusive_end(s);
	return rc;
}

static int compact_locked(atolog_store *s, const atolog_compact_options *o,
			  const struct compact_rule *rule, atolog_compact_report *out)
{
	bool apply = (o->flags & ATOLOG_COMPACT_APPLY) != 0;
	struct plan p = { .report = out, .segment_size = s->opts.segment_size,
			  .apply = apply };
	uint64_t waiting = 0;
	int rc;

	lock_assert_held(&s->maint_lock);
	rc = compact_finish(s, false, &waiting);
	p.small_bytes = o->small_bytes ? o->small_bytes
				       : s->opts.segment_size *
						 ATOLOG_COMPACT_SMALL_PERCENT_DEFAULT / 100;
	if (rc == ATOLOG_OK)
		rc = apply && rule->active ? seal_active(s, out) : index_level(s);
	if (rc == ATOLOG_OK)
		rc = plan_build(s, rule, &p);
	if (rc == ATOLOG_OK && apply && out->segments_in > 0)
		rc = compact_apply(s, rule, o, &p);
	out->segments_waiting += waiting;
	free(p.segs);
	return rc;
}

int atolog_store_compact(atolog_store *s, const atolog_compact_options *o,
			 atolog_compact_report *out)
{
	const unsigned known = ATOLOG_COMPACT_APPLY | ATOLOG_COMPACT_BEFORE |
			       ATOLOG_COMPACT_PROJECT;
	atolog_compact_report report = { 0 };
	struct compact_rule rule;
	int rc;

	err_begin(s);
	if (!s || !o || !out)
		return err_set(ATOLOG_INVALID, "compaction: options and a report "
			       "are needed");
	if (s->readonly)
		return err_set(ATOLOG_READONLY, "compaction needs the store's writer");
	if (o->flags & ~known)
		return err_set(ATOLOG_INVALID, "compaction: unknown flags 0x%x",
			       o->flags & ~known);
	rc = rule_init(s, o, &rule);
	if (rc == ATOLOG_OK) {
		lock_acquire(&s->maint_lock);
		rc = compact_locked(s, o, &rule, &report);
		lock_release(&s->maint_lock);
	}
	free(rule.project);
	if (rc != ATOLOG_OK) {
		atolog_compact_report_free(&report);
		return rc;
	}
	*out = report;
	return ATOLOG_OK;
}

void atolog_compact_report_free(atolog_compact_report *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_projects; i++)
		free(r->projects[i].project);
	free(r->projects);
	r->projects = NULL;
	r->n_projects = 0;
}

void store_compact_step(atolog_store *s, enum compact_step step)
{
	if (s->compact_hook)
		s->compact_hook((int)step, s->compact_hook_ctx);
}

void store_on_compact_step(atolog_store *s, void (*fn)(int step, void *ctx),
			   void *ctx)
{
	s->compact_hook = fn;
	s->compact_hook_ctx = ctx;
}
