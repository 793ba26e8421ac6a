/*
 * test_nomem.c - every allocation of an operation failed in turn.
 *
 * The test is linked with the failing allocator (nomem.c, through the
 * linker's --wrap). Each operation runs with allocation number n failing,
 * for n = 0, 1, 2, ... until a run in which the failure is not reached
 * (then it must succeed), and after each failed run the test asserts:
 *  - the code is ENOMEM, or a code the operation documents for it (a
 *    batch answers its first item's; the index thread's failure fails the
 *    handle: ATOLOG_FAILED), or ATOLOG_OK with the right result when the
 *    allocation was one the operation can do without;
 *  - nothing half-done is visible: a refused record is not stored (nor
 *    does the log change), every item of a batch is stored exactly when
 *    its code says so, an iterator yields a prefix of the right answer, a
 *    failed snapshot or restore leaves no directory (its work directory
 *    included), a failed compaction leaves the store as before or, past
 *    its commit point, as a crash would (the next open finishes it), and
 *    the handle still writes;
 *  - nothing leaks (LeakSanitizer, asked after each operation; after each
 *    run with ATOLOG_NOMEM_LEAKS_EACH=1);
 *  - the store verifies, and holds exactly the records acknowledged (an
 *    independent list kept by the test: ids, times, and each record's
 *    JSON as stored, compared with what list and get answer).
 * The operations: JSON in and out, record and batch in each sync mode,
 * project registration, get, list, replay, follow, stats, counts, verify
 * (on a writer's and a read-only handle), snapshot and restore,
 * compaction, opening (creating a store, serving a tail read-only,
 * indexing a tail, rebuilding the index), closing, and the index thread
 * (its failures fail the handle; the records acknowledged stay in the log
 * and a reopen indexes them). Export and import are the CLI's: a copy of
 * atolog built with the same wrap (atolog_nomem) fails allocation
 * ATOLOG_NOMEM_FAIL of its main thread.
 *
 * Every n is tried for every operation. Each run copies its starting
 * store afresh where the operation changes it, so each n sees the same
 * path up to its failure. ATOLOG_NOMEM_STACK=1 prints where each failure
 * is injected; ATOLOG_NOMEM_TIME=1 how long each operation's runs took.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "engine.h"
#include "nomem.h"

#if defined(__SANITIZE_ADDRESS__)
#define NOMEM_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NOMEM_LSAN 1
#endif
#endif
#ifdef NOMEM_LSAN
#include <sanitizer/lsan_interface.h>
#endif

/* An operation whose failures are not all reached by this many runs is
 * taken to loop (each run fails one allocation of a finite path). */
#define NOMEM_RUNS_MAX 2000
#define NOMEM_TMPFS "/dev/shm" /* the stores' home, unless TMPDIR says */
#define SEGMENT 4096        /* small, so that the stores have sealed segments */
#define BASE_RECORDS 24     /* in the starting store */
#define TIME_BASE INT64_C(1767261600000000) /* 2026-01-01T10:00:00Z */

static const char *cli_nomem;

/* ------------------------------------------------------------------------
 * What the store must hold: the records acknowledged, as stored.
 */

struct fact {
	char id[ATOLOG_ID_TEXT_LEN + 1];
	int64_t created_at;
	uint64_t seq;
	char session[16];
	char project[16];
	char *json; /* atolog_interaction_to_json of the stored record */
};

struct truth {
	struct fact *f;
	size_t n, cap;
};

static char *render(const atolog_interaction *rec)
{
	char *json = NULL;

	CHECK_OK(atolog_interaction_to_json(rec, &json), NULL);
	return json;
}

static void truth_add(struct truth *t, const atolog_interaction *stored)
{
	struct fact *f;

	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 64;
		t->f = realloc(t->f, t->cap * sizeof(*t->f));
		if (!t->f)
			abort();
	}
	f = &t->f[t->n++];
	memcpy(f->id, stored->id, sizeof(f->id));
	f->created_at = stored->created_at;
	f->seq = stored->seq;
	snprintf(f->session, sizeof(f->session), "%s", stored->session_id);
	snprintf(f->project, sizeof(f->project), "%s", stored->project);
	f->json = render(stored);
}

static void truth_free(struct truth *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->f[i].json);
	free(t->f);
	*t = (struct truth){ 0 };
}

/* Appends copies of from's facts to to. */
static void truth_join(struct truth *to, const struct truth *from)
{
	for (size_t i = 0; i < from->n; i++) {
		truth_add(to, &(atolog_interaction){ .prompt = "" });
		free(to->f[to->n - 1].json);
		to->f[to->n - 1] = from->f[i];
		to->f[to->n - 1].json = strdup(from->f[i].json);
	}
}

