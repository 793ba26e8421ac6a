/*
 * write.c - what the write path does in the caller's thread: validate,
 * canonicalise the project, give the record its id and time, encode it,
 * then hand the frames to the commit pipeline (engine/commit.c) and wait.
 * Encoding here, before the request is queued, is what lets many agents'
 * records be prepared in parallel while one leader writes.
 *
 * Project registrations take the same path under registry_lock, so that
 * checking an alias is free and claiming it cannot race.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"

/* ------------------------------------------------------------------------
 * Interactions.
 */

/* The caller's id and created_at, when given; *given says which. */
static int record_given_identity(const atolog_interaction *src,
				 struct record_fields *f, bool *id_given)
{
	int rc;

	*id_given = src->id[0] != '\0';
	if (src->has_created_at) {
		if (src->created_at < TIME_MIN_US || src->created_at > TIME_MAX_US)
			return err_set(ATOLOG_INVALID,
				       "created_at %" PRId64 " is outside years 1..9999",
				       src->created_at);
		f->created_at = src->created_at;
	}
	if (*id_given) {
		rc = uuid_parse(src->id, f->id);
		if (rc != ATOLOG_OK)
			return err_context(rc, "id");
	}
	return ATOLOG_OK;
}

static int record_identity(atolog_store *s, const atolog_interaction *src,
			   struct record_fields *f)
{
	int64_t now = time_now_us();
	bool id_given;
	int rc = record_given_identity(src, f, &id_given);

	if (rc != ATOLOG_OK)
		return rc;
	if (!src->has_created_at)
		f->created_at = now;
	if (id_given)
		return ATOLOG_OK;
	pthread_mutex_lock(&s->w.ids_lock);
	rc = uuid_v7_next(&s->w.ids, now, f->id);
	pthread_mutex_unlock(&s->w.ids_lock);
	return rc;
}

int atolog_interaction_validate(const atolog_interaction *src)
{
	struct record_input in;
	bool id_given;
	int rc;

	err_begin(NULL);
	rc = record_input_init(&in, src);
	if (rc != ATOLOG_OK)
		return rc;
	rc = record_given_identity(src, &in.fields, &id_given);
	record_input_free(&in);
	return rc;
}

static void entry_of(const struct record_fields *f, struct index_entry *e)
{
	memcpy(e->id, f->id, UUID_SIZE);
	e->created_at = f->created_at;
	e->project.ptr = f->project.ptr;
	e->project.len = f->project.len;
	e->session.ptr = f->session_id.ptr;
	e->session.len = f->session_id.len;
	e->client.ptr = f->client.ptr;
	e->client.len = f->client.len;
}

/* One interaction on its way: validated, encoded, and what it owns. Its
 * frame lives in a buffer shared by the whole call (one allocation for a
 * batch, not one per record: per-record buffers made the heap grow and
 * shrink by megabytes per batch, page faults included). */
struct prepared {
	struct record_input in;
	char *project;   /* canonical */
	size_t offset;   /* of the frame in the shared buffer */
};

static int prepare(atolog_store *s, const atolog_interaction *src,
		   struct prepared *p, struct commit_frame *f, msgpack_sbuffer *sb)
{
	int rc = record_input_init(&p->in, src);

	p->offset = sb->size;
	if (rc == ATOLOG_OK)
		rc = record_identity(s, src, &p->in.fields);
	if (rc == ATOLOG_OK)
		rc = store_resolve_project(s, p->in.fields.project.ptr,
					   p->in.fields.project.len, &p->project);
	if (rc == ATOLOG_OK) {
		p->in.fields.project.ptr = p->project;
		p->in.fields.project.len = strlen(p->project);
		rc = frame_reserve_header(sb);
	}
	if (rc == ATOLOG_OK)
		rc = record_encode(&p->in.fields, sb);
	if (rc != ATOLOG_OK) {
		sb->size = p->offset; /* nothing of it stays in the buffer */
		return rc;
	}
	f->len = (uint32_t)(sb->size - p->offset);
	f->kind = FRAME_KIND_RECORD;
	f->id_given = src->id[0] != '\0';
	entry_of(&p->in.fields, &f->entry);
	return ATOLOG_OK;
}

