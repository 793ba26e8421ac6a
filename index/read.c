/*
 * read.c - lookups and scans.
 *
 * A scan is a cursor walk over one index between two keys: for "newest N
 * of project P since T" it seeks past the last key of P and steps
 * backwards until it leaves P or passes T. It returns rows in batches; a
 * batch runs in one read transaction, and between batches the transaction
 * is reset (keeping its reader slot) so that a slow consumer pins no old
 * pages and never holds up a map resize. The next batch re-seeks from the
 * last key it returned, which is exact because keys are unique.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "atolog.h"
#include "error.h"
#include "internal.h"

int id_row_get(struct index *idx, MDB_txn *txn, const uint8_t *id,
	       struct id_row *out)
{
	MDB_val key = { .mv_size = INDEX_ID_SIZE, .mv_data = (void *)id };
	MDB_val val;
	const uint8_t *v;
	int rc = mdb_get(txn, idx->dbi[DB_BY_ID], &key, &val);

	if (rc != MDB_SUCCESS)
		return rc;
	if (val.mv_size != ID_VALUE_SIZE)
		return MDB_CORRUPTED;
	v = val.mv_data;
	out->loc.segment = get_le64(v);
	out->loc.offset = get_le64(v + 8);
	out->loc.length = get_le32(v + 16);
	out->created_at = (int64_t)get_le64(v + 24);
	out->seq = get_le64(v + 32);
	out->h_project = get_le64(v + 40);
	out->h_session = get_le64(v + 48);
	out->h_client = get_le64(v + 56);
	return MDB_SUCCESS;
}

int index_lookup(struct index *idx, const uint8_t id[INDEX_ID_SIZE],
		 struct index_loc *loc)
{
	struct id_row row;
	MDB_txn *txn;
	int rc, mrc;

	rc = index_txn_begin(idx, MDB_RDONLY, &txn);
	if (rc != ATOLOG_OK)
		return rc;
	mrc = id_row_get(idx, txn, id, &row);
	index_txn_end(idx, txn, false);
	if (mrc == MDB_NOTFOUND)
		return ATOLOG_NOTFOUND;
	if (mrc != MDB_SUCCESS)
		return index_mdb_error(mrc, "looking up an id");
	*loc = row.loc;
	return ATOLOG_OK;
}

/* ------------------------------------------------------------------------
 * Registry.
 */

static void registry_row_parse(const MDB_val *key, const MDB_val *val,
			       struct index_registry_row *row)
{
	const char *v = val->mv_data;
	const char *sep = memchr(v, 0, val->mv_size);
	size_t canon_len = sep ? (size_t)(sep - v) : val->mv_size;

	row->key.ptr = key->mv_data;
	row->key.len = key->mv_size;
	row->canonical.ptr = v;
	row->canonical.len = canon_len;
	row->spelling.ptr = sep ? sep + 1 : v + canon_len;
	row->spelling.len = sep ? val->mv_size - canon_len - 1 : 0;
}

int index_registry_get(struct index *idx, struct index_name name, char **out)
{
	MDB_val key = { .mv_size = name.len, .mv_data = (void *)name.ptr };
	struct index_registry_row row;
	MDB_txn *txn;
	MDB_val val;
	char *copy = NULL;
	int rc, mrc;

	if (name.len == 0)
		return ATOLOG_NOTFOUND; /* LMDB refuses empty keys */
	rc = index_txn_begin(idx, MDB_RDONLY, &txn);
	if (rc != ATOLOG_OK)
		return rc;
	mrc = mdb_get(txn, idx->dbi[DB_REGISTRY], &key, &val);
	if (mrc == MDB_SUCCESS) {
		registry_row_parse(&key, &val, &row);
		copy = strndup(row.canonical.ptr, row.canonical.len);
	}
	index_txn_end(idx, txn, false);
	if (mrc == MDB_NOTFOUND)
		return ATOLOG_NOTFOUND;
	if (mrc != MDB_SUCCESS)
		return index_mdb_error(mrc, "reading the registry");
	if (!copy)
		return err_set(ENOMEM, "reading the registry");
	*out = copy;
	return ATOLOG_OK;
}

