/*
 * retention.c - snapshot retention (see retention.h for the rule).
 */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <yajl/yajl_tree.h>

#include "atolog.h"
#include "cli.h"
#include "retention.h"

#define MANIFEST_MAX_BYTES (64u << 10)

bool snapshot_manifest_time(const char *dir, const char *name, int64_t *out)
{
	const char *path_created[] = { "created_at", NULL };
	char path[4096], *text;
	size_t len;
	yajl_val v = NULL, t;
	bool ok = false;
	FILE *f;

	struct stat st;

	if (name[0] == '.' || strstr(name, ".tmp-"))
		return false;
	/* Only real directories: a link may name another snapshot. */
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (lstat(path, &st) != 0 || !S_ISDIR(st.st_mode))
		return false;
	snprintf(path, sizeof(path), "%s/%s/%s", dir, name, ATOLOG_SNAPSHOT_MANIFEST);
	f = fopen(path, "r");
	if (!f)
		return false;
	if (cli_read_all(f, MANIFEST_MAX_BYTES, &text, &len) == 0) {
		v = yajl_tree_parse(text, NULL, 0);
		free(text);
	}
	fclose(f);
	t = v ? yajl_tree_get(v, path_created, yajl_t_string) : NULL;
	ok = t && atolog_time_parse(YAJL_GET_STRING(t), out) == ATOLOG_OK;
	yajl_tree_free(v);
	return ok;
}

static int newest_first(const void *a, const void *b)
{
	const struct retention_item *x = a, *y = b;

	if (x->created_at != y->created_at)
		return x->created_at < y->created_at ? 1 : -1;
	return strcmp(y->name, x->name);
}

/* The UTC day or ISO week of t, as a comparable key. */
static long period_of(int64_t t, bool week)
{
	time_t secs = (time_t)(t / 1000000 - (t % 1000000 < 0));
	struct tm tm;
	char buf[16];

	gmtime_r(&secs, &tm);
	strftime(buf, sizeof(buf), week ? "%G%V" : "%Y%j", &tm);
	return atol(buf);
}

/* Marks the newest of each period, for the n newest periods. */
static void keep_per_period(struct retention_plan *p, long n, bool week, unsigned why)
{
	long last = -1, periods = 0;

	for (size_t i = 0; i < p->n && periods < n; i++) {
		long period = period_of(p->items[i].created_at, week);

		if (period == last)
			continue;
		last = period;
		periods++;
		p->items[i].reasons |= why;
	}
}

static int read_items(const char *dir, struct retention_plan *out)
{
	struct dirent *e;
	size_t cap = 0;
	DIR *d = opendir(dir);

	if (!d)
		return errno == ENOENT ? 0 : errno; /* no backups yet: nothing */
	while ((e = readdir(d)) != NULL) {
		int64_t t;

		if (!snapshot_manifest_time(dir, e->d_name, &t))
			continue;
		if (out->n == cap) {
			struct retention_item *grown;

			cap = cap ? cap * 2 : 32;
			grown = realloc(out->items, cap * sizeof(*grown));
			if (!grown) {
				closedir(d);
				return ENOMEM;
			}
			out->items = grown;
		}
		out->items[out->n] = (struct retention_item){ .name = strdup(e->d_name),
							      .created_at = t };
		if (!out->items[out->n++].name) {
			closedir(d);
			return ENOMEM;
		}
	}
	closedir(d);
	return 0;
}

static int collect_stale(const char *name, long pid, void *ctx)
{
	struct retention_plan *p = ctx;
	struct retention_stale *grown = realloc(p->stale,
						(p->n_stale + 1) * sizeof(*grown));

	if (!grown)
		return ENOMEM;
	p->stale = grown;
	p->stale[p->n_stale] = (struct retention_stale){ .name = strdup(name), .pid = pid };
	if (!p->stale[p->n_stale].name)
		return ENOMEM;
	p->n_stale++;
	return 0;
}

static int mark_deleted(const char *name, long pid, void *ctx)
{
	struct retention_plan *p = ctx;

	(void)pid;
	for (size_t i = 0; i < p->n_stale; i++) {
		if (strcmp(p->stale[i].name, name) == 0)
			p->stale[i].deleted = true;
	}
	return 0;
}

