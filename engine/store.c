/*
 * store.c - opening and closing a store: the directory layout, the writer
 * lock, the index environment and its crash check, and statistics.
 *
 *   <dir>/LOCK            flock'ed by the one writer process; holds its pid
 *   <dir>/segments/       the log (engine/segment.c)
 *   <dir>/index/          the LMDB environment (index/)
 *   <dir>/index-unsynced  present while the index may be unflushed
 *
 * Readers never take the lock: LMDB read transactions and pread on
 * segments are safe beside a writer, and the index only names complete
 * frames.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine.h"
#include "error.h"

#define BOOT_ID_PATH "/proc/sys/kernel/random/boot_id"

static char *path_join(const char *dir, const char *name)
{
	size_t len = strlen(dir) + strlen(name) + 2;
	char *p = malloc(len);

	if (p)
		snprintf(p, len, "%s/%s", dir, name);
	return p;
}

static int store_make_dirs(atolog_store *s)
{
	if (mkdir(s->dir, 0755) != 0 && errno != EEXIST)
		return err_errno(errno, "creating %s", s->dir);
	if (mkdir(s->segment_dir, 0755) != 0 && errno != EEXIST)
		return err_errno(errno, "creating %s", s->segment_dir);
	return ATOLOG_OK;
}

/*
 * Readers look whether a writer runs by taking LOCK shared for an instant
 * (engine/tail.c, engine/follow.c): a writer opening in that instant must
 * not be refused as if another writer held it. So a refusal is retried
 * for STORE_LOCK_RETRY_MS; another writer holds it for longer than that.
 */
static int lock_exclusive(int fd)
{
	for (int waited = 0;; waited++) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			return 0;
		if (errno != EWOULDBLOCK || waited >= STORE_LOCK_RETRY_MS)
			return -1;
		usleep(1000);
	}
}

static int store_lock(atolog_store *s)
{
	char path[PATH_MAX], pid[32];
	int fd, n;

	snprintf(path, sizeof(path), "%s/%s", s->dir, STORE_LOCK_FILE);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return err_errno(errno, "opening %s", path);
	if (lock_exclusive(fd) != 0) {
		int e = errno;
		ssize_t got = pread(fd, pid, sizeof(pid) - 1, 0);

		close(fd);
		pid[got > 0 ? got : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		if (e == EWOULDBLOCK)
			return err_set(ATOLOG_LOCKED,
				       "%s is locked by another writer (pid %s)",
				       path, pid[0] ? pid : "unknown");
		return err_errno(e, "locking %s", path);
	}
	n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
		int e = errno;

		close(fd);
		return err_errno(e, "writing %s", path);
	}
	s->lock_fd = fd;
	return ATOLOG_OK;
}

/* "" where the system has none (the marker takes that for another boot:
 * a rebuild too many rather than a damaged index kept). Failing to read
 * one that is there (ENOMEM, EMFILE) is an error, not another boot. */
int store_boot_id(char out[STORE_BOOT_ID_SIZE])
{
	FILE *f = fopen(BOOT_ID_PATH, "re");

	out[0] = '\0';
	if (!f && errno != ENOENT)
		return err_errno(errno, "reading %s", BOOT_ID_PATH);
	if (f) {
		if (!fgets(out, STORE_BOOT_ID_SIZE, f))
			out[0] = '\0';
		fclose(f);
	}
	out[strcspn(out, "\n")] = '\0';
	return ATOLOG_OK;
}

/* Deletes the LMDB files so the index is rebuilt from the log. */
static int store_drop_index(atolog_store *s)
{
	const char *files[] = { "data.mdb", "lock.mdb" };

	for (size_t i = 0; i < 2; i++) {
		char *p = path_join(s->index_dir, files[i]);

		if (!p)
			return err_set(ENOMEM, "dropping the index");
		if (unlink(p) != 0 && errno != ENOENT) {
			int rc = err_errno(errno, "removing %s", p);

			free(p);
			return rc;
		}
		free(p);
	}
	s->open_stats.index_rebuilt = 1;
	return ATOLOG_OK;
}

