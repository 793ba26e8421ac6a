/*
 * test_fulldisk.c - a store on a small filesystem that fills up while it
 * is written: tmpfs, and ext4 on a loop device.
 *
 * What must hold, in process, through the CLI and through `atolog serve`:
 * no crash (LMDB over a sparse map used to die of SIGBUS here), writers
 * refused with ATOLOG_FULL (exit 3, HTTP 503 with Retry-After) and nothing
 * of a refused write stored, readers served throughout, writes taken again
 * once there is room, every acknowledged interaction there after a
 * reopen, and verify clean. A segment whose pre-allocation failed keeps
 * none of what it reserved.
 *
 * Mounting needs root (and a kernel that lets this process mount): when
 * it cannot, the test says why and exits 77, which ctest reports as
 * skipped.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "check.h"
#include "engine.h"

#define SKIP_EXIT 77
#define SMALL_FS_MB 24           /* big enough for the stores, small to fill */
#define WRITERS 3
#define ACKED_BEFORE_FILL 300    /* interactions stored before the disk fills */
#define FULL_REFUSALS_WANTED 5   /* each writer sees this many ATOLOG_FULL */
#define WRITES_AFTER_ROOM 20     /* ... and this many successes afterwards */
#define PHASE_TIMEOUT_S 60
#define FILLER "filler"
#define MAX_ACKED 200000

enum fs_kind { FS_TMPFS, FS_EXT4 };

static const char *cli_path;

/* ------------------------------------------------------------------------
 * The small filesystem.
 */

struct small_fs {
	enum fs_kind kind;
	char *base;  /* a scratch directory: the image and the mount point */
	char *mnt;
	char *image;
	bool mounted;
};

