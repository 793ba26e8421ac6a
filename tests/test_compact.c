/*
 * test_compact.c - atolog_store_compact: merging and retention against the
 * naive model, every crash point, racing writers and readers, and readers
 * in other processes holding old segments.
 *
 * After each compaction every query of every filter combination, every
 * replay and every get must match the model exactly, with the records
 * retention removed gone from all of them, again after a reopen and after
 * the index is rebuilt from the log. A compaction stopped at any step (a
 * child process _exits there: a crash) leaves, after the next open, the
 * store exactly as before (up to the commit point) or exactly as after.
 *
 * One store handle per process (LMDB's locks are per process): readers
 * of another process are forked children.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include <xxhash.h>

#include "check.h"
#include "engine.h"
#include "model.h"

#define SMALL_SEGMENT 16384 /* a few dozen records a segment */
#define TIME_BASE INT64_C(1767225600000000) /* 2026-01-01T00:00:00Z */
#define DAY_US INT64_C(86400000000)
#define N_DAYS 200

static const char *const projects[] = { "alpha", "beta", "gamma", "" };
static const char *const clients[] = { "openclaw", "claude-code", "manual" };

static atolog_options small_opts(void)
{
	return (atolog_options){ .sync = ATOLOG_SYNC_NONE, .segment_size = SMALL_SEGMENT };
}

static void register_projects(atolog_store *s)
{
	static const char *const alpha[] = { "A", "Alpha-Old" };

	CHECK_OK(atolog_project_add(s, "alpha", alpha, 2), s);
}

/* One interaction of project p at second of day, in session s%02u and
 * client number c; tag makes prompts of several writers distinct. */
static void record_at(atolog_store *s, struct model *m, const char *project,
		      int day, unsigned second, unsigned session_no,
		      unsigned client_no, unsigned tag)
{
	atolog_interaction in = { 0 }, *out = NULL;
	char prompt[64], session[16];

	snprintf(prompt, sizeof(prompt), "prompt %u.%zu", tag, m->n);
	snprintf(session, sizeof(session), "s%02u", session_no % 12);
	in.prompt = prompt;
	in.project = project;
	in.session_id = session;
	in.client = clients[client_no % 3];
	in.has_created_at = 1;
	in.created_at = TIME_BASE + day * DAY_US + (int64_t)(second % 86400) * 1000000;
	in.context_pack = "{\"k\":[1,2]}";
	CHECK_OK(atolog_interaction_record(s, &in, &out), s);
	if (out)
		model_add(m, out);
	atolog_interaction_free(out);
}

/* One interaction of project p on day (a random second, session, client). */
static void record_one(atolog_store *s, struct model *m, const char *project,
		       int day)
{
	record_at(s, m, project, day, (unsigned)check_rand_below(86400),
		  (unsigned)check_rand_below(12), (unsigned)check_rand_below(3), 0);
}

static void record_random(atolog_store *s, struct model *m, size_t n)
{
	for (size_t i = 0; i < n; i++)
		record_one(s, m, projects[check_rand_below(4)],
			   (int)check_rand_below(N_DAYS));
}

/* What retention leaves of the model. */
static void model_retain(struct model *m, const char *project, bool by_time,
			 int64_t before)
{
	size_t kept = 0;

	for (size_t i = 0; i < m->n; i++) {
		const struct model_rec *r = &m->recs[i];
		bool gone = (project || by_time) &&
			    (!project || strcmp(r->project, project) == 0) &&
			    (!by_time || r->created_at < before);

		if (!gone)
			m->recs[kept++] = *r;
	}
	m->n = kept;
}

static void model_copy(struct model *to, const struct model *from)
{
	to->recs = malloc((from->n + 1) * sizeof(*to->recs));
	if (!to->recs)
		abort();
	memcpy(to->recs, from->recs, from->n * sizeof(*to->recs));
	to->n = to->cap = from->n;
}

static void model_copy_rec(struct model *to, const struct model_rec *r)
{
	if (to->n == to->cap) {
		to->cap = to->cap * 2 + 16;
		to->recs = realloc(to->recs, to->cap * sizeof(*to->recs));
		if (!to->recs)
			abort();
	}
	to->recs[to->n++] = *r;
}

static size_t model_count(const struct model *m, const char *project, int64_t before)
{
	size_t n = 0;

	for (size_t i = 0; i < m->n; i++)
		n += (!project || strcmp(m->recs[i].project, project) == 0) &&
		     m->recs[i].created_at < before;
	return n;
}

/* Every query shape, every replay, every get: exactly the model. */
static void check_against_model(atolog_store *s, const struct model *m)
{
	static const char *const given[] = { "alpha", "A", "beta", "gamma", NULL };
	static const char *const canon[] = { "alpha", "alpha", "beta", "gamma", NULL };

	for (int i = 0; i < 60; i++) {
		struct model_query q = { .since = INT64_MIN, .limit = LONG_MAX };
		size_t p = check_rand_below(5);

		q.project_given = given[p];
		q.project = canon[p];
		if (check_rand_below(3) == 0)
			q.client = clients[check_rand_below(3)];
		if (check_rand_below(3) == 0) {
			static char session[16];

			snprintf(session, sizeof(session), "s%02u",
				 (unsigned)check_rand_below(12));
			q.session = session;
		}
		if (check_rand_below(2) == 0)
			model_random_since(&q, TIME_BASE + (int64_t)check_rand_below(N_DAYS) * DAY_US);
		if (check_rand_below(2) == 0)
			q.limit = 1 + (long)check_rand_below(80);
		model_check_query(s, m, &q);
	}
	for (unsigned i = 0; i < 12; i++) {
		char session[16];

		snprintf(session, sizeof(session), "s%02u", i);
		model_check_replay(s, m, session);
	}
	for (size_t i = 0; i < m->n; i += 1 + m->n / 200)
		model_check_get(s, &m->recs[i]);
}

