/*
 * record.c - an interaction as a msgpack map: validation, encoding,
 * decoding and the flat copy handed to callers.
 *
 * The payload of a record frame is one msgpack map with str keys:
 *
 *   "v"                uint    record version (RECORD_VERSION)
 *   "id"               bin 16  UUID bytes
 *   "created_at"       int     microseconds since 1970, UTC
 *   "prompt"           str     not blank
 *   "response"         str
 *   "response_summary" str
 *   "project"          str     canonical (registry applied)
 *   "client"           str
 *   "session_id"       str
 *   "memories_used"    array of str
 *   "chunks_used"      array of str
 *   "context_pack"     map     the caller's JSON object, natively
 *
 * Forward compatibility: a reader ignores keys it does not know (a newer
 * writer may add some) and treats a missing optional key as empty; "v" is
 * bumped when a key is added. A change an older reader could misread needs
 * a new frame kind, which older readers refuse (ATOLOG_VERSION) instead of
 * misreading. id, created_at and prompt are required.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "error.h"

#define RECORD_KEYS 12
/* The record map, plus the context pack's own nesting. */
#define RECORD_MAX_NESTING (1 + ATOLOG_CONTEXT_MAX_DEPTH)

static int check_text(const char *field, struct text t, size_t max)
{
	if (t.len > max)
		return err_set(ATOLOG_TOOBIG, "%s is %zu bytes, over the limit of %zu",
			       field, t.len, max);
	if (!text_is_utf8(t.ptr, t.len))
		return err_set(ATOLOG_INVALID, "%s is not valid UTF-8", field);
	return ATOLOG_OK;
}

int record_check_name(const char *field, const char *s, size_t len)
{
	struct text t = { .ptr = s, .len = len };

	return check_text(field, t, ATOLOG_NAME_MAX_BYTES);
}

static int check_ref_count(const char *field, size_t n)
{
	if (n > ATOLOG_REFS_MAX)
		return err_set(ATOLOG_TOOBIG, "%s has %zu entries, over the limit of %u",
			       field, n, ATOLOG_REFS_MAX);
	return ATOLOG_OK;
}

static int refs_init(const char *field, const char *const *src, size_t n,
		     struct text *dst)
{
	if (n > 0 && !src)
		return err_set(ATOLOG_INVALID, "%s is NULL with %zu entries", field, n);
	for (size_t i = 0; i < n; i++) {
		int rc;

		if (!src[i])
			return err_set(ATOLOG_INVALID, "%s[%zu] is NULL", field, i);
		dst[i] = text_from_cstr(src[i]);
		rc = check_text(field, dst[i], ATOLOG_REF_MAX_BYTES);
		if (rc != ATOLOG_OK)
			return err_context(rc, "%s[%zu]", field, i);
	}
	return ATOLOG_OK;
}

static int context_init(struct record_input *in, const char *text)
{
	int rc;

	size_t len = text ? strlen(text) : 0;

	msgpack_sbuffer_init(&in->context_sb);
	if (!text)
		return ATOLOG_OK;
	/* msgpack is about as long as its JSON; sizing the buffer here avoids
	 * msgpack-c's 8 KiB first allocation for every record. */
	in->context_sb.data = malloc(len + 64);
	in->context_sb.alloc = in->context_sb.data ? len + 64 : 0;
	rc = context_json_to_msgpack(text, len, &in->context_sb);
	if (rc != ATOLOG_OK)
		return rc;
	in->fields.context_bytes.ptr = in->context_sb.data;
	in->fields.context_bytes.len = in->context_sb.size;
	return ATOLOG_OK;
}

static int check_texts(const struct record_fields *f)
{
	const struct {
		const char *field;
		struct text t;
		size_t max;
	} texts[] = {
		{ "prompt", f->prompt, ATOLOG_TEXT_MAX_BYTES },
		{ "response", f->response, ATOLOG_TEXT_MAX_BYTES },
		{ "response_summary", f->response_summary, ATOLOG_TEXT_MAX_BYTES },
		{ "project", f->project, ATOLOG_NAME_MAX_BYTES },
		{ "client", f->client, ATOLOG_NAME_MAX_BYTES },
		{ "session_id", f->session_id, ATOLOG_NAME_MAX_BYTES },
	};

	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		int rc = check_text(texts[i].field, texts[i].t, texts[i].max);

		if (rc != ATOLOG_OK)
			return rc;
	}
	if (text_is_blank(f->prompt.ptr, f->prompt.len))
		return err_set(ATOLOG_INVALID, "prompt must be non-empty");
	return ATOLOG_OK;
}

