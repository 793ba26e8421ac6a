/*
 * query.c - atolog_bench_query: how long the seed's three read paths take
 * in atolog and in the seed's SQLite table, and whether that grows with
 * the store.
 *
 * For each size N (100k and 1M by default) one store of each kind is
 * built from the same N records (workload.h), with created_at spread over
 * SPAN_DAYS days and sessions of about SESSION_RECORDS turns (so that a
 * session is the same size in every store):
 *
 *   atolog  sync none, atolog_interaction_record_batch of BUILD_BATCH
 *           records; atolog makes its ids (UUID v7).
 *   SQLite  the seed's table and indexes, WAL, synchronous=OFF,
 *           SEEDDB_TXN_ROWS rows per transaction, uuid4 ids as the
 *           seed makes them; checkpointed at the end.
 *
 * Both are then reopened read-only and queried by one thread, with the
 * same random targets for both (a record's own id in each system):
 *
 *   get     atolog_interaction_get            SELECT * ... WHERE id = ?
 *   list    atolog_list_open(project, since,  SELECT * ... WHERE project = ?
 *           limit 50)                         AND created_at >= ? ORDER BY
 *                                             created_at DESC LIMIT 50
 *   replay  atolog_replay_open(session)       SELECT * ... WHERE session_id = ?
 *                                             ORDER BY created_at ASC
 *
 * A query's latency runs from the call to the last row read, every field
 * of every row touched (atolog's decoded strings, SQLite's column texts).
 * Each kind runs WARMUP_QUERIES untimed, then N_QUERIES timed; the stores
 * sit in the page cache (they were just written), so this is the warm,
 * CPU-bound case. Row counts are compared query by query: the two systems
 * must return the same number of rows.
 *
 * Backups, on the same stores after the queries: atolog_store_snapshot
 * (read-only handle, destination on the same filesystem, so sealed
 * segments are hard-linked) and atolog_store_verify of the snapshot,
 * beside SQLite's online backup API (what `sqlite3 .backup` runs) and
 * VACUUM INTO, each timed once, cold-started from the page cache's state
 * the queries left.
 *
 * Compaction, last (it changes the stores): retention of the oldest
 * RETENTION_PERCENT of the records (atolog_store_compact by age, beside
 * SQLite's DELETE of the same rows and the VACUUM that gives their space
 * back; both must remove the same count), then a merge of the whole
 * store (reopened with segments MERGE_GROWTH times as large, every old
 * one is small): MB/s of the segments rewritten.
 *
 * Output: a table on stdout (p50, p99 per size, the atolog/SQLite ratio,
 * and the growth from the smallest to the largest size), a CSV, and a PNG
 * chart of p50 latencies drawn by gnuplot when it is on $PATH.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atolog.h"
#include "bench.h"
#include "seeddb.h"
#include "workload.h"

#define QUERY_SEED 0x7175657279ull /* "query" */
#define SIZES_MAX 8
#define N_QUERIES 2000
#define QUICK_N_QUERIES 200
#define WARMUP_QUERIES 200
#define QUICK_WARMUP_QUERIES 20
#define SESSION_RECORDS 50        /* turns per session, in every size */
#define SPAN_DAYS 30
#define START_TIME "2026-03-01T00:00:00Z"
#define SINCE_MARGIN_DAYS 1       /* since T falls at least a day before the end */
#define LIST_LIMIT 50
#define BUILD_CHUNK 10000         /* records generated at a time */
#define BUILD_BATCH 1000          /* atolog records per record_batch */
#define ERR_SIZE 512
#define US_PER_DAY (86400ll * 1000000)
#define RETENTION_PERCENT 10      /* the oldest records compaction removes */
#define MERGE_GROWTH 4            /* segment size of the merge, times default */

static const long default_sizes[] = { 100000, 1000000 };
static const long quick_sizes[] = { 10000, 50000 };

enum kind { Q_GET, Q_LIST, Q_REPLAY, N_KINDS };
static const char *const kind_names[N_KINDS] = { "get", "list", "replay" };
enum system { SYS_ATOLOG, SYS_SQLITE, N_SYSTEMS };
static const char *const system_names[N_SYSTEMS] = { "atolog", "sqlite" };

static const char *const sql_queries[N_KINDS] = {
	"SELECT * FROM interactions WHERE id = ?",
	("SELECT * FROM interactions WHERE 1=1 AND project = ? AND created_at >= ? "
	 "ORDER BY created_at DESC LIMIT ?"),
	"SELECT * FROM interactions WHERE session_id = ? ORDER BY created_at ASC",
};

struct options {
	bool quick;
	long sizes[SIZES_MAX];
	int n_sizes;
	long n_queries, n_warmup;
	const char *dir, *csv, *png;
};

/* One store of each kind for one size, and the ids of its records. */
struct stores {
	long n;
	struct workload w;
	char dir[BENCH_PATH_SIZE];
	char atolog_dir[BENCH_PATH_SIZE];
	char db_path[BENCH_PATH_SIZE];
	char (*ids[N_SYSTEMS])[WORKLOAD_UUID_TEXT_SIZE]; /* record i's id */
	double build_seconds[N_SYSTEMS];
	uint64_t bytes[N_SYSTEMS];
	uint64_t json_bytes;
};

/* The random targets, the same for both systems. */
struct target {
	size_t record;                      /* get */
	uint32_t project;                   /* list */
	char since[ATOLOG_TIME_SEED_LEN];   /* list */
	char session[96];                   /* replay */
};

struct measure {
	long size;
	enum kind kind;
	enum system sys;
	bool ok;
	double p50_us, p99_us, mean_us;
	double rows_per_query;
};

/* ------------------------------------------------------------------------
 * Building.
 */

struct builder {
	struct stores *s;
	atolog_store *store;
	struct seeddb seed;
	uint64_t rng; /* uuid4 ids for SQLite */
};

