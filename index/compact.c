/*
 * compact.c - the index side of compaction: the one transaction that swaps
 * the log's old segments for the new one, and the scan that plans
 * retention.
 *
 * A compaction rewrites sealed segments. Records it keeps move (only their
 * by_id row changes: the secondary indexes hold ids, not places); records
 * it removes leave the six by_ databases and their counts. Both happen in
 * one transaction with the new state row and the compaction's nonce, so a
 * reader sees the store entirely before or entirely after. The nonce tells
 * a reopening writer whether the swap reached the index (engine/compact.c),
 * and readers that a compaction ran (a random number: a rebuilt index,
 * which has none, never seems to have seen the same one).
 *
 * Every row touched must still say what the compactor read from the log:
 * a move from a place the row does not name, or the removal of a row that
 * is not there, means the index and the log disagree, and nothing is
 * written.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "atolog.h"
#include "error.h"
#include "internal.h"

#define META_COMPACTION_KEY "compaction"

/* The row of id, which must name exactly loc; an LMDB code, with
 * MDB_NOTFOUND also for a row that names another place. */
static int row_at(struct index *idx, MDB_txn *txn, const uint8_t *id,
		  const struct index_loc *loc, MDB_val *val)
{
	MDB_val key = { .mv_size = INDEX_ID_SIZE, .mv_data = (void *)id };
	const uint8_t *v;
	int rc = mdb_get(txn, idx->dbi[DB_BY_ID], &key, val);

	if (rc != MDB_SUCCESS)
		return rc;
	if (val->mv_size != ID_VALUE_SIZE)
		return MDB_CORRUPTED;
	v = val->mv_data;
	if (get_le64(v) != loc->segment || get_le64(v + 8) != loc->offset ||
	    get_le32(v + 16) != loc->length)
		return MDB_NOTFOUND;
	return MDB_SUCCESS;
}

static int move_row(struct index *idx, MDB_txn *txn, const struct index_move *m)
{
	MDB_val key = { .mv_size = INDEX_ID_SIZE, .mv_data = (void *)m->id };
	uint8_t value[ID_VALUE_SIZE];
	MDB_val val;
	int rc = row_at(idx, txn, m->id, &m->from, &val);

	if (rc != MDB_SUCCESS)
		return rc;
	memcpy(value, val.mv_data, ID_VALUE_SIZE);
	put_le64(value, m->to.segment);
	put_le64(value + 8, m->to.offset);
	put_le32(value + 16, m->to.length);
	val = (MDB_val){ .mv_size = sizeof(value), .mv_data = value };
	return mdb_put(txn, idx->dbi[DB_BY_ID], &key, &val, 0);
}

static int del_named(struct index *idx, MDB_txn *txn, enum index_db db,
		     struct index_name name, const struct index_entry *e)
{
	uint8_t buf[NAMED_KEY_MAX];
	MDB_val key = { .mv_data = buf };

	key.mv_size = named_key_put(buf, name, e->created_at, e->seq);
	return mdb_del(txn, idx->dbi[db], &key, NULL);
}

/* Takes one interaction out of every database. */
static int remove_entry(struct index *idx, MDB_txn *txn, const struct index_entry *e)
{
	MDB_val id = { .mv_size = INDEX_ID_SIZE, .mv_data = (void *)e->id };
	uint8_t tkey[TIME_KEY_SIZE];
	MDB_val key = { .mv_size = sizeof(tkey), .mv_data = tkey };
	MDB_val val;
	int rc = row_at(idx, txn, e->id, &e->loc, &val);

	if (rc == MDB_SUCCESS)
		rc = mdb_del(txn, idx->dbi[DB_BY_ID], &id, NULL);
	time_key_put(tkey, e->created_at, e->seq);
	if (rc == MDB_SUCCESS)
		rc = mdb_del(txn, idx->dbi[DB_BY_TIME], &key, NULL);
	if (rc == MDB_SUCCESS)
		rc = del_named(idx, txn, DB_BY_PROJECT, e->project, e);
	if (rc == MDB_SUCCESS)
		rc = del_named(idx, txn, DB_BY_SESSION, e->session, e);
	if (rc == MDB_SUCCESS)
		rc = del_named(idx, txn, DB_BY_CLIENT, e->client, e);
	if (rc == MDB_SUCCESS) {
		uint8_t skey[8];
		MDB_val sk = { .mv_size = sizeof(skey), .mv_data = skey };

		put_be64(skey, e->seq);
		rc = mdb_del(txn, idx->dbi[DB_BY_SEQ], &sk, NULL);
	}
	if (rc == MDB_SUCCESS)
		rc = index_count_add(idx, txn, INDEX_COUNT_PROJECT, e->project, -1);
	if (rc == MDB_SUCCESS)
		rc = index_count_add(idx, txn, INDEX_COUNT_CLIENT, e->client, -1);
	return rc;
}