int record_input_init(struct record_input *in, const atolog_interaction *src)
{
	struct record_fields *f = &in->fields;
	size_t n_refs;
	int rc;

	memset(in, 0, sizeof(*in));
	if (!src || !src->prompt)
		return err_set(ATOLOG_INVALID, "prompt must be non-empty");
	f->prompt = text_from_cstr(src->prompt);
	f->response = text_from_cstr(src->response);
	f->response_summary = text_from_cstr(src->response_summary);
	f->project = text_from_cstr(src->project);
	f->client = text_from_cstr(src->client);
	f->session_id = text_from_cstr(src->session_id);
	rc = check_texts(f);
	if (rc != ATOLOG_OK)
		return rc;

	rc = check_ref_count("memories_used", src->n_memories_used);
	if (rc == ATOLOG_OK)
		rc = check_ref_count("chunks_used", src->n_chunks_used);
	if (rc != ATOLOG_OK)
		return rc;
	n_refs = src->n_memories_used + src->n_chunks_used;
	in->refs_owned = calloc(n_refs ? n_refs : 1, sizeof(struct text));
	if (!in->refs_owned)
		return err_set(ENOMEM, "allocating memories_used/chunks_used");
	f->memories_used = in->refs_owned;
	f->n_memories_used = src->n_memories_used;
	f->chunks_used = in->refs_owned + src->n_memories_used;
	f->n_chunks_used = src->n_chunks_used;
	rc = refs_init("memories_used", src->memories_used,
		       src->n_memories_used, f->memories_used);
	if (rc == ATOLOG_OK)
		rc = refs_init("chunks_used", src->chunks_used,
			       src->n_chunks_used, f->chunks_used);
	if (rc == ATOLOG_OK)
		rc = context_init(in, src->context_pack);
	if (rc != ATOLOG_OK)
		record_input_free(in);
	return rc;
}

void record_input_free(struct record_input *in)
{
	msgpack_sbuffer_destroy(&in->context_sb);
	free(in->refs_owned);
	memset(in, 0, sizeof(*in));
}

/* ------------------------------------------------------------------------
 * Encoding.
 */

static int pack_key(msgpack_packer *pk, const char *key)
{
	return msgpack_pack_str_with_body(pk, key, strlen(key));
}

static int pack_text(msgpack_packer *pk, const char *key, struct text t)
{
	if (pack_key(pk, key) != 0)
		return -1;
	return msgpack_pack_str_with_body(pk, t.ptr, t.len);
}

static int pack_refs(msgpack_packer *pk, const char *key,
		     const struct text *refs, size_t n)
{
	if (pack_key(pk, key) != 0 || msgpack_pack_array(pk, n) != 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (msgpack_pack_str_with_body(pk, refs[i].ptr, refs[i].len) != 0)
			return -1;
	}
	return 0;
}

static int pack_context(msgpack_packer *pk, msgpack_sbuffer *out,
			const struct record_fields *f)
{
	if (pack_key(pk, "context_pack") != 0)
		return -1;
	/* Already msgpack: appended as it is (the packer writes to out too). */
	if (f->context_bytes.len)
		return msgpack_sbuffer_write(out, f->context_bytes.ptr,
					     f->context_bytes.len);
	if (f->context_mp)
		return msgpack_pack_object(pk, *f->context_mp);
	return msgpack_pack_map(pk, 0);
}

