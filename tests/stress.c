/*
 * stress.c - the crash loop: start a writer child with many threads,
 * SIGKILL it at a random moment, reopen, check, and go again.
 *
 *   atolog_stress [--kills N] [--seconds S] [--threads T] [--dir DIR]
 *
 * Each child thread records (singly or in small batches) interactions whose
 * prompt names round, thread and counter, and reports every acknowledged
 * id through a pipe. After each kill the parent reopens the store as the
 * next writer (recovery runs) and asserts that:
 *   - every acknowledged id is present and intact (its prompt);
 *   - every stored record is one a child attempted, stored once, and each
 *     thread's session replays in the order the thread wrote it;
 *   - the store's count equals the model's, and at the end random queries
 *     of every filter match the model built from what was stored.
 * Sync modes and record/batch mix vary by round. `make test` runs 20
 * kills; `make stress` runs until a count or a time given to it.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "model.h"

#define STRESS_THREADS_DEFAULT 8
#define STRESS_KILLS_DEFAULT 20
#define STRESS_SEGMENT_SIZE (16 * 1024)
#define STRESS_MAX_ACKS 200000

static const atolog_sync_mode modes[] = { ATOLOG_SYNC_ALWAYS, ATOLOG_SYNC_BATCH,
					  ATOLOG_SYNC_NONE };
static const char *const mode_names[] = { "always", "batch", "none" };

struct ack {
	int round, thread, counter;
	char id[ATOLOG_ID_TEXT_LEN + 1];
};

struct child_thread {
	atolog_store *store;
	int round, thread, fd;
};

static void child_fill(atolog_interaction *in, char *prompt, char *session,
		       int round, int thread, int counter)
{
	static const char *const projects[] = { "alpha", "beta", "gamma" };
	static const char *const clients[] = { "openclaw", "claude-code" };

	snprintf(prompt, 64, "r%d-t%d-n%d", round, thread, counter);
	snprintf(session, 32, "r%d-t%d", round, thread);
	memset(in, 0, sizeof(*in));
	in->prompt = prompt;
	in->session_id = session;
	in->project = projects[(round + counter) % 3];
	in->client = clients[thread % 2];
	in->context_pack = "{\"stress\":true}";
}

static void *child_thread_main(void *arg)
{
	struct child_thread *t = arg;
	char prompts[4][64], sessions[4][32];
	atolog_interaction items[4], *out[4];
	int rcs[4];

	for (int counter = 0;;) {
		int n = 1 + (counter + t->thread) % 4;

		for (int k = 0; k < n; k++)
			child_fill(&items[k], prompts[k], sessions[k], t->round,
				   t->thread, counter + k);
		if (n == 1)
			rcs[0] = atolog_interaction_record(t->store, &items[0], &out[0]);
		else
			atolog_interaction_record_batch(t->store, items, (size_t)n, rcs,
							out);
		for (int k = 0; k < n; k++) {
			struct ack a = { t->round, t->thread, counter + k, "" };

			if (rcs[k] != ATOLOG_OK)
				_exit(3);
			memcpy(a.id, out[k]->id, sizeof(a.id));
			atolog_interaction_free(out[k]);
			/* One write of less than PIPE_BUF: never interleaved. */
			if (write(t->fd, &a, sizeof(a)) != (ssize_t)sizeof(a))
				_exit(4);
		}
		counter += n;
	}
	return NULL;
}

static void child_main(const char *dir, int round, int threads, int fd)
{
	atolog_options o = { .sync = modes[round % 3],
			     .segment_size = STRESS_SEGMENT_SIZE };
	struct child_thread t[64];
	pthread_t tid[64];
	atolog_store *s = NULL;

	if (atolog_store_open(dir, &o, &s) != ATOLOG_OK)
		_exit(2);
	for (int i = 0; i < threads; i++) {
		t[i] = (struct child_thread){ s, round, i, fd };
		pthread_create(&tid[i], NULL, child_thread_main, &t[i]);
	}
	pause(); /* until the parent's SIGKILL */
	_exit(5);
}

/* ------------------------------------------------------------------------
 * The parent.
 */

struct run {
	const char *dir;
	int threads;
	struct model model;
	struct ack *acks;
	size_t n_acks;
	long kills;
};

static size_t kill_round(struct run *r, int round)
{
	size_t before = r->n_acks;
	int pipefd[2], status;
	pid_t pid;
	struct ack a;

	if (pipe(pipefd) != 0)
		exit(2);
	pid = fork();
	if (pid == 0) {
		close(pipefd[0]);
		child_main(r->dir, round, r->threads, pipefd[1]);
	}
	close(pipefd[1]);
	/* Kill at a random moment: after a random number of acks, or of
	 * microseconds, whichever the round picks. */
	if (check_rand_below(2)) {
		size_t want = 1 + check_rand_below(400);

		while (r->n_acks - before < want && r->n_acks < STRESS_MAX_ACKS &&
		       read(pipefd[0], &a, sizeof(a)) == (ssize_t)sizeof(a))
			r->acks[r->n_acks++] = a;
	} else {
		usleep((useconds_t)(1000 + check_rand_below(60000)));
	}
	kill(pid, SIGKILL);
	while (read(pipefd[0], &a, sizeof(a)) == (ssize_t)sizeof(a)) {
		if (r->n_acks < STRESS_MAX_ACKS)
			r->acks[r->n_acks++] = a;
	}
	close(pipefd[0]);
	waitpid(pid, &status, 0);
	/* Anything else (a failed write, a sanitizer's report) ended the
	 * child before the kill. */
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
		CHECK_FAILF("round %d: the writer ended before the kill (status %#x)",
			    round, (unsigned)status);
	r->kills++;
	return r->n_acks - before;
}