static int put_compaction(struct index *idx, MDB_txn *txn, uint64_t n)
{
	uint8_t buf[8];
	MDB_val key = { .mv_size = strlen(META_COMPACTION_KEY),
			.mv_data = (void *)META_COMPACTION_KEY };
	MDB_val val = { .mv_size = sizeof(buf), .mv_data = buf };

	put_le64(buf, n);
	return mdb_put(txn, idx->dbi[DB_META], &key, &val, 0);
}

struct swap {
	const struct index_compaction *c;
	const uint8_t *bad; /* the row that disagreed (an id), or NULL */
};

/* One attempt; an LMDB code. */
static int compact_once(struct index *idx, MDB_txn *txn, void *ctx)
{
	struct swap *sw = ctx;
	const struct index_compaction *c = sw->c;
	const uint8_t **bad = &sw->bad;
	int rc = MDB_SUCCESS;

	for (size_t i = 0; i < c->n_moves && rc == MDB_SUCCESS; i++) {
		rc = move_row(idx, txn, &c->moves[i]);
		*bad = c->moves[i].id;
	}
	for (size_t i = 0; i < c->n_removed && rc == MDB_SUCCESS; i++) {
		rc = remove_entry(idx, txn, &c->removed[i]);
		*bad = c->removed[i].id;
	}
	if (rc == MDB_SUCCESS)
		rc = index_put_state(idx, txn, c->state);
	if (rc == MDB_SUCCESS)
		rc = put_compaction(idx, txn, c->nonce);
	return rc;
}

static int disagreement(const uint8_t *id)
{
	static const char hex[] = "0123456789abcdef";
	char text[2 * INDEX_ID_SIZE + 1];

	for (size_t i = 0; i < INDEX_ID_SIZE; i++) {
		text[2 * i] = hex[id[i] >> 4];
		text[2 * i + 1] = hex[id[i] & 15];
	}
	text[2 * INDEX_ID_SIZE] = '\0';
	return err_set(ATOLOG_CORRUPT, "index: the rows of interaction %s do not "
		       "match the log it was compacted from; nothing changed", text);
}

int index_compact_apply(struct index *idx, const struct index_compaction *c)
{
	struct swap sw = { c, NULL };
	int mrc, rc = index_write(idx, compact_once, &sw, &mrc);

	if (rc != ATOLOG_OK || mrc == MDB_SUCCESS)
		return rc;
	if (mrc == MDB_NOTFOUND && sw.bad)
		return disagreement(sw.bad);
	return index_mdb_error(mrc, "swapping compacted segments");
}

int index_last_compaction(struct index *idx, uint64_t *out)
{
	MDB_val key = { .mv_size = strlen(META_COMPACTION_KEY),
			.mv_data = (void *)META_COMPACTION_KEY };
	MDB_txn *txn;
	MDB_val val;
	int rc, mrc;

	rc = index_txn_begin(idx, MDB_RDONLY, &txn);
	if (rc != ATOLOG_OK)
		return rc;
	mrc = mdb_get(txn, idx->dbi[DB_META], &key, &val);
	*out = 0;
	if (mrc == MDB_SUCCESS && val.mv_size != 8)
		mrc = MDB_CORRUPTED;
	if (mrc == MDB_SUCCESS)
		*out = get_le64(val.mv_data);
	index_txn_end(idx, txn, false);
	if (mrc == MDB_NOTFOUND)
		return ATOLOG_OK; /* never compacted */
	return index_mdb_error(mrc, META_COMPACTION_KEY);
}