static void prepared_free(struct prepared *p)
{
	free(p->project);
	record_input_free(&p->in);
}

/* Submits every frame; those that did not prepare carry their code, and
 * the leader passes over them (it writes only frames still OK). */
static void submit_prepared(atolog_store *s, struct commit_frame *frames,
			    size_t n, int *rcs)
{
	struct commit_req req = { .frames = frames, .n_frames = n };
	bool any = false;

	for (size_t i = 0; i < n; i++) {
		frames[i].rc = rcs[i];
		any |= rcs[i] == ATOLOG_OK;
	}
	if (any)
		commit_submit(s, &req);
	for (size_t i = 0; i < n; i++)
		rcs[i] = frames[i].rc;
}

/* Notes the failure of the lowest-numbered item of a batch, with its
 * number: items fail before the commit and in it, in either order. */
static void note_first(atolog_store *s, size_t n, size_t i, int rc, int *first,
		       size_t *first_i, char *msg, size_t size)
{
	if (rc == ATOLOG_OK || (*first != ATOLOG_OK && *first_i <= i))
		return;
	*first = rc;
	*first_i = i;
	if (n == 1)
		snprintf(msg, size, "%s", err_message(s));
	else
		snprintf(msg, size, "item %zu: %s", i, err_message(s));
}

#define FRAME_SIZE_SLACK 256 /* keys, headers, ids: per record, roughly */

static size_t text_size(const char *s)
{
	return s ? strlen(s) : 0;
}

/* Sizes the shared buffer once, from the inputs, instead of doubling it
 * (and copying everything) on the way: msgpack is never much larger than
 * its text. */
static void reserve_frames(msgpack_sbuffer *sb, const atolog_interaction *in,
			   size_t n)
{
	size_t total = 0;

	for (size_t i = 0; i < n; i++) {
		const atolog_interaction *x = &in[i];

		total += FRAME_HEADER_SIZE + FRAME_SIZE_SLACK + text_size(x->prompt) +
			 text_size(x->response) + text_size(x->response_summary) +
			 text_size(x->project) + text_size(x->client) +
			 text_size(x->session_id) + text_size(x->context_pack);
		for (size_t k = 0; k < x->n_memories_used && x->memories_used; k++)
			total += text_size(x->memories_used[k]) + 5;
		for (size_t k = 0; k < x->n_chunks_used && x->chunks_used; k++)
			total += text_size(x->chunks_used[k]) + 5;
	}
	sb->data = malloc(total);
	sb->alloc = sb->data ? total : 0; /* if not, it grows as it goes */
}

/* Prepares every item, commits the valid ones as one request, and fills
 * rcs and out; returns the first item's error (or ATOLOG_OK). Each out[i]
 * is made before the commit, so that nothing can fail once an item is
 * stored: an item whose code is not ATOLOG_OK is never in the store. */
static int record_many(atolog_store *s, const atolog_interaction *in, size_t n,
		       int *rcs, atolog_interaction **out)
{
	struct prepared *p = calloc(n + 1, sizeof(*p));
	struct commit_frame *frames = calloc(n + 1, sizeof(*frames));
	char first_msg[ERR_MSG_SIZE] = "";
	int first = ATOLOG_OK;
	size_t first_i = 0;
	msgpack_sbuffer sb;

	if (!p || !frames) {
		free(p);
		free(frames);
		for (size_t i = 0; i < n; i++) {
			rcs[i] = ENOMEM;
			if (out)
				out[i] = NULL;
		}
		return err_set(ENOMEM, "recording");
	}
	msgpack_sbuffer_init(&sb);
	reserve_frames(&sb, in, n);
	for (size_t i = 0; i < n; i++) {
		if (out)
			out[i] = NULL;
		rcs[i] = prepare(s, &in[i], &p[i], &frames[i], &sb);
		if (rcs[i] == ATOLOG_OK && out)
			rcs[i] = record_fields_flatten(&p[i].in.fields, 0, &out[i]);
		note_first(s, n, i, rcs[i], &first, &first_i, first_msg,
			   sizeof(first_msg));
	}
	for (size_t i = 0; i < n; i++)
		frames[i].data = (uint8_t *)sb.data + p[i].offset;
	submit_prepared(s, frames, n, rcs);
	for (size_t i = 0; i < n; i++) {
		if (out && out[i] && rcs[i] == ATOLOG_OK) {
			out[i]->seq = frames[i].seq;
		} else if (out && out[i]) {
			atolog_interaction_free(out[i]);
			out[i] = NULL;
		}
		note_first(s, n, i, rcs[i], &first, &first_i, first_msg,
			   sizeof(first_msg));
		prepared_free(&p[i]);
	}
	msgpack_sbuffer_destroy(&sb);
	free(p);
	free(frames);
	return first == ATOLOG_OK ? ATOLOG_OK : err_set(first, "%s", first_msg);
}

