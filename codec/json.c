/*
 * json.c - the seed service's JSON shape of an interaction, both ways.
 *
 * In: the seed's POST /interactions body, parsed in one pass of yajl's
 * SAX parser. Known fields must have their type (null counts as absent)
 * and come at most once: where the seed's FastAPI keeps the last of a
 * repeated key, silently dropping the others, a body naming a field twice
 * is refused (null or not), so each field's value arrives once and never
 * replaces another. Unknown fields are skipped whatever they hold (and
 * however often), as the seed's request model ignores them; "reinforce"
 * and "extract" (the seed's memory hooks) are accepted as booleans and
 * otherwise ignored here. id and created_at (or the more precise
 * created_at_iso) are taken for imports. The context pack is copied into
 * a generator as it streams by, so the body is parsed once. Strings of the
 * record may not hold a NUL byte (they are C strings in the API); the
 * context pack's may.
 *
 * Out: exactly the seed's field names, created_at in its storage form
 * "YYYY-MM-DD HH:MM:SS", plus created_at_iso (microseconds) and seq.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_parse.h>

#include "codec.h"
#include "error.h"

#define JSON_REASON_SIZE 160 /* where a parse failed, for the message */

enum body_field {
	F_UNKNOWN, F_PROMPT, F_RESPONSE, F_SUMMARY, F_PROJECT, F_CLIENT,
	F_SESSION, F_MEMORIES, F_CHUNKS, F_CONTEXT, F_ID, F_CREATED_AT,
	F_CREATED_AT_ISO, F_REINFORCE, F_EXTRACT, F_COUNT
};

_Static_assert(F_COUNT <= sizeof(unsigned) * 8, "body_parser.seen has a bit per field");

static const char *const field_names[F_COUNT] = {
	[F_PROMPT] = "prompt", [F_RESPONSE] = "response",
	[F_SUMMARY] = "response_summary", [F_PROJECT] = "project",
	[F_CLIENT] = "client", [F_SESSION] = "session_id",
	[F_MEMORIES] = "memories_used", [F_CHUNKS] = "chunks_used",
	[F_CONTEXT] = "context_pack", [F_ID] = "id", [F_CREATED_AT] = "created_at",
	[F_CREATED_AT_ISO] = "created_at_iso", [F_REINFORCE] = "reinforce",
	[F_EXTRACT] = "extract",
};

/* A list of strings being collected (memories_used, chunks_used). */
struct ref_list {
	struct text *items;
	size_t n, cap;
};

struct body_parser {
	unsigned depth;       /* 1 inside the body object */
	enum body_field field; /* the key whose value comes next */
	unsigned skip_depth;  /* > 0 while skipping an unknown value */
	bool in_list;         /* inside memories_used / chunks_used */
	unsigned ctx_depth;   /* > 0 while copying context_pack */
	unsigned seen;        /* bit f: field f's key has come */
	char *texts[F_COUNT]; /* string fields, NUL-terminated copies */
	struct ref_list refs[2];
	yajl_gen context;     /* the context pack as it is copied */
	int rc;
	char why[160];
};

static int body_fail(struct body_parser *p, int rc, const char *fmt, const char *arg)
{
	if (p->rc == ATOLOG_OK) {
		p->rc = rc;
		snprintf(p->why, sizeof(p->why), fmt, arg);
	}
	return 0;
}

static int type_error(struct body_parser *p, const char *want)
{
	char what[96];

	snprintf(what, sizeof(what), "%s must be %s", field_names[p->field], want);
	return body_fail(p, ATOLOG_INVALID, "%s", what);
}

/* An entry of memories_used / chunks_used that is not a string. */
static int list_item_error(struct body_parser *p)
{
	char what[96];

	snprintf(what, sizeof(what), "%s[%zu] must be a string",
		 field_names[p->field], p->refs[p->field == F_CHUNKS].n);
	return body_fail(p, ATOLOG_INVALID, "%s", what);
}

