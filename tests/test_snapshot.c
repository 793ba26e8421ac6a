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
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "engine.h" /* store_index_wait */

#define SMALL_SEGMENT 65536
#define LIVE_RECORDS 20000 /* what the writer appends during the snapshots */
#define SESSION "seq"

/* What a child found, sent back whole. */
struct probe {
	int rc;
	atolog_snapshot_info info;
	atolog_verify_report verify;
	long replayed;     /* interactions of SESSION, -1 if not a prefix */
	char msg[512];
};

/* Records "from", "from+1", ... in SESSION until n or killed. With
 * rolled >= 0, writes a byte to it once the log spans two segments and
 * the index has reached the second (a snapshot takes the segments up to
 * the index's point, engine/snapshot.c). */
static void write_sequence(const char *dir, long from, long n, int rolled)
{
	atolog_options opts = { .sync = ATOLOG_SYNC_NONE, .segment_size = SMALL_SEGMENT };
	atolog_store *s;

	CHECK_OK(atolog_store_open(dir, &opts, &s), NULL);
	for (long i = from; s && i < from + n; i++) {
		char prompt[32];
		atolog_interaction in = { .prompt = prompt, .session_id = SESSION,
					  .project = "p" };
		atolog_stats st;

		snprintf(prompt, sizeof(prompt), "%ld", i);
		CHECK_OK(atolog_interaction_record(s, &in, NULL), s);
		if (rolled >= 0 && atolog_store_stats(s, &st) == ATOLOG_OK &&
		    st.n_segments > 1) {
			store_index_wait(s);
			CHECK(write(rolled, "r", 1) == 1);
			close(rolled);
			rolled = -1;
		}
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
		CHECK_FAILF("snapshot %s does not verify: %s", snap, v.msg);
	CHECK_INT(v.verify.records, records);
	CHECK_INT(v.verify.unindexed_frames, 0);
	if (v.replayed < 0)
		CHECK_FAILF("snapshot %s is not a prefix of the sequence", snap);
	else
		CHECK_INT(v.replayed, records);
	return v.replayed;
}

#define SNAPSHOT_WRITER_GUARD_S 240

static void test_during_ingest(const char *dir)
{
	pid_t writer;
	long last = 0;
	int status, rolled[2];
	char c;

	write_sequence(dir, 0, 200, -1);
	CHECK(pipe(rolled) == 0);
	writer = fork();
	if (writer == 0) {
		/* A guard against an orphan, not a time limit: a loaded
		 * machine under ASan takes minutes (ctest stops at 300 s). */
		alarm(SNAPSHOT_WRITER_GUARD_S);
		close(rolled[0]);
		write_sequence(dir, 200, LIVE_RECORDS, rolled[1]);
		pause(); /* until killed: the store stays as written */
		_exit(0);
	}
	/* Not a fixed pause: a slow writer (a loaded machine, a sanitizer)
	 * would not have sealed a segment yet, and every snapshot must link
	 * at least one. */
	close(rolled[1]);
	CHECK(read(rolled[0], &c, 1) == 1);
	close(rolled[0]);
	for (int i = 0; i < 6; i++) {
		char name[32], *snap;
		struct probe p;

		snprintf(name, sizeof(name), "snap-%d", i);
		snap = check_path(dir, name);
		p = run_probe(PROBE_SNAPSHOT, dir, snap);
		if (p.rc != ATOLOG_OK) {
			CHECK_FAILF("snapshot %d: %s", i, p.msg);
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
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

static bool exists_in(const char *dir, const char *name)
{
	char *path = check_path(dir, name);
	bool yes = access(path, F_OK) == 0;

	free(path);
	return yes;
}

static void test_restore_round_trip(const char *root)
{
	char *src = check_path(root, "src"), *snap = check_path(root, "snap"),
	     *dst = check_path(root, "dst"), *tmp = check_path(root, "half.tmp-1");
	struct probe p, after;
	long n;

	write_sequence(src, 0, 500, -1);
	p = run_probe(PROBE_SNAPSHOT, src, snap);
	CHECK_RC(p.rc, ATOLOG_OK, NULL);
	CHECK_INT(p.info.records, 500);
	/* The source goes on; the snapshot does not move. */
	write_sequence(src, 500, 100, -1);
	CHECK_RC(atolog_snapshot_restore(snap, dst, 0, NULL, NULL), ATOLOG_OK, NULL);
	n = check_snapshot(dst, 500);
	CHECK_INT(n, 500);
	/* Neither is a work directory any more. */
	CHECK(!exists_in(snap, ".atolog-work") && !exists_in(dst, ".atolog-work"));
	/* The restored store takes writes; the snapshot stays as it was. */
	write_sequence(dst, 500, 50, -1);
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
	/* A snapshot that cannot be read: refused before dst is touched. */
	{
		char *broken = check_path(root, "broken"), *mdb;

		CHECK_RC(run_probe(PROBE_SNAPSHOT, src, broken).rc, ATOLOG_OK, NULL);
		mdb = check_path(broken, "index/data.mdb");
		CHECK(unlink(mdb) == 0);
		CHECK(atolog_snapshot_restore(broken, dst, ATOLOG_RESTORE_REPLACE, NULL,
					      NULL) != ATOLOG_OK);
		CHECK_INT(check_snapshot(dst, 500), 500);
		free(mdb);
		free(broken);
	}
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

	write_sequence(src, 0, 20, -1);
	CHECK_RC(run_probe(PROBE_SNAPSHOT, src, snap).rc, ATOLOG_OK, NULL);
	write_sequence(live, 0, 5, -1);
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

/* ------------------------------------------------------------------------
 * Retention, through `atolog snapshot cleanup`, against a naive model.
 */

struct fake {
	char name[32];
	int64_t t;   /* seconds */
	bool keep;   /* the model's verdict */
};

static int64_t day_of(int64_t t)
{
	return t >= 0 ? t / 86400 : -((-t + 86399) / 86400);
}

/* ISO week as year*100+week, from the Thursday of t's week. */
static long iso_week_of(int64_t t)
{
	int64_t day = day_of(t), monday_based = ((day + 3) % 7 + 7) % 7; /* 1970-01-01: Thu */
	time_t thursday = (time_t)((day - monday_based + 3) * 86400);
	struct tm tm;

	gmtime_r(&thursday, &tm);
	return (long)(tm.tm_year + 1900) * 100 + tm.tm_yday / 7 + 1;
}

static int fake_newest_first(const void *a, const void *b)
{
	const struct fake *x = a, *y = b;

	if (x->t != y->t)
		return x->t < y->t ? 1 : -1;
	return strcmp(y->name, x->name);
}

/* Kept iff a rule keeps it, each rule judged on its own. */
static void model_retention(struct fake *f, size_t n, long last, long daily, long weekly)
{
	qsort(f, n, sizeof(*f), fake_newest_first);
	for (size_t i = 0; i < n; i++) {
		long days = 0, weeks = 0;
		bool first_of_day = true, first_of_week = true;

		for (size_t j = 0; j < i; j++) {
			first_of_day &= day_of(f[j].t) != day_of(f[i].t);
			first_of_week &= iso_week_of(f[j].t) != iso_week_of(f[i].t);
		}
		for (size_t j = 0; j <= i; j++) {
			bool new_day = true, new_week = true;

			for (size_t k = 0; k < j; k++) {
				new_day &= day_of(f[k].t) != day_of(f[j].t);
				new_week &= iso_week_of(f[k].t) != iso_week_of(f[j].t);
			}
			days += new_day;
			weeks += new_week;
		}
		f[i].keep = i == 0 || (long)i < last || (first_of_day && days <= daily) ||
			    (first_of_week && weeks <= weekly);
	}
}

static void make_fake(const char *dir, const char *name, int64_t t, bool manifest)
{
	char *path = check_path(dir, name), *file;
	char iso[ATOLOG_TIME_ISO_LEN];
	FILE *f;

	CHECK(mkdir(path, 0755) == 0);
	if (manifest) {
		file = check_path(path, ATOLOG_SNAPSHOT_MANIFEST);
		atolog_time_format_iso(t * 1000000, iso);
		f = fopen(file, "w");
		if (f) {
			fprintf(f, "{\"created_at\":\"%s\",\"records\":1}\n", iso);
			fclose(f);
		}
		free(file);
	}
	free(path);
}


/* Runs `atolog snapshot cleanup dir args`; returns stdout (malloc'ed). */
static char *cleanup(const char *cli, const char *dir, const char *args)
{
	char cmd[8192], *out = calloc(1, 1 << 16);
	size_t len = 0, n;
	FILE *p;

	snprintf(cmd, sizeof(cmd), "%s snapshot cleanup %s %s 2>/dev/null", cli, dir, args);
	p = popen(cmd, "r");
	while (p && out && (n = fread(out + len, 1, (1 << 16) - 1 - len, p)) > 0)
		len += n;
	if (p)
		CHECK(pclose(p) == 0);
	return out;
}

static void test_cleanup_rounds(const char *root)
{
	const char *cli = getenv("ATOLOG_CLI");

	if (!cli) {
		CHECK_FAILF("ATOLOG_CLI is not set");
		return;
	}
	for (int round = 0; round < 12; round++) {
		char name[32], args[128], *dir, *out;
		struct fake f[48];
		size_t n = 1 + check_rand_below(40);
		long last = (long)check_rand_below(4), daily = (long)check_rand_below(8),
		     weekly = (long)check_rand_below(5);
		unsigned omit = (unsigned)check_rand_below(8); /* flags left out */
		int64_t base = INT64_C(1790000000);

		snprintf(name, sizeof(name), "round%d", round);
		dir = check_path(root, name);
		CHECK(mkdir(dir, 0755) == 0);
		for (size_t i = 0; i < n; i++) {
			/* Over ~10 weeks, several a day at times. */
			f[i].t = base + (int64_t)check_rand_below(70 * 86400);
			snprintf(f[i].name, sizeof(f[i].name), "snap-%02zu", i);
			make_fake(dir, f[i].name, f[i].t, true);
		}
		make_fake(dir, "half.tmp-7", base + 80 * 86400, true);
		make_fake(dir, "not-a-snapshot", 0, false);
		{
			/* A link to a snapshot (a pin) is not one itself. */
			char *link_path = check_path(dir, "pinned"), *target = check_path(dir, f[0].name);

			CHECK(symlink(target, link_path) == 0);
			free(link_path);
			free(target);
		}
		/* Counts left out keep their defaults (7, 7, 4). */
		if (omit & 1)
			last = 7;
		if (omit & 2)
			daily = 7;
		if (omit & 4)
			weekly = 4;
		model_retention(f, n, last, daily, weekly);
		args[0] = '\0';
		if (!(omit & 1))
			snprintf(args + strlen(args), sizeof(args) - strlen(args), " --keep-last %ld", last);
		if (!(omit & 2))
			snprintf(args + strlen(args), sizeof(args) - strlen(args), " --keep-daily %ld", daily);
		if (!(omit & 4))
			snprintf(args + strlen(args), sizeof(args) - strlen(args), " --keep-weekly %ld", weekly);
		/* Dry run: the verdicts, nothing removed. */
		out = cleanup(cli, dir, args);
		for (size_t i = 0; i < n; i++) {
			char want[96];

			snprintf(want, sizeof(want), "\"name\":\"%.31s\",", f[i].name);
			if (!strstr(out, want))
				CHECK_FAILF("round %d: %s not listed", round, f[i].name);
			snprintf(want, sizeof(want), "\"%.31s\",\"created_at\":\"", f[i].name);
			{
				const char *at = strstr(out, want);
				const char *action = at ? strstr(at, "\"action\":\"") : NULL;

				if (!action || strncmp(action + 10, f[i].keep ? "keep" : "delete",
						       f[i].keep ? 4 : 6) != 0)
					CHECK_FAILF("round %d (%s): %s should %s", round, args,
						 f[i].name, f[i].keep ? "be kept" : "go");
			}
			CHECK(exists_in(dir, f[i].name));
		}
		CHECK(strstr(out, "\"dry_run\":true") != NULL);
		free(out);
		/* Apply: exactly the model's survivors, and the others untouched. */
		snprintf(args + strlen(args), sizeof(args) - strlen(args), " --apply");
		free(cleanup(cli, dir, args));
		for (size_t i = 0; i < n; i++) {
			if (exists_in(dir, f[i].name) != f[i].keep)
				CHECK_FAILF("round %d: after --apply %s %s", round, f[i].name,
					 f[i].keep ? "is gone" : "is still there");
		}
		CHECK(exists_in(dir, "half.tmp-7"));
		CHECK(exists_in(dir, "not-a-snapshot"));
		/* Every survivor is still a whole snapshot. */
		for (size_t i = 0; i < n; i++) {
			char m[64];

			snprintf(m, sizeof(m), "%.31s/%s", f[i].name, ATOLOG_SNAPSHOT_MANIFEST);
			if (f[i].keep && !exists_in(dir, m))
				CHECK_FAILF("round %d: %s lost its manifest", round, f[i].name);
		}
		CHECK(exists_in(dir, f[0].name)); /* the newest, always */
		free(dir);
	}
}

/* ------------------------------------------------------------------------
 * Killed snapshots: their work directories are swept by the next snapshot
 * into the same directory, and by cleanup (listed in a dry run).
 */

static long dead_pid(void)
{
	pid_t pid = fork();
	int status;

	if (pid == 0)
		_exit(0);
	waitpid(pid, &status, 0);
	return (long)pid;
}

static void die_on_progress(uint64_t done, uint64_t total, void *ctx)
{
	(void)done, (void)total, (void)ctx;
	_exit(9);
}

/* A real one: a child whose snapshot is killed half way. */
static void killed_snapshot(const char *store, const char *dest)
{
	pid_t pid = fork();
	int status;

	if (pid == 0) {
		atolog_options ro = { .flags = ATOLOG_OPEN_READONLY };
		atolog_snapshot_info info;
		atolog_store *s;

		if (atolog_store_open(store, &ro, &s) != ATOLOG_OK)
			_exit(1);
		atolog_store_snapshot(s, dest, die_on_progress, NULL, &info);
		_exit(2);
	}
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 9);
}

static size_t count_tmp(const char *dir)
{
	char cmd[1024];
	FILE *p;
	size_t n = 0;
	int c;

	snprintf(cmd, sizeof(cmd), "find %s -maxdepth 1 -type d -name '*.tmp-*-*' | wc -l",
		 dir);
	p = popen(cmd, "r");
	while (p && (c = fgetc(p)) != EOF && c >= '0' && c <= '9')
		n = n * 10 + (size_t)(c - '0');
	if (p)
		pclose(p);
	return n;
}

/* Who this process is, as a work directory's marker says it. */
struct whoami {
	char boot[64], host[256];
	unsigned long long pidns, start;
};

static void whoami(struct whoami *w)
{
	char buf[1024], *p;
	struct stat st;
	FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");

	memset(w, 0, sizeof(*w));
	if (f && fgets(w->boot, sizeof(w->boot), f))
		w->boot[strcspn(w->boot, "\n")] = '\0';
	if (f)
		fclose(f);
	gethostname(w->host, sizeof(w->host) - 1);
	if (stat("/proc/self/ns/pid", &st) == 0)
		w->pidns = (unsigned long long)st.st_ino;
	f = fopen("/proc/self/stat", "r");
	if (f && fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')'))) {
		for (int field = 2; p && field < 22; field++)
			p = strchr(p + 1, ' ');
		if (p)
			sscanf(p, " %llu", &w->start);
	}
	if (f)
		fclose(f);
}

/* A work directory as a snapshot leaves it, marked as made by pid. */
static void make_work(const char *dir, const char *name, const struct whoami *w,
		      long pid)
{
	char *path = check_path(dir, name), *marker;
	FILE *f;

	make_fake(dir, name, 0, false);
	marker = check_path(path, ".atolog-work");
	f = fopen(marker, "w");
	if (f) {
		fprintf(f, "atolog-work 1\nboot %s\nhost %s\npidns %llu\npid %ld\n"
			"start %llu\n", w->boot, w->host, w->pidns, pid, w->start);
		fclose(f);
	}
	free(marker);
	free(path);
}

static void test_stale_work_dirs(const char *root)
{
	const char *cli = getenv("ATOLOG_CLI");
	char *store = check_path(root, "store"), *backups = check_path(root, "backups");
	char dead[64], live[64], reused[64], rebooted[64], host[64], ns[64], bare[64];
	struct whoami me, other;
	atolog_snapshot_info info;
	atolog_options ro = { .flags = ATOLOG_OPEN_READONLY };
	atolog_store *s;
	long gone = dead_pid(), self = (long)getpid();
	char *out;

	if (!cli) {
		CHECK_FAILF("ATOLOG_CLI is not set");
		return;
	}
	whoami(&me);
	write_sequence(store, 0, 300, -1);
	CHECK(mkdir(backups, 0755) == 0);
	{
		char *dest = check_path(backups, "killed");

		killed_snapshot(store, dest);
		free(dest);
	}
	/* Stale: its process is gone; our pid but another start (reused);
	 * another boot of this host. */
	snprintf(dead, sizeof(dead), "old.tmp-%ld-1", gone);
	make_work(backups, dead, &me, gone);
	snprintf(reused, sizeof(reused), "re.tmp-%ld-2", self);
	other = me;
	other.start = me.start + 1000;
	make_work(backups, reused, &other, self);
	snprintf(rebooted, sizeof(rebooted), "boot.tmp-%ld-3", self);
	other = me;
	snprintf(other.boot, sizeof(other.boot), "00000000-0000-0000-0000-000000000000");
	make_work(backups, rebooted, &other, self);
	/* Left alone: ours and running; another host's; another pid
	 * namespace's (a container: its pids mean nothing here), however
	 * dead they look; no marker at all; not a work directory's name. */
	snprintf(live, sizeof(live), "run.tmp-%ld-4", self);
	make_work(backups, live, &me, self);
	snprintf(host, sizeof(host), "nfs.tmp-%ld-5", gone);
	other = me;
	snprintf(other.host, sizeof(other.host), "another-host");
	make_work(backups, host, &other, gone);
	snprintf(ns, sizeof(ns), "ns.tmp-%ld-6", gone);
	other = me;
	other.pidns = me.pidns + 1;
	make_work(backups, ns, &other, gone);
	snprintf(bare, sizeof(bare), "bare.tmp-%ld-7", gone);
	make_fake(backups, bare, 0, false);
	make_fake(backups, "half.tmp-7", 0, false);
	CHECK_INT(count_tmp(backups), 8);

	/* Cleanup's dry run lists the stale (the killed one too) and
	 * removes nothing. */
	out = cleanup(cli, backups, "");
	CHECK(out && strstr(out, dead) && strstr(out, reused) && strstr(out, rebooted));
	CHECK(out && strstr(out, "killed.tmp-"));
	CHECK(out && strstr(out, "\"reasons\":[\"stale\"]") && strstr(out, "\"stale\":4"));
	CHECK(out && !strstr(out, live) && !strstr(out, host) && !strstr(out, ns) &&
	      !strstr(out, bare) && !strstr(out, "half.tmp-7"));
	free(out);
	CHECK_INT(count_tmp(backups), 8);

	/* The next snapshot into the directory sweeps them. */
	CHECK_OK(atolog_store_open(store, &ro, &s), NULL);
	if (s) {
		char *dest = check_path(backups, "snap");

		CHECK_OK(atolog_store_snapshot(s, dest, NULL, NULL, &info), s);
		CHECK_INT(info.records, 300);
		CHECK(!exists_in(dest, ".atolog-work")); /* a snapshot, not work */
		free(dest);
		/* A snapshot that fails after the sweep still says why (/proc
		 * can be listed, but nothing can be made in it). */
		CHECK(atolog_store_snapshot(s, "/proc/atolog-snapshot-test", NULL, NULL,
					    &info) != ATOLOG_OK);
		CHECK(strstr(atolog_errmsg(s), "atolog-snapshot-test") != NULL);
		atolog_store_close(s);
	}
	CHECK(!exists_in(backups, dead) && !exists_in(backups, reused) &&
	      !exists_in(backups, rebooted));
	CHECK(exists_in(backups, live) && exists_in(backups, host) &&
	      exists_in(backups, ns) && exists_in(backups, bare));
	CHECK(exists_in(backups, "half.tmp-7") && exists_in(backups, "snap"));
	CHECK_INT(count_tmp(backups), 4);

	/* And cleanup --apply does too. */
	make_work(backups, dead, &me, gone);
	out = cleanup(cli, backups, "--apply");
	CHECK(out && strstr(out, "\"action\":\"deleted\",\"reasons\":[\"stale\"]"));
	free(out);
	CHECK(!exists_in(backups, dead) && exists_in(backups, live));
	CHECK(exists_in(backups, "snap")); /* the newest snapshot, kept */
	free(store);
	free(backups);
}

int main(int argc, char **argv)
{
	static const struct check_case tests[] = {
		{ "during_ingest", test_during_ingest },
		{ "restore_round_trip", test_restore_round_trip },
		{ "restore_refuses_live", test_restore_refuses_live },
		{ "cleanup_rounds", test_cleanup_rounds },
		{ "stale_work_dirs", test_stale_work_dirs },
	};

	check_args(argc, argv);
	check_rand_init("test_snapshot");
	return check_run_cases("test_snapshot", tests, sizeof(tests) / sizeof(tests[0]));
}
