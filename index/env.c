/*
 * env.c - the LMDB environment: opening, transactions, map growth, and
 * the meta database (layout version and indexing state).
 *
 * Map growth: LMDB fails a write with MDB_MAP_FULL when the map is used
 * up. The writer then aborts, doubles the map under map_lock held
 * exclusively (no transaction of this process may span a remap), and
 * retries the whole batch. Other processes see MDB_MAP_RESIZED when they
 * next begin a transaction and adopt the new size the same way.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atolog.h"
#include "error.h"
#include "internal.h"

static const char *const db_names[DB_COUNT] = {
	[DB_BY_ID] = "by_id",           [DB_BY_TIME] = "by_time",
	[DB_BY_PROJECT] = "by_project", [DB_BY_SESSION] = "by_session",
	[DB_BY_CLIENT] = "by_client",   [DB_REGISTRY] = "registry",
	[DB_META] = "meta",             [DB_BY_SEQ] = "by_seq",
	[DB_COUNTS] = "counts",
};

int index_mdb_error(int rc, const char *what)
{
	switch (rc) {
	case MDB_SUCCESS:
		return ATOLOG_OK;
	case MDB_NOTFOUND:
		return err_set(ATOLOG_NOTFOUND, "index: %s: not found", what);
	case MDB_KEYEXIST:
		return err_set(ATOLOG_EXISTS, "index: %s: key exists", what);
	case MDB_CORRUPTED:
	case MDB_PAGE_NOTFOUND:
	case MDB_INVALID:
	case MDB_VERSION_MISMATCH:
		return err_set(ATOLOG_CORRUPT, "index: %s: %s", what,
			       mdb_strerror(rc));
	case ENOSPC:
	case EDQUOT:
		return err_set(ATOLOG_FULL, "index: %s: %s", what, mdb_strerror(rc));
	default:
		return err_set(rc > 0 ? rc : EIO, "index: %s: %s", what,
			       mdb_strerror(rc));
	}
}

/* Adopts a map grown by another process (MDB_MAP_RESIZED). */
static int index_adopt_map_size(struct index *idx)
{
	int rc;

	pthread_rwlock_wrlock(&idx->map_lock);
	rc = mdb_env_set_mapsize(idx->env, 0);
	pthread_rwlock_unlock(&idx->map_lock);
	return index_mdb_error(rc, "adopting the grown map");
}

int index_txn_begin(struct index *idx, unsigned flags, MDB_txn **out)
{
	int rc;

	for (;;) {
		pthread_rwlock_rdlock(&idx->map_lock);
		rc = mdb_txn_begin(idx->env, NULL, flags, out);
		if (rc == MDB_SUCCESS)
			return ATOLOG_OK;
		pthread_rwlock_unlock(&idx->map_lock);
		if (rc != MDB_MAP_RESIZED)
			return index_mdb_error(rc, "beginning a transaction");
		rc = index_adopt_map_size(idx);
		if (rc != ATOLOG_OK)
			return rc;
	}
}

int index_txn_end(struct index *idx, MDB_txn *txn, bool commit)
{
	return index_mdb_error(index_txn_finish(idx, txn, commit), "committing");
}

int index_txn_finish(struct index *idx, MDB_txn *txn, bool commit)
{
	int rc = MDB_SUCCESS;

	if (commit)
		rc = mdb_txn_commit(txn);
	else
		mdb_txn_abort(txn);
	pthread_rwlock_unlock(&idx->map_lock);
	return rc;
}

int index_txn_renew(struct index *idx, MDB_txn *txn)
{
	int rc;

	for (;;) {
		pthread_rwlock_rdlock(&idx->map_lock);
		rc = mdb_txn_renew(txn);
		if (rc == MDB_SUCCESS)
			return ATOLOG_OK;
		pthread_rwlock_unlock(&idx->map_lock);
		if (rc != MDB_MAP_RESIZED)
			return index_mdb_error(rc, "renewing a read transaction");
		rc = index_adopt_map_size(idx);
		if (rc != ATOLOG_OK)
			return rc;
	}
}

void index_txn_reset(struct index *idx, MDB_txn *txn)
{
	mdb_txn_reset(txn);
	pthread_rwlock_unlock(&idx->map_lock);
}

int index_grow_map(struct index *idx)
{
	MDB_envinfo info;
	int rc;

	pthread_rwlock_wrlock(&idx->map_lock);
	rc = mdb_env_info(idx->env, &info);
	if (rc == MDB_SUCCESS)
		rc = mdb_env_set_mapsize(idx->env, info.me_mapsize * 2);
	pthread_rwlock_unlock(&idx->map_lock);
	return index_mdb_error(rc, "growing the map");
}

