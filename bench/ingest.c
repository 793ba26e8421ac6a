/*
 * ingest.c - atolog_bench_ingest: how fast agents can record interactions,
 * in atolog, in the seed's SQLite table, and on the bare device.
 *
 * For each sync mode and agent count (1, 4, 16, 64 by default), every
 * agent is a thread that records its share of the same pre-generated
 * records (workload.h) one at a time and waits for each acknowledgement,
 * into three systems in turn:
 *
 *   atolog  a fresh store opened with .sync = always / batch / none;
 *           atolog_interaction_record(store, &in, NULL) per record (atolog
 *           makes the id and takes the current time, as the seed does).
 *   SQLite  the seed's interactions table and four indexes, WAL, one
 *           connection per agent with a busy timeout so agents queue on
 *           the write lock; a uuid4 id and the current time per record,
 *           the seed's INSERT as a prepared statement. Matched
 *           durability: always <-> synchronous=FULL, one row per
 *           transaction; batch <-> NORMAL, one row per transaction (NORMAL
 *           in WAL mode does not sync at commit: it is less durable than
 *           atolog's batch); none <-> OFF, each agent committing every
 *           SQLITE_NONE_TXN_ROWS of its rows (the seed's bulk path).
 *   limit   the device limit: the agents append records to one
 *           pre-allocated file in groups of the size atolog formed in the
 *           matching run (frames per fdatasync for always and batch,
 *           frames per write for none), of atolog's average frame size,
 *           with one fdatasync per group for always and batch and none for
 *           none. As in atolog, an agent leads: the first to find nobody
 *           writing waits for the group to fill (or for every agent still
 *           running), writes and syncs it and wakes the others. Group
 *           commit without encoding and without an index.
 *
 * A run takes records until the pool or the per-mode cap is exhausted or
 * RUN_SECONDS have passed, whichever is first; records/s is acknowledged
 * records over the time from the start to the last acknowledgement
 * (opening and closing the store are not timed). MB/s counts each record's
 * size as the seed's JSON body (the same bytes for every system). Latency
 * is per record, from the call to its return; for SQLite in none mode the
 * call that begins or commits a transaction carries that cost.
 *
 * The --ids section records IDS_RECORDS records in sync none with one
 * agent twice: with ids atolog generates (UUID v7, time-ordered) and with
 * random UUID v4 ids the bench supplies, to price time-ordered ids in the
 * id index.
 *
 * Output: a table on stdout, a CSV (one row per system, mode and agent
 * count) and a PNG chart drawn by gnuplot when it is on $PATH.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "atolog.h"
#include "bench.h"
#include "seeddb.h"
#include "workload.h"

#define INGEST_SEED 0x61746f6c6f67ull /* "atolog" */
#define POOL_RECORDS 300000       /* records generated once, before timing */
#define QUICK_POOL_RECORDS 20000
#define RUN_SECONDS 3.0           /* a run stops taking records after this */
#define QUICK_RUN_SECONDS 0.3
#define CAP_ALWAYS 100000         /* records per run, at most, per mode */
#define CAP_BATCH 200000
#define CAP_NONE 300000
#define IDS_RECORDS 100000
#define QUICK_IDS_RECORDS 10000
#define IDS_REPEATS 2             /* best of, alternating v7 and v4 */
#define SQLITE_BUSY_TIMEOUT_MS 10000
#define SQLITE_NONE_TXN_ROWS 1000
#define LIMIT_PREALLOC_BYTES ATOLOG_SEGMENT_SIZE_DEFAULT /* as atolog's segments */
#define LIMIT_IOV_MAX 512         /* iovecs per pwritev, as atolog */
#define AGENTS_MAX 1024
#define AGENT_COUNTS_MAX 16
#define ERR_SIZE 512
#define TARGET_LIMIT_SHARE 0.70   /* durable ingest vs the device limit */
#define TARGET_ALWAYS_AGENTS 16
#define TARGET_ALWAYS_VS_SQLITE 10.0
#define TARGET_NONE_RPS 100000.0
#define TARGET_NONE_VS_SQLITE 6.0

static const long default_agents[] = { 1, 4, 16, 64 };
static const long quick_agents[] = { 1, 4 };

enum system { SYS_ATOLOG, SYS_SQLITE, SYS_LIMIT, N_SYSTEMS };
static const char *const system_names[N_SYSTEMS] = { "atolog", "sqlite", "limit" };

struct mode {
	const char *name;
	atolog_sync_mode sync;
	const char *sqlite_sync;  /* PRAGMA synchronous */
	size_t sqlite_txn_rows;   /* rows per transaction and agent */
	bool limit_sync;          /* the device limit fdatasyncs each group */
	size_t cap;               /* records per run, at most */
};

static const struct mode all_modes[] = {
	{ "always", ATOLOG_SYNC_ALWAYS, "FULL", 1, true, CAP_ALWAYS },
	{ "batch", ATOLOG_SYNC_BATCH, "NORMAL", 1, true, CAP_BATCH },
	{ "none", ATOLOG_SYNC_NONE, "OFF", SQLITE_NONE_TXN_ROWS, false, CAP_NONE },
};
#define N_MODES (sizeof(all_modes) / sizeof(all_modes[0]))

struct options {
	bool quick;
	long agents[AGENT_COUNTS_MAX];
	int n_agents;
	bool mode_on[N_MODES];
	bool matrix; /* the mode x agents runs */
	bool ids;    /* the v7 vs v4 section */
	double seconds;
	const char *dir;
	const char *csv;
	const char *png;
};

/* One measured run: what the table, the CSV and the chart show. */
struct result {
	const char *system; /* "atolog", "sqlite", "limit", "atolog-v7"... */
	const struct mode *mode;
	long agents;
	bool ok;
	size_t records;
	uint64_t json_bytes;
	double seconds;
	double rps, mbps, p50_ms, p99_ms;
	/* atolog's own counters (atolog runs), or the limit's */
	bool has_groups;
	atolog_stats st;
	double frame_bytes;       /* log bytes per record */
	double frames_per_group;  /* per write(2) */
	double frames_per_sync;   /* per fdatasync (0 for none) */
};

/* ------------------------------------------------------------------------
 * The device limit: group commit of given sizes, led by the agents.
 */

struct limit_req {
	struct limit_req *next;
	bool done;
	int rc;
};

struct limit {
	int fd;
	bool sync;
	size_t frame_bytes;
	double group_target; /* frames per group, from atolog's run */
	uint8_t *frame;      /* frame_bytes of record text */
	pthread_mutex_t lock;
	pthread_cond_t work, acked;
	struct limit_req *head, *tail;
	size_t n_queued;
	long n_active;       /* agents that have not finished */
	bool leading;        /* an agent is writing a group */
	uint64_t offset, reserved;
	uint64_t groups, frames, syncs;
	char err[ERR_SIZE];
};

