/*
 * verify.c - the index checked against itself, in one read transaction,
 * for `atolog verify`.
 *
 * One transaction, so that the state row and every entry describe the
 * same instant of the log even while a writer commits beside it. Every
 * by_id row is handed to the caller (who matches it against the log);
 * every entry of the secondary indexes must name an id that by_id holds,
 * with the same created_at and seq as its key, and for the named indexes
 * a name whose hash is the one by_id keeps. A long verify holds its
 * transaction, and so keeps LMDB from reusing pages, for as long as it
 * runs; that is the price of one consistent picture.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "atolog.h"
#include "internal.h"

static void note_problem(struct index_check *out, const char *fmt, const char *db,
			 uint64_t n)
{
	if (out->problems++ == 0)
		snprintf(out->first_problem, sizeof(out->first_problem), fmt, db, n);
}

/* The hash of a named index's entry that by_id must hold. */
static uint64_t row_hash(const struct id_row *row, enum index_db db)
{
	return db == DB_BY_PROJECT ? row->h_project
	       : db == DB_BY_SESSION ? row->h_session
				     : row->h_client;
}

/* One secondary entry: key (name 0x00)? time_key -> id. */
static int check_secondary(struct index *idx, MDB_txn *txn, enum index_db db,
			   const MDB_val *key, const MDB_val *val,
			   struct index_check *out, uint64_t n)
{
	static const char *const names[DB_COUNT] = {
		[DB_BY_TIME] = "by_time", [DB_BY_PROJECT] = "by_project",
		[DB_BY_SESSION] = "by_session", [DB_BY_CLIENT] = "by_client",
	};
	const uint8_t *k = key->mv_data;
	struct id_row row;
	size_t name_len = key->mv_size - TIME_KEY_SIZE;
	int rc;

	if (val->mv_size != INDEX_ID_SIZE || key->mv_size < TIME_KEY_SIZE ||
	    (db != DB_BY_TIME && (name_len == 0 || k[name_len - 1] != 0))) {
		note_problem(out, "%s entry %" PRIu64 " is malformed", names[db], n);
		return MDB_SUCCESS;
	}
	rc = id_row_get(idx, txn, val->mv_data, &row);
	if (rc == MDB_NOTFOUND) {
		note_problem(out, "%s entry %" PRIu64 " names an id by_id does not hold",
			     names[db], n);
		return MDB_SUCCESS;
	}
	if (rc != MDB_SUCCESS)
		return rc;
	if (time_key_time(k + name_len) != row.created_at ||
	    get_be64(k + name_len + 8) != row.seq)
		note_problem(out, "%s entry %" PRIu64 " disagrees with by_id on time "
			     "or sequence", names[db], n);
	else if (db != DB_BY_TIME &&
		 index_name_hash((struct index_name){ (const char *)k, name_len - 1 }) !=
			 row_hash(&row, db))
		note_problem(out, "%s entry %" PRIu64 " disagrees with by_id on its name",
			     names[db], n);
	return MDB_SUCCESS;
}

/* A run of one name's keys in by_project or by_client, whose length the
 * counts database must hold. */
struct name_run {
	char kind;          /* INDEX_COUNT_*, or 0: not counted */
	uint8_t name[COUNT_KEY_MAX];
	size_t len;         /* of name */
	uint64_t n;         /* keys in the run */
	uint64_t runs;      /* names seen */
};

static int run_end(struct index *idx, MDB_txn *txn, struct name_run *r,
		   struct index_check *out)
{
	uint8_t key[COUNT_KEY_MAX];
	MDB_val k = { .mv_size = r->len + 1, .mv_data = key }, v;
	int rc;

	if (!r->kind || r->n == 0)
		return MDB_SUCCESS;
	key[0] = (uint8_t)r->kind;
	memcpy(key + 1, r->name, r->len);
	rc = mdb_get(txn, idx->dbi[DB_COUNTS], &k, &v);
	if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
		return rc;
	if (rc == MDB_NOTFOUND || v.mv_size != 8 || get_le64(v.mv_data) != r->n)
		note_problem(out, "counts disagree with %s for a name holding %" PRIu64
			     " interactions", r->kind == INDEX_COUNT_PROJECT ? "by_project"
									 : "by_client", r->n);
	r->runs++;
	r->n = 0;
	return MDB_SUCCESS;
}