static int fact_oldest_first(const void *x, const void *y)
{
	const struct fact *a = x, *b = y;

	if (a->created_at != b->created_at)
		return a->created_at < b->created_at ? -1 : 1;
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static const struct fact *truth_find(const struct truth *t, const char *id)
{
	for (size_t i = 0; i < t->n; i++) {
		if (strcmp(t->f[i].id, id) == 0)
			return &t->f[i];
	}
	return NULL;
}

/* Every record of t, and nothing else, through list and get. */
static void truth_check(atolog_store *s, struct truth *t, const char *what)
{
	atolog_query q = { .limit = LONG_MAX, .oldest_first = 1 };
	const atolog_interaction *rec;
	atolog_iter *it;
	size_t i = 0;
	int rc;

	if (t->n) /* qsort wants a real array */
		qsort(t->f, t->n, sizeof(*t->f), fact_oldest_first);
	rc = atolog_list_open(s, &q, &it);
	CHECK_OK(rc, s);
	if (rc != ATOLOG_OK)
		return;
	while ((rc = atolog_iter_next(it, &rec)) == ATOLOG_OK) {
		char *json = render(rec);

		if (i >= t->n || !json || strcmp(json, t->f[i].json) != 0)
			CHECK_FAILF("%s: record %zu is %s, want %s", what, i,
				    json ? json : "?", i < t->n ? t->f[i].json : "none");
		free(json);
		i++;
	}
	CHECK_RC(rc, ATOLOG_DONE, s);
	atolog_iter_close(it);
	if (i != t->n)
		CHECK_FAILF("%s: the store lists %zu records, want %zu", what, i, t->n);
	for (i = 0; i < t->n; i++) {
		atolog_interaction *got = NULL;

		rc = atolog_interaction_get(s, t->f[i].id, &got);
		if (rc != ATOLOG_OK) {
			CHECK_FAILF("%s: get %s: %s", what, t->f[i].id, atolog_errmsg(s));
			continue;
		}
		char *json = render(got);

		if (!json || strcmp(json, t->f[i].json) != 0)
			CHECK_FAILF("%s: get %s is %s", what, t->f[i].id, json ? json : "?");
		free(json);
		atolog_interaction_free(got);
	}
}

/* ------------------------------------------------------------------------
 * Inputs: every field used, ids and times given, so that each is known.
 */

struct input {
	atolog_interaction in;
	char id[ATOLOG_ID_TEXT_LEN + 1];
	char prompt[48], session[16], context[128];
	const char *memories[3], *chunks[2];
};

static void input_make(struct input *x, long k)
{
	static const char *const projects[] = { "alpha", "al", "beta" };

	snprintf(x->id, sizeof(x->id), "018f0000-0000-7000-8000-%012lx", k);
	snprintf(x->prompt, sizeof(x->prompt), "prompt %ld \u00e9\u4e2d", k);
	snprintf(x->session, sizeof(x->session), "s%ld", k % 3);
	snprintf(x->context, sizeof(x->context),
		 "{\"k\":%ld,\"files\":[\"a.c\",{\"b\":[1,2.5,true,null]}],\"big\":18446744073709551615}",
		 k);
	x->memories[0] = "m1";
	x->memories[1] = "m2 \u00fc";
	x->memories[2] = "m3";
	x->chunks[0] = "c1";
	x->chunks[1] = "c2";
	x->in = (atolog_interaction){
		.has_created_at = 1,
		.created_at = TIME_BASE + (int64_t)k * 1000000,
		.prompt = x->prompt,
		.response = "a response",
		.response_summary = "a summary",
		.project = projects[k % 3],
		.client = k % 2 ? "claude-code" : "openclaw",
		.session_id = x->session,
		.memories_used = x->memories,
		.n_memories_used = 3,
		.chunks_used = x->chunks,
		.n_chunks_used = 2,
		.context_pack = x->context,
	};
	memcpy(x->in.id, x->id, sizeof(x->id));
}

/* ------------------------------------------------------------------------
 * Files: starting stores are built once and copied for each run.
 */

static const char *copy_from, *copy_to;

static int copy_entry(const char *path, const struct stat *st, int flag,
		      struct FTW *ftw)
{
	char to[PATH_MAX];

	(void)ftw;
	snprintf(to, sizeof(to), "%s%s", copy_to, path + strlen(copy_from));
	if (flag == FTW_D)
		return mkdir(to, st->st_mode & 07777) == 0 || errno == EEXIST ? 0 : -1;
	if (flag == FTW_F)
		check_copy_file(path, to);
	return 0;
}

static void copy_tree(const char *from, const char *to)
{
	copy_from = from;
	copy_to = to;
	CHECK(nftw(from, copy_entry, 16, FTW_PHYS) == 0);
}

static int remove_entry(const char *path, const struct stat *st, int flag,
			struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

static void remove_tree(const char *dir)
{
	struct stat st;

	if (lstat(dir, &st) == 0)
		CHECK(nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) == 0);
}

static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* Entries of dir whose name holds part (a snapshot's work directory). */
static int count_entries(const char *dir, const char *part)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += strstr(e->d_name, part) != NULL;
	closedir(d);
	return n;
}

static atolog_store *open_writer_sync(const char *dir, atolog_sync_mode sync)
{
	atolog_options o = { .segment_size = SEGMENT, .sync = sync };
	atolog_store *s = NULL;

	CHECK_OK(atolog_store_open(dir, &o, &s), NULL);
	return s;
}

static atolog_store *open_writer(const char *dir)
{
	return open_writer_sync(dir, ATOLOG_SYNC_ALWAYS);
}

static atolog_store *open_reader(const char *dir)
{
	atolog_options o = { .flags = ATOLOG_OPEN_READONLY };
	atolog_store *s = NULL;

	CHECK_OK(atolog_store_open(dir, &o, &s), NULL);
	return s;
}

static void verify_ok(atolog_store *s, const char *what)
{
	atolog_verify_report rep;
	int rc = atolog_store_verify(s, NULL, NULL, &rep);

	if (rc != ATOLOG_OK)
		CHECK_FAILF("%s: verify: %s", what, atolog_errmsg(s));
}

/* Opens dir as its writer, verifies it and checks its records. */
static void store_check(const char *dir, struct truth *t, const char *what)
{
	atolog_store *s = open_writer(dir);

	if (!s)
		return;
	verify_ok(s, what);
	truth_check(s, t, what);
	CHECK_OK(atolog_store_close(s), NULL);
}

/* The starting store: BASE_RECORDS records over several segments, and a
 * project with an alias. */
static void base_make(const char *dir, struct truth *t)
{
	atolog_store *s = open_writer(dir);
	const char *aliases[] = { "al", "Alpha Project" };

	if (!s)
		exit(check_report("test_nomem"));
	CHECK_OK(atolog_project_add(s, "alpha", aliases, 2), s);
	for (long k = 0; k < BASE_RECORDS; k++) {
		struct input x;
		atolog_interaction *out = NULL;

		input_make(&x, k);
		CHECK_OK(atolog_interaction_record(s, &x.in, &out), s);
		if (out)
			truth_add(t, out);
		atolog_interaction_free(out);
	}
	CHECK_OK(atolog_store_close(s), NULL);
}

/* ------------------------------------------------------------------------
 * The loop.
 */

static int64_t check_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static bool leaks_found(void)
{
#ifdef NOMEM_LSAN
	return __lsan_do_recoverable_leak_check() != 0;
#else
	return false;
#endif
}

struct nomem_run {
	long n;       /* the allocation that failed */
	bool fired;   /* it was reached */
	int rc;       /* what the operation answered */
};

struct nomem_op {
	const char *what;
	enum nomem_scope scope;
	int (*op)(void *ctx);
	void (*after)(void *ctx, const struct nomem_run *run); /* may be NULL */
	void *ctx;
	const int *also; /* codes besides ENOMEM the operation documents */
	size_t n_also;
};

/* One run of op with allocation n failing (n < 0: none, only counted).
 * A fired failure must give ENOMEM (or one of also[]; ATOLOG_OK when the
 * allocation was one it can do without, op and after checking the
 * result); a run that does not reach its failure must succeed. */
static struct nomem_run nomem_run_once(const struct nomem_op *o, long n, long *count)
{
	struct nomem_run run = { .n = n };
	bool allowed;

	nomem_arm(n, o->scope);
	run.rc = o->op(o->ctx);
	*count = nomem_disarm(&run.fired);
	if (run.fired) {
		allowed = run.rc == ENOMEM || run.rc == ATOLOG_OK;
		for (size_t i = 0; i < o->n_also; i++)
			allowed |= run.rc == o->also[i];
		if (!allowed)
			CHECK_FAILF("%s: allocation %ld failed: returned %d (%s), want ENOMEM",
				    o->what, n, run.rc, atolog_strerror(run.rc));
	} else if (run.rc != ATOLOG_OK) {
		CHECK_FAILF("%s: no failure (%ld allocations) and still %d (%s)", o->what,
			    *count, run.rc, atolog_strerror(run.rc));
	}
	if (o->after)
		o->after(o->ctx, &run);
	if (getenv("ATOLOG_NOMEM_LEAKS_EACH") && leaks_found())
		CHECK_FAILF("%s: a leak after allocation %ld failed", o->what, n);
	return run;
}

static void nomem_done(const struct nomem_op *o, int64_t t0, long count)
{
	if (getenv("ATOLOG_NOMEM_TIME"))
		fprintf(stderr, "test_nomem: %s: %.1f s\n", o->what,
			(double)(check_now_us() - t0) / 1e6);
	if (leaks_found())
		CHECK_FAILF("%s: a leak (see the report above)", o->what);
	fprintf(stderr, "test_nomem: %s: %ld allocations, each failed\n", o->what, count);
}

/*
 * Runs the operation with allocation n failing for n = 0, 1, ... until a
 * run does not reach its failure (and succeeds); returns how many
 * allocations that run made.
 */
static long nomem_loop_op(const struct nomem_op *o)
{
	int64_t t0 = check_now_us();

	for (long n = 0; n < NOMEM_RUNS_MAX; n++) {
		long count;
		struct nomem_run run = nomem_run_once(o, n, &count);

		if (!run.fired) {
			nomem_done(o, t0, n);
			return n;
		}
	}
	CHECK_FAILF("%s: still failing after %d runs", o->what, NOMEM_RUNS_MAX);
	return -1;
}

static long nomem_loop(const char *what, enum nomem_scope scope,
		       int (*op)(void *ctx), void (*after)(void *ctx, const struct nomem_run *run),
		       void *ctx, const int *also, size_t n_also)
{
	struct nomem_op o = { what, scope, op, after, ctx, also, n_also };

	return nomem_loop_op(&o);
}

#define ALSO(...) (const int[]){ __VA_ARGS__ }, sizeof((const int[]){ __VA_ARGS__ }) / sizeof(int)
#define NO_ALSO NULL, 0

/* ------------------------------------------------------------------------
 * JSON in and out, without a store.
 */

static const char rich_json[] =
	"{\"prompt\":\"p \\u00e9\",\"response\":\"r\",\"response_summary\":\"sum\","
	"\"project\":\"alpha\",\"client\":\"c\",\"session_id\":\"s1\","
	"\"memories_used\":[\"m1\",\"m2\"],\"chunks_used\":[\"c1\"],"
	"\"context_pack\":{\"a\":[1,-2,3.25,\"x\",{\"b\":null}],\"t\":true,"
	"\"n\":-9223372036854775808},"
	"\"id\":\"018f0000-0000-7000-8000-0000000000aa\","
	"\"created_at\":\"2026-01-02T03:04:05.123456+01:00\",\"reinforce\":false}";

struct json_case {
	const char *want;         /* rendering of the parse, unfailed */
	atolog_interaction *rec;  /* what to_json renders */
	char *items;              /* array: renderings seen so far */
	size_t n_items, n_refused;
};

static int op_from_json(void *ctx)
{
	struct json_case *c = ctx;
	atolog_interaction *out = NULL;
	int rc = atolog_interaction_from_json(rich_json, strlen(rich_json), &out);

	if (rc == ATOLOG_OK) {
		char *json;

		nomem_hold(true);
		json = render(out);
		nomem_hold(false);
		CHECK_STR(json, c->want);
		free(json);
	} else {
		CHECK(out == NULL);
	}
	atolog_interaction_free(out);
	return rc;
}

static int op_to_json(void *ctx)
{
	struct json_case *c = ctx;
	char *json = NULL;
	int rc = atolog_interaction_to_json(c->rec, &json);

	if (rc == ATOLOG_OK)
		CHECK_STR(json, c->want);
	else
		CHECK(json == NULL);
	free(json);
	return rc;
}

static int op_validate(void *ctx)
{
	return atolog_interaction_validate(((struct json_case *)ctx)->rec);
}

static void test_json(const char *dir)
{
	struct json_case c = { 0 };
	atolog_interaction *rec = NULL;

	(void)dir;
	CHECK_OK(atolog_interaction_from_json(rich_json, strlen(rich_json), &rec), NULL);
	if (!rec)
		return;
	c.want = render(rec);
	c.rec = rec;
	nomem_loop("atolog_interaction_from_json", NOMEM_SELF, op_from_json, NULL, &c,
		   NO_ALSO);
	nomem_loop("atolog_interaction_to_json", NOMEM_SELF, op_to_json, NULL, &c,
		   NO_ALSO);
	nomem_loop("atolog_interaction_validate", NOMEM_SELF, op_validate, NULL, &c,
		   NO_ALSO);
	free((char *)c.want);
	atolog_interaction_free(rec);
}

/* The array parser: each element is delivered whole or not at all (the
 * one without a prompt as a refusal), in order; a run that fails stops
 * with ENOMEM after a prefix of them. The callback's own rendering is
 * held out of the count. */
struct array_case {
	const char *doc;
	char *want[3]; /* renderings of elements 0 and 2, unfailed */
	size_t seen;
	bool refused, bad;
};

static int array_collect(size_t index, int rc, const char *why,
			 atolog_interaction *item, void *ctx)
{
	struct array_case *a = ctx;

	(void)why;
	nomem_hold(true);
	if (rc == ATOLOG_OK) {
		char *json = render(item);
		size_t want = index == 0 ? 0 : 1;

		if (index == 1 || !json || strcmp(json, a->want[want]) != 0)
			a->bad = true;
		free(json);
		a->seen++;
	} else {
		if (index != 1 || rc != ATOLOG_INVALID)
			CHECK_FAILF("json array: element %zu refused: %d %s", index, rc, why);
		a->bad |= index != 1 || rc != ATOLOG_INVALID;
		a->refused = true;
		a->seen++;
	}
	atolog_interaction_free(item);
	nomem_hold(false);
	return 0;
}

static int op_from_json_array(void *ctx)
{
	struct array_case *a = ctx;
	int rc;

	a->seen = 0;
	a->refused = a->bad = false;
	rc = atolog_interactions_from_json_array(a->doc, strlen(a->doc), array_collect, a);
	if (a->bad)
		CHECK_FAILF("json array: an element delivered wrong (rc %d)", rc);
	if (rc == ATOLOG_OK && (a->seen != 3 || !a->refused))
		CHECK_FAILF("json array: %zu of 3 elements delivered", a->seen);
	return rc;
}

static void test_json_array(const char *dir)
{
	static const char doc[] =
		"[{\"prompt\":\"one\",\"memories_used\":[\"a\",\"b\"],"
		"\"context_pack\":{\"x\":[1,{\"y\":\"z\"}]}},"
		"{\"response\":\"no prompt\",\"chunks_used\":[\"c\"]},"
		"{\"prompt\":\"three\",\"session_id\":\"s\",\"chunks_used\":[\"c\"],"
		"\"created_at\":\"2026-01-01\"}]";
	static const char *const items[] = {
		"{\"prompt\":\"one\",\"memories_used\":[\"a\",\"b\"],"
		"\"context_pack\":{\"x\":[1,{\"y\":\"z\"}]}}",
		"{\"prompt\":\"three\",\"session_id\":\"s\",\"chunks_used\":[\"c\"],"
		"\"created_at\":\"2026-01-01\"}",
	};
	struct array_case a = { .doc = doc };

	(void)dir;
	for (int i = 0; i < 2; i++) {
		atolog_interaction *rec = NULL;

		CHECK_OK(atolog_interaction_from_json(items[i], strlen(items[i]), &rec),
			 NULL);
		a.want[i] = rec ? render(rec) : NULL;
		atolog_interaction_free(rec);
	}
	nomem_loop("atolog_interactions_from_json_array", NOMEM_SELF,
		   op_from_json_array, NULL, &a, NO_ALSO);
	free(a.want[0]);
	free(a.want[1]);
}

/* ------------------------------------------------------------------------
 * Writing: record, batch, registration.
 */

struct write_case {
	atolog_store *s;
	struct truth *t;
	long next;              /* the next input number */
	struct input x[4];      /* the inputs of the run */
	int rcs[4], rc;
	atolog_interaction *out[4];
	char name[48];
	atolog_stats before;
};

static bool stored(atolog_store *s, const char *id)
{
	atolog_interaction *got = NULL;
	int rc = atolog_interaction_get(s, id, &got);

	if (rc != ATOLOG_OK && rc != ATOLOG_NOTFOUND)
		CHECK_FAILF("get %s: %s", id, atolog_errmsg(s));
	atolog_interaction_free(got);
	return rc == ATOLOG_OK;
}

static int op_record(void *ctx)
{
	struct write_case *c = ctx;

	nomem_hold(true);
	input_make(&c->x[0], c->next);
	CHECK_OK(atolog_store_stats(c->s, &c->before), c->s);
	c->out[0] = NULL;
	nomem_hold(false);
	return atolog_interaction_record(c->s, &c->x[0].in, &c->out[0]);
}

static void after_record(void *ctx, const struct nomem_run *run)
{
	struct write_case *c = ctx;
	atolog_stats st;

	if (run->rc == ATOLOG_OK) {
		if (!c->out[0] || strcmp(c->out[0]->id, c->x[0].id) != 0)
			CHECK_FAILF("record: allocation %ld: stored without its id", run->n);
		else
			truth_add(c->t, c->out[0]);
		CHECK(stored(c->s, c->x[0].id));
		c->next++;
	} else {
		CHECK(c->out[0] == NULL);
		if (stored(c->s, c->x[0].id))
			CHECK_FAILF("record: allocation %ld failed (%s) and yet the record is "
				    "stored", run->n, atolog_strerror(run->rc));
		CHECK_OK(atolog_store_stats(c->s, &st), c->s);
		if (st.n_records != c->before.n_records ||
		    st.log_bytes != c->before.log_bytes)
			CHECK_FAILF("record: allocation %ld failed, and the store went from "
				    "%" PRIu64 " records, %" PRIu64 " bytes to %" PRIu64
				    ", %" PRIu64, run->n, c->before.n_records,
				    c->before.log_bytes, st.n_records, st.log_bytes);
	}
	atolog_interaction_free(c->out[0]);
	c->out[0] = NULL;
	store_index_wait(c->s); /* the next run starts from the same point */
}

/* A batch of three valid interactions and a refused one (no prompt). */
static int op_batch(void *ctx)
{
	struct write_case *c = ctx;

	for (int i = 0; i < 4; i++) {
		input_make(&c->x[i], c->next + i);
		c->rcs[i] = INT_MIN;
		c->out[i] = NULL;
	}
	c->x[2].in.prompt = "  ";
	c->rc = atolog_interaction_record_batch(c->s, (atolog_interaction[]){
		c->x[0].in, c->x[1].in, c->x[2].in, c->x[3].in }, 4, c->rcs, c->out);
	/* Success is the blank item alone refused (after_batch checks). */
	if (c->rc == ATOLOG_INVALID && c->rcs[0] == ATOLOG_OK && c->rcs[1] == ATOLOG_OK &&
	    c->rcs[3] == ATOLOG_OK)
		return ATOLOG_OK;
	return c->rc;
}

static void after_batch(void *ctx, const struct nomem_run *run)
{
	struct write_case *c = ctx;
	int first = ATOLOG_OK;

	for (int i = 0; i < 4; i++) {
		bool is = stored(c->s, c->x[i].id);

		if (first == ATOLOG_OK)
			first = c->rcs[i];
		if (i == 2 && c->rcs[i] != ATOLOG_INVALID && c->rcs[i] != ENOMEM)
			CHECK_FAILF("batch: allocation %ld: the blank item answered %d",
				    run->n, c->rcs[i]);
		if (c->rcs[i] == ATOLOG_OK) {
			if (!is || !c->out[i])
				CHECK_FAILF("batch: allocation %ld: item %d acknowledged, not "
					    "stored", run->n, i);
			else
				truth_add(c->t, c->out[i]);
		} else {
			if (is)
				CHECK_FAILF("batch: allocation %ld: item %d refused (%s) and "
					    "stored", run->n, i, atolog_strerror(c->rcs[i]));
			if (c->out[i])
				CHECK_FAILF("batch: allocation %ld: item %d refused, with an "
					    "output", run->n, i);
			if (i != 2 && c->rcs[i] != ENOMEM && c->rcs[i] != ATOLOG_FAILED)
				CHECK_FAILF("batch: allocation %ld: item %d answered %d (%s)",
					    run->n, i, c->rcs[i], atolog_strerror(c->rcs[i]));
		}
		atolog_interaction_free(c->out[i]);
		c->out[i] = NULL;
	}
	/* The first item's error; ENOMEM also when only the blank one is
	 * refused but the others failed. */
	if (c->rc != first)
		CHECK_FAILF("batch: allocation %ld: returned %d, the first item %d",
			    run->n, c->rc, first);
	c->next += 4;
	store_index_wait(c->s);
}

static int op_project(void *ctx)
{
	struct write_case *c = ctx;
	char alias[64];

	snprintf(c->name, sizeof(c->name), "proj%ld", c->next);
	snprintf(alias, sizeof(alias), "alias of %s", c->name);
	return atolog_project_add(c->s, c->name, (const char *[]){ alias, "X" }, 1);
}

static void after_project(void *ctx, const struct nomem_run *run)
{
	struct write_case *c = ctx;
	char alias[64], *got = NULL;

	snprintf(alias, sizeof(alias), "alias of %s", c->name);
	CHECK_OK(atolog_project_resolve(c->s, alias, &got), c->s);
	if (got && strcmp(got, run->rc == ATOLOG_OK ? c->name : alias) != 0)
		CHECK_FAILF("project add: allocation %ld (%s): the alias resolves to %s",
			    run->n, atolog_strerror(run->rc), got);
	free(got);
	c->next++;
}

static int op_resolve(void *ctx)
{
	struct write_case *c = ctx;
	char *got = NULL;
	int rc = atolog_project_resolve(c->s, "AL", &got);

	if (rc == ATOLOG_OK)
		CHECK_STR(got, "alpha");
	else
		CHECK(got == NULL);
	free(got);
	return rc;
}

/* A record with its id generated: refused, it leaves no record. */
static int op_record_new_id(void *ctx)
{
	struct write_case *c = ctx;

	nomem_hold(true);
	input_make(&c->x[0], c->next);
	c->x[0].in.id[0] = '\0';
	CHECK_OK(atolog_store_stats(c->s, &c->before), c->s);
	c->out[0] = NULL;
	nomem_hold(false);
	return atolog_interaction_record(c->s, &c->x[0].in, &c->out[0]);
}

static void after_record_new_id(void *ctx, const struct nomem_run *run)
{
	struct write_case *c = ctx;
	atolog_stats st;

	CHECK_OK(atolog_store_stats(c->s, &st), c->s);
	if (run->rc == ATOLOG_OK && c->out[0]) {
		truth_add(c->t, c->out[0]);
		CHECK(stored(c->s, c->out[0]->id));
		CHECK_INT(st.n_records, c->before.n_records + 1);
	} else if (st.n_records != c->before.n_records) {
		CHECK_FAILF("record (id generated): allocation %ld failed, and the store "
			    "went from %" PRIu64 " records to %" PRIu64, run->n,
			    c->before.n_records, st.n_records);
	}
	CHECK(run->rc == ATOLOG_OK || c->out[0] == NULL);
	atolog_interaction_free(c->out[0]);
	c->out[0] = NULL;
	c->next++;
	store_index_wait(c->s);
}

static void test_write(const char *dir)
{
	static const struct {
		atolog_sync_mode mode;
		const char *name;
	} modes[] = {
		{ ATOLOG_SYNC_ALWAYS, "always" },
		{ ATOLOG_SYNC_BATCH, "batch" },
		{ ATOLOG_SYNC_NONE, "none" },
	};
	struct truth t = { 0 };
	char *store = check_path(dir, "store");
	struct write_case c = { .t = &t, .next = BASE_RECORDS };

	base_make(store, &t);
	for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
		char what[64];

		c.s = open_writer_sync(store, modes[m].mode);
		if (!c.s)
			return;
		snprintf(what, sizeof(what), "record (sync %s)", modes[m].name);
		nomem_loop(what, NOMEM_SELF, op_record, after_record, &c, NO_ALSO);
		snprintf(what, sizeof(what), "record, id generated (sync %s)",
			 modes[m].name);
		nomem_loop(what, NOMEM_SELF, op_record_new_id, after_record_new_id, &c,
			   NO_ALSO);
		snprintf(what, sizeof(what), "record_batch (sync %s)", modes[m].name);
		nomem_loop(what, NOMEM_SELF, op_batch, after_batch, &c,
			   ALSO(ATOLOG_INVALID)); /* the first item's: the blank one */
		CHECK_OK(atolog_store_close(c.s), NULL);
	}
	c.s = open_writer(store);
	if (!c.s)
		return;
	nomem_loop("project_add", NOMEM_SELF, op_project, after_project, &c, NO_ALSO);
	nomem_loop("project_resolve", NOMEM_SELF, op_resolve, NULL, &c, NO_ALSO);
	verify_ok(c.s, "after the writes");
	truth_check(c.s, &t, "after the writes");
	CHECK_OK(atolog_store_close(c.s), NULL);
	store_check(store, &t, "reopened after the writes");
	truth_free(&t);
	free(store);
}