static int build_atolog_chunk(struct builder *b, const struct workload_record *recs,
			      size_t first, size_t n)
{
	atolog_interaction in[BUILD_BATCH];
	atolog_interaction *out[BUILD_BATCH];
	int rcs[BUILD_BATCH];

	for (size_t k = 0; k < n; k += BUILD_BATCH) {
		size_t m = n - k < BUILD_BATCH ? n - k : BUILD_BATCH;
		int rc;

		for (size_t j = 0; j < m; j++)
			in[j] = recs[k + j].in;
		rc = atolog_interaction_record_batch(b->store, in, m, rcs, out);
		for (size_t j = 0; j < m; j++) {
			if (out[j])
				memcpy(b->s->ids[SYS_ATOLOG][first + k + j], out[j]->id,
				       WORKLOAD_UUID_TEXT_SIZE);
			atolog_interaction_free(out[j]);
		}
		if (rc != ATOLOG_OK) {
			fprintf(stderr, "query: atolog_interaction_record_batch: %s: %s\n",
				atolog_strerror(rc), atolog_errmsg(b->store));
			return rc;
		}
	}
	return 0;
}

static int build_sqlite_chunk(struct builder *b, const struct workload_record *recs,
			      size_t first, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		char *id = b->s->ids[SYS_SQLITE][first + k];

		workload_uuid4(&b->rng, id);
		if (seeddb_insert(&b->seed, &recs[k], id) != SQLITE_OK)
			return EIO;
	}
	return 0;
}

static uint64_t file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* Builds both stores of one size, chunk by chunk, timing each system's
 * share. */
static int build(struct stores *s, const char *base)
{
	struct workload_record *recs = calloc(BUILD_CHUNK, sizeof(*recs));
	struct builder b = { .s = s, .rng = QUERY_SEED ^ (uint64_t)s->n };
	atolog_options opts = { .sync = ATOLOG_SYNC_NONE };
	int64_t start_us;
	atolog_stats st;
	int rc;
	char wal[BENCH_PATH_SIZE];

	if (!recs)
		return ENOMEM;
	if ((rc = atolog_time_parse(START_TIME, &start_us)) != ATOLOG_OK) {
		free(recs);
		return rc;
	}
	workload_init(&s->w, QUERY_SEED, (size_t)s->n,
		      (size_t)s->n / SESSION_RECORDS ? (size_t)s->n / SESSION_RECORDS : 1,
		      start_us, SPAN_DAYS * US_PER_DAY);
	if ((rc = bench_fmt(s->dir, sizeof(s->dir), "%s/%ld", base, s->n)) ||
	    (rc = bench_fmt(s->atolog_dir, sizeof(s->atolog_dir), "%s/atolog",
			    s->dir)) ||
	    (rc = bench_fmt(s->db_path, sizeof(s->db_path), "%s/interactions.db",
			    s->dir)) ||
	    (rc = bench_fmt(wal, sizeof(wal), "%s-wal", s->db_path)) ||
	    (rc = bench_rmtree(s->dir)) || (rc = bench_mkdirs(s->dir))) {
		fprintf(stderr, "query: preparing %s/%ld: %s\n", base, s->n, strerror(rc));
		free(recs);
		return rc;
	}
	for (int k = 0; k < N_SYSTEMS; k++) {
		s->ids[k] = malloc((size_t)s->n * sizeof(*s->ids[k]));
		if (!s->ids[k]) {
			free(recs);
			return ENOMEM;
		}
	}
	rc = atolog_store_open(s->atolog_dir, &opts, &b.store);
	if (rc != ATOLOG_OK) {
		fprintf(stderr, "query: atolog_store_open %s: %s: %s\n", s->atolog_dir,
			atolog_strerror(rc), atolog_errmsg(NULL));
		free(recs);
		return rc;
	}
	if ((rc = seeddb_create(&b.seed, s->db_path, "query")) != SQLITE_OK) {
		atolog_store_close(b.store);
		free(recs);
		return EIO;
	}
	for (size_t first = 0; first < (size_t)s->n && rc == 0; first += BUILD_CHUNK) {
		size_t n = (size_t)s->n - first < BUILD_CHUNK ? (size_t)s->n - first :
								 BUILD_CHUNK;
		double t0, t1, t2;

		bench_progress("query: building %ld-record stores: %zu%%", s->n,
			       first * 100 / (size_t)s->n);
		if ((rc = workload_make_range(&s->w, first, n, recs)) != 0) {
			fprintf(stderr, "query: generating records: %s\n", strerror(rc));
			break;
		}
		for (size_t k = 0; k < n; k++)
			s->json_bytes += recs[k].json_bytes;
		t0 = bench_now();
		rc = build_atolog_chunk(&b, recs, first, n);
		t1 = bench_now();
		if (rc == 0)
			rc = build_sqlite_chunk(&b, recs, first, n);
		t2 = bench_now();
		s->build_seconds[SYS_ATOLOG] += t1 - t0;
		s->build_seconds[SYS_SQLITE] += t2 - t1;
		workload_free_range(recs, n);
	}
	bench_progress("query: closing the %ld-record stores", s->n);
	{
		double t0 = bench_now();
		int crc = seeddb_close(&b.seed);

		s->build_seconds[SYS_SQLITE] += bench_now() - t0;
		rc = rc ? rc : crc;
		s->bytes[SYS_SQLITE] = file_size(s->db_path) + file_size(wal);
	}
	{
		double t0 = bench_now();
		int crc = atolog_store_stats(b.store, &st);

		if (crc != ATOLOG_OK) {
			fprintf(stderr, "query: atolog_store_stats: %s: %s\n",
				atolog_strerror(crc), atolog_errmsg(b.store));
			rc = rc ? rc : crc;
		} else {
			if (st.n_records != (uint64_t)s->n && !rc) {
				fprintf(stderr, "query: atolog holds %" PRIu64 " records, "
					"not %ld\n", st.n_records, s->n);
				rc = ATOLOG_CORRUPT;
			}
		}
		crc = atolog_store_close(b.store);
		if (crc != ATOLOG_OK) {
			fprintf(stderr, "query: atolog_store_close: %s: %s\n",
				atolog_strerror(crc), atolog_errmsg(NULL));
			rc = rc ? rc : crc;
		}
		s->build_seconds[SYS_ATOLOG] += bench_now() - t0;
		/* On disk: the index file is sparse (its map size), so count
		 * allocated blocks, not st_size. */
		s->bytes[SYS_ATOLOG] = bench_disk_usage(s->atolog_dir);
	}
	bench_progress_done();
	free(recs);
	return rc;
}