/* Counts the key into its name's run, ending the run before it. */
static int run_add(struct index *idx, MDB_txn *txn, struct name_run *r,
		   const MDB_val *key, struct index_check *out)
{
	size_t len = key->mv_size > TIME_KEY_SIZE ? key->mv_size - TIME_KEY_SIZE - 1 : 0;
	int rc = MDB_SUCCESS;

	if (!r->kind || len >= COUNT_KEY_MAX)
		return MDB_SUCCESS;
	if (r->n && (len != r->len || memcmp(key->mv_data, r->name, len) != 0))
		rc = run_end(idx, txn, r, out);
	if (r->n == 0) {
		memcpy(r->name, key->mv_data, len);
		r->len = len;
	}
	r->n++;
	return rc;
}

static int walk_secondary(struct index *idx, MDB_txn *txn, enum index_db db,
			  struct index_check *out, uint64_t *count, uint64_t *names)
{
	struct name_run run = { .kind = db == DB_BY_PROJECT ? INDEX_COUNT_PROJECT
					: db == DB_BY_CLIENT ? INDEX_COUNT_CLIENT : 0 };
	MDB_cursor *c;
	MDB_val key, val;
	int rc = mdb_cursor_open(txn, idx->dbi[db], &c);

	if (rc != MDB_SUCCESS)
		return rc;
	for (rc = mdb_cursor_get(c, &key, &val, MDB_FIRST); rc == MDB_SUCCESS;
	     rc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
		rc = check_secondary(idx, txn, db, &key, &val, out, *count);
		if (rc == MDB_SUCCESS)
			rc = run_add(idx, txn, &run, &key, out);
		if (rc != MDB_SUCCESS)
			break;
		++*count;
	}
	mdb_cursor_close(c);
	if (rc == MDB_NOTFOUND)
		rc = run_end(idx, txn, &run, out);
	*names = run.runs;
	return rc;
}

