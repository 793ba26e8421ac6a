/*
 * commit.c - group commit: many threads record at once, the log sees one
 * write and at most one fdatasync per group, the index one transaction.
 *
 *   callers ──queue──▶ log thread ──ready──▶ index thread ──▶ callers woken
 *   (validate,          (number, checksum,     (one LMDB transaction
 *    encode)             write, sync)           for every ready group)
 *
 * Invariants:
 *  1. A caller returns only after its frames are durable per the sync mode
 *     AND indexed, so what record returned is visible to every reader.
 *  2. The index thread only sees groups the log thread has made durable
 *     (always, batch) or written (none): the index never names bytes the
 *     log could lose before the index could.
 *  3. Groups are indexed in the order they were written, and the state row
 *     committed with each transaction describes the log up to the last
 *     frame of its last group.
 *  4. The bytes of every request are counted in queued_bytes from the time
 *     it is queued until its caller is woken; a caller whose request would
 *     pass queue_bytes waits (memory stays bounded under overload).
 *  5. A write that fails before anything of its group reached the log is
 *     undone and fails only that group; anything else that leaves the log
 *     and index in doubt (a failed sync, a failed index transaction after
 *     the log write, a failed cut-back) fails the handle for good
 *     (failed_rc), since it no longer knows what the disk holds.
 *
 * The two threads overlap: while the index thread commits group N, the
 * log thread writes and syncs group N+1, so a sync and an index commit are
 * never paid one after the other by the whole store.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"

struct commit_group {
	struct commit_req *reqs; /* in queue order, linked by next */
	struct index_entry *entries;
	size_t n_entries, max_entries; /* max: record frames in the requests */
	struct index_registry_row *rows;
	size_t n_rows;
	uint64_t bytes;
	struct index_state state; /* the log after this group */
	struct commit_group *next;
};

#define IOV_BATCH 512 /* iovecs handed to one pwritev */

static int64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* An absolute CLOCK_MONOTONIC deadline ms from now (the conds use it). */
static struct timespec deadline_in_us(int64_t us)
{
	struct timespec ts;

	if (us < 0)
		us = 0;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += us / 1000000;
	ts.tv_nsec += (long)(us % 1000000) * 1000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	return ts;
}

static void cond_init_monotonic(pthread_cond_t *c)
{
	pthread_condattr_t attr;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(c, &attr);
	pthread_condattr_destroy(&attr);
}

/* ------------------------------------------------------------------------
 * Failing frames, requests, groups. Messages travel with the request: the
 * error slot is per thread, and the caller is not the thread that failed.
 */

static void req_fail(struct commit_req *req, struct commit_frame *f, int rc,
		     const char *msg)
{
	if (f->rc != ATOLOG_OK)
		return;
	f->rc = rc;
	if (!req->msg[0])
		snprintf(req->msg, sizeof(req->msg), "%s", msg);
}

static void reqs_fail(struct commit_req *reqs, int rc, const char *msg)
{
	for (struct commit_req *r = reqs; r; r = r->next) {
		for (size_t i = 0; i < r->n_frames; i++)
			req_fail(r, &r->frames[i], rc, msg);
	}
}

/* Wakes the callers of reqs; called with the lock held. */
static void reqs_complete_locked(struct writer *w, struct commit_req *reqs)
{
	while (reqs) {
		struct commit_req *next = reqs->next;

		w->queued_bytes -= reqs->bytes;
		reqs->done = true;
		reqs = next;
	}
	pthread_cond_broadcast(&w->acked);
	pthread_cond_broadcast(&w->room);
}

/* Makes the handle refuse every later write (invariant 5). */
static void fail_for_good_locked(struct writer *w, int rc, const char *msg)
{
	if (w->failed_rc)
		return;
	w->failed_rc = rc;
	snprintf(w->failed_msg, sizeof(w->failed_msg), "%s", msg);
}

static void group_free(struct commit_group *g)
{
	free(g->entries);
	free(g->rows);
	free(g);
}