/*
 * The index-unsynced marker. The index commits without syncing (unless
 * ATOLOG_OPEN_INDEX_DURABLE): LMDB then leaves flushing to the OS, so a
 * machine crash can leave data.mdb damaged, while a crash of the process
 * alone loses nothing (the page cache survives it). So whenever the index
 * may hold unflushed commits, a marker file holds the boot id:
 *   - at open, a marker from another boot means the machine crashed under
 *     it: the index is dropped and rebuilt from the log;
 *   - before the first unflushed commit, the marker is written and synced
 *     with its directory (store_marker_write);
 *   - after a full flush of the index (idle for INDEX_IDLE_FLUSH_MS, at
 *     close) it is removed (store_marker_clear).
 */
/* Whether a marker exists, and whether an earlier boot left it. */
static int store_marker_check(atolog_store *s, bool *present, bool *other_boot)
{
	char *marker = path_join(s->dir, STORE_UNSYNCED_FILE);
	char now[STORE_BOOT_ID_SIZE], then[STORE_BOOT_ID_SIZE] = "";
	FILE *f;
	int rc = ATOLOG_OK;

	if (!marker)
		return err_set(ENOMEM, "opening the store");
	*present = *other_boot = false;
	f = fopen(marker, "re");
	if (!f && errno != ENOENT) /* there, maybe: it cannot be taken as absent */
		rc = err_errno(errno, "reading %s", marker);
	if (f) {
		*present = true;
		if (!fgets(then, sizeof(then), f))
			then[0] = '\0';
		fclose(f);
		then[strcspn(then, "\n")] = '\0';
		rc = store_boot_id(now);
		*other_boot = now[0] == '\0' || strcmp(now, then) != 0;
	}
	free(marker);
	return rc;
}

/* A writer drops an index a machine crash may have damaged. */
static int store_marker_read(atolog_store *s)
{
	bool other_boot;
	int rc;

	lock_acquire(&s->marker_lock); /* alone at open, but it is the rule */
	rc = store_marker_check(s, &s->marker_present, &other_boot);
	lock_release(&s->marker_lock);
	if (rc == ATOLOG_OK && other_boot)
		rc = store_drop_index(s);
	return rc;
}

/* A reader cannot rebuild, so it refuses such an index. */
static int store_marker_refuse(atolog_store *s)
{
	bool present, other_boot;
	int rc = store_marker_check(s, &present, &other_boot);

	if (rc == ATOLOG_OK && other_boot)
		rc = err_set(ATOLOG_CORRUPT, "the machine stopped while the index of "
			     "%s was not flushed: open the store for writing once "
			     "to rebuild it", s->dir);
	return rc;
}

/* The index needs the marker unless every commit of it is synced AND the
 * log it names is synced too (with INDEX_DURABLE under sync none, the
 * index could outlive the log bytes it names). */
bool store_needs_marker(const atolog_store *s)
{
	return !(s->opts.flags & ATOLOG_OPEN_INDEX_DURABLE) ||
	       s->opts.sync == ATOLOG_SYNC_NONE;
}

/* Written whole under a temporary name and renamed, so that a full disk
 * never leaves an empty marker behind: that would read as another boot's,
 * and cost a rebuild (or refuse every reader) for nothing. */
int store_marker_write(atolog_store *s)
{
	char *marker = path_join(s->dir, STORE_UNSYNCED_FILE);
	char now[STORE_BOOT_ID_SIZE], tmp[PATH_MAX];
	FILE *f = NULL;
	int rc = ATOLOG_OK;

	lock_assert_held(&s->marker_lock);
	if (!marker)
		return err_set(ENOMEM, "opening the store");
	snprintf(tmp, sizeof(tmp), "%s.tmp", marker);
	rc = store_boot_id(now); /* not "": that would read as another boot */
	if (rc == ATOLOG_OK)
		f = fopen(tmp, "we");
	if (rc == ATOLOG_OK && (!f || fprintf(f, "%s\n", now) < 0 || fflush(f) != 0 ||
				fdatasync(fileno(f)) != 0))
		rc = err_errno(errno, "writing %s", tmp);
	if (f && fclose(f) != 0 && rc == ATOLOG_OK)
		rc = err_errno(errno, "writing %s", tmp);
	if (rc == ATOLOG_OK && rename(tmp, marker) != 0)
		rc = err_errno(errno, "writing %s", marker);
	if (rc == ATOLOG_OK) {
		int e = io_fsync_dir(NULL, s->dir);

		if (e != 0)
			rc = err_errno(e, "syncing %s", s->dir);
	}
	if (rc != ATOLOG_OK)
		unlink(tmp);
	if (rc == ATOLOG_OK)
		s->marker_present = true;
	free(marker);
	return rc;
}

