/*
 * follow.c - the change feed: interactions in the order the store
 * numbered them, from a sequence number on, as the index takes them in.
 *
 * The feed walks by_seq (index layout 2), a cursor seek past the last
 * number it passed, so it works from any process, whatever segments roll
 * or compactions move meanwhile (only by_id holds places). The index
 * commits records in the order the writer numbered them, so a number once
 * passed is never followed by a smaller one appearing later: a consumer
 * that keeps the last seq it saw resumes with no gap and no duplicate.
 * In the writer's own process the feed runs a moment behind the writes it
 * acknowledged, as the index thread does. While the index is rebuilt
 * (which indexes in log order, and a compaction made that differ from seq
 * order) the feed waits: it would otherwise pass numbers not yet indexed.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "engine.h"
#include "error.h"

struct atolog_follow {
	atolog_store *store;
	struct index_filter filter; /* names (compared by hash), since */
	char *project, *session, *client; /* the same, compared exactly */
	char *project_given;        /* resolved again at every refill: an
				     * alias may be registered meanwhile */
	uint64_t position;          /* the last seq passed */
	struct index_hit hits[ITER_BATCH];
	size_t n, pos;
	atolog_interaction *current;
};

static int copy_name(const char *given, char **out, struct index_name *name)
{
	if (!given || !*given)
		return ATOLOG_OK;
	*out = strdup(given);
	if (!*out)
		return err_set(ENOMEM, "opening a feed");
	*name = (struct index_name){ *out, strlen(*out) };
	return ATOLOG_OK;
}

/* The project filter, as the registry says now. */
static int follow_resolve(atolog_follow *f)
{
	char *now;
	int rc = store_resolve_project(f->store, f->project_given,
				       strlen(f->project_given), &now);

	if (rc != ATOLOG_OK)
		return rc;
	free(f->project);
	f->project = now;
	f->filter.project = (struct index_name){ now, strlen(now) };
	return ATOLOG_OK;
}

static int follow_filters(atolog_follow *f, const atolog_query *q)
{
	int rc = ATOLOG_OK;

	if (q->project && *q->project) {
		f->project_given = strdup(q->project);
		rc = f->project_given ? follow_resolve(f)
				      : err_set(ENOMEM, "opening a feed");
	}
	if (rc == ATOLOG_OK)
		rc = copy_name(q->session_id, &f->session, &f->filter.session);
	if (rc == ATOLOG_OK)
		rc = copy_name(q->client, &f->client, &f->filter.client);
	if (rc == ATOLOG_OK && q->since && *q->since) {
		rc = time_parse(q->since, &f->filter.since);
		if (rc != ATOLOG_OK)
			rc = err_context(rc, "since");
		else
			f->filter.since = time_floor_second(f->filter.since);
	}
	return rc;
}

int atolog_follow_open(atolog_store *s, const atolog_query *q, uint64_t after_seq,
		       atolog_follow **out)
{
	atolog_query none = { 0 };
	atolog_follow *f;
	int rc;

	err_begin(s);
	if (!out)
		return err_set(ATOLOG_INVALID, "no feed to open");
	f = calloc(1, sizeof(*f));
	if (!f)
		return err_set(ENOMEM, "opening a feed");
	f->store = s;
	f->position = after_seq;
	f->filter.since = INT64_MIN;
	rc = follow_filters(f, q ? q : &none);
	if (rc != ATOLOG_OK) {
		atolog_follow_close(f);
		return rc;
	}
	*out = f;
	return ATOLOG_OK;
}

/* Whether some process is the store's writer (it holds LOCK). */
static bool writer_alive(atolog_store *s)
{
	char path[PATH_MAX];
	int fd;
	bool alive;

	if (s->lock_fd >= 0)
		return true; /* this handle is */
	snprintf(path, sizeof(path), "%s/%s", s->dir, STORE_LOCK_FILE);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	alive = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
	close(fd); /* also lets go of a shared lock taken */
	return alive;
}

/* One look at the index from the position on. An alias registered
 * between resolving the project and the scan would let the scan pass a
 * record under the new name: the name is resolved again after it, and a
 * change means the look is made again from where it began. */
static int follow_look(atolog_follow *f, bool *rebuilding)
{
	uint64_t start = f->position;
	char *used = NULL;
	int rc;

	for (;;) {
		rc = f->project_given ? follow_resolve(f) : ATOLOG_OK;
		if (rc == ATOLOG_OK && f->project_given) {
			free(used);
			used = strdup(f->project);
			if (!used)
				rc = err_set(ENOMEM, "following the store");
		}
		if (rc == ATOLOG_OK)
			rc = index_seq_scan(f->store->idx, &f->filter, &f->position,
					    f->hits, ITER_BATCH, &f->n, rebuilding);
		if (rc != ATOLOG_OK || !f->project_given)
			break;
		rc = follow_resolve(f);
		if (rc != ATOLOG_OK || strcmp(used, f->project) == 0)
			break;
		f->position = start; /* an alias came meanwhile: again */
		f->n = 0;
	}
	free(used);
	return rc;
}

/* The next hit, refilling from the index; NULL when caught up. */
static int follow_pick(atolog_follow *f, const struct index_hit **hit)
{
	*hit = NULL;
	while (f->pos == f->n) {
		uint64_t before = f->position;
		bool rebuilding;
		int rc;

		f->pos = f->n = 0;
		rc = follow_look(f, &rebuilding);
		if (rc != ATOLOG_OK)
			return rc;
		/* A rebuild that nobody runs any more never ends by itself. */
		if (rebuilding && !writer_alive(f->store))
			return err_set(ATOLOG_CORRUPT, "the index is incomplete (a rebuild "
				       "stopped): open the store for writing to finish it");
		if (f->n == 0 && f->position == before)
			return ATOLOG_OK; /* nothing more, for now */
	}
	*hit = &f->hits[f->pos++];
	return ATOLOG_OK;
}

int atolog_follow_next(atolog_follow *f, const atolog_interaction **rec)
{
	err_begin(f->store);
	free(f->current);
	f->current = NULL;
	segment_fds_refresh(&f->store->fds, f->store->idx);
	for (;;) {
		const struct index_hit *hit;
		bool taken;
		int rc = follow_pick(f, &hit);

		if (rc != ATOLOG_OK)
			return rc;
		if (!hit)
			return ATOLOG_DONE;
		rc = store_take_hit(f->store, hit, f->project, f->session, f->client,
				    &f->current, &taken);
		if (rc != ATOLOG_OK)
			return rc;
		if (taken) {
			*rec = f->current;
			return ATOLOG_OK;
		}
	}
}

uint64_t atolog_follow_position(const atolog_follow *f)
{
	return f->pos < f->n ? f->hits[f->pos].seq - 1 : f->position;
}

void atolog_follow_close(atolog_follow *f)
{
	if (!f)
		return;
	free(f->current);
	free(f->project);
	free(f->project_given);
	free(f->session);
	free(f->client);
	free(f);
}