/* ------------------------------------------------------------------------
 * Reading: get, list, replay, follow, stats, counts, verify; on the
 * writer's handle and on a read-only one.
 */

struct read_case {
	atolog_store *s;
	struct truth *t;
	const char *id;
	char *want[BASE_RECORDS + 1]; /* the answer, unfailed */
	size_t n_want;
	int kind; /* of iterator */
};

enum { READ_LIST, READ_REPLAY, READ_FOLLOW };

static int op_get(void *ctx)
{
	struct read_case *c = ctx;
	atolog_interaction *got = NULL;
	int rc = atolog_interaction_get(c->s, c->id, &got);

	if (rc == ATOLOG_OK) {
		const struct fact *f = truth_find(c->t, c->id);
		char *json;

		nomem_hold(true);
		json = render(got);
		nomem_hold(false);
		if (!f || !json || strcmp(json, f->json) != 0)
			CHECK_FAILF("get: wrong record %s", json ? json : "?");
		free(json);
	} else {
		CHECK(got == NULL);
	}
	atolog_interaction_free(got);
	return rc;
}

/* The iterators: what they yield must be a prefix of the answer, and
 * all of it when they end. */
static int iter_run(struct read_case *c, size_t *n)
{
	atolog_query q = { .project = "AL", .since = "2026-01-01T10:00:03Z",
			   .limit = 100 };
	const atolog_interaction *rec;
	atolog_iter *it = NULL;
	atolog_follow *feed = NULL;
	int rc;

	*n = 0;
	if (c->kind == READ_LIST)
		rc = atolog_list_open(c->s, &q, &it);
	else if (c->kind == READ_REPLAY)
		rc = atolog_replay_open(c->s, "s1", &it);
	else
		rc = atolog_follow_open(c->s, &(atolog_query){ .session_id = "s2" }, 3,
					&feed);
	if (rc != ATOLOG_OK)
		return rc;
	for (;;) {
		char *json;

		rc = feed ? atolog_follow_next(feed, &rec) : atolog_iter_next(it, &rec);
		if (rc != ATOLOG_OK)
			break;
		nomem_hold(true);
		json = render(rec);
		if (*n >= c->n_want || !json || strcmp(json, c->want[*n]) != 0)
			CHECK_FAILF("iterator %d: item %zu is %s", c->kind, *n,
				    json ? json : "?");
		free(json);
		nomem_hold(false);
		++*n;
	}
	atolog_iter_close(it);
	atolog_follow_close(feed);
	return rc;
}