/* ------------------------------------------------------------------------
 * Querying.
 */

/* Touches every field, as a caller turning rows into objects would. */
static uint64_t touch_interaction(const atolog_interaction *r)
{
	uint64_t sum = strlen(r->id) + strlen(r->prompt) + strlen(r->response) +
		       strlen(r->response_summary) + strlen(r->project) +
		       strlen(r->client) + strlen(r->session_id) +
		       strlen(r->context_pack) + (uint64_t)r->created_at;

	for (size_t k = 0; k < r->n_memories_used; k++)
		sum += strlen(r->memories_used[k]);
	for (size_t k = 0; k < r->n_chunks_used; k++)
		sum += strlen(r->chunks_used[k]);
	return sum;
}

static uint64_t touch_row(sqlite3_stmt *st)
{
	uint64_t sum = 0;
	int n = sqlite3_column_count(st);

	for (int c = 0; c < n; c++) {
		const unsigned char *t = sqlite3_column_text(st, c);

		sum += (uint64_t)sqlite3_column_bytes(st, c) + (t ? t[0] : 0);
	}
	return sum;
}

struct reader {
	atolog_store *store;
	sqlite3 *db;
	sqlite3_stmt *q[N_KINDS];
	uint64_t sink; /* keeps the touches from being optimised away */
	char err[ERR_SIZE];
};

/* Runs one query on atolog; *rows receives the row count. */
static int atolog_run_query(struct reader *r, const struct stores *s, enum kind k,
			const struct target *t, long *rows)
{
	atolog_interaction *one;
	atolog_iter *it = NULL;
	const atolog_interaction *rec;
	int rc;

	*rows = 0;
	if (k == Q_GET) {
		rc = atolog_interaction_get(r->store, s->ids[SYS_ATOLOG][t->record], &one);
		if (rc == ATOLOG_OK) {
			r->sink += touch_interaction(one);
			atolog_interaction_free(one);
			*rows = 1;
		} else if (rc == ATOLOG_NOTFOUND) {
			rc = ATOLOG_OK;
		}
		if (rc != ATOLOG_OK)
			bench_fmt(r->err, sizeof(r->err), "atolog_interaction_get: %s: %s",
				  atolog_strerror(rc), atolog_errmsg(r->store));
		return rc;
	}
	if (k == Q_LIST) {
		atolog_query q = { .project = workload_project_name(t->project),
				   .since = t->since, .limit = LIST_LIMIT };

		rc = atolog_list_open(r->store, &q, &it);
	} else {
		rc = atolog_replay_open(r->store, t->session, &it);
	}
	if (rc != ATOLOG_OK) {
		bench_fmt(r->err, sizeof(r->err), "atolog_%s_open: %s: %s",
			  k == Q_LIST ? "list" : "replay", atolog_strerror(rc),
			  atolog_errmsg(r->store));
		return rc;
	}
	while ((rc = atolog_iter_next(it, &rec)) == ATOLOG_OK) {
		r->sink += touch_interaction(rec);
		++*rows;
	}
	if (rc == ATOLOG_DONE)
		rc = ATOLOG_OK;
	else
		bench_fmt(r->err, sizeof(r->err), "atolog_iter_next: %s: %s",
			  atolog_strerror(rc), atolog_errmsg(r->store));
	atolog_iter_close(it);
	return rc;
}

static int sqlite_run_query(struct reader *r, const struct stores *s, enum kind k,
			const struct target *t, long *rows)
{
	sqlite3_stmt *st = r->q[k];
	int rc;

	*rows = 0;
	if (k == Q_GET) {
		sqlite3_bind_text(st, 1, s->ids[SYS_SQLITE][t->record], -1, SQLITE_STATIC);
	} else if (k == Q_LIST) {
		sqlite3_bind_text(st, 1, workload_project_name(t->project), -1,
				  SQLITE_STATIC);
		sqlite3_bind_text(st, 2, t->since, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 3, LIST_LIMIT);
	} else {
		sqlite3_bind_text(st, 1, t->session, -1, SQLITE_STATIC);
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		r->sink += touch_row(st);
		++*rows;
	}
	if (rc != SQLITE_DONE)
		bench_fmt(r->err, sizeof(r->err), "sqlite %s: %s", kind_names[k],
			  sqlite3_errmsg(r->db));
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE ? 0 : rc;
}

static int reader_open(struct reader *r, const struct stores *s)
{
	atolog_options ro = { .flags = ATOLOG_OPEN_READONLY };
	int rc = atolog_store_open(s->atolog_dir, &ro, &r->store);

	if (rc != ATOLOG_OK) {
		fprintf(stderr, "query: atolog_store_open (read-only) %s: %s: %s\n",
			s->atolog_dir, atolog_strerror(rc), atolog_errmsg(NULL));
		return rc;
	}
	rc = sqlite3_open_v2(s->db_path, &r->db, SQLITE_OPEN_READONLY, NULL);
	if (rc != SQLITE_OK) {
		fprintf(stderr, "query: sqlite open %s: %s\n", s->db_path,
			r->db ? sqlite3_errmsg(r->db) : sqlite3_errstr(rc));
		return rc;
	}
	for (int k = 0; k < N_KINDS; k++) {
		rc = sqlite3_prepare_v2(r->db, sql_queries[k], -1, &r->q[k], NULL);
		if (rc != SQLITE_OK) {
			fprintf(stderr, "query: sqlite prepare %s: %s\n", kind_names[k],
				sqlite3_errmsg(r->db));
			return rc;
		}
	}
	return 0;
}

