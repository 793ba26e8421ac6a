/*
 * read.c - the read path: get by id, list with filters, replay of a
 * session. Readers take no lock against the writer: the index names only
 * complete frames, and every frame is checked against its checksum before
 * anything in it is believed, so a damaged record is reported (segment,
 * offset) instead of served.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "error.h"

int store_read_record(atolog_store *s, const struct index_loc *loc,
		      struct record_view *view, uint8_t **frame)
{
	int fd, rc;

	memset(view, 0, sizeof(*view));
	*frame = NULL;
	rc = segment_fds_get(&s->fds, loc->segment, &fd);
	if (rc != ATOLOG_OK)
		return rc;
	rc = segment_read_frame(fd, loc->segment, loc->offset, loc->length,
				FRAME_KIND_RECORD, frame);
	segment_fds_put(&s->fds, loc->segment, fd);
	if (rc != ATOLOG_OK)
		return rc;
	rc = record_view_decode(view, *frame + FRAME_HEADER_SIZE,
				loc->length - FRAME_HEADER_SIZE);
	if (rc == ATOLOG_CORRUPT)
		rc = err_context(rc, "segment %016" PRIx64 " offset %" PRIu64,
				 loc->segment, loc->offset);
	return rc;
}

/*
 * Reads the record of id that the index placed at loc. A compaction may
 * have moved it since the index was read, and deleted the segment: a
 * segment id is never used twice, so a file that is gone means exactly
 * that, and the index, read again, says where the record is now (or, if
 * retention removed it, ATOLOG_NOTFOUND). A frame that is there but is
 * not the record of id is damage.
 */
static int read_located(atolog_store *s, const uint8_t id[UUID_SIZE],
			struct index_loc loc, struct record_view *view,
			uint8_t **frame)
{
	int rc;

	for (int tries = 0;; tries++) {
		struct index_loc now;

		rc = store_read_record(s, &loc, view, frame);
		if (rc != ENOENT || tries == READ_RELOCATE_MAX)
			break;
		record_view_free(view);
		rc = index_lookup(s->idx, id, &now);
		if (rc != ATOLOG_OK)
			return rc; /* NOTFOUND: retention removed it */
		rc = ENOENT;
		if (now.segment == loc.segment && now.offset == loc.offset)
			break; /* the index still names the missing file */
		loc = now;
	}
	if (rc == ATOLOG_OK && memcmp(view->fields.id, id, UUID_SIZE) != 0) {
		rc = err_set(ATOLOG_CORRUPT, "segment %016" PRIx64 " offset %" PRIu64
			     ": the index points at another interaction",
			     loc.segment, loc.offset);
	}
	if (rc == ENOENT)
		rc = err_errno(rc, "segment %016" PRIx64 ", which the index names, "
			       "is missing", loc.segment);
	if (rc != ATOLOG_OK) {
		record_view_free(view);
		free(*frame);
		*frame = NULL;
	}
	return rc;
}

/* Reads the record at loc, insisting that it is the one with id. */
static int read_checked(atolog_store *s, const struct index_loc *loc,
			const uint8_t id[UUID_SIZE], atolog_interaction **out)
{
	struct record_view view;
	uint8_t *frame;
	int rc = read_located(s, id, *loc, &view, &frame);

	if (rc == ATOLOG_NOTFOUND)
		return err_set(rc, "the interaction was removed by a compaction");
	if (rc == ATOLOG_OK)
		rc = record_fields_flatten(&view.fields, frame_seq_of(frame), out);
	record_view_free(&view);
	free(frame);
	return rc;
}

int atolog_interaction_get(atolog_store *s, const char *id_text,
			   atolog_interaction **out)
{
	uint8_t id[UUID_SIZE];
	struct index_loc loc;
	int rc;

	err_begin(s);
	rc = uuid_parse(id_text, id);
	if (rc != ATOLOG_OK)
		return rc;
	segment_fds_refresh(&s->fds, s->idx);
	/* The recent set first: a record leaves it only once LMDB has it. */
	if (store_recent(s) && recent_find(store_recent(s), id, &loc))
		return read_checked(s, &loc, id, out);
	rc = index_lookup(s->idx, id, &loc);
	if (rc == ATOLOG_NOTFOUND)
		return err_set(rc, "no interaction with id %s", id_text);
	if (rc != ATOLOG_OK)
		return rc;
	return read_checked(s, &loc, id, out);
}