/* Fails a whole group that never reached the index and wakes its callers. */
static void group_abandon(atolog_store *s, struct commit_group *g, int rc,
			  const char *msg, bool for_good)
{
	struct writer *w = &s->w;

	reqs_fail(g->reqs, rc, msg);
	pthread_mutex_lock(&w->lock);
	if (for_good)
		fail_for_good_locked(w, rc, msg);
	reqs_complete_locked(w, g->reqs);
	pthread_mutex_unlock(&w->lock);
	group_free(g);
}

/* ------------------------------------------------------------------------
 * The log thread: building a group.
 */

static int group_alloc(struct commit_group *g)
{
	size_t n_entries = 0, n_rows = 0;

	for (struct commit_req *r = g->reqs; r; r = r->next) {
		g->bytes += r->bytes;
		for (size_t i = 0; i < r->n_frames; i++) {
			n_entries += r->frames[i].kind == FRAME_KIND_RECORD;
			n_rows += r->frames[i].n_rows;
		}
	}
	g->max_entries = n_entries;
	g->entries = calloc(n_entries + 1, sizeof(*g->entries));
	g->rows = calloc(n_rows + 1, sizeof(*g->rows));
	if (!g->entries || !g->rows)
		return err_set(ENOMEM, "building a commit group");
	return ATOLOG_OK;
}

/* Waits until every group written so far is indexed (for id checks). */
static void wait_index_drained(struct writer *w)
{
	pthread_mutex_lock(&w->lock);
	while (w->groups_indexed != w->groups_written)
		pthread_cond_wait(&w->acked, &w->lock);
	pthread_mutex_unlock(&w->lock);
}

struct unsynced;
static void unsynced_flush(atolog_store *s, struct unsynced *u);

struct frame_ref {
	struct commit_req *req;
	struct commit_frame *frame;
	size_t order;
};

static int frame_ref_by_id(const void *a, const void *b)
{
	const struct frame_ref *x = a, *y = b;
	int c = memcmp(x->frame->entry.id, y->frame->entry.id, UUID_SIZE);

	if (c)
		return c;
	return x->order < y->order ? -1 : x->order > y->order;
}

static void fail_exists(struct commit_req *req, struct commit_frame *f)
{
	char id[ATOLOG_ID_TEXT_LEN + 1], msg[96];

	uuid_format(f->entry.id, id);
	snprintf(msg, sizeof(msg), "an interaction with id %s is already stored", id);
	req_fail(req, f, ATOLOG_EXISTS, msg);
}

/*
 * Refuses caller-supplied ids that are stored already or repeated within
 * the group. Only groups holding such ids pay for this; generated ids are
 * unique by construction. The index must have caught up first, or an id in
 * a group still on its way to the index would be missed.
 */
static int group_check_ids(atolog_store *s, struct commit_group *g,
			   struct unsynced *u)
{
	struct frame_ref *refs;
	size_t n = 0, order = 0;
	bool any_given = false;

	for (struct commit_req *r = g->reqs; r; r = r->next) {
		for (size_t i = 0; i < r->n_frames; i++)
			any_given |= r->frames[i].id_given;
	}
	if (!any_given)
		return ATOLOG_OK;
	/* Groups written and not yet synced are not indexed either. */
	unsynced_flush(s, u);
	wait_index_drained(&s->w);
	refs = calloc(g->max_entries + 1, sizeof(*refs));
	if (!refs)
		return err_set(ENOMEM, "checking ids");
	for (struct commit_req *r = g->reqs; r; r = r->next) {
		for (size_t i = 0; i < r->n_frames; i++) {
			struct commit_frame *f = &r->frames[i];
			struct index_loc loc;

			if (f->kind != FRAME_KIND_RECORD || f->rc != ATOLOG_OK)
				continue;
			int found = f->id_given ? index_lookup(s->idx, f->entry.id, &loc)
						: ATOLOG_NOTFOUND;

			if (found == ATOLOG_OK)
				fail_exists(r, f);
			else if (found != ATOLOG_NOTFOUND)
				req_fail(r, f, found, err_message(s));
			else
				refs[n++] = (struct frame_ref){ r, f, order++ };
		}
	}
	err_clear(); /* NOTFOUND from the lookups is the good answer */
	qsort(refs, n, sizeof(*refs), frame_ref_by_id);
	for (size_t i = 1; i < n; i++) {
		if (memcmp(refs[i].frame->entry.id, refs[i - 1].frame->entry.id,
			   UUID_SIZE) == 0)
			fail_exists(refs[i].req, refs[i].frame);
	}
	free(refs);
	return ATOLOG_OK;
}