/* ------------------------------------------------------------------------
 * A run: the agents and what they share.
 */

struct run {
	enum system sys;
	const struct mode *mode;
	long n_agents;
	struct workload_record *recs;
	size_t n_recs;                 /* the records this run may take */
	char (*v4_ids)[WORKLOAD_UUID_TEXT_SIZE]; /* atolog: ids to supply, or NULL */
	double start, deadline;
	pthread_barrier_t barrier;
	atolog_store *store;           /* atolog */
	char db_path[BENCH_PATH_SIZE]; /* SQLite */
	struct limit *limit;           /* device limit */
};

struct agent {
	struct run *run;
	long index;
	pthread_t tid;
	size_t n_done;
	uint64_t json_bytes;
	double t_end;
	struct bench_lat lat;
	int rc;
	char err[ERR_SIZE];
	/* SQLite */
	sqlite3 *db;
	sqlite3_stmt *ins, *begin, *commit;
	size_t rows_in_txn;
	uint64_t rng;
};

static void agent_fail(struct agent *a, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void agent_fail(struct agent *a, int rc, const char *fmt, ...)
{
	va_list ap;

	if (a->rc)
		return;
	a->rc = rc ? rc : -1;
	va_start(ap, fmt);
	vsnprintf(a->err, sizeof(a->err), fmt, ap);
	va_end(ap);
}

/* ---- atolog ---- */

static int atolog_record_one(struct agent *a, size_t i)
{
	struct run *r = a->run;
	const atolog_interaction *in = &r->recs[i].in;
	atolog_interaction with_id;
	int rc;

	if (r->v4_ids) {
		with_id = *in;
		memcpy(with_id.id, r->v4_ids[i], sizeof(with_id.id));
		in = &with_id;
	}
	rc = atolog_interaction_record(r->store, in, NULL);
	if (rc != ATOLOG_OK)
		agent_fail(a, rc, "atolog_interaction_record: %s: %s",
			   atolog_strerror(rc), atolog_errmsg(r->store));
	return rc;
}

/* ---- SQLite ---- */

static int sqlite_fail(struct agent *a, int rc, const char *what)
{
	agent_fail(a, rc, "sqlite %s: %s (%d)", what,
		   a->db ? sqlite3_errmsg(a->db) : sqlite3_errstr(rc), rc);
	return rc;
}

static int sqlite_step_done(struct agent *a, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return sqlite_fail(a, rc, what);
	return 0;
}

/* Opens this agent's connection (before the clock starts). */
static int sqlite_agent_open(struct agent *a)
{
	const struct mode *m = a->run->mode;
	char pragma[64];
	char *msg = NULL;
	uint64_t seed;
	int rc;

	if (getrandom(&seed, sizeof(seed), 0) != (ssize_t)sizeof(seed))
		seed = (uint64_t)a->index * 0x9E3779B97F4A7C15ull ^ (uint64_t)time(NULL);
	a->rng = seed;
	rc = sqlite3_open_v2(a->run->db_path, &a->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK)
		return sqlite_fail(a, rc, "open");
	sqlite3_busy_timeout(a->db, SQLITE_BUSY_TIMEOUT_MS);
	snprintf(pragma, sizeof(pragma), "PRAGMA synchronous=%s", m->sqlite_sync);
	rc = sqlite3_exec(a->db, pragma, NULL, NULL, &msg);
	if (rc != SQLITE_OK) {
		agent_fail(a, rc, "sqlite %s: %s", pragma, msg ? msg : "?");
		sqlite3_free(msg);
		return rc;
	}
	rc = sqlite3_prepare_v2(a->db, seeddb_insert_sql, -1, &a->ins, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(a->db, "BEGIN IMMEDIATE", -1, &a->begin, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(a->db, "COMMIT", -1, &a->commit, NULL);
	if (rc != SQLITE_OK)
		return sqlite_fail(a, rc, "prepare");
	return 0;
}

static void sqlite_agent_close(struct agent *a)
{
	sqlite3_finalize(a->ins);
	sqlite3_finalize(a->begin);
	sqlite3_finalize(a->commit);
	if (a->db && sqlite3_close(a->db) != SQLITE_OK && !a->rc)
		agent_fail(a, EIO, "sqlite close: %s", sqlite3_errmsg(a->db));
	a->db = NULL;
}

/* The seed's record_interaction(): a uuid4, the time now, one INSERT;
 * in none mode inside this agent's open transaction. */
static int sqlite_record_one(struct agent *a, size_t i)
{
	const struct workload_record *w = &a->run->recs[i];
	size_t txn_rows = a->run->mode->sqlite_txn_rows;
	sqlite3_stmt *st = a->ins;
	char id[WORKLOAD_UUID_TEXT_SIZE], now[ATOLOG_TIME_SEED_LEN];
	struct timespec ts;
	int rc;

	if (txn_rows > 1 && a->rows_in_txn == 0 &&
	    sqlite_step_done(a, a->begin, "BEGIN IMMEDIATE") != 0)
		return a->rc;
	workload_uuid4(&a->rng, id);
	clock_gettime(CLOCK_REALTIME, &ts);
	atolog_time_format_seed((int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000, now);
	seeddb_bind(st, w, id, now);
	rc = sqlite_step_done(a, st, "INSERT");
	sqlite3_clear_bindings(st);
	if (rc != 0)
		return rc;
	if (txn_rows > 1 && ++a->rows_in_txn == txn_rows) {
		a->rows_in_txn = 0;
		return sqlite_step_done(a, a->commit, "COMMIT");
	}
	return 0;
}

/* Commits what a none-mode agent still holds when its run ends. */
static int sqlite_agent_finish(struct agent *a)
{
	double t0;
	int rc;

	if (a->rows_in_txn == 0)
		return 0;
	t0 = bench_now();
	rc = sqlite_step_done(a, a->commit, "COMMIT");
	a->rows_in_txn = 0;
	a->t_end = bench_now();
	if (a->lat.n) /* the last record was acknowledged only now */
		a->lat.us[a->lat.n - 1] += (a->t_end - t0) * 1e6;
	return rc;
}

/* Creates the database the agents will share: schema, WAL. */
static int sqlite_create(const char *path, char *err, size_t err_size)
{
	sqlite3 *db = NULL;
	char *msg = NULL;
	int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE |
				 SQLITE_OPEN_CREATE, NULL);

	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, &msg);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, seeddb_schema, NULL, NULL, &msg);
	if (rc != SQLITE_OK)
		bench_fmt(err, err_size, "sqlite creating %s: %s", path,
			 msg ? msg : db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
	sqlite3_free(msg);
	if (sqlite3_close(db) != SQLITE_OK && rc == SQLITE_OK) {
		bench_fmt(err, err_size, "sqlite closing %s", path);
		rc = SQLITE_ERROR;
	}
	return rc;
}

/* ---- the device limit ---- */

static int pwritev_all(int fd, struct iovec *iov, int n, uint64_t off)
{
	while (n > 0) {
		ssize_t w = pwritev(fd, iov, n, (off_t)off);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return errno;
		}
		off += (uint64_t)w;
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

/* Writes k frames at the end of the file (growing the reservation as
 * atolog does with its segments), then syncs if asked. */
static int limit_write_group(struct limit *l, size_t k)
{
	struct iovec iov[LIMIT_IOV_MAX];
	uint64_t total = (uint64_t)k * l->frame_bytes;
	int rc;

	while (l->offset + total > l->reserved) {
		/* Best effort, like atolog: ENOSPC would show at the write. */
		(void)fallocate(l->fd, 0, (off_t)l->reserved, (off_t)LIMIT_PREALLOC_BYTES);
		l->reserved += LIMIT_PREALLOC_BYTES;
	}
	while (k > 0) {
		int n = k > LIMIT_IOV_MAX ? LIMIT_IOV_MAX : (int)k;

		for (int j = 0; j < n; j++)
			iov[j] = (struct iovec){ l->frame, l->frame_bytes };
		rc = pwritev_all(l->fd, iov, n, l->offset);
		if (rc != 0) {
			snprintf(l->err, sizeof(l->err), "limit: pwritev: %s", strerror(rc));
			return rc;
		}
		l->offset += (uint64_t)n * l->frame_bytes;
		k -= (size_t)n;
	}
	if (l->sync) {
		if (fdatasync(l->fd) != 0) {
			rc = errno;
			snprintf(l->err, sizeof(l->err), "limit: fdatasync: %s", strerror(rc));
			return rc;
		}
		l->syncs++;
	}
	return 0;
}

/* Frames in the next group: alternating floor and ceil so that groups
 * average group_target. */
static size_t limit_target(const struct limit *l)
{
	double g = l->group_target;
	size_t target = (size_t)((double)(l->groups + 1) * g + 0.5) -
			(size_t)((double)l->groups * g + 0.5);

	return target < 1 ? 1 : target;
}

/* One group, led by the calling agent, with the lock held: it waits for
 * the target's worth of agents (or every agent still running), writes and
 * syncs them, and wakes them. */
static void limit_lead(struct limit *l)
{
	size_t target = limit_target(l), k;
	struct limit_req *take, *last;
	int rc;

	l->leading = true;
	while (l->n_queued < target && (long)l->n_queued < l->n_active)
		pthread_cond_wait(&l->work, &l->lock);
	take = last = l->head;
	for (k = 1; k < target && k < l->n_queued; k++)
		last = last->next;
	l->head = last->next;
	if (!l->head)
		l->tail = NULL;
	last->next = NULL;
	l->n_queued -= k;
	pthread_mutex_unlock(&l->lock);
	rc = limit_write_group(l, k);
	pthread_mutex_lock(&l->lock);
	for (struct limit_req *q = take; q; q = q->next) {
		q->rc = rc;
		q->done = true;
	}
	l->groups++;
	l->frames += k;
	l->leading = false;
	pthread_cond_broadcast(&l->acked);
}

static int limit_submit(struct agent *a)
{
	struct limit *l = a->run->limit;
	struct limit_req req = { NULL, false, 0 };

	pthread_mutex_lock(&l->lock);
	if (l->tail)
		l->tail->next = &req;
	else
		l->head = &req;
	l->tail = &req;
	l->n_queued++;
	pthread_cond_signal(&l->work);
	while (!req.done) {
		if (!l->leading)
			limit_lead(l);
		else
			pthread_cond_wait(&l->acked, &l->lock);
	}
	pthread_mutex_unlock(&l->lock);
	if (req.rc)
		agent_fail(a, req.rc, "%s", l->err);
	return req.rc;
}

static void limit_agent_exit(struct limit *l)
{
	pthread_mutex_lock(&l->lock);
	l->n_active--;
	pthread_cond_signal(&l->work);
	pthread_mutex_unlock(&l->lock);
}

/* ---- agents ---- */

static int record_one(struct agent *a, size_t i)
{
	switch (a->run->sys) {
	case SYS_ATOLOG:
		return atolog_record_one(a, i);
	case SYS_SQLITE:
		return sqlite_record_one(a, i);
	default:
		return limit_submit(a);
	}
}

static void *agent_main(void *arg)
{
	struct agent *a = arg;
	struct run *r = a->run;

	if (r->sys == SYS_SQLITE)
		sqlite_agent_open(a);
	pthread_barrier_wait(&r->barrier);
	a->t_end = r->start;
	for (size_t i = (size_t)a->index; !a->rc && i < r->n_recs;
	     i += (size_t)r->n_agents) {
		double t0 = bench_now(), t1;

		if (t0 >= r->deadline)
			break;
		if (record_one(a, i) != 0)
			break;
		t1 = bench_now();
		if (bench_lat_add(&a->lat, (t1 - t0) * 1e6) != 0) {
			agent_fail(a, ENOMEM, "latency samples");
			break;
		}
		a->n_done++;
		a->json_bytes += r->recs[i].json_bytes;
		a->t_end = t1;
	}
	if (r->sys == SYS_SQLITE) {
		if (!a->rc)
			sqlite_agent_finish(a);
		sqlite_agent_close(a);
	}
	if (r->sys == SYS_LIMIT)
		limit_agent_exit(r->limit);
	return NULL;
}

/*
 * Starts the agents, releases them together, waits for them, and fills
 * the rate and latency part of *res. Returns 0, or the first agent's
 * error (printed).
 */
static int run_agents(struct run *r, double seconds, struct result *res)
{
	struct agent *agents = calloc((size_t)r->n_agents, sizeof(*agents));
	struct bench_lat all;
	double end = 0;
	long started = 0;
	int rc = 0;

	if (!agents || bench_lat_init(&all, r->n_recs) != 0) {
		free(agents);
		fprintf(stderr, "ingest: out of memory\n");
		return ENOMEM;
	}
	if (pthread_barrier_init(&r->barrier, NULL, (unsigned)r->n_agents + 1) != 0) {
		free(agents);
		bench_lat_free(&all);
		fprintf(stderr, "ingest: pthread_barrier_init failed\n");
		return EAGAIN;
	}
	for (long k = 0; k < r->n_agents; k++) {
		struct agent *a = &agents[k];

		a->run = r;
		a->index = k;
		if (bench_lat_init(&a->lat, r->n_recs / (size_t)r->n_agents + 1) != 0 ||
		    pthread_create(&a->tid, NULL, agent_main, a) != 0)
			break;
		started++;
	}
	if (started < r->n_agents) {
		/* The barrier counts every agent: it cannot be passed now. */
		fprintf(stderr, "ingest: could not start %ld agent threads\n",
			r->n_agents);
		exit(3);
	}
	r->start = bench_now();
	r->deadline = r->start + seconds;
	pthread_barrier_wait(&r->barrier);
	for (long k = 0; k < r->n_agents; k++)
		pthread_join(agents[k].tid, NULL);
	pthread_barrier_destroy(&r->barrier);

	*res = (struct result){ .mode = r->mode, .agents = r->n_agents };
	for (long k = 0; k < r->n_agents; k++) {
		struct agent *a = &agents[k];

		if (a->rc && !rc) {
			rc = a->rc;
			fprintf(stderr, "ingest: %s %s %ld agents: agent %ld: %s\n",
				system_names[r->sys], r->mode->name, r->n_agents, k,
				a->err);
		}
		res->records += a->n_done;
		res->json_bytes += a->json_bytes;
		if (a->t_end > end)
			end = a->t_end;
		if (bench_lat_merge(&all, &a->lat) != 0 && !rc)
			rc = ENOMEM;
		bench_lat_free(&a->lat);
	}
	free(agents);
	res->seconds = end - r->start;
	if (res->seconds > 0) {
		res->rps = (double)res->records / res->seconds;
		res->mbps = (double)res->json_bytes / res->seconds / 1e6;
	}
	bench_lat_sort(&all);
	res->p50_ms = bench_lat_pct(&all, 50) / 1e3;
	res->p99_ms = bench_lat_pct(&all, 99) / 1e3;
	bench_lat_free(&all);
	res->ok = rc == 0 && res->records > 0;
	return rc;
}

/* ------------------------------------------------------------------------
 * The three systems, one run each.
 */

/* Leaves nothing of earlier runs in the page cache's dirty lists. */
static void settle(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY);

	if (fd >= 0) {
		(void)syncfs(fd);
		close(fd);
	}
}

static int fresh_dir(const char *path)
{
	int rc = bench_rmtree(path);

	if (rc == 0)
		rc = bench_mkdirs(path);
	if (rc != 0)
		fprintf(stderr, "ingest: preparing %s: %s\n", path, strerror(rc));
	return rc;
}

static int run_atolog(const char *dir, const struct mode *m, long agents,
		      struct workload_record *recs, size_t n,
		      char (*v4_ids)[WORKLOAD_UUID_TEXT_SIZE], double seconds,
		      struct result *res)
{
	char path[BENCH_PATH_SIZE];
	atolog_options opts = { .sync = m->sync };
	struct run r = { .sys = SYS_ATOLOG, .mode = m, .n_agents = agents,
			 .recs = recs, .n_recs = n, .v4_ids = v4_ids };
	int rc, crc;

	if ((rc = bench_fmt(path, sizeof(path), "%s/atolog", dir)) != 0 ||
	    (rc = fresh_dir(path)) != 0)
		return rc;
	rc = atolog_store_open(path, &opts, &r.store);
	if (rc != ATOLOG_OK) {
		fprintf(stderr, "ingest: atolog_store_open %s: %s: %s\n", path,
			atolog_strerror(rc), atolog_errmsg(NULL));
		return rc;
	}
	settle(dir);
	rc = run_agents(&r, seconds, res);
	res->system = system_names[SYS_ATOLOG];
	crc = atolog_store_stats(r.store, &res->st);
	if (crc != ATOLOG_OK) {
		fprintf(stderr, "ingest: atolog_store_stats: %s: %s\n",
			atolog_strerror(crc), atolog_errmsg(r.store));
		rc = rc ? rc : crc;
	} else {
		const atolog_stats *st = &res->st;

		res->has_groups = true;
		if (st->n_records)
			res->frame_bytes = (double)st->log_bytes / (double)st->n_records;
		if (st->commit_groups)
			res->frames_per_group = (double)st->commit_frames /
						(double)st->commit_groups;
		if (st->log_syncs && m->limit_sync)
			res->frames_per_sync = (double)st->commit_frames /
					       (double)st->log_syncs;
		if (st->n_records != res->records) {
			fprintf(stderr, "ingest: atolog %s %ld agents: %zu acknowledged "
				"but the store holds %" PRIu64 "\n", m->name, agents,
				res->records, st->n_records);
			rc = rc ? rc : ATOLOG_CORRUPT;
		}
	}
	crc = atolog_store_close(r.store);
	if (crc != ATOLOG_OK) {
		fprintf(stderr, "ingest: atolog_store_close: %s: %s\n",
			atolog_strerror(crc), atolog_errmsg(NULL));
		rc = rc ? rc : crc;
	}
	res->ok = rc == 0 && res->records > 0;
	bench_rmtree(path);
	return rc;
}

static int run_sqlite(const char *dir, const struct mode *m, long agents,
		      struct workload_record *recs, size_t n, double seconds,
		      struct result *res)
{
	char path[BENCH_PATH_SIZE], err[ERR_SIZE];
	struct run r = { .sys = SYS_SQLITE, .mode = m, .n_agents = agents,
			 .recs = recs, .n_recs = n };
	int rc;

	if ((rc = bench_fmt(path, sizeof(path), "%s/sqlite", dir)) != 0 ||
	    (rc = fresh_dir(path)) != 0 ||
	    (rc = bench_fmt(r.db_path, sizeof(r.db_path), "%s/interactions.db",
			    path)) != 0)
		return rc;
	if (sqlite_create(r.db_path, err, sizeof(err)) != SQLITE_OK) {
		fprintf(stderr, "ingest: %s\n", err);
		return EIO;
	}
	settle(dir);
	rc = run_agents(&r, seconds, res);
	res->system = system_names[SYS_SQLITE];
	bench_rmtree(path);
	return rc;
}

static int run_limit(const char *dir, const struct mode *m, long agents,
		     struct workload_record *recs, size_t n, double seconds,
		     const struct result *ato, struct result *res)
{
	char path[BENCH_PATH_SIZE];
	struct limit l = { .sync = m->limit_sync, .n_active = agents };
	struct run r = { .sys = SYS_LIMIT, .mode = m, .n_agents = agents,
			 .recs = recs, .n_recs = n, .limit = &l };
	double g = m->limit_sync ? ato->frames_per_sync : ato->frames_per_group;
	int rc;

	l.frame_bytes = (size_t)(ato->frame_bytes + 0.5);
	l.group_target = g >= 1 ? g : 1;
	l.frame = malloc(l.frame_bytes);
	if (!l.frame)
		return ENOMEM;
	/* The bytes of a record's text, so the file holds something real. */
	for (size_t k = 0; k < l.frame_bytes; k++)
		l.frame[k] = (uint8_t)recs[0].in.response[k % strlen(recs[0].in.response)];
	if ((rc = bench_fmt(path, sizeof(path), "%s/limit", dir)) != 0 ||
	    (rc = fresh_dir(path)) != 0 ||
	    (rc = bench_fmt(path, sizeof(path), "%s/limit/append.log", dir)) != 0) {
		free(l.frame);
		return rc;
	}
	l.fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (l.fd < 0) {
		rc = errno;
		fprintf(stderr, "ingest: limit: open %s: %s\n", path, strerror(rc));
		free(l.frame);
		return rc;
	}
	pthread_mutex_init(&l.lock, NULL);
	pthread_cond_init(&l.work, NULL);
	pthread_cond_init(&l.acked, NULL);
	settle(dir);
	rc = run_agents(&r, seconds, res);
	res->system = system_names[SYS_LIMIT];
	res->has_groups = true;
	res->frame_bytes = (double)l.frame_bytes;
	res->st.commit_groups = l.groups;
	res->st.commit_frames = l.frames;
	res->st.log_syncs = l.syncs;
	res->st.log_bytes = l.offset;
	if (l.groups)
		res->frames_per_group = (double)l.frames / (double)l.groups;
	if (l.syncs)
		res->frames_per_sync = (double)l.frames / (double)l.syncs;
	close(l.fd);
	pthread_cond_destroy(&l.acked);
	pthread_cond_destroy(&l.work);
	pthread_mutex_destroy(&l.lock);
	free(l.frame);
	if (bench_fmt(path, sizeof(path), "%s/limit", dir) == 0)
		bench_rmtree(path);
	return rc;
}

/* ------------------------------------------------------------------------
 * Reports.
 */

static void print_result_row(FILE *f, const struct result *r)
{
	char fpg[32] = "-", kbg[32] = "-", fps[32] = "-";

	if (r->has_groups && r->frames_per_group > 0) {
		snprintf(fpg, sizeof(fpg), "%.1f", r->frames_per_group);
		snprintf(kbg, sizeof(kbg), "%.1f",
			 r->frames_per_group * r->frame_bytes / 1024);
	}
	if (r->has_groups && r->frames_per_sync > 0)
		snprintf(fps, sizeof(fps), "%.1f", r->frames_per_sync);
	fprintf(f, "%-9s %-6s %6ld %8zu %7.2f %10.0f %7.1f %9.3f %9.3f  %8s %9s %8s%s\n",
		r->system, r->mode->name, r->agents, r->records, r->seconds,
		r->rps, r->mbps, r->p50_ms, r->p99_ms, fpg, kbg, fps,
		r->ok ? "" : "  FAILED");
}

static void print_results(const struct result *res, size_t n)
{
	printf("\nevery run (latency per record from call to return; groups: "
	       "frames per write, KB per write, frames per fdatasync)\n");
	printf("%-9s %-6s %6s %8s %7s %10s %7s %9s %9s  %8s %9s %8s\n", "system",
	       "mode", "agents", "records", "seconds", "records/s", "MB/s",
	       "p50 ms", "p99 ms", "fr/group", "KB/group", "fr/sync");
	for (size_t i = 0; i < n; i++)
		print_result_row(stdout, &res[i]);
}

static const struct result *find_result(const struct result *res, size_t n,
					const char *system, const char *mode,
					long agents)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(res[i].system, system) == 0 &&
		    strcmp(res[i].mode->name, mode) == 0 && res[i].agents == agents &&
		    res[i].ok)
			return &res[i];
	}
	return NULL;
}