static int reader_close(struct reader *r)
{
	int rc = 0;

	for (int k = 0; k < N_KINDS; k++)
		sqlite3_finalize(r->q[k]);
	if (r->db && sqlite3_close(r->db) != SQLITE_OK) {
		fprintf(stderr, "query: sqlite close: %s\n", sqlite3_errmsg(r->db));
		rc = EIO;
	}
	if (r->store) {
		int arc = atolog_store_close(r->store);

		if (arc != ATOLOG_OK) {
			fprintf(stderr, "query: atolog_store_close: %s: %s\n",
				atolog_strerror(arc), atolog_errmsg(NULL));
			rc = rc ? rc : arc;
		}
	}
	return rc;
}

static void make_targets(const struct stores *s, struct target *t, long n,
			 uint64_t seed)
{
	uint64_t rng = seed;
	int64_t since_span = SPAN_DAYS * US_PER_DAY - SINCE_MARGIN_DAYS * US_PER_DAY;

	for (long i = 0; i < n; i++) {
		int64_t since = s->w.start_us +
				(int64_t)(workload_rand(&rng) % (uint64_t)since_span);

		t[i].record = (size_t)(workload_rand(&rng) % (uint64_t)s->n);
		t[i].project = (uint32_t)(workload_rand(&rng) % WORKLOAD_PROJECTS);
		atolog_time_format_seed(since, t[i].since);
		workload_session_name(&s->w, (uint32_t)(workload_rand(&rng) %
							 s->w.n_sessions),
				      t[i].session, sizeof(t[i].session));
	}
}

/*
 * Runs every kind of query on both systems; rows[sys][i] keeps each
 * query's row count for the cross-check. Fills m[kind][sys].
 */
static int run_queries(const struct options *o, struct stores *s,
		       struct measure m[N_KINDS][N_SYSTEMS], long *mismatches)
{
	long total = o->n_warmup + o->n_queries;
	struct target *t = calloc((size_t)total, sizeof(*t));
	long *rows[N_SYSTEMS] = { calloc((size_t)total, sizeof(long)),
				  calloc((size_t)total, sizeof(long)) };
	struct reader r = { .store = NULL };
	int rc = 0;

	*mismatches = 0;
	if (!t || !rows[0] || !rows[1]) {
		rc = ENOMEM;
		goto out;
	}
	make_targets(s, t, total, QUERY_SEED ^ ((uint64_t)s->n << 8));
	if ((rc = reader_open(&r, s)) != 0)
		goto out;
	for (int k = 0; k < N_KINDS && !rc; k++) {
		for (int sys = 0; sys < N_SYSTEMS && !rc; sys++) {
			struct measure *mm = &m[k][sys];
			struct bench_lat lat;
			double sum_us = 0;
			long n_rows = 0;

			bench_progress("query: %ld records: %s on %s", s->n,
				       kind_names[k], system_names[sys]);
			*mm = (struct measure){ .size = s->n, .kind = (enum kind)k,
						.sys = (enum system)sys };
			if ((rc = bench_lat_init(&lat, (size_t)o->n_queries)) != 0)
				break;
			for (long i = 0; i < total; i++) {
				double t0 = bench_now(), us;

				rc = sys == SYS_ATOLOG ?
					     atolog_run_query(&r, s, (enum kind)k, &t[i], &rows[sys][i]) :
					     sqlite_run_query(&r, s, (enum kind)k, &t[i], &rows[sys][i]);
				us = (bench_now() - t0) * 1e6;
				if (rc) {
					fprintf(stderr, "query: %s\n", r.err);
					break;
				}
				if (i < o->n_warmup)
					continue;
				bench_lat_add(&lat, us);
				sum_us += us;
				n_rows += rows[sys][i];
			}
			bench_lat_sort(&lat);
			mm->ok = rc == 0 && lat.n > 0;
			mm->p50_us = bench_lat_pct(&lat, 50);
			mm->p99_us = bench_lat_pct(&lat, 99);
			mm->mean_us = lat.n ? sum_us / (double)lat.n : 0;
			mm->rows_per_query = lat.n ? (double)n_rows / (double)lat.n : 0;
			bench_lat_free(&lat);
		}
		for (long i = 0; i < total && !rc; i++) {
			if (rows[SYS_ATOLOG][i] == rows[SYS_SQLITE][i])
				continue;
			if (++*mismatches <= 3)
				fprintf(stderr, "query: %ld records: %s query %ld returned "
					"%ld rows from atolog, %ld from SQLite (record %zu, "
					"project %s, since %s, session %s)\n", s->n,
					kind_names[k], i, rows[SYS_ATOLOG][i],
					rows[SYS_SQLITE][i], t[i].record,
					workload_project_name(t[i].project), t[i].since,
					t[i].session);
		}
	}
	bench_progress_done();
	if (reader_close(&r) != 0 && !rc)
		rc = EIO;
out:
	if (rc == ENOMEM)
		fprintf(stderr, "query: out of memory\n");
	free(t);
	free(rows[0]);
	free(rows[1]);
	return rc;
}

/* ------------------------------------------------------------------------
 * Reports.
 */

static void size_name(long n, char *buf, size_t size)
{
	bench_format_count((uint64_t)n, buf, size);
}

/* ------------------------------------------------------------------------
 * Backups.
 */

enum backup_kind { BK_SNAPSHOT, BK_VERIFY, BK_SQLITE_BACKUP, BK_VACUUM_INTO, N_BACKUPS };
static const char *const backup_names[N_BACKUPS] = {
	"atolog snapshot", "atolog verify of it", "sqlite3 .backup", "VACUUM INTO",
};

struct backups {
	double seconds[N_BACKUPS];
	uint64_t bytes[N_BACKUPS]; /* what each read or wrote */
	bool ok[N_BACKUPS];
	uint64_t linked;
};

