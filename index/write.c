/*
 * write.c - index_apply: one batch of entries, registry rows and the new
 * indexing state, in one LMDB write transaction.
 *
 * Keeping the state in the same transaction as the entries is what makes
 * recovery exact: whatever LMDB committed, meta says precisely how far the
 * log is indexed, and the engine resumes there.
 */
#include <errno.h>
#include <string.h>
#include <sys/statvfs.h>
#include <xxhash.h>

#include "atolog.h"
#include "error.h"
#include "internal.h"

uint64_t index_name_hash(struct index_name name)
{
	return XXH3_64bits(name.ptr ? name.ptr : "", name.ptr ? name.len : 0);
}

static void id_value_put(uint8_t out[ID_VALUE_SIZE], const struct index_entry *e)
{
	memset(out, 0, ID_VALUE_SIZE);
	put_le64(out, e->loc.segment);
	put_le64(out + 8, e->loc.offset);
	put_le32(out + 16, e->loc.length);
	put_le64(out + 24, (uint64_t)e->created_at);
	put_le64(out + 32, e->seq);
	put_le64(out + 40, index_name_hash(e->project));
	put_le64(out + 48, index_name_hash(e->session));
	put_le64(out + 56, index_name_hash(e->client));
}

static int put_named(struct index *idx, MDB_txn *txn, enum index_db db,
		     struct index_name name, const struct index_entry *e,
		     MDB_val *id)
{
	uint8_t buf[NAMED_KEY_MAX];
	MDB_val key = { .mv_data = buf };

	key.mv_size = named_key_put(buf, name, e->created_at, e->seq);
	return mdb_put(txn, idx->dbi[db], &key, id, 0);
}

int index_count_add(struct index *idx, MDB_txn *txn, char kind,
		    struct index_name name, int delta)
{
	uint8_t buf[COUNT_KEY_MAX], value[8];
	MDB_val key = { .mv_size = name.len + 1, .mv_data = buf };
	MDB_val val;
	uint64_t n = 0;
	int rc;

	if (name.len + 1 > sizeof(buf))
		return MDB_BAD_VALSIZE;
	buf[0] = (uint8_t)kind;
	memcpy(buf + 1, name.ptr ? name.ptr : "", name.len);
	rc = mdb_get(txn, idx->dbi[DB_COUNTS], &key, &val);
	if (rc == MDB_SUCCESS && val.mv_size == sizeof(value))
		n = get_le64(val.mv_data);
	else if (rc != MDB_NOTFOUND)
		return rc == MDB_SUCCESS ? MDB_CORRUPTED : rc;
	if (delta < 0 && n < (uint64_t)-delta)
		return MDB_CORRUPTED; /* a removal the counts never saw */
	n = (uint64_t)((int64_t)n + delta);
	if (n == 0)
		return mdb_del(txn, idx->dbi[DB_COUNTS], &key, NULL);
	put_le64(value, n);
	val = (MDB_val){ .mv_size = sizeof(value), .mv_data = value };
	return mdb_put(txn, idx->dbi[DB_COUNTS], &key, &val, 0);
}

/* Returns an LMDB code. */
static int put_entry(struct index *idx, MDB_txn *txn, const struct index_entry *e)
{
	uint8_t value[ID_VALUE_SIZE], tkey[TIME_KEY_SIZE];
	MDB_val id = { .mv_size = INDEX_ID_SIZE, .mv_data = (void *)e->id };
	MDB_val val = { .mv_size = sizeof(value), .mv_data = value };
	MDB_val key = { .mv_size = sizeof(tkey), .mv_data = tkey };
	int rc;

	id_value_put(value, e);
	rc = mdb_put(txn, idx->dbi[DB_BY_ID], &id, &val, MDB_NOOVERWRITE);
	if (rc != MDB_SUCCESS)
		return rc;
	time_key_put(tkey, e->created_at, e->seq);
	rc = mdb_put(txn, idx->dbi[DB_BY_TIME], &key, &id, 0);
	if (rc == MDB_SUCCESS)
		rc = put_named(idx, txn, DB_BY_PROJECT, e->project, e, &id);
	if (rc == MDB_SUCCESS)
		rc = put_named(idx, txn, DB_BY_SESSION, e->session, e, &id);
	if (rc == MDB_SUCCESS)
		rc = put_named(idx, txn, DB_BY_CLIENT, e->client, e, &id);
	if (rc == MDB_SUCCESS) {
		uint8_t skey[8];
		MDB_val sk = { .mv_size = sizeof(skey), .mv_data = skey };

		put_be64(skey, e->seq);
		rc = mdb_put(txn, idx->dbi[DB_BY_SEQ], &sk, &id, 0);
	}
	if (rc == MDB_SUCCESS)
		rc = index_count_add(idx, txn, INDEX_COUNT_PROJECT, e->project, 1);
	if (rc == MDB_SUCCESS)
		rc = index_count_add(idx, txn, INDEX_COUNT_CLIENT, e->client, 1);
	return rc;
}