int record_encode(const struct record_fields *f, msgpack_sbuffer *out)
{
	msgpack_packer pk;
	size_t start = out->size;
	int bad;

	msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
	bad = msgpack_pack_map(&pk, RECORD_KEYS) ||
	      pack_key(&pk, "v") || msgpack_pack_uint32(&pk, RECORD_VERSION) ||
	      pack_key(&pk, "id") || msgpack_pack_bin_with_body(&pk, f->id, UUID_SIZE) ||
	      pack_key(&pk, "created_at") || msgpack_pack_int64(&pk, f->created_at) ||
	      pack_text(&pk, "prompt", f->prompt) ||
	      pack_text(&pk, "response", f->response) ||
	      pack_text(&pk, "response_summary", f->response_summary) ||
	      pack_text(&pk, "project", f->project) ||
	      pack_text(&pk, "client", f->client) ||
	      pack_text(&pk, "session_id", f->session_id) ||
	      pack_refs(&pk, "memories_used", f->memories_used, f->n_memories_used) ||
	      pack_refs(&pk, "chunks_used", f->chunks_used, f->n_chunks_used) ||
	      pack_context(&pk, out, f);
	if (bad)
		return err_set(ENOMEM, "encoding the record");
	if (out->size - start > ATOLOG_RECORD_MAX_BYTES)
		return err_set(ATOLOG_TOOBIG,
			       "the record encodes to %zu bytes, over the limit of %u",
			       out->size - start, ATOLOG_RECORD_MAX_BYTES);
	return ATOLOG_OK;
}

/* ------------------------------------------------------------------------
 * Decoding.
 */

static bool key_is(const msgpack_object *key, const char *name)
{
	size_t len = strlen(name);

	return key->via.str.size == len && memcmp(key->via.str.ptr, name, len) == 0;
}

static bool take_text(const msgpack_object *val, struct text *out)
{
	if (val->type != MSGPACK_OBJECT_STR)
		return false;
	out->ptr = val->via.str.ptr;
	out->len = val->via.str.size;
	return true;
}

static bool take_refs(const msgpack_object *val, struct text **next,
		      struct text **out, size_t *n)
{
	const msgpack_object_array *arr = &val->via.array;

	if (val->type != MSGPACK_OBJECT_ARRAY)
		return false;
	*out = *next;
	*n = arr->size;
	for (uint32_t i = 0; i < arr->size; i++) {
		if (!take_text(&arr->ptr[i], &(*next)[i]))
			return false;
	}
	*next += arr->size;
	return true;
}

static bool take_int(const msgpack_object *val, int64_t *out)
{
	if (val->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
	    val->via.u64 <= (uint64_t)INT64_MAX) {
		*out = (int64_t)val->via.u64;
		return true;
	}
	if (val->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
		*out = val->via.i64;
		return true;
	}
	return false;
}

/* Counts the entries of both ref arrays, to size their storage once. */
static size_t count_refs(const msgpack_object_map *map)
{
	size_t n = 0;

	for (uint32_t i = 0; i < map->size; i++) {
		const msgpack_object_kv *kv = &map->ptr[i];

		if (kv->key.type == MSGPACK_OBJECT_STR &&
		    kv->val.type == MSGPACK_OBJECT_ARRAY &&
		    (key_is(&kv->key, "memories_used") ||
		     key_is(&kv->key, "chunks_used")))
			n += kv->val.via.array.size;
	}
	return n;
}

enum { HAVE_ID = 1, HAVE_TIME = 2, HAVE_PROMPT = 4, HAVE_ALL = 7 };

/* Applies one key of the map; false when a known key has the wrong type. */
static bool decode_entry(struct record_view *view, const msgpack_object_kv *kv,
			 struct text **next_ref, unsigned *have)
{
	struct record_fields *f = &view->fields;
	const msgpack_object *k = &kv->key, *v = &kv->val;

	if (k->type != MSGPACK_OBJECT_STR)
		return false;
	if (key_is(k, "id")) {
		if (v->type != MSGPACK_OBJECT_BIN || v->via.bin.size != UUID_SIZE)
			return false;
		memcpy(f->id, v->via.bin.ptr, UUID_SIZE);
		*have |= HAVE_ID;
	} else if (key_is(k, "created_at")) {
		if (!take_int(v, &f->created_at))
			return false;
		*have |= HAVE_TIME;
	} else if (key_is(k, "prompt")) {
		if (!take_text(v, &f->prompt))
			return false;
		*have |= HAVE_PROMPT;
	} else if (key_is(k, "response")) {
		return take_text(v, &f->response);
	} else if (key_is(k, "response_summary")) {
		return take_text(v, &f->response_summary);
	} else if (key_is(k, "project")) {
		return take_text(v, &f->project);
	} else if (key_is(k, "client")) {
		return take_text(v, &f->client);
	} else if (key_is(k, "session_id")) {
		return take_text(v, &f->session_id);
	} else if (key_is(k, "memories_used")) {
		return take_refs(v, next_ref, &f->memories_used, &f->n_memories_used);
	} else if (key_is(k, "chunks_used")) {
		return take_refs(v, next_ref, &f->chunks_used, &f->n_chunks_used);
	} else if (key_is(k, "context_pack")) {
		if (v->type != MSGPACK_OBJECT_MAP)
			return false;
		f->context_mp = v;
	}
	return true; /* "v" and keys from newer writers */
}