static int atolog_backups(const struct stores *s, struct backups *b)
{
	atolog_options ro = { .flags = ATOLOG_OPEN_READONLY };
	char snap[BENCH_PATH_SIZE];
	atolog_snapshot_info info;
	atolog_verify_report rep;
	atolog_store *st;
	double t0;
	int rc;

	if ((rc = bench_fmt(snap, sizeof(snap), "%s/snapshot", s->dir)) != 0 ||
	    (rc = atolog_store_open(s->atolog_dir, &ro, &st)) != ATOLOG_OK)
		return rc;
	t0 = bench_now();
	rc = atolog_store_snapshot(st, snap, NULL, NULL, &info);
	b->seconds[BK_SNAPSHOT] = bench_now() - t0;
	b->ok[BK_SNAPSHOT] = rc == ATOLOG_OK;
	b->bytes[BK_SNAPSHOT] = s->bytes[SYS_ATOLOG];
	b->linked = info.linked_segments;
	atolog_store_close(st);
	if (rc != ATOLOG_OK)
		return rc;
	if ((rc = atolog_store_open(snap, &ro, &st)) != ATOLOG_OK)
		return rc;
	t0 = bench_now();
	rc = atolog_store_verify(st, NULL, NULL, &rep);
	b->seconds[BK_VERIFY] = bench_now() - t0;
	b->ok[BK_VERIFY] = rc == ATOLOG_OK && rep.records == (uint64_t)s->n;
	b->bytes[BK_VERIFY] = rep.bytes;
	atolog_store_close(st);
	return rc;
}

static int sqlite_backups(const struct stores *s, struct backups *b)
{
	char to[BENCH_PATH_SIZE], sql[BENCH_PATH_SIZE + 32];
	sqlite3 *src = NULL, *dst = NULL;
	sqlite3_backup *bk;
	double t0;
	int rc;

	if ((rc = bench_fmt(to, sizeof(to), "%s/backup.db", s->dir)) != 0)
		return rc;
	rc = sqlite3_open_v2(s->db_path, &src, SQLITE_OPEN_READONLY, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_open(to, &dst);
	t0 = bench_now();
	bk = rc == SQLITE_OK ? sqlite3_backup_init(dst, "main", src, "main") : NULL;
	if (bk) {
		sqlite3_backup_step(bk, -1);
		rc = sqlite3_backup_finish(bk);
	}
	b->seconds[BK_SQLITE_BACKUP] = bench_now() - t0;
	b->ok[BK_SQLITE_BACKUP] = bk && rc == SQLITE_OK;
	b->bytes[BK_SQLITE_BACKUP] = s->bytes[SYS_SQLITE];
	sqlite3_close(dst);
	if ((rc = bench_fmt(to, sizeof(to), "%s/vacuum.db", s->dir)) != 0 ||
	    (rc = bench_fmt(sql, sizeof(sql), "VACUUM INTO '%s'", to)) != 0) {
		sqlite3_close(src);
		return rc;
	}
	t0 = bench_now();
	rc = sqlite3_exec(src, sql, NULL, NULL, NULL);
	b->seconds[BK_VACUUM_INTO] = bench_now() - t0;
	b->ok[BK_VACUUM_INTO] = rc == SQLITE_OK;
	b->bytes[BK_VACUUM_INTO] = s->bytes[SYS_SQLITE];
	sqlite3_close(src);
	return rc == SQLITE_OK ? 0 : EIO;
}

static void print_backups(const struct stores *s, const struct backups *b, int n)
{
	printf("\nbackups: seconds (MB/s of the store read)\n%-6s", "size");
	for (int k = 0; k < N_BACKUPS; k++)
		printf(" %24s", backup_names[k]);
	printf("\n");
	for (int i = 0; i < n; i++) {
		char sz[32];

		size_name(s[i].n, sz, sizeof(sz));
		printf("%-6s", sz);
		for (int k = 0; k < N_BACKUPS; k++) {
			char cell[48] = "failed";

			if (b[i].ok[k] && b[i].seconds[k] > 0)
				snprintf(cell, sizeof(cell), "%.2f (%.0f)", b[i].seconds[k],
					 (double)b[i].bytes[k] / 1e6 / b[i].seconds[k]);
			printf(" %24s", cell);
		}
		printf("   (%" PRIu64 " segments hard-linked)\n", b[i].linked);
	}
}

/* ------------------------------------------------------------------------
 * Compaction.
 */

enum compact_kind { CK_RETENTION, CK_MERGE, CK_SQL_DELETE, CK_SQL_VACUUM, N_COMPACTS };
static const char *const compact_names[N_COMPACTS] = {
	"atolog retention", "atolog merge all", "SQLite DELETE", "SQLite VACUUM",
};

struct compactions {
	double seconds[N_COMPACTS];
	uint64_t bytes[N_COMPACTS]; /* rewritten (SQLite: the file) */
	uint64_t removed[2];        /* atolog, SQLite */
	uint64_t pause_us[2];       /* atolog: writers held, retention, merge */
	bool ok[N_COMPACTS];
};

/* The created_at under which RETENTION_PERCENT of the records fall. */
static int64_t retention_cutoff(const struct stores *s)
{
	return s->w.start_us + SPAN_DAYS * US_PER_DAY / 100 * RETENTION_PERCENT;
}

static int atolog_compact_once(const struct stores *s, uint64_t segment_size,
			       const atolog_compact_options *o, double *seconds,
			       atolog_compact_report *r)
{
	atolog_options opts = { .sync = ATOLOG_SYNC_NONE, .segment_size = segment_size };
	atolog_store *st;
	double t0;
	int rc = atolog_store_open(s->atolog_dir, &opts, &st);

	if (rc != ATOLOG_OK)
		return rc;
	t0 = bench_now();
	rc = atolog_store_compact(st, o, r);
	*seconds = bench_now() - t0;
	atolog_store_close(st);
	return rc;
}

static int atolog_compactions(const struct stores *s, struct compactions *c)
{
	atolog_compact_options ret = { .flags = ATOLOG_COMPACT_APPLY | ATOLOG_COMPACT_BEFORE,
				       .before = retention_cutoff(s) };
	atolog_compact_options merge = { .flags = ATOLOG_COMPACT_APPLY };
	atolog_compact_report r;
	int rc = atolog_compact_once(s, ATOLOG_SEGMENT_SIZE_DEFAULT, &ret,
				     &c->seconds[CK_RETENTION], &r);

	c->ok[CK_RETENTION] = rc == ATOLOG_OK;
	if (rc != ATOLOG_OK)
		return rc;
	c->bytes[CK_RETENTION] = r.bytes_in;
	c->removed[0] = r.records_removed;
	c->pause_us[0] = r.pause_us;
	atolog_compact_report_free(&r);
	rc = atolog_compact_once(s, ATOLOG_SEGMENT_SIZE_DEFAULT * MERGE_GROWTH, &merge,
				 &c->seconds[CK_MERGE], &r);
	c->ok[CK_MERGE] = rc == ATOLOG_OK && r.records_removed == 0;
	c->bytes[CK_MERGE] = r.bytes_in;
	c->pause_us[1] = r.pause_us;
	atolog_compact_report_free(&r);
	return rc;
}

static int sqlite_compactions(const struct stores *s, struct compactions *c)
{
	char seed[ATOLOG_TIME_SEED_LEN], sql[128];
	sqlite3 *db = NULL;
	double t0;
	int rc = sqlite3_open(s->db_path, &db);

	atolog_time_format_seed(retention_cutoff(s), seed);
	snprintf(sql, sizeof(sql), "DELETE FROM interactions WHERE created_at < '%s'", seed);
	t0 = bench_now();
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	c->seconds[CK_SQL_DELETE] = bench_now() - t0;
	c->ok[CK_SQL_DELETE] = rc == SQLITE_OK;
	c->removed[1] = rc == SQLITE_OK ? (uint64_t)sqlite3_changes(db) : 0;
	c->bytes[CK_SQL_DELETE] = s->bytes[SYS_SQLITE];
	t0 = bench_now();
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "VACUUM", NULL, NULL, NULL);
	c->seconds[CK_SQL_VACUUM] = bench_now() - t0;
	c->ok[CK_SQL_VACUUM] = rc == SQLITE_OK;
	c->bytes[CK_SQL_VACUUM] = file_size(s->db_path);
	sqlite3_close(db);
	return rc == SQLITE_OK ? 0 : EIO;
}