static size_t count_files(const char *dir, const char *suffix)
{
	char *seg = check_path(dir, "segments");
	DIR *d = opendir(seg);
	struct dirent *de;
	size_t n = 0, ls = strlen(suffix);

	while (d && (de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);

		n += len > ls && strcmp(de->d_name + len - ls, suffix) == 0 &&
		     (strcmp(suffix, ".seg") != 0 || len == SEGMENT_NAME_LEN);
	}
	if (d)
		closedir(d);
	free(seg);
	return n;
}

static bool journal_exists(const char *dir)
{
	char *p = check_path(dir, COMPACT_JOURNAL_FILE);
	bool yes = access(p, F_OK) == 0;

	free(p);
	return yes;
}

static int compact(atolog_store *s, unsigned flags, const char *project,
		   int64_t before, atolog_compact_report *r)
{
	atolog_compact_options o = { .flags = flags, .project = project,
				     .before = before };

	return atolog_store_compact(s, &o, r);
}

static void check_verify(atolog_store *s)
{
	atolog_verify_report v;

	CHECK_OK(atolog_store_verify(s, NULL, NULL, &v), s);
}

/* ------------------------------------------------------------------------
 * Merging and retention against the model.
 */

static void test_retention_model(const char *dir)
{
	atolog_options o = small_opts();
	atolog_compact_report r;
	struct model m = { 0 };
	atolog_store *s;
	size_t segs_before, want;
	int64_t cutoff = TIME_BASE + 60 * DAY_US;

	CHECK_OK(atolog_store_open(dir, &o, &s), NULL);
	register_projects(s);
	record_random(s, &m, 1500);

	/* A dry run says what would go, and changes nothing. */
	segs_before = count_files(dir, ".seg");
	want = model_count(&m, NULL, cutoff);
	CHECK_OK(compact(s, ATOLOG_COMPACT_BEFORE, NULL, cutoff, &r), s);
	CHECK_INT(r.applied, 0);
	CHECK_INT(r.records_removed, want);
	CHECK(r.segments_in > 1);
	CHECK_INT(r.n_projects, 4);
	for (size_t i = 0; i < r.n_projects; i++)
		CHECK_INT(r.projects[i].records,
			  model_count(&m, r.projects[i].project, cutoff));
	atolog_compact_report_free(&r);
	CHECK_INT(count_files(dir, ".seg"), segs_before);
	check_against_model(s, &m);

	/* By project, through an alias: every record of alpha goes. */
	want = model_count(&m, "alpha", INT64_MAX);
	CHECK_OK(compact(s, ATOLOG_COMPACT_APPLY | ATOLOG_COMPACT_PROJECT, "A", 0, &r), s);
	CHECK_INT(r.applied, 1);
	CHECK_INT(r.records_removed, want);
	CHECK_INT(r.n_projects, 1);
	CHECK(r.n_projects == 1 && strcmp(r.projects[0].project, "alpha") == 0);
	CHECK(r.segments_out < r.segments_in);
	atolog_compact_report_free(&r);
	model_retain(&m, "alpha", false, 0);
	check_against_model(s, &m);
	CHECK(!journal_exists(dir));
	CHECK_INT(count_files(dir, ".seg.tmp"), 0);

	/* Records written after it land behind the old ones it moved. */
	record_random(s, &m, 300);
	check_against_model(s, &m);

	/* By age. */
	want = model_count(&m, NULL, cutoff);
	CHECK_OK(compact(s, ATOLOG_COMPACT_APPLY | ATOLOG_COMPACT_BEFORE, NULL,
			 cutoff, &r), s);
	CHECK_INT(r.records_removed, want);
	atolog_compact_report_free(&r);
	model_retain(&m, NULL, true, cutoff);
	check_against_model(s, &m);

	/* Both clauses at once: only beta's old records. */
	cutoff += 60 * DAY_US;
	want = model_count(&m, "beta", cutoff);
	CHECK_OK(compact(s, ATOLOG_COMPACT_APPLY | ATOLOG_COMPACT_BEFORE |
				    ATOLOG_COMPACT_PROJECT, "beta", cutoff, &r), s);
	CHECK_INT(r.records_removed, want);
	atolog_compact_report_free(&r);
	model_retain(&m, "beta", true, cutoff);
	check_against_model(s, &m);

	/* Merging alone: reopened with segments four times as large, every
	 * old one is small, and they merge. */
	record_random(s, &m, 400);
	CHECK_OK(atolog_store_close(s), NULL);
	o.segment_size *= 4;
	CHECK_OK(atolog_store_open(dir, &o, &s), NULL);
	segs_before = count_files(dir, ".seg");
	CHECK_OK(compact(s, ATOLOG_COMPACT_APPLY, NULL, 0, &r), s);
	CHECK_INT(r.records_removed, 0);
	CHECK(r.records_moved > 0);
	atolog_compact_report_free(&r);
	CHECK(count_files(dir, ".seg") < segs_before);
	check_against_model(s, &m);
	check_verify(s);
	CHECK_OK(atolog_store_close(s), NULL);

	/* Reopened, then rebuilt from the log alone. */
	CHECK_OK(atolog_store_open(dir, &o, &s), NULL);
	check_against_model(s, &m);
	CHECK_OK(atolog_store_close(s), NULL);
	check_remove_index(dir);
	CHECK_OK(atolog_store_open(dir, &o, &s), NULL);
	check_against_model(s, &m);
	check_verify(s);
	CHECK_OK(atolog_store_close(s), NULL);
	model_free(&m);
}

/* Removing the newest records never lets their numbers be given again,
 * even when the index is rebuilt from the log that no longer holds them. */