/* Every by_seq entry names an id whose by_id row has that seq. */
static int walk_by_seq(struct index *idx, MDB_txn *txn, struct index_check *out)
{
	MDB_cursor *c;
	MDB_val key, val;
	int rc = mdb_cursor_open(txn, idx->dbi[DB_BY_SEQ], &c);

	if (rc != MDB_SUCCESS)
		return rc;
	for (rc = mdb_cursor_get(c, &key, &val, MDB_FIRST); rc == MDB_SUCCESS;
	     rc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
		struct id_row row;

		if (key.mv_size != 8 || val.mv_size != INDEX_ID_SIZE ||
		    (rc = id_row_get(idx, txn, val.mv_data, &row)) == MDB_NOTFOUND ||
		    (rc == MDB_SUCCESS && row.seq != get_be64(key.mv_data))) {
			note_problem(out, "%s entry %" PRIu64 " does not match by_id",
				     "by_seq", out->by_seq);
			rc = MDB_SUCCESS;
		}
		if (rc != MDB_SUCCESS)
			break;
		out->by_seq++;
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
}

/* Rows of counts of kind: as many as names the index holds. */
static int count_rows(struct index *idx, MDB_txn *txn, char kind, uint64_t *n)
{
	uint8_t start = (uint8_t)kind;
	MDB_val key = { .mv_size = 1, .mv_data = &start }, val;
	MDB_cursor *c;
	int rc = mdb_cursor_open(txn, idx->dbi[DB_COUNTS], &c);

	*n = 0;
	if (rc != MDB_SUCCESS)
		return rc;
	for (rc = mdb_cursor_get(c, &key, &val, MDB_SET_RANGE);
	     rc == MDB_SUCCESS && ((const uint8_t *)key.mv_data)[0] == (uint8_t)kind;
	     rc = mdb_cursor_get(c, &key, &val, MDB_NEXT))
		++*n;
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND || rc == MDB_SUCCESS ? MDB_SUCCESS : rc;
}

/* Hands every by_id row to fn; *stop receives fn's non-zero answer. */
static int walk_by_id(struct index *idx, MDB_txn *txn,
		      int (*fn)(const struct index_hit *row, void *ctx), void *ctx,
		      struct index_check *out, int *stop)
{
	MDB_cursor *c;
	MDB_val key, val;
	int rc = mdb_cursor_open(txn, idx->dbi[DB_BY_ID], &c);

	if (rc != MDB_SUCCESS)
		return rc;
	for (rc = mdb_cursor_get(c, &key, &val, MDB_FIRST); rc == MDB_SUCCESS && !*stop;
	     rc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
		struct id_row row;
		struct index_hit hit;

		if (key.mv_size != INDEX_ID_SIZE ||
		    (rc = id_row_get(idx, txn, key.mv_data, &row)) == MDB_CORRUPTED) {
			note_problem(out, "%s row %" PRIu64 " is malformed", "by_id",
				     out->by_id);
			rc = MDB_SUCCESS;
			continue;
		}
		if (rc != MDB_SUCCESS)
			break;
		memcpy(hit.id, key.mv_data, INDEX_ID_SIZE);
		hit.created_at = row.created_at;
		hit.seq = row.seq;
		hit.loc = row.loc;
		out->by_id++;
		*stop = fn(&hit, ctx);
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
}

static int state_in(struct index *idx, MDB_txn *txn, struct index_check *out)
{
	MDB_val key = { .mv_size = strlen(META_STATE_KEY), .mv_data = META_STATE_KEY };
	MDB_val val;
	int rc = mdb_get(txn, idx->dbi[DB_META], &key, &val);

	if (rc == MDB_NOTFOUND)
		return MDB_SUCCESS; /* an empty index */
	if (rc != MDB_SUCCESS)
		return rc;
	if (val.mv_size == STATE_VALUE_SIZE) {
		index_state_decode(val.mv_data, &out->state);
		out->has_state = true;
	} else {
		note_problem(out, "%s row %" PRIu64 " is malformed", "meta state", 0);
	}
	return MDB_SUCCESS;
}

int index_check(struct index *idx,
		int (*fn)(const struct index_hit *row, void *ctx), void *ctx,
		struct index_check *out)
{
	static const enum index_db secondary[] = { DB_BY_TIME, DB_BY_PROJECT,
						   DB_BY_SESSION, DB_BY_CLIENT };
	uint64_t *counts[] = { &out->by_time, &out->by_project, &out->by_session,
			       &out->by_client };
	uint64_t names[4] = { 0 }, rows[2] = { 0 };
	MDB_txn *txn;
	int rc, stop = 0;

	memset(out, 0, sizeof(*out));
	rc = index_txn_begin(idx, MDB_RDONLY, &txn);
	if (rc != ATOLOG_OK)
		return rc;
	rc = state_in(idx, txn, out);
	if (rc == MDB_SUCCESS)
		rc = walk_by_id(idx, txn, fn, ctx, out, &stop);
	for (size_t i = 0; i < 4 && rc == MDB_SUCCESS && !stop; i++)
		rc = walk_secondary(idx, txn, secondary[i], out, counts[i], &names[i]);
	if (rc == MDB_SUCCESS && !stop)
		rc = walk_by_seq(idx, txn, out);
	if (rc == MDB_SUCCESS && !stop)
		rc = count_rows(idx, txn, INDEX_COUNT_PROJECT, &rows[0]);
	if (rc == MDB_SUCCESS && !stop)
		rc = count_rows(idx, txn, INDEX_COUNT_CLIENT, &rows[1]);
	if (rc == MDB_SUCCESS && (rows[0] != names[1] || rows[1] != names[3]))
		note_problem(out, "%s holds names no interaction has (%" PRIu64 " rows)",
			     "counts", rows[0] + rows[1]);
	index_txn_end(idx, txn, false);
	if (stop)
		return stop;
	return rc == MDB_SUCCESS ? ATOLOG_OK : index_mdb_error(rc, "verifying the index");
}