/* Removes the marker once the index is flushed (a no-op without one). */
/*
 * In sync none the log is synced only at rolls and close, so the index
 * may name log bytes a machine crash would lose: before the marker goes,
 * the segment holding the last frame the index names is synced (older
 * ones were, when sealed). Otherwise the next open would find the index
 * naming frames the log lost, which is corruption, where it is the loss
 * that mode allows and a rebuild repairs.
 */
static int marker_sync_log(atolog_store *s)
{
	struct index_state st;
	char path[PATH_MAX];
	int fd, rc = index_state_get(s->idx, &st);

	if (rc != ATOLOG_OK)
		return rc;
	segment_path(path, sizeof(path), s->segment_dir, st.segment);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_errno(errno, "syncing %s", path);
	rc = io_fdatasync(NULL, fd);
	close(fd);
	if (rc)
		return err_errno(rc, "syncing %s", path);
	if (s->w.on_sync) /* a sync of the log, like the leader's */
		s->w.on_sync(st.segment, st.end_offset, s->w.on_sync_ctx);
	return ATOLOG_OK;
}

static int marker_clear_locked(atolog_store *s)
{
	char *marker;
	int rc;

	lock_assert_held(&s->marker_lock);
	if (!s->marker_present)
		return ATOLOG_OK;
	rc = index_sync(s->idx);
	if (rc == ATOLOG_OK && s->opts.sync == ATOLOG_SYNC_NONE)
		rc = marker_sync_log(s);
	if (rc != ATOLOG_OK)
		return rc;
	marker = path_join(s->dir, STORE_UNSYNCED_FILE);
	if (!marker)
		return err_set(ENOMEM, "removing the marker");
	if (unlink(marker) != 0 && errno != ENOENT)
		rc = err_errno(errno, "removing %s", marker);
	free(marker);
	s->marker_present = rc != ATOLOG_OK;
	return rc;
}

int store_marker_clear(atolog_store *s)
{
	int rc;

	lock_acquire(&s->marker_lock);
	rc = marker_clear_locked(s);
	lock_release(&s->marker_lock);
	return rc;
}

static int store_open_index(atolog_store *s)
{
	struct index_options io = {
		.readonly = s->readonly,
		.sync = s->opts.flags & ATOLOG_OPEN_INDEX_DURABLE ? INDEX_SYNC_DATA
								  : INDEX_SYNC_NONE,
		.map_size = s->opts.index_map_size,
	};
	int rc = index_open(s->index_dir, &io, &s->idx);

	if (rc == ATOLOG_CORRUPT && !s->readonly) {
		/* The index is derived data: a damaged one is rebuilt. */
		rc = store_drop_index(s);
		if (rc == ATOLOG_OK)
			rc = index_open(s->index_dir, &io, &s->idx);
	}
	if (rc == ATOLOG_OK)
		s->open_stats.stale_readers = index_stale_readers(s->idx);
	return rc;
}

static int store_check_options(const atolog_options *o)
{
	if (o->sync != ATOLOG_SYNC_ALWAYS && o->sync != ATOLOG_SYNC_NONE &&
	    o->sync != ATOLOG_SYNC_BATCH)
		return err_set(ATOLOG_INVALID, "unknown sync mode %d", (int)o->sync);
	if (o->segment_size < ATOLOG_SEGMENT_SIZE_MIN)
		return err_set(ATOLOG_INVALID, "segment size %" PRIu64
			       " is under the minimum of %llu", o->segment_size,
			       ATOLOG_SEGMENT_SIZE_MIN);
	if (o->flags & ~(ATOLOG_OPEN_READONLY | ATOLOG_OPEN_INDEX_DURABLE |
			 ATOLOG_OPEN_REBUILD_INDEX))
		return err_set(ATOLOG_INVALID, "unknown open flags 0x%x", o->flags);
	return ATOLOG_OK;
}

