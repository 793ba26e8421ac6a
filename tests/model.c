/*
 * model.c - the naive model (see model.h). Deliberately simple: linear
 * scans and qsort, the obviously correct version of what the index does.
 */
#include "model.h"

#include "check.h"

void model_add(struct model *m, const atolog_interaction *stored)
{
	struct model_rec *r;

	if (m->n == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 1024;
		m->recs = realloc(m->recs, m->cap * sizeof(*m->recs));
		if (!m->recs)
			abort();
	}
	r = &m->recs[m->n++];
	memset(r, 0, sizeof(*r));
	memcpy(r->id, stored->id, sizeof(r->id));
	r->created_at = stored->created_at;
	r->seq = stored->seq;
	snprintf(r->prompt, sizeof(r->prompt), "%s", stored->prompt);
	snprintf(r->project, sizeof(r->project), "%s", stored->project);
	snprintf(r->session, sizeof(r->session), "%s", stored->session_id);
	snprintf(r->client, sizeof(r->client), "%s", stored->client);
}

void model_free(struct model *m)
{
	free(m->recs);
	memset(m, 0, sizeof(*m));
}

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
	return a->seq < b->seq ? 1 : a->seq > b->seq ? -1 : 0;
}

static int oldest_first(const void *x, const void *y)
{
	return -newest_first(x, y);
}

void model_random_since(struct model_query *q, int64_t t)
{
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

size_t model_list(const struct model *m, const struct model_query *q,
			 const struct model_rec **want)
{
	size_t n = 0;

	if (q->limit <= 0)
		return 0;
	for (size_t i = 0; i < m->n; i++) {
		if (model_matches(&m->recs[i], q))
			want[n++] = &m->recs[i];
	}
	qsort(want, n, sizeof(*want), newest_first);
	return n < (size_t)q->limit ? n : (size_t)q->limit;
}

void model_check_query(atolog_store *s, const struct model *m,
		       const struct model_query *q)
{
	const struct model_rec **want = calloc(m->n + 1, sizeof(*want));
	atolog_query aq = { .project = q->project_given, .session_id = q->session,
			    .client = q->client,
			    .since = q->since != INT64_MIN ? q->since_text : NULL,
			    .limit = q->limit };
	size_t n = model_list(m, q, want), got = 0;
	const atolog_interaction *rec;
	atolog_iter *it = NULL;
	int rc;

	CHECK_OK(atolog_list_open(s, &aq, &it), s);
	while (it && (rc = atolog_iter_next(it, &rec)) == ATOLOG_OK) {
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
	if (it) {
		CHECK_RC(rc, ATOLOG_DONE, s);
		CHECK_INT(got, n);
	}
	atolog_iter_close(it);
	free(want);
}

size_t model_session(const struct model *m, const char *session,
		     const struct model_rec **want)
{
	size_t n = 0;

	for (size_t i = 0; i < m->n; i++) {
		if (strcmp(m->recs[i].session, session) == 0)
			want[n++] = &m->recs[i];
	}
	qsort(want, n, sizeof(*want), oldest_first);
	return n;
}

void model_check_replay(atolog_store *s, const struct model *m,
			const char *session)
{
	const struct model_rec **want = calloc(m->n + 1, sizeof(*want));
	const atolog_interaction *rec;
	atolog_iter *it = NULL;
	size_t n = model_session(m, session, want), got = 0;
	int rc;

	CHECK_OK(atolog_replay_open(s, session, &it), s);
	while (it && (rc = atolog_iter_next(it, &rec)) == ATOLOG_OK) {
		if (got < n) {
			CHECK_STR(rec->id, want[got]->id);
			CHECK_STR(rec->session_id, session);
		}
		got++;
	}
	if (it) {
		CHECK_RC(rc, ATOLOG_DONE, s);
		CHECK_INT(got, n);
	}
	atolog_iter_close(it);
	free(want);
}

void model_check_get(atolog_store *s, const struct model_rec *r)
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
	atolog_interaction_free(rec);
}