static double ratio(const struct result *a, const struct result *b)
{
	return a && b && b->rps > 0 ? a->rps / b->rps : 0;
}

static void fmt_rps(const struct result *r, char *buf, size_t size)
{
	if (r)
		snprintf(buf, size, "%.0f", r->rps);
	else
		snprintf(buf, size, "-");
}

static void fmt_ratio(double x, char *buf, size_t size)
{
	if (x > 0)
		snprintf(buf, size, "%.2fx", x);
	else
		snprintf(buf, size, "-");
}

static void fmt_lat(const struct result *r, char *buf, size_t size)
{
	if (r)
		snprintf(buf, size, "%.3f/%.3f", r->p50_ms, r->p99_ms);
	else
		snprintf(buf, size, "-");
}

static void print_comparison(const struct options *o, const struct result *res,
			     size_t n)
{
	printf("\ningest, records/s (SQLite: always=FULL, batch=NORMAL, "
	       "none=OFF in %d-row transactions; limit: append + fdatasync per "
	       "atolog group)\n", SQLITE_NONE_TXN_ROWS);
	printf("%-6s %6s %10s %10s %10s %13s %12s  %-17s %-17s %-17s\n", "mode",
	       "agents", "atolog", "SQLite", "limit", "atolog/SQLite",
	       "atolog/limit", "atolog p50/p99 ms", "SQLite p50/p99 ms",
	       "limit p50/p99 ms");
	for (size_t mi = 0; mi < N_MODES; mi++) {
		if (!o->mode_on[mi])
			continue;
		for (int ai = 0; ai < o->n_agents; ai++) {
			const char *mode = all_modes[mi].name;
			long ag = o->agents[ai];
			const struct result *a = find_result(res, n, "atolog", mode, ag);
			const struct result *s = find_result(res, n, "sqlite", mode, ag);
			const struct result *l = find_result(res, n, "limit", mode, ag);
			char ra[32], rs[32], rl[32], xs[32], xl[32];
			char la[48], ls[48], ll[48];

			fmt_rps(a, ra, sizeof(ra));
			fmt_rps(s, rs, sizeof(rs));
			fmt_rps(l, rl, sizeof(rl));
			fmt_ratio(ratio(a, s), xs, sizeof(xs));
			fmt_ratio(ratio(a, l), xl, sizeof(xl));
			fmt_lat(a, la, sizeof(la));
			fmt_lat(s, ls, sizeof(ls));
			fmt_lat(l, ll, sizeof(ll));
			printf("%-6s %6ld %10s %10s %10s %13s %12s  %-17s %-17s %-17s\n",
			       mode, ag, ra, rs, rl, xs, xl, la, ls, ll);
		}
	}
}