static int op_iter(void *ctx)
{
	struct read_case *c = ctx;
	size_t n;
	int rc = iter_run(c, &n);

	if (rc == ATOLOG_DONE) {
		if (n != c->n_want)
			CHECK_FAILF("iterator %d: %zu items, want %zu", c->kind, n, c->n_want);
		return ATOLOG_OK;
	}
	return rc;
}

static int op_stats(void *ctx)
{
	struct read_case *c = ctx;
	atolog_stats st;
	int rc = atolog_store_stats(c->s, &st);

	if (rc == ATOLOG_OK)
		CHECK_INT(st.n_records, c->t->n);
	return rc;
}

static int count_one(const char *name, uint64_t count, void *ctx)
{
	(void)name;
	*(uint64_t *)ctx += count;
	return 0;
}

static int op_counts(void *ctx)
{
	struct read_case *c = ctx;
	uint64_t total = 0;
	int rc = atolog_store_counts(c->s, ATOLOG_COUNT_PROJECTS, count_one, &total);

	if (rc == ATOLOG_OK)
		CHECK_INT(total, c->t->n);
	return rc;
}

static int project_one(const atolog_project *p, void *ctx)
{
	(void)p;
	++*(int *)ctx;
	return 0;
}

static int op_projects(void *ctx)
{
	struct read_case *c = ctx;
	int n = 0, rc = atolog_project_foreach(c->s, project_one, &n);

	if (rc == ATOLOG_OK)
		CHECK_INT(n, 1);
	return rc;
}