/* ------------------------------------------------------------------------
 * Retention planning: a walk of by_project, which holds the project name
 * and time of every interaction in its keys; one project is one prefix.
 */

/* Whether key (of by_project) is a row of a name, and which. */
static bool named_key_split(const MDB_val *key, struct index_name *name,
			    int64_t *created_at)
{
	const uint8_t *k = key->mv_data;

	if (key->mv_size < TIME_KEY_SIZE + 1 || k[key->mv_size - TIME_KEY_SIZE - 1])
		return false;
	name->ptr = key->mv_data;
	name->len = key->mv_size - TIME_KEY_SIZE - 1;
	*created_at = time_key_time(k + name->len + 1);
	return true;
}

/* Visits one by_project row if it is retained; *stop past the range. */
static int retention_row(struct index *idx, MDB_txn *txn, const MDB_val *key,
			 const MDB_val *val, const struct index_retention *r,
			 bool *past)
{
	struct index_retained hit;
	struct id_row row;
	int rc;

	if (!named_key_split(key, &hit.project, &hit.created_at) ||
	    val->mv_size != INDEX_ID_SIZE)
		return err_set(ATOLOG_CORRUPT, "index: by_project holds a malformed row");
	if (r->project.ptr && (hit.project.len != r->project.len ||
			       memcmp(hit.project.ptr, r->project.ptr, r->project.len))) {
		*past = true;
		return ATOLOG_OK;
	}
	if (hit.created_at >= r->before) {
		*past = r->project.ptr != NULL; /* a project's rows are in time order */
		return ATOLOG_OK;
	}
	memcpy(hit.id, val->mv_data, INDEX_ID_SIZE);
	rc = id_row_get(idx, txn, hit.id, &row);
	if (rc != MDB_SUCCESS)
		return index_mdb_error(rc == MDB_NOTFOUND ? MDB_CORRUPTED : rc,
				       "by_project names an id by_id lacks");
	hit.loc = row.loc;
	return r->fn(&hit, r->ctx);
}

int index_retention_scan(struct index *idx, const struct index_retention *r)
{
	uint8_t start[ATOLOG_NAME_MAX_BYTES + 1];
	MDB_val key = { .mv_size = 0, .mv_data = start }, val;
	MDB_cursor *cur;
	MDB_txn *txn;
	bool past = false;
	int rc, mrc;

	if (r->project.ptr) {
		if (r->project.len > ATOLOG_NAME_MAX_BYTES)
			return ATOLOG_OK; /* no such name can be stored */
		memcpy(start, r->project.ptr, r->project.len);
		start[r->project.len] = 0;
		key.mv_size = r->project.len + 1;
	}
	rc = index_txn_begin(idx, MDB_RDONLY, &txn);
	if (rc != ATOLOG_OK)
		return rc;
	mrc = mdb_cursor_open(txn, idx->dbi[DB_BY_PROJECT], &cur);
	if (mrc == MDB_SUCCESS) {
		mrc = mdb_cursor_get(cur, &key, &val,
				     key.mv_size ? MDB_SET_RANGE : MDB_FIRST);
		while (mrc == MDB_SUCCESS && rc == ATOLOG_OK && !past) {
			rc = retention_row(idx, txn, &key, &val, r, &past);
			if (rc == ATOLOG_OK && !past)
				mrc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
		}
		mdb_cursor_close(cur);
	}
	index_txn_end(idx, txn, false);
	if (rc != ATOLOG_OK)
		return rc;
	return mrc == MDB_SUCCESS || mrc == MDB_NOTFOUND
		       ? ATOLOG_OK : index_mdb_error(mrc, "planning retention");
}