static const char *field_want(enum body_field f)
{
	switch (f) {
	case F_MEMORIES:
	case F_CHUNKS:
		return "a list of strings";
	case F_CONTEXT:
		return "a JSON object";
	case F_REINFORCE:
	case F_EXTRACT:
		return "true or false";
	default:
		return "a string";
	}
}

/* Where a value may go: 1 continue, 0 stop. Handles skipping and lists. */
static int value_arrives(struct body_parser *p, bool opens)
{
	if (p->depth == 0)
		return body_fail(p, ATOLOG_INVALID, "%s", "expected a JSON object");
	if (p->skip_depth) {
		p->skip_depth += opens;
		return 1;
	}
	return 1;
}

/* Empties a list, freeing the strings it copied. */
static void refs_clear(struct ref_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free((char *)l->items[i].ptr);
	l->n = 0;
}

static char *copy_text(const unsigned char *s, size_t len)
{
	char *t = malloc(len + 1);

	if (t) {
		memcpy(t, s, len);
		t[len] = '\0';
	}
	return t;
}

static int take_string(struct body_parser *p, const unsigned char *s, size_t len)
{
	if (memchr(s, 0, len))
		return body_fail(p, ATOLOG_INVALID, "%s holds a NUL character",
				 field_names[p->field]);
	if (p->in_list) {
		struct ref_list *l = &p->refs[p->field == F_CHUNKS];

		if (l->n == ATOLOG_REFS_MAX)
			return body_fail(p, ATOLOG_TOOBIG, "%s has too many entries",
					 field_names[p->field]);
		if (l->n == l->cap) {
			size_t cap = l->cap ? l->cap * 2 : 8;
			struct text *grown = realloc(l->items, cap * sizeof(*grown));

			if (!grown)
				return body_fail(p, ENOMEM, "%s", "out of memory");
			l->items = grown;
			l->cap = cap;
		}
		l->items[l->n].ptr = copy_text(s, len);
		l->items[l->n].len = len;
		if (!l->items[l->n++].ptr)
			return body_fail(p, ENOMEM, "%s", "out of memory");
		return 1;
	}
	assert(!p->texts[p->field]); /* each field once (on_map_key) */
	p->texts[p->field] = copy_text(s, len);
	return p->texts[p->field] ? 1 : body_fail(p, ENOMEM, "%s", "out of memory");
}

static bool is_text_field(enum body_field f)
{
	return f != F_UNKNOWN && f != F_MEMORIES && f != F_CHUNKS &&
	       f != F_CONTEXT && f != F_REINFORCE && f != F_EXTRACT;
}

/* A value that belongs to the record (not to context_pack). */
static int on_body_scalar(struct body_parser *p, bool is_string, bool is_bool,
			  bool is_null, const unsigned char *s, size_t len)
{
	if (!value_arrives(p, false) || p->skip_depth || p->field == F_UNKNOWN)
		return p->rc == ATOLOG_OK;
	if (p->in_list)
		return is_string ? take_string(p, s, len) : list_item_error(p);
	if (is_null)
		return 1; /* null means absent, in every field */
	if (is_bool && (p->field == F_REINFORCE || p->field == F_EXTRACT))
		return 1;
	if (is_string && is_text_field(p->field))
		return take_string(p, s, len);
	return type_error(p, field_want(p->field));
}

/* ------------------------------------------------------------------------
 * The callbacks: inside context_pack they copy into its generator.
 */

static bool copying(const struct body_parser *p)
{
	return p->ctx_depth > 0;
}

/* The copy's generator stops at its own depth limit (128) before the
 * context pack's limit is checked: that is the input's fault, not memory. */
static int gen_ok(struct body_parser *p, yajl_gen_status st)
{
	if (st == yajl_gen_status_ok)
		return 1;
	if (st == yajl_max_depth_exceeded) {
		char depth[16];

		snprintf(depth, sizeof(depth), "%u", ATOLOG_CONTEXT_MAX_DEPTH);
		/* As context_json_to_msgpack says it for shallower excess. */
		return body_fail(p, ATOLOG_TOOBIG, "context_pack nests deeper than "
				 "%s levels", depth);
	}
	return body_fail(p, ENOMEM, "%s", "out of memory");
}

