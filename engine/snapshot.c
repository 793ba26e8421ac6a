/*
 * snapshot.c - atolog_store_snapshot: an online, consistent copy of a
 * store that is itself a store.
 *
 * The consistent point is the index's: mdb_env_copy2 copies the
 * environment as of one read transaction, and the state row in the copy
 * says which prefix of the log it describes, up to (segment S, offset E).
 * The snapshot is that prefix: every segment before S (sealed, so never
 * written again: hard-linked when the destination shares the filesystem,
 * else copied) and the first E bytes of S (copied: the source may still
 * append to it). What the writer acknowledged after that transaction is
 * not in the snapshot, which so holds exactly a prefix of the
 * acknowledged interactions, and opens without recovery work.
 *
 * Crash safety: everything is written under DEST.tmp-PID, every file and
 * directory fsynced, a SNAPSHOT.json written last, and the directory
 * renamed to DEST (then the parent fsynced). A crash leaves at worst a
 * .tmp- directory, which never looks like a finished snapshot.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <ftw.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine.h"

#define SNAPSHOT_COPY_CHUNK (1u << 20)
#define SNAPSHOT_TMP_MARK ".tmp-" /* DEST.tmp-PID-T: a snapshot's work dir */
#define SNAPSHOT_WORK_MARKER ".atolog-work" /* in it: whose it is (below) */
/* Room left in a path for what goes under the snapshot directory. */
#define SNAPSHOT_TMP_MAX (PATH_MAX - 256)

/* Files copied or linked, with progress in bytes. */
struct copier {
	atolog_progress_fn progress;
	void *progress_ctx;
	uint64_t done, total;
	uint64_t linked; /* files hard-linked rather than copied */
};

struct snapshot {
	atolog_store *store;
	char tmp[SNAPSHOT_TMP_MAX];
	struct index_state state; /* the index copy's */
	struct index_state end;   /* how far the log prefix goes */
	struct compact_view view; /* an interrupted compaction's, if any */
	atolog_snapshot_info *out;
	struct copier copier;
};

static int remove_entry(const char *path, const struct stat *st, int type,
			struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return type == FTW_DP ? rmdir(path) : unlink(path);
}