static void test_seq_high_water(const char *dir)
{
	atolog_options o = small_opts();
	atolog_compact_report r;
	struct model m = { 0 };
	atolog_store *s;
	uint64_t highest = 0;

	CHECK_OK(atolog_store_open(dir, &o, &s), NULL);
	register_projects(s);
	record_random(s, &m, 300);
	for (int i = 0; i < 50; i++)
		record_one(s, &m, "newest", 1);
	for (size_t i = 0; i < m.n; i++)
		highest = m.recs[i].seq > highest ? m.recs[i].seq : highest;
	CHECK_OK(compact(s, ATOLOG_COMPACT_APPLY | ATOLOG_COMPACT_PROJECT, "newest",
			 0, &r), s);
	CHECK_INT(r.records_removed, 50);
	atolog_compact_report_free(&r);
	CHECK_OK(atolog_store_close(s), NULL);
	check_remove_index(dir);
	CHECK_OK(atolog_store_open(dir, &o, &s), NULL);
	model_retain(&m, "newest", false, 0);
	record_one(s, &m, "beta", 2);
	CHECK(m.recs[m.n - 1].seq > highest);
	check_against_model(s, &m);
	CHECK_OK(atolog_store_close(s), NULL);
	model_free(&m);
}

/* A damaged input stops the compaction before anything changed, naming
 * segment and offset. */
static void test_corrupt_input(const char *dir)
{
	atolog_options o = small_opts();
	atolog_compact_report r;
	struct model m = { 0 };
	atolog_store *s;
	char *seg;

	CHECK_OK(atolog_store_open(dir, &o, &s), NULL);
	register_projects(s);
	record_random(s, &m, 400);
	CHECK_OK(atolog_store_close(s), NULL);
	seg = check_path(dir, "segments/0000000000000002.seg");
	check_flip_byte(seg, 200);
	o.segment_size *= 4; /* every old segment is small now */
	CHECK_OK(atolog_store_open(dir, &o, &s), NULL); /* sealed: not rescanned */
	CHECK_RC(compact(s, ATOLOG_COMPACT_APPLY, NULL, 0, &r), ATOLOG_CORRUPT, s);
	CHECK_MSG(s, "segment 0000000000000002 offset");
	CHECK(!journal_exists(dir));
	CHECK_INT(count_files(dir, ".seg.tmp"), 0);
	check_flip_byte(seg, 200); /* mended: all there, as before */
	check_against_model(s, &m);
	CHECK_OK(atolog_store_close(s), NULL);
	free(seg);
	model_free(&m);
}

static void test_refusals(const char *dir)
{
	atolog_options o = small_opts(), ro = { .flags = ATOLOG_OPEN_READONLY };
	atolog_compact_options bad = { .flags = 0x80 };
	atolog_compact_report r;
	struct model m = { 0 };
	atolog_store *s;
	int status;
	pid_t pid;

	CHECK_OK(atolog_store_open(dir, &o, &s), NULL);
	record_random(s, &m, 50);
	CHECK_RC(atolog_store_compact(s, &bad, &r), ATOLOG_INVALID, s);
	CHECK_RC(compact(s, ATOLOG_COMPACT_PROJECT, "", 0, &r), ATOLOG_INVALID, s);
	CHECK_RC(atolog_store_compact(s, NULL, &r), ATOLOG_INVALID, s);
	CHECK_OK(atolog_store_close(s), NULL);
	pid = fork();
	if (pid == 0) {
		int rc = atolog_store_open(dir, &ro, &s);

		if (rc == ATOLOG_OK)
			rc = compact(s, ATOLOG_COMPACT_APPLY, NULL, 0, &r);
		_exit(rc == ATOLOG_READONLY ? 0 : 1);
	}
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	model_free(&m);
}

/* ------------------------------------------------------------------------
 * Crashes: a child stops the compaction at one step; the next open must
 * find the store as before (steps before the commit point) or as after.
 */

static int crash_at;

static void crash_hook(int step, void *ctx)
{
	(void)ctx;
	if (step == crash_at)
		_exit(42);
}

/* Every id and every field the model knows, newest first, nothing more. */
static void check_exactly(atolog_store *s, const struct model *m)
{
	struct model_query all = { .since = INT64_MIN, .limit = LONG_MAX };

	model_check_query(s, m, &all);
	for (size_t i = 0; i < m->n; i++)
		model_check_get(s, &m->recs[i]);
}

/*
 * 600 random records in dir, and the models of the store before and after
 * a retention of project beta; then a child runs that compaction and is
 * stopped at step (a crash). False (with a failed check) if it was not.
 */
static bool compact_killed_at(const char *dir, int step, struct model *before,
			      struct model *after)
{
	atolog_options o = small_opts();
	atolog_compact_report r;
	atolog_store *s;
	int status;
	pid_t pid;

	CHECK_OK(atolog_store_open(dir, &o, &s), NULL);
	register_projects(s);
	record_random(s, before, 600);
	CHECK_OK(atolog_store_close(s), NULL);
	model_copy(after, before);
	model_retain(after, "beta", false, 0);
	pid = fork();
	if (pid == 0) {
		atolog_store *c;

		crash_at = step;
		if (atolog_store_open(dir, &o, &c) != ATOLOG_OK)
			_exit(1);
		store_on_compact_step(c, crash_hook, NULL);
		compact(c, ATOLOG_COMPACT_APPLY | ATOLOG_COMPACT_PROJECT, "beta", 0, &r);
		_exit(2); /* the step never came */
	}
	waitpid(pid, &status, 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 42) {
		CHECK_FAILF("step %d: the child did not stop there (status %d)", step, status);
		return false;
	}
	return true;
}

/* What a killed compaction leaves for the next writer open, as a reader
 * sees it, step by step. */
static int pending_after(int step)
{
	if (step < COMPACT_STEP_JOURNALED || step == COMPACT_STEP_DONE)
		return ATOLOG_PENDING_NONE;
	if (step < COMPACT_STEP_RENAMED)
		return ATOLOG_PENDING_UNDO;
	return step == COMPACT_STEP_RENAMED ? ATOLOG_PENDING_REINDEX
					    : ATOLOG_PENDING_RETIRE;
}

/* Before any writer opens it again: verify passes and names the step
 * left, readers see the store as the index describes it (before until
 * the swap, after from it), and none of it changes the store. */