static int on_null(void *ctx)
{
	struct body_parser *p = ctx;

	if (copying(p))
		return gen_ok(p, yajl_gen_null(p->context));
	return on_body_scalar(p, false, false, true, NULL, 0);
}

static int on_boolean(void *ctx, int v)
{
	struct body_parser *p = ctx;

	if (copying(p))
		return gen_ok(p, yajl_gen_bool(p->context, v));
	return on_body_scalar(p, false, true, false, NULL, 0);
}

static int on_number(void *ctx, const char *s, size_t len)
{
	struct body_parser *p = ctx;

	if (copying(p))
		return gen_ok(p, yajl_gen_number(p->context, s, len));
	return on_body_scalar(p, false, false, false, NULL, 0);
}

static int on_string(void *ctx, const unsigned char *s, size_t len)
{
	struct body_parser *p = ctx;

	if (copying(p))
		return gen_ok(p, yajl_gen_string(p->context, s, len));
	return on_body_scalar(p, true, false, false, s, len);
}

static enum body_field field_of(const unsigned char *s, size_t len)
{
	for (int f = F_PROMPT; f < F_COUNT; f++) {
		if (strlen(field_names[f]) == len && memcmp(field_names[f], s, len) == 0)
			return (enum body_field)f;
	}
	return F_UNKNOWN;
}

static int on_map_key(void *ctx, const unsigned char *s, size_t len)
{
	struct body_parser *p = ctx;

	if (copying(p))
		return gen_ok(p, yajl_gen_string(p->context, s, len));
	if (p->depth != 1 || p->skip_depth)
		return 1;
	p->field = field_of(s, len);
	if (p->field == F_UNKNOWN)
		return 1;
	if (p->seen & (1u << p->field))
		return body_fail(p, ATOLOG_INVALID, "%s is given twice (a body names "
				 "each field once)", field_names[p->field]);
	p->seen |= 1u << p->field;
	return 1;
}

static int open_context(struct body_parser *p)
{
	assert(!p->context); /* each field once (on_map_key) */
	p->context = json_gen_new();
	if (!p->context)
		return body_fail(p, ENOMEM, "%s", "out of memory");
	p->ctx_depth = 1;
	return gen_ok(p, yajl_gen_map_open(p->context));
}

static int on_start_map(void *ctx)
{
	struct body_parser *p = ctx;

	if (copying(p)) {
		p->ctx_depth++;
		return gen_ok(p, yajl_gen_map_open(p->context));
	}
	if (p->depth == 0) {
		p->depth = 1;
		return 1;
	}
	if (!value_arrives(p, true) || p->skip_depth)
		return p->rc == ATOLOG_OK;
	if (p->field == F_CONTEXT && !p->in_list)
		return open_context(p);
	if (p->field == F_UNKNOWN) {
		p->skip_depth = 1;
		return 1;
	}
	return type_error(p, field_want(p->field));
}

static int on_end_map(void *ctx)
{
	struct body_parser *p = ctx;

	if (copying(p)) {
		p->ctx_depth--;
		return gen_ok(p, yajl_gen_map_close(p->context));
	}
	if (p->skip_depth) {
		p->skip_depth--;
		return 1;
	}
	p->depth = 0;
	return 1;
}

static int on_start_array(void *ctx)
{
	struct body_parser *p = ctx;

	if (copying(p))
		return gen_ok(p, yajl_gen_array_open(p->context));
	if (!value_arrives(p, true) || p->skip_depth)
		return p->rc == ATOLOG_OK;
	if (p->in_list)
		return list_item_error(p);
	if (p->field == F_MEMORIES || p->field == F_CHUNKS) {
		assert(p->refs[p->field == F_CHUNKS].n == 0); /* each field once */
		p->in_list = true;
		return 1;
	}
	if (p->field == F_UNKNOWN) {
		p->skip_depth = 1;
		return 1;
	}
	return type_error(p, field_want(p->field));
}