/* ------------------------------------------------------------------------
 * The log thread: writing a group.
 */

struct group_writer {
	struct iovec iov[IOV_BATCH];
	int n_iov;
	uint64_t pending; /* bytes in iov, not yet written */
	bool rolled;      /* a roll made part of this group durable */
};

static int group_flush(atolog_store *s, struct group_writer *gw)
{
	struct writer *w = &s->w;
	int rc;

	if (gw->n_iov == 0)
		return ATOLOG_OK;
	rc = segment_appendv(&w->io, &w->active, gw->iov, gw->n_iov, gw->pending,
			     &w->io_failed);
	if (rc == ATOLOG_OK)
		w->active.size += gw->pending;
	gw->n_iov = 0;
	gw->pending = 0;
	return rc;
}

/* Numbers one frame, queues it for writing and notes what to index. */
static int group_add_frame(atolog_store *s, struct commit_group *g,
			   struct group_writer *gw, struct commit_frame *f)
{
	struct writer *w = &s->w;
	uint64_t offset;
	int rc;

	if (w->active.size + gw->pending + f->len > s->opts.segment_size &&
	    w->active.size + gw->pending > SEGMENT_HEADER_SIZE) {
		rc = group_flush(s, gw);
		if (rc == ATOLOG_OK)
			rc = writer_roll(s);
		if (rc != ATOLOG_OK)
			return rc;
		gw->rolled = true;
	}
	if (gw->n_iov == IOV_BATCH && (rc = group_flush(s, gw)) != ATOLOG_OK)
		return rc;
	f->seq = w->next_seq++;
	frame_header_write(f->data, f->kind,
			   w->sync_start_next ? FRAME_FLAG_SYNC_START : 0, f->seq,
			   f->len - FRAME_HEADER_SIZE);
	w->sync_start_next = false;
	offset = w->active.size + gw->pending;
	gw->iov[gw->n_iov].iov_base = f->data;
	gw->iov[gw->n_iov++].iov_len = f->len;
	gw->pending += f->len;
	w->log_state.segment = w->active.id;
	w->log_state.end_offset = offset + f->len;
	w->log_state.last_frame_offset = offset;
	w->log_state.last_frame_length = f->len;
	w->log_state.last_seq = f->seq;
	if (f->kind == FRAME_KIND_RECORD) {
		struct index_entry *e = &g->entries[g->n_entries++];

		*e = f->entry;
		e->seq = f->seq;
		e->loc = (struct index_loc){ w->active.id, offset, f->len };
		w->log_state.n_records++;
	}
	for (size_t i = 0; i < f->n_rows; i++)
		g->rows[g->n_rows++] = f->rows[i];
	return ATOLOG_OK;
}

/* Appends every frame still OK; on failure says whether it is for good. */
/*
 * Takes a failed group back off the log: the whole group, not only the
 * part whose write failed (a large group is written in several pwritevs).
 * Possible only if no roll made part of it durable; otherwise, or if the
 * cut fails, the handle fails for good (*for_good).
 */
static void group_unwrite(atolog_store *s, const struct group_writer *gw,
			  uint64_t start, bool *for_good)
{
	struct writer *w = &s->w;
	int rc;

	*for_good = gw->rolled || w->io_failed;
	if (*for_good)
		return;
	rc = io_ftruncate(&w->io, w->active.fd, start);
	if (rc != 0) {
		w->io_failed = true;
		*for_good = true;
		return;
	}
	w->active.size = start;
}

