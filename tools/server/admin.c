/*
 * admin.c - POST /admin/backup and POST /admin/backup/cleanup: the seed's
 * daily backup and its pruning, as atolog snapshots; and POST
 * /admin/compact, compaction of the served store.
 *
 * A backup is atolog_store_snapshot of the server's own handle into the
 * backup directory (--backup-dir), named by its UTC time so that names
 * sort as they were made. Cleanup is the retention rule of
 * tools/retention.h, a dry run unless the body says "dry_run": false.
 * Compaction takes the same options as `atolog compact` as JSON, and is
 * a dry run unless "dry_run": false.
 * All can take seconds on a large store, so they run on a writer thread
 * (writers.c) with the connection suspended, never in a polling thread.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <yajl/yajl_tree.h>

#include "cli.h"
#include "retention.h"
#include "server.h"

struct admin_job {
	int rc;                  /* atolog code, or an errno value */
	char msg[512];
	char name[64];           /* backup: the snapshot made */
	atolog_snapshot_info info;
	struct retention_policy policy;
	bool dry_run;
	struct retention_plan plan;
	atolog_compact_options compact;
	char *project;           /* compact: owned copy */
	atolog_compact_report report;
};

static void admin_free(void *state)
{
	struct admin_job *j = state;

	retention_free(&j->plan);
	atolog_compact_report_free(&j->report);
	free(j->project);
	free(j);
}

/* "20261201T095418.123456Z": sortable, and unique within a server. */
static void backup_name(int64_t us, char out[64])
{
	char iso[ATOLOG_TIME_ISO_LEN];
	size_t k = 0;

	atolog_time_format_iso(us, iso);
	for (const char *p = iso; *p && k < 63; p++) {
		if (*p != '-' && *p != ':')
			out[k++] = *p;
	}
	out[k] = '\0';
}

static void backup_work(struct request *req)
{
	struct admin_job *j = req->work_state;
	const char *dir = req->srv->cfg.backup_dir;
	char path[4096];
	atolog_store *s = req->srv->store;
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	backup_name((int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000, j->name);
	if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
		j->rc = errno;
		snprintf(j->msg, sizeof(j->msg), "creating %s: %s", dir, strerror(errno));
		return;
	}
	snprintf(path, sizeof(path), "%s/%s", dir, j->name);
	j->rc = atolog_store_snapshot(s, path, NULL, NULL, &j->info);
	snprintf(j->msg, sizeof(j->msg), "%s", atolog_errmsg(s));
}

static void cleanup_work(struct request *req)
{
	struct admin_job *j = req->work_state;
	const char *dir = req->srv->cfg.backup_dir;

	j->rc = retention_plan(dir, &j->policy, &j->plan);
	if (j->rc == 0 && !j->dry_run)
		j->rc = retention_apply(dir, &j->plan);
	if (j->rc)
		snprintf(j->msg, sizeof(j->msg), "%s: %s", dir,
			 j->plan.error[0] ? j->plan.error : strerror(j->rc));
}

static void compact_work(struct request *req)
{
	struct admin_job *j = req->work_state;
	atolog_store *s = req->srv->store;

	if (!j->dry_run)
		j->compact.flags |= ATOLOG_COMPACT_APPLY;
	j->rc = atolog_store_compact(s, &j->compact, &j->report);
	snprintf(j->msg, sizeof(j->msg), "%s", atolog_errmsg(s));
}

static enum MHD_Result compact_answer(struct request *req, struct MHD_Connection *conn,
				      struct admin_job *j)
{
	char *body = NULL;
	size_t len = 0;
	FILE *f;

	if (j->rc != ATOLOG_OK)
		return reply_error(req, conn, reply_status_of(j->rc), "compact: %s", j->msg);
	f = open_memstream(&body, &len);
	if (!f)
		return MHD_NO;
	cli_print_compact_report(f, &j->report);
	if (fclose(f) != 0)
		return MHD_NO;
	return reply_take(req, conn, MHD_HTTP_OK, "application/json", body, len);
}

static enum MHD_Result backup_answer(struct request *req, struct MHD_Connection *conn,
				     struct admin_job *j)
{
	char iso[ATOLOG_TIME_ISO_LEN], *body;
	int n;

	if (j->rc != ATOLOG_OK)
		return reply_error(req, conn, reply_status_of(j->rc), "backup: %s", j->msg);
	atolog_time_format_iso(j->info.created_at, iso);
	n = asprintf(&body, "{\"snapshot\":\"%s\",\"created_at\":\"%s\",\"records\":%" PRIu64
		     ",\"last_seq\":%" PRIu64 ",\"segments\":%" PRIu64 ",\"bytes\":%" PRIu64
		     ",\"linked_segments\":%" PRIu64 "}\n", j->name, iso, j->info.records,
		     j->info.last_seq, j->info.segments, j->info.bytes,
		     j->info.linked_segments);
	if (n < 0)
		return MHD_NO;
	return reply_take(req, conn, MHD_HTTP_CREATED, "application/json", body, (size_t)n);
}

static enum MHD_Result cleanup_answer(struct request *req, struct MHD_Connection *conn,
				      struct admin_job *j)
{
	char *body = NULL;
	size_t len = 0, doomed = 0;
	FILE *f;

	if (j->rc != 0)
		return reply_error(req, conn, MHD_HTTP_SERVICE_UNAVAILABLE, "backup cleanup: %s",
				   j->msg);
	f = open_memstream(&body, &len);
	if (!f)
		return MHD_NO;
	for (size_t i = 0; i < j->plan.n; i++)
		doomed += j->plan.items[i].reasons == 0;
	fprintf(f, "{\"dry_run\":%s,\"kept\":%zu,\"%s\":%zu,\"snapshots\":[",
		j->dry_run ? "true" : "false", j->plan.n - doomed,
		j->dry_run ? "would_delete" : "deleted", doomed);
	retention_print(f, &j->plan, ",");
	fputs("]}\n", f);
	if (fclose(f) != 0)
		return MHD_NO;
	return reply_take(req, conn, MHD_HTTP_OK, "application/json", body, len);
}

