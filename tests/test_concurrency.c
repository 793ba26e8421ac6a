/*
 * test_concurrency.c - many writers, readers beside them, and the promises
 * of group commit.
 *
 *  - 16 threads record at once (single records and batches, across segment
 *    rolls) in each sync mode; a reader thread gets every id the moment
 *    its record call returns (read-your-writes); afterwards ids and
 *    sequence numbers are unique and random queries match the model;
 *  - record_batch with invalid items: each is reported, the valid ones are
 *    stored, and only they;
 *  - overload: with the log held and a one-request queue, a caller times
 *    out with ATOLOG_TIMEDOUT and nothing written, another waits and gets
 *    through, nothing acknowledged is lost;
 *  - a reader process sees each record as soon as the writer's call
 *    returned, with no lock between them;
 *  - the index never names bytes the log could lose: a writer child is
 *    killed and every byte after its last fdatasync thrown away, as a power
 *    cut would; a read-only open must still serve everything it indexes.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "engine.h"
#include "model.h"

#define N_THREADS 16
#define PER_THREAD 300 /* 4,800 frames: more than a chunk of the recent set */
#define BATCH 10
#define N_QUERIES 800

static const char *const projects[] = { "p0", "p1", "p2", "p3", "p4" };
static const char *const clients[] = { "c0", "c1", "c2" };

static atolog_store *open_store(const char *dir, const atolog_options *o)
{
	atolog_store *s = NULL;

	CHECK_OK(atolog_store_open(dir, o, &s), NULL);
	if (!s)
		exit(check_report("test_concurrency"));
	return s;
}

/* ------------------------------------------------------------------------
 * Many writers and a reader.
 */

/* Ids just acknowledged, for the reader thread to fetch at once. */
struct handoff {
	pthread_mutex_t lock;
	pthread_cond_t ready;
	char ids[256][ATOLOG_ID_TEXT_LEN + 1];
	size_t head, tail;
	int writers_left;
	long fetched, missing;
};

struct writer_arg {
	atolog_store *store;
	int thread;
	struct handoff *handoff;
	atolog_interaction *stored[PER_THREAD];
	int failures;
};

static void handoff_put(struct handoff *h, const char *id)
{
	pthread_mutex_lock(&h->lock);
	if (h->tail - h->head < 256) {
		memcpy(h->ids[h->tail % 256], id, ATOLOG_ID_TEXT_LEN + 1);
		h->tail++;
		pthread_cond_signal(&h->ready);
	}
	pthread_mutex_unlock(&h->lock);
}

static void fill_item(atolog_interaction *in, char *prompt, size_t size,
		      char *session, int thread, int i)
{
	snprintf(prompt, size, "thread %d record %d", thread, i);
	snprintf(session, 32, "t%02d-%d", thread, i / 25);
	memset(in, 0, sizeof(*in));
	in->prompt = prompt;
	in->session_id = session;
	in->project = projects[(thread + i) % 5];
	in->client = clients[i % 3];
	in->context_pack = "{\"k\":[1,2,3]}";
}

static void *writer_main(void *arg)
{
	struct writer_arg *w = arg;
	char prompts[BATCH][64], sessions[BATCH][32];
	atolog_interaction items[BATCH];
	int rcs[BATCH];

	for (int i = 0; i < PER_THREAD;) {
		/* Odd threads record in batches, even threads one by one. */
		int n = w->thread % 2 ? BATCH : 1;

		for (int k = 0; k < n; k++)
			fill_item(&items[k], prompts[k], sizeof(prompts[k]),
				  sessions[k], w->thread, i + k);
		if (n == 1)
			rcs[0] = atolog_interaction_record(w->store, &items[0],
							   &w->stored[i]);
		else
			atolog_interaction_record_batch(w->store, items, (size_t)n,
							rcs, &w->stored[i]);
		for (int k = 0; k < n; k++, i++) {
			if (rcs[k] != ATOLOG_OK || !w->stored[i]) {
				w->failures++;
				continue;
			}
			handoff_put(w->handoff, w->stored[i]->id);
		}
	}
	pthread_mutex_lock(&w->handoff->lock);
	w->handoff->writers_left--;
	pthread_cond_signal(&w->handoff->ready);
	pthread_mutex_unlock(&w->handoff->lock);
	return NULL;
}