int index_registry_foreach(struct index *idx,
			   int (*fn)(const struct index_registry_row *row,
				     void *ctx),
			   void *ctx)
{
	struct index_registry_row row;
	MDB_cursor *cur;
	MDB_txn *txn;
	MDB_val key, val;
	int rc, mrc, stop = 0;

	rc = index_txn_begin(idx, MDB_RDONLY, &txn);
	if (rc != ATOLOG_OK)
		return rc;
	mrc = mdb_cursor_open(txn, idx->dbi[DB_REGISTRY], &cur);
	if (mrc == MDB_SUCCESS) {
		mrc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
		while (mrc == MDB_SUCCESS && !stop) {
			registry_row_parse(&key, &val, &row);
			stop = fn(&row, ctx);
			if (!stop)
				mrc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
		}
		mdb_cursor_close(cur);
	}
	index_txn_end(idx, txn, false);
	if (stop)
		return stop;
	return mrc == MDB_NOTFOUND ? ATOLOG_OK
				   : index_mdb_error(mrc, "listing the registry");
}

/* ------------------------------------------------------------------------
 * Scans.
 */

struct name_check {
	bool active;
	uint64_t hash;
};

struct index_scan {
	struct index *idx;
	enum index_db db;
	uint8_t prefix[ATOLOG_NAME_MAX_BYTES + 1]; /* "name 0x00", or empty */
	size_t prefix_len;
	struct name_check project, session, client;
	int64_t since;
	bool has_until;
	int64_t until;
	bool oldest_first;
	uint8_t last_key[NAMED_KEY_MAX];
	size_t last_len; /* 0 before the first batch */
	bool done;
	MDB_txn *txn; /* reset between batches */
	MDB_cursor *cur;
};

static struct name_check name_check_of(struct index_name name)
{
	struct name_check c = { .active = name.ptr != NULL };

	if (c.active)
		c.hash = index_name_hash(name);
	return c;
}

/* The most selective index for the filter: a session holds few rows, a
 * project more, a client more still; with no name, time. */
static void scan_choose(struct index_scan *s, const struct index_filter *f)
{
	const struct {
		enum index_db db;
		struct index_name name;
	} order[] = {
		{ DB_BY_SESSION, f->session },
		{ DB_BY_PROJECT, f->project },
		{ DB_BY_CLIENT, f->client },
	};

	s->db = DB_BY_TIME;
	s->prefix_len = 0;
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		if (order[i].name.ptr) {
			s->db = order[i].db;
			memcpy(s->prefix, order[i].name.ptr, order[i].name.len);
			s->prefix[order[i].name.len] = 0;
			s->prefix_len = order[i].name.len + 1;
			return;
		}
	}
}

int index_scan_open(struct index *idx, const struct index_filter *filter,
		    struct index_scan **out)
{
	struct index_scan *s;

	if ((filter->project.ptr && filter->project.len > ATOLOG_NAME_MAX_BYTES) ||
	    (filter->session.ptr && filter->session.len > ATOLOG_NAME_MAX_BYTES) ||
	    (filter->client.ptr && filter->client.len > ATOLOG_NAME_MAX_BYTES))
		return err_set(ATOLOG_INVALID, "filter name over %u bytes",
			       ATOLOG_NAME_MAX_BYTES);
	s = calloc(1, sizeof(*s));
	if (!s)
		return err_set(ENOMEM, "opening a scan");
	s->idx = idx;
	s->since = filter->since;
	s->has_until = filter->has_until;
	s->until = filter->until;
	s->oldest_first = filter->oldest_first;
	s->project = name_check_of(filter->project);
	s->session = name_check_of(filter->session);
	s->client = name_check_of(filter->client);
	scan_choose(s, filter);
	*out = s;
	return ATOLOG_OK;
}

