/*
 * test_snapshot.c - atolog_store_snapshot and atolog_snapshot_restore.
 *
 * A snapshot taken while a writer in another process appends must open,
 * verify, and hold exactly a prefix of what the writer acknowledged (the
 * writer records "0", "1", "2"... in one session, so a prefix is checked
 * by replaying it: no gap, nothing out of order). Sealed segments are
 * hard-linked. A restore gives back the same interactions, and writing to
 * the restored store leaves the snapshot as it was. A half-made snapshot
 * (a .tmp- directory) is not a snapshot, a live store is never restored
 * over, and a non-empty one only when told, kept aside.
 *
 * One store handle per process (LMDB's locks are per process): each
 * snapshot, verify and read runs in a child that reports through a pipe.
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

#define SMALL_SEGMENT 8192
#define SESSION "seq"

#define FAIL_MSG(...)                                                        \
	do {                                                                 \
		fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);              \
		fprintf(stderr, __VA_ARGS__);                                \
		fputc('\n', stderr);                                         \
		check_failures++;                                            \
	} while (0)

/* What a child found, sent back whole. */
struct probe {
	int rc;
	atolog_snapshot_info info;
	atolog_verify_report verify;
	long replayed;     /* interactions of SESSION, -1 if not a prefix */
	char msg[512];
};

/* Records "from", "from+1", ... in SESSION until n or killed. */
static void write_sequence(const char *dir, long from, long n)
{
	atolog_options opts = { .sync = ATOLOG_SYNC_NONE, .segment_size = SMALL_SEGMENT };
	atolog_store *s;

	CHECK_OK(atolog_store_open(dir, &opts, &s), NULL);
	for (long i = from; s && i < from + n; i++) {
		char prompt[32];
		atolog_interaction in = { .prompt = prompt, .session_id = SESSION,
					  .project = "p" };

		snprintf(prompt, sizeof(prompt), "%ld", i);
		CHECK_OK(atolog_interaction_record(s, &in, NULL), s);
	}
	CHECK_OK(atolog_store_close(s), NULL);
}

/* The length of SESSION if its prompts are 0, 1, 2... in order, else -1. */
static long replay_prefix(atolog_store *s)
{
	const atolog_interaction *rec;
	atolog_iter *it;
	long n = 0;
	int rc;

	if (atolog_replay_open(s, SESSION, &it) != ATOLOG_OK)
		return -1;
	while ((rc = atolog_iter_next(it, &rec)) == ATOLOG_OK) {
		if (atol(rec->prompt) != n) {
			n = -1;
			break;
		}
		n++;
	}
	atolog_iter_close(it);
	return rc == ATOLOG_DONE || n < 0 ? n : -1;
}

enum probe_kind { PROBE_SNAPSHOT, PROBE_VERIFY };

/* In a child: snapshot dir into dest, or verify dir (read-only), and
 * replay its sequence. */
static struct probe run_probe(enum probe_kind kind, const char *dir, const char *dest)
{
	struct probe p = { .rc = -1 };
	int fds[2], status;
	pid_t pid;

	if (pipe(fds) != 0)
		abort();
	pid = fork();
	if (pid == 0) {
		atolog_options ro = { .flags = ATOLOG_OPEN_READONLY };
		atolog_store *s;

		close(fds[0]);
		p.rc = atolog_store_open(dir, &ro, &s);
		if (p.rc == ATOLOG_OK) {
			p.rc = kind == PROBE_SNAPSHOT
				       ? atolog_store_snapshot(s, dest, NULL, NULL, &p.info)
				       : atolog_store_verify(s, NULL, NULL, &p.verify);
			p.replayed = replay_prefix(s);
			snprintf(p.msg, sizeof(p.msg), "%s", atolog_errmsg(s));
			atolog_store_close(s);
		} else {
			snprintf(p.msg, sizeof(p.msg), "%s", atolog_errmsg(NULL));
		}
		_exit(write(fds[1], &p, sizeof(p)) == sizeof(p) ? 0 : 2);
	}
	close(fds[1]);
	if (read(fds[0], &p, sizeof(p)) != sizeof(p))
		p.rc = -1;
	close(fds[0]);
	waitpid(pid, &status, 0);
	return p;
}

/* A snapshot must open, verify, and hold a prefix of the sequence. */
static long check_snapshot(const char *snap, uint64_t records)
{
	struct probe v = run_probe(PROBE_VERIFY, snap, NULL);

	if (v.rc != ATOLOG_OK)
		FAIL_MSG("snapshot %s does not verify: %s", snap, v.msg);
	CHECK_INT(v.verify.records, records);
	CHECK_INT(v.verify.unindexed_frames, 0);
	if (v.replayed < 0)
		FAIL_MSG("snapshot %s is not a prefix of the sequence", snap);
	else
		CHECK_INT(v.replayed, records);
	return v.replayed;
}