static void check_pending_readonly(const char *dir, int step,
				   const struct model *before,
				   const struct model *after)
{
	atolog_options ro = { .flags = ATOLOG_OPEN_READONLY };
	bool journal = journal_exists(dir);
	atolog_verify_report v;
	atolog_store *r;

	CHECK_INT(journal, pending_after(step) != ATOLOG_PENDING_NONE);
	CHECK_OK(atolog_store_open(dir, &ro, &r), NULL);
	if (!r)
		return;
	CHECK_OK(atolog_store_verify(r, NULL, NULL, &v), r);
	CHECK_INT(v.problems, 0);
	CHECK_INT(v.pending_compaction, pending_after(step));
	/* Once committed, the old segments wait beside the new. */
	if (v.pending_compaction >= ATOLOG_PENDING_RETIRE)
		CHECK(v.set_aside > 0);
	check_exactly(r, step <= COMPACT_STEP_RENAMED ? before : after);
	{
		/* A snapshot of it: what the readers see, and a sound store. */
		char *snap = check_path(dir, "../pending-snapshot");
		atolog_snapshot_info info;
		atolog_store *c;

		CHECK_OK(atolog_store_snapshot(r, snap, NULL, NULL, &info), r);
		CHECK_OK(atolog_store_open(snap, &ro, &c), NULL);
		if (c) {
			check_exactly(c, step <= COMPACT_STEP_RENAMED ? before : after);
			CHECK_OK(atolog_store_verify(c, NULL, NULL, &v), c);
			atolog_store_close(c);
		}
		{
			char cmd[4200];

			snprintf(cmd, sizeof(cmd), "rm -rf '%s'", snap);
			CHECK(system(cmd) == 0);
		}
		free(snap);
	}
	atolog_store_close(r);
	CHECK_INT(journal_exists(dir), journal);
}

static void crash_case(const char *dir, int step)
{
	atolog_options o = small_opts();
	atolog_compact_report r;
	struct model before = { 0 }, after = { 0 };
	atolog_store *s;

	if (!compact_killed_at(dir, step, &before, &after))
		goto out;
	check_pending_readonly(dir, step, &before, &after);
	CHECK_OK(atolog_store_open(dir, &o, &s), NULL);
	if (!s)
		goto out;
	CHECK(!journal_exists(dir));
	CHECK_INT(count_files(dir, ".seg.tmp"), 0);
	check_exactly(s, step < COMPACT_STEP_RENAMED ? &before : &after);
	check_verify(s);
	/* And it can be done, once more or for the first time. */
	CHECK_OK(compact(s, ATOLOG_COMPACT_APPLY | ATOLOG_COMPACT_PROJECT, "beta", 0, &r), s);
	atolog_compact_report_free(&r);
	check_exactly(s, &after);
	CHECK_OK(atolog_store_close(s), NULL);
out:
	model_free(&before);
	model_free(&after);
}

/* ------------------------------------------------------------------------
 * I/O failures: the compactor's nth write or sync fails. The compaction
 * says so and the store is as before, also after a reopen, and the handle
 * still takes writes; with the fault past the last call, it is applied.
 */

static void fault_case(const char *dir, enum io_op op, long nth, bool *reached)
{
	atolog_options o = small_opts();
	atolog_compact_report r;
	struct model before = { 0 }, after = { 0 };
	atolog_store *s;
	int rc;

	CHECK_OK(atolog_store_open(dir, &o, &s), NULL);
	register_projects(s);
	record_random(s, &before, 300);
	model_copy(&after, &before);
	model_retain(&after, "beta", false, 0);
	store_inject_compact_fault(s, op, nth, op == IO_WRITE ? ENOSPC : EIO);
	rc = compact(s, ATOLOG_COMPACT_APPLY | ATOLOG_COMPACT_PROJECT, "beta", 0, &r);
	*reached = rc != ATOLOG_OK;
	if (rc == ATOLOG_OK) {
		atolog_compact_report_free(&r);
		check_exactly(s, &after);
	} else {
		if (op == IO_WRITE)
			CHECK_RC(rc, ATOLOG_FULL, s);
		check_exactly(s, &before);
		CHECK(!journal_exists(dir));
		CHECK_INT(count_files(dir, ".seg.tmp"), 0);
		record_one(s, &before, "gamma", 3); /* still takes writes */
		model_copy_rec(&after, &before.recs[before.n - 1]);
	}
	CHECK_OK(atolog_store_close(s), NULL);
	CHECK_OK(atolog_store_open(dir, &o, &s), NULL);
	check_exactly(s, rc == ATOLOG_OK ? &after : &before);
	check_verify(s);
	CHECK_OK(compact(s, ATOLOG_COMPACT_APPLY | ATOLOG_COMPACT_PROJECT, "beta", 0, &r), s);
	atolog_compact_report_free(&r);
	check_exactly(s, &after);
	CHECK_OK(atolog_store_close(s), NULL);
	model_free(&before);
	model_free(&after);
}

static void test_io_faults(const char *root)
{
	static const enum io_op ops[] = { IO_WRITE, IO_SYNC };
	static const char *const names[] = { "write", "sync" };

	for (size_t i = 0; i < 2; i++) {
		bool reached = true;
		long nth;

		for (nth = 0; reached && nth < 200; nth++) {
			char name[32], *dir;

			snprintf(name, sizeof(name), "%s%ld", names[i], nth);
			dir = check_path(root, name);
			fault_case(dir, ops[i], nth, &reached);
			free(dir);
		}
		/* Several calls of each kind, each failed once. */
		CHECK(nth > 5 && !reached);
	}
}

/* In the writer's own process, a removed record is gone from every query
 * the moment the index swap is durable, before any old file is deleted. */
struct at_once {
	atolog_store *s;
	const struct model_rec *removed, *kept;
	bool checked;
};

static void at_once_hook(int step, void *ctx)
{
	struct at_once *a = ctx;
	atolog_query q = { .project = "beta", .limit = LONG_MAX };
	const atolog_interaction *rec;
	atolog_interaction *got = NULL;
	atolog_iter *it;

	if (step != COMPACT_STEP_INDEXED)
		return;
	a->checked = true;
	CHECK_RC(atolog_interaction_get(a->s, a->removed->id, &got), ATOLOG_NOTFOUND, a->s);
	atolog_interaction_free(got);
	got = NULL;
	CHECK_OK(atolog_interaction_get(a->s, a->kept->id, &got), a->s);
	atolog_interaction_free(got);
	CHECK_OK(atolog_list_open(a->s, &q, &it), a->s);
	CHECK_RC(atolog_iter_next(it, &rec), ATOLOG_DONE, a->s);
	atolog_iter_close(it);
}

