/*
 * commit.c - group commit: many threads record at once, the log sees one
 * write and at most one fdatasync per group, the index one transaction
 * for many groups.
 *
 *   callers ──queue──▶ leader ─────────────▶ recent set ──▶ index thread
 *   (validate,          (one of the callers:  (callers       (LMDB, large
 *    encode)             number, checksum,     woken)         transactions)
 *                        write, sync)
 *
 * There is no log thread: the first caller to find nobody leading takes
 * everything queued as one group and writes it itself, so one agent alone
 * pays no thread hand-off at all, and under load the groups form while a
 * leader syncs. A leader gives the lead to the oldest waiting caller when
 * it is done.
 *
 * Invariants:
 *  1. A caller returns only after its frames are durable per the sync mode
 *     AND published to the recent set, so every reader of the process sees
 *     what record returned (readers merge the set with LMDB, read.c).
 *     Registrations return only once indexed: the registry is read from
 *     LMDB alone.
 *  2. The index thread only sees items the leader has made durable
 *     (always, batch) or written (none): the index never names bytes the
 *     log could lose before the index could.
 *  3. Items are indexed in log order, and the state row committed with
 *     each transaction describes the log up to the last frame it covers.
 *  4. The bytes of every request are counted in queued_bytes from the time
 *     it is queued until its caller is woken; a caller whose request would
 *     pass queue_bytes waits, and so does one while the recent set holds
 *     recent_max items the index has not committed (memory stays bounded
 *     under overload, and when the index falls behind).
 *  5. A write that fails before anything of its group reached the log is
 *     undone and fails only that group; anything else that leaves the log
 *     and index in doubt (a failed sync, a failed cut-back, a failed index
 *     transaction after the callers were acknowledged) fails the handle
 *     for good (failed_rc), since it no longer knows what the disk holds.
 *  6. One leader at a time: `leading` is set and cleared under lock, and
 *     everything the leader owns (struct writer's first part, the recent
 *     set's reservations) passes from one leader to the next through it.
 *     While `exclusive` is set nobody leads: maintenance (a compaction's
 *     swap) owns those fields, with the index level with the log.
 */
#include <assert.h>
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
	struct log_item *items;  /* one per frame written, in log order */
	size_t n_items, max_items;
	uint64_t n_reqs, bytes;
	struct commit_group *next;
};

#define IOV_BATCH 512 /* iovecs handed to one pwritev */

/* An absolute CLOCK_MONOTONIC deadline us from now (the conds use it). */
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

/* Invariant 6, checked: the fields of struct writer's first part (the
 * segment, the numbering, io_failed...) are touched only by the thread
 * holding the log. log_owner names it in debug builds. */