struct reader_arg {
	atolog_store *store;
	struct handoff *handoff;
};

/* Fetches every id the moment it was acknowledged: it must be there. */
static void *reader_main(void *arg)
{
	struct reader_arg *r = arg;
	struct handoff *h = r->handoff;

	pthread_mutex_lock(&h->lock);
	for (;;) {
		char id[ATOLOG_ID_TEXT_LEN + 1];
		atolog_interaction *rec = NULL;

		while (h->head == h->tail && h->writers_left > 0)
			pthread_cond_wait(&h->ready, &h->lock);
		if (h->head == h->tail)
			break;
		memcpy(id, h->ids[h->head % 256], sizeof(id));
		h->head++;
		pthread_mutex_unlock(&h->lock);
		if (atolog_interaction_get(r->store, id, &rec) != ATOLOG_OK)
			__atomic_add_fetch(&h->missing, 1, __ATOMIC_RELAXED);
		__atomic_add_fetch(&h->fetched, 1, __ATOMIC_RELAXED);
		atolog_interaction_free(rec);
		pthread_mutex_lock(&h->lock);
	}
	pthread_mutex_unlock(&h->lock);
	return NULL;
}

static int compare_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int compare_id(const void *a, const void *b)
{
	return strcmp(((const struct model_rec *)a)->id,
		      ((const struct model_rec *)b)->id);
}

/* Ids and sequence numbers are unique; seqs are a set of distinct numbers
 * no higher than the store's last. */
static void check_unique(const struct model *m, uint64_t last_seq)
{
	struct model_rec *copy = malloc(m->n * sizeof(*copy));
	uint64_t *seqs = malloc(m->n * sizeof(*seqs));

	memcpy(copy, m->recs, m->n * sizeof(*copy));
	for (size_t i = 0; i < m->n; i++)
		seqs[i] = m->recs[i].seq;
	qsort(copy, m->n, sizeof(*copy), compare_id);
	qsort(seqs, m->n, sizeof(*seqs), compare_u64);
	for (size_t i = 1; i < m->n; i++) {
		CHECK(strcmp(copy[i].id, copy[i - 1].id) != 0);
		CHECK(seqs[i] != seqs[i - 1]);
	}
	CHECK(m->n == 0 || seqs[m->n - 1] <= last_seq);
	free(copy);
	free(seqs);
}

static void check_queries(atolog_store *s, const struct model *m)
{
	for (int i = 0; i < N_QUERIES; i++) {
		struct model_query q = { .since = INT64_MIN };
		unsigned mask = (unsigned)check_rand_below(16);
		static char session[32];

		if (mask & 1)
			q.project = q.project_given = projects[check_rand_below(5)];
		if (mask & 2) {
			snprintf(session, sizeof(session), "t%02u-%u",
				 (unsigned)check_rand_below(N_THREADS),
				 (unsigned)check_rand_below(PER_THREAD / 25));
			q.session = session;
		}
		if (mask & 4)
			q.client = clients[check_rand_below(3)];
		if (mask & 8)
			model_random_since(&q, m->recs[check_rand_below(m->n)].created_at);
		q.limit = (long)check_rand_below(120) - 10;
		model_check_query(s, m, &q);
	}
	for (int t = 0; t < N_THREADS; t++) {
		char sess[32];

		snprintf(sess, sizeof(sess), "t%02d-%d", t, (int)check_rand_below(8));
		model_check_replay(s, m, sess);
	}
}

