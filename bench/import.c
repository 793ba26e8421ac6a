/*
 * import.c - atolog_bench_import: how fast `atolog import-sqlite` moves a
 * seed database in, beside the time sqlite3's own `.dump` takes to read
 * the same file out.
 *
 * The database has the seed's schema and indexes, filled with the
 * workload's records (bench/workload.c: realistic sizes and mixes). Each
 * measurement runs the real command line as a child process, output to
 * /dev/null:
 *
 *   sqlite3 DB .dump                  (when the sqlite3 program is found)
 *   atolog --data D --sync S import-sqlite DB, for S = always and none,
 *     each into an empty store
 *
 * Reported: seconds, rows/s, and atolog's time over .dump's (how close
 * the migration comes to merely reading the file). One run, on the
 * machine named at the top.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "atolog.h"
#include "bench.h"
#include "seeddb.h"
#include "workload.h"

#define IMPORT_SEED 0x696d706f7274ull /* "import" */
#define DEFAULT_ROWS 200000
#define QUICK_ROWS 20000
#define ROWS_PER_SESSION 50
#define SPAN_DAYS 60
#define CHUNK 10000
#define US_PER_DAY (86400ll * 1000000)

static int build_db(const char *path, long rows)
{
	struct workload_record *recs = calloc(CHUNK, sizeof(*recs));
	struct workload w;
	struct seeddb b;
	uint64_t rng = IMPORT_SEED;
	int64_t start;
	int rc;

	if (!recs)
		return ENOMEM;
	atolog_time_parse("2026-01-01T00:00:00Z", &start);
	workload_init(&w, IMPORT_SEED, (size_t)rows, (size_t)rows / ROWS_PER_SESSION,
		      start, SPAN_DAYS * US_PER_DAY);
	rc = seeddb_create(&b, path, "import") == SQLITE_OK ? 0 : EIO;
	for (long first = 0; rc == 0 && first < rows; first += CHUNK) {
		size_t n = (size_t)(rows - first < CHUNK ? rows - first : CHUNK);

		bench_progress("import: building the seed database: %ld%%",
			       first * 100 / rows);
		rc = workload_make_range(&w, (size_t)first, n, recs);
		for (size_t k = 0; rc == 0 && k < n; k++) {
			char id[WORKLOAD_UUID_TEXT_SIZE];

			workload_uuid4(&rng, id);
			if (seeddb_insert(&b, &recs[k], id) != SQLITE_OK)
				rc = EIO;
		}
		if (rc == 0 || n)
			workload_free_range(recs, n);
	}
	if (seeddb_close(&b) != 0 && rc == 0)
		rc = EIO;
	bench_progress_done();
	free(recs);
	return rc;
}

/* Runs argv with stdout to /dev/null; seconds, or -1 when it failed. */
static double timed_run(char *const argv[])
{
	double t0 = bench_now();
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		if (!freopen("/dev/null", "w", stdout))
			_exit(127);
		execv(argv[0], argv);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0)
		return -1;
	return bench_now() - t0;
}

static void report(const char *what, double seconds, long rows, double dump)
{
	if (seconds < 0) {
		printf("%-34s %10s\n", what, "failed");
		return;
	}
	printf("%-34s %10.2f %12.0f", what, seconds, (double)rows / seconds);
	if (dump > 0)
		printf(" %10.2fx", seconds / dump);
	printf("\n");
}

int main(int argc, char **argv)
{
	char dir[BENCH_PATH_SIZE], db[BENCH_PATH_SIZE], store[BENCH_PATH_SIZE];
	char machine[BENCH_MACHINE_LINE_SIZE], sqlite_bin[BENCH_PATH_SIZE];
	char cli[BENCH_PATH_SIZE], rows_text[32];
	const char *sqlite = bench_find_program("sqlite3", sqlite_bin, sizeof(sqlite_bin));
	long rows = argc > 1 && strcmp(argv[1], "--quick") == 0 ? QUICK_ROWS : DEFAULT_ROWS;
	double dump = -1;
	int failures = 0;

	if (bench_fmt(dir, sizeof(dir), "bench-tmp/import-%ld", (long)getpid()) ||
	    bench_fmt(db, sizeof(db), "%s/interactions.db", dir) ||
	    bench_fmt(cli, sizeof(cli), "%s", "./atolog") || bench_mkdirs(dir)) {
		fprintf(stderr, "import: cannot prepare %s\n", dir);
		return 3;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	bench_machine_line(dir, machine, sizeof(machine));
	printf("atolog_bench_import\n%s\n", machine);
	if (access(cli, X_OK) != 0) {
		fprintf(stderr, "import: run from the build directory (./atolog)\n");
		return 3;
	}
	if (build_db(db, rows) != 0) {
		fprintf(stderr, "import: building %s failed\n", db);
		return 3;
	}
	snprintf(rows_text, sizeof(rows_text), "%ld", rows);
	printf("\n%ld rows in the seed's schema; seconds, rows/s, and each over "
	       ".dump's time\n", rows);
	printf("%-34s %10s %12s %11s\n", "", "seconds", "rows/s", "over .dump");
	if (sqlite) {
		char *const args[] = { (char *)sqlite, db, ".dump", NULL };

		dump = timed_run(args);
		report("sqlite3 .dump", dump, rows, -1);
	} else {
		printf("%-34s %10s\n", "sqlite3 .dump", "(no sqlite3 on PATH)");
	}
	for (int i = 0; i < 2; i++) {
		const char *sync = i ? "none" : "always";
		char what[64];
		char *const args[] = { cli, "--data", store, "--sync", (char *)sync,
				       "import-sqlite", db, NULL };
		double t;

		snprintf(what, sizeof(what), "atolog import-sqlite (sync %s)", sync);
		t = bench_fmt(store, sizeof(store), "%s/store-%s", dir, sync) ? -1
									    : timed_run(args);
		report(what, t, rows, dump);
		failures += t < 0;
	}
	bench_rmtree(dir);
	return failures ? 1 : 0;
}