static void print_ids(const struct result *v7, const struct result *v4)
{
	printf("\nids: sync none, 1 agent, %zu records\n", v7->records);
	printf("  generated UUID v7 (time-ordered): %10.0f records/s  p50 %.3f ms  "
	       "p99 %.3f ms\n", v7->rps, v7->p50_ms, v7->p99_ms);
	printf("  supplied random UUID v4:          %10.0f records/s  p50 %.3f ms  "
	       "p99 %.3f ms\n", v4->rps, v4->p50_ms, v4->p99_ms);
	if (v4->rps > 0)
		printf("  v7 / v4: %.2fx\n", v7->rps / v4->rps);
}

static void check_target(const char *what, bool measured, bool met,
			 const char *detail)
{
	printf("  %-58s %-6s %s\n", what,
	       !measured ? "n/a" : met ? "met" : "MISSED", detail);
}

static void print_targets(const struct options *o, const struct result *res,
			  size_t n)
{
	char detail[512];
	size_t len = 0;
	bool measured = false, met = true;

	printf("\ntargets\n");
	detail[0] = '\0';
	for (size_t mi = 0; mi < 2; mi++) { /* always, batch */
		for (int ai = 0; ai < o->n_agents && o->mode_on[mi]; ai++) {
			const char *mode = all_modes[mi].name;
			const struct result *a = find_result(res, n, "atolog", mode,
							     o->agents[ai]);
			const struct result *l = find_result(res, n, "limit", mode,
							     o->agents[ai]);
			double x = ratio(a, l);

			if (!a || !l)
				continue;
			measured = true;
			met &= x >= TARGET_LIMIT_SHARE;
			if (len < sizeof(detail))
				len += (size_t)snprintf(detail + len, sizeof(detail) - len,
						       "%s%s/%ld %.0f%%", len ? ", " : "",
						       mode, o->agents[ai], 100 * x);
		}
	}
	check_target("durable ingest (always, batch) >= 70% of the device limit",
		     measured, met, detail);

	{
		const struct result *a = find_result(res, n, "atolog", "always",
						     TARGET_ALWAYS_AGENTS);
		const struct result *s = find_result(res, n, "sqlite", "always",
						     TARGET_ALWAYS_AGENTS);
		const struct result *l = find_result(res, n, "limit", "always",
						     TARGET_ALWAYS_AGENTS);
		double x = ratio(a, s);

		snprintf(detail, sizeof(detail), "%.1fx (device limit at atolog's "
			 "group size: %.1fx)", x, ratio(l, s));
		check_target("always, 16 agents: >= 10x SQLite FULL (16 connections)",
			     a && s, x >= TARGET_ALWAYS_VS_SQLITE, detail);
	}
	{
		const struct result *a = find_result(res, n, "atolog", "none", 1);
		const struct result *s = find_result(res, n, "sqlite", "none", 1);
		const struct result *l = find_result(res, n, "limit", "none", 1);
		double x = ratio(a, s);

		snprintf(detail, sizeof(detail), "%.0f records/s (device limit with "
			 "group commit of the same sizes: %.0f)", a ? a->rps : 0,
			 l ? l->rps : 0);
		check_target("none, 1 agent: >= 100,000 records/s", a != NULL,
			     a && a->rps >= TARGET_NONE_RPS, detail);
		snprintf(detail, sizeof(detail), "%.1fx", x);
		check_target("none, 1 agent: >= 6x SQLite OFF (1,000-row transactions)",
			     a && s, x >= TARGET_NONE_VS_SQLITE, detail);
	}
}