void atolog_interaction_free(atolog_interaction *rec)
{
	free(rec); /* one block: codec/record.c, record_fields_flatten */
}

struct recent *store_recent(atolog_store *s)
{
	if (s->writer_ready && s->w.started)
		return &s->w.recent;
	return s->tail_ready ? &s->tail : NULL;
}

/* ------------------------------------------------------------------------
 * Iterators: a merge of two streams in the same order, the index scan and
 * the recent set as it was when the iterator opened (engine/recent.c). A
 * record committed to LMDB after that shows in both, with the same key:
 * it is taken once.
 */

struct atolog_iter {
	atolog_store *store;
	struct index_scan *scan;
	struct index_hit hits[ITER_BATCH];
	size_t n_hits, pos;
	bool scan_done;
	struct index_hit *recent; /* sorted in the iterator's order */
	size_t n_recent, recent_pos;
	bool oldest_first;
	long remaining; /* < 0: no limit */
	/* The exact filters: the index compares hashes, this compares bytes. */
	char *project, *session, *client;
	atolog_interaction *current;
	bool done;
};

static bool text_equals(const char *want, struct text got)
{
	return !want || (strlen(want) == got.len &&
			 memcmp(want, got.ptr, got.len) == 0);
}

int store_take_hit(atolog_store *s, const struct index_hit *hit,
		   const char *project, const char *session, const char *client,
		   atolog_interaction **out, bool *taken)
{
	struct record_view view;
	uint8_t *frame;
	int rc = read_located(s, hit->id, hit->loc, &view, &frame);

	*taken = false;
	if (rc == ATOLOG_NOTFOUND)
		return ATOLOG_OK; /* removed since the index named it: skipped */
	if (rc == ATOLOG_OK && text_equals(project, view.fields.project) &&
	    text_equals(session, view.fields.session_id) &&
	    text_equals(client, view.fields.client)) {
		rc = record_fields_flatten(&view.fields, frame_seq_of(frame), out);
		*taken = rc == ATOLOG_OK;
	}
	record_view_free(&view);
	free(frame);
	return rc;
}

/* Reads one hit; *taken false when a hash collision let it through. */
static int iter_take(atolog_iter *it, const struct index_hit *hit, bool *taken)
{
	return store_take_hit(it->store, hit, it->project, it->session, it->client,
			      &it->current, taken);
}

static int iter_refill(atolog_iter *it)
{
	size_t want = ITER_BATCH;

	if (it->remaining >= 0 && (size_t)it->remaining < want)
		want = (size_t)it->remaining;
	it->pos = 0;
	return index_scan_next(it->scan, it->hits, want, &it->n_hits);
}

/* The next hit of the merged streams in *hit, NULL at the end. */
static int iter_pick(atolog_iter *it, const struct index_hit **hit)
{
	const struct index_hit *scanned, *recent;
	int c;

	*hit = NULL;
	if (it->pos == it->n_hits && !it->scan_done) {
		int rc = iter_refill(it);

		if (rc != ATOLOG_OK)
			return rc;
		it->scan_done = it->n_hits == 0;
	}
	scanned = it->pos < it->n_hits ? &it->hits[it->pos] : NULL;
	recent = it->recent_pos < it->n_recent ? &it->recent[it->recent_pos] : NULL;
	if (!scanned || !recent) {
		*hit = scanned ? scanned : recent;
		it->pos += scanned != NULL;
		it->recent_pos += recent != NULL;
		return ATOLOG_OK;
	}
	c = recent_hit_cmp(scanned, recent);
	if (!it->oldest_first)
		c = -c;
	if (c <= 0) {
		*hit = scanned;
		it->pos++;
		it->recent_pos += c == 0; /* the same record, in both */
	} else {
		*hit = recent;
		it->recent_pos++;
	}
	return ATOLOG_OK;
}

int atolog_iter_next(atolog_iter *it, const atolog_interaction **rec)
{
	int rc;

	err_begin(it->store);
	free(it->current);
	it->current = NULL;
	while (!it->done && it->remaining != 0) {
		const struct index_hit *hit;
		bool taken;

		rc = iter_pick(it, &hit);
		if (rc != ATOLOG_OK || !hit) {
			it->done = true;
			if (rc != ATOLOG_OK)
				return rc;
			break;
		}
		rc = iter_take(it, hit, &taken);
		if (rc != ATOLOG_OK) {
			it->done = true;
			return rc;
		}
		if (taken) {
			if (it->remaining > 0)
				it->remaining--;
			*rec = it->current;
			return ATOLOG_OK;
		}
	}
	it->done = true;
	return ATOLOG_DONE;
}

