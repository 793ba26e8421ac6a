/*
 * context.c - the context pack, a JSON object the caller assembled, stored
 * as a native msgpack map (not as a JSON string inside the record), so that
 * the log stays self-describing and compact.
 *
 * Mapping (both directions): object <-> map with str keys, array <-> array,
 * string <-> str, integer <-> int (64-bit), real <-> float64, true/false <->
 * bool, null <-> nil. Reading back anything JSON cannot hold (bin, ext,
 * non-string keys, NaN) is reported as corruption: this writer never
 * produces it.
 */
#include <errno.h>
#include <string.h>

#include "codec.h"
#include "error.h"

unsigned context_depth(const json_t *value, unsigned stop_at)
{
	unsigned deepest = 0;
	const char *key;
	json_t *child;
	size_t i;

	if (!json_is_object(value) && !json_is_array(value))
		return 0;
	if (stop_at == 0)
		return 1; /* already too deep: no need to look further */
	if (json_is_object(value)) {
		json_object_foreach((json_t *)value, key, child) {
			unsigned d = context_depth(child, stop_at - 1);

			if (d > deepest)
				deepest = d;
		}
	} else {
		json_array_foreach(value, i, child) {
			unsigned d = context_depth(child, stop_at - 1);

			if (d > deepest)
				deepest = d;
		}
	}
	return deepest + 1;
}

int context_pack_json(msgpack_packer *pk, const json_t *value)
{
	const char *key;
	json_t *child;
	size_t i;
	int rc = 0;

	switch (json_typeof(value)) {
	case JSON_OBJECT:
		rc = msgpack_pack_map(pk, json_object_size(value));
		json_object_foreach((json_t *)value, key, child) {
			if (rc == 0)
				rc = msgpack_pack_str_with_body(pk, key, strlen(key));
			if (rc == 0)
				rc = context_pack_json(pk, child);
		}
		break;
	case JSON_ARRAY:
		rc = msgpack_pack_array(pk, json_array_size(value));
		json_array_foreach(value, i, child) {
			if (rc == 0)
				rc = context_pack_json(pk, child);
		}
		break;
	case JSON_STRING:
		rc = msgpack_pack_str_with_body(pk, json_string_value(value),
						json_string_length(value));
		break;
	case JSON_INTEGER:
		rc = msgpack_pack_int64(pk, json_integer_value(value));
		break;
	case JSON_REAL:
		rc = msgpack_pack_double(pk, json_real_value(value));
		break;
	case JSON_TRUE:
		rc = msgpack_pack_true(pk);
		break;
	case JSON_FALSE:
		rc = msgpack_pack_false(pk);
		break;
	case JSON_NULL:
		rc = msgpack_pack_nil(pk);
		break;
	}
	return rc == 0 ? ATOLOG_OK : err_set(ENOMEM, "encoding context_pack");
}

static int context_map_to_json(const msgpack_object_map *map, json_t **out)
{
	json_t *obj = json_object();

	if (!obj)
		return err_set(ENOMEM, "decoding context_pack");
	for (uint32_t i = 0; i < map->size; i++) {
		const msgpack_object_kv *kv = &map->ptr[i];
		json_t *child;
		int rc;

		if (kv->key.type != MSGPACK_OBJECT_STR) {
			json_decref(obj);
			return err_set(ATOLOG_CORRUPT,
				       "context_pack has a non-string key");
		}
		rc = context_to_json(&kv->val, &child);
		if (rc != ATOLOG_OK) {
			json_decref(obj);
			return rc;
		}
		if (json_object_setn_new(obj, kv->key.via.str.ptr,
					 kv->key.via.str.size, child) != 0) {
			json_decref(obj);
			return err_set(ATOLOG_CORRUPT,
				       "context_pack key is not valid UTF-8");
		}
	}
	*out = obj;
	return ATOLOG_OK;
}

static int context_array_to_json(const msgpack_object_array *arr, json_t **out)
{
	json_t *array = json_array();

	if (!array)
		return err_set(ENOMEM, "decoding context_pack");
	for (uint32_t i = 0; i < arr->size; i++) {
		json_t *child;
		int rc = context_to_json(&arr->ptr[i], &child);

		if (rc != ATOLOG_OK) {
			json_decref(array);
			return rc;
		}
		if (json_array_append_new(array, child) != 0) {
			json_decref(array);
			return err_set(ENOMEM, "decoding context_pack");
		}
	}
	*out = array;
	return ATOLOG_OK;
}

static json_t *context_scalar_to_json(const msgpack_object *obj)
{
	switch (obj->type) {
	case MSGPACK_OBJECT_NIL:
		return json_null();
	case MSGPACK_OBJECT_BOOLEAN:
		return json_boolean(obj->via.boolean);
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		if (obj->via.u64 > (uint64_t)INT64_MAX)
			return json_real((double)obj->via.u64);
		return json_integer((json_int_t)obj->via.u64);
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return json_integer(obj->via.i64);
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		/* json_real refuses NaN and infinities: NULL -> corrupt */
		return json_real(obj->via.f64);
	case MSGPACK_OBJECT_STR:
		/* json_stringn refuses invalid UTF-8: NULL -> corrupt */
		return json_stringn(obj->via.str.ptr, obj->via.str.size);
	default:
		return NULL;
	}
}

int context_to_json(const msgpack_object *obj, json_t **out)
{
	json_t *value;

	if (obj->type == MSGPACK_OBJECT_MAP)
		return context_map_to_json(&obj->via.map, out);
	if (obj->type == MSGPACK_OBJECT_ARRAY)
		return context_array_to_json(&obj->via.array, out);
	value = context_scalar_to_json(obj);
	if (!value)
		return err_set(ATOLOG_CORRUPT,
			       "context_pack holds a value JSON cannot represent "
			       "(msgpack type %d)", (int)obj->type);
	*out = value;
	return ATOLOG_OK;
}