/* verify: a failure is ENOMEM, never a problem found. */
static int op_verify(void *ctx)
{
	struct read_case *c = ctx;
	atolog_verify_report rep;

	return atolog_store_verify(c->s, NULL, NULL, &rep);
}

static void read_answers(struct read_case *c, int kind)
{
	size_t n = 0;

	for (size_t i = 0; i < c->n_want; i++)
		free(c->want[i]);
	c->n_want = 0;
	c->kind = kind;
	for (size_t i = 0; i < c->t->n; i++) {
		const struct fact *f = &c->t->f[i];
		bool in = kind == READ_LIST ? strcmp(f->project, "alpha") == 0 &&
						      f->created_at >= TIME_BASE + 3000000
			: kind == READ_REPLAY ? strcmp(f->session, "s1") == 0
					      : strcmp(f->session, "s2") == 0 && f->seq > 3;
		if (in)
			c->want[n++] = strdup(f->json);
	}
	c->n_want = n;
	if (kind == READ_LIST) { /* newest first */
		for (size_t i = 0; i < n / 2; i++) {
			char *x = c->want[i];

			c->want[i] = c->want[n - 1 - i];
			c->want[n - 1 - i] = x;
		}
	}
}

static void reads(struct read_case *c, const char *handle)
{
	static const char *const names[] = { "list", "replay", "follow" };
	char what[64];

	qsort(c->t->f, c->t->n, sizeof(*c->t->f), fact_oldest_first);
	c->id = c->t->f[5].id;
	snprintf(what, sizeof(what), "get (%s)", handle);
	nomem_loop(what, NOMEM_SELF, op_get, NULL, c, NO_ALSO);
	for (int k = READ_LIST; k <= READ_FOLLOW; k++) {
		read_answers(c, k);
		CHECK(c->n_want > 2);
		snprintf(what, sizeof(what), "%s (%s)", names[k], handle);
		nomem_loop(what, NOMEM_SELF, op_iter, NULL, c, NO_ALSO);
	}
	snprintf(what, sizeof(what), "stats (%s)", handle);
	nomem_loop(what, NOMEM_SELF, op_stats, NULL, c, NO_ALSO);
	snprintf(what, sizeof(what), "counts (%s)", handle);
	nomem_loop(what, NOMEM_SELF, op_counts, NULL, c, NO_ALSO);
	snprintf(what, sizeof(what), "project_foreach (%s)", handle);
	nomem_loop(what, NOMEM_SELF, op_projects, NULL, c, NO_ALSO);
	snprintf(what, sizeof(what), "verify (%s)", handle);
	nomem_loop(what, NOMEM_SELF, op_verify, NULL, c, NO_ALSO);
}

static void test_read(const char *dir)
{
	struct truth t = { 0 };
	char *store = check_path(dir, "store");
	struct read_case c = { .t = &t };

	base_make(store, &t);
	c.s = open_writer(store);
	if (c.s) {
		reads(&c, "writer");
		CHECK_OK(atolog_store_close(c.s), NULL);
	}
	c.s = open_reader(store);
	if (c.s) {
		reads(&c, "read-only");
		CHECK_OK(atolog_store_close(c.s), NULL);
	}
	for (size_t i = 0; i < c.n_want; i++)
		free(c.want[i]);
	store_check(store, &t, "after the reads");
	truth_free(&t);
	free(store);
}

/* ------------------------------------------------------------------------
 * Snapshots and restores: a failed one leaves no directory behind, not
 * even its work directory; the one that succeeds holds the store.
 */

struct snap_case {
	atolog_store *s;
	const char *dir;  /* where dest is */
	char *dest;
	char *from;       /* restore: the snapshot */
	struct truth *t;
};

static int op_snapshot(void *ctx)
{
	struct snap_case *c = ctx;
	atolog_snapshot_info info = { 0 };
	int rc;

	nomem_hold(true);
	remove_tree(c->dest); /* what an absorbed failure made */
	nomem_hold(false);
	rc = atolog_store_snapshot(c->s, c->dest, NULL, NULL, &info);

	if (rc == ATOLOG_OK)
		CHECK_INT(info.records, c->t->n);
	return rc;
}

static int op_restore(void *ctx)
{
	struct snap_case *c = ctx;

	nomem_hold(true);
	remove_tree(c->dest);
	nomem_hold(false);
	return atolog_snapshot_restore(c->from, c->dest, 0, NULL, NULL);
}

static void after_snap(void *ctx, const struct nomem_run *run)
{
	struct snap_case *c = ctx;
	int tmps = count_entries(c->dir, ".tmp-");

	if (tmps != 0)
		CHECK_FAILF("%s: allocation %ld (%s): %d work directories left", c->dest,
			    run->n, atolog_strerror(run->rc), tmps);
	if (run->rc != ATOLOG_OK && exists(c->dest))
		CHECK_FAILF("%s: allocation %ld failed (%s), and it exists", c->dest,
			    run->n, atolog_strerror(run->rc));
}

static void test_snapshot(const char *dir)
{
	struct truth t = { 0 };
	char *store = check_path(dir, "store"), *snaps = check_path(dir, "snaps");
	char *restored = check_path(dir, "restored");
	struct snap_case c = { .dir = snaps, .t = &t };

	base_make(store, &t);
	CHECK(mkdir(snaps, 0755) == 0);
	c.s = open_writer(store);
	c.dest = check_path(snaps, "from-writer");
	if (c.s) {
		nomem_loop("snapshot (writer)", NOMEM_SELF, op_snapshot, after_snap, &c,
			   NO_ALSO);
		CHECK_OK(atolog_store_close(c.s), NULL);
	}
	free(c.dest);
	c.s = open_reader(store);
	c.dest = check_path(snaps, "from-reader");
	if (c.s) {
		nomem_loop("snapshot (read-only)", NOMEM_SELF, op_snapshot, after_snap, &c,
			   NO_ALSO);
		CHECK_OK(atolog_store_close(c.s), NULL);
	}
	c.from = c.dest;
	c.dest = restored;
	c.dir = dir;
	nomem_loop("snapshot_restore", NOMEM_SELF, op_restore, after_snap, &c, NO_ALSO);
	store_check(c.from, &t, "the snapshot");
	store_check(restored, &t, "the restored store");
	store_check(store, &t, "the store after its snapshots");
	free(c.from);
	free(restored);
	free(snaps);
	free(store);
	truth_free(&t);
}

/* ------------------------------------------------------------------------
 * Compaction: retention of project "beta" and the merge of what is left.
 * Each run starts from a copy of the same store; a failed run leaves it as
 * before, or (past the commit point) as a crash there would, which the
 * next open finishes: as after.
 */

struct compact_case {
	const char *base, *work;
	struct truth *before, after;
	unsigned flags;
	long as_after; /* failed runs that the next open finished */
	long failed_handles; /* failed runs after which the handle refused writes */
	struct truth probe;  /* recorded on the handle after a failed run */
};