static int on_end_array(void *ctx)
{
	struct body_parser *p = ctx;

	if (copying(p))
		return gen_ok(p, yajl_gen_array_close(p->context));
	if (p->skip_depth) {
		p->skip_depth--;
		return 1;
	}
	p->in_list = false;
	return 1;
}

static const yajl_callbacks body_callbacks = {
	.yajl_null = on_null,
	.yajl_boolean = on_boolean,
	.yajl_number = on_number,
	.yajl_string = on_string,
	.yajl_start_map = on_start_map,
	.yajl_map_key = on_map_key,
	.yajl_end_map = on_end_map,
	.yajl_start_array = on_start_array,
	.yajl_end_array = on_end_array,
};

static void body_free(struct body_parser *p)
{
	for (int f = 0; f < F_COUNT; f++)
		free(p->texts[f]);
	for (int k = 0; k < 2; k++) {
		refs_clear(&p->refs[k]);
		free(p->refs[k].items);
	}
	if (p->context)
		yajl_gen_free(p->context);
}

/* ------------------------------------------------------------------------
 * From the parsed body to an interaction.
 */

/* id and created_at, when an import supplies them. */
static int body_identity(struct body_parser *p, struct record_fields *f,
			 bool *has_id, bool *has_time)
{
	const char *t = p->texts[F_CREATED_AT_ISO] ? p->texts[F_CREATED_AT_ISO]
						   : p->texts[F_CREATED_AT];
	int rc;

	*has_id = p->texts[F_ID] != NULL;
	if (*has_id && (rc = uuid_parse(p->texts[F_ID], f->id)) != ATOLOG_OK)
		return err_context(rc, "id");
	*has_time = t != NULL;
	if (*has_time && (rc = time_parse(t, &f->created_at)) != ATOLOG_OK)
		return err_context(rc, "created_at");
	return ATOLOG_OK;
}

/* The context pack's text, when the body had one, as a msgpack object. */
static int body_context(struct body_parser *p, msgpack_sbuffer *sb,
			struct record_fields *f)
{
	const unsigned char *buf;
	size_t len;
	int rc;

	if (!p->context) /* none, or null */
		return ATOLOG_OK;
	yajl_gen_get_buf(p->context, &buf, &len);
	rc = context_json_to_msgpack((const char *)buf, len, sb);
	if (rc == ATOLOG_OK) {
		f->context_bytes.ptr = sb->data;
		f->context_bytes.len = sb->size;
	}
	return rc;
}

static int body_to_interaction(struct body_parser *p, atolog_interaction **out)
{
	struct record_fields f = { 0 };
	msgpack_sbuffer sb;
	bool has_id = false, has_time = false;
	int rc;

	if (!p->texts[F_PROMPT])
		return err_set(ATOLOG_INVALID, "prompt is required");
	f.prompt = text_from_cstr(p->texts[F_PROMPT]);
	f.response = text_from_cstr(p->texts[F_RESPONSE]);
	f.response_summary = text_from_cstr(p->texts[F_SUMMARY]);
	f.project = text_from_cstr(p->texts[F_PROJECT]);
	f.client = text_from_cstr(p->texts[F_CLIENT]);
	f.session_id = text_from_cstr(p->texts[F_SESSION]);
	f.memories_used = p->refs[0].items;
	f.n_memories_used = p->refs[0].n;
	f.chunks_used = p->refs[1].items;
	f.n_chunks_used = p->refs[1].n;
	msgpack_sbuffer_init(&sb);
	rc = body_identity(p, &f, &has_id, &has_time);
	if (rc == ATOLOG_OK)
		rc = body_context(p, &sb, &f);
	if (rc == ATOLOG_OK)
		rc = record_fields_flatten(&f, 0, out);
	msgpack_sbuffer_destroy(&sb);
	if (rc != ATOLOG_OK)
		return rc;
	if (!has_id)
		(*out)->id[0] = '\0';
	(*out)->has_created_at = has_time;
	if (!has_time)
		(*out)->created_at = 0;
	return ATOLOG_OK;
}