/* Every text a record holds is UTF-8, as record_input_init checked when
 * it was written: a checksum-valid record with other bytes is corrupt (a
 * writer's bug, or a hostile segment), never handed to a reader. */
static bool decoded_texts_utf8(const struct record_fields *f)
{
	const struct text texts[] = { f->prompt, f->response, f->response_summary,
				      f->project, f->client, f->session_id };

	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		if (!text_is_utf8(texts[i].ptr, texts[i].len))
			return false;
	}
	for (size_t i = 0; i < f->n_memories_used; i++) {
		if (!text_is_utf8(f->memories_used[i].ptr, f->memories_used[i].len))
			return false;
	}
	for (size_t i = 0; i < f->n_chunks_used; i++) {
		if (!text_is_utf8(f->chunks_used[i].ptr, f->chunks_used[i].len))
			return false;
	}
	return true;
}

/* The names become index keys: a checksum-valid frame from a dishonest
 * writer must not smuggle in one that is too long or holds a 0x00. */
static int decoded_fields_ok(const struct record_fields *f)
{
	const struct text names[] = { f->project, f->client, f->session_id };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (names[i].len > ATOLOG_NAME_MAX_BYTES ||
		    memchr(names[i].ptr, 0, names[i].len))
			return err_set(ATOLOG_CORRUPT, "record holds a project, client "
				       "or session_id that breaks the name rules");
	}
	if (f->created_at < TIME_MIN_US || f->created_at > TIME_MAX_US)
		return err_set(ATOLOG_CORRUPT, "record created_at is out of range");
	if (!decoded_texts_utf8(f))
		return err_set(ATOLOG_CORRUPT, "record holds text that is not UTF-8");
	return ATOLOG_OK;
}

static int decode_map(struct record_view *view, const msgpack_object_map *map)
{
	struct text *next_ref;
	unsigned have = 0;

	view->refs = calloc(count_refs(map) + 1, sizeof(struct text));
	if (!view->refs)
		return err_set(ENOMEM, "decoding a record");
	next_ref = view->refs;
	for (uint32_t i = 0; i < map->size; i++) {
		if (!decode_entry(view, &map->ptr[i], &next_ref, &have))
			return err_set(ATOLOG_CORRUPT,
				       "record field %u has the wrong type", i);
	}
	if (have != HAVE_ALL)
		return err_set(ATOLOG_CORRUPT,
			       "record lacks a required field (id, created_at, prompt)");
	return decoded_fields_ok(&view->fields);
}

int record_view_decode(struct record_view *view, const void *payload, size_t len)
{
	static const struct text empty = { .ptr = "", .len = 0 };
	msgpack_unpack_return mrc;
	size_t off = 0;
	int rc;

	memset(view, 0, sizeof(*view));
	view->fields.response = view->fields.response_summary = empty;
	view->fields.project = view->fields.client = empty;
	view->fields.session_id = empty;
	msgpack_unpacked_init(&view->unpacked);
	if (!mp_is_bounded(payload, len, RECORD_MAX_NESTING))
		return err_set(ATOLOG_CORRUPT,
			       "record payload is not well-formed msgpack");
	mrc = msgpack_unpack_next(&view->unpacked, payload, len, &off);
	if (mrc == MSGPACK_UNPACK_NOMEM_ERROR) /* the reader's want, not damage */
		return err_set(ENOMEM, "decoding a record");
	if (mrc != MSGPACK_UNPACK_SUCCESS || off != len)
		return err_set(ATOLOG_CORRUPT, "record payload does not unpack");
	if (view->unpacked.data.type != MSGPACK_OBJECT_MAP)
		return err_set(ATOLOG_CORRUPT, "record payload is not a map");
	rc = decode_map(view, &view->unpacked.data.via.map);
	return rc;
}