static void print_compactions(const struct stores *s, const struct compactions *c, int n)
{
	printf("\ncompaction: seconds (MB/s of segments rewritten; SQLite: of the "
	       "file); retention removes the oldest %d%%\n%-6s", RETENTION_PERCENT, "size");
	for (int k = 0; k < N_COMPACTS; k++)
		printf(" %22s", compact_names[k]);
	printf("\n");
	for (int i = 0; i < n; i++) {
		char sz[32];

		size_name(s[i].n, sz, sizeof(sz));
		printf("%-6s", sz);
		for (int k = 0; k < N_COMPACTS; k++) {
			char cell[48] = "failed";

			if (c[i].ok[k] && c[i].seconds[k] > 0)
				snprintf(cell, sizeof(cell), "%.2f (%.0f)", c[i].seconds[k],
					 (double)c[i].bytes[k] / 1e6 / c[i].seconds[k]);
			printf(" %22s", cell);
		}
		printf("   removed: atolog %" PRIu64 ", SQLite %" PRIu64 "%s; writers held "
		       "%.1f ms, %.1f ms\n", c[i].removed[0], c[i].removed[1],
		       c[i].removed[0] == c[i].removed[1] ? "" : "  MISMATCH",
		       (double)c[i].pause_us[0] / 1e3, (double)c[i].pause_us[1] / 1e3);
	}
}

static void print_builds(const struct stores *s, int n)
{
	printf("\nstores (built with the same records; atolog sync none, "
	       "record_batch of %d; SQLite synchronous=OFF, %d-row transactions)\n",
	       BUILD_BATCH, SEEDDB_TXN_ROWS);
	printf("%-6s %9s %9s %12s %12s %11s %11s\n", "size", "sessions", "JSON MB",
	       "atolog r/s", "SQLite r/s", "atolog MB", "SQLite MB");
	for (int i = 0; i < n; i++) {
		char sz[32];

		size_name(s[i].n, sz, sizeof(sz));
		printf("%-6s %9zu %9.0f %12.0f %12.0f %11.0f %11.0f\n", sz,
		       s[i].w.n_sessions, (double)s[i].json_bytes / 1e6,
		       s[i].build_seconds[0] > 0 ? (double)s[i].n / s[i].build_seconds[0] : 0,
		       s[i].build_seconds[1] > 0 ? (double)s[i].n / s[i].build_seconds[1] : 0,
		       (double)s[i].bytes[0] / 1e6, (double)s[i].bytes[1] / 1e6);
	}
}

static void print_table(const struct options *o,
			struct measure (*m)[N_KINDS][N_SYSTEMS], int n)
{
	printf("\nqueries, latency in microseconds (%ld timed per kind after %ld "
	       "untimed; one thread; warm page cache)\n", o->n_queries, o->n_warmup);
	printf("%-6s %-7s %9s %9s %9s %9s %14s %10s\n", "size", "query",
	       "atolog p50", "p99", "SQLite p50", "p99", "atolog/SQLite", "rows/query");
	for (int k = 0; k < N_KINDS; k++) {
		for (int i = 0; i < n; i++) {
			const struct measure *a = &m[i][k][SYS_ATOLOG];
			const struct measure *q = &m[i][k][SYS_SQLITE];
			char sz[32], x[32] = "-";

			size_name(a->size, sz, sizeof(sz));
			if (a->ok && q->ok && q->p50_us > 0)
				snprintf(x, sizeof(x), "%.2fx", a->p50_us / q->p50_us);
			printf("%-6s %-7s %9.1f %9.1f %9.1f %9.1f %14s %10.1f%s\n", sz,
			       kind_names[k], a->p50_us, a->p99_us, q->p50_us, q->p99_us,
			       x, a->rows_per_query,
			       a->ok && q->ok ? "" : "  FAILED");
		}
	}
	printf("(atolog/SQLite is the ratio of p50 latencies: below 1 atolog is "
	       "faster)\n");
	if (n < 2)
		return;
	{
		char lo[32], hi[32];

		size_name(m[0][0][0].size, lo, sizeof(lo));
		size_name(m[n - 1][0][0].size, hi, sizeof(hi));
		printf("\ngrowth of p50 (p99) latency from %s to %s records "
		       "(1.00x = flat)\n", lo, hi);
	}
	for (int k = 0; k < N_KINDS; k++) {
		printf("  %-7s", kind_names[k]);
		for (int sys = 0; sys < N_SYSTEMS; sys++) {
			const struct measure *a = &m[0][k][sys], *b = &m[n - 1][k][sys];

			if (a->ok && b->ok && a->p50_us > 0 && a->p99_us > 0)
				printf("  %s %.2fx (%.2fx)", system_names[sys],
				       b->p50_us / a->p50_us, b->p99_us / a->p99_us);
			else
				printf("  %s -", system_names[sys]);
		}
		printf("\n");
	}
}