static void test_during_ingest(const char *dir)
{
	pid_t writer;
	long last = 0;
	int status;

	write_sequence(dir, 0, 200);
	writer = fork();
	if (writer == 0) {
		alarm(60);
		write_sequence(dir, 200, 100000000);
		_exit(0);
	}
	usleep(50 * 1000);
	for (int i = 0; i < 6; i++) {
		char name[32], *snap;
		struct probe p;

		snprintf(name, sizeof(name), "snap-%d", i);
		snap = check_path(dir, name);
		p = run_probe(PROBE_SNAPSHOT, dir, snap);
		if (p.rc != ATOLOG_OK) {
			FAIL_MSG("snapshot %d: %s", i, p.msg);
		} else {
			long n = check_snapshot(snap, p.info.records);

			/* Later snapshots hold more, and at least what was there. */
			CHECK(n >= 200 && n >= last);
			last = n;
			CHECK(p.info.segments > 1);
			CHECK_INT(p.info.linked_segments, p.info.segments - 1);
		}
		free(snap);
		usleep(30 * 1000);
	}
	kill(writer, SIGKILL);
	waitpid(writer, &status, 0);
}

static void test_restore_round_trip(const char *root)
{
	char *src = check_path(root, "src"), *snap = check_path(root, "snap"),
	     *dst = check_path(root, "dst"), *tmp = check_path(root, "half.tmp-1");
	struct probe p, after;
	long n;

	write_sequence(src, 0, 500);
	p = run_probe(PROBE_SNAPSHOT, src, snap);
	CHECK_RC(p.rc, ATOLOG_OK, NULL);
	CHECK_INT(p.info.records, 500);
	/* The source goes on; the snapshot does not move. */
	write_sequence(src, 500, 100);
	CHECK_RC(atolog_snapshot_restore(snap, dst, 0, NULL, NULL), ATOLOG_OK, NULL);
	n = check_snapshot(dst, 500);
	CHECK_INT(n, 500);
	/* The restored store takes writes; the snapshot stays as it was. */
	write_sequence(dst, 500, 50);
	after = run_probe(PROBE_VERIFY, dst, NULL);
	CHECK_RC(after.rc, ATOLOG_OK, NULL);
	CHECK_INT(after.replayed, 550);
	check_snapshot(snap, 500);

	/* Refusals: not empty without REPLACE; with it, moved aside. */
	CHECK_RC(atolog_snapshot_restore(snap, dst, 0, NULL, NULL), ATOLOG_EXISTS, NULL);
	CHECK_MSG(NULL, "--force");
	CHECK_RC(atolog_snapshot_restore(snap, dst, ATOLOG_RESTORE_REPLACE, NULL, NULL),
		 ATOLOG_OK, NULL);
	CHECK_INT(check_snapshot(dst, 500), 500);
	/* A half-made snapshot is not one. */
	CHECK(mkdir(tmp, 0755) == 0);
	CHECK_RC(atolog_snapshot_restore(tmp, dst, ATOLOG_RESTORE_REPLACE, NULL, NULL),
		 ATOLOG_NOTFOUND, NULL);
	/* An existing destination is never overwritten by a snapshot. */
	p = run_probe(PROBE_SNAPSHOT, src, snap);
	CHECK_RC(p.rc, ATOLOG_EXISTS, NULL);
	free(src);
	free(snap);
	free(dst);
	free(tmp);
}

static void test_restore_refuses_live(const char *root)
{
	char *src = check_path(root, "src"), *snap = check_path(root, "snap"),
	     *live = check_path(root, "live");
	int ready[2], status;
	pid_t writer;
	char c;

	write_sequence(src, 0, 20);
	CHECK_RC(run_probe(PROBE_SNAPSHOT, src, snap).rc, ATOLOG_OK, NULL);
	write_sequence(live, 0, 5);
	if (pipe(ready) != 0)
		abort();
	writer = fork();
	if (writer == 0) {
		atolog_store *s;

		if (atolog_store_open(live, NULL, &s) != ATOLOG_OK)
			_exit(1);
		if (write(ready[1], "r", 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	CHECK(read(ready[0], &c, 1) == 1);
	CHECK_RC(atolog_snapshot_restore(snap, live, ATOLOG_RESTORE_REPLACE, NULL, NULL),
		 ATOLOG_LOCKED, NULL);
	kill(writer, SIGKILL);
	waitpid(writer, &status, 0);
	close(ready[0]);
	close(ready[1]);
	free(src);
	free(snap);
	free(live);
}

int main(void)
{
	static const struct {
		const char *name;
		void (*run)(const char *dir);
	} tests[] = {
		{ "during_ingest", test_during_ingest },
		{ "restore_round_trip", test_restore_round_trip },
		{ "restore_refuses_live", test_restore_refuses_live },
	};

	check_rand_init("test_snapshot");
	for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
		char *dir = check_tmpdir(tests[i].name);

		fprintf(stderr, "test_snapshot: %s\n", tests[i].name);
		tests[i].run(dir);
		check_tmpdir_remove(dir);
	}
	return check_report("test_snapshot");
}