static int run_quiet(const char *cmd)
{
	char *line;
	int status;

	if (asprintf(&line, "%s >/dev/null 2>&1", cmd) < 0)
		return -1;
	status = system(line);
	free(line);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Mounts a fresh filesystem of SMALL_FS_MB; false (and why) if it cannot. */
static bool fs_mount(struct small_fs *fs, enum fs_kind kind)
{
	char cmd[1024];

	memset(fs, 0, sizeof(*fs));
	fs->kind = kind;
	fs->base = check_tmpdir("fulldisk");
	fs->mnt = check_path(fs->base, "mnt");
	fs->image = check_path(fs->base, "fs.img");
	if (mkdir(fs->mnt, 0755) != 0) {
		perror("mkdir");
		return false;
	}
	if (kind == FS_TMPFS) {
		snprintf(cmd, sizeof(cmd), "mount -t tmpfs -o size=%dm tmpfs '%s'",
			 SMALL_FS_MB, fs->mnt);
	} else {
		snprintf(cmd, sizeof(cmd), "truncate -s %dM '%s' && mkfs.ext4 -q -F -m 0 "
			 "'%s' && mount -o loop '%s' '%s'", SMALL_FS_MB, fs->image,
			 fs->image, fs->image, fs->mnt);
	}
	fs->mounted = run_quiet(cmd) == 0;
	return fs->mounted;
}

static void fs_unmount(struct small_fs *fs)
{
	char cmd[1024];

	if (fs->mounted) {
		snprintf(cmd, sizeof(cmd), "umount '%s' || umount -l '%s'", fs->mnt,
			 fs->mnt);
		CHECK(run_quiet(cmd) == 0);
	}
	free(fs->mnt);
	free(fs->image);
	check_tmpdir_remove(fs->base);
}

static const char *fs_name(enum fs_kind kind)
{
	return kind == FS_TMPFS ? "tmpfs" : "ext4";
}

/* Writes a file until the filesystem refuses another byte. */
static void fs_fill(const struct small_fs *fs)
{
	static char chunk[1 << 20];
	char *path = check_path(fs->mnt, FILLER);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	CHECK(fd >= 0);
	for (size_t n = sizeof(chunk); fd >= 0 && n > 0; n /= 4) {
		while (write(fd, chunk, n) == (ssize_t)n)
			;
	}
	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
	free(path);
}

static void fs_free(const struct small_fs *fs)
{
	char *path = check_path(fs->mnt, FILLER);

	CHECK(unlink(path) == 0);
	free(path);
}

/* ------------------------------------------------------------------------
 * In process: writer threads and a reader while the disk fills.
 */

struct run {
	atolog_store *store;
	pthread_mutex_t lock;
	char (*acked)[ATOLOG_ID_TEXT_LEN + 1];
	size_t n_acked;
	atomic_bool stop;
	atomic_int phase;             /* 0 before the fill, 1 full, 2 room again */
	atomic_long full[WRITERS];    /* ATOLOG_FULL seen while full */
	atomic_long after[WRITERS];   /* successes once there is room */
	atomic_long unexpected;       /* any other failure */
	atomic_long reads;
};

struct writer_arg {
	struct run *run;
	int n;
};

static void *writer_main(void *arg)
{
	struct writer_arg *wa = arg;
	struct run *r = wa->run;
	char prompt[64], *response = malloc(1500);
	long i = 0;

	memset(response, 'r', 1499);
	response[1499] = '\0';
	while (!atomic_load(&r->stop)) {
		atolog_interaction in = { .prompt = prompt, .response = response,
					  .project = "full", .session_id = "s" };
		atolog_interaction *out;
		int phase = atomic_load(&r->phase), rc;

		snprintf(prompt, sizeof(prompt), "writer %d, %ld", wa->n, i++);
		rc = atolog_interaction_record(r->store, &in, &out);
		if (rc == ATOLOG_OK) {
			pthread_mutex_lock(&r->lock);
			if (r->n_acked < MAX_ACKED)
				memcpy(r->acked[r->n_acked++], out->id, ATOLOG_ID_TEXT_LEN + 1);
			pthread_mutex_unlock(&r->lock);
			atolog_interaction_free(out);
			if (phase == 2)
				atomic_fetch_add(&r->after[wa->n], 1);
		} else if (rc == ATOLOG_FULL) {
			if (phase == 1)
				atomic_fetch_add(&r->full[wa->n], 1);
			usleep(2000);
		} else {
			fprintf(stderr, "writer %d: %s: %s\n", wa->n, atolog_strerror(rc),
				atolog_errmsg(r->store));
			atomic_fetch_add(&r->unexpected, 1);
			usleep(2000);
		}
	}
	free(response);
	return NULL;
}

/* Gets an acknowledged interaction and lists the newest, over and over:
 * none of it may fail while the disk is full. */
static void *reader_main(void *arg)
{
	struct run *r = arg;

	while (!atomic_load(&r->stop)) {
		char id[ATOLOG_ID_TEXT_LEN + 1] = "";
		atolog_query q = { .project = "full", .limit = 20 };
		const atolog_interaction *rec;
		atolog_interaction *got;
		atolog_iter *it;
		int rc;

		pthread_mutex_lock(&r->lock);
		if (r->n_acked)
			memcpy(id, r->acked[check_rand_below(r->n_acked)], sizeof(id));
		pthread_mutex_unlock(&r->lock);
		if (id[0]) {
			rc = atolog_interaction_get(r->store, id, &got);
			if (rc == ATOLOG_OK)
				atolog_interaction_free(got);
			else
				atomic_fetch_add(&r->unexpected, 1);
		}
		rc = atolog_list_open(r->store, &q, &it);
		if (rc == ATOLOG_OK) {
			while ((rc = atolog_iter_next(it, &rec)) == ATOLOG_OK)
				;
			atolog_iter_close(it);
		}
		if (rc != ATOLOG_DONE) {
			fprintf(stderr, "reader: %s: %s\n", atolog_strerror(rc),
				atolog_errmsg(r->store));
			atomic_fetch_add(&r->unexpected, 1);
		}
		atomic_fetch_add(&r->reads, 1);
		usleep(1000);
	}
	return NULL;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long acked_count(struct run *r)
{
	long n;

	pthread_mutex_lock(&r->lock);
	n = (long)r->n_acked;
	pthread_mutex_unlock(&r->lock);
	return n;
}

/* Waits until every writer's counter reaches want; false on time out. */
static bool wait_all(atomic_long *counters, long want)
{
	double until = now_s() + PHASE_TIMEOUT_S;

	while (now_s() < until) {
		bool all = true;

		for (int i = 0; i < WRITERS; i++)
			all &= atomic_load(&counters[i]) >= want;
		if (all)
			return true;
		usleep(10000);
	}
	return false;
}

/* Every acknowledged id is there, and nothing else: a refused write
 * stored nothing. */
static void check_all_there(const char *dir, const struct run *r)
{
	atolog_options ro = { .flags = ATOLOG_OPEN_READONLY };
	atolog_store *s;
	atolog_stats st;
	size_t missing = 0;

	CHECK_OK(atolog_store_open(dir, &ro, &s), NULL);
	if (!s)
		return;
	for (size_t i = 0; i < r->n_acked; i++) {
		atolog_interaction *got;

		if (atolog_interaction_get(s, r->acked[i], &got) == ATOLOG_OK)
			atolog_interaction_free(got);
		else
			missing++;
	}
	CHECK_INT(missing, 0);
	CHECK_OK(atolog_store_stats(s, &st), s);
	CHECK_INT(st.n_records, r->n_acked);
	atolog_store_close(s);
	CHECK_OK(check_verify_dir(dir), NULL);
}

static void test_in_process(enum fs_kind kind, atolog_sync_mode sync)
{
	struct small_fs fs;
	struct run r = { .n_acked = 0 };
	struct writer_arg wa[WRITERS];
	pthread_t writers[WRITERS], reader;
	atolog_options opts = { .sync = sync, .segment_size = 256 << 10 };
	char *dir;

	if (!fs_mount(&fs, kind)) {
		fs_unmount(&fs);
		return;
	}
	dir = check_path(fs.mnt, "store");
	r.acked = calloc(MAX_ACKED, sizeof(*r.acked));
	pthread_mutex_init(&r.lock, NULL);
	CHECK_OK(atolog_store_open(dir, &opts, &r.store), NULL);
	for (int i = 0; r.store && i < WRITERS; i++) {
		wa[i] = (struct writer_arg){ &r, i };
		pthread_create(&writers[i], NULL, writer_main, &wa[i]);
	}
	if (r.store) {
		pthread_create(&reader, NULL, reader_main, &r);
		while (acked_count(&r) < ACKED_BEFORE_FILL)
			usleep(1000);
		atomic_store(&r.phase, 1);
		fs_fill(&fs);
		CHECK(wait_all(r.full, FULL_REFUSALS_WANTED));
		atomic_store(&r.phase, 2);
		fs_free(&fs);
		CHECK(wait_all(r.after, WRITES_AFTER_ROOM));
		atomic_store(&r.stop, true);
		for (int i = 0; i < WRITERS; i++)
			pthread_join(writers[i], NULL);
		pthread_join(reader, NULL);
		CHECK_INT(atomic_load(&r.unexpected), 0);
		CHECK(atomic_load(&r.reads) > 0);
		CHECK_OK(atolog_store_close(r.store), NULL);
		check_all_there(dir, &r);
	}
	fprintf(stderr, "%s, sync %d: %zu acknowledged, %ld reads, FULL %ld/%ld/%ld\n",
		fs_name(kind), (int)sync, r.n_acked, atomic_load(&r.reads),
		atomic_load(&r.full[0]), atomic_load(&r.full[1]),
		atomic_load(&r.full[2]));
	pthread_mutex_destroy(&r.lock);
	free(r.acked);
	free(dir);
	fs_unmount(&fs);
}

/* A segment whose 64 MiB reservation the disk cannot give keeps nothing
 * of it: the disk's room stays for the data. */
static void test_failed_reservation(enum fs_kind kind)
{
	struct small_fs fs;
	atolog_interaction in = { .prompt = "x" };
	atolog_interaction *out;
	atolog_store *s;
	char *dir, *seg;

	if (!fs_mount(&fs, kind)) {
		fs_unmount(&fs);
		return;
	}
	dir = check_path(fs.mnt, "store");
	seg = check_path(dir, "segments/0000000000000001.seg");
	CHECK_OK(atolog_store_open(dir, NULL, &s), NULL);
	if (s) {
		CHECK_OK(atolog_interaction_record(s, &in, &out), s);
		atolog_interaction_free(out);
		/* Open, so not trimmed by a seal or a close. */
		CHECK(check_file_size(seg) < (1 << 20));
		CHECK_OK(atolog_store_close(s), NULL);
	}
	free(seg);
	free(dir);
	fs_unmount(&fs);
}

/* ------------------------------------------------------------------------
 * The index full while the log still has room (its segment reserved):
 * writes go on into the log until the recent set is full, then are
 * refused; registrations are refused before they are written; an online
 * snapshot holds every acknowledged record without waiting for the index;
 * compaction is refused; all of it resumes once there is room.
 */

#define INDEX_FULL_SEGMENT (8u << 20) /* reserved ahead: room for the log */
#define INDEX_FULL_RECENT 64          /* unindexed records before refusals */

static long record_until_full(atolog_store *s, char (*ids)[ATOLOG_ID_TEXT_LEN + 1],
			      long max)
{
	static char response[1500];
	long n = 0;

	memset(response, 'r', sizeof(response) - 1);
	for (; n < max; n++) {
		atolog_interaction in = { .prompt = "index full", .response = response,
					  .project = "p" };
		atolog_interaction *out;
		int rc = atolog_interaction_record(s, &in, &out);

		if (rc == ATOLOG_FULL)
			break;
		CHECK_OK(rc, s);
		if (rc != ATOLOG_OK)
			break;
		memcpy(ids[n], out->id, ATOLOG_ID_TEXT_LEN + 1);
		atolog_interaction_free(out);
	}
	return n;
}

static void test_index_full(enum fs_kind kind)
{
	static char ids[20000][ATOLOG_ID_TEXT_LEN + 1];
	atolog_options opts = { .segment_size = INDEX_FULL_SEGMENT };
	const char *alias[] = { "pp" };
	atolog_compact_options co = { .flags = ATOLOG_COMPACT_APPLY };
	atolog_compact_report cr;
	atolog_snapshot_info info;
	struct small_fs fs;
	atolog_store *s = NULL;
	char *dir, *snap, *outside;
	long n = 0, more;
	double t0;

	if (!fs_mount(&fs, kind)) {
		fs_unmount(&fs);
		return;
	}
	dir = check_path(fs.mnt, "store");
	outside = check_tmpdir("fulldisk-snap");
	snap = check_path(outside, "snap");
	CHECK_OK(atolog_store_open(dir, &opts, &s), NULL);
	if (!s)
		goto out;
	store_set_recent_max(s, INDEX_FULL_RECENT);
	n = record_until_full(s, ids, 100);
	CHECK_INT(n, 100);
	fs_fill(&fs);
	n += record_until_full(s, ids + n, 20000 - n);
	/* Refused, so the index is what is full: the log's segment had room. */
	CHECK(n < 20000);
	CHECK(store_index_full(s));
	t0 = now_s();
	CHECK_RC(atolog_project_add(s, "p", alias, 1), ATOLOG_FULL, s);
	CHECK_RC(atolog_store_compact(s, &co, &cr), ATOLOG_FULL, s);
	CHECK_OK(atolog_store_snapshot(s, snap, NULL, NULL, &info), s);
	CHECK(now_s() - t0 < 10); /* none of it waited for the index */
	CHECK_INT(info.records, n);
	CHECK_OK(check_verify_dir(snap), NULL);
	{
		atolog_options ro = { .flags = ATOLOG_OPEN_READONLY };
		atolog_store *r;
		atolog_interaction *got;

		CHECK_OK(atolog_store_open(snap, &ro, &r), NULL);
		for (long i = 0; r && i < n; i += 7) {
			CHECK_OK(atolog_interaction_get(r, ids[i], &got), r);
			atolog_interaction_free(got);
		}
		atolog_store_close(r);
	}
	fs_free(&fs);
	/* Room again: the index retries, writes and registrations resume. */
	for (int i = 0; i < 200 && store_index_full(s); i++)
		usleep(10000);
	CHECK(!store_index_full(s));
	more = record_until_full(s, ids + n, 20);
	CHECK_INT(more, 20);
	n += more;
	CHECK_OK(atolog_project_add(s, "p", alias, 1), s);
	CHECK_OK(atolog_store_close(s), NULL);
	s = NULL;
	{
		atolog_options ro = { .flags = ATOLOG_OPEN_READONLY };
		atolog_stats st;
		atolog_store *r;

		CHECK_OK(atolog_store_open(dir, &ro, &r), NULL);
		if (r) {
			CHECK_OK(atolog_store_stats(r, &st), r);
			CHECK_INT(st.n_records, n);
		}
		atolog_store_close(r);
	}
	CHECK_OK(check_verify_dir(dir), NULL);
out:
	atolog_store_close(s);
	free(snap);
	check_tmpdir_remove(outside);
	free(dir);
	fs_unmount(&fs);
}

/* ------------------------------------------------------------------------
 * The command line.
 */

/* Runs `atolog --data dir ARGS` through the shell; its exit status, and
 * its stdout's line count in *lines (may be NULL). */
static int cli_sh(const char *dir, const char *args, const char *stdin_text,
		  int *lines)
{
	char cmd[4096], out[] = "/tmp/atolog-fulldisk-out-XXXXXX";
	int fd = mkstemp(out), status, n = 0, c;
	FILE *f;

	CHECK(fd >= 0);
	close(fd);
	snprintf(cmd, sizeof(cmd), "%s%s%s '%s' --data '%s' %s >'%s' 2>/dev/null",
		 stdin_text ? "printf '%s' '" : "", stdin_text ? stdin_text : "",
		 stdin_text ? "' | " : "", cli_path, dir, args, out);
	status = system(cmd);
	f = fopen(out, "r");
	while (f && (c = fgetc(f)) != EOF)
		n += c == '\n';
	if (f)
		fclose(f);
	unlink(out);
	if (lines)
		*lines = n;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void test_cli(enum fs_kind kind)
{
	const char *body = "{\"prompt\":\"x\",\"project\":\"p\"}";
	struct small_fs fs;
	char *dir;
	int lines = 0, rc, tries;

	if (!fs_mount(&fs, kind)) {
		fs_unmount(&fs);
		return;
	}
	dir = check_path(fs.mnt, "store");
	CHECK_INT(cli_sh(dir, "record", body, NULL), 0);
	CHECK_INT(cli_sh(dir, "list", NULL, &lines), 0);
	CHECK_INT(lines, 1);
	fs_fill(&fs);
	/* A record needs room for its frame, or the index for its pages: on
	 * a filled disk one of them is refused (the first may still fit in
	 * what the filler left), and never with a crash. */
	for (tries = 0, rc = 0; tries < 50 && rc == 0; tries++)
		rc = cli_sh(dir, "record", body, NULL);
	CHECK_INT(rc, 3);
	CHECK_INT(cli_sh(dir, "list", NULL, &lines), 0);
	CHECK_INT(lines, tries);
	CHECK_INT(cli_sh(dir, "verify", NULL, NULL), 0);
	{
		/* No lock file (a restore, a dropped index): making one on a
		 * full disk is refused, never a SIGBUS in LMDB's first write
		 * to its map. */
		char *lock = check_path(dir, "index/lock.mdb");

		char *more = check_path(fs.mnt, FILLER "2");
		char cmd[8192];

		CHECK(unlink(lock) == 0);
		/* What it held is room again: fill that too. */
		snprintf(cmd, sizeof(cmd), "cat /dev/zero > '%s' 2>/dev/null; true", more);
		CHECK(system(cmd) == 0);
		CHECK_INT(cli_sh(dir, "list", NULL, &lines), 3);
		CHECK(unlink(more) == 0);
		free(more);
		free(lock);
	}
	fs_free(&fs);
	CHECK_INT(cli_sh(dir, "record", body, NULL), 0);
	CHECK_INT(cli_sh(dir, "list", NULL, &lines), 0);
	CHECK_INT(lines, tries + 1);
	CHECK_INT(cli_sh(dir, "verify", NULL, NULL), 0);
	free(dir);
	fs_unmount(&fs);
}

/* ------------------------------------------------------------------------
 * The server.
 */

struct reply {
	int status;
	bool retry_after;
	char body[8192];
};

/* One request on its own connection (HTTP/1.1, Connection: close). */
static bool http(int port, const char *method, const char *path,
		 const char *body, struct reply *out)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	char req[4096], resp[16384];
	size_t got = 0;
	ssize_t n;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	char *end;

	memset(out, 0, sizeof(*out));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		if (fd >= 0)
			close(fd);
		return false;
	}
	snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
		 "Connection: close\r\nContent-Type: application/json\r\n"
		 "Content-Length: %zu\r\n\r\n%s", method, path,
		 body ? strlen(body) : 0, body ? body : "");
	if (write(fd, req, strlen(req)) != (ssize_t)strlen(req)) {
		close(fd);
		return false;
	}
	while (got < sizeof(resp) - 1 &&
	       (n = read(fd, resp + got, sizeof(resp) - 1 - got)) > 0)
		got += (size_t)n;
	close(fd);
	resp[got] = '\0';
	if (sscanf(resp, "HTTP/1.1 %d", &out->status) != 1)
		return false;
	out->retry_after = strstr(resp, "\r\nRetry-After:") != NULL;
	end = strstr(resp, "\r\n\r\n");
	if (end)
		snprintf(out->body, sizeof(out->body), "%s", end + 4);
	return true;
}