static int group_write(atolog_store *s, struct commit_group *g, bool *for_good)
{
	struct writer *w = &s->w;
	struct group_writer gw = { .n_iov = 0 };
	uint64_t seq_before = w->next_seq, start = w->active.size;
	struct index_state state_before = w->log_state;
	bool sync_start_before = w->sync_start_next;
	int rc = ATOLOG_OK;

	*for_good = false;
	for (struct commit_req *r = g->reqs; r && rc == ATOLOG_OK; r = r->next) {
		for (size_t i = 0; i < r->n_frames && rc == ATOLOG_OK; i++) {
			if (r->frames[i].rc == ATOLOG_OK)
				rc = group_add_frame(s, g, &gw, &r->frames[i]);
		}
	}
	if (rc == ATOLOG_OK)
		rc = group_flush(s, &gw);
	if (rc != ATOLOG_OK)
		group_unwrite(s, &gw, start, for_good);
	if (rc != ATOLOG_OK && !*for_good) {
		/* As if never written. */
		w->next_seq = seq_before;
		w->log_state = state_before;
		w->sync_start_next = sync_start_before;
	}
	g->state = w->log_state;
	return rc;
}

/* ------------------------------------------------------------------------
 * The log thread: syncing and handing groups to the index thread.
 */

static void groups_release(atolog_store *s, struct commit_group *head,
			   struct commit_group *tail, uint64_t n)
{
	struct writer *w = &s->w;

	pthread_mutex_lock(&w->lock);
	if (w->ready_tail)
		w->ready_tail->next = head;
	else
		w->ready_head = head;
	w->ready_tail = tail;
	w->groups_written += n;
	pthread_cond_signal(&w->index_wake);
	pthread_mutex_unlock(&w->lock);
}

/* Sync everything written and not yet synced, then release it. */
static int log_sync_release(atolog_store *s, struct commit_group *head,
			    struct commit_group *tail, uint64_t n)
{
	struct writer *w = &s->w;
	int rc = io_fdatasync(&w->io, w->active.fd);

	if (rc != 0) {
		char msg[ERR_MSG_SIZE];

		w->io_failed = true;
		err_errno(rc, "segment %016" PRIx64 ": fdatasync", w->active.id);
		snprintf(msg, sizeof(msg), "%s", err_message(s));
		while (head) {
			struct commit_group *next = head->next;

			group_abandon(s, head, err_code_from_errno(rc), msg, true);
			head = next;
		}
		return rc;
	}
	pthread_mutex_lock(&w->lock);
	w->n_syncs++;
	pthread_mutex_unlock(&w->lock);
	if (w->on_sync)
		w->on_sync(w->active.id, w->active.size, w->on_sync_ctx);
	w->sync_start_next = true;
	w->unsynced_bytes = 0;
	if (head)
		groups_release(s, head, tail, n);
	return ATOLOG_OK;
}

/* Written groups waiting for their sync (always and batch modes). */
struct unsynced {
	struct commit_group *head, *tail;
	uint64_t n;
	uint64_t reqs; /* callers waiting on this sync */
};

static uint64_t count_reqs(const struct commit_req *r)
{
	uint64_t n = 0;

	for (; r; r = r->next)
		n++;
	return n;
}

static bool batch_sync_due(const atolog_store *s, const struct unsynced *u)
{
	return u->n > 0 &&
	       (s->w.unsynced_bytes >= s->opts.sync_bytes ||
		mono_us() - s->w.unsynced_since >=
			(int64_t)s->opts.sync_interval_ms * 1000);
}

static void unsynced_flush(atolog_store *s, struct unsynced *u)
{
	if (u->n == 0)
		return;
	s->w.last_sync_reqs = u->reqs;
	log_sync_release(s, u->head, u->tail, u->n);
	*u = (struct unsynced){ NULL, NULL, 0, 0 };
}

/*
 * Always mode gathers: when a sync is about to carry fewer callers than the
 * last one did, the others are most likely on their way back (woken by the
 * last sync's acknowledgement, preparing their next record), so the log
 * waits up to COMMIT_GATHER_US for them to share this sync instead of
 * taking the next one. Without it, acknowledged callers arrive just after
 * the next sync started, and N agents settle into two alternating groups
 * of N/2, each paying a whole sync. One agent alone never waits.
 */
