/*
 * test_recent.c - the recent set (engine/recent.c) on its own, against a
 * plain array of what was published.
 *
 * A leader reserves room for several groups before it publishes any of
 * them (batch mode), and a group it reserved may fail and never be
 * published; chunks fill up by item count and by name bytes. This drives
 * the set through tens of chunks that way, with names of every length
 * up to the limit, and checks after every round: lookups by id, filtered
 * collections in both orders (exact ids and order), the index thread's
 * batches and the log state they end on, and trimming.
 */
#include <stdbool.h>

#include "check.h"
#include "engine.h"

#define ROUNDS 400
#define GROUPS_MAX 5    /* reserved per leader run */
#define GROUP_ITEMS 300 /* items per group, at most */
#define N_NAMES 6

struct published {
	struct index_entry e; /* names point into names[] */
	uint8_t kind;
};

static struct published *model;
static size_t n_model;
static char names[N_NAMES][ATOLOG_NAME_MAX_BYTES + 1];
static uint64_t next_seq = 1, next_offset = SEGMENT_HEADER_SIZE;

static void make_names(void)
{
	/* "", short, and up to the longest a name may be. */
	static const size_t lens[N_NAMES] = { 0, 1, 7, 40, 200, ATOLOG_NAME_MAX_BYTES };

	for (int k = 0; k < N_NAMES; k++) {
		for (size_t i = 0; i < lens[k]; i++)
			names[k][i] = (char)('a' + (k + i) % 26);
		names[k][lens[k]] = '\0';
	}
}

static struct index_name random_name(void)
{
	const char *n = names[check_rand_below(N_NAMES)];

	return (struct index_name){ n, strlen(n) };
}

static void random_item(struct log_item *it)
{
	static const struct index_registry_row row = { { "k", 1 }, { "p", 1 }, { "k", 1 } };
	struct index_entry *e = &it->entry;

	memset(it, 0, sizeof(*it));
	it->kind = check_rand_below(20) ? FRAME_KIND_RECORD : FRAME_KIND_REGISTRY;
	if (it->kind == FRAME_KIND_RECORD) {
		for (int i = 0; i < UUID_SIZE; i++)
			e->id[i] = (uint8_t)check_rand();
		/* Few distinct times: ties, broken by seq. */
		e->created_at = (int64_t)check_rand_below(50) * 1000000;
		e->project = random_name();
		e->session = random_name();
		e->client = random_name();
	} else {
		it->rows = &row;
		it->n_rows = 1;
	}
}

/* What the leader does when it writes: seq and location. */
static void write_items(struct log_item *items, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint32_t len = 100 + (uint32_t)check_rand_below(4000);

		items[i].entry.seq = next_seq++;
		items[i].entry.loc = (struct index_loc){ 1, next_offset, len };
		next_offset += len;
	}
}

static void model_publish(const struct log_item *items, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		model[n_model].e = items[i].entry;
		model[n_model++].kind = items[i].kind;
	}
}

static bool matches(const struct published *p, const struct index_filter *f)
{
	const struct index_name want[3] = { f->project, f->session, f->client };
	const struct index_name got[3] = { p->e.project, p->e.session, p->e.client };

	if (p->kind != FRAME_KIND_RECORD || p->e.created_at < f->since)
		return false;
	for (int k = 0; k < 3; k++) {
		if (want[k].ptr && (want[k].len != got[k].len ||
				    memcmp(want[k].ptr, got[k].ptr, got[k].len) != 0))
			return false;
	}
	return true;
}

static int oldest_first(const void *x, const void *y)
{
	const struct published *a = *(struct published *const *)x;
	const struct published *b = *(struct published *const *)y;

	if (a->e.created_at != b->e.created_at)
		return a->e.created_at < b->e.created_at ? -1 : 1;
	return a->e.seq < b->e.seq ? -1 : a->e.seq > b->e.seq;
}

static int newest_first(const void *x, const void *y)
{
	return oldest_first(y, x);
}

/* collect must return exactly the matching items at or above indexed,
 * in the filter's order. */
static void check_collect(struct recent *r, uint64_t indexed)
{
	struct index_filter f = { .since = INT64_MIN };
	struct index_hit *hits = NULL;
	size_t n = 0, want = 0;
	struct published **exp;

	if (check_rand_below(2))
		f.project = random_name();
	if (check_rand_below(3) == 0)
		f.session = random_name();
	if (check_rand_below(2))
		f.since = (int64_t)check_rand_below(50) * 1000000;
	f.oldest_first = check_rand_below(2);
	CHECK_OK(recent_collect(r, &f, &hits, &n), NULL);
	exp = calloc(n_model + 1, sizeof(*exp));
	for (size_t i = indexed; i < n_model; i++) {
		if (matches(&model[i], &f))
			exp[want++] = &model[i];
	}
	/* The model is in seq order; sort it by (time, seq), as asked. */
	qsort(exp, want, sizeof(*exp), f.oldest_first ? oldest_first : newest_first);
	CHECK_INT(n, want);
	for (size_t i = 0; i < n && i < want; i++) {
		CHECK(memcmp(hits[i].id, exp[i]->e.id, UUID_SIZE) == 0);
		CHECK_INT(hits[i].seq, exp[i]->e.seq);
		CHECK_INT(hits[i].loc.offset, exp[i]->e.loc.offset);
	}
	free(exp);
	free(hits);
}

