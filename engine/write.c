/*
 * write.c - the write path: interactions and project registrations become
 * frames at the end of the active segment, then index entries.
 *
 * One commit, under the writer lock:
 *   1. roll to a new segment if this frame would pass the size limit
 *      (seal frame, fdatasync, then create the next segment);
 *   2. give the frame the next sequence number and its checksum;
 *   3. append it (a failed append is cut back: engine/segment.c);
 *   4. fdatasync in sync mode always (a failed sync poisons the handle);
 *   5. index it, with the new state, in one LMDB transaction; if that
 *      fails, cut the frame off again, so the caller's error is the truth;
 *   6. only then return: the record is durable and visible to readers.
 * Validation, id generation and encoding happen before the lock.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "error.h"

/* One frame to commit, and what the index learns from it. */
struct commit {
	msgpack_sbuffer *frame; /* FRAME_HEADER_SIZE reserved, then payload */
	uint8_t kind;
	struct index_entry *entry;             /* records */
	const struct index_registry_row *rows; /* registrations */
	size_t n_rows;
	uint64_t seq; /* out */
};

int writer_init(atolog_store *s)
{
	pthread_mutex_init(&s->w.lock, NULL);
	uuid_v7_init(&s->w.ids);
	io_faults_init(&s->w.io);
	return ATOLOG_OK;
}

void writer_destroy(atolog_store *s)
{
	if (s->readonly)
		return;
	if (s->w.active.fd >= 0) {
		/* A clean close leaves everything durable, in every sync mode. */
		if (!s->w.failed)
			fdatasync(s->w.active.fd);
		close(s->w.active.fd);
		s->w.active.fd = -1;
	}
	pthread_mutex_destroy(&s->w.lock);
}

/* A buffer with room for the frame header in front of the payload. */
static int frame_buffer_init(msgpack_sbuffer *sb)
{
	static const char header[FRAME_HEADER_SIZE];

	msgpack_sbuffer_init(sb);
	if (msgpack_sbuffer_write(sb, header, sizeof(header)) != 0)
		return err_set(ENOMEM, "allocating a frame");
	return ATOLOG_OK;
}

static int writer_sync(atolog_store *s)
{
	int rc = io_fdatasync(&s->w.io, s->w.active.fd);

	if (rc == 0)
		return ATOLOG_OK;
	/* After a failed fdatasync the kernel may have dropped the dirty
	 * pages: what is on disk is unknown, so stop writing (invariant 4). */
	s->w.failed = true;
	return err_errno(rc, "segment %016" PRIx64 ": fdatasync", s->w.active.id);
}

/* Seals the active segment and starts the next one. */
static int writer_roll(atolog_store *s)
{
	struct segment next;
	msgpack_sbuffer sb;
	int rc = frame_buffer_init(&sb);

	if (rc == ATOLOG_OK)
		rc = seal_encode(s->w.next_seq - 1, &sb);
	if (rc == ATOLOG_OK) {
		frame_header_write((uint8_t *)sb.data, FRAME_KIND_SEAL, 0,
				   (uint32_t)(sb.size - FRAME_HEADER_SIZE));
		rc = segment_append(&s->w.io, &s->w.active, sb.data, sb.size,
				    &s->w.failed);
	}
	/* The seal must be durable before a newer segment exists: recovery
	 * treats an unsealed older segment as damage. */
	if (rc == ATOLOG_OK)
		rc = writer_sync(s);
	if (rc == ATOLOG_OK) {
		s->w.active.size += sb.size;
		rc = segment_create(&s->w.io, s->segment_dir, s->w.active.id + 1,
				    s->store_id, &next);
		if (rc != ATOLOG_OK)
			s->w.failed = true; /* sealed with no successor */
	}
	if (rc == ATOLOG_OK) {
		close(s->w.active.fd);
		s->w.active = next;
	}
	msgpack_sbuffer_destroy(&sb);
	return rc;
}

/* Takes a frame back off the log after its index write failed. */
static void writer_unappend(atolog_store *s, uint64_t offset)
{
	int rc = io_ftruncate(&s->w.io, s->w.active.fd, offset);

	if (rc == 0 && s->opts.sync == ATOLOG_SYNC_ALWAYS)
		rc = io_fdatasync(&s->w.io, s->w.active.fd);
	if (rc != 0)
		s->w.failed = true;
}

static struct index_state writer_next_state(const atolog_store *s,
					    const struct commit *c,
					    uint64_t offset, uint32_t length)
{
	struct index_state st = s->w.state;

	st.segment = s->w.active.id;
	st.end_offset = offset + length;
	st.last_frame_offset = offset;
	st.last_frame_length = length;
	st.last_seq = c->seq;
	if (c->kind == FRAME_KIND_RECORD)
		st.n_records++;
	return st;
}

static int writer_index(atolog_store *s, struct commit *c, uint64_t offset,
			uint32_t length)
{
	struct index_state st = writer_next_state(s, c, offset, length);
	struct index_batch b = { .state = &st, .registry = c->rows,
				 .n_registry = c->n_rows };
	int rc;

	if (c->entry) {
		c->entry->seq = c->seq;
		c->entry->loc.segment = s->w.active.id;
		c->entry->loc.offset = offset;
		c->entry->loc.length = length;
		b.entries = c->entry;
		b.n_entries = 1;
	}
	rc = index_apply(s->idx, &b, NULL);
	if (rc == ATOLOG_OK)
		s->w.state = st;
	return rc;
}