static void test_removed_at_once(const char *dir)
{
	atolog_options o = small_opts();
	atolog_compact_report r;
	struct model m = { 0 };
	struct at_once a = { 0 };
	atolog_store *s;

	CHECK_OK(atolog_store_open(dir, &o, &s), NULL);
	for (int i = 0; i < 200; i++)
		record_one(s, &m, i % 2 ? "beta" : "gamma", i % 50);
	a = (struct at_once){ .s = s, .removed = &m.recs[m.n - 1], .kept = &m.recs[m.n - 2] };
	/* Both were just read: their places are cached, and the removed one
	 * is still in the writer's recent set. */
	model_check_get(s, a.removed);
	model_check_get(s, a.kept);
	store_on_compact_step(s, at_once_hook, &a);
	CHECK_OK(compact(s, ATOLOG_COMPACT_APPLY | ATOLOG_COMPACT_PROJECT, "beta", 0, &r), s);
	CHECK_INT(r.records_removed, 100);
	atolog_compact_report_free(&r);
	CHECK(a.checked);
	CHECK_OK(atolog_store_close(s), NULL);
	model_free(&m);
}

/* A writer open finishes the pending compaction: the journal goes, the
 * store holds exactly after, and verify passes. */
static void check_open_finishes(const char *dir, const atolog_options *o,
				const struct model *after)
{
	atolog_store *s;

	CHECK_OK(atolog_store_open(dir, o, &s), NULL);
	if (!s)
		return;
	CHECK(!journal_exists(dir));
	check_exactly(s, after);
	check_verify(s);
	CHECK_OK(atolog_store_close(s), NULL);
}

/* A committed compaction whose first new segment cannot be read (here, a
 * directory for a moment: EISDIR) is not taken for an uncommitted one:
 * the open fails and removes nothing. It used to count any failure as
 * "absent", and then undo the compaction by deleting the other new
 * segments, the only copies of what they held. */
static void test_unreadable_output(const char *root)
{
	char *dir = check_path(root, "unreadable");
	atolog_options o = small_opts();
	struct model before = { 0 }, after = { 0 };
	unsigned long long first = 0;
	size_t n_outputs = 0;
	char *journal = check_path(dir, COMPACT_JOURNAL_FILE), line[256];
	char name[64], *seg, *aside;
	atolog_store *s;
	FILE *f;
	int rc;

	compact_killed_at(dir, COMPACT_STEP_RENAMED, &before, &after);
	f = fopen(journal, "r");
	while (f && fgets(line, sizeof(line), f))
		sscanf(line, "outputs %llx %zu", &first, &n_outputs);
	if (f)
		fclose(f);
	CHECK(n_outputs >= 2);
	snprintf(name, sizeof(name), "segments/%016llx.seg", first);
	seg = check_path(dir, name);
	aside = check_path(dir, "aside.seg");
	CHECK(rename(seg, aside) == 0 && mkdir(seg, 0755) == 0);
	rc = atolog_store_open(dir, &o, &s);
	CHECK_RC(rc, EISDIR, NULL);
	CHECK(journal_exists(dir));
	for (size_t k = 1; k < n_outputs; k++) {
		char *other;

		snprintf(name, sizeof(name), "segments/%016llx.seg", first + k);
		other = check_path(dir, name);
		CHECK(access(other, F_OK) == 0); /* never undone */
		free(other);
	}
	CHECK(rmdir(seg) == 0 && rename(aside, seg) == 0);
	check_open_finishes(dir, &o, &after);
	model_free(&before);
	model_free(&after);
	free(seg);
	free(aside);
	free(journal);
	free(dir);
}

/* The journal is written whole and renamed, so any other text in its
 * place is damage: bytes after its checksum line, or fields spelled
 * otherwise under a checksum that matches them. The open refuses it,
 * changes nothing, and takes the journal once it is put back. */
static void test_journal_damaged(const char *root)
{
	char *dir = check_path(root, "journal_damaged");
	char *journal = check_path(dir, COMPACT_JOURNAL_FILE);
	char *saved = check_path(dir, "journal.saved");
	atolog_options o = small_opts();
	struct model before = { 0 }, after = { 0 };
	atolog_store *s;
	FILE *f;

	compact_killed_at(dir, COMPACT_STEP_RENAMED, &before, &after);
	check_copy_file(journal, saved);
	f = fopen(journal, "a");
	CHECK(f && fputs("x", f) >= 0 && fclose(f) == 0);
	CHECK_RC(atolog_store_open(dir, &o, &s), ATOLOG_CORRUPT, NULL);
	CHECK_MSG(NULL, COMPACT_JOURNAL_FILE);
	CHECK(journal_exists(dir));
	/* The same fields respelled (no zero padding), checksum made anew. */
	{
		char body[256];
		int n = snprintf(body, sizeof(body),
				 "atolog-compact 1\nnonce 1\noutputs 2 1\ninputs 1 1");

		f = fopen(journal, "w");
		CHECK(f && fprintf(f, "%s\nxxh3 %016" PRIx64 "\n", body,
				   (uint64_t)XXH3_64bits(body, (size_t)n)) > 0 &&
		      fclose(f) == 0);
	}
	CHECK_RC(atolog_store_open(dir, &o, &s), ATOLOG_CORRUPT, NULL);
	CHECK_MSG(NULL, "spelling");
	check_copy_file(saved, journal);
	CHECK(unlink(saved) == 0);
	check_open_finishes(dir, &o, &after);
	model_free(&before);
	model_free(&after);
	free(saved);
	free(journal);
	free(dir);
}