int atolog_interaction_record_batch(atolog_store *s, const atolog_interaction *in,
				    size_t n, int *rcs, atolog_interaction **out)
{
	err_begin(s);
	if (s->readonly)
		return err_set(ATOLOG_READONLY, "the store is open read-only");
	if (n > 0 && (!in || !rcs))
		return err_set(ATOLOG_INVALID, "record_batch needs items and codes");
	return record_many(s, in, n, rcs, out);
}

int atolog_interaction_record(atolog_store *s, const atolog_interaction *src,
			      atolog_interaction **out)
{
	int rc;

	err_begin(s);
	if (s->readonly)
		return err_set(ATOLOG_READONLY, "the store is open read-only");
	if (!src)
		return err_set(ATOLOG_INVALID, "no interaction given");
	return record_many(s, src, 1, &rc, out);
}

/* ------------------------------------------------------------------------
 * Project registrations.
 */

struct registration {
	char canonical[ATOLOG_NAME_MAX_BYTES + 1];
	struct text name;
	struct text aliases[ATOLOG_ALIASES_MAX];
	size_t n_aliases;
	char keys[ATOLOG_ALIASES_MAX + 1][ATOLOG_NAME_MAX_BYTES + 1];
	struct index_registry_row rows[ATOLOG_ALIASES_MAX + 1];
	size_t n_rows;
};

/* Trims blanks; checks a project name or alias. */
static int registry_name(const char *what, const char *s, struct text *out)
{
	if (!s)
		return err_set(ATOLOG_INVALID, "%s is NULL", what);
	*out = text_trim(s, strlen(s));
	if (out->len == 0)
		return err_set(ATOLOG_INVALID, "%s must be non-empty", what);
	return record_check_name(what, out->ptr, out->len);
}

/* Who owns a folded key now: *owner malloc'ed, NULL when nobody. */
static int registry_owner(atolog_store *s, const char *key, size_t len,
			  char **owner)
{
	struct index_name k = { .ptr = key, .len = len };
	int rc = index_registry_get(s->idx, k, owner);

	if (rc == ATOLOG_NOTFOUND) {
		*owner = NULL;
		return ATOLOG_OK;
	}
	return rc;
}

static void registration_row(struct registration *r, struct text spelling,
			     size_t key_len)
{
	struct index_registry_row *row = &r->rows[r->n_rows];

	row->key.ptr = r->keys[r->n_rows];
	row->key.len = key_len;
	row->canonical.ptr = r->canonical;
	row->canonical.len = strlen(r->canonical);
	row->spelling.ptr = spelling.ptr;
	row->spelling.len = spelling.len;
	r->n_rows++;
}

/* Decides the canonical name: an existing project keeps its spelling. */
static int registration_name(atolog_store *s, struct registration *r)
{
	size_t key_len = text_fold_name(r->name.ptr, r->name.len, r->keys[0]);
	char owner_key[ATOLOG_NAME_MAX_BYTES + 1];
	char *owner;
	int rc = registry_owner(s, r->keys[0], key_len, &owner);

	if (rc != ATOLOG_OK)
		return rc;
	if (owner) {
		text_fold_name(owner, strlen(owner), owner_key);
		if (strcmp(r->keys[0], owner_key) != 0) {
			rc = err_set(ATOLOG_EXISTS, "\"%.*s\" is already an alias "
				     "of project \"%s\"", (int)r->name.len,
				     r->name.ptr, owner);
			free(owner);
			return rc;
		}
	}
	snprintf(r->canonical, sizeof(r->canonical), "%.*s",
		 owner ? (int)strlen(owner) : (int)r->name.len,
		 owner ? owner : r->name.ptr);
	if (!owner)
		registration_row(r, r->name, key_len);
	free(owner);
	return ATOLOG_OK;
}