static int index_open_dbs(struct index *idx)
{
	unsigned flags = idx->readonly ? 0 : MDB_CREATE;
	MDB_txn *txn;
	int rc;

	rc = index_txn_begin(idx, idx->readonly ? MDB_RDONLY : 0, &txn);
	if (rc != ATOLOG_OK)
		return rc;
	for (int i = 0; i < DB_COUNT; i++) {
		int mrc = mdb_dbi_open(txn, db_names[i], flags, &idx->dbi[i]);

		if (mrc == MDB_NOTFOUND && idx->readonly && i != DB_META) {
			/* Written by an older layout, which lacks it: only a
			 * writer can rebuild it (the index is derived data). */
			index_txn_end(idx, txn, false);
			return err_set(ATOLOG_VERSION, "the index lacks %s, so it has an "
				       "older layout than this build's %u: open the store "
				       "for writing once to rebuild it", db_names[i],
				       INDEX_VERSION);
		}
		if (mrc != MDB_SUCCESS) {
			index_txn_end(idx, txn, false);
			return index_mdb_error(mrc, db_names[i]);
		}
	}
	/* Committing (even a read-only transaction) is what keeps the handles
	 * open beyond it; an abort would close them. */
	return index_txn_end(idx, txn, true);
}

static int index_env_create(struct index *idx, const struct index_options *o)
{
	unsigned flags = MDB_NOTLS;
	int rc;

	/* No MDB_WRITEMAP: with it, LMDB writes pages through a shared
	 * writable map of a sparse file, and a page with no disk block
	 * behind it on a full disk is a SIGBUS in whichever thread touches
	 * it. Without it, a commit writes its pages with pwrite, and a full
	 * disk is an ENOSPC the commit returns (the transaction is undone,
	 * the file as it was). What it costs is in README (Benchmarks). */
	if (o->readonly)
		flags |= MDB_RDONLY;
	else
		flags |= o->sync == INDEX_SYNC_NONE ? MDB_NOSYNC : MDB_NOMETASYNC;
	rc = mdb_env_create(&idx->env);
	if (rc == MDB_SUCCESS)
		rc = mdb_env_set_maxdbs(idx->env, INDEX_MAX_DBS);
	if (rc == MDB_SUCCESS)
		rc = mdb_env_set_maxreaders(idx->env, INDEX_MAX_READERS);
	if (rc == MDB_SUCCESS && !o->readonly && o->map_size)
		rc = mdb_env_set_mapsize(idx->env, o->map_size);
	if (rc == MDB_SUCCESS)
		rc = mdb_env_open(idx->env, idx->path, flags, 0644);
	idx->env_open = rc == MDB_SUCCESS;
	if (rc == ENOENT && o->readonly)
		return err_set(ATOLOG_NOTFOUND, "no index in %s", idx->path);
	return index_mdb_error(rc, "opening the environment");
}

/*
 * LMDB maps its lock file (the reader table) shared and writable, and
 * sizes it with ftruncate, which leaves it sparse: writing its header, or
 * a reader taking a slot in a page never touched before, makes the kernel
 * find a block for it, and on a full disk (or tmpfs) that is a SIGBUS,
 * not an error. So atolog makes the lock file itself when there is none:
 * INDEX_LOCK_FILE_BYTES with every block allocated, under a temporary
 * name, then linked into place, so that no process ever maps it before it
 * is whole. LMDB takes a lock file of any size at least what its reader
 * table needs and sizes the table from the file, so every process agrees
 * on it. One that exists (an older build's) has its blocks reserved once
 * it is open, without changing its size (every process maps it whole).
 * On a disk too full for either, the open fails with ATOLOG_FULL instead
 * of a crash later. Read-only media, and filesystems without fallocate,
 * are left to LMDB.
 */
static int index_make_lock_file(const struct index *idx)
{
	char path[PATH_MAX], tmp[PATH_MAX + 32];
	int fd, rc = ATOLOG_OK;

	snprintf(path, sizeof(path), "%s/lock.mdb", idx->path);
	if (access(path, F_OK) == 0)
		return ATOLOG_OK;
	snprintf(tmp, sizeof(tmp), "%s.tmp-%ld", path, (long)getpid());
	fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return ATOLOG_OK; /* read-only media: LMDB says what it can */
	if (fallocate(fd, 0, 0, INDEX_LOCK_FILE_BYTES) != 0) {
		if (errno != EOPNOTSUPP && errno != ENOSYS)
			rc = err_errno(errno, "index: making %s", path);
	} else if (link(tmp, path) != 0 && errno != EEXIST) {
		rc = err_errno(errno, "index: making %s", path);
	}
	close(fd);
	unlink(tmp);
	return rc;
}