static void check_find(struct recent *r, uint64_t indexed)
{
	for (int k = 0; k < 50 && n_model > indexed; k++) {
		size_t i = indexed + check_rand_below(n_model - indexed);
		struct index_loc loc = { 0 };

		if (model[i].kind != FRAME_KIND_RECORD)
			continue;
		CHECK(recent_find(r, model[i].e.id, &loc));
		CHECK_INT(loc.offset, model[i].e.loc.offset);
		CHECK_INT(loc.length, model[i].e.loc.length);
	}
	{
		uint8_t unknown[UUID_SIZE] = { 0xee };
		struct index_loc loc;

		CHECK(!recent_find(r, unknown, &loc));
	}
}

/* The index thread's view: [from, to) as entries, rows, waiters, and the
 * state after the last item. */
static void check_take(struct recent *r, struct recent_batch *b, uint64_t from,
		       uint64_t to)
{
	size_t records = 0, registry = 0;
	uint64_t n_records_before = 0;

	CHECK_OK(recent_take(r, from, to, b), NULL);
	for (uint64_t i = 0; i < from; i++)
		n_records_before += model[i].kind == FRAME_KIND_RECORD;
	for (uint64_t i = from; i < to; i++) {
		const struct published *p = &model[i];

		if (p->kind == FRAME_KIND_REGISTRY) {
			registry++;
			continue;
		}
		if (records < b->n_entries) {
			const struct index_entry *e = &b->entries[records];

			CHECK(memcmp(e->id, p->e.id, UUID_SIZE) == 0);
			CHECK_INT(e->seq, p->e.seq);
			CHECK_INT(e->project.len, p->e.project.len);
			CHECK(memcmp(e->project.ptr, p->e.project.ptr, p->e.project.len) == 0);
			CHECK(memcmp(e->client.ptr, p->e.client.ptr, p->e.client.len) == 0);
		}
		records++;
	}
	CHECK_INT(b->n_entries, records);
	CHECK_INT(b->n_rows, registry);
	CHECK_INT(b->n_waiters, registry);
	CHECK_INT(b->state.last_seq, model[to - 1].e.seq);
	CHECK_INT(b->state.last_frame_offset, model[to - 1].e.loc.offset);
	CHECK_INT(b->state.end_offset,
		  model[to - 1].e.loc.offset + model[to - 1].e.loc.length);
	CHECK_INT(b->state.n_records, n_records_before + records);
	CHECK_INT(b->state.store_id[0], 0x5a);
}

/* One leader run: reserve for several groups, then publish them in order,
 * except one that "failed" after its reservation. */
static void check_sane(struct recent *r)
{
	char why[256];

	if (!recent_sane(r, why, sizeof(why)))
		CHECK_FAILF("%s", why);
}

static void leader_run(struct recent *r)
{
	struct log_item groups[GROUPS_MAX][GROUP_ITEMS];
	size_t n_groups = 1 + check_rand_below(GROUPS_MAX), sizes[GROUPS_MAX];
	size_t failed = check_rand_below(4) == 0 ? check_rand_below(n_groups) : GROUPS_MAX;

	recent_plan_sync(r);
	for (size_t g = 0; g < n_groups; g++) {
		sizes[g] = 1 + check_rand_below(GROUP_ITEMS);
		for (size_t i = 0; i < sizes[g]; i++)
			random_item(&groups[g][i]);
		CHECK_OK(recent_reserve(r, groups[g], sizes[g]), NULL);
		if (g != failed)
			write_items(groups[g], sizes[g]);
	}
	for (size_t g = 0; g < n_groups; g++) {
		if (g == failed)
			continue;
		CHECK_INT(recent_publish(r, groups[g], sizes[g]), n_model + sizes[g]);
		model_publish(groups[g], sizes[g]);
	}
}

int main(void)
{
	struct index_state start = { .segment = 1, .end_offset = SEGMENT_HEADER_SIZE };
	struct recent r;
	struct recent_batch b;
	uint64_t indexed = 0;

	check_rand_init("test_recent");
	make_names();
	memset(start.store_id, 0x5a, sizeof(start.store_id));
	model = calloc((size_t)ROUNDS * GROUPS_MAX * GROUP_ITEMS, sizeof(*model));
	CHECK_OK(recent_init(&r, &start), NULL);
	CHECK_OK(recent_batch_init(&b), NULL);
	for (int round = 0; round < ROUNDS; round++) {
		leader_run(&r);
		if (n_model > indexed) {
			uint64_t to = indexed + 1 + check_rand_below(n_model - indexed);

			if (to - indexed > INDEX_TXN_MAX_ITEMS)
				to = indexed + INDEX_TXN_MAX_ITEMS;
			check_take(&r, &b, indexed, to);
			/* Trim now and then, so that chunks are freed on the way. */
			if (check_rand_below(3) == 0) {
				indexed = to;
				recent_trim(&r, indexed);
			}
		}
		check_find(&r, indexed);
		if (round % 10 == 0)
			check_collect(&r, indexed);
		check_sane(&r);
	}
	CHECK(n_model > 20 * RECENT_CHUNK_ITEMS);
	{
		/* The checker sees a broken set. */
		char why[256];
		uint64_t end = r.end, was_indexed = r.indexed;

		r.end = end + 1;
		CHECK(!recent_sane(&r, why, sizeof(why)) &&
		      strstr(why, "does not end at the end"));
		r.end = end;
		r.indexed = end + 1;
		CHECK(!recent_sane(&r, why, sizeof(why)) &&
		      strstr(why, "more indexed than published"));
		r.indexed = was_indexed;
		CHECK(recent_sane(&r, why, sizeof(why)));
	}
	fprintf(stderr, "test_recent: %zu items published, %" PRIu64 " trimmed\n",
		n_model, indexed);
	recent_batch_free(&b);
	recent_destroy(&r);
	free(model);
	return check_report("test_recent");
}