static bool always_sync_due(const atolog_store *s, const struct unsynced *u)
{
	return u->n > 0 &&
	       (u->reqs >= s->w.last_sync_reqs ||
		mono_us() - s->w.unsynced_since >= COMMIT_GATHER_US);
}

static bool sync_due(const atolog_store *s, const struct unsynced *u)
{
	if (s->opts.sync == ATOLOG_SYNC_ALWAYS)
		return always_sync_due(s, u);
	return batch_sync_due(s, u);
}

/* Writes one group and moves it on according to the sync mode. */
static void log_group_run(atolog_store *s, struct commit_req *reqs,
			  struct unsynced *u)
{
	struct commit_group *g = calloc(1, sizeof(*g));
	bool for_good = false;
	int rc;

	if (!g) {
		reqs_fail(reqs, ENOMEM, "allocating a commit group");
		pthread_mutex_lock(&s->w.lock);
		reqs_complete_locked(&s->w, reqs);
		pthread_mutex_unlock(&s->w.lock);
		return;
	}
	g->reqs = reqs;
	err_clear();
	rc = group_alloc(g);
	if (rc == ATOLOG_OK)
		rc = group_check_ids(s, g, u);
	if (rc == ATOLOG_OK)
		rc = group_write(s, g, &for_good);
	if (rc != ATOLOG_OK) {
		char msg[ERR_MSG_SIZE];

		snprintf(msg, sizeof(msg), "%s", err_message(s));
		group_abandon(s, g, rc, msg, for_good);
		return;
	}
	pthread_mutex_lock(&s->w.lock);
	s->w.n_groups++;
	s->w.n_frames += g->n_entries;
	pthread_mutex_unlock(&s->w.lock);
	if (s->opts.sync == ATOLOG_SYNC_NONE) {
		groups_release(s, g, g, 1);
		return;
	}
	if (u->n++ == 0) {
		u->head = g;
		s->w.unsynced_since = mono_us();
	} else {
		u->tail->next = g;
	}
	u->tail = g;
	u->reqs += count_reqs(g->reqs);
	s->w.unsynced_bytes += g->bytes;
}

/* Waits for work. Returns the queued requests, or NULL when there are none
 * and unsynced groups should be synced now (batch: nothing else is coming
 * to share the sync; always: the gathering time is up), or the writer is
 * stopping. */
static struct commit_req *log_wait_locked(atolog_store *s, struct unsynced *u)
{
	struct writer *w = &s->w;
	struct commit_req *reqs;

	while ((!w->queue_head || w->paused) && !w->stopping) {
		if (u->n > 0 && (s->opts.sync == ATOLOG_SYNC_BATCH ||
				 always_sync_due(s, u)))
			return NULL;
		if (u->n > 0) {
			struct timespec until = deadline_in_us(
				COMMIT_GATHER_US - (mono_us() - w->unsynced_since));

			pthread_cond_timedwait(&w->log_wake, &w->lock, &until);
		} else {
			pthread_cond_wait(&w->log_wake, &w->lock);
		}
	}
	reqs = w->queue_head;
	w->queue_head = w->queue_tail = NULL;
	return reqs;
}