static void store_default_options(atolog_options *o)
{
	if (!o->segment_size)
		o->segment_size = ATOLOG_SEGMENT_SIZE_DEFAULT;
	if (!o->index_map_size)
		o->index_map_size = ATOLOG_INDEX_MAP_SIZE_DEFAULT;
	if (!o->sync_interval_ms)
		o->sync_interval_ms = ATOLOG_SYNC_INTERVAL_MS_DEFAULT;
	if (!o->sync_bytes)
		o->sync_bytes = ATOLOG_SYNC_BYTES_DEFAULT;
	if (!o->queue_bytes)
		o->queue_bytes = ATOLOG_QUEUE_BYTES_DEFAULT;
}

static int store_init_paths(atolog_store *s, const char *dir)
{
	s->dir = strdup(dir);
	s->segment_dir = path_join(dir, STORE_SEGMENT_DIR);
	s->index_dir = path_join(dir, STORE_INDEX_DIR);
	if (!s->dir || !s->segment_dir || !s->index_dir)
		return err_set(ENOMEM, "opening the store");
	return ATOLOG_OK;
}

/* One look at the oldest and newest segment headers. */
static int check_end_headers(atolog_store *s)
{
	struct segment_header hdr;
	uint64_t *ids = NULL;
	size_t n = 0;
	int fd, rc = segment_list(s->segment_dir, &ids, &n);

	for (size_t i = 0; rc == ATOLOG_OK && n > 0 && i < 2; i++) {
		rc = segment_open(s->segment_dir, ids[i ? n - 1 : 0], O_RDONLY, &hdr, &fd);
		if (rc == ATOLOG_OK)
			close(fd);
	}
	free(ids);
	return rc;
}

/* A reader never scans the log, but it must not read a format it does not
 * know: the oldest and newest segment headers are checked. A compaction of
 * the writer may delete the oldest between the listing and the look: then
 * the directory is listed again. */
static int store_check_segment_headers(atolog_store *s)
{
	int rc = check_end_headers(s);

	for (int i = 0; rc == ENOENT && i < MAINT_COMPACTION_RETRIES; i++) {
		err_clear();
		rc = check_end_headers(s);
	}
	return rc;
}

static int store_open_readonly(atolog_store *s)
{
	struct stat st;
	uint32_t version;
	int rc;

	if (stat(s->segment_dir, &st) != 0 || !S_ISDIR(st.st_mode))
		return err_set(ATOLOG_NOTFOUND, "%s holds no store", s->dir);
	rc = store_check_segment_headers(s);
	if (rc == ATOLOG_OK)
		rc = store_marker_refuse(s);
	if (rc == ATOLOG_OK)
		rc = store_open_index(s);
	if (rc == ATOLOG_OK)
		rc = index_version(s->idx, &version);
	if (rc == ATOLOG_OK && version > INDEX_VERSION)
		rc = err_set(ATOLOG_VERSION, "the index has layout %u, newer than "
			     "this build's %u", version, INDEX_VERSION);
	else if (rc == ATOLOG_OK && version != INDEX_VERSION)
		rc = err_set(ATOLOG_VERSION,
			     "the index has layout %u, this build reads %u: "
			     "open the store for writing once to rebuild it",
			     version, INDEX_VERSION);
	if (rc == ATOLOG_OK)
		rc = tail_load(s);
	return rc;
}