void index_scan_close(struct index_scan *s)
{
	if (!s)
		return;
	if (s->cur)
		mdb_cursor_close(s->cur);
	if (s->txn)
		mdb_txn_abort(s->txn); /* reset: holds no lock, only a slot */
	free(s);
}

/* Starts a batch: a live transaction and a cursor bound to it. */
static int scan_batch_begin(struct index_scan *s)
{
	int rc;

	if (!s->txn) {
		rc = index_txn_begin(s->idx, MDB_RDONLY, &s->txn);
		if (rc != ATOLOG_OK)
			return rc;
		rc = mdb_cursor_open(s->txn, s->idx->dbi[s->db], &s->cur);
	} else {
		rc = index_txn_renew(s->idx, s->txn);
		if (rc != ATOLOG_OK)
			return rc;
		rc = mdb_cursor_renew(s->txn, s->cur);
	}
	if (rc != MDB_SUCCESS) {
		index_txn_reset(s->idx, s->txn);
		return index_mdb_error(rc, "opening a cursor");
	}
	return ATOLOG_OK;
}

/* Positions the cursor on the first key of this batch (an LMDB code). */
static int scan_seek(struct index_scan *s, MDB_val *key, MDB_val *val)
{
	uint8_t start[NAMED_KEY_MAX];
	bool resume = s->last_len > 0;
	int rc;

	if (resume) {
		memcpy(start, s->last_key, s->last_len);
		key->mv_size = s->last_len;
	} else {
		memcpy(start, s->prefix, s->prefix_len);
		if (s->oldest_first)
			time_key_put(start + s->prefix_len, s->since, 0);
		else if (s->has_until) /* the last key before (until, 0) */
			time_key_put(start + s->prefix_len, s->until, 0);
		else
			memset(start + s->prefix_len, 0xff, TIME_KEY_SIZE);
		key->mv_size = s->prefix_len + TIME_KEY_SIZE;
	}
	key->mv_data = start;
	rc = mdb_cursor_get(s->cur, key, val, MDB_SET_RANGE);
	if (s->oldest_first) {
		/* First key >= start; a resumed scan skips the key it ended on. */
		if (rc == MDB_SUCCESS && resume && key->mv_size == s->last_len &&
		    memcmp(key->mv_data, s->last_key, s->last_len) == 0)
			rc = mdb_cursor_get(s->cur, key, val, MDB_NEXT);
		return rc;
	}
	/* Newest first: the last key < start (start itself was returned). */
	if (rc == MDB_NOTFOUND)
		return mdb_cursor_get(s->cur, key, val, MDB_LAST);
	if (rc != MDB_SUCCESS)
		return rc;
	return mdb_cursor_get(s->cur, key, val, MDB_PREV);
}

/* True while key is inside the scan's range. */
static bool scan_in_range(const struct index_scan *s, const MDB_val *key)
{
	int64_t t;

	if (key->mv_size != s->prefix_len + TIME_KEY_SIZE ||
	    memcmp(key->mv_data, s->prefix, s->prefix_len) != 0)
		return false;
	t = time_key_time((const uint8_t *)key->mv_data + s->prefix_len);
	return s->oldest_first ? !s->has_until || t < s->until : t >= s->since;
}

static bool name_check_ok(struct name_check c, uint64_t hash)
{
	return !c.active || c.hash == hash;
}

/* Collects hits from the positioned cursor (an LMDB code). */
static int scan_collect(struct index_scan *s, MDB_val *key, MDB_val *val,
			struct index_hit *hits, size_t max, size_t *n)
{
	MDB_cursor_op step = s->oldest_first ? MDB_NEXT : MDB_PREV;
	int rc = MDB_SUCCESS;