static void *log_thread_main(void *arg)
{
	atolog_store *s = arg;
	struct writer *w = &s->w;
	struct unsynced u = { NULL, NULL, 0, 0 };

	err_begin(s);
	pthread_mutex_lock(&w->lock);
	for (;;) {
		struct commit_req *reqs = log_wait_locked(s, &u);

		if (!reqs && u.n == 0 && w->stopping)
			break;
		pthread_mutex_unlock(&w->lock);
		if (reqs)
			log_group_run(s, reqs, &u);
		if (!reqs || sync_due(s, &u))
			unsynced_flush(s, &u);
		pthread_mutex_lock(&w->lock);
	}
	w->log_done = true;
	pthread_cond_signal(&w->index_wake);
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

/* ------------------------------------------------------------------------
 * The index thread.
 */

/* The entries and rows of every group, as one batch. */
static int merge_groups(struct commit_group *groups, struct index_batch *b,
			struct index_entry **entries, struct index_registry_row **rows)
{
	size_t n_entries = 0, n_rows = 0;
	struct commit_group *last = groups;

	for (struct commit_group *g = groups; g; g = g->next) {
		n_entries += g->n_entries;
		n_rows += g->n_rows;
		last = g;
	}
	*entries = calloc(n_entries + 1, sizeof(**entries));
	*rows = calloc(n_rows + 1, sizeof(**rows));
	if (!*entries || !*rows)
		return err_set(ENOMEM, "merging commit groups");
	for (struct commit_group *g = groups; g; g = g->next) {
		memcpy(*entries + b->n_entries, g->entries,
		       g->n_entries * sizeof(**entries));
		b->n_entries += g->n_entries;
		memcpy(*rows + b->n_registry, g->rows, g->n_rows * sizeof(**rows));
		b->n_registry += g->n_rows;
	}
	b->entries = *entries;
	b->registry = *rows;
	b->state = &last->state;
	return ATOLOG_OK;
}

static int index_groups(atolog_store *s, struct commit_group *groups)
{
	struct index_batch b = { .n_entries = 0 };
	struct index_entry *entries = NULL;
	struct index_registry_row *rows = NULL;
	int rc = merge_groups(groups, &b, &entries, &rows);

	if (rc == ATOLOG_OK && !s->marker_present && store_needs_marker(s))
		rc = store_marker_write(s);
	if (rc == ATOLOG_OK)
		rc = index_apply(s->idx, &b, NULL);
	free(entries);
	free(rows);
	return rc;
}

/* Records the outcome of one index transaction and wakes the callers. */
static void index_groups_done(atolog_store *s, struct commit_group *groups,
			      int rc, const char *msg)
{
	struct writer *w = &s->w;

	pthread_mutex_lock(&w->lock);
	if (rc != ATOLOG_OK)
		fail_for_good_locked(w, rc, msg); /* logged, not indexed */
	else
		w->n_index_commits++;
	while (groups) {
		struct commit_group *next = groups->next;

		if (rc != ATOLOG_OK)
			reqs_fail(groups->reqs, rc, msg);
		else
			w->state = groups->state;
		reqs_complete_locked(w, groups->reqs);
		w->groups_indexed++;
		group_free(groups);
		groups = next;
	}
	pthread_mutex_unlock(&w->lock);
}

/* With nothing to index for a while, flush the index to disk so that a
 * machine crash no longer means a rebuild (store.c, the marker). */
static void index_idle_flush(atolog_store *s)
{
	if (s->marker_present && store_marker_clear(s) != ATOLOG_OK)
		err_clear(); /* the marker stays: the next open rebuilds */
}

static void *index_thread_main(void *arg)
{
	atolog_store *s = arg;
	struct writer *w = &s->w;

	err_begin(s);
	pthread_mutex_lock(&w->lock);
	for (;;) {
		struct commit_group *groups;
		char msg[ERR_MSG_SIZE] = "";
		int rc;

		while (!w->ready_head && !w->log_done) {
			struct timespec until = deadline_in_us(INDEX_IDLE_FLUSH_MS * 1000);

			if (pthread_cond_timedwait(&w->index_wake, &w->lock, &until) ==
			    ETIMEDOUT && !w->ready_head) {
				pthread_mutex_unlock(&w->lock);
				index_idle_flush(s);
				pthread_mutex_lock(&w->lock);
			}
		}
		if (!w->ready_head)
			break;
		groups = w->ready_head;
		w->ready_head = w->ready_tail = NULL;
		pthread_mutex_unlock(&w->lock);
		err_clear();
		rc = index_groups(s, groups);
		if (rc != ATOLOG_OK)
			snprintf(msg, sizeof(msg), "%s", err_message(s));
		index_groups_done(s, groups, rc, msg);
		pthread_mutex_lock(&w->lock);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

/* ------------------------------------------------------------------------
 * Callers.
 */

int commit_submit(atolog_store *s, struct commit_req *req)
{
	struct writer *w = &s->w;
	struct timespec until;
	int rc = ATOLOG_OK;

	req->bytes = 0;
	for (size_t i = 0; i < req->n_frames; i++) {
		req->frames[i].queued = req->frames[i].rc == ATOLOG_OK;
		if (req->frames[i].queued)
			req->bytes += req->frames[i].len;
	}
	if (s->opts.queue_timeout_ms)
		until = deadline_in_us((int64_t)s->opts.queue_timeout_ms * 1000);
	pthread_mutex_lock(&w->lock);
	/* A request larger than the whole budget still goes, alone. */
	while (!w->failed_rc && !w->stopping && w->queued_bytes > 0 &&
	       w->queued_bytes + req->bytes > s->opts.queue_bytes) {
		if (!s->opts.queue_timeout_ms) {
			pthread_cond_wait(&w->room, &w->lock);
		} else if (pthread_cond_timedwait(&w->room, &w->lock, &until) ==
			   ETIMEDOUT) {
			rc = err_set(ATOLOG_TIMEDOUT, "the commit queue stayed full "
				     "(%" PRIu64 " bytes) for %u ms", w->queued_bytes,
				     s->opts.queue_timeout_ms);
			break;
		}
	}
	if (rc == ATOLOG_OK && w->failed_rc)
		rc = err_set(ATOLOG_FAILED, "%s; reopen the store", w->failed_msg);
	else if (rc == ATOLOG_OK && w->stopping)
		rc = err_set(ATOLOG_INVALID, "the store is closing");
	if (rc != ATOLOG_OK) {
		pthread_mutex_unlock(&w->lock);
		for (size_t i = 0; i < req->n_frames; i++) {
			if (req->frames[i].rc == ATOLOG_OK)
				req->frames[i].rc = rc; /* refused before the queue */
		}
		return rc;
	}
	req->next = NULL;
	if (w->queue_tail)
		w->queue_tail->next = req;
	else
		w->queue_head = req;
	w->queue_tail = req;
	w->queued_bytes += req->bytes;
	pthread_cond_signal(&w->log_wake);
	while (!req->done)
		pthread_cond_wait(&w->acked, &w->lock);
	pthread_mutex_unlock(&w->lock);
	for (size_t i = 0; i < req->n_frames; i++) {
		if (req->frames[i].queued && req->frames[i].rc != ATOLOG_OK)
			return err_set(req->frames[i].rc, "%s", req->msg);
	}
	return ATOLOG_OK;
}

/* ------------------------------------------------------------------------
 * Rolling segments (log thread).
 */

/* A buffer with room for the frame header in front of the payload. */
static int seal_frame(atolog_store *s, msgpack_sbuffer *sb)
{
	static const char header[FRAME_HEADER_SIZE];

	msgpack_sbuffer_init(sb);
	if (msgpack_sbuffer_write(sb, header, sizeof(header)) != 0)
		return err_set(ENOMEM, "allocating a seal frame");
	if (seal_encode(s->w.next_seq - 1, sb) != ATOLOG_OK)
		return ENOMEM;
	frame_header_write((uint8_t *)sb->data, FRAME_KIND_SEAL,
			   s->w.sync_start_next ? FRAME_FLAG_SYNC_START : 0, 0,
			   (uint32_t)(sb->size - FRAME_HEADER_SIZE));
	return ATOLOG_OK;
}

int writer_roll(atolog_store *s)
{
	struct writer *w = &s->w;
	struct segment next;
	msgpack_sbuffer sb;
	int rc = seal_frame(s, &sb);

	if (rc == ATOLOG_OK)
		rc = segment_append(&w->io, &w->active, sb.data, sb.size, &w->io_failed);
	if (rc == ATOLOG_OK) {
		w->active.size += sb.size;
		/* Exact size, then durable, before a newer segment exists:
		 * recovery takes an unsealed older segment for damage. */
		rc = segment_seal(&w->io, &w->active);
		if (rc != ATOLOG_OK)
			w->io_failed = true;
		else if (w->on_sync)
			w->on_sync(w->active.id, w->active.size, w->on_sync_ctx);
	}
	if (rc == ATOLOG_OK) {
		rc = segment_create(&w->io, s->segment_dir, w->active.id + 1,
				    s->store_id, &next);
		if (rc != ATOLOG_OK)
			w->io_failed = true; /* sealed with no successor */
	}
	if (rc == ATOLOG_OK) {
		close(w->active.fd);
		w->active = next;
		segment_preallocate(&w->active, s->opts.segment_size);
		w->sync_start_next = true;
		pthread_mutex_lock(&w->lock);
		w->n_syncs++;
		pthread_mutex_unlock(&w->lock);
	}
	msgpack_sbuffer_destroy(&sb);
	return rc;
}

/* ------------------------------------------------------------------------
 * Life cycle.
 */

int writer_init(atolog_store *s)
{
	struct writer *w = &s->w;

	pthread_mutex_init(&w->registry_lock, NULL);
	pthread_mutex_init(&w->ids_lock, NULL);
	pthread_mutex_init(&w->lock, NULL);
	cond_init_monotonic(&w->log_wake);
	cond_init_monotonic(&w->index_wake);
	cond_init_monotonic(&w->room);
	cond_init_monotonic(&w->acked);
	uuid_v7_init(&w->ids);
	io_faults_init(&w->io);
	w->sync_start_next = true; /* the first frame after open */
	return ATOLOG_OK;
}

int writer_start(atolog_store *s)
{
	struct writer *w = &s->w;

	w->log_state = w->state;
	segment_preallocate(&w->active, s->opts.segment_size);
	if (pthread_create(&w->log_thread, NULL, log_thread_main, s) != 0)
		return err_set(EAGAIN, "starting the log thread");
	if (pthread_create(&w->index_thread, NULL, index_thread_main, s) != 0) {
		pthread_mutex_lock(&w->lock);
		w->stopping = true;
		pthread_cond_signal(&w->log_wake);
		pthread_mutex_unlock(&w->lock);
		pthread_join(w->log_thread, NULL);
		return err_set(EAGAIN, "starting the index thread");
	}
	w->started = true;
	w->ran = true;
	return ATOLOG_OK;
}

int writer_stop(atolog_store *s)
{
	struct writer *w = &s->w;
	int rc = ATOLOG_OK;

	if (w->started) {
		pthread_mutex_lock(&w->lock);
		w->stopping = true;
		pthread_cond_broadcast(&w->log_wake);
		pthread_cond_broadcast(&w->room);
		pthread_mutex_unlock(&w->lock);
		pthread_join(w->log_thread, NULL);
		pthread_join(w->index_thread, NULL);
		w->started = false;
	}
	if (w->ran && w->active.fd >= 0 && !w->io_failed) {
		/* A clean close leaves the log durable and exact in every mode. */
		int e = io_ftruncate(&w->io, w->active.fd, w->active.size);

		if (e == 0)
			e = io_fdatasync(&w->io, w->active.fd);
		if (e != 0)
			rc = err_errno(e, "segment %016" PRIx64 ": closing", w->active.id);
	}
	if (rc == ATOLOG_OK && w->failed_rc)
		rc = err_set(w->failed_rc, "%s", w->failed_msg);
	return rc;
}

void store_observe_syncs(atolog_store *s,
			 void (*fn)(uint64_t segment, uint64_t size, void *ctx),
			 void *ctx)
{
	pthread_mutex_lock(&s->w.lock);
	s->w.on_sync = fn;
	s->w.on_sync_ctx = ctx;
	pthread_mutex_unlock(&s->w.lock);
}

void store_pause_log(atolog_store *s, bool paused)
{
	pthread_mutex_lock(&s->w.lock);
	s->w.paused = paused;
	pthread_cond_signal(&s->w.log_wake);
	pthread_mutex_unlock(&s->w.lock);
}

void writer_destroy(atolog_store *s)
{
	struct writer *w = &s->w;

	if (w->active.fd >= 0)
		close(w->active.fd);
	w->active.fd = -1;
	pthread_cond_destroy(&w->log_wake);
	pthread_cond_destroy(&w->index_wake);
	pthread_cond_destroy(&w->room);
	pthread_cond_destroy(&w->acked);
	pthread_mutex_destroy(&w->lock);
	pthread_mutex_destroy(&w->ids_lock);
	pthread_mutex_destroy(&w->registry_lock);
}
