/*
 * test_model.c - atolog against a naive in-memory model.
 *
 * Thousands of random interactions (projects given by canonical name or by
 * alias, sessions, clients, timestamps with many exact ties) are recorded
 * into a store whose small segment size forces many rolls, and kept in a
 * plain array. Then random queries of every filter combination are run
 * against both, and the ids and their order must match exactly: filter,
 * since (inclusive, whole seconds, any ISO shape), newest first with ties
 * broken by sequence, limit. Replays and gets are checked field by field.
 * The same checks run again after a reopen, a read-only open, and a
 * rebuild of the index from the log.
 */
#include <stdbool.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "engine.h"
#include "model.h"

#define N_RECORDS 3000
#define N_QUERIES 1500
#define N_SESSIONS 40
#define TIME_BASE INT64_C(1775044800000000) /* 2026-04-01T12:00:00Z */
#define CONTEXT "{\"n\":1,\"nested\":{\"list\":[1,2.5,\"x\",null,true]}}"

/* What a caller may pass as project, and what it resolves to. */
static const struct {
	const char *given;
	const char *canonical;
} project_names[] = {
	{ "alpha", "alpha" }, { "A", "alpha" },   { " alpha-old ", "alpha" },
	{ "ALPHA", "alpha" }, { "beta", "beta" }, { "b", "beta" },
	{ "gamma", "gamma" }, { "", "" },
};
#define N_PROJECT_NAMES (sizeof(project_names) / sizeof(project_names[0]))

static const char *const clients[] = { "openclaw", "claude-code", "manual", "" };

static void register_projects(atolog_store *s)
{
	static const char *const alpha[] = { "A", "Alpha-Old" };
	static const char *const beta[] = { "b" };

	CHECK_OK(atolog_project_add(s, "alpha", alpha, 2), s);
	CHECK_OK(atolog_project_add(s, "beta", beta, 1), s);
}

/* Few distinct seconds, some with fractions: plenty of exact ties. */
static int64_t random_time(void)
{
	int64_t t = TIME_BASE + (int64_t)check_rand_below(600) * 1000000;

	if (check_rand_below(4) == 0)
		t += (int64_t)check_rand_below(1000000);
	return t;
}

/* The whole structures: the recent set's invariants, and the index
 * against the log (verify), between the steps of the test. */
static void check_sane(atolog_store *s, const char *when)
{
	atolog_verify_report v;
	char why[256];

	if (!s)
		return;
	if (store_recent(s) && !recent_sane(store_recent(s), why, sizeof(why)))
		CHECK_FAILF("%s: %s", when, why);
	CHECK_OK(atolog_store_verify(s, NULL, NULL, &v), s);
}

static void record_random(atolog_store *s, struct model *m)
{
	size_t p = check_rand_below(N_PROJECT_NAMES);
	atolog_interaction in = { 0 }, *out = NULL;
	const char *mem[] = { "m1", "m2" };
	char prompt[64], session[16];

	snprintf(prompt, sizeof(prompt), "prompt %zu \u00e9\u6f22", m->n);
	snprintf(session, sizeof(session), "s%02u",
		 (unsigned)check_rand_below(N_SESSIONS));
	in.prompt = prompt;
	in.project = project_names[p].given;
	in.session_id = session;
	in.client = clients[check_rand_below(4)];
	in.has_created_at = 1;
	in.created_at = random_time();
	in.memories_used = mem;
	in.n_memories_used = m->n % 3;
	in.context_pack = CONTEXT;
	CHECK_OK(atolog_interaction_record(s, &in, &out), s);
	if (m->n % 250 == 0)
		check_sane(s, "while recording");
	if (!out)
		return;
	CHECK_STR(out->project, project_names[p].canonical);
	CHECK_STR(out->prompt, prompt);
	CHECK_INT(out->created_at, in.created_at);
	model_add(m, out);
	atolog_interaction_free(out);
}

/* ------------------------------------------------------------------------
 * Random queries.
 */

static void random_query(struct model_query *q)
{
	static const long limits[] = { -1, 0, 1, 3, 50, 100000 };
	unsigned mask = (unsigned)check_rand_below(16);

	memset(q, 0, sizeof(*q));
	q->since = INT64_MIN;
	if (mask & 1) {
		size_t p = check_rand_below(N_PROJECT_NAMES + 1);

		/* Index N_PROJECT_NAMES: a name nothing is stored under. */
		q->project_given = p < N_PROJECT_NAMES ? project_names[p].given : "delta";
		q->project = p < N_PROJECT_NAMES ? project_names[p].canonical : "delta";
		if (!*q->project_given) /* "" means no filter, as in the seed */
			q->project_given = q->project = NULL;
	}
	if (mask & 2) {
		static char session[16];

		snprintf(session, sizeof(session), "s%02u",
			 (unsigned)check_rand_below(N_SESSIONS + 2));
		q->session = session;
	}
	if (mask & 4) {
		q->client = clients[check_rand_below(3)];
	}
	if (mask & 8)
		model_random_since(q, random_time() - 1000000 +
				      (int64_t)check_rand_below(2000000));
	q->limit = limits[check_rand_below(6)];
}