	*n = 0;
	while (*n < max) {
		struct id_row row;

		if (!scan_in_range(s, key)) {
			s->done = true;
			return MDB_SUCCESS;
		}
		if (val->mv_size != INDEX_ID_SIZE)
			return MDB_CORRUPTED;
		rc = id_row_get(s->idx, s->txn, val->mv_data, &row);
		if (rc != MDB_SUCCESS)
			return rc == MDB_NOTFOUND ? MDB_CORRUPTED : rc;
		if (name_check_ok(s->project, row.h_project) &&
		    name_check_ok(s->session, row.h_session) &&
		    name_check_ok(s->client, row.h_client)) {
			struct index_hit *h = &hits[(*n)++];

			memcpy(h->id, val->mv_data, INDEX_ID_SIZE);
			h->created_at = row.created_at;
			h->seq = row.seq;
			h->loc = row.loc;
		}
		memcpy(s->last_key, key->mv_data, key->mv_size);
		s->last_len = key->mv_size;
		rc = mdb_cursor_get(s->cur, key, val, step);
		if (rc == MDB_NOTFOUND) {
			s->done = true;
			return MDB_SUCCESS;
		}
		if (rc != MDB_SUCCESS)
			return rc;
	}
	return MDB_SUCCESS;
}

int index_scan_next(struct index_scan *s, struct index_hit *hits, size_t max,
		    size_t *n)
{
	MDB_val key, val;
	int rc, mrc;

	*n = 0;
	if (s->done || max == 0)
		return ATOLOG_OK;
	rc = scan_batch_begin(s);
	if (rc != ATOLOG_OK)
		return rc;
	mrc = scan_seek(s, &key, &val);
	if (mrc == MDB_NOTFOUND) {
		s->done = true;
		mrc = MDB_SUCCESS;
	} else if (mrc == MDB_SUCCESS) {
		mrc = scan_collect(s, &key, &val, hits, max, n);
	}
	index_txn_reset(s->idx, s->txn);
	if (mrc != MDB_SUCCESS) {
		s->done = true;
		return index_mdb_error(mrc, "scanning");
	}
	return ATOLOG_OK;
}

/* ------------------------------------------------------------------------
 * The change feed: by_seq from a sequence number on.
 */

/* Whether a by_id row passes the filter (names by hash, since). */
static bool seq_row_matches(const struct index_filter *f, const struct id_row *row)
{
	return name_check_ok(name_check_of(f->project), row->h_project) &&
	       name_check_ok(name_check_of(f->session), row->h_session) &&
	       name_check_ok(name_check_of(f->client), row->h_client) &&
	       row->created_at >= f->since;
}

int index_seq_scan(struct index *idx, const struct index_filter *f, uint64_t *after,
		   struct index_hit *hits, size_t max, size_t *n, bool *rebuilding)
{
	uint8_t start[8];
	MDB_val key = { .mv_size = sizeof(start), .mv_data = start }, val;
	MDB_cursor *cur = NULL;
	MDB_txn *txn;
	size_t looked = 0;
	int rc, mrc;