static void check_acked(atolog_store *s, const struct ack *acks, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		atolog_interaction *rec = NULL;
		char prompt[64];

		snprintf(prompt, sizeof(prompt), "r%d-t%d-n%d", acks[i].round,
			 acks[i].thread, acks[i].counter);
		CHECK_OK(atolog_interaction_get(s, acks[i].id, &rec), s);
		if (rec)
			CHECK_STR(rec->prompt, prompt);
		atolog_interaction_free(rec);
	}
}

/* Replays each thread's session of the round: counters must run 0, 1, 2...
 * with no gap and no repeat (a thread waits for each ack before the next
 * write, so what survived is a prefix). Adds what is stored to the model. */
static void check_round_sessions(struct run *r, atolog_store *s, int round)
{
	for (int t = 0; t < r->threads; t++) {
		const atolog_interaction *rec;
		atolog_iter *it = NULL;
		char session[32], want[64];
		int next = 0, rc;

		snprintf(session, sizeof(session), "r%d-t%d", round, t);
		CHECK_OK(atolog_replay_open(s, session, &it), s);
		while (it && (rc = atolog_iter_next(it, &rec)) == ATOLOG_OK) {
			snprintf(want, sizeof(want), "r%d-t%d-n%d", round, t, next++);
			CHECK_STR(rec->prompt, want);
			model_add(&r->model, rec);
		}
		if (it)
			CHECK_RC(rc, ATOLOG_DONE, s);
		atolog_iter_close(it);
	}
}

static void check_round(struct run *r, int round, size_t acked)
{
	atolog_options o = { .segment_size = STRESS_SEGMENT_SIZE };
	atolog_store *s = NULL;
	atolog_stats st;

	CHECK_OK(atolog_store_open(r->dir, &o, &s), NULL);
	if (!s)
		return;
	check_acked(s, r->acks + r->n_acks - acked, acked);
	check_round_sessions(r, s, round);
	CHECK_OK(atolog_store_stats(s, &st), s);
	CHECK_INT(st.n_records, r->model.n);
	CHECK_OK(atolog_store_close(s), NULL);
}

static void check_final_queries(struct run *r)
{
	static const char *const projects[] = { "alpha", "beta", "gamma" };
	atolog_options o = { .flags = ATOLOG_OPEN_READONLY };
	atolog_store *s = NULL;

	CHECK_OK(atolog_store_open(r->dir, &o, &s), NULL);
	for (int i = 0; s && r->model.n > 0 && i < 300; i++) {
		struct model_query q = { .since = INT64_MIN, .limit = 1 + (long)check_rand_below(80) };
		char session[32];

		if (check_rand_below(2))
			q.project = q.project_given = projects[check_rand_below(3)];
		if (check_rand_below(3) == 0) {
			snprintf(session, sizeof(session), "r%d-t%d",
				 (int)check_rand_below((uint64_t)r->kills),
				 (int)check_rand_below((uint64_t)r->threads));
			q.session = session;
		}
		if (check_rand_below(2))
			q.client = check_rand_below(2) ? "openclaw" : "claude-code";
		if (check_rand_below(2))
			model_random_since(&q, r->model.recs[check_rand_below(r->model.n)]
						      .created_at);
		model_check_query(s, &r->model, &q);
	}
	atolog_store_close(s);
}

static void usage(void)
{
	fprintf(stderr, "usage: atolog_stress [--kills N] [--seconds S] "
			"[--threads T] [--dir DIR]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "kills", required_argument, NULL, 'k' },
		{ "seconds", required_argument, NULL, 's' },
		{ "threads", required_argument, NULL, 't' },
		{ "dir", required_argument, NULL, 'd' },
		{ NULL, 0, NULL, 0 },
	};
	struct run r = { .threads = STRESS_THREADS_DEFAULT };
	long kills = 0, seconds = 0;
	char *dir = NULL;
	time_t start = time(NULL);
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'k')
			kills = atol(optarg);
		else if (c == 's')
			seconds = atol(optarg);
		else if (c == 't')
			r.threads = atoi(optarg);
		else if (c == 'd')
			dir = strdup(optarg);
		else
			usage();
	}
	if (r.threads < 1 || r.threads > 64)
		usage();
	if (!kills && !seconds)
		kills = STRESS_KILLS_DEFAULT;
	bool own_dir = !dir;

	check_rand_init("atolog_stress");
	if (own_dir)
		dir = check_tmpdir("stress");
	r.dir = dir;
	r.acks = calloc(STRESS_MAX_ACKS, sizeof(*r.acks));
	for (int round = 0; (kills && round < kills) ||
			    (!kills && time(NULL) - start < seconds); round++) {
		size_t acked = kill_round(&r, round);

		check_round(&r, round, acked);
		if (check_failures)
			break;
		if (isatty(STDERR_FILENO))
			fprintf(stderr, "\ratolog_stress: %ld kills, %zu acknowledged, "
				"%zu stored (last round: sync %s)   ", r.kills, r.n_acks,
				r.model.n, mode_names[round % 3]);
	}
	check_final_queries(&r);
	fprintf(stderr, "%satolog_stress: %ld kills, %zu acknowledged records, "
		"%zu stored, all checks %s\n", isatty(STDERR_FILENO) ? "\n" : "",
		r.kills, r.n_acks, r.model.n, check_failures ? "FAILED" : "passed");
	model_free(&r.model);
	free(r.acks);
	if (own_dir)
		check_tmpdir_remove(dir);
	else
		free(dir);
	return check_report("atolog_stress");
}