/* A non-negative integer field of the body, when present. */
static bool body_count(yajl_val v, const char *key, long *out)
{
	const char *path[] = { key, NULL };
	yajl_val n = yajl_tree_get(v, path, yajl_t_any);

	if (!n)
		return true;
	if (!YAJL_IS_INTEGER(n) || YAJL_GET_INTEGER(n) < 0)
		return false;
	*out = (long)YAJL_GET_INTEGER(n);
	return true;
}

/* The body as an object (NULL: no body), and its dry_run (true unless
 * false is given); *why on a bad one. */
static yajl_val parse_body(const struct request *req, struct admin_job *j,
			   const char **why)
{
	const char *dry[] = { "dry_run", NULL };
	yajl_val v, d;

	j->dry_run = true;
	*why = NULL;
	if (!req->len)
		return NULL;
	v = yajl_tree_parse(req->body, NULL, 0);
	if (!v || !YAJL_IS_OBJECT(v)) {
		yajl_tree_free(v);
		*why = "the body must be a JSON object";
		return NULL;
	}
	d = yajl_tree_get(v, dry, yajl_t_any);
	if (d && !YAJL_IS_TRUE(d) && !YAJL_IS_FALSE(d))
		*why = "dry_run must be true or false";
	else if (d)
		j->dry_run = YAJL_IS_TRUE(d);
	return v;
}

/* {"dry_run": bool, "keep_last": n, "keep_daily": n, "keep_weekly": n},
 * every field optional. */
static const char *parse_cleanup_body(const struct request *req, struct admin_job *j)
{
	const char *why;
	yajl_val v = parse_body(req, j, &why);

	j->policy = (struct retention_policy){ RETENTION_KEEP_LAST_DEFAULT,
					       RETENTION_KEEP_DAILY_DEFAULT,
					       RETENTION_KEEP_WEEKLY_DEFAULT };
	if (v && !why && (!body_count(v, "keep_last", &j->policy.keep_last) ||
			  !body_count(v, "keep_daily", &j->policy.keep_daily) ||
			  !body_count(v, "keep_weekly", &j->policy.keep_weekly)))
		why = "keep_last, keep_daily and keep_weekly must be counts";
	yajl_tree_free(v);
	return why;
}

/* A string field of the body, when present (NULL: absent). */
static const char *body_string(yajl_val v, const char *key, bool *bad)
{
	const char *path[] = { key, NULL };
	yajl_val s = yajl_tree_get(v, path, yajl_t_any);

	if (s && !YAJL_IS_STRING(s))
		*bad = true;
	return s && YAJL_IS_STRING(s) ? YAJL_GET_STRING(s) : NULL;
}

/* {"dry_run": bool, "older_than": "90d" | "before": ISO, "project": P,
 * "small_bytes": n}, every field optional. */
static const char *parse_compact_body(const struct request *req, struct admin_job *j)
{
	const char *why, *age, *before, *project;
	yajl_val v = parse_body(req, j, &why);
	bool bad = false;
	long small = 0;
	int64_t us;

	if (!v || why) {
		yajl_tree_free(v);
		return why;
	}
	age = body_string(v, "older_than", &bad);
	before = body_string(v, "before", &bad);
	project = body_string(v, "project", &bad);
	if (bad)
		why = "older_than, before and project must be strings";
	else if (age && before)
		why = "give older_than or before, not both";
	else if (age && !cli_parse_duration(age, &us))
		why = "older_than must be a duration such as 90d, 12h or 2w";
	else if (before && atolog_time_parse(before, &us) != ATOLOG_OK)
		why = "before must be an ISO-8601 time";
	else if (!body_count(v, "small_bytes", &small))
		why = "small_bytes must be a count";
	if (!why && (age || before)) {
		j->compact.flags |= ATOLOG_COMPACT_BEFORE;
		j->compact.before = age ? cli_now_us() - us : us;
	}
	if (!why && project) {
		j->project = strdup(project);
		j->compact.flags |= ATOLOG_COMPACT_PROJECT;
		j->compact.project = j->project;
		if (!j->project)
			why = "out of memory";
	}
	j->compact.small_bytes = (uint64_t)small;
	yajl_tree_free(v);
	return why;
}

enum MHD_Result post_admin(struct request *req, struct MHD_Connection *conn)
{
	struct admin_job *j = req->work_state;
	const char *why = NULL;

	if (j && !req->work_done)
		return MHD_YES;
	if (j && req->route == ROUTE_BACKUP)
		return backup_answer(req, conn, j);
	if (j && req->route == ROUTE_COMPACT)
		return compact_answer(req, conn, j);
	if (j)
		return cleanup_answer(req, conn, j);
	j = calloc(1, sizeof(*j));
	if (!j)
		return MHD_NO;
	req->work_state = j;
	req->work_free = admin_free;
	if (req->route == ROUTE_BACKUP)
		return submit_write(req, conn, backup_work);
	why = req->route == ROUTE_COMPACT ? parse_compact_body(req, j)
					  : parse_cleanup_body(req, j);
	if (why)
		return reply_error(req, conn, MHD_HTTP_BAD_REQUEST, "%s: %s",
				   req->route == ROUTE_COMPACT ? "compact" : "backup cleanup",
				   why);
	return submit_write(req, conn, req->route == ROUTE_COMPACT ? compact_work
								    : cleanup_work);
}
