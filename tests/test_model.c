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
#include <unistd.h>

#include "check.h"

#define N_RECORDS 3000
#define N_QUERIES 1500
#define N_SESSIONS 40
#define TIME_BASE INT64_C(1775044800000000) /* 2026-04-01T12:00:00Z */

struct model_rec {
	char id[ATOLOG_ID_TEXT_LEN + 1];
	int64_t created_at;
	uint64_t seq;
	char prompt[64];
	const char *project; /* canonical */
	char session[16];
	const char *client;
};

struct model {
	struct model_rec recs[N_RECORDS];
	size_t n;
};

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

static void record_random(atolog_store *s, struct model *m)
{
	struct model_rec *r = &m->recs[m->n];
	size_t p = check_rand_below(N_PROJECT_NAMES);
	atolog_interaction in = { 0 }, *out = NULL;
	const char *mem[] = { "m1", "m2" };

	snprintf(r->prompt, sizeof(r->prompt), "prompt %zu \u00e9\u6f22", m->n);
	snprintf(r->session, sizeof(r->session), "s%02u",
		 (unsigned)check_rand_below(N_SESSIONS));
	r->project = project_names[p].canonical;
	r->client = clients[check_rand_below(4)];
	r->created_at = random_time();
	in.prompt = r->prompt;
	in.project = project_names[p].given;
	in.session_id = r->session;
	in.client = r->client;
	in.has_created_at = 1;
	in.created_at = r->created_at;
	in.memories_used = mem;
	in.n_memories_used = m->n % 3;
	in.context_pack = "{\"n\":1,\"nested\":{\"list\":[1,2.5,\"x\",null,true]}}";
	CHECK_OK(atolog_interaction_record(s, &in, &out), s);
	if (!out)
		return;
	CHECK_STR(out->project, r->project);
	CHECK_INT(out->created_at, r->created_at);
	memcpy(r->id, out->id, sizeof(r->id));
	r->seq = out->seq;
	atolog_interaction_free(out);
	m->n++;
}

/* ------------------------------------------------------------------------
 * The model's answers.
 */

struct model_query {
	const char *project_given, *project; /* NULL: any */
	const char *session, *client;
	char since_text[48];
	int64_t since; /* INT64_MIN: none */
	long limit;
};

static bool model_matches(const struct model_rec *r, const struct model_query *q)
{
	return (!q->project || strcmp(r->project, q->project) == 0) &&
	       (!q->session || strcmp(r->session, q->session) == 0) &&
	       (!q->client || strcmp(r->client, q->client) == 0) &&
	       r->created_at >= q->since;
}

static int newest_first(const void *x, const void *y)
{
	const struct model_rec *a = *(const struct model_rec *const *)x;
	const struct model_rec *b = *(const struct model_rec *const *)y;

	if (a->created_at != b->created_at)
		return a->created_at < b->created_at ? 1 : -1;
	return a->seq < b->seq ? 1 : -1;
}

static int oldest_first(const void *x, const void *y)
{
	return -newest_first(x, y);
}

/* Fills out with the model's answer; returns its length. */
static size_t model_list(const struct model *m, const struct model_query *q,
			 const struct model_rec **out)
{
	size_t n = 0;

	if (q->limit <= 0)
		return 0;
	for (size_t i = 0; i < m->n; i++) {
		if (model_matches(&m->recs[i], q))
			out[n++] = &m->recs[i];
	}
	qsort(out, n, sizeof(*out), newest_first);
	return n < (size_t)q->limit ? n : (size_t)q->limit;
}

/* ------------------------------------------------------------------------
 * Random queries.
 */

/* A since in one of the ISO shapes, and the whole second it means. */
static void random_since(struct model_query *q)
{
	int64_t t = random_time() - 1000000 + (int64_t)check_rand_below(2000000);
	char iso[ATOLOG_TIME_ISO_LEN];

	q->since = t - ((t % 1000000) + 1000000) % 1000000;
	switch (check_rand_below(5)) {
	case 0: /* full precision, Z */
		atolog_time_format_iso(t, q->since_text);
		break;
	case 1: /* the seed's storage form */
		atolog_time_format_seed(t, q->since_text);
		break;
	case 2: /* local time at +05:30 */
		atolog_time_format_iso(t + INT64_C(19800000000), iso);
		snprintf(q->since_text, sizeof(q->since_text), "%.26s+05:30", iso);
		break;
	case 3: /* local time at -0800, no fraction */
		atolog_time_format_iso(t - INT64_C(28800000000), iso);
		snprintf(q->since_text, sizeof(q->since_text), "%.19s-0800", iso);
		break;
	default: /* 'T', no zone: UTC */
		atolog_time_format_iso(t, iso);
		snprintf(q->since_text, sizeof(q->since_text), "%.19s", iso);
		break;
	}
}

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
		random_since(q);
	q->limit = limits[check_rand_below(6)];
}

