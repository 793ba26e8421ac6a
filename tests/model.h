/*
 * model.h - the naive model that query results are checked against: a
 * plain array of what was stored, filtered and sorted by brute force.
 * Used by every test that compares atolog's answers with "the truth".
 */
#ifndef ATOLOG_TEST_MODEL_H
#define ATOLOG_TEST_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "atolog.h"

struct model_rec {
	char id[ATOLOG_ID_TEXT_LEN + 1];
	int64_t created_at;
	uint64_t seq;
	char prompt[96];
	char project[48]; /* canonical */
	char session[48];
	char client[48];
};

struct model {
	struct model_rec *recs;
	size_t n, cap;
};

/* Adds what the store returned for a recorded interaction. */
void model_add(struct model *m, const atolog_interaction *stored);
void model_free(struct model *m);

struct model_query {
	const char *project_given; /* as passed to atolog (alias or not) */
	const char *project;       /* canonical; NULL: any */
	const char *session;       /* NULL: any */
	const char *client;        /* NULL: any */
	char since_text[48];
	int64_t since;             /* INT64_MIN: no bound */
	long limit;
};

/* Sets q->since_text to t in one of several ISO shapes (chosen by the
 * test's random generator) and q->since to the whole second it means. */
void model_random_since(struct model_query *q, int64_t t);

/* The model's answer to q, newest first, into want (room for m->n);
 * returns how many are filled. */
size_t model_list(const struct model *m, const struct model_query *q,
		  const struct model_rec **want);
/* A session's records, oldest first, into want; returns how many. */
size_t model_session(const struct model *m, const char *session,
		     const struct model_rec **want);

/* Runs q on the store and checks ids and order against the model. */
void model_check_query(atolog_store *s, const struct model *m,
		       const struct model_query *q);
/* Replays a session and checks it against the model. */
void model_check_replay(atolog_store *s, const struct model *m,
			const char *session);
/* Gets r by id and checks every field the model knows. */
void model_check_get(atolog_store *s, const struct model_rec *r);

#endif
