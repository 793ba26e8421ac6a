/*
 * test_follow.c - `atolog follow`, black box: the change feed seen from
 * another process than the writer.
 *
 * A writer process records "r0", "r1", ... with small segments (rolls
 * every few dozen records) and, halfway, compacts every sealed segment it
 * has, while `atolog follow` runs in a process of its own. The feed must
 * hold every record exactly once, in seq order, each line with its seq.
 * A registration halfway takes a sequence number of its own (a gap in the
 * records' numbers). Then feeds resumed from a sequence number must go on
 * with no gap and no duplicate, filters and --since must select what they
 * say, and a feed started with no position must print only what comes
 * after it. Every follow runs under a deadline: a missed record fails the
 * test instead of hanging it.
 */
#include <signal.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "check.h"

#define N_RECORDS 3000
#define SMALL_SEGMENT 16384
#define REGISTER_AT 1000 /* a registration before record 1000 */
#define FOLLOW_DEADLINE_S 60

static const char *cli_path;
static const char *const projects[] = { "alpha", "beta", "gamma" };

/* The writer: signals `ready` once it holds the store, then records. */
static int writer(const char *dir, int ready)
{
	atolog_options o = { .sync = ATOLOG_SYNC_BATCH, .segment_size = SMALL_SEGMENT };
	atolog_store *s;
	int rc = atolog_store_open(dir, &o, &s);

	if (rc != ATOLOG_OK || write(ready, "r", 1) != 1)
		return 1;
	for (int i = 0; rc == ATOLOG_OK && i < N_RECORDS; i++) {
		char prompt[32];
		atolog_interaction in = { .prompt = prompt, .project = projects[i % 3],
					  .session_id = "s", .has_created_at = 1,
					  .created_at = INT64_C(1767225600000000) +
							(int64_t)i * 1000000 };

		snprintf(prompt, sizeof(prompt), "r%d", i);
		if (i == REGISTER_AT)
			rc = atolog_project_add(s, "alpha", (const char *const[]){ "A" }, 1);
		if (rc == ATOLOG_OK)
			rc = atolog_interaction_record(s, &in, NULL);
		if (i % 100 == 0)
			usleep(2000); /* the feed keeps up, then catches up */
		if (rc == ATOLOG_OK && i == N_RECORDS / 2) {
			/* Every sealed segment is small: all merged. */
			atolog_compact_options co = { .flags = ATOLOG_COMPACT_APPLY,
						      .small_bytes = 1 << 30 };
			atolog_compact_report r;

			rc = atolog_store_compact(s, &co, &r);
			if (rc == ATOLOG_OK && r.segments_in < 10)
				rc = -1;
			atolog_compact_report_free(&r);
		}
	}
	if (rc != ATOLOG_OK)
		fprintf(stderr, "writer: %s\n", atolog_errmsg(s));
	atolog_store_close(s);
	return rc == ATOLOG_OK ? 0 : 1;
}

struct feed {
	long n;
	uint64_t seq[N_RECORDS + 1];
	char prompt[N_RECORDS + 1][16];
	char project[N_RECORDS + 1][8];
};