/* Removes segment files a crash left half-created (see segment_create). */
static int store_remove_temp_segments(atolog_store *s)
{
	DIR *d = opendir(s->segment_dir);
	struct dirent *de;
	int rc = ATOLOG_OK;

	if (!d)
		return err_errno(errno, "listing %s", s->segment_dir);
	while ((de = readdir(d)) != NULL && rc == ATOLOG_OK) {
		size_t len = strlen(de->d_name);

		if (len > 8 && strcmp(de->d_name + len - 8, ".seg.tmp") == 0 &&
		    unlinkat(dirfd(d), de->d_name, 0) != 0)
			rc = err_errno(errno, "removing %s/%s", s->segment_dir,
				       de->d_name);
	}
	closedir(d);
	return rc;
}

static int store_open_writer(atolog_store *s)
{
	int rc = store_make_dirs(s);

	if (rc == ATOLOG_OK)
		rc = store_lock(s);
	if (rc == ATOLOG_OK)
		rc = store_remove_temp_segments(s);
	if (rc == ATOLOG_OK)
		rc = store_marker_read(s);
	/* Recovery itself commits: arm the marker first. */
	if (rc == ATOLOG_OK && store_needs_marker(s)) {
		lock_acquire(&s->marker_lock);
		rc = store_marker_write(s);
		lock_release(&s->marker_lock);
	}
	if (rc == ATOLOG_OK)
		rc = store_open_index(s);
	if (rc == ATOLOG_OK) {
		rc = writer_init(s);
		s->writer_ready = rc == ATOLOG_OK;
	}
	/* An interrupted compaction is finished or undone first: recovery
	 * must see one log, not old and new segments side by side. */
	if (rc == ATOLOG_OK)
		rc = compact_finish(s, true, &s->open_stats.segments_waiting);
	/* Asked for: recovery finds no state and rebuilds from the start. */
	if (rc == ATOLOG_OK && (s->opts.flags & ATOLOG_OPEN_REBUILD_INDEX))
		rc = index_clear(s->idx);
	if (rc == ATOLOG_OK)
		rc = recovery_run(s);
	if (rc == ATOLOG_OK)
		rc = writer_start(s);
	return rc;
}

int atolog_store_open(const char *dir, const atolog_options *opts,
		      atolog_store **out)
{
	atolog_options defaults = { 0 };
	atolog_store *s;
	int rc;

	err_begin(NULL);
	if (!dir || !*dir || !out)
		return err_set(ATOLOG_INVALID, "no store directory given");
	s = calloc(1, sizeof(*s));
	if (!s)
		return err_set(ENOMEM, "opening the store");
	s->lock_fd = -1;
	s->w.active.fd = -1;
	lock_init(&s->maint_lock);
	io_faults_init(&s->compact_io);
	lock_init(&s->marker_lock);
	s->opts = opts ? *opts : defaults;
	store_default_options(&s->opts);
	s->readonly = (s->opts.flags & ATOLOG_OPEN_READONLY) != 0;
	rc = store_check_options(&s->opts);
	if (rc == ATOLOG_OK)
		rc = store_init_paths(s, dir);
	if (rc == ATOLOG_OK)
		rc = segment_fds_init(&s->fds, s->segment_dir);
	if (rc == ATOLOG_OK)
		rc = s->readonly ? store_open_readonly(s) : store_open_writer(s);
	if (rc != ATOLOG_OK) {
		char msg[ERR_MSG_SIZE];

		/* Closing must not overwrite the reason the open failed. */
		snprintf(msg, sizeof(msg), "%s", err_message(NULL));
		atolog_store_close(s);
		err_begin(NULL);
		return err_set(rc, "%s", msg);
	}
	*out = s;
	return ATOLOG_OK;
}

int atolog_store_close(atolog_store *s)
{
	int rc = ATOLOG_OK;

	if (!s)
		return ATOLOG_OK;
	err_begin(s);
	if (s->writer_ready) {
		rc = writer_stop(s);
		/* Flushed, the index no longer fears a reboot. A handle that
		 * failed keeps its marker: the next open rebuilds. */
		if (rc == ATOLOG_OK && s->idx)
			rc = store_marker_clear(s);
	}
	index_close(s->idx);
	if (s->writer_ready)
		writer_destroy(s);
	if (s->tail_ready)
		recent_destroy(&s->tail);
	segment_fds_destroy(&s->fds);
	lock_destroy(&s->maint_lock);
	lock_destroy(&s->marker_lock);
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	free(s->dir);
	free(s->segment_dir);
	free(s->index_dir);
	free(s);
	return rc;
}