static int write_csv(const char *path, const struct result *res, size_t n)
{
	FILE *f = fopen(path, "w");

	if (!f) {
		fprintf(stderr, "ingest: cannot write %s: %s\n", path, strerror(errno));
		return errno;
	}
	fprintf(f, "system,mode,agents,ok,records,seconds,records_per_s,mb_per_s,"
		"p50_ms,p99_ms,commit_groups,commit_frames,log_syncs,index_commits,"
		"log_bytes,frame_bytes,frames_per_group,bytes_per_group,"
		"frames_per_sync\n");
	for (size_t i = 0; i < n; i++) {
		const struct result *r = &res[i];

		fprintf(f, "%s,%s,%ld,%d,%zu,%.4f,%.1f,%.3f,%.4f,%.4f,%" PRIu64 ",%"
			PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%.1f,%.2f,%.0f,%.2f\n",
			r->system, r->mode->name, r->agents, r->ok, r->records, r->seconds,
			r->rps, r->mbps, r->p50_ms, r->p99_ms, r->st.commit_groups,
			r->st.commit_frames, r->st.log_syncs, r->st.index_commits,
			r->st.log_bytes, r->frame_bytes, r->frames_per_group,
			r->frames_per_group * r->frame_bytes, r->frames_per_sync);
	}
	if (fclose(f) != 0) {
		fprintf(stderr, "ingest: writing %s: %s\n", path, strerror(errno));
		return errno;
	}
	return 0;
}