	*n = 0;
	*rebuilding = false;
	if (*after == UINT64_MAX)
		return ATOLOG_OK;
	put_be64(start, *after + 1);
	rc = index_txn_begin(idx, MDB_RDONLY, &txn);
	if (rc != ATOLOG_OK)
		return rc;
	{
		/* During a rebuild by_seq fills out of order: wait for it. */
		MDB_val rk = { .mv_size = strlen(META_REBUILDING_KEY),
			       .mv_data = (void *)META_REBUILDING_KEY }, rv;

		if (mdb_get(txn, idx->dbi[DB_META], &rk, &rv) == MDB_SUCCESS) {
			index_txn_end(idx, txn, false);
			*rebuilding = true;
			return ATOLOG_OK;
		}
	}
	mrc = mdb_cursor_open(txn, idx->dbi[DB_BY_SEQ], &cur);
	if (mrc != MDB_SUCCESS)
		cur = NULL;
	else
		mrc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
	/* Rows that do not match still move the position on, but a scan
	 * looks at no more than SEQ_SCAN_LOOK rows per call. */
	while (mrc == MDB_SUCCESS && *n < max && looked++ < SEQ_SCAN_LOOK) {
		struct id_row row;

		if (key.mv_size != 8 || val.mv_size != INDEX_ID_SIZE) {
			mrc = MDB_CORRUPTED;
			break;
		}
		mrc = id_row_get(idx, txn, val.mv_data, &row);
		if (mrc != MDB_SUCCESS) {
			mrc = mrc == MDB_NOTFOUND ? MDB_CORRUPTED : mrc;
			break;
		}
		*after = get_be64(key.mv_data);
		if (seq_row_matches(f, &row)) {
			memcpy(hits[*n].id, val.mv_data, INDEX_ID_SIZE);
			hits[*n].created_at = row.created_at;
			hits[*n].seq = row.seq;
			hits[(*n)++].loc = row.loc;
		}
		mrc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
	}
	if (cur)
		mdb_cursor_close(cur);
	index_txn_end(idx, txn, false);
	return mrc == MDB_SUCCESS || mrc == MDB_NOTFOUND
		       ? ATOLOG_OK : index_mdb_error(mrc, "following the log");
}

/* ------------------------------------------------------------------------
 * Summaries: counts per name, and the time range, each a few seeks.
 */

int index_counts(struct index *idx, char kind,
		 int (*fn)(struct index_name name, uint64_t n, void *ctx), void *ctx)
{
	uint8_t start = (uint8_t)kind;
	MDB_val key = { .mv_size = 1, .mv_data = &start }, val;
	MDB_cursor *cur;
	MDB_txn *txn;
	int rc, mrc, stop = 0;

	rc = index_txn_begin(idx, MDB_RDONLY, &txn);
	if (rc != ATOLOG_OK)
		return rc;
	mrc = mdb_cursor_open(txn, idx->dbi[DB_COUNTS], &cur);
	if (mrc == MDB_SUCCESS) {
		mrc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
		while (mrc == MDB_SUCCESS && !stop &&
		       ((const uint8_t *)key.mv_data)[0] == (uint8_t)kind) {
			struct index_name name = { (const char *)key.mv_data + 1,
						   key.mv_size - 1 };

			if (val.mv_size != 8) {
				mrc = MDB_CORRUPTED;
				break;
			}
			stop = fn(name, get_le64(val.mv_data), ctx);
			mrc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
		}
		mdb_cursor_close(cur);
	}
	index_txn_end(idx, txn, false);
	if (stop)
		return stop;
	return mrc == MDB_SUCCESS || mrc == MDB_NOTFOUND
		       ? ATOLOG_OK : index_mdb_error(mrc, "reading the counts");
}

int index_time_range(struct index *idx, bool *any, int64_t *first, int64_t *last)
{
	MDB_val key, val;
	MDB_cursor *cur;
	MDB_txn *txn;
	int rc, mrc;

	*any = false;
	rc = index_txn_begin(idx, MDB_RDONLY, &txn);
	if (rc != ATOLOG_OK)
		return rc;
	mrc = mdb_cursor_open(txn, idx->dbi[DB_BY_TIME], &cur);
	if (mrc == MDB_SUCCESS) {
		mrc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
		if (mrc == MDB_SUCCESS && key.mv_size == TIME_KEY_SIZE)
			*first = time_key_time(key.mv_data);
		if (mrc == MDB_SUCCESS)
			mrc = mdb_cursor_get(cur, &key, &val, MDB_LAST);
		if (mrc == MDB_SUCCESS && key.mv_size == TIME_KEY_SIZE) {
			*last = time_key_time(key.mv_data);
			*any = true;
		}
		mdb_cursor_close(cur);
	}
	index_txn_end(idx, txn, false);
	return mrc == MDB_SUCCESS || mrc == MDB_NOTFOUND
		       ? ATOLOG_OK : index_mdb_error(mrc, "reading the time range");
}