/* Adds the aliases nobody owns yet; refuses one another project owns. */
static int registration_aliases(atolog_store *s, struct registration *r,
				const char *const *aliases, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct text t;
		char *owner;
		size_t key_len;
		bool seen = false;
		int rc = registry_name("alias", aliases[i], &t);

		if (rc != ATOLOG_OK)
			return rc;
		key_len = text_fold_name(t.ptr, t.len, r->keys[r->n_rows]);
		for (size_t k = 0; k < r->n_rows && !seen; k++)
			seen = strcmp(r->keys[k], r->keys[r->n_rows]) == 0;
		rc = registry_owner(s, r->keys[r->n_rows], key_len, &owner);
		if (rc != ATOLOG_OK)
			return rc;
		if (owner && strcmp(owner, r->canonical) != 0) {
			rc = err_set(ATOLOG_EXISTS, "alias \"%.*s\" already belongs "
				     "to project \"%s\"", (int)t.len, t.ptr, owner);
			free(owner);
			return rc;
		}
		if (!owner && !seen) {
			r->aliases[r->n_aliases++] = t;
			registration_row(r, t, key_len);
		}
		free(owner);
	}
	return ATOLOG_OK;
}

static int registration_commit(atolog_store *s, struct registration *r)
{
	struct text canonical = { .ptr = r->canonical, .len = strlen(r->canonical) };
	struct commit_frame frame = { .kind = FRAME_KIND_REGISTRY, .rows = r->rows,
				      .n_rows = r->n_rows };
	struct commit_req req = { .frames = &frame, .n_frames = 1 };
	msgpack_sbuffer sb = { 0 };
	int rc;

	if (r->n_rows == 0)
		return ATOLOG_OK; /* everything was registered already */
	msgpack_sbuffer_init(&sb);
	rc = frame_reserve_header(&sb);
	if (rc == ATOLOG_OK)
		rc = registry_encode(canonical, r->aliases, r->n_aliases, &sb);
	if (rc == ATOLOG_OK) {
		frame.data = (uint8_t *)sb.data;
		frame.len = (uint32_t)sb.size;
		rc = commit_submit(s, &req);
	}
	msgpack_sbuffer_destroy(&sb);
	return rc;
}

int atolog_project_add(atolog_store *s, const char *name,
		       const char *const *aliases, size_t n_aliases)
{
	struct registration *r;
	int rc;

	err_begin(s);
	if (s->readonly)
		return err_set(ATOLOG_READONLY, "the store is open read-only");
	if (n_aliases > ATOLOG_ALIASES_MAX)
		return err_set(ATOLOG_TOOBIG, "%zu aliases, over the limit of %u",
			       n_aliases, ATOLOG_ALIASES_MAX);
	if (n_aliases > 0 && !aliases)
		return err_set(ATOLOG_INVALID, "aliases is NULL");
	r = calloc(1, sizeof(*r));
	if (!r)
		return err_set(ENOMEM, "registering a project");
	rc = registry_name("project name", name, &r->name);
	/* Check and write under one lock, so two registrations cannot both
	 * claim an alias; the commit returns once the index has it. */
	pthread_mutex_lock(&s->w.registry_lock);
	if (rc == ATOLOG_OK)
		rc = registration_name(s, r);
	if (rc == ATOLOG_OK)
		rc = registration_aliases(s, r, aliases, n_aliases);
	if (rc == ATOLOG_OK)
		rc = registration_commit(s, r);
	pthread_mutex_unlock(&s->w.registry_lock);
	free(r);
	return rc;
}