static int put_registry(struct index *idx, MDB_txn *txn,
			const struct index_registry_row *row)
{
	uint8_t buf[2 * 256 + 2];
	MDB_val key = { .mv_size = row->key.len, .mv_data = (void *)row->key.ptr };
	MDB_val val = { .mv_data = buf };

	if (row->canonical.len + row->spelling.len + 1 > sizeof(buf))
		return MDB_BAD_VALSIZE;
	memcpy(buf, row->canonical.ptr, row->canonical.len);
	buf[row->canonical.len] = 0;
	memcpy(buf + row->canonical.len + 1, row->spelling.ptr, row->spelling.len);
	val.mv_size = row->canonical.len + 1 + row->spelling.len;
	return mdb_put(txn, idx->dbi[DB_REGISTRY], &key, &val, 0);
}

/*
 * LMDB takes a short write for an I/O error (EIO), and a short write is
 * how a filling disk ends a pwrite (tmpfs writes what fits): on a
 * filesystem left with less than INDEX_FULL_SLACK_BYTES, an EIO from a
 * commit is taken for the ENOSPC it was. The commit changed nothing
 * either way (LMDB writes the meta page last).
 */
static int commit_error(const struct index *idx, int mrc)
{
	struct statvfs st;

	if (mrc == EIO && statvfs(idx->path, &st) == 0 &&
	    (uint64_t)st.f_bavail * st.f_frsize < INDEX_FULL_SLACK_BYTES)
		return ENOSPC;
	return mrc;
}

int index_write(struct index *idx, index_write_fn fn, void *ctx, int *mrc)
{
	for (;;) {
		MDB_txn *txn;
		int rc = index_txn_begin(idx, 0, &txn);

		if (rc != ATOLOG_OK)
			return rc;
		*mrc = fn(idx, txn, ctx);
		/* A commit can fill the map too (saving the free list). */
		if (*mrc == MDB_SUCCESS)
			*mrc = commit_error(idx, index_txn_finish(idx, txn, true));
		else
			index_txn_finish(idx, txn, false);
		if (*mrc != MDB_MAP_FULL)
			return ATOLOG_OK;
		rc = index_grow_map(idx);
		if (rc != ATOLOG_OK)
			return rc;
	}
}

struct apply {
	const struct index_batch *batch;
	size_t *dup_at; /* set when an id already exists */
};

/* One attempt; returns an LMDB code. */
static int apply_once(struct index *idx, MDB_txn *txn, void *ctx)
{
	const struct apply *a = ctx;
	const struct index_batch *b = a->batch;
	size_t *dup_at = a->dup_at;
	int rc = MDB_SUCCESS;

	for (size_t i = 0; i < b->n_entries && rc == MDB_SUCCESS; i++) {
		rc = put_entry(idx, txn, &b->entries[i]);
		if (rc == MDB_KEYEXIST && dup_at)
			*dup_at = i;
	}
	for (size_t i = 0; i < b->n_registry && rc == MDB_SUCCESS; i++)
		rc = put_registry(idx, txn, &b->registry[i]);
	if (rc == MDB_SUCCESS)
		rc = index_put_state(idx, txn, b->state);
	return rc;
}

int index_apply(struct index *idx, const struct index_batch *batch,
		size_t *dup_at)
{
	struct apply a = { batch, dup_at };
	int mrc, rc = index_write(idx, apply_once, &a, &mrc);

	if (rc != ATOLOG_OK || mrc == MDB_SUCCESS)
		return rc;
	return index_mdb_error(mrc, "writing a batch");
}