void record_view_free(struct record_view *view)
{
	msgpack_unpacked_destroy(&view->unpacked);
	free(view->refs);
	view->refs = NULL;
}

/* ------------------------------------------------------------------------
 * The flat copy: one malloc block holding the struct, the two pointer
 * arrays and every string, so that atolog_interaction_free is free().
 */

struct flat_writer {
	char *next; /* where the next string goes */
};

static const char *flat_put(struct flat_writer *w, const char *s, size_t len)
{
	char *dst = w->next;

	memcpy(dst, s, len);
	dst[len] = '\0';
	w->next += len + 1;
	return dst;
}

static size_t refs_bytes(const struct text *refs, size_t n)
{
	size_t sum = 0;

	for (size_t i = 0; i < n; i++)
		sum += refs[i].len + 1;
	return sum;
}

static int context_text(const struct record_fields *f, char **out)
{
	msgpack_unpacked u;
	size_t off = 0;
	int rc;

	if (f->context_mp)
		return context_to_json(f->context_mp, out);
	if (!f->context_bytes.len) {
		*out = strdup("{}");
		return *out ? ATOLOG_OK : err_set(ENOMEM, "rendering context_pack");
	}
	/* Bytes this process encoded: well-formed by construction. */
	msgpack_unpacked_init(&u);
	if (msgpack_unpack_next(&u, f->context_bytes.ptr, f->context_bytes.len,
				&off) != MSGPACK_UNPACK_SUCCESS)
		rc = err_set(ENOMEM, "rendering context_pack");
	else
		rc = context_to_json(&u.data, out);
	msgpack_unpacked_destroy(&u);
	return rc;
}

static const char *const *flat_refs(struct flat_writer *w, const char **slots,
				    const struct text *refs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		slots[i] = flat_put(w, refs[i].ptr, refs[i].len);
	return slots;
}

int record_fields_flatten(const struct record_fields *f, uint64_t seq,
			  atolog_interaction **out)
{
	size_t n_refs = f->n_memories_used + f->n_chunks_used;
	size_t strings, ctx_len, total;
	atolog_interaction *rec;
	struct flat_writer w;
	const char **slots;
	char *ctx;
	int rc;

	rc = context_text(f, &ctx);
	if (rc != ATOLOG_OK)
		return rc;
	ctx_len = strlen(ctx);
	strings = f->prompt.len + f->response.len + f->response_summary.len +
		  f->project.len + f->client.len + f->session_id.len + 6 +
		  refs_bytes(f->memories_used, f->n_memories_used) +
		  refs_bytes(f->chunks_used, f->n_chunks_used) + ctx_len + 1;
	total = sizeof(*rec) + n_refs * sizeof(char *) + strings;
	rec = calloc(1, total);
	if (!rec) {
		free(ctx);
		return err_set(ENOMEM, "allocating an interaction");
	}
	slots = (const char **)(rec + 1);
	w.next = (char *)(slots + n_refs);
	uuid_format(f->id, rec->id);
	rec->has_created_at = 1;
	rec->created_at = f->created_at;
	rec->seq = seq;
	rec->prompt = flat_put(&w, f->prompt.ptr, f->prompt.len);
	rec->response = flat_put(&w, f->response.ptr, f->response.len);
	rec->response_summary = flat_put(&w, f->response_summary.ptr,
					 f->response_summary.len);
	rec->project = flat_put(&w, f->project.ptr, f->project.len);
	rec->client = flat_put(&w, f->client.ptr, f->client.len);
	rec->session_id = flat_put(&w, f->session_id.ptr, f->session_id.len);
	rec->memories_used = flat_refs(&w, slots, f->memories_used,
				       f->n_memories_used);
	rec->n_memories_used = f->n_memories_used;
	rec->chunks_used = flat_refs(&w, slots + f->n_memories_used,
				     f->chunks_used, f->n_chunks_used);
	rec->n_chunks_used = f->n_chunks_used;
	rec->context_pack = flat_put(&w, ctx, ctx_len);
	free(ctx);
	*out = rec;
	return ATOLOG_OK;
}