static void test_crash_points(const char *root)
{
	for (int step = 0; step < COMPACT_STEP_COUNT; step++) {
		char name[16], *dir;

		snprintf(name, sizeof(name), "step%d", step);
		dir = check_path(root, name);
		crash_case(dir, step);
		free(dir);
	}
}

/* ------------------------------------------------------------------------
 * Readers of another process: one holds an old segment open (it must
 * wait, renamed, until the reader lets go), and holds places in old
 * segments it has not opened (they are deleted; it must find the records
 * in the new ones).
 */

static bool send_byte(int fd, char c)
{
	return write(fd, &c, 1) == 1;
}

static bool wait_byte(int fd, char want)
{
	char c;

	return read(fd, &c, 1) == 1 && c == want;
}

/* The child: the first interaction by id, and a listing oldest first of
 * which it reads one, then (told to go on) the rest, checked against the
 * model; then, after a while, one more query, which lets old files go. */
static int reader_child(const char *dir, const struct model *m, int in, int out)
{
	atolog_options ro = { .flags = ATOLOG_OPEN_READONLY };
	atolog_query q = { .limit = LONG_MAX };
	const atolog_interaction *rec;
	atolog_interaction *one = NULL;
	atolog_iter *it = NULL;
	atolog_store *s;
	size_t n = 0;
	int bad = 0, rc;

	if (atolog_store_open(dir, &ro, &s) != ATOLOG_OK ||
	    atolog_interaction_get(s, m->recs[0].id, &one) != ATOLOG_OK ||
	    atolog_list_open(s, &q, &it) != ATOLOG_OK ||
	    atolog_iter_next(it, &rec) != ATOLOG_OK)
		return 10;
	atolog_interaction_free(one);
	n = 1;
	if (!send_byte(out, 'r') || !wait_byte(in, 'g'))
		return 11;
	while ((rc = atolog_iter_next(it, &rec)) == ATOLOG_OK)
		n++;
	if (rc != ATOLOG_DONE) {
		fprintf(stderr, "reader: %s\n", atolog_errmsg(s));
		bad = 12;
	}
	atolog_iter_close(it);
	if (n != m->n) {
		fprintf(stderr, "reader: %zu of %zu after the compaction\n", n, m->n);
		bad = 13;
	}
	if (atolog_interaction_get(s, m->recs[0].id, &one) != ATOLOG_OK)
		bad = 14;
	atolog_interaction_free(one);
	if (!send_byte(out, bad ? 'x' : 'd') || !wait_byte(in, 'g'))
		return 15;
	usleep((FDS_REFRESH_MS + 50) * 1000);
	if (atolog_interaction_get(s, m->recs[m->n - 1].id, &one) != ATOLOG_OK)
		bad = 16;
	atolog_interaction_free(one);
	send_byte(out, 'f');
	wait_byte(in, 'q');
	atolog_store_close(s);
	return bad;
}

static void test_reader_holds_segments(const char *dir)
{
	atolog_options o = small_opts();
	atolog_compact_report r;
	struct model m = { 0 };
	int to_child[2], to_parent[2], status;
	atolog_store *s;
	char *first_seg, *retired;
	pid_t pid;

	CHECK_OK(atolog_store_open(dir, &o, &s), NULL);
	register_projects(s);
	record_random(s, &m, 600);
	CHECK_OK(atolog_store_close(s), NULL);
	if (pipe(to_child) != 0 || pipe(to_parent) != 0)
		abort();
	pid = fork();
	if (pid == 0) {
		alarm(60);
		_exit(reader_child(dir, &m, to_child[0], to_parent[1]));
	}
	CHECK(wait_byte(to_parent[0], 'r'));
	o.segment_size *= 4; /* every old segment is small now */
	CHECK_OK(atolog_store_open(dir, &o, &s), NULL);
	CHECK_OK(compact(s, ATOLOG_COMPACT_APPLY, NULL, 0, &r), s);
	/* The reader has segment 1 open (its first get): set aside, not
	 * deleted; the others it never opened are gone. */
	first_seg = check_path(dir, "segments/0000000000000001.seg");
	retired = check_path(dir, "segments/0000000000000001.seg" SEGMENT_RETIRED_SUFFIX);
	CHECK(r.segments_in > 2);
	CHECK(r.segments_waiting >= 1);
	CHECK(access(first_seg, F_OK) != 0);
	CHECK(access(retired, F_OK) == 0);
	CHECK_INT(count_files(dir, SEGMENT_RETIRED_SUFFIX), r.segments_waiting);
	atolog_compact_report_free(&r);
	CHECK(send_byte(to_child[1], 'g'));
	CHECK(wait_byte(to_parent[0], 'd'));
	/* Once the reader looked again, it closed what it held: the next
	 * compaction (even a dry run) deletes the file. */
	CHECK(send_byte(to_child[1], 'g'));
	CHECK(wait_byte(to_parent[0], 'f'));
	CHECK_OK(compact(s, 0, NULL, 0, &r), s);
	CHECK_INT(r.segments_waiting, 0);
	atolog_compact_report_free(&r);
	CHECK(access(retired, F_OK) != 0);
	check_against_model(s, &m);
	CHECK(send_byte(to_child[1], 'q'));
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK_OK(atolog_store_close(s), NULL);
	free(first_seg);
	free(retired);
	model_free(&m);
}

/* ------------------------------------------------------------------------
 * Racing: a writer thread, a reader thread and a reader process run while
 * the main thread compacts again and again.
 */

#define RACE_ROUNDS 10
#define RACE_WRITERS 3
#define RACE_WRITES_MAX 20000 /* each writer stops after the rounds, or here */

struct race {
	atolog_store *s;
	const struct model *stable; /* gamma's records, never removed */
	atomic_bool stop, stop_writes;
	atomic_long failures;
};

struct race_writer {
	struct race *race;
	struct model written;
	unsigned tag;
	pthread_t thread;
};

static void *race_writer(void *arg)
{
	struct race_writer *w = arg;

	/* Days from 100 on: no retention round below touches them. */
	for (unsigned i = 0; i < RACE_WRITES_MAX && !atomic_load(&w->race->stop_writes); i++)
		record_at(w->race->s, &w->written, projects[i % 4], 100 + (int)(i % 100),
			  i * 7919u, i * 31u + w->tag, i + w->tag, w->tag + 1);
	return NULL;
}