/* rm -rf of a half-made snapshot; best effort, it is already failing. */
static void remove_tree(const char *path)
{
	(void)nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int fsync_path(const char *path, int flags)
{
	int fd = open(path, flags | O_CLOEXEC), rc = 0;

	if (fd < 0)
		return err_errno(errno, "snapshot: opening %s", path);
	if (fsync(fd) != 0)
		rc = err_errno(errno, "snapshot: syncing %s", path);
	close(fd);
	return rc;
}

/* Copies the first len bytes of from into a new file to, synced. */
static int copy_prefix(struct copier *c, const char *from, const char *to,
		       uint64_t len)
{
	char *buf = malloc(SNAPSHOT_COPY_CHUNK);
	int in = open(from, O_RDONLY | O_CLOEXEC), out = -1, rc = 0;
	uint64_t off = 0;

	if (!buf)
		rc = err_set(ENOMEM, "snapshot: copy buffer");
	else if (in < 0)
		rc = err_errno(errno, "snapshot: opening %s", from);
	else if ((out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) < 0)
		rc = err_errno(errno, "snapshot: creating %s", to);
	while (rc == 0 && off < len) {
		size_t want = len - off < SNAPSHOT_COPY_CHUNK ? (size_t)(len - off)
							      : SNAPSHOT_COPY_CHUNK;
		ssize_t n = pread(in, buf, want, (off_t)off);

		if (n <= 0)
			rc = n < 0 ? err_errno(errno, "snapshot: reading %s", from)
				   : err_set(ATOLOG_CORRUPT, "snapshot: %s ends at %" PRIu64
					     " before the indexed end %" PRIu64, from, off, len);
		else if (write(out, buf, (size_t)n) != n)
			rc = err_errno(errno ? errno : EIO, "snapshot: writing %s", to);
		else
			off += (uint64_t)n;
		c->done += n > 0 ? (uint64_t)n : 0;
		if (c->progress)
			c->progress(c->done, c->total, c->progress_ctx);
	}
	if (rc == 0 && fsync(out) != 0)
		rc = err_errno(errno, "snapshot: syncing %s", to);
	if (out >= 0)
		close(out);
	if (in >= 0)
		close(in);
	free(buf);
	return rc;
}

/* A file never written again (a sealed segment): a hard link when the
 * filesystem allows, else a copy. */
static int take_immutable(struct copier *c, const char *from, const char *to,
			  uint64_t size)
{
	if (link(from, to) == 0) {
		c->linked++;
		c->done += size;
		return 0;
	}
	if (errno != EXDEV && errno != EPERM && errno != EMLINK)
		return err_errno(errno, "snapshot: linking %s", from);
	return copy_prefix(c, from, to, size);
}

static int take_segments(struct snapshot *sn)
{
	const char *dir = sn->store->segment_dir;
	uint64_t *ids = NULL;
	size_t n = 0;
	int rc = segment_list(dir, &ids, &n);

	for (size_t i = 0; i < n && rc == ATOLOG_OK; i++) {
		char from[PATH_MAX], sub[PATH_MAX], to[PATH_MAX];
		struct stat st;

		if (ids[i] > sn->end.segment)
			break; /* newer than the snapshot's point */
		if (compact_view_ignores(&sn->view, ids[i]))
			continue; /* not the log the index copy describes */
		segment_path(from, sizeof(from), dir, ids[i]);
		snprintf(sub, sizeof(sub), "%s/segments", sn->tmp);
		segment_path(to, sizeof(to), sub, ids[i]);
		if (stat(from, &st) != 0) {
			rc = err_errno(errno, "snapshot: %s", from);
			break;
		}
		sn->out->segments++;
		if (ids[i] < sn->end.segment) {
			sn->out->bytes += (uint64_t)st.st_size;
			rc = take_immutable(&sn->copier, from, to, (uint64_t)st.st_size);
		} else {
			sn->out->bytes += sn->end.end_offset;
			rc = copy_prefix(&sn->copier, from, to, sn->end.end_offset);
		}
	}
	free(ids);
	return rc;
}

/* The total for progress: the segments the snapshot will take. */
static uint64_t segments_total(const atolog_store *s, const struct index_state *st,
			       const struct compact_view *view)
{
	uint64_t *ids = NULL, total = 0;
	size_t n = 0;

	if (segment_list(s->segment_dir, &ids, &n) != ATOLOG_OK)
		return 0;
	for (size_t i = 0; i < n && ids[i] <= st->segment; i++) {
		char path[PATH_MAX];
		struct stat sb;

		segment_path(path, sizeof(path), s->segment_dir, ids[i]);
		if (compact_view_ignores(view, ids[i]))
			continue;
		if (ids[i] == st->segment)
			total += st->end_offset;
		else if (stat(path, &sb) == 0)
			total += (uint64_t)sb.st_size;
	}
	free(ids);
	return total;
}

/* The index copy, and the state it holds: the snapshot's point. */
static int take_index(struct snapshot *sn)
{
	char path[PATH_MAX];
	struct index_options ro = { .readonly = true };
	struct index *copy;
	int rc;

	snprintf(path, sizeof(path), "%s/index", sn->tmp);
	rc = index_copy(sn->store->idx, path);
	if (rc == ATOLOG_OK)
		rc = index_open(path, &ro, &copy);
	if (rc != ATOLOG_OK)
		return rc;
	rc = index_state_get(copy, &sn->state);
	index_close(copy);
	if (rc == ATOLOG_NOTFOUND)
		return err_set(ATOLOG_NOTFOUND, "snapshot: the store holds nothing yet");
	if (rc != ATOLOG_OK)
		return rc;
	/* The read-only open left a lock file; the snapshot's first writer
	 * makes its own. */
	snprintf(path, sizeof(path), "%s/index/lock.mdb", sn->tmp);
	unlink(path);
	snprintf(path, sizeof(path), "%s/index/data.mdb", sn->tmp);
	return fsync_path(path, O_RDONLY);
}

static int write_manifest(struct snapshot *sn)
{
	char path[PATH_MAX], iso[ATOLOG_TIME_ISO_LEN];
	atolog_snapshot_info *o = sn->out;
	FILE *f;
	int rc = 0;

	snprintf(path, sizeof(path), "%s/" ATOLOG_SNAPSHOT_MANIFEST, sn->tmp);
	o->linked_segments = sn->copier.linked;
	atolog_time_format_iso(o->created_at, iso);
	f = fopen(path, "wx");
	if (!f)
		return err_errno(errno, "snapshot: creating %s", path);
	fprintf(f, "{\"created_at\":\"%s\",\"records\":%" PRIu64 ",\"last_seq\":%" PRIu64
		",\"segments\":%" PRIu64 ",\"bytes\":%" PRIu64 "}\n", iso, o->records,
		o->last_seq, o->segments, o->bytes);
	if (fflush(f) != 0 || fsync(fileno(f)) != 0)
		rc = err_errno(errno ? errno : EIO, "snapshot: writing %s", path);
	if (fclose(f) != 0 && rc == 0)
		rc = err_errno(errno, "snapshot: closing %s", path);
	return rc;
}

/* A name for the work directory of dest no other call uses: the pid, and
 * the clock (microseconds, UTC), for two calls of one process; both tell
 * a later snapshot whether the one that made it may still run. */
static void tmp_name(char *out, size_t size, const char *dest)
{
	snprintf(out, size, "%s" SNAPSHOT_TMP_MARK "%ld-%" PRIx64, dest,
		 (long)getpid(), (uint64_t)time_now_us());
}

/* ------------------------------------------------------------------------
 * Work directories of snapshots (and restores) that were killed.
 *
 * A work directory holds, from the moment it exists, a marker naming the
 * process that made it the way the kernel does: boot id, host name, pid
 * namespace, pid and the process's start time in clock ticks since boot.
 * It is stale, and may be deleted, only when that process cannot be
 * running: the machine has booted since (same host, another boot id), or
 * in the same boot and pid namespace no process has that pid, or the one
 * that has it started at another tick (the pid was reused). Anything else
 * is left alone: no marker (not ours, or killed in the instant before it
 * was written), another host (a shared volume), another pid namespace (a
 * container: its pids mean nothing here), a directory of another user.
 * Wall-clock time is never used: it can step.
 */

/* dir/name into out; false when it does not fit. */
static bool path_in(char *out, size_t size, const char *dir, const char *name)
{
	int n = snprintf(out, size, "%s/%s", dir, name);

	return n > 0 && (size_t)n < size;
}

struct work_id {
	char boot[64];
	char host[256];
	unsigned long long pidns;
	long pid;
	unsigned long long start; /* clock ticks since boot */
};

/* When process pid started, in clock ticks since boot; false if unknown. */
static bool process_start_ticks(long pid, unsigned long long *out)
{
	char path[64], buf[1024], *p;
	size_t got;
	FILE *f;

	if (pid > 0)
		snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	else
		snprintf(path, sizeof(path), "/proc/self/stat");
	f = fopen(path, "re");
	if (!f)
		return false;
	got = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[got] = '\0';
	p = strrchr(buf, ')'); /* the command may hold spaces and parens */
	/* After ") ": state is field 3; starttime is field 22. */
	for (int field = 2; p && field < 22; field++)
		p = strchr(p + 1, ' ');
	return p && sscanf(p, " %llu", out) == 1;
}

static void work_id_self(struct work_id *w)
{
	struct stat st;

	memset(w, 0, sizeof(*w));
	(void)store_boot_id(w->boot); /* "" if unreadable: never taken for a reboot */
	if (gethostname(w->host, sizeof(w->host) - 1) != 0)
		w->host[0] = '\0';
	w->pidns = stat("/proc/self/ns/pid", &st) == 0 ? (unsigned long long)st.st_ino : 0;
	w->pid = (long)getpid();
	if (!process_start_ticks(0, &w->start))
		w->start = 0;
}

/* Marks dir as this process's work directory (see above). */
static int work_mark(const char *dir)
{
	char path[PATH_MAX];
	struct work_id w;
	FILE *f;
	int rc = 0;

	work_id_self(&w);
	if (!path_in(path, sizeof(path), dir, SNAPSHOT_WORK_MARKER))
		return err_set(ENAMETOOLONG, "snapshot: %s: name too long", dir);
	f = fopen(path, "wxe");
	if (!f || fprintf(f, "atolog-work 1\nboot %s\nhost %s\npidns %llu\npid %ld\n"
			  "start %llu\n", w.boot, w.host, w.pidns, w.pid, w.start) < 0 ||
	    fflush(f) != 0)
		rc = err_errno(errno ? errno : EIO, "snapshot: writing %s", path);
	if (f && fclose(f) != 0 && rc == 0)
		rc = err_errno(errno, "snapshot: writing %s", path);
	return rc;
}

/* A finished work directory is no longer one (before its rename). */
static int work_unmark(const char *dir)
{
	char path[PATH_MAX];

	if (!path_in(path, sizeof(path), dir, SNAPSHOT_WORK_MARKER))
		return err_set(ENAMETOOLONG, "snapshot: %s: name too long", dir);
	return unlink(path) == 0 || errno == ENOENT
		       ? 0 : err_errno(errno, "snapshot: removing %s", path);
}

static bool work_id_read(const char *dir, struct work_id *w)
{
	char path[PATH_MAX], line[320];
	int fields = 0;
	FILE *f;

	memset(w, 0, sizeof(*w));
	if (!path_in(path, sizeof(path), dir, SNAPSHOT_WORK_MARKER))
		return false;
	f = fopen(path, "re");
	if (!f)
		return false;
	if (!fgets(line, sizeof(line), f) || strcmp(line, "atolog-work 1\n") != 0) {
		fclose(f);
		return false;
	}
	while (fgets(line, sizeof(line), f)) {
		fields += sscanf(line, "boot %63s", w->boot) == 1;
		fields += sscanf(line, "host %255s", w->host) == 1;
		fields += sscanf(line, "pidns %llu", &w->pidns) == 1;
		fields += sscanf(line, "pid %ld", &w->pid) == 1;
		fields += sscanf(line, "start %llu", &w->start) == 1;
	}
	fclose(f);
	return fields == 5 && w->pid > 0;
}

/* Whether the process that made work directory dir cannot be running. */
static bool work_is_stale(const char *dir, long *pid_out)
{
	struct work_id mine, theirs;
	unsigned long long started;

	if (!work_id_read(dir, &theirs))
		return false;
	work_id_self(&mine);
	*pid_out = theirs.pid;
	if (strcmp(mine.host, theirs.host) != 0)
		return false;
	if (strcmp(mine.boot, theirs.boot) != 0)
		return mine.boot[0] && theirs.boot[0]; /* rebooted since */
	if (mine.pidns != theirs.pidns || !mine.pidns)
		return false;
	if (kill((pid_t)theirs.pid, 0) != 0 && errno == ESRCH)
		return true;
	/* A process has that pid (EPERM says so too): the same one unless it
	 * started at another tick. */
	return process_start_ticks(theirs.pid, &started) && started != theirs.start;
}

/* Whether name, in dir, is a work directory of ours that is stale. */
static bool entry_is_stale(const char *dir, const char *name, char *path,
			   size_t size, long *pid)
{
	const char *mark = strstr(name, SNAPSHOT_TMP_MARK);
	unsigned long long t;
	struct stat st;
	long named_pid;
	int used = 0;

	if (!mark || sscanf(mark + strlen(SNAPSHOT_TMP_MARK), "%ld-%llx%n",
			    &named_pid, &t, &used) != 2 ||
	    mark[strlen(SNAPSHOT_TMP_MARK) + used] != '\0')
		return false;
	if (!path_in(path, size, dir, name) ||
	    lstat(path, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid())
		return false;
	return work_is_stale(path, pid) && *pid == named_pid;
}

/* The sweep, without touching the caller's error slot. */
static int stale_sweep(const char *dir, bool remove, atolog_stale_fn fn, void *ctx)
{
	struct dirent *e;
	int rc = ATOLOG_OK;
	DIR *d = opendir(dir);

	if (!d)
		return err_errno(errno, "snapshot: listing %s", dir);
	while (rc == ATOLOG_OK && (e = readdir(d)) != NULL) {
		char path[PATH_MAX];
		struct stat st;
		long pid = 0;

		if (!entry_is_stale(dir, e->d_name, path, sizeof(path), &pid))
			continue;
		if (remove) {
			remove_tree(path);
			if (lstat(path, &st) == 0) {
				rc = err_errno(EIO, "snapshot: removing %s", path);
				break;
			}
		}
		if (fn)
			rc = fn(e->d_name, pid, ctx);
	}
	closedir(d);
	return rc;
}

int atolog_snapshot_stale(const char *dir, int remove, atolog_stale_fn fn, void *ctx)
{
	err_begin(NULL);
	if (!dir || !*dir)
		return err_set(ATOLOG_INVALID, "snapshot: a directory is needed");
	return stale_sweep(dir, remove != 0, fn, ctx);
}

/* The directory dest goes in, for the sweep of stale work directories. */
static void parent_of(const char *dest, char *out, size_t size)
{
	const char *slash = strrchr(dest, '/');

	if (!slash)
		snprintf(out, size, ".");
	else if (slash == dest)
		snprintf(out, size, "/");
	else
		snprintf(out, size, "%.*s", (int)(slash - dest), dest);
}

/* A store's skeleton: dir, dir/segments, dir/index, and its marker. If
 * any step after the first fails, dir goes again: without its marker no
 * sweep would ever take it for stale. */
static int make_dirs(const char *dir)
{
	char path[PATH_MAX];
	int rc = 0;

	if (mkdir(dir, 0755) != 0)
		return errno == EEXIST ? err_set(ATOLOG_EXISTS, "snapshot: %s exists", dir)
				       : err_errno(errno, "snapshot: creating %s", dir);
	snprintf(path, sizeof(path), "%s/segments", dir);
	if (mkdir(path, 0755) != 0)
		rc = err_errno(errno, "snapshot: creating %s", path);
	snprintf(path, sizeof(path), "%s/index", dir);
	if (rc == 0 && mkdir(path, 0755) != 0)
		rc = err_errno(errno, "snapshot: creating %s", path);
	if (rc == 0)
		rc = work_mark(dir);
	if (rc != 0)
		remove_tree(dir);
	return rc;
}

/* Syncs the skeleton's subdirectories (before the manifest names them
 * complete). */
static int sync_skeleton(const char *tmp)
{
	char path[PATH_MAX];
	int rc;

	snprintf(path, sizeof(path), "%s/segments", tmp);
	rc = fsync_path(path, O_RDONLY | O_DIRECTORY);
	snprintf(path, sizeof(path), "%s/index", tmp);
	if (rc == 0)
		rc = fsync_path(path, O_RDONLY | O_DIRECTORY);
	return rc;
}

/* Syncs tmp, then renames it into place, never over anything: a store or
 * snapshot that appeared at dest meanwhile is left alone. */
static int publish(const char *tmp, const char *dest)
{
	char path[PATH_MAX], *slash;
	int rc = work_unmark(tmp);

	if (rc == 0)
		rc = fsync_path(tmp, O_RDONLY | O_DIRECTORY);

	if (rc == 0 && renameat2(AT_FDCWD, tmp, AT_FDCWD, dest, RENAME_NOREPLACE) != 0)
		rc = errno == EEXIST ? err_set(ATOLOG_EXISTS, "%s appeared meanwhile; "
					       "left alone", dest)
				     : err_errno(errno, "snapshot: renaming %s to %s", tmp, dest);
	if (rc != 0)
		return rc;
	snprintf(path, sizeof(path), "%s", dest);
	slash = strrchr(path, '/');
	if (slash == path)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	else
		snprintf(path, sizeof(path), ".");
	return fsync_path(path, O_RDONLY | O_DIRECTORY);
}

/*
 * The log prefix to take: what the index copy describes, or, when the
 * handle serves more than its index holds, as far as that goes: a
 * read-only handle's unindexed tail (a dead writer's), or a writer's
 * recent set when its index cannot catch up (a full disk). Those records
 * were acknowledged too. The snapshot's index then lags its log, which
 * its first writer open indexes and its readers serve as a tail.
 */
static void snapshot_end(struct snapshot *sn)
{
	struct recent *r = store_recent(sn->store);
	struct index_state last;

	sn->end = sn->state;
	if (!r)
		return;
	recent_last_state(r, &last);
	if (last.last_seq > sn->state.last_seq && last.segment >= sn->state.segment)
		sn->end = last;
}

/*
 * Takes the index and the log prefix it names into sn->tmp. A compaction
 * of another process (this one's wait on maint_lock) may retire segments
 * meanwhile, or leave old and new ones side by side while it retires
 * them: *raced then says to take it all again.
 */
/* Whether two looks at the journal saw the same interrupted compaction
 * (or none): then it is not running, and its view holds for the copy. */
static bool same_view(const struct compact_view *a, const struct compact_view *b)
{
	return a->pending == b->pending && a->nonce == b->nonce &&
	       a->committed == b->committed && a->swapped == b->swapped;
}

static int take_store(struct snapshot *sn, bool *raced)
{
	atolog_store *s = sn->store;
	struct compact_view after_view = { .pending = false };
	uint64_t before = 0, after = 0;
	int rc = index_last_compaction(s->idx, &before);

	*sn->out = (atolog_snapshot_info){ .created_at = sn->out->created_at };
	sn->copier.linked = 0;
	if (rc == 0)
		rc = compact_view_read(s, &sn->view);
	if (rc == 0)
		rc = make_dirs(sn->tmp);
	if (rc != 0) {
		compact_view_free(&sn->view);
		return rc; /* nothing of ours to remove */
	}
	rc = take_index(sn);
	if (rc == 0) {
		snapshot_end(sn);
		sn->out->records = sn->end.n_records;
		sn->out->last_seq = sn->end.last_seq;
		sn->copier.total = segments_total(s, &sn->end, &sn->view);
		rc = take_segments(sn);
	}
	*raced = compact_view_read(s, &after_view) != ATOLOG_OK ||
		 !same_view(&sn->view, &after_view) ||
		 index_last_compaction(s->idx, &after) != ATOLOG_OK || after != before;
	compact_view_free(&after_view);
	compact_view_free(&sn->view);
	if (*raced)
		err_clear();
	if (rc != 0 || *raced)
		remove_tree(sn->tmp);
	return rc;
}

static int snapshot_take(struct snapshot *sn)
{
	bool raced = false;
	int rc;

	for (int attempt = 0;; attempt++) {
		rc = take_store(sn, &raced);
		if ((rc != 0 && rc != ENOENT) || !raced ||
		    attempt == MAINT_COMPACTION_RETRIES)
			break;
		err_clear();
		usleep(MAINT_RETRY_WAIT_MS * 1000);
	}
	if (rc == 0 && raced)
		rc = err_set(EAGAIN, "snapshot: compactions kept moving the "
			     "segments; try again");
	return rc;
}

int atolog_store_snapshot(atolog_store *s, const char *dest,
			  atolog_progress_fn progress, void *ctx,
			  atolog_snapshot_info *out)
{
	struct snapshot sn = { .store = s,
			       .copier = { .progress = progress, .progress_ctx = ctx } };
	atolog_snapshot_info info = { .created_at = time_now_us() };
	struct stat st;
	int rc;

	err_begin(s);
	sn.out = &info;
	if (!dest || !*dest || strlen(dest) > SNAPSHOT_TMP_MAX - 32)
		return err_set(ATOLOG_INVALID, "snapshot: a destination path is needed");
	if (lstat(dest, &st) == 0)
		return err_set(ATOLOG_EXISTS, "snapshot: %s already exists", dest);
	tmp_name(sn.tmp, sizeof(sn.tmp), dest);
	{
		char parent[PATH_MAX];

		/* Best effort: a leftover the sweep cannot remove is not this
		 * snapshot's business, and the next sweep tries again. */
		parent_of(dest, parent, sizeof(parent));
		if (stale_sweep(parent, true, NULL, NULL) != ATOLOG_OK)
			err_clear();
	}
	lock_acquire(&s->maint_lock);
	/* A compaction of this handle that could not delete its old
	 * segments left its journal: finish it, or every try would race. */
	if (!s->readonly && compact_pending(s)) {
		uint64_t waiting;

		if (compact_finish(s, false, &waiting) != ATOLOG_OK)
			err_clear(); /* then the snapshot says why it cannot */
	}
	/* On the writer's handle, everything acknowledged before the call is
	 * in the snapshot: the index copy is taken once it holds it. */
	if (s->writer_ready && s->w.started)
		writer_index_catch_up(s);
	rc = snapshot_take(&sn);
	lock_release(&s->maint_lock);
	if (rc != 0)
		return rc; /* take_store removed what it made */
	if (rc == 0)
		rc = sync_skeleton(sn.tmp);
	if (rc == 0)
		rc = write_manifest(&sn);
	if (rc == 0)
		rc = publish(sn.tmp, dest);
	if (rc != 0) {
		remove_tree(sn.tmp);
		return rc;
	}
	info.linked_segments = sn.copier.linked;
	*out = info;
	return ATOLOG_OK;
}

/* ------------------------------------------------------------------------
 * Restore: a snapshot back into a store directory.
 */

/* Takes dir's LOCK (exclusive, not waiting) when there is one, so that no
 * writer can open dir while it is moved aside; *fd is -1 when dir has no
 * LOCK. Any failure but "no LOCK" refuses. */
static int lock_destination(const char *dir, int *fd)
{
	char path[PATH_MAX];

	*fd = -1;
	snprintf(path, sizeof(path), "%s/%s", dir, STORE_LOCK_FILE);
	*fd = open(path, O_RDONLY | O_CLOEXEC);
	if (*fd < 0)
		return errno == ENOENT ? ATOLOG_OK
				       : err_errno(errno, "restore: opening %s", path);
	if (flock(*fd, LOCK_EX | LOCK_NB) == 0)
		return ATOLOG_OK;
	close(*fd);
	*fd = -1;
	return errno == EWOULDBLOCK
		       ? err_set(ATOLOG_LOCKED, "restore: %s is a live store (a writer "
				 "holds it): stop it first", dir)
		       : err_errno(errno, "restore: locking %s", path);
}

static bool dir_is_empty(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	bool empty = true;

	if (!d)
		return true;
	while (empty && (e = readdir(d)) != NULL)
		empty = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
	closedir(d);
	return empty;
}

/* Makes room at dir for the restored store: nothing there, an empty
 * directory (removed), or with REPLACE a store moved to *aside (kept).
 * The caller holds dir's LOCK (lock_destination). */
static int clear_destination(const char *dir, unsigned flags, char *aside, size_t size)
{
	struct stat st;

	aside[0] = '\0';
	if (lstat(dir, &st) != 0)
		return ATOLOG_OK;
	if (dir_is_empty(dir))
		return rmdir(dir) == 0 ? ATOLOG_OK : err_errno(errno, "restore: %s", dir);
	if (!(flags & ATOLOG_RESTORE_REPLACE))
		return err_set(ATOLOG_EXISTS, "restore: %s is not empty; refusing to "
			       "overwrite it (replace it on purpose: --force)", dir);
	snprintf(aside, size, "%s.replaced-%" PRId64, dir, time_now_us() / TIME_US_PER_SEC);
	if (rename(dir, aside) != 0) {
		aside[0] = '\0';
		return err_errno(errno, "restore: moving %s aside", dir);
	}
	return ATOLOG_OK;
}

/* The snapshot's files into tmp: sealed segments linked, the newest (a
 * restored writer appends to it) and the index copied. */
static int restore_files(struct copier *c, const char *snap, const char *tmp)
{
	char from_dir[PATH_MAX], to_dir[PATH_MAX], from[PATH_MAX], to[PATH_MAX];
	uint64_t *ids = NULL;
	size_t n = 0;
	struct stat st;
	int rc;

	snprintf(from_dir, sizeof(from_dir), "%s/segments", snap);
	snprintf(to_dir, sizeof(to_dir), "%s/segments", tmp);
	rc = segment_list(from_dir, &ids, &n);
	for (size_t i = 0; i < n && rc == ATOLOG_OK; i++) {
		segment_path(from, sizeof(from), from_dir, ids[i]);
		segment_path(to, sizeof(to), to_dir, ids[i]);
		if (stat(from, &st) != 0)
			rc = err_errno(errno, "restore: %s", from);
		else if (i + 1 < n)
			rc = take_immutable(c, from, to, (uint64_t)st.st_size);
		else
			rc = copy_prefix(c, from, to, (uint64_t)st.st_size);
	}
	free(ids);
	snprintf(from, sizeof(from), "%s/index/data.mdb", snap);
	snprintf(to, sizeof(to), "%s/index/data.mdb", tmp);
	if (rc == ATOLOG_OK && stat(from, &st) != 0)
		rc = err_errno(errno, "restore: %s", from);
	if (rc == ATOLOG_OK)
		rc = copy_prefix(c, from, to, (uint64_t)st.st_size);
	return rc;
}

/* Puts the built tmp at dir, moving what is there aside first; if that
 * fails after the move, the old store goes back. */
static int restore_publish(const char *tmp, const char *dir, unsigned flags)
{
	char aside[PATH_MAX];
	int lock_fd, rc = lock_destination(dir, &lock_fd);

	if (rc == ATOLOG_OK)
		rc = clear_destination(dir, flags, aside, sizeof(aside));
	if (rc == ATOLOG_OK) {
		rc = publish(tmp, dir);
		if (rc != ATOLOG_OK && aside[0] && rename(aside, dir) != 0)
			rc = err_errno(errno, "restore: failed, and moving %s back to "
				       "%s failed too", aside, dir);
	}
	if (lock_fd >= 0)
		close(lock_fd); /* held until the old store is out of the way */
	return rc;
}

int atolog_snapshot_restore(const char *snapshot, const char *dir, unsigned flags,
			    atolog_progress_fn progress, void *ctx)
{
	struct copier c = { .progress = progress, .progress_ctx = ctx };
	char path[PATH_MAX], tmp[SNAPSHOT_TMP_MAX];
	struct stat st;
	int rc;

	err_begin(NULL);
	if (!snapshot || !dir || !*dir || strlen(dir) > SNAPSHOT_TMP_MAX - 64 ||
	    strlen(snapshot) > SNAPSHOT_TMP_MAX)
		return err_set(ATOLOG_INVALID, "restore: a snapshot and a directory are needed");
	snprintf(path, sizeof(path), "%s/" ATOLOG_SNAPSHOT_MANIFEST, snapshot);
	if (strstr(snapshot, ".tmp-") || stat(path, &st) != 0)
		return err_set(ATOLOG_NOTFOUND, "restore: %s is not a finished snapshot "
			       "(no %s, or a .tmp- name)", snapshot,
			       ATOLOG_SNAPSHOT_MANIFEST);
	/* Everything is built first: a snapshot that cannot be read fails
	 * here, with the destination untouched. */
	tmp_name(tmp, sizeof(tmp), dir);
	rc = make_dirs(tmp);
	if (rc != 0)
		return rc;
	rc = restore_files(&c, snapshot, tmp);
	if (rc == 0)
		rc = sync_skeleton(tmp);
	if (rc == 0)
		rc = restore_publish(tmp, dir, flags);
	if (rc != 0)
		remove_tree(tmp);
	return rc;
}

int atolog_snapshot_delete(const char *snapshot)
{
	char path[PATH_MAX];
	struct stat st;
	int lock_fd, rc;

	err_begin(NULL);
	if (!snapshot || strlen(snapshot) > SNAPSHOT_TMP_MAX)
		return err_set(ATOLOG_INVALID, "snapshot delete: a path is needed");
	snprintf(path, sizeof(path), "%s/" ATOLOG_SNAPSHOT_MANIFEST, snapshot);
	/* A link is not followed: deleting through it would strip another
	 * directory's manifest. */
	if (lstat(snapshot, &st) != 0 || !S_ISDIR(st.st_mode) || stat(path, &st) != 0)
		return err_set(ATOLOG_NOTFOUND, "snapshot delete: %s is not a finished "
			       "snapshot (no %s, or not a directory); left alone",
			       snapshot, ATOLOG_SNAPSHOT_MANIFEST);
	rc = lock_destination(snapshot, &lock_fd);
	if (rc != ATOLOG_OK)
		return rc; /* somebody serves it as a store */
	/* The manifest first, synced: a delete cut short leaves no half
	 * snapshot that still looks finished. */
	if (unlink(path) != 0)
		rc = err_errno(errno, "snapshot delete: %s", path);
	else
		rc = fsync_path(snapshot, O_RDONLY | O_DIRECTORY);
	if (lock_fd >= 0)
		close(lock_fd);
	if (rc != ATOLOG_OK)
		return rc;
	if (nftw(snapshot, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
		return err_errno(errno ? errno : EIO, "snapshot delete: removing %s", snapshot);
	return ATOLOG_OK;
}