static int index_reserve_lock_file(struct index *idx)
{
	char path[PATH_MAX];
	struct stat st;
	int fd;

	snprintf(path, sizeof(path), "%s/lock.mdb", idx->path);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return ATOLOG_OK;
	idx->lock_file_fd = fd;
	if (fstat(fd, &st) != 0)
		return err_errno(errno, "index: %s", path);
	if (st.st_size > 0 &&
	    fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, st.st_size) != 0 &&
	    errno != EOPNOTSUPP && errno != ENOSYS)
		return err_errno(errno, "index: reserving %s", path);
	return ATOLOG_OK;
}

int index_open(const char *dir, const struct index_options *opts,
	       struct index **out)
{
	struct index *idx = calloc(1, sizeof(*idx));
	pthread_rwlockattr_t attr;
	int rc, dead;

	if (!idx || !(idx->path = strdup(dir))) {
		free(idx);
		return err_set(ENOMEM, "opening the index");
	}
	idx->readonly = opts->readonly;
	idx->lock_file_fd = -1;
	pthread_rwlockattr_init(&attr);
	/* A remap must not starve behind a stream of readers. */
	pthread_rwlockattr_setkind_np(&attr,
				      PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&idx->map_lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	if (!opts->readonly && mkdir(dir, 0755) != 0 && errno != EEXIST) {
		rc = err_errno(errno, "creating %s", dir);
		goto fail;
	}
	rc = index_make_lock_file(idx);
	if (rc == ATOLOG_OK)
		rc = index_env_create(idx, opts);
	if (rc == ATOLOG_OK)
		rc = index_reserve_lock_file(idx);
	if (rc == ATOLOG_OK)
		rc = index_mdb_error(mdb_reader_check(idx->env, &dead),
				     "clearing stale readers");
	if (rc == ATOLOG_OK)
		rc = index_open_dbs(idx);
	if (rc != ATOLOG_OK)
		goto fail;
	idx->stale_readers = dead > 0 ? (unsigned)dead : 0;
	*out = idx;
	return ATOLOG_OK;
fail:
	index_close(idx);
	return rc;
}

void index_close(struct index *idx)
{
	if (!idx)
		return;
	if (idx->env) {
		/* An environment whose open failed has no map to sync. */
		if (!idx->readonly && idx->env_open)
			mdb_env_sync(idx->env, 1);
		mdb_env_close(idx->env);
	}
	if (idx->lock_file_fd >= 0)
		close(idx->lock_file_fd);
	pthread_rwlock_destroy(&idx->map_lock);
	free(idx->path);
	free(idx);
}

int index_sync(struct index *idx)
{
	return index_mdb_error(mdb_env_sync(idx->env, 1), "syncing");
}

unsigned index_stale_readers(const struct index *idx)
{
	return idx->stale_readers;
}

/* Pages in use, not the file's size: an index written by an older build
 * (with MDB_WRITEMAP) was stretched, sparsely, to the whole map. */
uint64_t index_file_size(struct index *idx)
{
	MDB_envinfo info;
	MDB_stat st;

	if (mdb_env_info(idx->env, &info) != MDB_SUCCESS ||
	    mdb_env_stat(idx->env, &st) != MDB_SUCCESS)
		return 0;
	return ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
}

/* ------------------------------------------------------------------------
 * meta
 */

#define META_VERSION_KEY "version"

static int meta_get(struct index *idx, const char *name, MDB_val *val,
		    void *copy, size_t size)
{
	MDB_val key = { .mv_size = strlen(name), .mv_data = (void *)name };
	MDB_txn *txn;
	int rc, mrc;

	rc = index_txn_begin(idx, MDB_RDONLY, &txn);
	if (rc != ATOLOG_OK)
		return rc;
	mrc = mdb_get(txn, idx->dbi[DB_META], &key, val);
	if (mrc == MDB_SUCCESS && val->mv_size != size)
		mrc = MDB_CORRUPTED;
	if (mrc == MDB_SUCCESS)
		memcpy(copy, val->mv_data, size);
	index_txn_end(idx, txn, false);
	if (mrc == MDB_NOTFOUND)
		return ATOLOG_NOTFOUND; /* expected on a fresh index */
	return index_mdb_error(mrc, name);
}

int index_version(struct index *idx, uint32_t *out)
{
	uint8_t buf[4];
	MDB_val val;
	int rc = meta_get(idx, META_VERSION_KEY, &val, buf, sizeof(buf));

	if (rc == ATOLOG_NOTFOUND) {
		*out = 0;
		return ATOLOG_OK;
	}
	if (rc == ATOLOG_OK)
		*out = get_le32(buf);
	return rc;
}

static void state_encode(const struct index_state *s, uint8_t out[STATE_VALUE_SIZE])
{
	memset(out, 0, STATE_VALUE_SIZE);
	memcpy(out, s->store_id, INDEX_ID_SIZE);
	put_le64(out + 16, s->segment);
	put_le64(out + 24, s->end_offset);
	put_le64(out + 32, s->last_frame_offset);
	put_le32(out + 40, s->last_frame_length);
	put_le64(out + 48, s->last_seq);
	put_le64(out + 56, s->n_records);
}

void index_state_decode(const uint8_t buf[STATE_VALUE_SIZE], struct index_state *out)
{
	memcpy(out->store_id, buf, INDEX_ID_SIZE);
	out->segment = get_le64(buf + 16);
	out->end_offset = get_le64(buf + 24);
	out->last_frame_offset = get_le64(buf + 32);
	out->last_frame_length = get_le32(buf + 40);
	out->last_seq = get_le64(buf + 48);
	out->n_records = get_le64(buf + 56);
}

int index_state_get(struct index *idx, struct index_state *out)
{
	uint8_t buf[STATE_VALUE_SIZE];
	MDB_val val;
	int rc = meta_get(idx, META_STATE_KEY, &val, buf, sizeof(buf));

	if (rc == ATOLOG_OK)
		index_state_decode(buf, out);
	return rc;
}

int index_put_state(struct index *idx, MDB_txn *txn, const struct index_state *s)
{
	uint8_t buf[STATE_VALUE_SIZE];
	MDB_val key = { .mv_size = strlen(META_STATE_KEY),
			.mv_data = (void *)META_STATE_KEY };
	MDB_val val = { .mv_size = sizeof(buf), .mv_data = buf };

	state_encode(s, buf);
	return mdb_put(txn, idx->dbi[DB_META], &key, &val, 0);
}

int index_clear(struct index *idx)
{
	uint8_t version[4];
	MDB_val key = { .mv_size = strlen(META_VERSION_KEY),
			.mv_data = (void *)META_VERSION_KEY };
	MDB_val val = { .mv_size = sizeof(version), .mv_data = version };
	MDB_txn *txn;
	int rc, mrc = MDB_SUCCESS;

	rc = index_txn_begin(idx, 0, &txn);
	if (rc != ATOLOG_OK)
		return rc;
	for (int i = 0; i < DB_COUNT && mrc == MDB_SUCCESS; i++)
		mrc = mdb_drop(txn, idx->dbi[i], 0);
	put_le32(version, INDEX_VERSION);
	if (mrc == MDB_SUCCESS)
		mrc = mdb_put(txn, idx->dbi[DB_META], &key, &val, 0);
	if (mrc == MDB_SUCCESS) {
		/* Until index_rebuilt: the feed must not run ahead of a
		 * rebuild, which indexes in log order, not seq order. */
		MDB_val rk = { .mv_size = strlen(META_REBUILDING_KEY),
			       .mv_data = (void *)META_REBUILDING_KEY };
		MDB_val rv = { .mv_size = 1, .mv_data = (void *)"1" };

		mrc = mdb_put(txn, idx->dbi[DB_META], &rk, &rv, 0);
	}
	if (mrc != MDB_SUCCESS) {
		index_txn_end(idx, txn, false);
		return index_mdb_error(mrc, "clearing");
	}
	return index_txn_end(idx, txn, true);
}

int index_copy(struct index *idx, const char *dir)
{
	int rc;

	/* Shared: a map resize must not remap under the copy's transaction. */
	pthread_rwlock_rdlock(&idx->map_lock);
	rc = mdb_env_copy2(idx->env, dir, MDB_CP_COMPACT);
	pthread_rwlock_unlock(&idx->map_lock);
	return rc == MDB_SUCCESS ? ATOLOG_OK : index_mdb_error(rc, "copying the index");
}

static int clear_rebuilding(struct index *idx, MDB_txn *txn, void *ctx)
{
	MDB_val key = { .mv_size = strlen(META_REBUILDING_KEY),
			.mv_data = (void *)META_REBUILDING_KEY };
	int rc = mdb_del(txn, idx->dbi[DB_META], &key, NULL);

	(void)ctx;
	return rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
}

int index_rebuilt(struct index *idx)
{
	int mrc, rc = index_write(idx, clear_rebuilding, NULL, &mrc);

	if (rc != ATOLOG_OK || mrc == MDB_SUCCESS)
		return rc;
	return index_mdb_error(mrc, "ending a rebuild");
}