static void test_many_writers(atolog_sync_mode mode, const char *name)
{
	char *dir = check_tmpdir("threads");
	atolog_options o = { .sync = mode, .segment_size = 64 * 1024 };
	struct handoff h = { .writers_left = N_THREADS };
	struct writer_arg *args = calloc(N_THREADS, sizeof(*args));
	struct reader_arg rarg;
	pthread_t threads[N_THREADS], reader;
	struct model m = { 0 };
	atolog_store *s = open_store(dir, &o);
	atolog_stats st;
	int failures = check_failures;

	pthread_mutex_init(&h.lock, NULL);
	pthread_cond_init(&h.ready, NULL);
	rarg = (struct reader_arg){ s, &h };
	pthread_create(&reader, NULL, reader_main, &rarg);
	for (int t = 0; t < N_THREADS; t++) {
		args[t] = (struct writer_arg){ .store = s, .thread = t, .handoff = &h };
		pthread_create(&threads[t], NULL, writer_main, &args[t]);
	}
	for (int t = 0; t < N_THREADS; t++) {
		pthread_join(threads[t], NULL);
		CHECK_INT(args[t].failures, 0);
		for (int i = 0; i < PER_THREAD; i++) {
			if (args[t].stored[i])
				model_add(&m, args[t].stored[i]);
			atolog_interaction_free(args[t].stored[i]);
		}
	}
	pthread_join(reader, NULL);
	CHECK_INT(h.missing, 0);
	CHECK(h.fetched > 0);
	CHECK_OK(atolog_store_stats(s, &st), s);
	CHECK_INT(st.n_records, N_THREADS * PER_THREAD);
	CHECK(st.n_segments > 5);
	CHECK(st.commit_groups > 0 && st.commit_groups <= st.commit_frames);
	check_unique(&m, st.last_seq);
	check_queries(s, &m);
	CHECK_OK(atolog_store_close(s), NULL);
	s = open_store(dir, &o);
	check_queries(s, &m);
	CHECK_OK(atolog_store_close(s), NULL);
	fprintf(stderr, "test_concurrency: %d threads, sync %s: %llu frames in "
		"%llu groups, %llu log syncs, %llu index commits: %s\n", N_THREADS,
		name, (unsigned long long)st.commit_frames,
		(unsigned long long)st.commit_groups, (unsigned long long)st.log_syncs,
		(unsigned long long)st.index_commits,
		failures == check_failures ? "ok" : "FAILED");
	model_free(&m);
	free(args);
	pthread_mutex_destroy(&h.lock);
	pthread_cond_destroy(&h.ready);
	check_tmpdir_remove(dir);
}

/* ------------------------------------------------------------------------
 * record_batch with invalid items.
 */

static void test_batch_invalid(void)
{
	char *dir = check_tmpdir("batch");
	atolog_store *s = open_store(dir, NULL);
	atolog_interaction first = { .prompt = "already here" }, *stored = NULL;
	atolog_interaction items[7];
	atolog_interaction *out[7];
	int rcs[7], want[7] = { ATOLOG_OK, ATOLOG_INVALID, ATOLOG_OK, ATOLOG_EXISTS,
				ATOLOG_INVALID, ATOLOG_EXISTS, ATOLOG_OK };
	const char *given = "0190aaaa-bbbb-7ccc-8ddd-eeeeffff0000";
	atolog_stats st;

	CHECK_OK(atolog_interaction_record(s, &first, &stored), s);
	memset(items, 0, sizeof(items));
	items[0].prompt = "valid one";
	items[1].prompt = "   ";
	items[2].prompt = "valid with its own id";
	strcpy(items[2].id, given);
	items[3].prompt = "the same id again";
	strcpy(items[3].id, given);
	items[4].prompt = "bad \xff utf-8";
	items[5].prompt = "an id that is stored";
	if (stored)
		strcpy(items[5].id, stored->id);
	items[6].prompt = "valid at the end";
	for (int i = 0; i < 7; i++)
		items[i].session_id = "batch";
	CHECK_RC(atolog_interaction_record_batch(s, items, 7, rcs, out),
		 ATOLOG_INVALID, s);
	CHECK_MSG(s, "item 1");
	for (int i = 0; i < 7; i++) {
		atolog_interaction *got = NULL;

		CHECK_RC(rcs[i], want[i], s);
		CHECK((out[i] != NULL) == (want[i] == ATOLOG_OK));
		if (!out[i])
			continue;
		CHECK_STR(out[i]->prompt, items[i].prompt);
		CHECK_OK(atolog_interaction_get(s, out[i]->id, &got), s);
		if (got)
			CHECK_STR(got->prompt, items[i].prompt);
		atolog_interaction_free(got);
		atolog_interaction_free(out[i]);
	}
	if (rcs[2] == ATOLOG_OK) {
		atolog_interaction *got = NULL;

		CHECK_OK(atolog_interaction_get(s, given, &got), s);
		if (got)
			CHECK_STR(got->prompt, "valid with its own id");
		atolog_interaction_free(got);
	}
	CHECK_OK(atolog_store_stats(s, &st), s);
	CHECK_INT(st.n_records, 4);
	atolog_interaction_free(stored);
	atolog_store_close(s);
	check_tmpdir_remove(dir);
}

