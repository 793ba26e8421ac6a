/*
 * json.c - the seed service's JSON shape of an interaction, both ways.
 *
 * In: the seed's POST /interactions body. Known fields must have their
 * type (null counts as absent); unknown fields are ignored, as the seed's
 * request model ignores them; "reinforce" and "extract" (the seed's memory
 * hooks) are accepted as booleans and otherwise ignored here. id and
 * created_at (or the more precise created_at_iso) are taken for imports.
 *
 * Out: exactly the seed's field names, created_at in its storage form
 * "YYYY-MM-DD HH:MM:SS", plus created_at_iso (microseconds) and seq.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "error.h"

static const char *const text_fields[] = {
	"response", "response_summary", "project", "client", "session_id",
};

static bool is_absent(const json_t *v)
{
	return !v || json_is_null(v);
}

static int want_string(const json_t *obj, const char *field, struct text *out)
{
	const json_t *v = json_object_get(obj, field);

	if (is_absent(v)) {
		out->ptr = "";
		out->len = 0;
		return ATOLOG_OK;
	}
	if (!json_is_string(v))
		return err_set(ATOLOG_INVALID, "%s must be a string", field);
	out->ptr = json_string_value(v);
	out->len = json_string_length(v);
	return ATOLOG_OK;
}

static int want_refs(const json_t *obj, const char *field, struct text **out,
		     size_t *n)
{
	const json_t *v = json_object_get(obj, field);
	struct text *refs;
	json_t *item;
	size_t i;

	*out = NULL;
	*n = 0;
	if (is_absent(v))
		return ATOLOG_OK;
	if (!json_is_array(v))
		return err_set(ATOLOG_INVALID, "%s must be a list of strings", field);
	if (json_array_size(v) > ATOLOG_REFS_MAX)
		return err_set(ATOLOG_TOOBIG, "%s has %zu entries, over the limit of %u",
			       field, json_array_size(v), ATOLOG_REFS_MAX);
	refs = calloc(json_array_size(v) + 1, sizeof(*refs));
	if (!refs)
		return err_set(ENOMEM, "parsing %s", field);
	json_array_foreach(v, i, item) {
		if (!json_is_string(item)) {
			free(refs);
			return err_set(ATOLOG_INVALID,
				       "%s[%zu] must be a string", field, i);
		}
		refs[i].ptr = json_string_value(item);
		refs[i].len = json_string_length(item);
	}
	*out = refs;
	*n = json_array_size(v);
	return ATOLOG_OK;
}

static int want_bool(const json_t *obj, const char *field)
{
	const json_t *v = json_object_get(obj, field);

	if (!is_absent(v) && !json_is_boolean(v))
		return err_set(ATOLOG_INVALID, "%s must be true or false", field);
	return ATOLOG_OK;
}

/* id and created_at, when an import supplies them. */
static int want_identity(const json_t *obj, struct record_fields *f,
			 bool *has_id, bool *has_time)
{
	const json_t *id = json_object_get(obj, "id");
	const json_t *t = json_object_get(obj, "created_at_iso");
	int rc;

	*has_id = !is_absent(id);
	if (*has_id) {
		if (!json_is_string(id))
			return err_set(ATOLOG_INVALID, "id must be a string");
		rc = uuid_parse(json_string_value(id), f->id);
		if (rc != ATOLOG_OK)
			return err_context(rc, "id");
	}
	if (is_absent(t))
		t = json_object_get(obj, "created_at");
	*has_time = !is_absent(t);
	if (*has_time) {
		if (!json_is_string(t))
			return err_set(ATOLOG_INVALID, "created_at must be a string");
		rc = time_parse(json_string_value(t), &f->created_at);
		if (rc != ATOLOG_OK)
			return err_context(rc, "created_at");
	}
	return ATOLOG_OK;
}

static int parse_fields(const json_t *obj, struct record_fields *f,
			bool *has_id, bool *has_time)
{
	struct text *texts[] = { &f->response, &f->response_summary, &f->project,
				 &f->client, &f->session_id };
	const json_t *prompt = json_object_get(obj, "prompt");
	const json_t *ctx = json_object_get(obj, "context_pack");
	int rc = ATOLOG_OK;

	if (is_absent(prompt))
		return err_set(ATOLOG_INVALID, "prompt is required");
	if (!json_is_string(prompt))
		return err_set(ATOLOG_INVALID, "prompt must be a string");
	f->prompt.ptr = json_string_value(prompt);
	f->prompt.len = json_string_length(prompt);
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]) && !rc; i++)
		rc = want_string(obj, text_fields[i], texts[i]);
	if (!rc && !is_absent(ctx) && !json_is_object(ctx))
		rc = err_set(ATOLOG_INVALID, "context_pack must be a JSON object");
	f->context_json = is_absent(ctx) ? NULL : ctx;
	if (!rc)
		rc = want_bool(obj, "reinforce");
	if (!rc)
		rc = want_bool(obj, "extract");
	if (!rc)
		rc = want_identity(obj, f, has_id, has_time);
	return rc;
}