static int op_compact(void *ctx)
{
	struct compact_case *c = ctx;
	atolog_compact_options o = { .flags = c->flags, .project = "beta" };
	atolog_compact_report rep = { 0 };
	atolog_store *s;
	int rc;

	nomem_hold(true);
	remove_tree(c->work);
	copy_tree(c->base, c->work);
	s = open_writer(c->work);
	nomem_hold(false);
	if (!s)
		return ATOLOG_INVALID;
	rc = atolog_store_compact(s, &o, &rep);
	nomem_hold(true);
	if (rc == ATOLOG_OK) {
		CHECK_INT(rep.records_removed, c->before->n - c->after.n);
		CHECK_INT(rep.applied, (c->flags & ATOLOG_COMPACT_APPLY) != 0);
	} else {
		CHECK(rep.projects == NULL);
	}
	atolog_compact_report_free(&rep);
	/* A failed compaction leaves a handle that still writes, unless it
	 * failed for good (ATOLOG_FAILED: only a reopen can tell the state). */
	truth_free(&c->probe);
	if (rc != ATOLOG_OK) {
		struct input x;
		atolog_interaction *out = NULL;
		int r;

		input_make(&x, 3000);
		r = atolog_interaction_record(s, &x.in, &out);
		if (r == ATOLOG_OK)
			truth_add(&c->probe, out);
		else if (r == ATOLOG_FAILED)
			c->failed_handles++;
		else
			CHECK_FAILF("compact: after a failed run (%s) a record answered %s",
				    atolog_strerror(rc), atolog_strerror(r));
		atolog_interaction_free(out);
	}
	CHECK(atolog_store_close(s) == ATOLOG_OK || rc != ATOLOG_OK);
	nomem_hold(false);
	return rc;
}

/* The store as the next open finds it: as before or as after. */
static void after_compact(void *ctx, const struct nomem_run *run)
{
	struct compact_case *c = ctx;
	atolog_store *s = open_writer(c->work);
	atolog_stats st;
	struct truth *want;

	if (!s)
		return;
	verify_ok(s, "compact");
	CHECK_OK(atolog_store_stats(s, &st), s);
	if (run->rc != ATOLOG_OK && st.n_records - c->probe.n == c->after.n &&
	    (c->flags & ATOLOG_COMPACT_APPLY))
		c->as_after++;
	want = run->rc == ATOLOG_OK && (c->flags & ATOLOG_COMPACT_APPLY) ? &c->after
	       : st.n_records - c->probe.n == c->after.n &&
				 (c->flags & ATOLOG_COMPACT_APPLY)
		       ? &c->after
		       : c->before;
	{
		struct truth all = { 0 };

		truth_join(&all, want);
		truth_join(&all, &c->probe);
		truth_check(s, &all, "compact");
		truth_free(&all);
	}
	CHECK_OK(atolog_store_close(s), NULL);
}

static void test_compact(const char *dir)
{
	struct truth t = { 0 };
	char *base = check_path(dir, "base"), *work = check_path(dir, "work");
	struct compact_case c = { .base = base, .work = work, .before = &t };

	base_make(base, &t);
	for (size_t i = 0; i < t.n; i++) {
		if (strcmp(t.f[i].project, "beta") != 0)
			truth_join(&c.after, &(struct truth){ .f = &t.f[i], .n = 1 });
	}
	CHECK(c.after.n < t.n);
	c.flags = ATOLOG_COMPACT_PROJECT;
	nomem_loop("compact (dry run)", NOMEM_SELF, op_compact, after_compact, &c,
		   NO_ALSO);
	c.flags = ATOLOG_COMPACT_APPLY | ATOLOG_COMPACT_PROJECT;
	nomem_loop("compact", NOMEM_SELF, op_compact, after_compact, &c,
		   ALSO(ATOLOG_FAILED));
	fprintf(stderr, "test_nomem: compact: of the failed runs, %ld were finished "
		"by the next open, %ld left the handle failed for good\n", c.as_after,
		c.failed_handles);
	truth_free(&c.probe);
	truth_free(&c.after);
	truth_free(&t);
	free(base);
	free(work);
}

/* ------------------------------------------------------------------------
 * Opening and closing. The starting store has a tail: records a writer
 * acknowledged and died (_exit) before indexing. Each run opens a fresh
 * copy of it: a writer catching the index up, a writer rebuilding the
 * index, a read-only handle serving the tail from the log. A failed open
 * changes nothing a later open would see; the one that succeeds serves
 * every record.
 */

#define TAIL_RECORDS 3

/* In a child: the tail, acknowledged and never indexed; the records as
 * stored go to the file acked, one JSON line each. */