/* ------------------------------------------------------------------------
 * The same caller-supplied ids from many threads at once: exactly one
 * wins each, whatever groups and syncs they land in.
 */

#define RACE_THREADS 8
#define RACE_IDS 60

struct racer {
	atolog_store *store;
	int won[RACE_IDS];
	int lost;
	int other;
};

static void race_id(char out[ATOLOG_ID_TEXT_LEN + 1], int i)
{
	snprintf(out, ATOLOG_ID_TEXT_LEN + 1, "0190aaaa-bbbb-7ccc-8ddd-%012d", i);
}

static void *racer_main(void *arg)
{
	struct racer *r = arg;

	for (int i = 0; i < RACE_IDS; i++) {
		atolog_interaction in = { .prompt = "race", .session_id = "race" };
		int rc;

		race_id(in.id, i);
		rc = atolog_interaction_record(r->store, &in, NULL);
		if (rc == ATOLOG_OK)
			r->won[i]++;
		else if (rc == ATOLOG_EXISTS)
			r->lost++;
		else
			r->other++;
	}
	return NULL;
}

static void test_id_race(atolog_sync_mode mode)
{
	char *dir = check_tmpdir("race");
	atolog_options o = { .sync = mode };
	atolog_store *s = open_store(dir, &o);
	struct racer r[RACE_THREADS];
	pthread_t t[RACE_THREADS];

	memset(r, 0, sizeof(r));
	for (int k = 0; k < RACE_THREADS; k++) {
		r[k].store = s;
		pthread_create(&t[k], NULL, racer_main, &r[k]);
	}
	for (int k = 0; k < RACE_THREADS; k++) {
		pthread_join(t[k], NULL);
		CHECK_INT(r[k].other, 0);
	}
	for (int i = 0; i < RACE_IDS; i++) {
		int winners = 0;

		for (int k = 0; k < RACE_THREADS; k++)
			winners += r[k].won[i];
		CHECK_INT(winners, 1);
	}
	CHECK_INT(check_count_session(s, "race"), RACE_IDS);
	atolog_store_close(s);
	check_tmpdir_remove(dir);
}

/* ------------------------------------------------------------------------
 * Overload.
 */

struct background {
	atolog_store *store;
	const char *prompt;
	int rc;
};

static void *record_in_background(void *arg)
{
	struct background *b = arg;
	atolog_interaction in = { .prompt = b->prompt, .session_id = "overload" };

	b->rc = atolog_interaction_record(b->store, &in, NULL);
	return NULL;
}

static uint64_t queued_bytes(atolog_store *s)
{
	uint64_t n;

	lock_acquire(&s->w.lock);
	n = s->w.queued_bytes;
	lock_release(&s->w.lock);
	return n;
}

static void wait_queued(atolog_store *s, uint64_t at_least)
{
	for (int i = 0; i < 5000 && queued_bytes(s) < at_least; i++)
		usleep(1000);
	CHECK(queued_bytes(s) >= at_least);
}