static int write_csv(const char *path, const struct stores *s,
		     struct measure (*m)[N_KINDS][N_SYSTEMS], int n, long n_queries)
{
	FILE *f = fopen(path, "w");

	if (!f) {
		fprintf(stderr, "query: cannot write %s: %s\n", path, strerror(errno));
		return errno;
	}
	fprintf(f, "system,size,query,ok,queries,p50_us,p99_us,mean_us,"
		"rows_per_query,build_seconds,store_bytes\n");
	for (int i = 0; i < n; i++) {
		for (int k = 0; k < N_KINDS; k++) {
			for (int sys = 0; sys < N_SYSTEMS; sys++) {
				const struct measure *a = &m[i][k][sys];

				fprintf(f, "%s,%ld,%s,%d,%ld,%.2f,%.2f,%.2f,%.2f,%.3f,%" PRIu64
					"\n", system_names[sys], a->size, kind_names[k], a->ok,
					n_queries, a->p50_us, a->p99_us, a->mean_us,
					a->rows_per_query, s[i].build_seconds[sys],
					s[i].bytes[sys]);
			}
		}
	}
	if (fclose(f) != 0) {
		fprintf(stderr, "query: writing %s: %s\n", path, strerror(errno));
		return errno;
	}
	return 0;
}

/* Grouped bars: one group per query kind, one bar per system and size. */
static int write_png(const struct options *o, const char *machine,
		     struct measure (*m)[N_KINDS][N_SYSTEMS], int n)
{
	static const char *const blues[] = { "#9ecae1", "#4292c6", "#08519c", "#08306b" };
	static const char *const reds[] = { "#fcae91", "#fb6a4a", "#cb181d", "#67000d" };
	char title[BENCH_MACHINE_LINE_SIZE];
	FILE *p;
	int rc;

	bench_gnuplot_text(title, sizeof(title), machine);
	p = bench_gnuplot_open("query", o->png, 1000, 600, &rc);
	if (!p)
		return rc;
	fprintf(p, "set title \"atolog vs SQLite: p50 query latency by store size "
		"(lower is better)\\n%s\" noenhanced\n", title);
	fprintf(p, "set style data histogram\nset style histogram cluster gap 1\n"
		"set style fill solid 0.9 border -1\nset boxwidth 0.9\n"
		"set logscale y\nset yrange [1:*]\nset grid ytics mytics\n"
		"set ylabel 'p50 latency, microseconds (log)'\n"
		"set key below horizontal noenhanced\nset xrange [-0.6:%d.6]\n", N_KINDS - 1);
	fprintf(p, "$data << EOD\nquery");
	for (int sys = 0; sys < N_SYSTEMS; sys++) {
		for (int i = 0; i < n; i++) {
			char sz[32];

			size_name(m[i][0][sys].size, sz, sizeof(sz));
			fprintf(p, " \"%s %s\"", sys ? "SQLite" : "atolog", sz);
		}
	}
	fprintf(p, "\n");
	for (int k = 0; k < N_KINDS; k++) {
		fprintf(p, "%s", kind_names[k]);
		for (int sys = 0; sys < N_SYSTEMS; sys++) {
			for (int i = 0; i < n; i++)
				fprintf(p, " %.2f", m[i][k][sys].ok ? m[i][k][sys].p50_us : 0);
		}
		fprintf(p, "\n");
	}
	fprintf(p, "EOD\nplot ");
	for (int sys = 0, col = 2; sys < N_SYSTEMS; sys++) {
		for (int i = 0; i < n; i++, col++) {
			const char *color = (sys ? reds : blues)[i < 4 ? i : 3];

			fprintf(p, "%s$data using %d:xtic(1) title columnheader(%d) "
				"lc rgb '%s'", col > 2 ? ", " : "", col, col, color);
		}
	}
	fprintf(p, "\n");
	return bench_gnuplot_close(p, "query", o->png);
}

/* ------------------------------------------------------------------------
 * Main.
 */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: atolog_bench_query [--quick] [--sizes N,N...] [--queries N]\n"
		"                          [--dir DIR] [--csv FILE] [--png FILE]\n"
		"  --quick      small stores and few queries, for smoke testing\n"
		"  --sizes      store sizes (default 100k,1M; k and M allowed)\n"
		"  --queries    timed queries per kind and system (default %d)\n"
		"  --dir        scratch directory for stores (default ./bench-tmp)\n"
		"  --csv, --png outputs (default bench-query.csv, bench-query.png)\n"
		"  --agents, --modes, --ids, --no-ids, --seconds are "
		"atolog_bench_ingest's and are ignored here\n", N_QUERIES);
}