static void tail_make(const char *dir, const char *acked)
{
	pid_t pid = fork();
	int status = 0;

	if (pid == 0) {
		atolog_store *s = open_writer(dir);
		FILE *f = fopen(acked, "w");

		if (!s || !f)
			_exit(2);
		store_pause_index(s, true);
		for (long k = 0; k < TAIL_RECORDS; k++) {
			struct input x;
			atolog_interaction *out = NULL;
			char *json;

			input_make(&x, 1000 + k);
			if (atolog_interaction_record(s, &x.in, &out) != ATOLOG_OK)
				_exit(3);
			json = render(out);
			fprintf(f, "%s %" PRIu64 "\n", json, out->seq);
			free(json);
			atolog_interaction_free(out);
		}
		fclose(f);
		_exit(check_failures ? 4 : 0); /* no close: nothing indexed */
	}
	CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* Adds the records tail_make acknowledged to t. */
static void tail_truth(const char *acked, struct truth *t)
{
	FILE *f = fopen(acked, "r");
	char line[4096];
	long k = 0;

	CHECK(f != NULL);
	while (f && fgets(line, sizeof(line), f)) {
		char *space = strrchr(line, ' ');
		struct input x;
		struct fact *last;

		if (!space)
			continue;
		*space = '\0';
		input_make(&x, 1000 + k++);
		truth_add(t, &x.in);
		last = &t->f[t->n - 1];
		last->seq = strtoull(space + 1, NULL, 10);
		free(last->json);
		last->json = strdup(line);
	}
	if (f)
		fclose(f);
	CHECK_INT(k, TAIL_RECORDS);
}

struct open_case {
	const char *base, *work;
	struct truth *t;
	unsigned flags;
	atolog_store *s;
	int rc;
};

static int op_open(void *ctx)
{
	struct open_case *c = ctx;
	atolog_options o = { .flags = c->flags, .segment_size = SEGMENT };
	atolog_store *s = NULL;
	int rc;

	nomem_hold(true);
	remove_tree(c->work);
	copy_tree(c->base, c->work);
	nomem_hold(false);
	rc = atolog_store_open(c->work, &o, &s);
	if (rc == ATOLOG_OK) {
		nomem_hold(true);
		if (!(c->flags & ATOLOG_OPEN_READONLY))
			verify_ok(s, "the store opened");
		truth_check(s, c->t, "the store opened");
		CHECK_OK(atolog_store_close(s), NULL);
		nomem_hold(false);
	} else if (s) {
		CHECK_FAILF("open failed (%s) and gave a handle", atolog_strerror(rc));
	}
	return rc;
}

/* After a failed open: the next one (a plain writer) finds everything. */
static void after_open(void *ctx, const struct nomem_run *run)
{
	struct open_case *c = ctx;

	char what[96];

	snprintf(what, sizeof(what), "reopened after open failed at allocation %ld",
		 run->n);
	if (run->rc != ATOLOG_OK)
		store_check(c->work, c->t, what);
}

struct close_case {
	const char *base, *work;
	struct truth *t;
	atolog_store *s;
};

static int op_close(void *ctx)
{
	struct close_case *c = ctx;

	nomem_hold(true);
	remove_tree(c->work);
	copy_tree(c->base, c->work);
	c->s = open_writer(c->work);
	nomem_hold(false);
	return c->s ? atolog_store_close(c->s) : ATOLOG_INVALID;
}

static void after_close(void *ctx, const struct nomem_run *run)
{
	struct close_case *c = ctx;

	(void)run;
	store_check(c->work, c->t, "reopened after a close");
}

/* The first open of a directory makes the store: a failed one leaves at
 * most what a crash there would (no index, or one not set up, which
 * readers refuse), and the next writer open makes it whole. */
static int op_create(void *ctx)
{
	struct close_case *c = ctx;
	atolog_store *s = NULL;
	atolog_options o = { .segment_size = SEGMENT };
	int rc;

	nomem_hold(true);
	remove_tree(c->work);
	nomem_hold(false);
	rc = atolog_store_open(c->work, &o, &s);
	if (rc == ATOLOG_OK) {
		nomem_hold(true);
		verify_ok(s, "a new store");
		CHECK_OK(atolog_store_close(s), NULL);
		nomem_hold(false);
	}
	return rc;
}

static void after_create(void *ctx, const struct nomem_run *run)
{
	struct close_case *c = ctx;
	struct truth none = { 0 };

	if (run->rc != ATOLOG_OK)
		store_check(c->work, &none, "a store made after a failed first open");
}

static void test_open(const char *dir)
{
	struct truth t = { 0 };
	char *base = check_path(dir, "base"), *work = check_path(dir, "work");
	char *acked = check_path(dir, "acked");
	char *clean = check_path(dir, "clean");
	struct open_case c = { .base = base, .work = work, .t = &t };
	struct close_case cc = { .base = clean, .work = work, .t = &t };

	base_make(base, &t);
	copy_tree(base, clean);
	tail_make(base, acked);
	tail_truth(acked, &t);
	nomem_loop("open (creating a store)", NOMEM_SELF, op_create, after_create, &cc,
		   NO_ALSO);
	c.flags = ATOLOG_OPEN_READONLY;
	nomem_loop("open (read-only, serving a tail)", NOMEM_SELF, op_open, after_open,
		   &c, NO_ALSO);
	c.flags = 0;
	nomem_loop("open (indexing a tail)", NOMEM_SELF, op_open, after_open, &c,
		   NO_ALSO);
	c.flags = ATOLOG_OPEN_REBUILD_INDEX;
	nomem_loop("open (rebuilding the index)", NOMEM_SELF, op_open, after_open, &c,
		   NO_ALSO);
	/* The clean store (no tail) for close. */
	t.n -= TAIL_RECORDS;
	for (size_t i = 0; i < TAIL_RECORDS; i++)
		free(t.f[t.n + i].json);
	qsort(t.f, t.n, sizeof(*t.f), fact_oldest_first);
	nomem_loop("close", NOMEM_SELF, op_close, after_close, &cc, NO_ALSO);
	truth_free(&t);
	free(base);
	free(work);
	free(acked);
	free(clean);
}

/* ------------------------------------------------------------------------
 * The index thread: its allocations fail (NOMEM_OTHERS) while the caller
 * records one interaction after another. A failed index transaction fails
 * the handle (later writes: ATOLOG_FAILED); every record acknowledged is
 * in the log, and the reopen indexes it.
 */

#define INDEXED_RECORDS 4

struct index_case {
	const char *base, *work;
	struct truth *t;
	struct truth acked; /* by the run */
	bool registered;    /* "g" was acknowledged as an alias of "gamma" */
	long failed_handles;
};

static int op_index_thread(void *ctx)
{
	struct index_case *c = ctx;
	atolog_store *s;
	int rc = ATOLOG_OK, close_rc;

	nomem_hold(true);
	remove_tree(c->work);
	copy_tree(c->base, c->work);
	truth_free(&c->acked);
	truth_join(&c->acked, c->t);
	nomem_hold(false);
	/* This thread's own calls do not count (NOMEM_OTHERS): the open,
	 * the records and the close run whole; the index thread is aimed at. */
	s = open_writer(c->work);
	if (!s)
		return ATOLOG_INVALID;
	for (long k = 0; k < INDEXED_RECORDS; k++) {
		struct input x;
		atolog_interaction *out = NULL;
		int r;

		input_make(&x, 2000 + k);
		r = atolog_interaction_record(s, &x.in, &out);
		if (r == ATOLOG_OK)
			truth_add(&c->acked, out);
		else if (r != ATOLOG_FAILED)
			CHECK_FAILF("index thread: record answered %d (%s)", r,
				    atolog_strerror(r));
		else
			rc = r;
		atolog_interaction_free(out);
		store_index_wait(s); /* one index transaction per record */
		if (k == 1) {
			/* A registration returns once indexed: it waits on the
			 * index thread, and is told its failure. */
			r = atolog_project_add(s, "gamma", (const char *[]){ "g" }, 1);
			c->registered = r == ATOLOG_OK;
			if (r != ATOLOG_OK && r != ATOLOG_FAILED)
				CHECK_FAILF("index thread: project_add answered %d (%s)", r,
					    atolog_strerror(r));
		}
	}
	close_rc = atolog_store_close(s);
	if (close_rc != ATOLOG_OK && !nomem_fired())
		CHECK_FAILF("index thread: close answered %d (%s) with no failure",
			    close_rc, atolog_strerror(close_rc));
	if (rc == ATOLOG_OK)
		rc = close_rc;
	if (rc == ATOLOG_FAILED)
		c->failed_handles++;
	return rc;
}

/* Everything acknowledged is there once reopened. */
static void after_index_thread(void *ctx, const struct nomem_run *run)
{
	struct index_case *c = ctx;
	atolog_store *s;
	char *got = NULL;

	(void)run;
	store_check(c->work, &c->acked, "reopened after the index thread");
	/* Acknowledged, it is there; ATOLOG_FAILED says it is in doubt (in
	 * the log, so the reopen indexes it). */
	s = open_reader(c->work);
	if (s) {
		CHECK_OK(atolog_project_resolve(s, "g", &got), s);
		if (c->registered && got && strcmp(got, "gamma") != 0)
			CHECK_FAILF("index thread: allocation %ld: the registration "
				    "acknowledged is lost", run->n);
		free(got);
	}
	atolog_store_close(s);
}

static void test_index_thread(const char *dir)
{
	struct truth t = { 0 };
	char *base = check_path(dir, "base"), *work = check_path(dir, "work");
	struct index_case c = { .base = base, .work = work, .t = &t };

	base_make(base, &t);
	nomem_loop("the index thread", NOMEM_OTHERS, op_index_thread,
		   after_index_thread, &c, ALSO(ATOLOG_FAILED));
	fprintf(stderr, "test_nomem: the index thread: %ld runs failed the handle\n",
		c.failed_handles);
	truth_free(&c.acked);
	truth_free(&t);
	free(base);
	free(work);
}

/* ------------------------------------------------------------------------
 * The CLI's export and import, through atolog_nomem (the CLI linked with
 * the failing allocator): ATOLOG_NOMEM_FAIL=n fails allocation n of its
 * main thread, and it tells on stderr whether that was reached. A failed
 * export exits 3 with a message, having printed a prefix of the export;
 * a failed import exits 3 with a message, and leaves a store that
 * verifies and holds only records of the file (a second import adds the
 * rest: import skips what is there).
 */

#define CLI_RECORDS 4     /* few: each run is a process */
#define CLI_RETRY_EVERY 8 /* failed imports followed by a second one */

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0;

	if (f) {
		fseek(f, 0, SEEK_END);
		len = (size_t)ftell(f);
		rewind(f);
	}
	buf = calloc(1, len + 1);
	if (f && buf && fread(buf, 1, len, f) != len)
		buf[0] = '\0';
	if (f)
		fclose(f);
	return buf;
}

/* Runs atolog_nomem --data dir args with allocation n failing (n < 0:
 * none); stdout and stderr go to the files. Returns the exit status, -1
 * on a signal; *fired says whether allocation n was reached. The child's
 * allocations are added to the run's count when counted (the run under
 * test, not a check after it). */