/* Starts `atolog serve` on dir; its pid, and the port from its JSON line. */
static pid_t serve_start(const char *dir, int *port)
{
	int p[2];
	pid_t pid;
	char line[512] = "";
	FILE *f;
	const char *at;

	CHECK(pipe(p) == 0);
	pid = fork();
	if (pid == 0) {
		dup2(p[1], 1);
		close(p[0]);
		execl(cli_path, "atolog", "--data", dir, "serve", "--listen",
		      "127.0.0.1:0", (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	f = fdopen(p[0], "r");
	if (!f || !fgets(line, sizeof(line), f))
		line[0] = '\0';
	if (f)
		fclose(f);
	at = strstr(line, "127.0.0.1:");
	*port = at ? atoi(at + strlen("127.0.0.1:")) : 0;
	CHECK(*port > 0);
	return pid;
}

static void test_server(enum fs_kind kind)
{
	const char *body = "{\"prompt\":\"over http\",\"project\":\"p\"}";
	struct small_fs fs;
	struct reply rep;
	int port = 0, status, acked = 0, tries;
	pid_t pid;
	char *dir;

	if (!fs_mount(&fs, kind)) {
		fs_unmount(&fs);
		return;
	}
	dir = check_path(fs.mnt, "store");
	pid = serve_start(dir, &port);
	for (int i = 0; port && i < 20; i++) {
		CHECK(http(port, "POST", "/interactions", body, &rep));
		CHECK_INT(rep.status, 201);
		acked += rep.status == 201;
	}
	fs_fill(&fs);
	for (tries = 0; port && tries < 500; tries++) {
		if (!http(port, "POST", "/interactions", body, &rep))
			break;
		if (rep.status != 201)
			break;
		acked++;
	}
	CHECK_INT(rep.status, 503);
	CHECK(rep.retry_after);
	CHECK(strstr(rep.body, "\"error\"") != NULL);
	/* Reads go on, and the refused request stored nothing. */
	CHECK(http(port, "GET", "/interactions?limit=500", NULL, &rep));
	CHECK_INT(rep.status, 200);
	{
		char want[32];

		snprintf(want, sizeof(want), "\"count\":%d", acked);
		CHECK(strstr(rep.body, want) != NULL);
	}
	fs_free(&fs);
	/* The index retries within INDEX_FULL_RETRY_MS: a moment, not more. */
	for (tries = 0; tries < 200; tries++) {
		CHECK(http(port, "POST", "/interactions", body, &rep));
		if (rep.status == 201)
			break;
		usleep(20000);
	}
	CHECK_INT(rep.status, 201);
	acked++;
	kill(pid, SIGTERM);
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	{
		int lines = 0;

		CHECK_INT(cli_sh(dir, "export", NULL, &lines), 0);
		CHECK_INT(lines, acked);
	}
	CHECK_OK(check_verify_dir(dir), NULL);
	free(dir);
	fs_unmount(&fs);
}

int main(void)
{
	struct small_fs probe;
	bool can_mount;

	cli_path = getenv("ATOLOG_CLI");
	if (geteuid() != 0) {
		fprintf(stderr, "test_fulldisk: skipped: mounting a small filesystem "
			"needs root\n");
		return SKIP_EXIT;
	}
	can_mount = fs_mount(&probe, FS_TMPFS);
	fs_unmount(&probe);
	if (!can_mount) {
		fprintf(stderr, "test_fulldisk: skipped: this process may not mount "
			"a tmpfs\n");
		return SKIP_EXIT;
	}
	check_rand_init("test_fulldisk");
	for (enum fs_kind k = FS_TMPFS; k <= FS_EXT4; k++) {
		struct small_fs fs;

		if (k == FS_EXT4 && !fs_mount(&fs, k)) {
			fprintf(stderr, "test_fulldisk: ext4 on a loop device skipped: "
				"cannot mount one here\n");
			fs_unmount(&fs);
			continue;
		}
		if (k == FS_EXT4)
			fs_unmount(&fs);
		test_failed_reservation(k);
		test_in_process(k, ATOLOG_SYNC_ALWAYS);
		test_in_process(k, ATOLOG_SYNC_NONE);
		test_index_full(k);
		if (cli_path) {
			test_cli(k);
			test_server(k);
		}
	}
	return check_report("test_fulldisk");
}