int atolog_store_stats(atolog_store *s, atolog_stats *out)
{
	struct index_state state = { .segment = 0 };
	uint64_t *ids = NULL;
	size_t n = 0;
	int rc;

	err_begin(s);
	*out = s->open_stats;
	/* A writer has acknowledged more than its index may hold yet. */
	if (store_recent(s)) {
		recent_last_state(store_recent(s), &state);
		rc = state.segment ? ATOLOG_OK : ATOLOG_NOTFOUND;
	} else {
		rc = index_state_get(s->idx, &state);
	}
	if (rc == ATOLOG_OK) {
		out->n_records = state.n_records;
		out->last_seq = state.last_seq;
	} else if (rc != ATOLOG_NOTFOUND) {
		return rc;
	}
	rc = segment_list(s->segment_dir, &ids, &n);
	if (rc != ATOLOG_OK)
		return rc;
	out->n_segments = n;
	out->log_bytes = 0;
	for (size_t i = 0; i < n; i++) {
		char path[PATH_MAX];
		struct stat st;

		/* The newest segment may be pre-allocated: count what is
		 * indexed of it, not its reserved tail. */
		if (i == n - 1 && state.segment == ids[i]) {
			out->log_bytes += state.end_offset;
			continue;
		}
		segment_path(path, sizeof(path), s->segment_dir, ids[i]);
		if (stat(path, &st) == 0)
			out->log_bytes += (uint64_t)st.st_size;
	}
	free(ids);
	out->index_bytes = index_file_size(s->idx);
	{
		bool any;

		rc = index_time_range(s->idx, &any, &out->first_created_at,
				      &out->last_created_at);
		if (rc != ATOLOG_OK)
			return rc;
		out->has_time_range = any;
		if (!any)
			out->first_created_at = out->last_created_at = 0;
	}
	if (s->writer_ready) {
		lock_acquire(&s->w.lock);
		out->commit_groups = s->w.n_groups;
		out->commit_frames = s->w.n_frames;
		out->log_syncs = s->w.n_syncs;
		out->index_commits = s->w.n_index_commits;
		memcpy(out->group_sizes, s->w.group_sizes,
		       sizeof(out->group_sizes));
		lock_release(&s->w.lock);
	}
	return ATOLOG_OK;
}

void store_inject_fault(atolog_store *s, enum io_op op, long nth, int err,
			bool short_write)
{
	/* Set while no write is in flight (the leader reads the plan
	 * without the lock); the lock orders the update before the next
	 * request a leader takes. */
	lock_acquire(&s->w.lock);
	s->w.io.countdown[op] = nth;
	s->w.io.err[op] = err;
	s->w.io.short_write = short_write;
	lock_release(&s->w.lock);
}

void store_inject_compact_fault(atolog_store *s, enum io_op op, long nth, int err)
{
	s->compact_io.countdown[op] = nth;
	s->compact_io.err[op] = err;
}

struct count_call {
	atolog_count_fn fn;
	void *ctx;
};

static int count_one(struct index_name name, uint64_t n, void *ctx)
{
	struct count_call *c = ctx;
	char buf[ATOLOG_NAME_MAX_BYTES + 1];

	snprintf(buf, sizeof(buf), "%.*s", (int)name.len, name.ptr);
	return c->fn(buf, n, c->ctx);
}

int atolog_store_counts(atolog_store *s, int what, atolog_count_fn fn, void *ctx)
{
	struct count_call c = { fn, ctx };

	err_begin(s);
	if (!fn || (what != ATOLOG_COUNT_PROJECTS && what != ATOLOG_COUNT_CLIENTS))
		return err_set(ATOLOG_INVALID, "counts: projects or clients, and a callback");
	return index_counts(s->idx, what == ATOLOG_COUNT_PROJECTS ? INDEX_COUNT_PROJECT
								  : INDEX_COUNT_CLIENT,
			    count_one, &c);
}
