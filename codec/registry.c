/*
 * registry.c - the payload of a registry frame: one project registration,
 * {"op": "project_add", "name": str, "aliases": [str, ...]}.
 *
 * Registrations live in the log, like interactions, so that the registry
 * survives an index rebuild: the index's registry table is replayed from
 * these frames. Aliases accumulate: a later frame for the same project
 * adds to the earlier ones.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "error.h"

#define REGISTRY_OP_ADD "project_add"

int registry_encode(struct text name, const struct text *aliases,
		    size_t n_aliases, msgpack_sbuffer *out)
{
	msgpack_packer pk;
	int bad;

	msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
	bad = msgpack_pack_map(&pk, 3) ||
	      msgpack_pack_str_with_body(&pk, "op", 2) ||
	      msgpack_pack_str_with_body(&pk, REGISTRY_OP_ADD,
					 strlen(REGISTRY_OP_ADD)) ||
	      msgpack_pack_str_with_body(&pk, "name", 4) ||
	      msgpack_pack_str_with_body(&pk, name.ptr, name.len) ||
	      msgpack_pack_str_with_body(&pk, "aliases", 7) ||
	      msgpack_pack_array(&pk, n_aliases);
	for (size_t i = 0; i < n_aliases && !bad; i++)
		bad = msgpack_pack_str_with_body(&pk, aliases[i].ptr, aliases[i].len);
	return bad ? err_set(ENOMEM, "encoding a registry frame") : ATOLOG_OK;
}

static bool str_is(const msgpack_object *o, const char *s)
{
	return o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(s) &&
	       memcmp(o->via.str.ptr, s, o->via.str.size) == 0;
}

static int registry_take_aliases(struct registry_view *view,
				 const msgpack_object *val)
{
	const msgpack_object_array *arr = &val->via.array;

	if (val->type != MSGPACK_OBJECT_ARRAY)
		return err_set(ATOLOG_CORRUPT, "registry aliases is not a list");
	free(view->aliases); /* a repeated key: the last one wins */
	view->aliases = calloc(arr->size + 1, sizeof(struct text));
	if (!view->aliases)
		return err_set(ENOMEM, "decoding a registry frame");
	for (uint32_t i = 0; i < arr->size; i++) {
		if (arr->ptr[i].type != MSGPACK_OBJECT_STR)
			return err_set(ATOLOG_CORRUPT, "registry alias is not a string");
		view->aliases[i].ptr = arr->ptr[i].via.str.ptr;
		view->aliases[i].len = arr->ptr[i].via.str.size;
	}
	view->n_aliases = arr->size;
	return ATOLOG_OK;
}

/* A name in a registry frame must obey the writer's rules: a log that
 * breaks them was not written by atolog and is not replayed. */
static bool registry_name_ok(struct text t)
{
	struct text trimmed = text_trim(t.ptr, t.len);

	return trimmed.len > 0 && t.len <= ATOLOG_NAME_MAX_BYTES &&
	       !memchr(t.ptr, 0, t.len) && text_is_utf8(t.ptr, t.len);
}

static int registry_check_names(const struct registry_view *view)
{
	bool ok = registry_name_ok(view->name);

	for (size_t i = 0; ok && i < view->n_aliases; i++)
		ok = registry_name_ok(view->aliases[i]);
	return ok ? ATOLOG_OK
		  : err_set(ATOLOG_CORRUPT, "registry frame holds a name that "
			    "breaks the name rules");
}

int registry_decode(struct registry_view *view, const void *payload, size_t len)
{
	const msgpack_object_map *map;
	bool have_op = false, have_name = false;
	msgpack_unpack_return mrc;
	size_t off = 0;
	int rc = ATOLOG_OK;

	memset(view, 0, sizeof(*view));
	msgpack_unpacked_init(&view->unpacked);
	if (!mp_is_bounded(payload, len, 2))
		return err_set(ATOLOG_CORRUPT, "registry frame is not a msgpack map");
	mrc = msgpack_unpack_next(&view->unpacked, payload, len, &off);
	if (mrc == MSGPACK_UNPACK_NOMEM_ERROR) /* the reader's want, not damage */
		return err_set(ENOMEM, "decoding a registration");
	if (mrc != MSGPACK_UNPACK_SUCCESS ||
	    view->unpacked.data.type != MSGPACK_OBJECT_MAP)
		return err_set(ATOLOG_CORRUPT, "registry frame is not a msgpack map");
	map = &view->unpacked.data.via.map;
	for (uint32_t i = 0; i < map->size && rc == ATOLOG_OK; i++) {
		const msgpack_object *k = &map->ptr[i].key, *v = &map->ptr[i].val;

		if (str_is(k, "op")) {
			if (!str_is(v, REGISTRY_OP_ADD))
				return err_set(ATOLOG_VERSION,
					       "registry frame with an unknown op");
			have_op = true;
		} else if (str_is(k, "name") && v->type == MSGPACK_OBJECT_STR) {
			view->name.ptr = v->via.str.ptr;
			view->name.len = v->via.str.size;
			have_name = true;
		} else if (str_is(k, "aliases")) {
			rc = registry_take_aliases(view, v);
		}
	}
	if (rc == ATOLOG_OK && (!have_op || !have_name))
		rc = err_set(ATOLOG_CORRUPT, "registry frame lacks op or name");
	if (rc == ATOLOG_OK)
		rc = registry_check_names(view);
	return rc;
}

void registry_view_free(struct registry_view *view)
{
	msgpack_unpacked_destroy(&view->unpacked);
	free(view->aliases);
	view->aliases = NULL;
}