static int cli_run(long n, bool counted, const char *dir, const char *args,
		   const char *out, const char *err, bool *fired)
{
	char cmd[8192];
	char *text, *verdict;
	long count = 0;
	int status;

	snprintf(cmd, sizeof(cmd), "ATOLOG_NOMEM_FAIL=%ld %s --data %s %s >%s 2>%s",
		 n < 0 ? LONG_MAX : n, cli_nomem, dir, args, out, err);
	status = system(cmd);
	text = slurp(err);
	verdict = text ? strstr(text, "atolog_nomem: ") : NULL;
	*fired = verdict && strstr(verdict, ": fired") == verdict + 12;
	if (!verdict ||
	    (*fired ? sscanf(verdict, "atolog_nomem: fired at %*d of %ld", &count)
		    : sscanf(verdict, "atolog_nomem: not reached (%ld)", &count)) != 1)
		CHECK_FAILF("%s: allocation %ld: no verdict from atolog_nomem: %s", args, n,
			    text ? text : "?");
	else if (counted)
		nomem_count_add(count); /* the child's allocations are the run's */
	free(text);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Whether text is a prefix of whole, ending at a line's end. */
static bool line_prefix(const char *text, const char *whole)
{
	size_t n = strlen(text);

	return strncmp(text, whole, n) == 0 && (n == 0 || text[n - 1] == '\n');
}

/* A line of an export with its seq cut off (an import numbers anew). */
static void strip_seq(char *text)
{
	char *p;

	while ((p = strstr(text, ",\"seq\":")) != NULL) {
		char *end = strchr(p, '}');

		if (!end)
			break;
		memmove(p, end, strlen(end) + 1);
	}
}

struct cli_case {
	const char *dir, *work, *file, *out, *err;
	char *want;          /* the whole export */
	char *want_noseq;    /* the same without seq */
};

static int op_cli_export(void *ctx)
{
	struct cli_case *c = ctx;
	bool fired;
	int status, rc = ATOLOG_OK;
	char *out, *err;

	nomem_hold(true); /* the failure is the child's: nothing here counts */
	status = cli_run(nomem_target(), true, c->dir, "export", c->out, c->err, &fired);
	out = slurp(c->out);
	err = slurp(c->err);

	if (status == 0 && (!out || strcmp(out, c->want) != 0))
		CHECK_FAILF("export: allocation %ld: exit 0 with another export",
			    nomem_target());
	if (status != 0 && (status != 3 || !strstr(err, "atolog: ")))
		CHECK_FAILF("export: allocation %ld: exit %d: %s", nomem_target(),
			    status, err ? err : "");
	if (status != 0 && out && !line_prefix(out, c->want))
		CHECK_FAILF("export: allocation %ld: printed what is not a prefix of "
			    "the export", nomem_target());
	if (fired)
		nomem_fire();
	if (status != 0)
		rc = ENOMEM;
	free(out);
	free(err);
	nomem_hold(false);
	return rc;
}

/* The store of an import (read in this process): it verifies, holds only
 * records of the file (their JSON as exported, but for seq) and, when
 * whole, all of them and the registration. */
static long import_check(const struct cli_case *c, long n, bool whole)
{
	atolog_query q = { .limit = LONG_MAX, .oldest_first = 1 };
	const atolog_interaction *rec;
	atolog_store *s;
	atolog_iter *it = NULL;
	char *alias = NULL;
	long count = 0;
	int rc;

	if (check_verify_dir(c->work) != ATOLOG_OK)
		CHECK_FAILF("import: allocation %ld: the store does not verify", n);
	s = open_reader(c->work);
	if (!s)
		return 0;
	CHECK_OK(atolog_list_open(s, &q, &it), s);
	while (it && (rc = atolog_iter_next(it, &rec)) == ATOLOG_OK) {
		char *json = render(rec);

		strip_seq(json);
		if (!strstr(c->want_noseq, json))
			CHECK_FAILF("import: allocation %ld: the store holds %s, not in the "
				    "file", n, json);
		free(json);
		count++;
	}
	atolog_iter_close(it);
	CHECK_OK(atolog_project_resolve(s, "al", &alias), s);
	if (whole && (count != CLI_RECORDS || !alias || strcmp(alias, "alpha") != 0))
		CHECK_FAILF("import: allocation %ld: %ld records (want %d), \"al\" is \"%s\"",
			    n, count, CLI_RECORDS, alias ? alias : "?");
	free(alias);
	CHECK_OK(atolog_store_close(s), NULL);
	return count;
}

/* Whether a reader opens dir. A failed first open may leave a store not
 * made yet (no index, or one not set up: what a crash there leaves, and
 * the next writer open makes it); anything else must open. */
static bool reader_opens(const char *dir, long n)
{
	atolog_options o = { .flags = ATOLOG_OPEN_READONLY };
	atolog_store *s = NULL;
	int rc = atolog_store_open(dir, &o, &s);

	if (rc == ATOLOG_OK) {
		atolog_store_close(s);
		return true;
	}
	if (rc != ATOLOG_NOTFOUND && rc != ATOLOG_VERSION)
		CHECK_FAILF("import: allocation %ld: the store left does not open: %s", n,
			    atolog_errmsg(NULL));
	return false;
}

static int op_cli_import(void *ctx)
{
	struct cli_case *c = ctx;
	char args[PATH_MAX + 16];
	long n = nomem_target();
	bool fired, again;
	int status;
	char *err;

	nomem_hold(true); /* the failure is the child's: nothing here counts */
	remove_tree(c->work);
	snprintf(args, sizeof(args), "import %s", c->file);
	status = cli_run(n, true, c->work, args, c->out, c->err, &fired);
	err = slurp(c->err);
	if (status != 0 && (status != 3 || !strstr(err, "atolog: ")))
		CHECK_FAILF("import: allocation %ld: exit %d: %s", n, status, err ? err : "");
	free(err);
	if (status == 0) {
		import_check(c, n, true);
	} else {
		/* Only lines of the file are stored, and a second import,
		 * unfailed, adds the rest: tried every CLI_RETRY_EVERY runs
		 * (each is a process) and after any that stored something. */
		bool some = exists(c->work) && reader_opens(c->work, n) &&
			    import_check(c, n, false) > 0;

		if (some || n % CLI_RETRY_EVERY == 0) {
			CHECK_INT(cli_run(-1, false, c->work, args, c->out, c->err, &again), 0);
			import_check(c, n, true);
		}
	}
	if (fired)
		nomem_fire();
	nomem_hold(false);
	return status == 0 ? ATOLOG_OK : ENOMEM;
}

static void test_cli(const char *dir)
{
	char *store, *work, *file, *out, *err;
	struct cli_case c;
	const char *aliases[] = { "al" };
	struct truth t = { 0 };
	atolog_store *s;
	bool fired;

	if (!cli_nomem) {
		fprintf(stderr, "test_nomem: ATOLOG_CLI_NOMEM is not set: no CLI runs\n");
		return;
	}
	store = check_path(dir, "store");
	work = check_path(dir, "work");
	file = check_path(dir, "export.jsonl");
	out = check_path(dir, "out");
	err = check_path(dir, "err");
	c = (struct cli_case){ .dir = store, .work = work, .file = file, .out = out,
			       .err = err };
	s = open_writer(store);
	if (!s)
		return;
	CHECK_OK(atolog_project_add(s, "alpha", aliases, 1), s);
	for (long k = 0; k < CLI_RECORDS; k++) {
		struct input x;
		atolog_interaction *out_rec = NULL;

		input_make(&x, k);
		CHECK_OK(atolog_interaction_record(s, &x.in, &out_rec), s);
		if (out_rec)
			truth_add(&t, out_rec);
		atolog_interaction_free(out_rec);
	}
	CHECK_OK(atolog_store_close(s), NULL);
	CHECK_INT(cli_run(-1, false, store, "export", file, err, &fired), 0);
	c.want = slurp(file);
	c.want_noseq = strdup(c.want);
	strip_seq(c.want_noseq);
	CHECK(c.want && strstr(c.want, "\"registry\""));
	nomem_loop("atolog export", NOMEM_SELF, op_cli_export, NULL, &c, NO_ALSO);
	store_check(store, &t, "the store after the exports");
	nomem_loop("atolog import", NOMEM_SELF, op_cli_import, NULL, &c, NO_ALSO);
	free(c.want);
	free(c.want_noseq);
	truth_free(&t);
	free(store);
	free(work);
	free(file);
	free(out);
	free(err);
}

/* ------------------------------------------------------------------------
 * The main.
 */

int main(int argc, char **argv)
{
	static const struct check_case cases[] = {
		{ "json", test_json },
		{ "json_array", test_json_array },
		{ "write", test_write },
		{ "read", test_read },
		{ "snapshot", test_snapshot },
		{ "compact", test_compact },
		{ "open", test_open },
		{ "index_thread", test_index_thread },
		{ "cli", test_cli },
	};

	check_args(argc, argv);
	struct stat st;

	cli_nomem = getenv("ATOLOG_CLI_NOMEM");
	/* Thousands of stores are made and opened: on a disk their fsyncs
	 * would take most of the time, and they are not what is tested. */
	if (!getenv("TMPDIR") && stat(NOMEM_TMPFS, &st) == 0 && S_ISDIR(st.st_mode) &&
	    access(NOMEM_TMPFS, W_OK) == 0)
		setenv("TMPDIR", NOMEM_TMPFS, 0);
	return check_run_cases("test_nomem", cases, sizeof(cases) / sizeof(cases[0]));
}