void atolog_iter_close(atolog_iter *it)
{
	if (!it)
		return;
	index_scan_close(it->scan);
	free(it->recent);
	free(it->current);
	free(it->project);
	free(it->session);
	free(it->client);
	free(it);
}

static bool is_given(const char *s)
{
	return s && *s;
}

static struct index_name name_of(const char *s)
{
	struct index_name n = { .ptr = s, .len = s ? strlen(s) : 0 };

	return n;
}

/* Opens the scan: the bounds and order of f, the iterator's names. */
static int iter_open(atolog_store *s, atolog_iter *it, struct index_filter f)
{
	int rc = ATOLOG_OK;

	f.project = name_of(it->project);
	f.session = name_of(it->session);
	f.client = name_of(it->client);
	it->store = s;
	it->oldest_first = f.oldest_first;
	segment_fds_refresh(&s->fds, s->idx);
	/* The recent set before the scan's first transaction (recent.c). */
	if (store_recent(s))
		rc = recent_collect(store_recent(s), &f, &it->recent, &it->n_recent);
	if (rc == ATOLOG_OK)
		rc = index_scan_open(s->idx, &f, &it->scan);
	return rc;
}

/* Copies the optional filters; the project through the registry. */
static int iter_filters(atolog_store *s, atolog_iter *it, const atolog_query *q)
{
	int rc = ATOLOG_OK;

	if (is_given(q->project))
		rc = store_resolve_project(s, q->project, strlen(q->project),
					   &it->project);
	if (rc == ATOLOG_OK && is_given(q->session_id) &&
	    !(it->session = strdup(q->session_id)))
		rc = err_set(ENOMEM, "opening a query");
	if (rc == ATOLOG_OK && is_given(q->client) &&
	    !(it->client = strdup(q->client)))
		rc = err_set(ENOMEM, "opening a query");
	return rc;
}

/* A query's time bound at whole seconds, as the seed compares them. */
static int query_time(const char *text, const char *what, int64_t *out)
{
	int rc = time_parse(text, out);

	if (rc != ATOLOG_OK)
		return err_context(rc, "%s", what);
	/* 12:00:00.7 lists 12:00:00.2 */
	*out = time_floor_second(*out);
	return ATOLOG_OK;
}

int atolog_list_open(atolog_store *s, const atolog_query *q, atolog_iter **out)
{
	struct index_filter f = { .since = INT64_MIN };
	atolog_iter *it;
	int rc = ATOLOG_OK;

	err_begin(s);
	if (!q)
		return err_set(ATOLOG_INVALID, "no query given");
	it = calloc(1, sizeof(*it));
	if (!it)
		return err_set(ENOMEM, "opening a query");
	it->store = s;
	it->remaining = q->limit > 0 ? q->limit : 0;
	it->done = q->limit <= 0; /* the seed answers [] before looking */
	if (!it->done && is_given(q->since))
		rc = query_time(q->since, "since", &f.since);
	if (rc == ATOLOG_OK && !it->done && is_given(q->until)) {
		f.has_until = true;
		rc = query_time(q->until, "until", &f.until);
	}
	f.oldest_first = q->oldest_first != 0;
	if (rc == ATOLOG_OK && !it->done)
		rc = iter_filters(s, it, q);
	if (rc == ATOLOG_OK && !it->done)
		rc = iter_open(s, it, f);
	if (rc != ATOLOG_OK) {
		atolog_iter_close(it);
		return rc;
	}
	*out = it;
	return ATOLOG_OK;
}

int atolog_replay_open(atolog_store *s, const char *session_id,
		       atolog_iter **out)
{
	atolog_iter *it;
	int rc;

	err_begin(s);
	if (!is_given(session_id))
		return err_set(ATOLOG_INVALID, "replay needs a session_id");
	it = calloc(1, sizeof(*it));
	if (!it || !(it->session = strdup(session_id))) {
		free(it);
		return err_set(ENOMEM, "opening a replay");
	}
	it->remaining = -1;
	rc = iter_open(s, it, (struct index_filter){ .since = INT64_MIN, .oldest_first = true });
	if (rc != ATOLOG_OK) {
		atolog_iter_close(it);
		return rc;
	}
	*out = it;
	return ATOLOG_OK;
}