int atolog_interaction_from_json(const char *json, size_t len,
				 atolog_interaction **out)
{
	struct record_fields f = { 0 };
	atolog_interaction *rec;
	bool has_id = false, has_time = false;
	json_error_t jerr;
	json_t *obj;
	int rc;

	err_begin(NULL);
	if (len > ATOLOG_JSON_MAX_BYTES)
		return err_set(ATOLOG_TOOBIG, "JSON document is %zu bytes, over the limit of %u",
			       len, ATOLOG_JSON_MAX_BYTES);
	obj = json_loadb(json, len, 0, &jerr);
	if (!obj)
		return err_set(ATOLOG_INVALID, "malformed JSON at line %d column %d: %s",
			       jerr.line, jerr.column, jerr.text);
	if (!json_is_object(obj)) {
		json_decref(obj);
		return err_set(ATOLOG_INVALID, "expected a JSON object");
	}
	rc = parse_fields(obj, &f, &has_id, &has_time);
	if (!rc)
		rc = want_refs(obj, "memories_used", &f.memories_used,
			       &f.n_memories_used);
	if (!rc)
		rc = want_refs(obj, "chunks_used", &f.chunks_used, &f.n_chunks_used);
	if (!rc)
		rc = record_fields_flatten(&f, 0, &rec);
	free(f.memories_used);
	free(f.chunks_used);
	json_decref(obj);
	if (rc != ATOLOG_OK)
		return rc;
	if (!has_id)
		rec->id[0] = '\0';
	rec->has_created_at = has_time;
	if (!has_time)
		rec->created_at = 0;
	*out = rec;
	return ATOLOG_OK;
}

/* ------------------------------------------------------------------------
 * Out.
 */

static json_t *refs_to_json(const char *const *refs, size_t n)
{
	json_t *arr = json_array();

	for (size_t i = 0; arr && i < n; i++) {
		if (json_array_append_new(arr, json_string(refs[i])) != 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

static int set_field(json_t *obj, const char *key, json_t *value)
{
	/* json_object_set_new releases value itself when it fails. */
	return value && json_object_set_new(obj, key, value) == 0 ? 0 : -1;
}

/* Parsed only when the chain below reaches it, so an earlier failure
 * leaves nothing to free. */
static json_t *context_of(const atolog_interaction *rec)
{
	return rec->context_pack ? json_loads(rec->context_pack, 0, NULL)
				 : json_object();
}

static json_t *interaction_to_object(const atolog_interaction *rec)
{
	char seed_time[ATOLOG_TIME_SEED_LEN], iso_time[ATOLOG_TIME_ISO_LEN];
	json_t *obj = json_object();
	int bad;

	if (!obj)
		return NULL;
	atolog_time_format_seed(rec->created_at, seed_time);
	atolog_time_format_iso(rec->created_at, iso_time);
	bad = set_field(obj, "id", json_string(rec->id)) ||
	      set_field(obj, "prompt", json_string(rec->prompt ? rec->prompt : "")) ||
	      set_field(obj, "response", json_string(rec->response ? rec->response : "")) ||
	      set_field(obj, "response_summary",
			json_string(rec->response_summary ? rec->response_summary : "")) ||
	      set_field(obj, "project", json_string(rec->project ? rec->project : "")) ||
	      set_field(obj, "client", json_string(rec->client ? rec->client : "")) ||
	      set_field(obj, "session_id",
			json_string(rec->session_id ? rec->session_id : "")) ||
	      set_field(obj, "memories_used",
			refs_to_json(rec->memories_used, rec->n_memories_used)) ||
	      set_field(obj, "chunks_used",
			refs_to_json(rec->chunks_used, rec->n_chunks_used)) ||
	      set_field(obj, "context_pack", context_of(rec)) ||
	      set_field(obj, "created_at", json_string(seed_time)) ||
	      set_field(obj, "created_at_iso", json_string(iso_time)) ||
	      set_field(obj, "seq", json_integer((json_int_t)rec->seq));
	if (bad) {
		json_decref(obj);
		return NULL;
	}
	return obj;
}

int atolog_interaction_to_json(const atolog_interaction *rec, char **out)
{
	json_t *obj;
	char *text;

	err_begin(NULL);
	obj = interaction_to_object(rec);
	if (!obj)
		return err_set(ATOLOG_INVALID,
			       "interaction %s cannot be rendered as JSON "
			       "(invalid UTF-8 or context_pack)", rec->id);
	text = json_dumps(obj, JSON_COMPACT);
	json_decref(obj);
	if (!text)
		return err_set(ENOMEM, "rendering interaction %s", rec->id);
	*out = text;
	return ATOLOG_OK;
}