/* Gets of records no round removes, and listings of their project: never
 * an error, never a wrong record. Returns failures. */
static long read_stable(atolog_store *s, const struct model *stable, size_t i)
{
	atolog_query q = { .project = "gamma", .limit = 50 };
	const atolog_interaction *rec;
	atolog_interaction *got = NULL;
	atolog_iter *it;
	long bad = 0, n = 0;
	int64_t last = INT64_MAX;
	int rc = atolog_interaction_get(s, stable->recs[i % stable->n].id, &got);

	if (rc != ATOLOG_OK || strcmp(got->prompt, stable->recs[i % stable->n].prompt)) {
		fprintf(stderr, "get: %s\n", atolog_errmsg(s));
		bad++;
	}
	atolog_interaction_free(got);
	if (atolog_list_open(s, &q, &it) != ATOLOG_OK)
		return bad + 1;
	while ((rc = atolog_iter_next(it, &rec)) == ATOLOG_OK) {
		bad += strcmp(rec->project, "gamma") != 0 || rec->created_at > last;
		last = rec->created_at;
		n++;
	}
	if (rc != ATOLOG_DONE || n != 50) {
		fprintf(stderr, "list: %ld rows: %s\n", n, atolog_errmsg(s));
		bad++;
	}
	atolog_iter_close(it);
	return bad;
}

static void *race_reader(void *arg)
{
	struct race *r = arg;

	for (size_t i = 0; !atomic_load(&r->stop); i++)
		atomic_fetch_add(&r->failures, read_stable(r->s, r->stable, i * 7));
	return NULL;
}

/* The reader process: forked before the parent opened the store (LMDB
 * wants no fork with an environment open), it opens its own when told,
 * takes gamma's records as they are then, and reads until stop_path
 * exists. */
static int race_reader_process(const char *dir, int ready, const char *stop_path)
{
	atolog_options ro = { .flags = ATOLOG_OPEN_READONLY };
	atolog_query q = { .project = "gamma", .limit = LONG_MAX };
	const atolog_interaction *rec;
	struct model stable = { 0 };
	atolog_iter *it;
	atolog_store *s;
	long bad = 0;

	if (!wait_byte(ready, 'r') || atolog_store_open(dir, &ro, &s) != ATOLOG_OK ||
	    atolog_list_open(s, &q, &it) != ATOLOG_OK)
		return 1;
	while (atolog_iter_next(it, &rec) == ATOLOG_OK)
		model_add(&stable, rec);
	atolog_iter_close(it);
	for (size_t i = 0; access(stop_path, F_OK) != 0; i++)
		bad += read_stable(s, &stable, i * 13);
	atolog_store_close(s);
	model_free(&stable);
	return bad ? 2 : 0;
}

static void gamma_only(struct model *out, const struct model *m)
{
	model_copy(out, m);
	out->n = 0;
	for (size_t i = 0; i < m->n; i++) {
		if (strcmp(m->recs[i].project, "gamma") == 0)
			out->recs[out->n++] = m->recs[i];
	}
}

static void race_in(const char *dir, atolog_sync_mode sync)
{
	atolog_options o = small_opts();
	struct race race = { 0 };
	struct race_writer writers[RACE_WRITERS] = { 0 };
	struct model m = { 0 }, stable = { 0 };
	pthread_t reader;
	char *stop_path = check_path(dir, "stop");
	int64_t cutoff = TIME_BASE + 50 * DAY_US;
	atolog_compact_report r;
	uint64_t moved = 0, removed = 0;
	int ready[2], status;
	pid_t pid;

	o.sync = sync;
	if (pipe(ready) != 0)
		abort();
	pid = fork();
	if (pid == 0) {
		alarm(120);
		_exit(race_reader_process(dir, ready[0], stop_path));
	}
	CHECK_OK(atolog_store_open(dir, &o, &race.s), NULL);
	register_projects(race.s);
	record_random(race.s, &m, 1500);
	gamma_only(&stable, &m);
	CHECK(stable.n > 100);
	race.stable = &stable;
	store_index_wait(race.s);
	CHECK(send_byte(ready[1], 'r'));
	for (unsigned i = 0; i < RACE_WRITERS; i++) {
		writers[i] = (struct race_writer){ .race = &race, .tag = i };
		pthread_create(&writers[i].thread, NULL, race_writer, &writers[i]);
	}
	pthread_create(&reader, NULL, race_reader, &race);
	for (int round = 0; round < RACE_ROUNDS; round++) {
		unsigned flags = ATOLOG_COMPACT_APPLY;

		if (round % 2)
			flags |= ATOLOG_COMPACT_BEFORE | ATOLOG_COMPACT_PROJECT;
		CHECK_OK(compact(race.s, flags, "beta", cutoff, &r), race.s);
		moved += r.records_moved;
		removed += r.records_removed;
		atolog_compact_report_free(&r);
		usleep(20 * 1000);
	}
	atomic_store(&race.stop_writes, true);
	for (unsigned i = 0; i < RACE_WRITERS; i++)
		pthread_join(writers[i].thread, NULL);
	/* Each round had work: the retention ones sealed what was written. */
	CHECK(moved > 1000);
	CHECK(removed > 0);
	for (unsigned i = 0; i < RACE_WRITERS; i++)
		CHECK(writers[i].written.n > 50);
	atomic_store(&race.stop, true);
	pthread_join(reader, NULL);
	fclose(fopen(stop_path, "w"));
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK_INT(atomic_load(&race.failures), 0);

	for (unsigned w = 0; w < RACE_WRITERS; w++) {
		for (size_t i = 0; i < writers[w].written.n; i++)
			model_copy_rec(&m, &writers[w].written.recs[i]);
		model_free(&writers[w].written);
	}
	model_retain(&m, "beta", true, cutoff);
	check_against_model(race.s, &m);
	check_verify(race.s);
	CHECK_OK(atolog_store_close(race.s), NULL);
	CHECK_OK(atolog_store_open(dir, &o, &race.s), NULL);
	check_against_model(race.s, &m);
	CHECK_OK(atolog_store_close(race.s), NULL);
	close(ready[0]);
	close(ready[1]);
	free(stop_path);
	model_free(&m);
	model_free(&stable);
}

