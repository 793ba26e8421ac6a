/*
 * recent.c - the recent set: frames whose callers were acknowledged and
 * whose index transaction may not have committed yet.
 *
 * Why it exists: an acknowledged record must be visible to every reader of
 * the process at once (read-your-writes), but making the caller wait for
 * an LMDB commit as well as for its write costs a thread hand-off and a
 * transaction per group: it held one agent to a seventh of the device's
 * rate. So a group is published here the moment it is durable (per the
 * sync mode) and its callers return; the index thread commits the set to
 * LMDB in large transactions behind them, and readers of this process
 * merge the set with what LMDB holds. Readers in other processes see a
 * record once the index thread has committed it.
 *
 * The set is a list of chunks, oldest first. Items are appended in log
 * order (seq order) by the leader, one at a time; the index thread commits
 * them in that order and frees a chunk once every item in it is committed.
 * Invariants:
 *  1. Items are numbered by position (0 for the first published since
 *     open); items [indexed, end) may be missing from LMDB, items below
 *     indexed are in it. An item leaves the set only after LMDB has it,
 *     so a reader that looks here first and in LMDB second misses nothing
 *     acknowledged (it may see an item twice, and must merge by seq).
 *  2. An item never moves and its names never move until its chunk is
 *     freed, and only the index thread frees chunks: it may read items it
 *     was handed without holding the lock while it commits them.
 *  3. Publishing never allocates: recent_reserve() makes room before the
 *     group is written, so a group that reached the log is always
 *     published.
 *
 * Locking: lock is taken exclusively to append and to trim, shared to
 * read. Only the leader (one thread at a time, engine/commit.c) appends
 * and reserves; reserved chunks are its own until published.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "engine.h"

#define RECENT_SLOTS (2 * RECENT_CHUNK_ITEMS) /* hash slots per chunk: half full at most */

struct recent_item {
	uint8_t kind; /* FRAME_KIND_RECORD or FRAME_KIND_REGISTRY */
	uint8_t id[UUID_SIZE];
	int64_t created_at;
	uint64_t seq;
	struct index_loc loc;
	uint64_t n_records; /* records in the log up to this item */
	uint32_t name_off[3]; /* project, session, client in the chunk's names */
	uint16_t name_len[3];
	/* Registry frames: rows to commit, and the caller waiting for them. */
	const struct index_registry_row *rows;
	size_t n_rows;
	struct commit_req *waiter;
};

struct recent_chunk {
	uint64_t first; /* position of items[0] */
	uint32_t n;
	uint32_t names_used;
	uint32_t slots[RECENT_SLOTS]; /* record items by id: index + 1, 0 empty */
	struct recent_item items[RECENT_CHUNK_ITEMS];
	char names[RECENT_CHUNK_NAMES];
	struct recent_chunk *next;
};

