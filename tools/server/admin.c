/*
 * admin.c - POST /admin/backup and POST /admin/backup/cleanup: the seed's
 * daily backup and its pruning, as atolog snapshots.
 *
 * A backup is atolog_store_snapshot of the server's own handle into the
 * backup directory (--backup-dir), named by its UTC time so that names
 * sort as they were made. Cleanup is the retention rule of
 * tools/retention.h, a dry run unless the body says "dry_run": false.
 * Both can take seconds on a large store, so they run on a writer thread
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
};

static void admin_free(void *state)
{
	struct admin_job *j = state;

	retention_free(&j->plan);
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

/* {"dry_run": bool, "keep_last": n, "keep_daily": n, "keep_weekly": n},
 * every field optional; dry_run is true unless false is given. */
static const char *parse_cleanup_body(const struct request *req, struct admin_job *j)
{
	const char *dry[] = { "dry_run", NULL };
	yajl_val v, d;
	const char *why = NULL;

	j->dry_run = true;
	j->policy = (struct retention_policy){ RETENTION_KEEP_LAST_DEFAULT,
					       RETENTION_KEEP_DAILY_DEFAULT,
					       RETENTION_KEEP_WEEKLY_DEFAULT };
	if (!req->len)
		return NULL;
	v = yajl_tree_parse(req->body, NULL, 0);
	if (!v || !YAJL_IS_OBJECT(v)) {
		yajl_tree_free(v);
		return "the body must be a JSON object";
	}
	d = yajl_tree_get(v, dry, yajl_t_any);
	if (d && !YAJL_IS_TRUE(d) && !YAJL_IS_FALSE(d))
		why = "dry_run must be true or false";
	else if (d)
		j->dry_run = YAJL_IS_TRUE(d);
	if (!why && (!body_count(v, "keep_last", &j->policy.keep_last) ||
		     !body_count(v, "keep_daily", &j->policy.keep_daily) ||
		     !body_count(v, "keep_weekly", &j->policy.keep_weekly)))
		why = "keep_last, keep_daily and keep_weekly must be counts";
	yajl_tree_free(v);
	return why;
}

enum MHD_Result post_admin(struct request *req, struct MHD_Connection *conn)
{
	struct admin_job *j = req->work_state;
	bool backup = req->route == ROUTE_BACKUP;
	const char *why;

	if (j)
		return !req->work_done ? MHD_YES
		       : backup	       ? backup_answer(req, conn, j)
				       : cleanup_answer(req, conn, j);
	j = calloc(1, sizeof(*j));
	if (!j)
		return MHD_NO;
	req->work_state = j;
	req->work_free = admin_free;
	if (!backup && (why = parse_cleanup_body(req, j)) != NULL)
		return reply_error(req, conn, MHD_HTTP_BAD_REQUEST, "backup cleanup: %s", why);
	return submit_write(req, conn, backup ? backup_work : cleanup_work);
}