/* In sync none (the fastest writers), and in batch (groups, fdatasyncs). */
static void test_racing(const char *root)
{
	static const atolog_sync_mode modes[] = { ATOLOG_SYNC_NONE, ATOLOG_SYNC_BATCH };

	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		char name[16], *dir;

		snprintf(name, sizeof(name), "sync%zu", i);
		dir = check_path(root, name);
		race_in(dir, modes[i]);
		free(dir);
	}
}

/* ------------------------------------------------------------------------
 * `atolog compact`, black box.
 */

/* Runs the CLI on dir with args; *out gets its stdout parsed as one JSON
 * object (NULL if it is not). Returns the exit status. */
static int run_compact(const char *dir, const char *args, json_t **out)
{
	const char *cli = getenv("ATOLOG_CLI");
	char cmd[4096], buf[1 << 16];
	size_t len = 0, n;
	FILE *p;
	int status;

	*out = NULL;
	if (!cli) {
		CHECK_FAILF("ATOLOG_CLI is not set");
		return -1;
	}
	snprintf(cmd, sizeof(cmd), "%s --data %s compact %s 2>/dev/null", cli, dir, args);
	p = popen(cmd, "r");
	if (!p)
		return -1;
	while ((n = fread(buf + len, 1, sizeof(buf) - 1 - len, p)) > 0)
		len += n;
	buf[len] = '\0';
	status = pclose(p);
	*out = json_loads(buf, 0, NULL);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static long long jnum(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);

	if (!json_is_integer(v)) {
		CHECK_FAILF("no integer %s in the report", key);
		return -1;
	}
	return json_integer_value(v);
}

static void test_cli(const char *dir)
{
	atolog_options o = small_opts();
	struct model m = { 0 };
	atolog_store *s;
	json_t *j;
	size_t segs;
	int64_t cutoff;

	if (!getenv("ATOLOG_CLI")) {
		CHECK_FAILF("ATOLOG_CLI is not set");
		return;
	}
	CHECK_OK(atolog_store_open(dir, &o, &s), NULL);
	register_projects(s);
	record_random(s, &m, 500);
	CHECK_OK(atolog_store_close(s), NULL);
	CHECK_OK(atolog_time_parse("2026-03-01T00:00:00Z", &cutoff), NULL);

	/* A dry run: the report, and nothing changed. */
	segs = count_files(dir, ".seg");
	CHECK_INT(run_compact(dir, "--before 2026-03-01T00:00:00Z", &j), 0);
	CHECK(json_is_false(json_object_get(j, "applied")));
	CHECK_INT(jnum(j, "records_removed"), model_count(&m, NULL, cutoff));
	CHECK_INT(json_array_size(json_object_get(j, "projects")), 4);
	json_decref(j);
	CHECK_INT(count_files(dir, ".seg"), segs);

	/* Everything is older than a day; nothing than 1000 weeks. */
	CHECK_INT(run_compact(dir, "--older-than 1d", &j), 0);
	CHECK_INT(jnum(j, "records_removed"), m.n);
	json_decref(j);
	CHECK_INT(run_compact(dir, "--older-than 1000w", &j), 0);
	CHECK_INT(jnum(j, "records_removed"), 0);
	json_decref(j);

	/* Applied, by alias and age; the CLI's 64 MiB segments make every
	 * old one small, so they merge into one. */
	CHECK_INT(run_compact(dir, "--apply --project A --before 2026-03-01T00:00:00Z", &j), 0);
	CHECK(json_is_true(json_object_get(j, "applied")));
	CHECK_INT(jnum(j, "records_removed"), model_count(&m, "alpha", cutoff));
	CHECK_INT(jnum(j, "segments_out"), 1);
	CHECK_INT(jnum(j, "records_moved"), m.n - model_count(&m, "alpha", cutoff));
	json_decref(j);
	model_retain(&m, "alpha", true, cutoff);
	CHECK_INT(count_files(dir, ".seg"), 2); /* the merged one, and the old active */
	CHECK_OK(atolog_store_open(dir, &o, &s), NULL);
	check_against_model(s, &m);

	/* Usage errors change nothing; a held store is refused. */
	static const char *const bad[] = {
		"--older-than 90x", "--older-than 0d", "--older-than d",
		"--older-than 5d --before 2026-01-01T00:00:00Z", "--before yesterday",
		"--small 0", "stray", "--bogus",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = run_compact(dir, bad[i], &j);

		if (rc != 2)
			CHECK_FAILF("compact %s exited %d, want 2", bad[i], rc);
		CHECK(j == NULL);
		json_decref(j);
	}
	CHECK_INT(run_compact(dir, "--apply", &j), 3); /* this process writes */
	CHECK(j == NULL);
	CHECK_OK(atolog_store_close(s), NULL);
	CHECK_INT(run_compact(dir, "--help", &j), 0);
	model_free(&m);
}

int main(int argc, char **argv)
{
	static const struct check_case cases[] = {
		{ "retention_model", test_retention_model },
		{ "seq_high_water", test_seq_high_water },
		{ "corrupt_input", test_corrupt_input },
		{ "refusals", test_refusals },
		{ "crash_points", test_crash_points },
		{ "unreadable_output", test_unreadable_output },
		{ "journal_damaged", test_journal_damaged },
		{ "io_faults", test_io_faults },
		{ "removed_at_once", test_removed_at_once },
		{ "reader_holds_segments", test_reader_holds_segments },
		{ "racing", test_racing },
		{ "cli", test_cli },
	};

	check_args(argc, argv);
	check_rand_init("test_compact");
	return check_run_cases("test_compact", cases, sizeof(cases) / sizeof(cases[0]));
}