/* A chart: one panel per mode, records/s against agents, log-log. */
static int write_png(const struct options *o, const char *machine,
		     const struct result *res, size_t n)
{
	static const char *const colors[N_SYSTEMS] = { "#1f77b4", "#d62728", "#7f7f7f" };
	static const char *const titles[N_SYSTEMS] = { "atolog", "SQLite (seed table)",
						       "device limit" };
	char title[BENCH_MACHINE_LINE_SIZE];
	int n_panels = 0, rc;
	double ymin = 0, ymax = 0;
	FILE *p;

	for (size_t i = 0; i < n; i++) {
		if (!res[i].ok || res[i].rps <= 0 || strchr(res[i].system, '-'))
			continue;
		if (ymin == 0 || res[i].rps < ymin)
			ymin = res[i].rps;
		if (res[i].rps > ymax)
			ymax = res[i].rps;
	}
	for (size_t mi = 0; mi < N_MODES; mi++)
		n_panels += o->mode_on[mi];
	if (ymax <= 0 || n_panels == 0)
		return 0;
	bench_gnuplot_text(title, sizeof(title), machine);
	p = bench_gnuplot_open("ingest", o->png, 480 * n_panels + 80, 560, &rc);
	if (!p)
		return rc;
	fprintf(p, "set multiplot layout 1,%d title \"atolog ingest: records/s by "
		"agents (log-log)\\n%s\" noenhanced\n", n_panels, title);
	fprintf(p, "set logscale xy\nset grid xtics ytics mytics\n"
		"set xlabel 'agents (threads, one record in flight each)'\n"
		"set ylabel 'records/s'\nset key top left opaque box\n"
		"set format y '%%.0s%%c'\nset yrange [%g:%g]\nset xrange [0.8:%g]\n",
		ymin / 2, ymax * 10, (double)o->agents[o->n_agents - 1] * 1.25);
	fprintf(p, "set xtics (");
	for (int ai = 0; ai < o->n_agents; ai++)
		fprintf(p, "%s'%ld' %ld", ai ? ", " : "", o->agents[ai], o->agents[ai]);
	fprintf(p, ")\n");
	for (size_t mi = 0; mi < N_MODES; mi++) {
		const struct mode *m = &all_modes[mi];
		bool first = true;

		if (!o->mode_on[mi])
			continue;
		fprintf(p, "set title 'sync %s (SQLite synchronous=%s%s)' noenhanced\n", m->name,
			m->sqlite_sync, m->sqlite_txn_rows > 1 ? ", 1,000-row txns" : "");
		fprintf(p, "plot ");
		for (int s = 0; s < N_SYSTEMS; s++) {
			fprintf(p, "%s'-' using 1:2 with linespoints lw 2 pt 7 ps 1.2 "
				"lc rgb '%s' title '%s'", first ? "" : ", ", colors[s],
				titles[s]);
			first = false;
		}
		fprintf(p, "\n");
		for (int s = 0; s < N_SYSTEMS; s++) {
			bool any = false;

			for (int ai = 0; ai < o->n_agents; ai++) {
				const struct result *r = find_result(res, n, system_names[s],
								     m->name, o->agents[ai]);

				if (r && r->rps > 0) {
					fprintf(p, "%ld %.1f\n", o->agents[ai], r->rps);
					any = true;
				}
			}
			if (!any) /* gnuplot needs a point; this one is off the chart */
				fprintf(p, "1 NaN\n");
			fprintf(p, "e\n");
		}
	}
	fprintf(p, "unset multiplot\n");
	return bench_gnuplot_close(p, "ingest", o->png);
}