/*
 * Runs yajl over one document with the given callbacks. Returns
 * ATOLOG_TOOBIG or ATOLOG_INVALID for a document refused before parsing,
 * ENOMEM, or ATOLOG_OK with *st yajl's verdict and, on an error, reason
 * saying where (for a parse the callbacks stopped, yajl's own words, which
 * the caller's reason replaces).
 */
static int json_run(const yajl_callbacks *cb, void *ctx, const char *json,
		    size_t len, yajl_status *st, char reason[JSON_REASON_SIZE])
{
	yajl_handle h;
	size_t at;

	reason[0] = '\0';
	if (len > ATOLOG_JSON_MAX_BYTES)
		return err_set(ATOLOG_TOOBIG, "JSON document is %zu bytes, over the limit of %u",
			       len, ATOLOG_JSON_MAX_BYTES);
	if (!json_surrogates_paired(json, len, &at))
		return err_set(ATOLOG_INVALID, "malformed JSON: an unpaired UTF-16 "
			       "surrogate escape at byte %zu", at);
	h = yajl_alloc(cb, NULL, ctx);
	if (!h)
		return err_set(ENOMEM, "parsing JSON");
	*st = yajl_parse(h, (const unsigned char *)json, len);
	if (*st == yajl_status_ok)
		*st = yajl_complete_parse(h);
	if (*st == yajl_status_error)
		json_parse_reason(h, json, len, reason, JSON_REASON_SIZE);
	yajl_free(h);
	return ATOLOG_OK;
}

int atolog_interaction_from_json(const char *json, size_t len,
				 atolog_interaction **out)
{
	struct body_parser p = { .rc = ATOLOG_OK };
	yajl_status st = yajl_status_ok;
	char reason[JSON_REASON_SIZE];
	int rc;

	err_begin(NULL);
	rc = json_run(&body_callbacks, &p, json, len, &st, reason);
	if (rc != ATOLOG_OK) {
		body_free(&p);
		return rc;
	}
	if (p.rc != ATOLOG_OK)
		rc = err_set(p.rc, "%s", p.why);
	else if (st != yajl_status_ok)
		rc = err_set(ATOLOG_INVALID, "malformed JSON: %s", reason);
	else
		rc = body_to_interaction(&p, out);
	body_free(&p);
	return rc;
}

/* ------------------------------------------------------------------------
 * In, many: a JSON array of bodies (the batch route), parsed in one pass.
 *
 * The array parser keeps its own nesting depth of the raw events and hands
 * the events of each element to a fresh body parser. An element the body
 * parser refuses is skipped to its end, so one bad element costs only
 * itself; a syntax error anywhere refuses the whole document, since no
 * element after it can be trusted.
 */

struct array_parser {
	struct body_parser item; /* the element being parsed */
	unsigned depth;          /* raw nesting: 1 inside the array */
	bool item_failed;        /* the element is refused: skip to its end */
	size_t index;            /* the element's position */
	atolog_json_item_fn fn;
	void *ctx;
	int stop_rc;             /* fn's non-zero answer, or ENOMEM */
	int rc;                  /* ATOLOG_INVALID: not an array */
};

static int array_fail(struct array_parser *a, const char *why)
{
	a->rc = ATOLOG_INVALID;
	snprintf(a->item.why, sizeof(a->item.why), "%s", why);
	return 0;
}

/* Delivers the element that just ended to fn, then resets for the next. */
static int array_item_done(struct array_parser *a)
{
	struct body_parser *p = &a->item;
	atolog_interaction *rec = NULL;
	int rc = p->rc, stop;

	if (!a->item_failed) {
		rc = body_to_interaction(p, &rec);
	} else if (rc == ATOLOG_OK) {
		rc = err_set(ATOLOG_INVALID, "an item must be a JSON object");
	} else {
		err_set(rc, "%s", p->why);
	}
	body_free(p);
	memset(p, 0, sizeof(*p));
	if (rc == ENOMEM) { /* not the element's fault: the parse stops */
		a->stop_rc = ENOMEM;
		return 0;
	}
	stop = a->fn(a->index++, rc, rc == ATOLOG_OK ? "" : err_message(NULL), rec,
		     a->ctx);
	if (stop != 0) {
		a->stop_rc = stop;
		return 0;
	}
	return 1;
}