static void check_query(atolog_store *s, const struct model *m,
			const struct model_query *q, const struct model_rec **want)
{
	atolog_query aq = { .project = q->project_given, .session_id = q->session,
			    .client = q->client,
			    .since = q->since != INT64_MIN ? q->since_text : NULL,
			    .limit = q->limit };
	size_t n = model_list(m, q, want), got = 0;
	const atolog_interaction *rec;
	atolog_iter *it;
	int rc;

	CHECK_OK(atolog_list_open(s, &aq, &it), s);
	if (!it)
		return;
	while ((rc = atolog_iter_next(it, &rec)) == ATOLOG_OK) {
		if (got < n && strcmp(rec->id, want[got]->id) != 0) {
			fprintf(stderr, "query project=%s session=%s client=%s since=%s "
				"limit=%ld: row %zu is %s, want %s\n",
				q->project_given ? q->project_given : "-",
				q->session ? q->session : "-", q->client ? q->client : "-",
				aq.since ? aq.since : "-", q->limit, got, rec->id,
				want[got]->id);
			check_failures++;
		}
		got++;
	}
	CHECK_RC(rc, ATOLOG_DONE, s);
	CHECK_INT(got, n);
	atolog_iter_close(it);
}

static void check_replay(atolog_store *s, const struct model *m,
			 const char *session, const struct model_rec **want)
{
	const atolog_interaction *rec;
	atolog_iter *it;
	size_t n = 0, got = 0;
	int rc;

	for (size_t i = 0; i < m->n; i++) {
		if (strcmp(m->recs[i].session, session) == 0)
			want[n++] = &m->recs[i];
	}
	qsort(want, n, sizeof(*want), oldest_first);
	CHECK_OK(atolog_replay_open(s, session, &it), s);
	if (!it)
		return;
	while ((rc = atolog_iter_next(it, &rec)) == ATOLOG_OK) {
		if (got < n) {
			CHECK_STR(rec->id, want[got]->id);
			CHECK_STR(rec->session_id, session);
		}
		got++;
	}
	CHECK_RC(rc, ATOLOG_DONE, s);
	CHECK_INT(got, n);
	atolog_iter_close(it);
}

static void check_get(atolog_store *s, const struct model_rec *r)
{
	atolog_interaction *rec = NULL;

	CHECK_OK(atolog_interaction_get(s, r->id, &rec), s);
	if (!rec)
		return;
	CHECK_STR(rec->id, r->id);
	CHECK_STR(rec->prompt, r->prompt);
	CHECK_STR(rec->project, r->project);
	CHECK_STR(rec->session_id, r->session);
	CHECK_STR(rec->client, r->client);
	CHECK_INT(rec->created_at, r->created_at);
	CHECK_INT(rec->seq, r->seq);
	CHECK_STR(rec->context_pack,
		  "{\"n\":1,\"nested\":{\"list\":[1,2.5,\"x\",null,true]}}");
	atolog_interaction_free(rec);
}

/* Every check, on whatever handle the caller opened. */
static void check_everything(atolog_store *s, const struct model *m,
			     const char *when)
{
	const struct model_rec **want = calloc(m->n, sizeof(*want));
	int before = check_failures;
	atolog_stats st;

	CHECK_OK(atolog_store_stats(s, &st), s);
	CHECK_INT(st.n_records, m->n);
	for (int i = 0; i < N_QUERIES; i++) {
		struct model_query q;

		random_query(&q);
		check_query(s, m, &q, want);
	}
	for (int i = 0; i < N_SESSIONS; i++) {
		char session[16];

		snprintf(session, sizeof(session), "s%02d", i);
		check_replay(s, m, session, want);
	}
	for (size_t i = 0; i < m->n; i += 7)
		check_get(s, &m->recs[i]);
	free(want);
	fprintf(stderr, "test_model: %s: %s\n", when,
		check_failures == before ? "ok" : "FAILED");
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

static void remove_index(const char *dir)
{
	char *data = check_path(dir, "index/data.mdb");
	char *lock = check_path(dir, "index/lock.mdb");

	CHECK(unlink(data) == 0);
	unlink(lock);
	free(data);
	free(lock);
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
	for (int i = 0; i < N_RECORDS; i++)
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

	remove_index(dir);
	s = open_store(dir, 0);
	CHECK_OK(atolog_store_stats(s, &st), s);
	CHECK_INT(st.index_rebuilt, 1);
	/* every record, 2 registrations, and a seal per sealed segment */
	CHECK_INT(st.recovered_frames, N_RECORDS + 2 + st.n_segments - 1);
	check_everything(s, m, "after index rebuild");
	CHECK_OK(atolog_store_close(s), NULL);

	check_tmpdir_remove(dir);
	free(m);
	return check_report("test_model");
}
