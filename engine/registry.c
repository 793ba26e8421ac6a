/*
 * registry.c - the project registry's read side: canonical names for
 * writes and queries, and the list of registered projects.
 *
 * The seed stores every interaction under the canonical project id and
 * resolves the filter of a query the same way, so an alias and the
 * canonical name find the same rows. Names that are not registered pass
 * through unchanged. Registrations are written by engine/write.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "error.h"

int store_resolve_project(atolog_store *s, const char *name, size_t len,
			  char **out)
{
	char key[ATOLOG_NAME_MAX_BYTES + 1];
	struct index_name k = { .ptr = key };
	int rc;

	if (len <= ATOLOG_NAME_MAX_BYTES) {
		k.len = text_fold_name(name, len, key);
		rc = index_registry_get(s->idx, k, out);
		if (rc != ATOLOG_NOTFOUND)
			return rc;
	}
	*out = strndup(name, len); /* not registered: the name stands */
	return *out ? ATOLOG_OK : err_set(ENOMEM, "resolving a project");
}

int atolog_project_resolve(atolog_store *s, const char *name, char **out)
{
	err_begin(s);
	if (!name)
		return err_set(ATOLOG_INVALID, "no project name given");
	return store_resolve_project(s, name, strlen(name), out);
}

/* Registry rows copied out of the index, to be grouped by project. */
struct registry_rows {
	struct registry_copy {
		char *canonical;
		char *spelling;
		bool is_name; /* the project's own row, not an alias */
	} *rows;
	size_t n, cap;
};

static int collect_row(const struct index_registry_row *row, void *ctx)
{
	struct registry_rows *all = ctx;
	char folded[ATOLOG_NAME_MAX_BYTES + 1];
	struct registry_copy *c;

	if (all->n == all->cap) {
		size_t cap = all->cap ? all->cap * 2 : 16;
		struct registry_copy *grown = realloc(all->rows, cap * sizeof(*grown));

		if (!grown)
			return ENOMEM;
		all->rows = grown;
		all->cap = cap;
	}
	c = &all->rows[all->n];
	c->canonical = strndup(row->canonical.ptr, row->canonical.len);
	c->spelling = strndup(row->spelling.ptr, row->spelling.len);
	if (!c->canonical || !c->spelling) {
		free(c->canonical);
		free(c->spelling);
		return ENOMEM;
	}
	text_fold_name(row->canonical.ptr,
		       row->canonical.len > ATOLOG_NAME_MAX_BYTES
			       ? ATOLOG_NAME_MAX_BYTES : row->canonical.len, folded);
	c->is_name = row->key.len == strlen(folded) &&
		     memcmp(row->key.ptr, folded, row->key.len) == 0;
	all->n++;
	return 0;
}

static int copy_compare(const void *a, const void *b)
{
	const struct registry_copy *x = a, *y = b;
	int c = strcmp(x->canonical, y->canonical);

	return c ? c : strcmp(x->spelling, y->spelling);
}

/* Calls fn for the group of rows [from, to) that share a canonical name. */
static int emit_project(const struct registry_rows *all, size_t from, size_t to,
			int (*fn)(const atolog_project *, void *), void *ctx)
{
	const char **aliases = calloc(to - from, sizeof(char *));
	atolog_project p = { .name = all->rows[from].canonical };
	int rc;

	if (!aliases)
		return err_set(ENOMEM, "listing projects");
	for (size_t i = from; i < to; i++) {
		if (!all->rows[i].is_name)
			aliases[p.n_aliases++] = all->rows[i].spelling;
	}
	p.aliases = aliases;
	rc = fn(&p, ctx);
	free(aliases);
	return rc;
}

int atolog_project_foreach(atolog_store *s,
			   int (*fn)(const atolog_project *project, void *ctx),
			   void *ctx)
{
	struct registry_rows all = { 0 };
	int rc;

	err_begin(s);
	rc = index_registry_foreach(s->idx, collect_row, &all);
	if (rc == ENOMEM)
		rc = err_set(ENOMEM, "listing projects");
	if (rc == ATOLOG_OK && all.n > 1)
		qsort(all.rows, all.n, sizeof(*all.rows), copy_compare);
	for (size_t from = 0, to; rc == ATOLOG_OK && from < all.n; from = to) {
		for (to = from + 1; to < all.n &&
		     strcmp(all.rows[to].canonical, all.rows[from].canonical) == 0;)
			to++;
		rc = emit_project(&all, from, to, fn, ctx);
	}
	for (size_t i = 0; i < all.n; i++) {
		free(all.rows[i].canonical);
		free(all.rows[i].spelling);
	}
	free(all.rows);
	return rc;
}