/* Steps 1-6 of the header comment; called with the writer lock held. */
static int writer_commit_locked(atolog_store *s, struct commit *c)
{
	uint32_t length = (uint32_t)c->frame->size;
	uint64_t offset;
	int rc;

	if (s->w.failed)
		return err_set(ATOLOG_FAILED, "an earlier I/O error stopped writes; "
			       "reopen the store");
	if (s->w.active.size + length > s->opts.segment_size &&
	    s->w.active.size > SEGMENT_HEADER_SIZE) {
		rc = writer_roll(s);
		if (rc != ATOLOG_OK)
			return rc;
	}
	c->seq = s->w.next_seq;
	frame_header_write((uint8_t *)c->frame->data, c->kind, c->seq,
			   length - FRAME_HEADER_SIZE);
	offset = s->w.active.size;
	rc = segment_append(&s->w.io, &s->w.active, c->frame->data, length,
			    &s->w.failed);
	if (rc == ATOLOG_OK && s->opts.sync == ATOLOG_SYNC_ALWAYS)
		rc = writer_sync(s);
	if (rc != ATOLOG_OK)
		return rc;
	rc = writer_index(s, c, offset, length);
	if (rc != ATOLOG_OK) {
		writer_unappend(s, offset);
		return rc;
	}
	s->w.active.size += length;
	s->w.next_seq++;
	return ATOLOG_OK;
}

static int writer_commit(atolog_store *s, struct commit *c)
{
	struct index_loc loc;
	int rc = ATOLOG_OK;

	pthread_mutex_lock(&s->w.lock);
	if (c->entry) {
		rc = index_lookup(s->idx, c->entry->id, &loc);
		if (rc == ATOLOG_OK) {
			char id[ATOLOG_ID_TEXT_LEN + 1];

			uuid_format(c->entry->id, id);
			rc = err_set(ATOLOG_EXISTS, "an interaction with id %s "
				     "is already stored", id);
		} else if (rc == ATOLOG_NOTFOUND) {
			rc = ATOLOG_OK;
		}
	}
	if (rc == ATOLOG_OK)
		rc = writer_commit_locked(s, c);
	pthread_mutex_unlock(&s->w.lock);
	return rc;
}

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
	pthread_mutex_lock(&s->w.lock);
	rc = uuid_v7_next(&s->w.ids, now, f->id);
	pthread_mutex_unlock(&s->w.lock);
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

int atolog_interaction_record(atolog_store *s, const atolog_interaction *src,
			      atolog_interaction **out)
{
	struct record_input in;
	struct index_entry entry = { 0 };
	struct commit c = { .kind = FRAME_KIND_RECORD, .entry = &entry };
	msgpack_sbuffer sb = { 0 };
	char *project = NULL;
	int rc;

	err_begin(s);
	if (s->readonly)
		return err_set(ATOLOG_READONLY, "the store is open read-only");
	rc = record_input_init(&in, src);
	if (rc != ATOLOG_OK)
		return rc;
	rc = record_identity(s, src, &in.fields);
	if (rc == ATOLOG_OK)
		rc = store_resolve_project(s, in.fields.project.ptr,
					   in.fields.project.len, &project);
	if (rc == ATOLOG_OK) {
		in.fields.project.ptr = project;
		in.fields.project.len = strlen(project);
		rc = frame_buffer_init(&sb);
	}
	if (rc == ATOLOG_OK)
		rc = record_encode(&in.fields, &sb);
	if (rc == ATOLOG_OK) {
		entry_of(&in.fields, &entry);
		c.frame = &sb;
		rc = writer_commit(s, &c);
	}
	if (rc == ATOLOG_OK && out)
		rc = record_fields_flatten(&in.fields, c.seq, out);
	msgpack_sbuffer_destroy(&sb);
	free(project);
	record_input_free(&in);
	return rc;
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
	struct commit c = { .kind = FRAME_KIND_REGISTRY, .rows = r->rows,
			    .n_rows = r->n_rows };
	msgpack_sbuffer sb = { 0 };
	int rc;

	if (r->n_rows == 0)
		return ATOLOG_OK; /* everything was registered already */
	rc = frame_buffer_init(&sb);
	if (rc == ATOLOG_OK)
		rc = registry_encode(canonical, r->aliases, r->n_aliases, &sb);
	if (rc == ATOLOG_OK) {
		c.frame = &sb;
		rc = writer_commit_locked(s, &c);
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
	 * claim an alias. */
	pthread_mutex_lock(&s->w.lock);
	if (rc == ATOLOG_OK)
		rc = registration_name(s, r);
	if (rc == ATOLOG_OK)
		rc = registration_aliases(s, r, aliases, n_aliases);
	if (rc == ATOLOG_OK)
		rc = registration_commit(s, r);
	pthread_mutex_unlock(&s->w.lock);
	free(r);
	return rc;
}