bool writer_holds_log(const atolog_store *s)
{
	return owner_is_me(&s->w.log_owner);
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

/* Wakes the caller of req; called with the lock held. */
static void req_complete_locked(struct writer *w, struct commit_req *req)
{
	lock_assert_held(&w->lock);
	w->queued_bytes -= req->bytes;
	req->done = true;
	pthread_cond_signal(&req->wake);
}

/* Wakes the callers of reqs (of a group that failed); called with the
 * lock held. */
static void reqs_complete_locked(struct writer *w, struct commit_req *reqs)
{
	lock_assert_held(&w->lock);
	while (reqs) {
		struct commit_req *next = reqs->next;

		req_complete_locked(w, reqs);
		reqs = next;
	}
	pthread_cond_broadcast(&w->room);
}

/* Makes the handle refuse every later write (invariant 5). */
static void fail_for_good_locked(struct writer *w, int rc, const char *msg)
{
	lock_assert_held(&w->lock);
	if (w->failed_rc)
		return;
	w->failed_rc = rc;
	snprintf(w->failed_msg, sizeof(w->failed_msg), "%s", msg);
}

void writer_fail(atolog_store *s, int rc, const char *msg)
{
	lock_acquire(&s->w.lock);
	fail_for_good_locked(&s->w, rc, msg);
	lock_release(&s->w.lock);
}

static void group_free(struct commit_group *g)
{
	free(g->items);
	free(g);
}

/* Fails a whole group that was not published and wakes its callers. */
static void group_abandon(atolog_store *s, struct commit_group *g, int rc,
			  const char *msg, bool for_good)
{
	struct writer *w = &s->w;

	reqs_fail(g->reqs, rc, msg);
	lock_acquire(&w->lock);
	if (for_good)
		fail_for_good_locked(w, rc, msg);
	reqs_complete_locked(w, g->reqs);
	lock_release(&w->lock);
	group_free(g);
}

/* ------------------------------------------------------------------------
 * Building a group.
 */

/* Sizes the group and fills its items from the frames still OK (seq and
 * location come when they are written). */
static int group_alloc(struct commit_group *g)
{
	size_t n = 0;

	for (struct commit_req *r = g->reqs; r; r = r->next) {
		g->bytes += r->bytes;
		g->n_reqs++;
		n += r->n_frames;
	}
	g->items = calloc(n + 1, sizeof(*g->items));
	if (!g->items)
		return err_set(ENOMEM, "building a commit group");
	g->max_items = n;
	return ATOLOG_OK;
}

struct leader;
static void unsynced_flush(atolog_store *s, struct leader *ld);

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

/* Is the id stored? The recent set first, then LMDB: an item leaves the
 * set only once LMDB has it (recent.c), so this order misses nothing. */
static int id_lookup(atolog_store *s, const uint8_t id[UUID_SIZE])
{
	struct index_loc loc;

	if (recent_find(&s->w.recent, id, &loc))
		return ATOLOG_OK;
	return index_lookup(s->idx, id, &loc);
}

/*
 * Refuses caller-supplied ids that are stored already or repeated within
 * the group. Only groups holding such ids pay for this; generated ids are
 * unique by construction. Groups written but not yet synced are in
 * neither the recent set nor LMDB, so they are synced and published first.
 */
static int group_check_ids(atolog_store *s, struct commit_group *g,
			   struct leader *ld)
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
	unsynced_flush(s, ld);
	refs = calloc(g->max_items + 1, sizeof(*refs));
	if (!refs)
		return err_set(ENOMEM, "checking ids");
	for (struct commit_req *r = g->reqs; r; r = r->next) {
		for (size_t i = 0; i < r->n_frames; i++) {
			struct commit_frame *f = &r->frames[i];

			if (f->kind != FRAME_KIND_RECORD || f->rc != ATOLOG_OK)
				continue;
			int found = f->id_given ? id_lookup(s, f->entry.id)
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

/* The items the frames still OK will leave, for recent_reserve. */
static void group_plan_items(struct commit_group *g)
{
	g->n_items = 0;
	for (struct commit_req *r = g->reqs; r; r = r->next) {
		for (size_t i = 0; i < r->n_frames; i++) {
			struct commit_frame *f = &r->frames[i];
			struct log_item *it;

			if (f->rc != ATOLOG_OK)
				continue;
			it = &g->items[g->n_items++];
			it->kind = f->kind;
			it->entry = f->entry;
			it->rows = f->rows;
			it->n_rows = f->n_rows;
			it->waiter = f->kind == FRAME_KIND_REGISTRY ? r : NULL;
		}
	}
}

/* ------------------------------------------------------------------------
 * Writing a group.
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

/* Numbers one frame, queues it for writing and completes its item. */
static int group_add_frame(atolog_store *s, struct group_writer *gw,
			   struct commit_frame *f, struct log_item *it)
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
	it->entry.seq = f->seq;
	it->entry.loc = (struct index_loc){ w->active.id, offset, f->len };
	return ATOLOG_OK;
}

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

/*
 * A group that does not fit in what is left of the active segment rolls
 * before its first frame, so that it lies in one segment and a failure
 * can take all of it back (group_unwrite): a roll in the middle of a
 * group makes its first part durable in the sealed segment, and then
 * only failing the handle is honest. Only a group larger than a whole
 * segment still rolls in its middle.
 */
static int group_roll_ahead(atolog_store *s, const struct commit_group *g)
{
	struct writer *w = &s->w;

	if (w->active.size + g->bytes <= s->opts.segment_size ||
	    w->active.size <= SEGMENT_HEADER_SIZE)
		return ATOLOG_OK;
	return writer_roll(s);
}

static int group_write(atolog_store *s, struct commit_group *g, bool *for_good)
{
	struct writer *w = &s->w;
	struct group_writer gw = { .n_iov = 0 };
	uint64_t seq_before, start;
	bool sync_start_before;
	size_t k = 0;
	int rc;

	assert(writer_holds_log(s));
	rc = group_roll_ahead(s, g);
	*for_good = w->io_failed;
	if (rc != ATOLOG_OK)
		return rc;
	seq_before = w->next_seq;
	start = w->active.size;
	sync_start_before = w->sync_start_next;
	for (struct commit_req *r = g->reqs; r && rc == ATOLOG_OK; r = r->next) {
		for (size_t i = 0; i < r->n_frames && rc == ATOLOG_OK; i++) {
			if (r->frames[i].rc == ATOLOG_OK)
				rc = group_add_frame(s, &gw, &r->frames[i], &g->items[k++]);
		}
	}
	if (rc == ATOLOG_OK)
		rc = group_flush(s, &gw);
	if (rc != ATOLOG_OK)
		group_unwrite(s, &gw, start, for_good);
	if (rc != ATOLOG_OK && !*for_good) {
		/* As if never written. */
		w->next_seq = seq_before;
		w->sync_start_next = sync_start_before;
	}
	return rc;
}

/* ------------------------------------------------------------------------
 * Syncing and publishing.
 */

/*
 * Wakes the index thread if it should not wait any longer: it sleeps
 * (nothing came for a while), or enough items wait, or a registration
 * does. Otherwise it lingers a moment to commit more at once: a wake per
 * group would cost the leader a system call per record and LMDB a
 * transaction. Called with the lock held.
 */
static void index_nudge_locked(struct writer *w, bool urgent)
{
	lock_assert_held(&w->lock);
	w->index_urgent |= urgent;
	if (w->index_mode == INDEX_ASLEEP ||
	    (w->index_mode == INDEX_LINGERING &&
	     (urgent || w->published - w->indexed >= INDEX_WAKE_ITEMS)))
		pthread_cond_signal(&w->index_wake);
}

static bool group_has_waiter(const struct commit_group *g)
{
	for (const struct commit_req *r = g->reqs; r; r = r->next) {
		if (r->wait_indexed)
			return true;
	}
	return false;
}

/*
 * What one leadership holds: groups written and not yet synced (always and
 * batch modes), and the callers whose frames are published but who are not
 * woken yet. They are woken after the lead is handed on, so that the next
 * leader writes and syncs while this one makes the wake-up calls (one
 * system call each: dozens per group with many agents).
 */
struct leader {
	struct commit_group *head, *tail;
	uint64_t n_reqs;         /* callers waiting on the next sync */
	struct commit_req *wake; /* published, linked by wake_next */
};

/* Publishes durable groups to the recent set, hands them to the index
 * thread and notes their callers for waking (the lock taken here is what
 * makes the items visible to the index thread: registrations, which it
 * acknowledges, are left to it). */
static void groups_publish(atolog_store *s, struct leader *ld,
			   struct commit_group *head)
{
	struct writer *w = &s->w;
	uint64_t end = w->published;
	bool urgent = false;

	for (struct commit_group *g = head; g; g = g->next) {
		end = recent_publish(&w->recent, g->items, g->n_items);
		urgent |= group_has_waiter(g);
	}
	lock_acquire(&w->lock);
	w->published = end;
	index_nudge_locked(w, urgent);
	while (head) {
		struct commit_group *next = head->next;

		for (struct commit_req *r = head->reqs; r; r = r->next) {
			if (r->wait_indexed && r->frames[0].rc == ATOLOG_OK)
				continue;
			r->wake_next = ld->wake;
			ld->wake = r;
		}
		group_free(head);
		head = next;
	}
	lock_release(&w->lock);
}

/* Wakes the published callers, LEADER_WAKE_CHUNK at a time so that the
 * lock is free in between; with the lock held. A request is marked done
 * only as it is signalled: its caller may return (and its memory go) as
 * soon as the lock is released after that. */
static void leader_wake_locked(struct writer *w, struct leader *ld)
{
	lock_assert_held(&w->lock);
	w->waking++;
	while (ld->wake) {
		for (int k = 0; k < LEADER_WAKE_CHUNK && ld->wake; k++) {
			struct commit_req *r = ld->wake;

			ld->wake = r->wake_next;
			req_complete_locked(w, r);
		}
		pthread_cond_broadcast(&w->room);
		if (ld->wake) {
			lock_release(&w->lock);
			lock_acquire(&w->lock);
		}
	}
	w->waking--;
}

/* Syncs everything written and not yet synced, then publishes it. */
static void log_sync_publish(atolog_store *s, struct leader *ld,
			     struct commit_group *head)
{
	struct writer *w = &s->w;
	int rc;

	assert(writer_holds_log(s));
	if (w->before_sync)
		w->before_sync(w->before_sync_ctx);
	rc = io_fdatasync(&w->io, w->active.fd);
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
		return;
	}
	lock_acquire(&w->lock);
	w->n_syncs++;
	lock_release(&w->lock);
	if (w->on_sync)
		w->on_sync(w->active.id, w->active.size, w->on_sync_ctx);
	w->sync_start_next = true;
	w->unsynced_bytes = 0;
	groups_publish(s, ld, head);
}

static bool batch_sync_due(const atolog_store *s, const struct leader *ld)
{
	return ld->head &&
	       (s->w.unsynced_bytes >= s->opts.sync_bytes ||
		time_mono_us() - s->w.unsynced_since >=
			(int64_t)s->opts.sync_interval_ms * 1000);
}

static void unsynced_flush(atolog_store *s, struct leader *ld)
{
	struct commit_group *head = ld->head;

	if (!head)
		return;
	lock_acquire(&s->w.lock);
	s->w.last_sync_reqs = ld->n_reqs;
	lock_release(&s->w.lock);
	ld->head = ld->tail = NULL;
	ld->n_reqs = 0;
	log_sync_publish(s, ld, head);
}

/* ATOLOG_FAILED once the handle has failed (invariant 5): a leader takes
 * requests queued before the failure too, and must not write them. */
static int writer_usable(atolog_store *s)
{
	struct writer *w = &s->w;
	int rc = ATOLOG_OK;

	lock_acquire(&w->lock);
	if (w->failed_rc)
		rc = err_set(ATOLOG_FAILED, "%s; reopen the store", w->failed_msg);
	lock_release(&w->lock);
	if (rc != ATOLOG_OK)
		return rc;
	/* Not under lock: io_failed is the log holder's, and this is it. */
	assert(writer_holds_log(s));
	if (w->io_failed)
		rc = err_set(ATOLOG_FAILED, "an earlier write left the log in doubt; "
			     "reopen the store");
	return rc;
}

/* The atolog_stats.group_sizes entry of a group of n frames (n >= 1). */
static size_t group_size_bucket(size_t n)
{
	size_t b = 0;

	while (b < ATOLOG_GROUP_SIZE_BUCKETS - 1 && ((size_t)1 << b) < n)
		b++;
	return b;
}

/* Writes one group and moves it on according to the sync mode. */
static void log_group_run(atolog_store *s, struct commit_req *reqs,
			  struct leader *ld)
{
	struct commit_group *g = calloc(1, sizeof(*g));
	bool for_good = false;
	int rc;

	assert(writer_holds_log(s));
	if (!g) {
		reqs_fail(reqs, ENOMEM, "allocating a commit group");
		lock_acquire(&s->w.lock);
		reqs_complete_locked(&s->w, reqs);
		lock_release(&s->w.lock);
		return;
	}
	g->reqs = reqs;
	err_clear();
	rc = group_alloc(g);
	if (rc == ATOLOG_OK)
		rc = group_check_ids(s, g, ld);
	if (rc == ATOLOG_OK) /* after the checks: they may sync, and fail */
		rc = writer_usable(s);
	if (rc == ATOLOG_OK) {
		group_plan_items(g);
		if (g->n_items == 0) {
			/* Every frame was refused by the checks: nothing to
			 * write, and no roll ahead for it either. */
			group_abandon(s, g, ATOLOG_OK, "", false);
			return;
		}
		rc = recent_reserve(&s->w.recent, g->items, g->n_items);
	}
	if (rc == ATOLOG_OK)
		rc = group_write(s, g, &for_good);
	if (rc != ATOLOG_OK) {
		char msg[ERR_MSG_SIZE];

		snprintf(msg, sizeof(msg), "%s", err_message(s));
		group_abandon(s, g, rc, msg, for_good);
		return;
	}
	lock_acquire(&s->w.lock);
	s->w.n_groups++;
	s->w.n_frames += g->n_items;
	s->w.group_sizes[group_size_bucket(g->n_items)]++;
	lock_release(&s->w.lock);
	if (s->opts.sync == ATOLOG_SYNC_NONE) {
		groups_publish(s, ld, g);
		return;
	}
	if (!ld->head) {
		ld->head = g;
		s->w.unsynced_since = time_mono_us();
	} else {
		ld->tail->next = g;
	}
	ld->tail = g;
	ld->n_reqs += g->n_reqs;
	s->w.unsynced_bytes += g->bytes;
}

/* ------------------------------------------------------------------------
 * Leading.
 */

/*
 * Takes the queued requests as one group, but no more than fit in one
 * segment (the first always goes): a group that lies in one segment can be
 * taken back whole if its write fails (group_roll_ahead), which a group
 * rolling in its middle cannot. The rest lead the next group.
 */
static struct commit_req *queue_take_locked(atolog_store *s)
{
	struct writer *w = &s->w;
	struct commit_req *reqs, *last;
	uint64_t bytes;
	uint64_t taken = 1;

	lock_assert_held(&w->lock);
	reqs = w->paused || w->exclusive ? NULL : w->queue_head;
	if (!reqs)
		return NULL;
	bytes = reqs->bytes;
	for (last = reqs; last->next &&
	     bytes + last->next->bytes + SEGMENT_HEADER_SIZE <= s->opts.segment_size;
	     last = last->next, taken++)
		bytes += last->next->bytes;
	w->queue_head = last->next;
	if (!w->queue_head)
		w->queue_tail = NULL;
	last->next = NULL;
	w->queued_reqs -= taken;
	return reqs;
}

/*
 * Always mode gathers: when fewer callers are queued than the last sync
 * carried, the others are most likely on their way back (woken by that
 * sync, preparing their next record), so the leader waits up to
 * COMMIT_GATHER_US for them to share this sync instead of the next one.
 * Without it, callers acknowledged together arrive just after the next
 * sync started, and N agents settle into two alternating groups of N/2,
 * each paying a whole sync. One agent alone never waits.
 */
static void leader_gather_locked(struct writer *w, struct commit_req *self)
{
	struct timespec until;

	lock_assert_held(&w->lock);
	if (w->queued_reqs >= w->last_sync_reqs)
		return;
	until = deadline_in_us(COMMIT_GATHER_US);
	w->gatherer = self;
	while (w->queued_reqs < w->last_sync_reqs && !w->stopping &&
	       lock_timedwait(&self->wake, &w->lock, &until) != ETIMEDOUT)
		;
	w->gatherer = NULL;
}

/*
 * Leads the log once, for everything queued (self's request among it),
 * with the lock held: the lock is dropped while writing and syncing. In
 * batch mode the leader keeps writing what arrives meanwhile until the
 * queue runs dry or a sync is due, so that one sync covers it all.
 */
static void leader_run(atolog_store *s, struct commit_req *self)
{
	struct writer *w = &s->w;
	struct leader ld = { NULL, NULL, 0, NULL };

	lock_assert_held(&w->lock);
	w->leading = true;
	owner_take(&w->log_owner);
	recent_plan_sync(&w->recent); /* the last leader published everything */
	if (s->opts.sync == ATOLOG_SYNC_ALWAYS)
		leader_gather_locked(w, self);
	for (;;) {
		struct commit_req *reqs = queue_take_locked(s);

		if (!reqs)
			break;
		lock_release(&w->lock);
		log_group_run(s, reqs, &ld);
		lock_acquire(&w->lock);
		if (s->opts.sync != ATOLOG_SYNC_BATCH || batch_sync_due(s, &ld))
			break;
	}
	if (ld.head) {
		lock_release(&w->lock);
		unsynced_flush(s, &ld);
		lock_acquire(&w->lock);
	}
	owner_drop(&w->log_owner);
	w->leading = false;
	if (w->queue_head && !w->paused && !w->exclusive)
		pthread_cond_signal(&w->queue_head->wake); /* the next leader */
	leader_wake_locked(w, &ld);
	pthread_cond_broadcast(&w->idle);
}

/* Waits for room in the queue and the recent set (invariant 4). */
static int wait_for_room_locked(atolog_store *s, struct commit_req *req)
{
	struct writer *w = &s->w;
	struct timespec until;
	uint64_t max = w->recent_max ? w->recent_max : RECENT_MAX_ITEMS;

	lock_assert_held(&w->lock);
	if (s->opts.queue_timeout_ms)
		until = deadline_in_us((int64_t)s->opts.queue_timeout_ms * 1000);
	/* A request larger than the whole budget still goes, alone. */
	/* A registration is acknowledged once indexed, which a full index
	 * cannot promise: refused before its frame is written, so that a
	 * refusal never takes effect later. */
	if (w->index_full && req->wait_indexed)
		return err_set(ATOLOG_FULL, "%s; registrations resume once there is "
			       "room", w->index_full_msg);
	while (!w->failed_rc && !w->stopping &&
	       ((w->queued_bytes > 0 &&
		 w->queued_bytes + req->bytes > s->opts.queue_bytes) ||
		(w->published > w->indexed && !w->index_failed &&
		 w->published - w->indexed + req->n_frames > max))) {
		/* The recent set waits for an index the disk has no room
		 * for: no point waiting (index_full_wait_locked). */
		if (w->index_full && w->published - w->indexed + req->n_frames > max)
			return err_set(ATOLOG_FULL, "%s; writes resume once there is "
				       "room", w->index_full_msg);
		if (!s->opts.queue_timeout_ms) {
			lock_wait(&w->room, &w->lock);
		} else if (lock_timedwait(&w->room, &w->lock, &until) ==
			   ETIMEDOUT) {
			return err_set(ATOLOG_TIMEDOUT, "the commit queue stayed full "
				       "(%" PRIu64 " bytes queued, %" PRIu64
				       " records not yet indexed) for %u ms",
				       w->queued_bytes, w->published - w->indexed,
				       s->opts.queue_timeout_ms);
		}
	}
	if (w->failed_rc)
		return err_set(ATOLOG_FAILED, "%s; reopen the store", w->failed_msg);
	if (w->stopping)
		return err_set(ATOLOG_INVALID, "the store is closing");
	return ATOLOG_OK;
}

static void queue_put_locked(struct writer *w, struct commit_req *req)
{
	lock_assert_held(&w->lock);
	req->next = NULL;
	if (w->queue_tail)
		w->queue_tail->next = req;
	else
		w->queue_head = req;
	w->queue_tail = req;
	w->queued_reqs++;
	w->queued_bytes += req->bytes;
	if (w->gatherer && w->queued_reqs >= w->last_sync_reqs)
		pthread_cond_signal(&w->gatherer->wake);
}

int commit_submit(atolog_store *s, struct commit_req *req)
{
	struct writer *w = &s->w;
	int rc;

	req->bytes = 0;
	req->done = false;
	req->wait_indexed = false;
	for (size_t i = 0; i < req->n_frames; i++) {
		struct commit_frame *f = &req->frames[i];

		f->queued = f->rc == ATOLOG_OK;
		if (f->queued)
			req->bytes += f->len;
		req->wait_indexed |= f->queued && f->kind == FRAME_KIND_REGISTRY;
	}
	lock_acquire(&w->lock);
	rc = wait_for_room_locked(s, req);
	if (rc != ATOLOG_OK) {
		lock_release(&w->lock);
		for (size_t i = 0; i < req->n_frames; i++) {
			if (req->frames[i].rc == ATOLOG_OK)
				req->frames[i].rc = rc; /* refused before the queue */
		}
		return rc;
	}
	cond_init_monotonic(&req->wake);
	queue_put_locked(w, req);
	while (!req->done) {
		if (!w->leading && !w->paused && !w->exclusive && w->queue_head)
			leader_run(s, req);
		else
			lock_wait(&req->wake, &w->lock);
	}
	lock_release(&w->lock);
	pthread_cond_destroy(&req->wake);
	for (size_t i = 0; i < req->n_frames; i++) {
		if (req->frames[i].queued && req->frames[i].rc != ATOLOG_OK)
			return err_set(req->frames[i].rc, "%s", req->msg);
	}
	return ATOLOG_OK;
}

/* ------------------------------------------------------------------------
 * The index thread.
 */

/* Commits items [from, to) in one transaction (an atolog code). */
static int index_items(atolog_store *s, uint64_t from, uint64_t to)
{
	struct recent_batch *b = &s->w.batch;
	struct index_batch ib;
	int rc = recent_take(&s->w.recent, from, to, b);

	/* Under marker_lock, as everywhere: this thread is not the only one
	 * to write marker_present (a compaction's swap arms the marker too).
	 * It used to read it bare, safe only because the swap holds the log
	 * exclusive with the index level, so that no transaction runs beside
	 * it: an argument across three files, now a rule checked where the
	 * field is written (store.c). The lock is free here but for a swap or
	 * an idle flush, neither of which overlaps a transaction. */
	if (rc == ATOLOG_OK && store_needs_marker(s)) {
		lock_acquire(&s->marker_lock);
		if (!s->marker_present)
			rc = store_marker_write(s);
		lock_release(&s->marker_lock);
	}
	if (rc != ATOLOG_OK)
		return rc;
	ib = (struct index_batch){
		.entries = b->entries, .n_entries = b->n_entries,
		.registry = b->rows, .n_registry = b->n_rows, .state = &b->state,
	};
	return index_apply(s->idx, &ib, NULL);
}

/* Records the outcome of one index transaction and wakes whoever waits
 * on it: registrations it covered, callers waiting for room, close. */
static void index_items_done(atolog_store *s, uint64_t to, int rc,
			     const char *msg)
{
	struct writer *w = &s->w;
	struct recent_batch *b = &w->batch;

	if (rc == ATOLOG_OK)
		recent_trim(&w->recent, to);
	lock_acquire(&w->lock);
	w->index_next = to;
	if (rc != ATOLOG_OK) {
		/* The callers were acknowledged: their records are in the log
		 * and in the recent set, and the next open indexes them. Later
		 * items are only passed through, to fail their registrations. */
		fail_for_good_locked(w, rc, msg);
		w->index_failed = true;
	} else {
		w->indexed = to;
		w->state = b->state;
		w->n_index_commits++;
		w->index_full = false;
	}
	for (size_t i = 0; i < b->n_waiters; i++) {
		struct commit_req *req = b->waiters[i];

		/* A registration is in the log already, and the next open
		 * indexes it: not refused (rc), in doubt until a reopen. */
		if (rc != ATOLOG_OK)
			req_fail(req, &req->frames[0], ATOLOG_FAILED, msg);
		req_complete_locked(w, req);
	}
	pthread_cond_broadcast(&w->room);
	pthread_cond_broadcast(&w->idle);
	lock_release(&w->lock);
}

/* With nothing to index for a while, flush the index to disk so that a
 * machine crash no longer means a rebuild (store.c, the marker). */
static void index_idle_flush(atolog_store *s)
{
	if (store_marker_clear(s) != ATOLOG_OK)
		err_clear(); /* the marker stays: the next open rebuilds */
}

static bool index_has_work_locked(const struct writer *w)
{
	lock_assert_held(&w->lock);
	return w->published > w->index_next && !w->index_paused;
}

static bool index_has_enough_locked(const struct writer *w)
{
	lock_assert_held(&w->lock);
	return w->index_stop || w->index_paused || w->index_urgent ||
	       w->published - w->index_next >= INDEX_WAKE_ITEMS;
}

/* Waits for items to index; false once stopping with nothing left. It
 * lingers first (up to INDEX_LINGER_US, while few items wait), then, if
 * nothing came at all, sleeps until woken, flushing the index to disk
 * when that lasts INDEX_IDLE_FLUSH_MS. */
static bool index_wait_locked(atolog_store *s)
{
	struct writer *w = &s->w;
	struct timespec until = deadline_in_us(INDEX_LINGER_US);

	lock_assert_held(&w->lock);
	w->index_mode = INDEX_LINGERING;
	while (!index_has_enough_locked(w) &&
	       lock_timedwait(&w->index_wake, &w->lock, &until) != ETIMEDOUT)
		;
	while (!index_has_work_locked(w)) {
		if (w->index_stop)
			return false;
		until = deadline_in_us(INDEX_IDLE_FLUSH_MS * 1000);
		w->index_mode = INDEX_ASLEEP;
		if (lock_timedwait(&w->index_wake, &w->lock, &until) ==
			    ETIMEDOUT && !index_has_work_locked(w) && !w->index_stop) {
			lock_release(&w->lock);
			index_idle_flush(s);
			lock_acquire(&w->lock);
		}
	}
	w->index_mode = INDEX_BUSY;
	w->index_urgent = false; /* what made it urgent is in what it takes */
	return true;
}

/*
 * A transaction the disk had no room for changed nothing (LMDB undoes it),
 * and what it held is still in the log and in the recent set, which every
 * read of this process merges: it is tried again every INDEX_FULL_RETRY_MS
 * rather than failing the handle. Writes go on meanwhile while the log
 * takes them (they are acknowledged: durable in the log, visible in the
 * recent set); once the recent set is full they are refused with
 * ATOLOG_FULL at once instead of waiting (wait_for_room_locked). Closing
 * gives up: the next open indexes the rest from the log.
 */
static bool index_full_wait_locked(struct writer *w, const char *msg)
{
	struct timespec until = deadline_in_us(INDEX_FULL_RETRY_MS * 1000);

	lock_assert_held(&w->lock);
	if (w->index_stop)
		return false;
	if (!w->index_full)
		snprintf(w->index_full_msg, sizeof(w->index_full_msg), "%s", msg);
	w->index_full = true;
	pthread_cond_broadcast(&w->room); /* waiting writers: refused */
	pthread_cond_broadcast(&w->idle); /* maintenance: refused */
	while (!w->index_stop &&
	       lock_timedwait(&w->index_wake, &w->lock, &until) != ETIMEDOUT)
		;
	return true;
}

static void *index_thread_main(void *arg)
{
	atolog_store *s = arg;
	struct writer *w = &s->w;

	err_begin(s);
	lock_acquire(&w->lock);
	while (index_wait_locked(s)) {
		uint64_t from = w->index_next, to = w->published;
		bool failed = w->index_failed;
		char msg[ERR_MSG_SIZE] = "";
		int rc;

		if (to - from > INDEX_TXN_MAX_ITEMS)
			to = from + INDEX_TXN_MAX_ITEMS;
		if (failed)
			snprintf(msg, sizeof(msg), "%s", w->failed_msg);
		lock_release(&w->lock);
		err_clear();
		if (failed) {
			rc = recent_take(&w->recent, from, to, &w->batch);
			rc = rc == ATOLOG_OK ? ATOLOG_FAILED : rc;
		} else {
			rc = index_items(s, from, to);
			if (rc != ATOLOG_OK)
				snprintf(msg, sizeof(msg), "indexing: %s", err_message(s));
		}
		if (rc == ATOLOG_FULL) {
			lock_acquire(&w->lock);
			if (index_full_wait_locked(w, msg))
				continue;
			lock_release(&w->lock);
		}
		index_items_done(s, to, rc, msg);
		lock_acquire(&w->lock);
	}
	lock_release(&w->lock);
	return NULL;
}

/* ------------------------------------------------------------------------
 * Rolling segments (the leader).
 */

int writer_seal(atolog_store *s)
{
	struct writer *w = &s->w;
	msgpack_sbuffer sb;
	int rc;

	assert(writer_holds_log(s));
	rc = seal_frame_build(s->w.next_seq - 1,
			      s->w.sync_start_next ? FRAME_FLAG_SYNC_START : 0, &sb);
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
	msgpack_sbuffer_destroy(&sb);
	return rc;
}

void writer_adopt(atolog_store *s, const struct segment *next,
		  const struct index_state *state)
{
	struct writer *w = &s->w;

	assert(writer_holds_log(s));
	close(w->active.fd);
	w->active = *next;
	segment_preallocate(&w->active, s->opts.segment_size);
	w->sync_start_next = true;
	if (state)
		recent_set_last(&w->recent, state);
	lock_acquire(&w->lock);
	w->n_syncs++;
	w->active_id = next->id;
	if (state)
		w->state = *state;
	lock_release(&w->lock);
}

/*
 * The next segment is made (under its temporary name) before the active
 * one is sealed: on a full disk that is the step that fails, and it then
 * changes nothing, so the group that needed the roll is refused with
 * ATOLOG_FULL and writes go on once there is room. Only a failure after
 * the seal leaves a sealed segment with no successor (the handle fails;
 * the next open creates it).
 */
int writer_roll(atolog_store *s)
{
	struct writer *w = &s->w;
	struct segment next;
	int rc;

	assert(writer_holds_log(s));
	rc = segment_create_tmp(&w->io, s->segment_dir, w->active.id + 1,
				s->store_id, &next);

	if (rc != ATOLOG_OK)
		return rc;
	rc = writer_seal(s);
	if (rc != ATOLOG_OK) {
		segment_create_abandon(s->segment_dir, &next);
		return rc;
	}
	rc = segment_create_publish(&w->io, s->segment_dir, &next);
	if (rc != ATOLOG_OK) {
		segment_create_abandon(s->segment_dir, &next);
		w->io_failed = true; /* sealed with no successor */
		return rc;
	}
	writer_adopt(s, &next, NULL);
	return ATOLOG_OK;
}

/* ------------------------------------------------------------------------
 * Taking the log for maintenance (compaction): nobody leads meanwhile, and
 * the index holds everything published, so the caller may seal and swap
 * segments and rewrite the state.
 */

int writer_exclusive_begin(atolog_store *s)
{
	struct writer *w = &s->w;
	bool full;

	lock_acquire(&w->lock);
	while (w->exclusive)
		lock_wait(&w->idle, &w->lock);
	w->exclusive = true;
	while (!w->failed_rc && !w->index_failed && !w->index_full &&
	       (w->leading || w->indexed < w->published)) {
		index_nudge_locked(w, true);
		lock_wait(&w->idle, &w->lock);
	}
	/* A failed handle, or a full index, ends the wait with a leader
	 * perhaps still at work: the log stays its own, and this caller,
	 * told ATOLOG_FAILED or ATOLOG_FULL, must not touch it (a full
	 * index always has items left to take, so full is set whenever
	 * index_full is). */
	if (!w->leading)
		owner_take(&w->log_owner);
	/* Maintenance needs room, and a full index would hold it for ever. */
	full = w->index_full && w->indexed < w->published;
	lock_release(&w->lock);
	if (full)
		return err_set(ATOLOG_FULL, "the disk is full: the index cannot "
			       "take what was written");
	return writer_usable(s);
}

void writer_exclusive_end(atolog_store *s)
{
	struct writer *w = &s->w;

	lock_acquire(&w->lock);
	if (writer_holds_log(s))
		owner_drop(&w->log_owner);
	w->exclusive = false;
	if (w->queue_head && !w->paused)
		pthread_cond_signal(&w->queue_head->wake); /* the next leader */
	pthread_cond_broadcast(&w->idle);
	lock_release(&w->lock);
}

/* ------------------------------------------------------------------------
 * Life cycle.
 */

int writer_init(atolog_store *s)
{
	struct writer *w = &s->w;

	pthread_mutex_init(&w->registry_lock, NULL);
	pthread_mutex_init(&w->ids_lock, NULL);
	lock_init(&w->lock);
	cond_init_monotonic(&w->index_wake);
	cond_init_monotonic(&w->room);
	cond_init_monotonic(&w->idle);
	uuid_v7_init(&w->ids);
	io_faults_init(&w->io);
	w->sync_start_next = true; /* the first frame after open */
	return ATOLOG_OK;
}

int writer_start(atolog_store *s)
{
	struct writer *w = &s->w;
	int rc = recent_batch_init(&w->batch);

	if (rc != ATOLOG_OK)
		return rc;
	recent_init(&w->recent, &w->state);
	segment_preallocate(&w->active, s->opts.segment_size);
	w->active_id = w->active.id;
	if (pthread_create(&w->index_thread, NULL, index_thread_main, s) != 0) {
		recent_destroy(&w->recent);
		recent_batch_free(&w->batch);
		return err_set(EAGAIN, "starting the index thread");
	}
	w->started = true;
	w->ran = true;
	return ATOLOG_OK;
}

/* Lets the queue drain (by its own leaders) and the index catch up. */
static void writer_drain(atolog_store *s)
{
	struct writer *w = &s->w;

	lock_acquire(&w->lock);
	w->stopping = true;
	w->paused = false;
	if (w->queue_head && !w->leading)
		pthread_cond_signal(&w->queue_head->wake);
	pthread_cond_broadcast(&w->room);
	while (w->leading || w->queue_head || w->waking)
		lock_wait(&w->idle, &w->lock);
	w->index_paused = false;
	w->index_stop = true;
	pthread_cond_signal(&w->index_wake);
	lock_release(&w->lock);
	pthread_join(w->index_thread, NULL);
}

int writer_stop(atolog_store *s)
{
	struct writer *w = &s->w;
	int rc = ATOLOG_OK;

	if (w->started) {
		writer_drain(s);
		w->started = false;
	}
	/* Drained, and nobody calls in during close: the log is this
	 * thread's (it reads io_failed and the active segment). */
	owner_take(&w->log_owner);
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
	lock_acquire(&s->w.lock);
	s->w.on_sync = fn;
	s->w.on_sync_ctx = ctx;
	lock_release(&s->w.lock);
}

void store_before_sync(atolog_store *s, void (*fn)(void *ctx), void *ctx)
{
	lock_acquire(&s->w.lock);
	s->w.before_sync = fn;
	s->w.before_sync_ctx = ctx;
	lock_release(&s->w.lock);
}

void store_pause_log(atolog_store *s, bool paused)
{
	struct writer *w = &s->w;

	lock_acquire(&w->lock);
	w->paused = paused;
	if (!paused && w->queue_head && !w->leading)
		pthread_cond_signal(&w->queue_head->wake);
	lock_release(&w->lock);
}

void store_pause_index(atolog_store *s, bool paused)
{
	struct writer *w = &s->w;

	lock_acquire(&w->lock);
	w->index_paused = paused;
	pthread_cond_signal(&w->index_wake);
	lock_release(&w->lock);
}

void writer_index_catch_up(atolog_store *s)
{
	struct writer *w = &s->w;
	uint64_t target;

	lock_acquire(&w->lock);
	target = w->published;
	index_nudge_locked(w, true);
	/* A full index would hold it for ever: the caller takes the recent
	 * set's end instead (snapshot_end). */
	while (w->indexed < target && !w->index_failed && !w->index_paused &&
	       !w->failed_rc && !w->index_full)
		lock_wait(&w->idle, &w->lock);
	lock_release(&w->lock);
}

void store_index_wait(atolog_store *s)
{
	struct writer *w = &s->w;

	lock_acquire(&w->lock);
	while (w->indexed < w->published && !w->index_failed && !w->index_paused)
		lock_wait(&w->idle, &w->lock);
	lock_release(&w->lock);
}

void store_set_recent_max(atolog_store *s, uint64_t max)
{
	lock_acquire(&s->w.lock);
	s->w.recent_max = max;
	pthread_cond_broadcast(&s->w.room);
	lock_release(&s->w.lock);
}

bool store_index_full(atolog_store *s)
{
	bool full;

	lock_acquire(&s->w.lock);
	full = s->w.index_full;
	lock_release(&s->w.lock);
	return full;
}

void writer_destroy(atolog_store *s)
{
	struct writer *w = &s->w;

	if (w->ran) {
		recent_destroy(&w->recent);
		recent_batch_free(&w->batch);
	}
	if (w->active.fd >= 0)
		close(w->active.fd);
	w->active.fd = -1;
	pthread_cond_destroy(&w->index_wake);
	pthread_cond_destroy(&w->room);
	pthread_cond_destroy(&w->idle);
	lock_destroy(&w->lock);
	pthread_mutex_destroy(&w->ids_lock);
	pthread_mutex_destroy(&w->registry_lock);
}