/* ------------------------------------------------------------------------
 * Main.
 */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: atolog_bench_ingest [--quick] [--agents N,N...] "
		"[--modes always,batch,none]\n"
		"                           [--ids | --no-ids] [--seconds S] "
		"[--dir DIR] [--csv FILE] [--png FILE]\n"
		"  --quick      a small matrix for smoke testing\n"
		"  --agents     agent counts (default 1,4,16,64)\n"
		"  --modes      sync modes (default always,batch,none)\n"
		"  --ids        only the v7-vs-v4 id section; --no-ids skips it\n"
		"  --seconds    longest run (default %.0f)\n"
		"  --dir        scratch directory for stores (default ./bench-tmp)\n"
		"  --csv, --png outputs (default bench-ingest.csv, bench-ingest.png)\n"
		"  --sizes, --queries are atolog_bench_query's and are ignored here\n",
		RUN_SECONDS);
}

static int parse_modes(const char *text, bool on[N_MODES])
{
	char buf[128], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", text);
	for (size_t i = 0; i < N_MODES; i++)
		on[i] = false;
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		size_t i;

		for (i = 0; i < N_MODES; i++) {
			if (strcmp(t, all_modes[i].name) == 0)
				break;
		}
		if (i == N_MODES)
			return -1;
		on[i] = true;
	}
	return 0;
}