int retention_plan(const char *dir, const struct retention_policy *policy,
		   struct retention_plan *out)
{
	struct stat st;
	int rc;

	*out = (struct retention_plan){ 0 };
	rc = read_items(dir, out);
	if (rc == 0 && stat(dir, &st) == 0) {
		int e = atolog_snapshot_stale(dir, 0, collect_stale, out);

		if (e != ATOLOG_OK)
			rc = e > 0 ? e : EIO;
	}
	if (rc != 0)
		return rc;
	if (out->n) /* qsort wants a real array, even of nothing */
		qsort(out->items, out->n, sizeof(*out->items), newest_first);
	for (size_t i = 0; i < out->n && (long)i < policy->keep_last; i++)
		out->items[i].reasons |= RETAIN_LAST;
	keep_per_period(out, policy->keep_daily, false, RETAIN_DAILY);
	keep_per_period(out, policy->keep_weekly, true, RETAIN_WEEKLY);
	if (out->n)
		out->items[0].reasons |= RETAIN_NEWEST;
	return 0;
}

int retention_apply(const char *dir, struct retention_plan *plan)
{
	int first = 0;

	for (size_t i = 0; i < plan->n; i++) {
		char path[4096];

		if (plan->items[i].reasons)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, plan->items[i].name);
		if (atolog_snapshot_delete(path) != ATOLOG_OK) {
			if (!first) {
				first = EIO;
				snprintf(plan->error, sizeof(plan->error), "%s",
					 atolog_errmsg(NULL));
			}
			continue;
		}
		plan->items[i].deleted = true;
	}
	/* Only the stale the plan listed are told deleted: the sweep may find
	 * one more, which the next plan lists. */
	if (plan->n_stale && atolog_snapshot_stale(dir, 1, mark_deleted, plan) != ATOLOG_OK &&
	    !first) {
		first = EIO;
		snprintf(plan->error, sizeof(plan->error), "%s", atolog_errmsg(NULL));
	}
	return first;
}

void retention_free(struct retention_plan *plan)
{
	for (size_t i = 0; i < plan->n; i++)
		free(plan->items[i].name);
	free(plan->items);
	for (size_t i = 0; i < plan->n_stale; i++)
		free(plan->stale[i].name);
	free(plan->stale);
	*plan = (struct retention_plan){ 0 };
}

void retention_print(FILE *f, const struct retention_plan *plan, const char *sep)
{
	static const struct {
		unsigned bit;
		const char *name;
	} reasons[] = { { RETAIN_NEWEST, "newest" }, { RETAIN_LAST, "last" },
			{ RETAIN_DAILY, "daily" }, { RETAIN_WEEKLY, "weekly" } };

	size_t printed = 0;

	for (size_t i = 0; i < plan->n; i++) {
		const struct retention_item *it = &plan->items[i];
		char iso[ATOLOG_TIME_ISO_LEN], *q = NULL;
		int k = 0;

		if (cli_json_quote(it->name, &q) != 0)
			continue;
		atolog_time_format_iso(it->created_at, iso);
		fprintf(f, "%s{\"name\":%s,\"created_at\":\"%s\",\"action\":\"%s\",\"reasons\":[",
			printed++ ? sep : "", q, iso,
			it->reasons ? "keep" : it->deleted ? "deleted" : "delete");
		for (size_t r = 0; r < sizeof(reasons) / sizeof(reasons[0]); r++) {
			if (it->reasons & reasons[r].bit)
				fprintf(f, "%s\"%s\"", k++ ? "," : "", reasons[r].name);
		}
		fputs("]}", f);
		free(q);
	}
	for (size_t i = 0; i < plan->n_stale; i++) {
		const struct retention_stale *it = &plan->stale[i];
		char *q = NULL;

		if (cli_json_quote(it->name, &q) != 0)
			continue;
		fprintf(f, "%s{\"name\":%s,\"action\":\"%s\",\"reasons\":[\"stale\"],"
			"\"pid\":%ld}", printed++ ? sep : "", q,
			it->deleted ? "deleted" : "delete", it->pid);
		free(q);
	}
}