/* The answer of a body callback, seen from the array: a refusal marks the
 * element failed and parsing goes on; running out of memory stops. */
static int array_delegated(struct array_parser *a, int r)
{
	if (r)
		return 1;
	if (a->item.rc == ENOMEM) {
		a->stop_rc = ENOMEM;
		return 0;
	}
	a->item_failed = true;
	return 1;
}

/* Where a scalar event goes: true to the element's body parser; else it
 * is handled here and *r holds the answer for yajl (at the top it refuses
 * the document; as an element of its own it is a refused element). */
static bool scalar_for_item(struct array_parser *a, int *r)
{
	if (a->depth == 0) {
		*r = array_fail(a, "expected a JSON array of interactions");
		return false;
	}
	if (a->depth == 1) {
		a->item_failed = true;
		*r = array_item_done(a);
		return false;
	}
	*r = 1;
	return !a->item_failed;
}

static int arr_null(void *ctx)
{
	struct array_parser *a = ctx;
	int r;

	return scalar_for_item(a, &r) ? array_delegated(a, on_null(&a->item)) : r;
}

static int arr_boolean(void *ctx, int v)
{
	struct array_parser *a = ctx;
	int r;

	return scalar_for_item(a, &r) ? array_delegated(a, on_boolean(&a->item, v))
				      : r;
}

static int arr_number(void *ctx, const char *s, size_t len)
{
	struct array_parser *a = ctx;
	int r;

	return scalar_for_item(a, &r)
		       ? array_delegated(a, on_number(&a->item, s, len))
		       : r;
}

static int arr_string(void *ctx, const unsigned char *s, size_t len)
{
	struct array_parser *a = ctx;
	int r;

	return scalar_for_item(a, &r)
		       ? array_delegated(a, on_string(&a->item, s, len))
		       : r;
}

static int arr_map_key(void *ctx, const unsigned char *s, size_t len)
{
	struct array_parser *a = ctx;

	return a->item_failed ? 1 : array_delegated(a, on_map_key(&a->item, s, len));
}

static int arr_open(struct array_parser *a, bool is_map)
{
	if (a->depth == 0) {
		if (is_map)
			return array_fail(a, "expected a JSON array of interactions");
		a->depth = 1;
		return 1;
	}
	if (a->depth++ == 1)
		a->item_failed = !is_map; /* an array is a refused element */
	if (a->item_failed)
		return 1;
	return array_delegated(a, is_map ? on_start_map(&a->item)
					 : on_start_array(&a->item));
}

static int arr_close(struct array_parser *a, bool is_map)
{
	int r = 1;

	if (--a->depth == 0)
		return 1; /* the array itself */
	if (!a->item_failed)
		r = array_delegated(a, is_map ? on_end_map(&a->item)
					      : on_end_array(&a->item));
	return r && a->depth == 1 ? array_item_done(a) : r;
}

static int arr_start_map(void *ctx)
{
	return arr_open(ctx, true);
}

static int arr_end_map(void *ctx)
{
	return arr_close(ctx, true);
}

static int arr_start_array(void *ctx)
{
	return arr_open(ctx, false);
}

static int arr_end_array(void *ctx)
{
	return arr_close(ctx, false);
}

static const yajl_callbacks array_callbacks = {
	.yajl_null = arr_null,
	.yajl_boolean = arr_boolean,
	.yajl_number = arr_number,
	.yajl_string = arr_string,
	.yajl_start_map = arr_start_map,
	.yajl_map_key = arr_map_key,
	.yajl_end_map = arr_end_map,
	.yajl_start_array = arr_start_array,
	.yajl_end_array = arr_end_array,
};

