/*
 * retention.h - which snapshots of a directory to keep, and deleting the
 * others: `atolog snapshot cleanup` and the server's
 * POST /admin/backup/cleanup share it.
 *
 * The rule, over the finished snapshots (those with a manifest), newest
 * first by created_at:
 *   last    the keep_last newest;
 *   daily   the newest of each UTC day, for the keep_daily newest days
 *           that have a snapshot;
 *   weekly  the newest of each ISO week (UTC), for the keep_weekly newest
 *           weeks that have one;
 *   newest  the newest snapshot, always, whatever the numbers say.
 * A snapshot no rule keeps is deleted. Directories that are not finished
 * snapshots (no manifest, a .tmp- name, a symbolic link) are never
 * touched, and neither is one a writer serves as a store; but the work
 * directories of snapshots killed before their end (NAME.tmp-PID-T whose
 * process is gone) are listed apart, and deleted too. A directory that
 * does not exist holds no snapshots.
 */
#ifndef ATOLOG_RETENTION_H
#define ATOLOG_RETENTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define RETENTION_KEEP_LAST_DEFAULT 7
#define RETENTION_KEEP_DAILY_DEFAULT 7
#define RETENTION_KEEP_WEEKLY_DEFAULT 4

struct retention_policy {
	long keep_last, keep_daily, keep_weekly;
};

#define RETAIN_LAST 0x1u
#define RETAIN_DAILY 0x2u
#define RETAIN_WEEKLY 0x4u
#define RETAIN_NEWEST 0x8u

struct retention_item {
	char *name;         /* under the directory */
	int64_t created_at; /* microseconds, from the manifest */
	unsigned reasons;   /* RETAIN_*; 0: delete */
	bool deleted;       /* set by retention_apply */
};

/* A killed snapshot's work directory (atolog_snapshot_stale): deleted by
 * retention_apply whatever the policy. */
struct retention_stale {
	char *name;
	long pid;           /* of the snapshot that made it, gone */
	bool deleted;
};

struct retention_plan {
	struct retention_item *items; /* newest first */
	size_t n;
	struct retention_stale *stale;
	size_t n_stale;
	char error[256]; /* retention_apply's first failure */
};

/* The created_at of snapshot dir/name from its manifest; false when it is
 * not a finished snapshot. */
bool snapshot_manifest_time(const char *dir, const char *name, int64_t *out);

/* Reads dir's snapshots and decides. Returns 0, or an errno value (the
 * directory cannot be read). */
int retention_plan(const char *dir, const struct retention_policy *policy,
		   struct retention_plan *out);
/* Deletes what the plan does not keep (atolog_snapshot_delete); returns 0,
 * or EIO with plan->error saying what failed first. */
int retention_apply(const char *dir, struct retention_plan *plan);
void retention_free(struct retention_plan *plan);

/* The plan as JSON: one object per snapshot into f, as
 * {"name","created_at","action":"keep"|"delete"|"deleted","reasons":[...]}
 * then one per stale work directory, as {"name","action":"delete"|
 * "deleted","reasons":["stale"],"pid"}, separated by sep. */
void retention_print(FILE *f, const struct retention_plan *plan, const char *sep);

#endif