static int parse_options(int argc, char **argv, struct options *o)
{
	enum { OPT_IGNORED = 256, OPT_IGNORED_ARG };
	static const struct option long_opts[] = {
		{ "quick", no_argument, NULL, 'q' },
		{ "sizes", required_argument, NULL, 's' },
		{ "queries", required_argument, NULL, 'n' },
		{ "dir", required_argument, NULL, 'd' },
		{ "csv", required_argument, NULL, 'c' },
		{ "png", required_argument, NULL, 'p' },
		{ "agents", required_argument, NULL, OPT_IGNORED_ARG },
		{ "modes", required_argument, NULL, OPT_IGNORED_ARG },
		{ "seconds", required_argument, NULL, OPT_IGNORED_ARG },
		{ "ids", no_argument, NULL, OPT_IGNORED },
		{ "no-ids", no_argument, NULL, OPT_IGNORED },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool sizes_given = false;
	int c;

	*o = (struct options){ .n_queries = 0, .dir = "bench-tmp",
			       .csv = "bench-query.csv", .png = "bench-query.png" };
	while ((c = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
		switch (c) {
		case 'q': o->quick = true; break;
		case 's':
			o->n_sizes = bench_parse_int_list(optarg, o->sizes, SIZES_MAX);
			if (o->n_sizes <= 0) {
				fprintf(stderr, "query: bad --sizes '%s'\n", optarg);
				return -1;
			}
			sizes_given = true;
			break;
		case 'n':
			o->n_queries = strtol(optarg, NULL, 10);
			if (o->n_queries <= 0) {
				fprintf(stderr, "query: bad --queries '%s'\n", optarg);
				return -1;
			}
			break;
		case 'd': o->dir = optarg; break;
		case 'c': o->csv = optarg; break;
		case 'p': o->png = optarg; break;
		case OPT_IGNORED:
		case OPT_IGNORED_ARG: break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return -1;
	}
	if (!sizes_given) {
		const long *src = o->quick ? quick_sizes : default_sizes;
		size_t n = o->quick ? sizeof(quick_sizes) / sizeof(*quick_sizes) :
				      sizeof(default_sizes) / sizeof(*default_sizes);

		memcpy(o->sizes, src, n * sizeof(*src));
		o->n_sizes = (int)n;
	}
	if (o->n_queries == 0)
		o->n_queries = o->quick ? QUICK_N_QUERIES : N_QUERIES;
	o->n_warmup = o->quick ? QUICK_WARMUP_QUERIES : WARMUP_QUERIES;
	return 0;
}

int main(int argc, char **argv)
{
	struct options o;
	struct stores *s;
	struct measure (*m)[N_KINDS][N_SYSTEMS];
	struct backups *bk;
	struct compactions *ck;
	char dir[BENCH_PATH_SIZE], machine[BENCH_MACHINE_LINE_SIZE];
	int failures = 0, n_done = 0, rc;
	long mismatches_total = 0;
	bool made_top;
	double t0 = bench_now();

	if (parse_options(argc, argv, &o) != 0)
		return 2;
	setvbuf(stdout, NULL, _IOLBF, 0);
	made_top = access(o.dir, F_OK) != 0;
	if ((rc = bench_fmt(dir, sizeof(dir), "%s/query-%ld", o.dir,
			    (long)getpid())) != 0 ||
	    (rc = bench_mkdirs(dir)) != 0) {
		fprintf(stderr, "query: cannot create %s: %s\n", dir, strerror(rc));
		return 3;
	}
	bench_machine_line(o.dir, machine, sizeof(machine));
	printf("atolog_bench_query\n%s\n", machine);
	s = calloc((size_t)o.n_sizes, sizeof(*s));
	m = calloc((size_t)o.n_sizes, sizeof(*m));
	bk = calloc((size_t)o.n_sizes, sizeof(*bk));
	ck = calloc((size_t)o.n_sizes, sizeof(*ck));
	if (!s || !m || !bk || !ck) {
		fprintf(stderr, "query: out of memory\n");
		return 3;
	}
	for (int i = 0; i < o.n_sizes; i++) {
		long mismatches = 0;

		s[i].n = o.sizes[i];
		rc = build(&s[i], dir);
		if (rc == 0)
			rc = run_queries(&o, &s[i], m[i], &mismatches);
		if (rc == 0) {
			bench_progress("query: %ld records: backups", s[i].n);
			rc = atolog_backups(&s[i], &bk[i]);
			if (rc == 0)
				rc = sqlite_backups(&s[i], &bk[i]);
			bench_progress_done();
		}
		if (rc == 0) {
			bench_progress("query: %ld records: compaction", s[i].n);
			rc = atolog_compactions(&s[i], &ck[i]);
			if (rc == 0)
				rc = sqlite_compactions(&s[i], &ck[i]);
			bench_progress_done();
			if (rc == 0 && ck[i].removed[0] != ck[i].removed[1])
				rc = EPROTO;
		}
		if (rc != 0) {
			fprintf(stderr, "query: %ld records: failed (%d)\n", s[i].n, rc);
			failures++;
		}
		mismatches_total += mismatches;
		bench_rmtree(s[i].dir);
		for (int k = 0; k < N_SYSTEMS; k++) {
			free(s[i].ids[k]);
			s[i].ids[k] = NULL;
		}
		n_done++;
	}
	print_builds(s, n_done);
	print_table(&o, m, n_done);
	print_backups(s, bk, n_done);
	print_compactions(s, ck, n_done);
	if (mismatches_total)
		printf("\nWARNING: %ld queries returned different row counts from "
		       "atolog and SQLite (see stderr)\n", mismatches_total);
	else
		printf("\nrow counts: atolog and SQLite agreed on every query\n");
	printf("\n");
	if (write_csv(o.csv, s, m, n_done, o.n_queries) == 0)
		printf("csv: %s\n", o.csv);
	if (write_png(&o, machine, m, n_done) != 0)
		failures++;
	printf("query bench took %.0f s%s\n", bench_now() - t0,
	       failures ? "; some sizes FAILED (see stderr)" : "");
	free(s);
	free(m);
	free(bk);
	free(ck);
	bench_rmtree(dir);
	if (made_top)
		rmdir(o.dir);
	return failures || mismatches_total ? 1 : 0;
}