int atolog_interactions_from_json_array(const char *json, size_t len,
					atolog_json_item_fn fn, void *ctx)
{
	struct array_parser a = { .fn = fn, .ctx = ctx };
	yajl_status st = yajl_status_ok;
	char reason[JSON_REASON_SIZE];
	int rc;

	err_begin(NULL);
	rc = json_run(&array_callbacks, &a, json, len, &st, reason);
	if (rc != ATOLOG_OK)
		return rc;
	if (a.stop_rc)
		rc = a.stop_rc == ENOMEM ? err_set(ENOMEM, "parsing JSON") : a.stop_rc;
	else if (a.rc)
		rc = err_set(a.rc, "%s", a.item.why);
	else if (st != yajl_status_ok)
		rc = err_set(ATOLOG_INVALID, "malformed JSON: %s", reason);
	body_free(&a.item);
	return rc;
}

/* ------------------------------------------------------------------------
 * Out.
 */

static int gen_key(yajl_gen g, const char *key)
{
	return json_gen_string(g, key, strlen(key));
}

static int gen_text(yajl_gen g, const char *key, const char *value)
{
	const char *v = value ? value : "";

	return gen_key(g, key) || json_gen_string(g, v, strlen(v)) ? -1 : 0;
}

static int gen_refs(yajl_gen g, const char *key, const char *const *refs, size_t n)
{
	if (gen_key(g, key) != 0 || yajl_gen_array_open(g) != yajl_gen_status_ok)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (json_gen_string(g, refs[i], strlen(refs[i])) != 0)
			return -1;
	}
	return yajl_gen_array_close(g) == yajl_gen_status_ok ? 0 : -1;
}

static int gen_context(yajl_gen g, const char *context)
{
	const char *c = context ? context : "{}";

	if (gen_key(g, "context_pack") != 0)
		return -1;
	return json_gen_copy(g, c, strlen(c));
}

static int gen_interaction(yajl_gen g, const atolog_interaction *rec)
{
	char seed_time[ATOLOG_TIME_SEED_LEN], iso_time[ATOLOG_TIME_ISO_LEN];

	atolog_time_format_seed(rec->created_at, seed_time);
	atolog_time_format_iso(rec->created_at, iso_time);
	int rc;

	if (yajl_gen_map_open(g) != yajl_gen_status_ok ||
	    gen_text(g, "id", rec->id) || gen_text(g, "prompt", rec->prompt) ||
	    gen_text(g, "response", rec->response) ||
	    gen_text(g, "response_summary", rec->response_summary) ||
	    gen_text(g, "project", rec->project) ||
	    gen_text(g, "client", rec->client) ||
	    gen_text(g, "session_id", rec->session_id) ||
	    gen_refs(g, "memories_used", rec->memories_used, rec->n_memories_used) ||
	    gen_refs(g, "chunks_used", rec->chunks_used, rec->n_chunks_used))
		return -1;
	rc = gen_context(g, rec->context_pack);
	if (rc != 0)
		return rc; /* ENOMEM is not the record's fault */
	if (gen_text(g, "created_at", seed_time) ||
	    gen_text(g, "created_at_iso", iso_time) || gen_key(g, "seq") ||
	    yajl_gen_integer(g, (long long)rec->seq) != yajl_gen_status_ok)
		return -1;
	return yajl_gen_map_close(g) == yajl_gen_status_ok ? 0 : -1;
}

int atolog_interaction_to_json(const atolog_interaction *rec, char **out)
{
	yajl_gen g;
	int rc;

	err_begin(NULL);
	g = json_gen_new();
	if (!g)
		return err_set(ENOMEM, "rendering interaction %s", rec->id);
	rc = gen_interaction(g, rec);
	if (rc == 0)
		rc = json_gen_take(g, out);
	else if (rc == ENOMEM)
		rc = err_set(ENOMEM, "rendering interaction %s", rec->id);
	else
		rc = err_set(ATOLOG_INVALID, "interaction %s cannot be rendered as "
			     "JSON (invalid UTF-8 or context_pack)", rec->id);
	yajl_gen_free(g);
	return rc;
}