static int parse_options(int argc, char **argv, struct options *o)
{
	enum { OPT_IDS = 256, OPT_NO_IDS, OPT_IGNORED };
	static const struct option long_opts[] = {
		{ "quick", no_argument, NULL, 'q' },
		{ "agents", required_argument, NULL, 'a' },
		{ "modes", required_argument, NULL, 'm' },
		{ "ids", no_argument, NULL, OPT_IDS },
		{ "no-ids", no_argument, NULL, OPT_NO_IDS },
		{ "seconds", required_argument, NULL, 's' },
		{ "dir", required_argument, NULL, 'd' },
		{ "csv", required_argument, NULL, 'c' },
		{ "png", required_argument, NULL, 'p' },
		{ "sizes", required_argument, NULL, OPT_IGNORED },
		{ "queries", required_argument, NULL, OPT_IGNORED },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool agents_given = false, ids_only = false, no_ids = false;
	int c;

	*o = (struct options){ .matrix = true, .ids = true, .seconds = 0,
			       .dir = "bench-tmp", .csv = "bench-ingest.csv",
			       .png = "bench-ingest.png" };
	for (size_t i = 0; i < N_MODES; i++)
		o->mode_on[i] = true;
	while ((c = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
		switch (c) {
		case 'q': o->quick = true; break;
		case 'a':
			o->n_agents = bench_parse_int_list(optarg, o->agents,
							   AGENT_COUNTS_MAX);
			if (o->n_agents <= 0) {
				fprintf(stderr, "ingest: bad --agents '%s'\n", optarg);
				return -1;
			}
			for (int i = 0; i < o->n_agents; i++) {
				if (o->agents[i] > AGENTS_MAX) {
					fprintf(stderr, "ingest: at most %d agents\n", AGENTS_MAX);
					return -1;
				}
			}
			agents_given = true;
			break;
		case 'm':
			if (parse_modes(optarg, o->mode_on) != 0) {
				fprintf(stderr, "ingest: bad --modes '%s'\n", optarg);
				return -1;
			}
			break;
		case OPT_IDS: ids_only = true; break;
		case OPT_NO_IDS: no_ids = true; break;
		case 's':
			o->seconds = strtod(optarg, NULL);
			if (o->seconds <= 0) {
				fprintf(stderr, "ingest: bad --seconds '%s'\n", optarg);
				return -1;
			}
			break;
		case 'd': o->dir = optarg; break;
		case 'c': o->csv = optarg; break;
		case 'p': o->png = optarg; break;
		case OPT_IGNORED: break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return -1;
	}
	if (!agents_given) {
		const long *src = o->quick ? quick_agents : default_agents;
		size_t n = o->quick ? sizeof(quick_agents) / sizeof(*quick_agents) :
				      sizeof(default_agents) / sizeof(*default_agents);

		memcpy(o->agents, src, n * sizeof(*src));
		o->n_agents = (int)n;
	}
	if (o->seconds == 0)
		o->seconds = o->quick ? QUICK_RUN_SECONDS : RUN_SECONDS;
	if (ids_only)
		o->matrix = false;
	if (no_ids)
		o->ids = false;
	return 0;
}

static void print_workload(const struct workload_record *recs, size_t n)
{
	uint64_t p = 0, resp = 0, sum = 0, ctx = 0, json = 0, refs = 0;

	for (size_t i = 0; i < n; i++) {
		p += strlen(recs[i].in.prompt);
		resp += strlen(recs[i].in.response);
		sum += strlen(recs[i].in.response_summary);
		ctx += strlen(recs[i].in.context_pack);
		json += recs[i].json_bytes;
		refs += recs[i].in.n_memories_used + recs[i].in.n_chunks_used;
	}
	printf("workload: %zu records pre-generated; average prompt %.0f B, response "
	       "%.0f B, summary %.0f B, context_pack %.0f B, %.1f refs, JSON body "
	       "%.0f B; %d projects, %d sessions, %d clients\n", n,
	       (double)p / (double)n, (double)resp / (double)n, (double)sum / (double)n,
	       (double)ctx / (double)n, (double)refs / (double)n,
	       (double)json / (double)n, WORKLOAD_PROJECTS, WORKLOAD_SESSIONS_DEFAULT,
	       WORKLOAD_CLIENTS);
}

/* The mode x agents matrix. Returns the number of results added. */
static size_t run_matrix(const struct options *o, const char *dir,
			 struct workload_record *recs, size_t n_pool,
			 struct result *res, int *failures)
{
	size_t n = 0;

	for (size_t mi = 0; mi < N_MODES; mi++) {
		const struct mode *m = &all_modes[mi];
		size_t cap = m->cap < n_pool ? m->cap : n_pool;

		if (!o->mode_on[mi])
			continue;
		for (int ai = 0; ai < o->n_agents; ai++) {
			long ag = o->agents[ai];
			struct result *a = &res[n];

			bench_progress("ingest: %s, %ld agents: atolog", m->name, ag);
			if (run_atolog(dir, m, ag, recs, cap, NULL, o->seconds, a) != 0)
				++*failures;
			n++;
			bench_progress("ingest: %s, %ld agents: device limit", m->name, ag);
			if (a->ok && a->frame_bytes > 0) {
				if (run_limit(dir, m, ag, recs, cap, o->seconds, a, &res[n]) != 0)
					++*failures;
				n++;
			}
			bench_progress("ingest: %s, %ld agents: SQLite", m->name, ag);
			if (run_sqlite(dir, m, ag, recs, cap, o->seconds, &res[n]) != 0)
				++*failures;
			n++;
		}
	}
	bench_progress_done();
	return n;
}

/* atolog none, 1 agent: generated v7 ids against supplied v4 ids. */
static size_t run_ids(const struct options *o, const char *dir,
		      struct workload_record *recs, size_t n_pool,
		      struct result *res, int *failures)
{
	const struct mode *none = &all_modes[2];
	size_t n_ids = o->quick ? QUICK_IDS_RECORDS : IDS_RECORDS;
	char (*ids)[WORKLOAD_UUID_TEXT_SIZE];
	struct result best[2] = { { .rps = 0 }, { .rps = 0 } };
	uint64_t rng = INGEST_SEED ^ 0x4444;

	if (n_ids > n_pool)
		n_ids = n_pool;
	ids = malloc(n_ids * sizeof(*ids));
	if (!ids) {
		fprintf(stderr, "ingest: out of memory for ids\n");
		++*failures;
		return 0;
	}
	for (size_t i = 0; i < n_ids; i++)
		workload_uuid4(&rng, ids[i]);
	for (int rep = 0; rep < IDS_REPEATS; rep++) {
		for (int v = 0; v < 2; v++) {
			struct result r;

			bench_progress("ingest: ids, %s, round %d of %d",
				       v ? "v4" : "v7", rep + 1, IDS_REPEATS);
			/* No time limit: the same count both ways. */
			if (run_atolog(dir, none, 1, recs, n_ids, v ? ids : NULL,
				       1e9, &r) != 0)
				++*failures;
			if (r.ok && r.rps > best[v].rps)
				best[v] = r;
		}
	}
	bench_progress_done();
	free(ids);
	best[0].system = "atolog-v7";
	best[1].system = "atolog-v4";
	best[0].mode = best[1].mode = none;
	best[0].agents = best[1].agents = 1;
	res[0] = best[0];
	res[1] = best[1];
	return 2;
}

int main(int argc, char **argv)
{
	struct options o;
	struct workload w;
	struct workload_record *recs;
	struct result *res;
	char dir[BENCH_PATH_SIZE], machine[BENCH_MACHINE_LINE_SIZE];
	size_t n_pool, n_res = 0, max_res;
	bool made_top;
	int failures = 0, rc;
	double t0 = bench_now();

	if (parse_options(argc, argv, &o) != 0)
		return 2;
	setvbuf(stdout, NULL, _IOLBF, 0);
	made_top = access(o.dir, F_OK) != 0;
	if ((rc = bench_fmt(dir, sizeof(dir), "%s/ingest-%ld", o.dir,
			    (long)getpid())) != 0 ||
	    (rc = bench_mkdirs(dir)) != 0) {
		fprintf(stderr, "ingest: cannot create %s: %s\n", dir, strerror(rc));
		return 3;
	}
	bench_machine_line(o.dir, machine, sizeof(machine));
	printf("atolog_bench_ingest\n%s\n", machine);
	if (strstr(machine, "tmpfs"))
		printf("warning: the scratch directory is on tmpfs: fdatasync is free "
		       "there; use --dir on a real disk\n");

	n_pool = o.quick ? QUICK_POOL_RECORDS : POOL_RECORDS;
	recs = calloc(n_pool, sizeof(*recs));
	max_res = (size_t)o.n_agents * N_MODES * N_SYSTEMS + 2;
	res = calloc(max_res, sizeof(*res));
	if (!recs || !res) {
		fprintf(stderr, "ingest: out of memory\n");
		return 3;
	}
	bench_progress("ingest: generating %zu records", n_pool);
	workload_init(&w, INGEST_SEED, n_pool, WORKLOAD_SESSIONS_DEFAULT, 0,
		      (int64_t)30 * 86400 * 1000000);
	if ((rc = workload_make_range(&w, 0, n_pool, recs)) != 0) {
		fprintf(stderr, "ingest: generating records: %s\n", strerror(rc));
		return 3;
	}
	/* Ingest takes the time now, as the seed's capture does. */
	for (size_t i = 0; i < n_pool; i++)
		recs[i].in.has_created_at = 0;
	bench_progress_done();
	print_workload(recs, n_pool);

	if (o.matrix)
		n_res += run_matrix(&o, dir, recs, n_pool, res + n_res, &failures);
	if (o.ids)
		n_res += run_ids(&o, dir, recs, n_pool, res + n_res, &failures);

	if (o.matrix) {
		print_results(res, n_res);
		print_comparison(&o, res, n_res);
	}
	if (o.ids && n_res >= 2)
		print_ids(&res[n_res - 2], &res[n_res - 1]);
	if (o.matrix)
		print_targets(&o, res, n_res);
	printf("\n");
	if (write_csv(o.csv, res, n_res) == 0)
		printf("csv: %s\n", o.csv);
	if (o.matrix && write_png(&o, machine, res, n_res) != 0)
		failures++;
	printf("ingest bench took %.0f s%s\n", bench_now() - t0,
	       failures ? "; some runs FAILED (see stderr)" : "");

	workload_free_range(recs, n_pool);
	free(recs);
	free(res);
	bench_rmtree(dir);
	if (made_top)
		rmdir(o.dir);
	return failures ? 1 : 0;
}