/* get also returns what the model does not keep. */
static void check_get(atolog_store *s, const struct model_rec *r)
{
	atolog_interaction *rec = NULL;

	model_check_get(s, r);
	CHECK_OK(atolog_interaction_get(s, r->id, &rec), s);
	if (rec)
		CHECK_STR(rec->context_pack, CONTEXT);
	atolog_interaction_free(rec);
}

/* Every check, on whatever handle the caller opened. */
static void check_everything(atolog_store *s, const struct model *m,
			     const char *when)
{
	int before = check_failures;
	atolog_stats st;

	CHECK_OK(atolog_store_stats(s, &st), s);
	CHECK_INT(st.n_records, m->n);
	for (int i = 0; i < N_QUERIES; i++) {
		struct model_query q;

		random_query(&q);
		model_check_query(s, m, &q);
	}
	for (int i = 0; i < N_SESSIONS; i++) {
		char session[16];

		snprintf(session, sizeof(session), "s%02d", i);
		model_check_replay(s, m, session);
	}
	for (size_t i = 0; i < m->n; i += 7)
		check_get(s, &m->recs[i]);
	check_sane(s, when);
	fprintf(stderr, "test_model: %s: %s\n", when,
		check_failures == before ? "ok" : "FAILED");
}

/* A read-only handle sees only what the index holds: nothing recorded
 * while it was held (the two registrations went through it). It runs in
 * a child: LMDB forbids opening one environment twice in a process. */
static void check_nothing_indexed(const char *dir)
{
	pid_t pid = fork();
	int status = -1;

	if (pid == 0) {
		atolog_options o = { .flags = ATOLOG_OPEN_READONLY };
		atolog_store *r = NULL;
		atolog_stats st;

		if (atolog_store_open(dir, &o, &r) != ATOLOG_OK ||
		    atolog_store_stats(r, &st) != ATOLOG_OK)
			_exit(2);
		_exit(st.n_records == 0 && check_count_session(r, "s00") == 0 ? 0 : 1);
	}
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static atolog_store *open_store(const char *dir, unsigned flags)
{
	atolog_options o = { .flags = flags, .sync = ATOLOG_SYNC_NONE,
			     .segment_size = 64 * 1024 };
	atolog_store *s = NULL;

	CHECK_OK(atolog_store_open(dir, &o, &s), NULL);
	if (!s) {
		fprintf(stderr, "cannot continue\n");
		exit(check_report("test_model"));
	}
	return s;
}

int main(void)
{
	struct model *m = calloc(1, sizeof(*m));
	char *dir = check_tmpdir("model");
	atolog_stats st;
	atolog_store *s;

	check_rand_init("test_model");
	s = open_store(dir, 0);
	register_projects(s);
	/* Acknowledged records are served from the recent set until the
	 * index has them: with the index held, from it alone; then from both
	 * at once, each record in both; then half from each. */
	store_pause_index(s, true);
	for (int i = 0; i < N_RECORDS / 2; i++)
		record_random(s, m);
	check_everything(s, m, "index held, from the recent set alone");
	check_nothing_indexed(dir);
	store_pause_index(s, false);
	store_index_wait(s);
	recent_forget_indexed(store_recent(s));
	check_everything(s, m, "every record in the index and the recent set");
	store_pause_index(s, true);
	for (int i = N_RECORDS / 2; i < N_RECORDS; i++)
		record_random(s, m);
	check_everything(s, m, "half indexed, half recent");
	store_pause_index(s, false);
	for (int i = 0; i < N_RECORDS / 10; i++)
		record_random(s, m);
	CHECK_OK(atolog_store_stats(s, &st), s);
	CHECK(st.n_segments > 10); /* the small segment size made it roll */
	check_everything(s, m, "after ingest");
	CHECK_OK(atolog_store_close(s), NULL);

	s = open_store(dir, 0);
	CHECK_INT(atolog_store_stats(s, &st), ATOLOG_OK);
	CHECK_INT(st.index_rebuilt, 0);
	check_everything(s, m, "after reopen");
	CHECK_OK(atolog_store_close(s), NULL);

	s = open_store(dir, ATOLOG_OPEN_READONLY);
	check_everything(s, m, "read-only");
	CHECK_OK(atolog_store_close(s), NULL);

	check_remove_index(dir);
	s = open_store(dir, 0);
	CHECK_OK(atolog_store_stats(s, &st), s);
	CHECK_INT(st.index_rebuilt, 1);
	/* every record, 2 registrations, and a seal per sealed segment */
	CHECK_INT(st.recovered_frames, m->n + 2 + st.n_segments - 1);
	check_everything(s, m, "after index rebuild");
	CHECK_OK(atolog_store_close(s), NULL);

	check_tmpdir_remove(dir);
	model_free(m);
	free(m);
	return check_report("test_model");
}