static void test_overload(void)
{
	char *dir = check_tmpdir("overload");
	atolog_options o = { .queue_bytes = 1, .queue_timeout_ms = 150 };
	atolog_store *s = open_store(dir, &o);
	struct background a = { s, "first, queued", -1 }, c = { s, "third, waits", -1 };
	atolog_interaction b = { .prompt = "second, times out", .session_id = "overload" };
	pthread_t ta, tc;
	struct timespec t0, t1;
	double waited;

	store_pause_log(s, true);
	pthread_create(&ta, NULL, record_in_background, &a);
	wait_queued(s, 1);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CHECK_RC(atolog_interaction_record(s, &b, NULL), ATOLOG_TIMEDOUT, s);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	CHECK_MSG(s, "commit queue");
	waited = (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
		 (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	CHECK(waited >= 100); /* it waited, rather than failing at once */
	pthread_create(&tc, NULL, record_in_background, &c);
	usleep(20 * 1000);
	store_pause_log(s, false);
	pthread_join(ta, NULL);
	pthread_join(tc, NULL);
	CHECK_OK(a.rc, s);
	CHECK_OK(c.rc, s);
	/* A and C are stored; B, which timed out, is not. */
	CHECK_INT(check_count_session(s, "overload"), 2);
	CHECK_OK(atolog_store_close(s), NULL);
	s = open_store(dir, NULL);
	CHECK_INT(check_count_session(s, "overload"), 2);
	atolog_store_close(s);
	check_tmpdir_remove(dir);
}

/*
 * An index that falls behind holds writers back too: with the index held
 * and room for RECENT_TEST_MAX records it has not committed, the next
 * record waits, then times out with nothing written; once the index runs,
 * writes go on and the set drains.
 */
#define RECENT_TEST_MAX 40

static void test_index_behind(void)
{
	char *dir = check_tmpdir("behind");
	atolog_options o = { .sync = ATOLOG_SYNC_NONE, .queue_timeout_ms = 100 };
	atolog_store *s = open_store(dir, &o);
	atolog_interaction in = { .prompt = "behind", .session_id = "behind" };
	atolog_stats st;

	store_set_recent_max(s, RECENT_TEST_MAX);
	store_pause_index(s, true);
	for (int i = 0; i < RECENT_TEST_MAX; i++)
		CHECK_OK(atolog_interaction_record(s, &in, NULL), s);
	CHECK_RC(atolog_interaction_record(s, &in, NULL), ATOLOG_TIMEDOUT, s);
	CHECK_MSG(s, "not yet indexed");
	CHECK_INT(check_count_session(s, "behind"), RECENT_TEST_MAX);
	store_pause_index(s, false);
	for (int i = 0; i < RECENT_TEST_MAX; i++)
		CHECK_OK(atolog_interaction_record(s, &in, NULL), s);
	store_index_wait(s);
	CHECK_OK(atolog_store_stats(s, &st), s);
	CHECK_INT(st.n_records, 2 * RECENT_TEST_MAX);
	CHECK_OK(atolog_store_close(s), NULL);
	s = open_store(dir, NULL);
	CHECK_INT(check_count_session(s, "behind"), 2 * RECENT_TEST_MAX);
	atolog_store_close(s);
	check_tmpdir_remove(dir);
}

/* ------------------------------------------------------------------------
 * A reader in another process.
 */

#define FOLLOW_RECORDS 200
#define FOLLOW_DEADLINE_US 5000000 /* liveness bound, not a speed claim */

static int64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/*
 * Another process sees an acknowledged record once the index thread has
 * committed it (within one index transaction), never a later record
 * without every earlier one (the index commits in log order).
 */
static int reader_process(const char *dir, int fd)
{
	atolog_options o = { .flags = ATOLOG_OPEN_READONLY };
	char id[ATOLOG_ID_TEXT_LEN + 1];
	atolog_store *s = NULL;
	long seen = 0, missing = 0, out_of_order = 0;
	int64_t worst = 0;

	if (atolog_store_open(dir, &o, &s) != ATOLOG_OK)
		return 3;
	while (read(fd, id, sizeof(id)) == (ssize_t)sizeof(id)) {
		int64_t acked = now_us(), waited;
		atolog_interaction *rec = NULL;
		int rc;

		while ((rc = atolog_interaction_get(s, id, &rec)) == ATOLOG_NOTFOUND &&
		       now_us() - acked < FOLLOW_DEADLINE_US)
			usleep(100);
		waited = now_us() - acked;
		worst = waited > worst ? waited : worst;
		missing += rc != ATOLOG_OK;
		atolog_interaction_free(rec);
		seen++;
		/* Everything acknowledged before it is visible too. */
		if (check_count_session(s, "followed") < seen)
			out_of_order++;
	}
	if (check_count_session(s, "followed") != seen)
		missing++;
	atolog_store_close(s);
	fprintf(stderr, "test_concurrency: a reader process saw %ld records, "
		"the slowest %.2f ms after its acknowledgement\n", seen, worst / 1000.0);
	return missing == 0 && out_of_order == 0 && seen == FOLLOW_RECORDS ? 0 : 1;
}

static void test_reader_process(void)
{
	char *dir = check_tmpdir("follow");
	atolog_store *s = open_store(dir, NULL);
	int pipefd[2], status = -1;
	pid_t pid;

	CHECK_OK(atolog_store_close(s), NULL); /* the store exists before the fork */
	CHECK(pipe(pipefd) == 0);
	pid = fork();
	if (pid == 0) {
		close(pipefd[1]);
		_exit(reader_process(dir, pipefd[0]));
	}
	close(pipefd[0]);
	s = open_store(dir, NULL);
	for (int i = 0; i < FOLLOW_RECORDS; i++) {
		atolog_interaction in = { .prompt = "followed", .session_id = "followed" };
		atolog_interaction *out = NULL;

		CHECK_OK(atolog_interaction_record(s, &in, &out), s);
		if (out)
			CHECK(write(pipefd[1], out->id, sizeof(out->id)) ==
			      (ssize_t)sizeof(out->id));
		atolog_interaction_free(out);
	}
	close(pipefd[1]);
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	atolog_store_close(s);
	check_tmpdir_remove(dir);
}

/* A child that opens the store read-only, starts a replay (taking a
 * slot in the index's reader table), says so on fd, and waits to die. */
static pid_t spawn_reader(const char *dir, int fd)
{
	pid_t pid = fork();

	if (pid == 0) {
		atolog_options o = { .flags = ATOLOG_OPEN_READONLY };
		const atolog_interaction *rec;
		atolog_store *s;
		atolog_iter *it;

		if (atolog_store_open(dir, &o, &s) != ATOLOG_OK ||
		    atolog_replay_open(s, "d", &it) != ATOLOG_OK ||
		    atolog_iter_next(it, &rec) != ATOLOG_OK)
			_exit(1);
		if (write(fd, "r", 1) != 1)
			_exit(1);
		pause(); /* killed here, iterator and slot still open */
		_exit(0);
	}
	return pid;
}

/*
 * A reader process that dies holding a slot in the index's reader table
 * (here: mid-replay) leaves it behind while other processes keep the index
 * open (when none does, LMDB starts the table afresh); the next writer
 * open clears it with mdb_reader_check, so dead readers neither fill the
 * table nor pin old pages for ever.
 */
static void test_dead_reader(void)
{
	char *dir = check_tmpdir("deadreader");
	atolog_store *s = open_store(dir, NULL);
	atolog_interaction in = { .prompt = "read by a doomed reader", .session_id = "d" };
	int pipefd[2], status;
	pid_t keeper, doomed;
	atolog_stats st;
	char ready[2];

	for (int i = 0; i < ITER_BATCH * 2; i++)
		CHECK_OK(atolog_interaction_record(s, &in, NULL), s);
	CHECK_OK(atolog_store_close(s), NULL);
	CHECK(pipe(pipefd) == 0);
	keeper = spawn_reader(dir, pipefd[1]);
	doomed = spawn_reader(dir, pipefd[1]);
	close(pipefd[1]);
	CHECK(read(pipefd[0], ready, 1) == 1 && read(pipefd[0], ready + 1, 1) == 1);
	close(pipefd[0]);
	kill(doomed, SIGKILL);
	waitpid(doomed, &status, 0);
	CHECK(WIFSIGNALED(status));
	s = open_store(dir, NULL);
	CHECK_OK(atolog_store_stats(s, &st), s);
	CHECK_INT(st.stale_readers, 1); /* the doomed one; the keeper lives */
	CHECK_INT(check_count_session(s, "d"), ITER_BATCH * 2);
	CHECK_OK(atolog_store_close(s), NULL);
	kill(keeper, SIGKILL);
	waitpid(keeper, &status, 0);
	check_tmpdir_remove(dir);
}

/* ------------------------------------------------------------------------
 * The index never points past the durable log.
 */

struct synced {
	uint64_t segment, size;
};

static void note_sync(uint64_t segment, uint64_t size, void *ctx)
{
	struct synced rec = { segment, size };
	int fd = *(int *)ctx;

	if (write(fd, &rec, sizeof(rec)) != (ssize_t)sizeof(rec))
		_exit(4);
}

static void syncing_writer(const char *dir, int fd)
{
	atolog_options o = { .segment_size = ATOLOG_SEGMENT_SIZE_MIN };
	atolog_store *s = NULL;

	if (atolog_store_open(dir, &o, &s) != ATOLOG_OK)
		_exit(3);
	store_observe_syncs(s, note_sync, &fd);
	for (int i = 0;; i++) {
		atolog_interaction in = { .prompt = "durable?", .session_id = "cut" };

		if (atolog_interaction_record(s, &in, NULL) != ATOLOG_OK)
			_exit(5);
	}
}

/* Cuts every segment back to what its last fdatasync covered. */
static void lose_unsynced(const char *dir, const struct synced *last, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char name[64], *path;

		snprintf(name, sizeof(name), "segments/%016" PRIx64 ".seg",
			 last[i].segment);
		path = check_path(dir, name);
		CHECK(truncate(path, (off_t)last[i].size) == 0);
		free(path);
	}
}

static void check_index_within_durable_log(long *indexed)
{
	char *dir = check_tmpdir("durable");
	struct synced last[64], rec;
	size_t n_segments = 0;
	int pipefd[2], status;
	pid_t pid;

	CHECK(pipe(pipefd) == 0);
	pid = fork();
	if (pid == 0) {
		close(pipefd[0]);
		syncing_writer(dir, pipefd[1]);
	}
	close(pipefd[1]);
	for (int syncs = 0; syncs < 100 &&
	     read(pipefd[0], &rec, sizeof(rec)) == (ssize_t)sizeof(rec); syncs++) {
		size_t k = 0;

		while (k < n_segments && last[k].segment != rec.segment)
			k++;
		if (k == n_segments && n_segments < 64)
			n_segments++;
		last[k] = rec;
	}
	/* At a random point of the next cycles, not just after a sync. */
	usleep((useconds_t)check_rand_below(3000));
	kill(pid, SIGKILL);
	while (read(pipefd[0], &rec, sizeof(rec)) == (ssize_t)sizeof(rec)) {
		size_t k = 0;

		while (k < n_segments && last[k].segment != rec.segment)
			k++;
		if (k == n_segments && n_segments < 64)
			n_segments++;
		last[k] = rec;
	}
	close(pipefd[0]);
	waitpid(pid, &status, 0);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	CHECK(n_segments > 1);
	lose_unsynced(dir, last, n_segments);
	/* Read-only: no recovery runs, the index is taken as it is. */
	{
		atolog_options o = { .flags = ATOLOG_OPEN_READONLY };
		atolog_store *s = open_store(dir, &o);
		const atolog_interaction *r;
		atolog_iter *it = NULL;
		long n = 0;
		int rc;

		CHECK_OK(atolog_replay_open(s, "cut", &it), s);
		while (it && (rc = atolog_iter_next(it, &r)) == ATOLOG_OK)
			n++;
		CHECK_RC(rc, ATOLOG_DONE, s); /* every indexed frame is intact */
		CHECK(n > 0);
		atolog_iter_close(it);
		atolog_store_close(s);
		*indexed += n;
	}
	check_tmpdir_remove(dir);
}

static void test_index_within_durable_log(void)
{
	long indexed = 0;

	for (int round = 0; round < 8; round++)
		check_index_within_durable_log(&indexed);
	fprintf(stderr, "test_concurrency: 8 kills, every unsynced byte thrown "
		"away: %ld indexed records all intact\n", indexed);
}

int main(int argc, char **argv)
{
	check_args(argc, argv);
	check_rand_init("test_concurrency");
	CHECK_RUN_WITH(test_many_writers, ATOLOG_SYNC_ALWAYS, "always");
	CHECK_RUN_WITH(test_many_writers, ATOLOG_SYNC_BATCH, "batch");
	CHECK_RUN_WITH(test_many_writers, ATOLOG_SYNC_NONE, "none");
	CHECK_RUN(test_batch_invalid);
	CHECK_RUN_WITH(test_id_race, ATOLOG_SYNC_ALWAYS);
	CHECK_RUN_WITH(test_id_race, ATOLOG_SYNC_BATCH);
	CHECK_RUN_WITH(test_id_race, ATOLOG_SYNC_NONE);
	CHECK_RUN(test_overload);
	CHECK_RUN(test_index_behind);
	CHECK_RUN(test_reader_process);
	CHECK_RUN(test_dead_reader);
	CHECK_RUN(test_index_within_durable_log);
	return check_report("test_concurrency");
}