int recent_init(struct recent *r, const struct index_state *start)
{
	pthread_rwlockattr_t attr;

	memset(r, 0, sizeof(*r));
	pthread_rwlockattr_init(&attr);
	/* Readers come in floods; the leader must not starve behind them. */
	pthread_rwlockattr_setkind_np(&attr,
				      PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	rwlock_init(&r->lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	r->last = *start;
	recent_plan_sync(r);
	return ATOLOG_OK;
}

static void chunks_free(struct recent_chunk *c)
{
	while (c) {
		struct recent_chunk *next = c->next;

		free(c);
		c = next;
	}
}

void recent_destroy(struct recent *r)
{
	chunks_free(r->head);
	chunks_free(r->reserved);
	rwlock_destroy(&r->lock);
}

static size_t names_size(const struct log_item *it)
{
	const struct index_entry *e = &it->entry;

	return it->kind == FRAME_KIND_RECORD
		       ? e->project.len + e->session.len + e->client.len : 0;
}

static bool chunk_fits(const struct recent_chunk *c, size_t names)
{
	return c && c->n < RECENT_CHUNK_ITEMS &&
	       c->names_used + names <= RECENT_CHUNK_NAMES;
}

static struct recent_chunk *chunk_new(void)
{
	/* Not calloc: only the hash slots must start out zero. */
	struct recent_chunk *c = malloc(sizeof(*c));

	if (!c)
		return NULL;
	memset(c->slots, 0, sizeof(c->slots));
	c->n = 0;
	c->names_used = 0;
	c->next = NULL;
	return c;
}

void recent_plan_sync(struct recent *r)
{
	r->plan_items = r->tail ? r->tail->n : RECENT_CHUNK_ITEMS;
	r->plan_names = r->tail ? r->tail->names_used : RECENT_CHUNK_NAMES;
	r->plan_chunks = 0;
}

/*
 * Chunks needed once the tail's room runs out, simulated item by item the
 * way recent_publish fills them, from the plan: the tail as it will be
 * once everything reserved before is published (a leader reserves for
 * several groups before it publishes any, in batch mode). A group that is
 * reserved and then fails leaves the plan ahead of the real tail, which
 * then needs fewer chunks than planned, never more (filling starts no
 * later); recent_plan_sync makes them equal again.
 */
int recent_reserve(struct recent *r, const struct log_item *items, size_t n)
{
	size_t have = 0;

	for (size_t i = 0; i < n; i++) {
		size_t len = names_size(&items[i]);

		if (r->plan_items == RECENT_CHUNK_ITEMS ||
		    r->plan_names + len > RECENT_CHUNK_NAMES) {
			r->plan_chunks++;
			r->plan_items = 0;
			r->plan_names = 0;
		}
		r->plan_items++;
		r->plan_names += len;
	}
	for (struct recent_chunk *c = r->reserved; c; c = c->next)
		have++;
	for (; have < r->plan_chunks; have++) {
		struct recent_chunk *c = chunk_new();

		if (!c)
			return err_set(ENOMEM, "reserving room for recent records");
		c->next = r->reserved;
		r->reserved = c;
	}
	return ATOLOG_OK;
}

static uint32_t slot_of(const uint8_t id[UUID_SIZE])
{
	return (uint32_t)(XXH3_64bits(id, UUID_SIZE) % RECENT_SLOTS);
}

static uint32_t chunk_put_name(struct recent_chunk *c, struct index_name name)
{
	uint32_t off = c->names_used;

	if (name.len)
		memcpy(c->names + off, name.ptr, name.len);
	c->names_used += (uint32_t)name.len;
	return off;
}

static void chunk_append(struct recent_chunk *c, const struct log_item *it,
			 uint64_t n_records)
{
	struct recent_item *dst = &c->items[c->n];
	const struct index_entry *e = &it->entry;
	const struct index_name names[3] = { e->project, e->session, e->client };

	dst->kind = it->kind;
	memcpy(dst->id, e->id, UUID_SIZE);
	dst->created_at = e->created_at;
	dst->seq = e->seq;
	dst->loc = e->loc;
	dst->n_records = n_records;
	dst->rows = it->rows;
	dst->n_rows = it->n_rows;
	dst->waiter = it->waiter;
	for (int k = 0; k < 3; k++) {
		bool rec = it->kind == FRAME_KIND_RECORD;

		dst->name_len[k] = rec ? (uint16_t)names[k].len : 0;
		dst->name_off[k] = rec ? chunk_put_name(c, names[k]) : 0;
	}
	if (it->kind == FRAME_KIND_RECORD) {
		uint32_t s = slot_of(e->id);

		while (c->slots[s])
			s = (s + 1) % RECENT_SLOTS;
		c->slots[s] = c->n + 1;
	}
	c->n++;
}

/* The log state once everything up to item it is indexed (index.h). */
static void state_after(struct index_state *st, const struct recent_item *it)
{
	st->segment = it->loc.segment;
	st->end_offset = it->loc.offset + it->loc.length;
	st->last_frame_offset = it->loc.offset;
	st->last_frame_length = it->loc.length;
	st->last_seq = it->seq;
	st->n_records = it->n_records;
}

uint64_t recent_publish(struct recent *r, const struct log_item *items, size_t n)
{
	uint64_t end;

	rwlock_acquire(&r->lock);
	for (size_t i = 0; i < n; i++) {
		const struct log_item *it = &items[i];
		struct recent_chunk *c = r->tail;

		if (!chunk_fits(c, names_size(it))) {
			/* Reserved before the write: never NULL here. */
			c = r->reserved;
			r->reserved = c->next;
			c->next = NULL;
			if (r->plan_chunks > 0)
				r->plan_chunks--;
			c->first = r->end;
			if (r->tail)
				r->tail->next = c;
			else
				r->head = c;
			r->tail = c;
		}
		chunk_append(c, it, r->last.n_records + (it->kind == FRAME_KIND_RECORD));
		state_after(&r->last, &c->items[c->n - 1]);
		r->end++;
	}
	end = r->end;
	rwlock_release(&r->lock);
	return end;
}

void recent_trim(struct recent *r, uint64_t indexed)
{
	struct recent_chunk *dead = NULL;

	rwlock_acquire(&r->lock);
	r->indexed = indexed;
	/* The tail stays: the leader appends to it. */
	while (r->head && r->head != r->tail &&
	       r->head->first + r->head->n <= indexed) {
		struct recent_chunk *c = r->head;

		r->head = c->next;
		c->next = dead;
		dead = c;
	}
	rwlock_release(&r->lock);
	chunks_free(dead);
}

void recent_forget_indexed(struct recent *r)
{
	rwlock_acquire(&r->lock);
	r->indexed = 0;
	rwlock_release(&r->lock);
}

void recent_last_state(struct recent *r, struct index_state *out)
{
	rwlock_acquire_shared(&r->lock);
	*out = r->last;
	rwlock_release(&r->lock);
}

void recent_set_last(struct recent *r, const struct index_state *state)
{
	rwlock_acquire(&r->lock);
	r->last = *state;
	rwlock_release(&r->lock);
}

/* ------------------------------------------------------------------------
 * Readers.
 */

bool recent_find(struct recent *r, const uint8_t id[UUID_SIZE],
		 struct index_loc *loc)
{
	uint32_t start = slot_of(id);
	bool found = false;

	rwlock_acquire_shared(&r->lock);
	for (struct recent_chunk *c = r->head; c && !found; c = c->next) {
		for (uint32_t s = start; c->slots[s]; s = (s + 1) % RECENT_SLOTS) {
			const struct recent_item *it = &c->items[c->slots[s] - 1];

			/* Below indexed, LMDB has it, and LMDB is where a
			 * compaction moves or removes it. */
			if (c->first + c->slots[s] - 1 < r->indexed)
				continue;
			if (memcmp(it->id, id, UUID_SIZE) == 0) {
				*loc = it->loc;
				found = true;
				break;
			}
		}
	}
	rwlock_release(&r->lock);
	return found;
}

static bool name_is(const struct recent_chunk *c, const struct recent_item *it,
		    int k, struct index_name want)
{
	return !want.ptr || (it->name_len[k] == want.len &&
			     memcmp(c->names + it->name_off[k], want.ptr, want.len) == 0);
}

static bool item_matches(const struct recent_chunk *c, const struct recent_item *it,
			 const struct index_filter *f)
{
	return it->kind == FRAME_KIND_RECORD && it->created_at >= f->since &&
	       (!f->has_until || it->created_at < f->until) &&
	       name_is(c, it, 0, f->project) && name_is(c, it, 1, f->session) &&
	       name_is(c, it, 2, f->client);
}

/* (created_at, seq) order, the order of every index. */
int recent_hit_cmp(const struct index_hit *a, const struct index_hit *b)
{
	if (a->created_at != b->created_at)
		return a->created_at < b->created_at ? -1 : 1;
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static int hit_oldest_first(const void *a, const void *b)
{
	return recent_hit_cmp(a, b);
}

static int hit_newest_first(const void *a, const void *b)
{
	return recent_hit_cmp(b, a);
}

static int hits_push(struct index_hit **hits, size_t *n, size_t *cap,
		     const struct recent_item *it)
{
	if (*n == *cap) {
		size_t grown = *cap ? *cap * 2 : 64;
		struct index_hit *h = realloc(*hits, grown * sizeof(*h));

		if (!h)
			return err_set(ENOMEM, "collecting recent records");
		*hits = h;
		*cap = grown;
	}
	memcpy((*hits)[*n].id, it->id, UUID_SIZE);
	(*hits)[*n].created_at = it->created_at;
	(*hits)[*n].seq = it->seq;
	(*hits)[(*n)++].loc = it->loc;
	return ATOLOG_OK;
}

int recent_collect(struct recent *r, const struct index_filter *f,
		   struct index_hit **out, size_t *n_out)
{
	struct index_hit *hits = NULL;
	size_t n = 0, cap = 0;
	int rc = ATOLOG_OK;

	rwlock_acquire_shared(&r->lock);
	for (struct recent_chunk *c = r->head; c && rc == ATOLOG_OK; c = c->next) {
		for (uint32_t i = 0; i < c->n && rc == ATOLOG_OK; i++) {
			/* Below indexed, LMDB has it for any transaction begun
			 * after this: the caller opens its scan later. */
			if (c->first + i >= r->indexed && item_matches(c, &c->items[i], f))
				rc = hits_push(&hits, &n, &cap, &c->items[i]);
		}
	}
	rwlock_release(&r->lock);
	if (rc != ATOLOG_OK) {
		free(hits);
		return rc;
	}
	if (n > 1)
		qsort(hits, n, sizeof(*hits),
		      f->oldest_first ? hit_oldest_first : hit_newest_first);
	*out = hits;
	*n_out = n;
	return ATOLOG_OK;
}

/* ------------------------------------------------------------------------
 * The index thread's side.
 */

int recent_batch_init(struct recent_batch *b)
{
	memset(b, 0, sizeof(*b));
	b->entries = malloc(INDEX_TXN_MAX_ITEMS * sizeof(*b->entries));
	b->waiters = malloc(INDEX_TXN_MAX_ITEMS * sizeof(*b->waiters));
	if (!b->entries || !b->waiters) {
		recent_batch_free(b);
		return err_set(ENOMEM, "allocating the index batch");
	}
	return ATOLOG_OK;
}

void recent_batch_free(struct recent_batch *b)
{
	free(b->entries);
	free(b->waiters);
	free(b->rows);
	memset(b, 0, sizeof(*b));
}

static int batch_add_rows(struct recent_batch *b,
			  const struct index_registry_row *rows, size_t n)
{
	if (n == 0)
		return ATOLOG_OK;
	if (b->n_rows + n > b->cap_rows) {
		size_t cap = (b->n_rows + n) * 2;
		struct index_registry_row *grown = realloc(b->rows, cap * sizeof(*grown));

		if (!grown)
			return err_set(ENOMEM, "collecting registry rows");
		b->rows = grown;
		b->cap_rows = cap;
	}
	memcpy(b->rows + b->n_rows, rows, n * sizeof(*rows));
	b->n_rows += n;
	return ATOLOG_OK;
}

/* The chunk holding position pos (the caller holds the lock). */
static struct recent_chunk *chunk_at(struct recent *r, uint64_t pos)
{
	struct recent_chunk *c;

	rwlock_assert_held(&r->lock);
	c = r->head;
	while (c && c->first + c->n <= pos)
		c = c->next;
	return c;
}

int recent_take(struct recent *r, uint64_t from, uint64_t to,
		struct recent_batch *b)
{
	struct recent_chunk *c;
	uint64_t pos = from;
	int rc = ATOLOG_OK;

	b->n_entries = b->n_rows = b->n_waiters = 0;
	rwlock_acquire_shared(&r->lock);
	b->state = r->last; /* for store_id; the rest is set item by item */
	c = chunk_at(r, from);
	for (; c && pos < to; c = c->next) {
		for (uint32_t i = (uint32_t)(pos - c->first); i < c->n && pos < to; i++, pos++) {
			const struct recent_item *it = &c->items[i];

			if (it->kind == FRAME_KIND_RECORD) {
				struct index_entry *e = &b->entries[b->n_entries++];

				memcpy(e->id, it->id, UUID_SIZE);
				e->created_at = it->created_at;
				e->seq = it->seq;
				e->loc = it->loc;
				e->project = (struct index_name){ c->names + it->name_off[0], it->name_len[0] };
				e->session = (struct index_name){ c->names + it->name_off[1], it->name_len[1] };
				e->client = (struct index_name){ c->names + it->name_off[2], it->name_len[2] };
			} else if (it->kind == FRAME_KIND_REGISTRY) {
				/* Every waiter is collected, even after a
				 * failure: the caller must wake them all. */
				if (rc == ATOLOG_OK)
					rc = batch_add_rows(b, it->rows, it->n_rows);
				b->waiters[b->n_waiters++] = it->waiter;
			}
			state_after(&b->state, it);
		}
	}
	rwlock_release(&r->lock);
	return rc;
}

/* ------------------------------------------------------------------------
 * The whole structure, checked (tests call it between steps).
 */

static bool sane_fail(char *why, size_t size, const char *what, uint64_t pos)
{
	snprintf(why, size, "recent set: %s (item %" PRIu64 ")", what, pos);
	return false;
}

/* One chunk's items: names inside its names, seqs rising, every record
 * reachable through the hash slots. */
static bool chunk_sane(const struct recent_chunk *c, uint64_t *last_seq,
		       char *why, size_t size)
{
	uint32_t in_slots = 0;

	if (c->n > RECENT_CHUNK_ITEMS || c->names_used > RECENT_CHUNK_NAMES)
		return sane_fail(why, size, "a chunk over its bounds", c->first);
	for (uint32_t s = 0; s < RECENT_SLOTS; s++) {
		if (c->slots[s] > c->n ||
		    (c->slots[s] && c->items[c->slots[s] - 1].kind != FRAME_KIND_RECORD))
			return sane_fail(why, size, "a hash slot names no record", c->first);
		in_slots += c->slots[s] != 0;
	}
	for (uint32_t i = 0; i < c->n; i++) {
		const struct recent_item *it = &c->items[i];
		uint32_t s = slot_of(it->id);

		if (it->seq <= *last_seq)
			return sane_fail(why, size, "seqs out of order", c->first + i);
		*last_seq = it->seq;
		for (int k = 0; k < 3; k++) {
			if ((uint64_t)it->name_off[k] + it->name_len[k] > c->names_used)
				return sane_fail(why, size, "a name outside its chunk",
						 c->first + i);
		}
		if (it->kind != FRAME_KIND_RECORD)
			continue;
		in_slots--;
		while (c->slots[s] && c->slots[s] != i + 1)
			s = (s + 1) % RECENT_SLOTS;
		if (!c->slots[s])
			return sane_fail(why, size, "a record its hash does not find",
					 c->first + i);
	}
	if (in_slots != 0)
		return sane_fail(why, size, "hash slots and records disagree", c->first);
	return true;
}

bool recent_sane(struct recent *r, char *why, size_t size)
{
	const struct recent_chunk *c, *prev = NULL;
	uint64_t last_seq = 0;
	bool ok = true;

	rwlock_acquire_shared(&r->lock);
	if (r->indexed > r->end)
		ok = sane_fail(why, size, "more indexed than published", r->indexed);
	if (ok && (!r->head != !r->tail))
		ok = sane_fail(why, size, "a head without a tail", 0);
	for (c = r->head; ok && c; prev = c, c = c->next) {
		if (prev && c->first != prev->first + prev->n)
			ok = sane_fail(why, size, "chunks not end to end", c->first);
		else
			ok = chunk_sane(c, &last_seq, why, size);
	}
	if (ok && prev && prev != r->tail)
		ok = sane_fail(why, size, "the tail is not the last chunk", prev->first);
	if (ok && r->tail && r->tail->first + r->tail->n != r->end)
		ok = sane_fail(why, size, "the tail does not end at the end", r->end);
	/* Trimming keeps every chunk holding an item not yet indexed. */
	if (ok && r->head && r->head != r->tail &&
	    r->head->first + r->head->n <= r->indexed)
		ok = sane_fail(why, size, "an indexed chunk kept", r->head->first);
	if (ok && r->tail && r->tail->n &&
	    r->last.last_seq != r->tail->items[r->tail->n - 1].seq)
		ok = sane_fail(why, size, "the last state is not the last item's", r->end);
	rwlock_release(&r->lock);
	return ok;
}