/* Runs `atolog follow args` and reads its lines into f. */
static int run_follow(const char *dir, const char *args, struct feed *f)
{
	char cmd[1024], line[65536];
	FILE *p;
	int status;

	snprintf(cmd, sizeof(cmd), "timeout %d %s --data %s follow %s 2>/dev/null",
		 FOLLOW_DEADLINE_S, cli_path, dir, args);
	p = popen(cmd, "r");
	if (!p)
		return -1;
	f->n = 0;
	while (fgets(line, sizeof(line), p)) {
		json_t *o = json_loads(line, 0, NULL);

		if (!o || f->n > N_RECORDS) {
			CHECK_FAILF("follow printed a line that is not JSON: %s", line);
		} else {
			f->seq[f->n] = (uint64_t)json_integer_value(json_object_get(o, "seq"));
			snprintf(f->prompt[f->n], sizeof(f->prompt[0]), "%s",
				 json_string_value(json_object_get(o, "prompt")));
			snprintf(f->project[f->n], sizeof(f->project[0]), "%s",
				 json_string_value(json_object_get(o, "project")));
			f->n++;
		}
		json_decref(o);
	}
	status = pclose(p);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Record i's seq: one after the other, and the registration's between. */
static uint64_t seq_of(long i)
{
	return (uint64_t)i + 1 + (i >= REGISTER_AT);
}

/* Lines k are records from + k * step, with their seq and prompt. */
static void check_run(const struct feed *f, long from, long step, long n,
		      const char *what)
{
	if (f->n != n) {
		CHECK_FAILF("%s: %ld lines, want %ld", what, f->n, n);
		return;
	}
	for (long k = 0; k < n; k++) {
		long i = from + k * step;
		char want[16];

		snprintf(want, sizeof(want), "r%ld", i);
		if (f->seq[k] != seq_of(i) || strcmp(f->prompt[k], want) != 0) {
			CHECK_FAILF("%s: line %ld is seq %" PRIu64 " %s, want seq %" PRIu64
				    " %s", what, k, f->seq[k], f->prompt[k], seq_of(i), want);
			return;
		}
	}
}

static void test_live_feed(const char *dir)
{
	static struct feed f;
	int ready[2], status;
	char c, args[128];
	pid_t pid;

	if (pipe(ready) != 0)
		abort();
	pid = fork();
	if (pid == 0) {
		alarm(120);
		close(ready[0]);
		_exit(writer(dir, ready[1]));
	}
	close(ready[1]);
	CHECK(read(ready[0], &c, 1) == 1);
	close(ready[0]);
	/* Beside the writer, from the first record, until all are seen. */
	snprintf(args, sizeof(args), "--from-seq 1 --limit %d", N_RECORDS);
	CHECK_INT(run_follow(dir, args, &f), 0);
	check_run(&f, 0, 1, N_RECORDS, "live");
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	/* Resumed where a consumer stopped: the next ones, no gap, no
	 * duplicate (seq 1001 is the registration's). */
	CHECK_INT(run_follow(dir, "--from-seq 901 --limit 500", &f), 0);
	check_run(&f, 900, 1, 500, "resumed across the registration");
	CHECK_INT(run_follow(dir, "--from-seq 2992 --limit 10", &f), 0);
	check_run(&f, 2990, 1, 10, "to the end");
	/* A filter: beta's, in seq order. */
	CHECK_INT(run_follow(dir, "--project beta --from-seq 1 --limit 1000", &f), 0);
	check_run(&f, 1, 3, 1000, "beta");
	/* --since: from a time on (record i was made at second i). */
	CHECK_INT(run_follow(dir, "--since 2026-01-01T00:40:00Z --limit 600", &f), 0);
	check_run(&f, 2400, 1, 600, "since");
	/* --limit 0 returns at once. */
	CHECK_INT(run_follow(dir, "--limit 0", &f), 0);
	CHECK_INT(f.n, 0);
	/* With no position: only what comes after it starts. A child keeps
	 * recording "new 0", "new 1"... (however late the feed starts, two
	 * come after it); the feed must print two of them, consecutive, and
	 * none of the records before. */
	{
		char cmd[1024], line[65536];
		int first = -1, second = -1, lines = 0;
		pid_t recorder = fork();
		FILE *p;

		if (recorder == 0) {
			alarm(FOLLOW_DEADLINE_S);
			for (int i = 0;; i++) {
				snprintf(cmd, sizeof(cmd), "echo '{\"prompt\":\"new %d\"}' | "
					 "%s --data %s record >/dev/null 2>&1", i, cli_path, dir);
				if (system(cmd) != 0)
					usleep(10000); /* the feed held the lock a moment */
				usleep(100000);
			}
		}
		snprintf(cmd, sizeof(cmd), "timeout %d %s --data %s follow --limit 2 "
			 "2>/dev/null", FOLLOW_DEADLINE_S, cli_path, dir);
		p = popen(cmd, "r");
		while (p && fgets(line, sizeof(line), p)) {
			const char *at = strstr(line, "\"prompt\":\"new ");
			int k = at ? atoi(at + strlen("\"prompt\":\"new ")) : -2;

			if (lines++ == 0)
				first = k;
			else
				second = k;
		}
		CHECK(p && pclose(p) == 0);
		kill(recorder, SIGKILL);
		waitpid(recorder, &status, 0);
		CHECK_INT(lines, 2);
		CHECK(first >= 0 && second == first + 1);
	}
	/* Usage. */
	CHECK_INT(run_follow(dir, "--from-seq 5 --since 2026-01-01", &f), 2);
	CHECK_INT(run_follow(dir, "--from-seq -1", &f), 2);
	CHECK_INT(run_follow(dir, "--until 2026-01-01", &f), 2);
}

/* A rebuild that stopped (damage in a sealed segment) leaves the index
 * incomplete; with no writer left to finish it, the feed says so (exit 3)
 * instead of waiting for ever. */
static void test_abandoned_rebuild(const char *dir)
{
	atolog_options o = { .sync = ATOLOG_SYNC_NONE, .segment_size = SMALL_SEGMENT };
	static struct feed f;
	atolog_store *s;
	char *seg, cmd[1024];

	CHECK_OK(atolog_store_open(dir, &o, &s), NULL);
	for (int i = 0; s && i < 300; i++) {
		atolog_interaction in = { .prompt = "some words to fill segments" };

		CHECK_OK(atolog_interaction_record(s, &in, NULL), s);
	}
	CHECK_OK(atolog_store_close(s), NULL);
	seg = check_path(dir, "segments/0000000000000001.seg");
	check_flip_byte(seg, 200);
	check_remove_index(dir);
	snprintf(cmd, sizeof(cmd), "echo '{\"prompt\":\"x\"}' | %s --data %s record "
		 ">/dev/null 2>&1", cli_path, dir);
	CHECK(WEXITSTATUS(system(cmd)) == 3); /* the rebuild stops at the damage */
	CHECK_INT(run_follow(dir, "--from-seq 1 --limit 1", &f), 3);
	CHECK_INT(f.n, 0);
	free(seg);
}

int main(int argc, char **argv)
{
	static const struct check_case cases[] = {
		{ "live_feed", test_live_feed },
		{ "abandoned_rebuild", test_abandoned_rebuild },
	};

	check_args(argc, argv);
	cli_path = getenv("ATOLOG_CLI");
	check_rand_init("test_follow");
	if (!cli_path) {
		fprintf(stderr, "test_follow: set ATOLOG_CLI to the atolog binary\n");
		return 1;
	}
	return check_run_cases("test_follow", cases, sizeof(cases) / sizeof(cases[0]));
}
