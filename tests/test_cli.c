/*
 * test_cli.c - the atolog command line, driven as a user drives it.
 *
 * Every check runs the real `atolog` binary (path in $ATOLOG_CLI) in a
 * child process, feeds its stdin from a buffer, and looks only at what a
 * user sees: JSON Lines on stdout, "atolog: " messages on stderr, and the
 * exit status (0 ok, 1 not found, 2 usage or invalid input, 3 store error).
 * The library is called directly only to act as a second process would
 * (hold the writer lock) or to fill a store quickly.
 *
 * Why: the CLI is the seed-compatible surface. Its field names, the
 * created_at form, alias-aware filters, newest-first order, the default
 * limit and the cap, exit codes, and the rule that invalid input changes
 * nothing are promises the library tests cannot cover, because the CLI
 * adds its own option parsing, input reading and error mapping on top.
 * Expected listings come from a naive in-test model, never from the code
 * under test.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "check.h"

#define ARGS_MAX 32
#define UNKNOWN_ID "01900000-0000-7000-8000-000000000000"
#define P64 "pppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp"
/* A project name of 320 bytes, over ATOLOG_NAME_MAX_BYTES. */
#define LONG_PROJECT_INPUT \
	"{\"prompt\":\"x\",\"project\":\"" P64 P64 P64 P64 P64 "\"}"

static const char *cli_path;

/* ------------------------------------------------------------------------
 * Running the binary.
 */

struct run {
	int status;	/* exit code, or 128 + signal number */
	char cmd[1024];	/* the command line, for messages */
	char *out;	/* stdout, NUL-terminated */
	size_t out_len;
	char *err;	/* stderr, NUL-terminated */
	size_t err_len;
};

struct buf {
	char *p;
	size_t len, cap;
};

static void buf_put(struct buf *b, const char *data, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;

		while (cap < b->len + n + 1)
			cap *= 2;
		b->p = realloc(b->p, cap);
		if (!b->p) {
			perror("realloc");
			exit(2);
		}
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
}

/* Reads what is ready on *fd into b; closes it at end of file. */
static void drain(int *fd, struct buf *b)
{
	char chunk[16384];
	ssize_t n = read(*fd, chunk, sizeof(chunk));

	if (n > 0) {
		buf_put(b, chunk, (size_t)n);
		return;
	}
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	close(*fd);
	*fd = -1;
}

/* Writes more of in to *fd; closes it when all is written or on EPIPE. */
static void feed(int *fd, const char *in, size_t len, size_t *done)
{
	ssize_t n = write(*fd, in + *done, len - *done);

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n > 0)
		*done += (size_t)n;
	if (n < 0 || *done == len) {
		close(*fd);
		*fd = -1;
	}
}

static void spawn_cli(char **argv, int *in_fd, int *out_fd, int *err_fd,
		      pid_t *pid)
{
	int pin[2], pout[2], perr[2];

	if (pipe2(pin, O_CLOEXEC) || pipe2(pout, O_CLOEXEC) ||
	    pipe2(perr, O_CLOEXEC)) {
		perror("pipe2");
		exit(2);
	}
	*pid = fork();
	if (*pid < 0) {
		perror("fork");
		exit(2);
	}
	if (*pid == 0) {
		if (dup2(pin[0], 0) < 0 || dup2(pout[1], 1) < 0 ||
		    dup2(perr[1], 2) < 0)
			_exit(126);
		execv(cli_path, argv);
		_exit(127);
	}
	close(pin[0]);
	close(pout[1]);
	close(perr[1]);
	fcntl(pin[1], F_SETFL, O_NONBLOCK);
	*in_fd = pin[1];
	*out_fd = pout[0];
	*err_fd = perr[0];
}

/* Runs argv[] (argv[0] "atolog") with stdin from in (NULL: empty). */
static void run_argv(struct run *r, const char *in, char **argv)
{
	struct buf out = { 0 }, err = { 0 };
	size_t in_len = in ? strlen(in) : 0, done = 0, pos = 0;
	int fds[3], status;
	pid_t pid;

	memset(r, 0, sizeof(*r));
	for (int i = 0; argv[i] && pos < sizeof(r->cmd) - 1; i++)
		pos += (size_t)snprintf(r->cmd + pos, sizeof(r->cmd) - pos,
					i ? " %s" : "%s", argv[i]);
	buf_put(&out, "", 0);
	buf_put(&err, "", 0);
	spawn_cli(argv, &fds[0], &fds[1], &fds[2], &pid);
	if (in_len == 0) {
		close(fds[0]);
		fds[0] = -1;
	}
	while (fds[0] >= 0 || fds[1] >= 0 || fds[2] >= 0) {
		struct pollfd p[3] = {
			{ .fd = fds[0], .events = POLLOUT },
			{ .fd = fds[1], .events = POLLIN },
			{ .fd = fds[2], .events = POLLIN },
		};

		if (poll(p, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			perror("poll");
			exit(2);
		}
		if (p[0].revents)
			feed(&fds[0], in, in_len, &done);
		if (p[1].revents)
			drain(&fds[1], &out);
		if (p[2].revents)
			drain(&fds[2], &err);
	}
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			perror("waitpid");
			exit(2);
		}
	}
	r->status = WIFEXITED(status) ? WEXITSTATUS(status)
				      : 128 + WTERMSIG(status);
	r->out = out.p;
	r->out_len = out.len;
	r->err = err.p;
	r->err_len = err.len;
}

/* Runs `atolog [--data dir] args...` with stdin in; args end with NULL. */
static void __attribute__((sentinel))
cli(struct run *r, const char *in, const char *dir, ...)
{
	char *argv[ARGS_MAX];
	const char *a;
	int argc = 0;
	va_list ap;

	argv[argc++] = "atolog";
	if (dir) {
		argv[argc++] = "--data";
		argv[argc++] = (char *)dir;
	}
	va_start(ap, dir);
	while ((a = va_arg(ap, const char *)) && argc < ARGS_MAX - 1)
		argv[argc++] = (char *)a;
	va_end(ap);
	argv[argc] = NULL;
	run_argv(r, in, argv);
}

/* Runs `atolog --data dir list args...` (args NULL-terminated). */
static void cli_list(struct run *r, const char *dir, const char *const *args)
{
	char *argv[ARGS_MAX];
	int argc = 0;

	argv[argc++] = "atolog";
	argv[argc++] = "--data";
	argv[argc++] = (char *)dir;
	argv[argc++] = "list";
	for (int i = 0; args[i] && argc < ARGS_MAX - 1; i++)
		argv[argc++] = (char *)args[i];
	argv[argc] = NULL;
	run_argv(r, NULL, argv);
}

static void run_free(struct run *r)
{
	free(r->out);
	free(r->err);
	r->out = r->err = NULL;
}

/* ------------------------------------------------------------------------
 * Checking what a run shows.
 */

static void __attribute__((format(printf, 3, 4)))
fail(int line, const struct run *r, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s:%d: ", __FILE__, line);
	if (r)
		fprintf(stderr, "`%s`: ", r->cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	check_failures++;
}

#define CHECK_EXIT(r, want) check_exit(__LINE__, (r), (want))
static void check_exit(int line, const struct run *r, int want)
{
	if (r->status != want)
		fail(line, r, "exited %d, want %d; stderr: %s", r->status, want,
		     r->err);
}

static size_t count_lines(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* A failure as the conventions want it: the exit code, nothing on
 * stdout, and stderr opening with one line "atolog: ...". */
#define CHECK_FAILS(r, want) check_fails(__LINE__, (r), (want))
static void check_fails(int line, const struct run *r, int want)
{
	check_exit(line, r, want);
	if (r->out_len)
		fail(line, r, "printed on stdout: %s", r->out);
	if (strncmp(r->err, "atolog: ", 8) != 0 || !strchr(r->err, '\n'))
		fail(line, r, "stderr does not open with an \"atolog: \" "
		     "line: \"%s\"", r->err);
}

/* A usage error: exit 2, an "atolog: " line, then a usage line. */
#define CHECK_USAGE(r) check_usage(__LINE__, (r))
static void check_usage(int line, const struct run *r)
{
	check_fails(line, r, 2);
	if (!strstr(r->err, "usage: atolog"))
		fail(line, r, "no usage line on stderr: \"%s\"", r->err);
}

/* Invalid input: exit 2 and exactly one "atolog: " line on stderr. */
#define CHECK_INVALID(r) check_invalid(__LINE__, (r))
static void check_invalid(int line, const struct run *r)
{
	check_fails(line, r, 2);
	if (count_lines(r->err) != 1)
		fail(line, r, "want one line on stderr, got \"%s\"", r->err);
}

/* stdout as JSON Lines: a new array of its objects. */
#define RUN_JSON(r) run_json(__LINE__, (r))
static json_t *run_json(int line, const struct run *r)
{
	const char *p = r->out, *end = r->out + r->out_len;
	json_t *arr = json_array();

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		json_error_t jerr;
		json_t *v;

		if (!nl) {
			fail(line, r, "stdout does not end with a newline");
			break;
		}
		v = json_loadb(p, (size_t)(nl - p), JSON_REJECT_DUPLICATES, &jerr);
		if (!v || !json_is_object(v)) {
			fail(line, r, "line %zu is not a JSON object (%s): %.*s",
			     json_array_size(arr) + 1, v ? "not an object" : jerr.text,
			     (int)(nl - p), p);
			json_decref(v);
		} else {
			json_array_append_new(arr, v);
		}
		p = nl + 1;
	}
	return arr;
}

static const char *jstr(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

static long long jint(const json_t *obj, const char *key)
{
	const json_t *v = json_object_get(obj, key);

	return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}

/* Runs `record` with stdin in; returns the one object it printed. */
#define RECORD(dir, in, sync_none) record(__LINE__, (dir), (in), (sync_none))
static json_t *record(int line, const char *dir, const char *in, bool sync_none)
{
	struct run r;
	json_t *arr, *obj = NULL;

	if (sync_none)
		cli(&r, in, dir, "--sync", "none", "record", NULL);
	else
		cli(&r, in, dir, "record", NULL);
	check_exit(line, &r, 0);
	arr = run_json(line, &r);
	if (json_array_size(arr) == 1)
		obj = json_incref(json_array_get(arr, 0));
	else
		fail(line, &r, "printed %zu objects, want 1", json_array_size(arr));
	if (r.err_len)
		fail(line, &r, "wrote on stderr: %s", r.err);
	json_decref(arr);
	run_free(&r);
	return obj;
}

struct stats {
	long long records, last_seq, segments, log_bytes, index_bytes;
};

/* `stats`: one JSON object with the five counters. */
#define STATS(dir, st) get_stats(__LINE__, (dir), (st))
static void get_stats(int line, const char *dir, struct stats *st)
{
	static const char *const keys[] = { "records", "last_seq", "segments",
					    "log_bytes", "index_bytes" };
	long long *vals[] = { &st->records, &st->last_seq, &st->segments,
			      &st->log_bytes, &st->index_bytes };
	struct run r;
	json_t *arr, *obj;

	memset(st, 0xff, sizeof(*st));
	cli(&r, NULL, dir, "stats", NULL);
	check_exit(line, &r, 0);
	arr = run_json(line, &r);
	obj = json_array_get(arr, 0);
	if (json_array_size(arr) != 1)
		fail(line, &r, "printed %zu objects, want 1", json_array_size(arr));
	for (size_t i = 0; obj && i < 5; i++) {
		*vals[i] = jint(obj, keys[i]);
		if (*vals[i] < 0)
			fail(line, &r, "no integer \"%s\" in %s", keys[i], r.out);
	}
	json_decref(arr);
	run_free(&r);
}

/* The store did not change: same record count and log size. */
#define CHECK_UNCHANGED(dir, before) check_unchanged(__LINE__, (dir), (before))
static void check_unchanged(int line, const char *dir, const struct stats *before)
{
	struct stats now;

	get_stats(line, dir, &now);
	if (now.records != before->records || now.log_bytes != before->log_bytes)
		fail(line, NULL, "store changed: records %lld -> %lld, log_bytes "
		     "%lld -> %lld", before->records, now.records,
		     before->log_bytes, now.log_bytes);
}

/* ------------------------------------------------------------------------
 * Time, computed here independently of the library.
 */

static int64_t utc_seconds(int y, int mo, int d, int h, int mi, int s)
{
	struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
			 .tm_hour = h, .tm_min = mi, .tm_sec = s };

	return (int64_t)timegm(&tm);
}

/* "YYYY-MM-DD HH:MM:SS" -> seconds, or INT64_MIN if not that shape. */
static int64_t parse_seed_time(const char *s)
{
	int y, mo, d, h, mi, sec, n = 0;

	if (!s || strlen(s) != 19 ||
	    sscanf(s, "%4d-%2d-%2d %2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec,
		   &n) != 6 || n != 19 || s[4] != '-' || s[10] != ' ')
		return INT64_MIN;
	return utc_seconds(y, mo, d, h, mi, sec);
}

/* sec (UTC) shown at offset_s east of UTC, as "%Y-%m-%d<sep>%H:%M:%S". */
static void format_time(int64_t sec, int offset_s, char sep, char *buf,
			size_t size)
{
	time_t t = (time_t)(sec + offset_s);
	struct tm tm;

	char fmt[] = "%Y-%m-%d %H:%M:%S"; /* the tests' years have 4 digits */

	fmt[8] = sep;
	gmtime_r(&t, &tm);
	if (strftime(buf, size, fmt, &tm) == 0)
		buf[0] = '\0';
}

/* created_at and created_at_iso must show exactly us. */
static void check_times(int line, const json_t *obj, int64_t us)
{
	char seed[32], iso[48];
	int64_t sec = us / 1000000;

	format_time(sec, 0, ' ', seed, sizeof(seed));
	format_time(sec, 0, 'T', iso, sizeof(iso));
	snprintf(iso + 19, sizeof(iso) - 19, ".%06lldZ",
		 (long long)(us % 1000000));
	if (!jstr(obj, "created_at") || strcmp(jstr(obj, "created_at"), seed))
		fail(line, NULL, "created_at is \"%s\", want \"%s\"",
		     jstr(obj, "created_at"), seed);
	if (!jstr(obj, "created_at_iso") || strcmp(jstr(obj, "created_at_iso"), iso))
		fail(line, NULL, "created_at_iso is \"%s\", want \"%s\"",
		     jstr(obj, "created_at_iso"), iso);
}

/* ------------------------------------------------------------------------
 * Shapes every printed interaction must have.
 */

static bool is_uuid_v7(const char *id)
{
	if (!id || strlen(id) != 36)
		return false;
	for (int i = 0; i < 36; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? id[i] != '-' : !strchr("0123456789abcdef", id[i]))
			return false;
	}
	return id[14] == '7' && strchr("89ab", id[19]);
}

/* The 48-bit millisecond timestamp at the front of a UUID v7. */
static long long uuid_v7_ms(const char *id)
{
	char hex[13];

	memcpy(hex, id, 8);
	memcpy(hex + 8, id + 9, 4);
	hex[12] = '\0';
	return strtoll(hex, NULL, 16);
}

/* Exactly the seed's fields, plus created_at_iso and seq. */
static void check_shape(int line, const json_t *obj)
{
	static const char *const strings[] = {
		"id", "prompt", "response", "response_summary", "project", "client",
		"session_id", "created_at", "created_at_iso",
	};

	for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++) {
		if (!json_is_string(json_object_get(obj, strings[i])))
			fail(line, NULL, "\"%s\" is not a string", strings[i]);
	}
	if (!json_is_array(json_object_get(obj, "memories_used")) ||
	    !json_is_array(json_object_get(obj, "chunks_used")))
		fail(line, NULL, "memories_used or chunks_used is not a list");
	if (!json_is_object(json_object_get(obj, "context_pack")))
		fail(line, NULL, "context_pack is not an object");
	if (jint(obj, "seq") <= 0)
		fail(line, NULL, "seq is not a positive integer");
	if (json_object_size(obj) != 13)
		fail(line, NULL, "%zu fields, want 13", json_object_size(obj));
	if (parse_seed_time(jstr(obj, "created_at")) == INT64_MIN)
		fail(line, NULL, "created_at \"%s\" is not YYYY-MM-DD HH:MM:SS",
		     jstr(obj, "created_at"));
}

/* out echoes every field of in (a JSON input) exactly. */
static void check_echo(int line, const json_t *in, const json_t *out)
{
	static const char *const fields[] = {
		"prompt", "response", "response_summary", "client", "session_id",
		"memories_used", "chunks_used", "context_pack",
	};

	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		const json_t *want = json_object_get(in, fields[i]);

		if (!want || !json_equal(want, json_object_get(out, fields[i])))
			fail(line, NULL, "field \"%s\" not echoed exactly", fields[i]);
	}
}

/* arr holds exactly the objects want[0..n) (same order, equal JSON). */
static void check_objects(int line, const struct run *r, const json_t *arr,
			  json_t *const *want, size_t n)
{
	if (json_array_size(arr) != n)
		fail(line, r, "printed %zu interactions, want %zu",
		     json_array_size(arr), n);
	for (size_t i = 0; i < n && i < json_array_size(arr); i++) {
		const json_t *got = json_array_get(arr, i);

		if (json_equal(got, want[i]))
			continue;
		fail(line, r, "interaction %zu is %s (seq %lld), want %s (seq %lld)%s",
		     i, jstr(got, "id"), jint(got, "seq"), jstr(want[i], "id"),
		     jint(want[i], "seq"),
		     strcmp(jstr(got, "id") ? jstr(got, "id") : "",
			    jstr(want[i], "id")) ? "" : " with other fields");
		return;
	}
}

static bool dir_is_empty(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	bool empty = true;

	if (!d)
		return false;
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			empty = false;
	}
	closedir(d);
	return empty;
}

static bool path_exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

/* ------------------------------------------------------------------------
 * Help and usage errors.
 */

static void test_help(const char *dir)
{
	struct run r;

	cli(&r, NULL, NULL, "--help", NULL);
	CHECK_EXIT(&r, 0);
	CHECK(strstr(r.out, "usage: atolog") != NULL);
	CHECK_INT(r.err_len, 0);
	run_free(&r);

	cli(&r, NULL, dir, "list", "--help", NULL);
	CHECK_EXIT(&r, 0);
	CHECK(strstr(r.out, "usage: atolog list") != NULL);
	run_free(&r);

	cli(&r, NULL, NULL, NULL);
	CHECK_EXIT(&r, 2);
	CHECK(strstr(r.err, "usage: atolog") != NULL);
	CHECK_INT(r.out_len, 0);
	run_free(&r);
}

static void test_usage_errors(const char *dir)
{
	static const char *const cases[][5] = {
		{ "frobnicate" },
		{ "--bogus", "list" },
		{ "list", "--bogus" },
		{ "record", "--bogus" },
		{ "get" },
		{ "get", UNKNOWN_ID, UNKNOWN_ID },
		{ "list", "--limit", "abc" },
		{ "list", "--limit", "12abc" },
		{ "list", "--limit", "" },
		{ "list", "stray" },
		{ "replay" },
		{ "stats", "extra" },
		{ "record", "extra" },
		{ "project" },
		{ "project", "frob" },
		{ "project", "add" },
		{ "project", "list", "extra" },
	};
	struct stats before;
	struct run r;

	STATS(dir, &before);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *const *a = cases[i];

		cli(&r, "{\"prompt\":\"usage\"}", dir, a[0], a[1], a[2], a[3], NULL);
		CHECK_USAGE(&r);
		run_free(&r);
	}
	cli(&r, NULL, dir, "--sync", "sometimes", "list", NULL);
	CHECK_FAILS(&r, 2);
	run_free(&r);
	CHECK_UNCHANGED(dir, &before);
}

/* ------------------------------------------------------------------------
 * A directory without a store.
 */

static void test_no_store(const char *root)
{
	static const char *const cases[][3] = {
		{ "list" }, { "get", UNKNOWN_ID }, { "stats" },
		{ "replay", "s" }, { "project", "list" },
	};
	char *missing = check_path(root, "missing");
	char *empty = check_path(root, "empty");
	struct run r;

	CHECK(mkdir(empty, 0755) == 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cli(&r, NULL, missing, cases[i][0], cases[i][1], NULL);
		CHECK_FAILS(&r, 3);
		run_free(&r);
		CHECK(!path_exists(missing));
		cli(&r, NULL, empty, cases[i][0], cases[i][1], NULL);
		CHECK_FAILS(&r, 3);
		run_free(&r);
		CHECK(dir_is_empty(empty));
	}
	/* Invalid input is refused before the store is opened or created. */
	for (size_t i = 0; i < 2; i++) {
		char *fresh = check_path(root, i ? "fresh-long" : "fresh-blank");

		cli(&r, i ? LONG_PROJECT_INPUT : "{\"prompt\":\"  \"}", fresh,
		    "record", NULL);
		CHECK_INVALID(&r);
		run_free(&r);
		if (path_exists(fresh))
			fail(__LINE__, NULL, "invalid input created %s", fresh);
		free(fresh);
	}
	free(missing);
	free(empty);
}

/* ------------------------------------------------------------------------
 * The project registry.
 */

static void check_project(int line, const json_t *obj, const char *name,
			  const char *const *aliases, size_t n)
{
	const json_t *got = json_object_get(obj, "aliases");

	if (!jstr(obj, "name") || strcmp(jstr(obj, "name"), name) != 0 ||
	    json_object_size(obj) != 2 || !json_is_array(got) ||
	    json_array_size(got) != n) {
		fail(line, NULL, "project \"%s\" listed wrongly", name);
		return;
	}
	/* Aliases as a set: their order is not promised. */
	for (size_t i = 0; i < n; i++) {
		bool found = false;

		for (size_t k = 0; k < n; k++) {
			const char *a = json_string_value(json_array_get(got, k));

			found |= a && !strcmp(a, aliases[i]);
		}
		if (!found)
			fail(line, NULL, "project %s lacks alias \"%s\"", name,
			     aliases[i]);
	}
}

static void test_projects(const char *dir)
{
	static const char *const three[] = { "AtoCore-Legacy", "ato", "ac" };
	struct stats before;
	struct run r;
	json_t *arr;

	STATS(dir, &before);
	/* Aliases match without regard to case: all belong to atocore. */
	cli(&r, NULL, dir, "project", "add", "other", "--alias", "ato", NULL);
	CHECK_INVALID(&r);
	run_free(&r);
	cli(&r, NULL, dir, "project", "add", "other", "--alias", "ATO", NULL);
	CHECK_INVALID(&r);
	run_free(&r);
	cli(&r, NULL, dir, "project", "add", "atocore-legacy", NULL);
	CHECK_INVALID(&r);
	run_free(&r);
	CHECK_UNCHANGED(dir, &before);

	cli(&r, NULL, dir, "project", "add", "atocore", "--alias", "ac", NULL);
	CHECK_EXIT(&r, 0);
	run_free(&r);
	cli(&r, NULL, dir, "project", "add", "beta-proj", NULL);
	CHECK_EXIT(&r, 0);
	run_free(&r);

	cli(&r, NULL, dir, "project", "list", NULL);
	CHECK_EXIT(&r, 0);
	arr = RUN_JSON(&r);
	CHECK_INT(json_array_size(arr), 2);
	check_project(__LINE__, json_array_get(arr, 0), "atocore", three, 3);
	check_project(__LINE__, json_array_get(arr, 1), "beta-proj", NULL, 0);
	json_decref(arr);
	run_free(&r);
}

/* ------------------------------------------------------------------------
 * record and get.
 */

static const char rich_input[] =
	"{\"prompt\":\"h\xc3\xa9llo \\u00e9 \xe2\x9c\x93 \xe6\x97\xa5\xe6\x9c\xac"
	"\xe8\xaa\x9e \\ud83d\\ude80 \\\"quoted\\\"\\nline2\\ttab\","
	"\"response\":\"\xd0\x9e\xd1\x82\xd0\xb2\xd0\xb5\xd1\x82: ok\","
	"\"response_summary\":\"r\xc3\xa9sum\xc3\xa9\","
	"\"project\":\"ATO\",\"client\":\"claude-code\","
	"\"session_id\":\"sess-\xc3\xbc-1\","
	"\"memories_used\":[\"mem-1\",\"m\xc3\xa9m-2\"],"
	"\"chunks_used\":[\"chunk-a\",\"chunk-b\",\"chunk-c\"],"
	"\"context_pack\":{\"query\":\"unicode \xe2\x9c\x93\",\"budget\":4000,"
	"\"nested\":{\"list\":[1,2.5,{\"deep\":[true,false,null]}],\"empty\":{}},"
	"\"s\":\"\xe6\x97\xa5\xe6\x9c\xac\"},"
	"\"reinforce\":true,\"extract\":false,\"unknown_field\":{\"ignored\":1}}";

/* The rich record: generated id and time, fields echoed, project canonical. */
static json_t *test_record_rich(const char *dir)
{
	json_t *in = json_loads(rich_input, 0, NULL), *out;
	time_t before = time(NULL), after;
	int64_t t;

	CHECK(in != NULL);
	out = RECORD(dir, rich_input, false);
	after = time(NULL);
	if (!out || !in) {
		json_decref(in);
		return out;
	}
	check_shape(__LINE__, out);
	check_echo(__LINE__, in, out);
	CHECK_STR(jstr(out, "prompt"), "h\xc3\xa9llo \xc3\xa9 \xe2\x9c\x93 "
		  "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x9a\x80 "
		  "\"quoted\"\nline2\ttab");
	CHECK_STR(jstr(out, "project"), "atocore");
	CHECK(is_uuid_v7(jstr(out, "id")));
	t = parse_seed_time(jstr(out, "created_at"));
	CHECK(t >= (int64_t)before - 1 && t <= (int64_t)after + 1);
	/* created_at is created_at_iso cut to seconds. */
	CHECK(jstr(out, "created_at_iso") &&
	      strlen(jstr(out, "created_at_iso")) == 27 &&
	      !strncmp(jstr(out, "created_at_iso"), jstr(out, "created_at"), 10) &&
	      !strncmp(jstr(out, "created_at_iso") + 11,
		       jstr(out, "created_at") + 11, 8));
	if (is_uuid_v7(jstr(out, "id")))
		CHECK(llabs(uuid_v7_ms(jstr(out, "id")) - t * 1000) <= 2000);
	json_decref(in);
	return out;
}

/* Imports keep their id (canonicalised) and created_at (to UTC). */
static json_t *test_record_import(const char *dir, json_t *rich)
{
	json_t *imp, *both;

	imp = RECORD(dir, "{\"prompt\":\"imported\","
		     "\"id\":\"0190A0B1-C2D3-4E4F-8A9B-0C1D2E3F4A5B\","
		     "\"created_at\":\"2021-12-31T23:59:59.5-01:00\","
		     "\"project\":\" atocore-legacy \"}", false);
	if (imp) {
		check_shape(__LINE__, imp);
		CHECK_STR(jstr(imp, "id"), "0190a0b1-c2d3-4e4f-8a9b-0c1d2e3f4a5b");
		CHECK_STR(jstr(imp, "created_at"), "2022-01-01 00:59:59");
		CHECK_STR(jstr(imp, "created_at_iso"), "2022-01-01T00:59:59.500000Z");
		CHECK_STR(jstr(imp, "project"), "atocore");
		CHECK_STR(jstr(imp, "response"), "");
		CHECK_INT(json_array_size(json_object_get(imp, "memories_used")), 0);
		CHECK_INT(json_object_size(json_object_get(imp, "context_pack")), 0);
		CHECK(jint(imp, "seq") > jint(rich, "seq"));
	}
	/* created_at_iso wins over created_at. */
	both = RECORD(dir, "{\"prompt\":\"both\",\"created_at\":\"2020-01-01 00:00:00\","
		      "\"created_at_iso\":\"2020-02-29T12:34:56.000001Z\"}", false);
	if (both) {
		CHECK_STR(jstr(both, "created_at"), "2020-02-29 12:34:56");
		CHECK_STR(jstr(both, "created_at_iso"), "2020-02-29T12:34:56.000001Z");
		CHECK_STR(jstr(both, "project"), "");
		CHECK(is_uuid_v7(jstr(both, "id")));
	}
	json_decref(both);
	return imp;
}

static void test_get(const char *dir, json_t *rich)
{
	char upper[ATOLOG_ID_TEXT_LEN + 1];
	const char *id = jstr(rich, "id");
	struct run r;
	json_t *arr;

	cli(&r, NULL, dir, "get", id, NULL);
	CHECK_EXIT(&r, 0);
	arr = RUN_JSON(&r);
	check_objects(__LINE__, &r, arr, &rich, 1);
	json_decref(arr);
	run_free(&r);

	/* Any case. */
	for (size_t i = 0; i <= ATOLOG_ID_TEXT_LEN; i++)
		upper[i] = (char)(id[i] >= 'a' && id[i] <= 'f' ? id[i] - 32 : id[i]);
	cli(&r, NULL, dir, "get", upper, NULL);
	CHECK_EXIT(&r, 0);
	arr = RUN_JSON(&r);
	check_objects(__LINE__, &r, arr, &rich, 1);
	json_decref(arr);
	run_free(&r);

	cli(&r, NULL, dir, "get", UNKNOWN_ID, NULL);
	CHECK_FAILS(&r, 1);
	CHECK_INT(count_lines(r.err), 1);
	run_free(&r);

	cli(&r, NULL, dir, "get", "not-an-id", NULL);
	CHECK_FAILS(&r, 2);
	run_free(&r);
}

/* list --project through aliases finds the rich record and the import. */
static void test_project_filter(const char *dir, json_t *rich, json_t *imp)
{
	static const char *const spellings[] = { "ato", "ATO", "atocore",
						 "AtoCore-Legacy", " ac " };
	json_t *want[2] = { rich, imp };
	struct run r;
	json_t *arr;

	for (size_t i = 0; i < sizeof(spellings) / sizeof(spellings[0]); i++) {
		cli(&r, NULL, dir, "list", "--project", spellings[i], NULL);
		CHECK_EXIT(&r, 0);
		arr = RUN_JSON(&r);
		check_objects(__LINE__, &r, arr, want, 2);
		json_decref(arr);
		run_free(&r);
	}
}

/* ------------------------------------------------------------------------
 * Invalid input changes nothing.
 */

static void test_invalid_input(const char *dir, json_t *rich)
{
	static const char *const inputs[] = {
		"{\"prompt\":\"   \"}",
		"{\"prompt\":\"\\t\\n \"}",
		"{\"response\":\"no prompt\"}",
		"{\"prompt\":\"x\"",
		"not json",
		"",
		"[{\"prompt\":\"x\"}]",
		"{\"prompt\":5}",
		"{\"prompt\":\"x\",\"memories_used\":[1]}",
		"{\"prompt\":\"x\",\"chunks_used\":\"c1\"}",
		"{\"prompt\":\"x\",\"context_pack\":\"x\"}",
		"{\"prompt\":\"x\",\"context_pack\":[1]}",
		"{\"prompt\":\"x\",\"session_id\":7}",
		"{\"prompt\":\"x\",\"reinforce\":\"yes\"}",
		"{\"prompt\":\"x\",\"id\":\"not-a-uuid\"}",
		"{\"prompt\":\"x\",\"created_at\":\"yesterday\"}",
		"{\"prompt\":\"a\"}\n{\"prompt\":\"b\"}\n",
		LONG_PROJECT_INPUT,
		"{\"prompt\":\"x\",\"id\":\"0190a0b1-c2d3-4e4f-8a9b-0c1d2e3f4a5b\"}",
		/* a field given twice: neither value is dropped silently */
		"{\"prompt\":\"first\",\"prompt\":\"second\"}",
		"{\"prompt\":\"x\",\"memories_used\":[\"a\"],\"memories_used\":null}",
	};
	char dup[256];
	struct stats before;
	struct run r;

	STATS(dir, &before);
	for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
		cli(&r, inputs[i], dir, "record", NULL);
		CHECK_INVALID(&r);
		run_free(&r);
		CHECK_UNCHANGED(dir, &before);
	}
	/* The id of an existing record, generated or imported, any case. */
	snprintf(dup, sizeof(dup), "{\"prompt\":\"again\",\"id\":\"%s\"}",
		 jstr(rich, "id"));
	cli(&r, dup, dir, "record", NULL);
	CHECK_INVALID(&r);
	CHECK(strstr(r.err, jstr(rich, "id")) != NULL);
	run_free(&r);
	CHECK_UNCHANGED(dir, &before);
	snprintf(dup, sizeof(dup), "{\"prompt\":\"again\",\"id\":\"%s\"}",
		 "0190A0B1-C2D3-4E4F-8A9B-0C1D2E3F4A5B");
	cli(&r, dup, dir, "record", NULL);
	CHECK_INVALID(&r);
	run_free(&r);
	CHECK_UNCHANGED(dir, &before);

	/* A bad --since is invalid input that quotes it. */
	cli(&r, NULL, dir, "list", "--since", "yesterday", NULL);
	CHECK_INVALID(&r);
	CHECK(strstr(r.err, "\"yesterday\"") != NULL);
	run_free(&r);
	cli(&r, NULL, dir, "list", "--since", "2026-13-01", "--limit", "5", NULL);
	CHECK_INVALID(&r);
	CHECK(strstr(r.err, "2026-13-01") != NULL);
	run_free(&r);
	CHECK_UNCHANGED(dir, &before);
}

static void test_record_and_get(const char *root)
{
	char *dir = check_path(root, "basic");
	json_t *rich, *imp;
	struct run r;

	/* The writer creates the store directory. */
	cli(&r, NULL, dir, "project", "add", "atocore", "--alias", "ato",
	    "--alias", "AtoCore-Legacy", NULL);
	CHECK_EXIT(&r, 0);
	CHECK_INT(r.out_len, 0);
	run_free(&r);

	rich = test_record_rich(dir);
	imp = rich ? test_record_import(dir, rich) : NULL;
	if (rich && imp) {
		test_get(dir, rich);
		test_projects(dir);
		test_project_filter(dir, rich, imp);
		test_invalid_input(dir, rich);
		test_usage_errors(dir);
		test_help(dir);
	}
	json_decref(rich);
	json_decref(imp);
	free(dir);
}

/* ------------------------------------------------------------------------
 * Numbers: kept exactly, or refused as invalid input (exit 2, nothing
 * stored) with the path of the number, never changed.
 */

static void test_record_numbers(const char *root)
{
	static const char exact[] =
		"{\"n\":[-9223372036854775808,9223372036854775807,18446744073709551615,0],"
		"\"d\":[0.1,1e+308,-0.0,1.7976931348623157e+308]}";
	static const struct {
		const char *context, *path;
	} refused[] = {
		{ "{\"a\":1e400}", "context_pack.a: the number 1e400" },
		{ "{\"a\":{\"b\":[1,-1e400]}}", "context_pack.a.b[1]: the number -1e400" },
		{ "{\"big\":123456789012345678901234567890}",
		  "context_pack.big: the integer 123456789012345678901234567890" },
		{ "{\"a\":[18446744073709551616]}", "context_pack.a[0]: the integer" },
		{ "{\"a\":-9223372036854775809}", "context_pack.a: the integer" },
	};
	char *dir = check_path(root, "numbers"), body[256], want[512];
	char id[ATOLOG_ID_TEXT_LEN + 1] = "";
	struct stats before;
	struct run r;
	json_t *first = RECORD(dir, "{\"prompt\":\"first\"}", false);

	STATS(dir, &before);
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		snprintf(body, sizeof(body), "{\"prompt\":\"p\",\"context_pack\":%s}",
			 refused[i].context);
		cli(&r, body, dir, "record", NULL);
		CHECK_INVALID(&r);
		if (!strstr(r.err, refused[i].path))
			fail(__LINE__, &r, "stderr \"%s\" lacks \"%s\"", r.err, refused[i].path);
		run_free(&r);
		CHECK_UNCHANGED(dir, &before);
	}

	/* In range, each integer and real comes back as it went in (jansson
	 * cannot hold UINT64_MAX: the text itself is compared). -0 is 0. */
	snprintf(body, sizeof(body), "{\"prompt\":\"p\",\"context_pack\":%s}", exact);
	cli(&r, body, dir, "record", NULL);
	CHECK_EXIT(&r, 0);
	snprintf(want, sizeof(want), "\"context_pack\":%s,", exact);
	if (!strstr(r.out, want))
		fail(__LINE__, &r, "stdout %s lacks %s", r.out, want);
	if (strncmp(r.out, "{\"id\":\"", 7) == 0 && r.out_len > 7 + ATOLOG_ID_TEXT_LEN)
		snprintf(id, sizeof(id), "%.*s", ATOLOG_ID_TEXT_LEN, r.out + 7);
	run_free(&r);
	/* And so it is stored: get reads it back from the log. */
	cli(&r, NULL, dir, "get", id, NULL);
	CHECK_EXIT(&r, 0);
	if (!strstr(r.out, want))
		fail(__LINE__, &r, "stdout %s lacks %s", r.out, want);
	run_free(&r);
	cli(&r, "{\"prompt\":\"z\",\"context_pack\":{\"z\":[-0,5e-324,1e-400]}}", dir,
	    "record", NULL);
	CHECK_EXIT(&r, 0);
	if (!strstr(r.out, "\"context_pack\":{\"z\":[0,4.94065645841247e-324,0.0]},"))
		fail(__LINE__, &r, "-0, 5e-324, 1e-400 came back as %s", r.out);
	run_free(&r);
	json_decref(first);
	free(dir);
}

/* ------------------------------------------------------------------------
 * list and replay against a naive model.
 */

#define N_ITEMS 64
#define BASE_SEC_Y 2026, 3, 1, 10, 0, 0 /* 2026-03-01T10:00:00Z */
#define SPAN_SEC 30
#define NO_SINCE INT_MIN
#define NONE 99 /* a filter that matches nothing */

static const char *const project_names[] = { "alpha", "beta", "gamma" };
static const char *const project_spellings[][4] = {
	{ "alpha", "AL", "alpha-old", " Alpha " },
	{ "beta", "B", "BETA", "b" },
	{ "gamma", "gamma", "gamma", "gamma" }, /* not registered */
};
static const char *const session_names[] = { "sess-1", "sess-2", "sess-3",
					     "sess-4" };
static const char *const client_names[] = { "claude-code", "openclaw" };

struct item {
	json_t *json; /* as `record` printed it */
	int64_t us;   /* created_at, UTC microseconds */
	long long seq;
	int project, session, client;
};

struct list_case {
	const char *args[12]; /* after "list", NULL-terminated */
	int project, session, client; /* index, -1 any, NONE */
	int since; /* seconds after the base, or NO_SINCE */
	long limit; /* the effective limit */
};

static const struct list_case list_cases[] = {
	{ { NULL }, -1, -1, -1, NO_SINCE, 50 },
	{ { "--limit", "500" }, -1, -1, -1, NO_SINCE, 500 },
	{ { "--limit", "100000" }, -1, -1, -1, NO_SINCE, 500 },
	{ { "--limit", "7" }, -1, -1, -1, NO_SINCE, 7 },
	{ { "--limit=3" }, -1, -1, -1, NO_SINCE, 3 },
	{ { "--limit", "0" }, -1, -1, -1, NO_SINCE, 0 },
	{ { "--limit", "-4" }, -1, -1, -1, NO_SINCE, 0 },
	{ { "--project", "alpha", "--limit", "500" },
	  0, -1, -1, NO_SINCE, 500 },
	{ { "--project", "AL", "--limit", "500" }, 0, -1, -1, NO_SINCE, 500 },
	{ { "--project", " alpha-OLD ", "--limit", "500" },
	  0, -1, -1, NO_SINCE, 500 },
	{ { "--project", "B", "--limit", "500" }, 1, -1, -1, NO_SINCE, 500 },
	{ { "--project=beta" }, 1, -1, -1, NO_SINCE, 50 },
	{ { "--project", "gamma", "--limit", "500" },
	  2, -1, -1, NO_SINCE, 500 },
	{ { "--project", "nope" }, NONE, -1, -1, NO_SINCE, 50 },
	{ { "--session", "sess-1", "--limit", "500" },
	  -1, 0, -1, NO_SINCE, 500 },
	{ { "--session", "sess-2", "--limit", "500" },
	  -1, 1, -1, NO_SINCE, 500 },
	{ { "--session", "sess-3", "--limit", "500" },
	  -1, 2, -1, NO_SINCE, 500 },
	{ { "--session", "sess-4", "--limit", "500" },
	  -1, 3, -1, NO_SINCE, 500 },
	{ { "--session", "sess-9" }, -1, NONE, -1, NO_SINCE, 50 },
	{ { "--client", "claude-code", "--limit", "500" },
	  -1, -1, 0, NO_SINCE, 500 },
	{ { "--client", "openclaw", "--limit", "500" },
	  -1, -1, 1, NO_SINCE, 500 },
	{ { "--since", "2026-03-01T10:00:12Z", "--limit", "500" },
	  -1, -1, -1, 12, 500 },
	{ { "--since", "2026-03-01T12:00:12+02:00", "--limit", "500" },
	  -1, -1, -1, 12, 500 },
	{ { "--since", "2026-03-01 10:00:12", "--limit", "500" },
	  -1, -1, -1, 12, 500 },
	{ { "--since", "2026-03-01T10:00:12.750Z", "--limit", "500" },
	  -1, -1, -1, 12, 500 },
	{ { "--since", "2026-03-01T10:00:12.999999999Z", "--limit", "500" },
	  -1, -1, -1, 12, 500 },
	{ { "--since", "2026-03-01T05:00:12-0500", "--limit", "500" },
	  -1, -1, -1, 12, 500 },
	{ { "--since", "2026-03-01T12:00:12.5+02:00", "--limit", "500" },
	  -1, -1, -1, 12, 500 },
	{ { "--since", "2026-03-01T10:00:29Z", "--limit", "500" },
	  -1, -1, -1, 29, 500 },
	{ { "--since", "2026-03-01T10:00:30Z" }, -1, -1, -1, 30, 50 },
	{ { "--since", "2026-02-28" }, -1, -1, -1, -122400, 50 },
	{ { "--project", "ALPHA", "--session", "sess-2", "--limit", "500" },
	  0, 1, -1, NO_SINCE, 500 },
	{ { "--project", "al", "--client", "openclaw", "--since", "2026-03-01 10:00:08" },
	  0, -1, 1, 8, 50 },
	{ { "--session", "sess-3", "--client", "claude-code", "--limit", "3" },
	  -1, 2, 0, NO_SINCE, 3 },
	{ { "--project", "b", "--session", "sess-1", "--client", "openclaw",
	    "--since", "2026-03-01T10:00:05Z", "--limit", "2" }, 1, 0, 1, 5, 2 },
	{ { "--since", "2026-03-01T10:00:20+00:00", "--limit", "5" },
	  -1, -1, -1, 20, 5 },
};

static int64_t base_sec(void)
{
	return utc_seconds(BASE_SEC_Y);
}

/* Newest first: created_at descending, ties by seq descending. */
static int newest_first(const void *x, const void *y)
{
	const struct item *a = *(const struct item *const *)x;
	const struct item *b = *(const struct item *const *)y;

	if (a->us != b->us)
		return a->us < b->us ? 1 : -1;
	return a->seq < b->seq ? 1 : a->seq > b->seq ? -1 : 0;
}

static int oldest_first(const void *x, const void *y)
{
	return newest_first(y, x);
}

/* The created_at text of one input, in one of several ISO shapes. */
static void time_input(int64_t sec, long micro, int shape, char *key,
		       char *text, size_t size)
{
	static const int offsets[] = { 0, 0, 7200, -18000, 0 };
	static const char *const zones[] = { "Z", "", "+02:00", "-05:00", "Z" };
	char frac[16] = "";
	size_t n;

	if (micro || shape == 4)
		snprintf(frac, sizeof(frac), ".%06ld", micro);
	strcpy(key, shape == 4 ? "created_at_iso" : "created_at");
	format_time(sec, offsets[shape], shape == 1 ? ' ' : 'T', text, size);
	n = strlen(text);
	snprintf(text + n, size - n, "%s%s", frac, zones[shape]);
}

/*
 * Leak checking (when the CLI is built with ASan) doubles the cost of a
 * run; the bulk records repeat a path leak-checked elsewhere, so they
 * skip it to keep the test fast. Only the children see this variable.
 */
static void child_leak_check(bool on)
{
	static char *saved;
	char *opts;

	if (on) {
		if (saved)
			setenv("ASAN_OPTIONS", saved, 1);
		else
			unsetenv("ASAN_OPTIONS");
		free(saved);
		saved = NULL;
		return;
	}
	saved = getenv("ASAN_OPTIONS") ? strdup(getenv("ASAN_OPTIONS")) : NULL;
	if (asprintf(&opts, "%s%sdetect_leaks=0", saved ? saved : "",
		     saved ? ":" : "") < 0)
		exit(2);
	setenv("ASAN_OPTIONS", opts, 1);
	free(opts);
}

/* Records N_ITEMS interactions with random times, projects, sessions. */
static void fill_items(const char *dir, struct item *items)
{
	int64_t base = base_sec();
	long long last_seq = 0;

	child_leak_check(false);
	for (int i = 0; i < N_ITEMS; i++) {
		struct item *it = &items[i];
		int64_t sec = base + (int64_t)check_rand_below(SPAN_SEC);
		long micro = check_rand_below(4) ? 0 : 1 + (long)check_rand_below(999999);
		int shape = (int)check_rand_below(5);
		char key[32], when[64], prompt[64];
		const char *spelled;
		json_t *in;
		char *text;

		it->project = i < 3 ? i : (int)check_rand_below(3);
		it->session = i < 4 ? i : (int)check_rand_below(4);
		it->client = i < 2 ? i : (int)check_rand_below(2);
		if (i < 5) { /* boundaries of the since cases, an exact tie */
			static const int fixed_sec[] = { 12, 12, 11, 20, 20 };
			static const long fixed_micro[] = { 0, 300000, 999999, 0, 0 };

			sec = base + fixed_sec[i];
			micro = fixed_micro[i];
		}
		it->us = sec * 1000000 + micro;
		spelled = project_spellings[it->project][check_rand_below(4)];
		time_input(sec, micro, shape, key, when, sizeof(when));
		snprintf(prompt, sizeof(prompt), "turn %d", i);
		in = json_pack("{s:s, s:s, s:s, s:s, s:s, s:[s], s:{s:i}}",
			       "prompt", prompt, key, when, "project", spelled,
			       "session_id", session_names[it->session],
			       "client", client_names[it->client],
			       "memories_used", "mem-x", "context_pack", "turn", i);
		text = json_dumps(in, JSON_COMPACT);
		it->json = RECORD(dir, text, true);
		free(text);
		json_decref(in);
		if (!it->json) {
			fprintf(stderr, "record %d (%s=%s) failed\n", i, key, when);
			continue;
		}
		check_shape(__LINE__, it->json);
		check_times(__LINE__, it->json, it->us);
		CHECK_STR(jstr(it->json, "project"), project_names[it->project]);
		it->seq = jint(it->json, "seq");
		CHECK(it->seq > last_seq);
		last_seq = it->seq;
	}
	child_leak_check(true);
}

static bool item_matches(const struct item *it, const struct list_case *c)
{
	int64_t since_us = ((int64_t)base_sec() + c->since) * 1000000;

	return (c->project < 0 || it->project == c->project) &&
	       (c->session < 0 || it->session == c->session) &&
	       (c->client < 0 || it->client == c->client) &&
	       (c->since == NO_SINCE || it->us >= since_us);
}

static void check_list_case(const char *dir, struct item *items,
			    const struct list_case *c)
{
	struct item *sorted[N_ITEMS];
	json_t *want[N_ITEMS];
	size_t n = 0;
	struct run r;
	json_t *arr;

	for (int i = 0; i < N_ITEMS; i++) {
		if (item_matches(&items[i], c))
			sorted[n++] = &items[i];
	}
	qsort(sorted, n, sizeof(sorted[0]), newest_first);
	if ((long)n > c->limit)
		n = (size_t)(c->limit > 0 ? c->limit : 0);
	for (size_t i = 0; i < n; i++)
		want[i] = sorted[i]->json;
	cli_list(&r, dir, c->args);
	CHECK_EXIT(&r, 0);
	arr = RUN_JSON(&r);
	check_objects(__LINE__, &r, arr, want, n);
	json_decref(arr);
	run_free(&r);
}

static void check_replay(const char *dir, struct item *items, int session)
{
	struct item *sorted[N_ITEMS];
	json_t *want[N_ITEMS];
	size_t n = 0;
	struct run r;
	json_t *arr;

	for (int i = 0; i < N_ITEMS; i++) {
		if (items[i].session == session)
			sorted[n++] = &items[i];
	}
	qsort(sorted, n, sizeof(sorted[0]), oldest_first);
	for (size_t i = 0; i < n; i++)
		want[i] = sorted[i]->json;
	cli(&r, NULL, dir, "replay", session_names[session], NULL);
	CHECK_EXIT(&r, 0);
	arr = RUN_JSON(&r);
	check_objects(__LINE__, &r, arr, want, n);
	json_decref(arr);
	run_free(&r);
}

static void test_listing(const char *root)
{
	char *dir = check_path(root, "listing");
	struct item *items = calloc(N_ITEMS, sizeof(*items));
	bool complete = true;
	struct run r;

	cli(&r, NULL, dir, "project", "add", "alpha", "--alias", "al",
	    "--alias", "Alpha-Old", NULL);
	CHECK_EXIT(&r, 0);
	run_free(&r);
	cli(&r, NULL, dir, "project", "add", "beta", "--alias", "b", NULL);
	CHECK_EXIT(&r, 0);
	run_free(&r);

	fill_items(dir, items);
	for (int i = 0; i < N_ITEMS; i++)
		complete &= items[i].json != NULL;
	if (complete) {
		for (size_t i = 0; i < sizeof(list_cases) / sizeof(list_cases[0]); i++)
			check_list_case(dir, items, &list_cases[i]);
		for (int s = 0; s < 4; s++)
			check_replay(dir, items, s);
		for (int i = 0; i < 3; i++) {
			json_t *want = items[check_rand_below(N_ITEMS)].json, *arr;

			cli(&r, NULL, dir, "get", jstr(want, "id"), NULL);
			CHECK_EXIT(&r, 0);
			arr = RUN_JSON(&r);
			check_objects(__LINE__, &r, arr, &want, 1);
			json_decref(arr);
			run_free(&r);
		}
	}
	cli(&r, NULL, dir, "replay", "sess-9", NULL);
	CHECK_FAILS(&r, 1);
	run_free(&r);
	for (int i = 0; i < N_ITEMS; i++)
		json_decref(items[i].json);
	free(items);
	free(dir);
}

/* ------------------------------------------------------------------------
 * The cap of 500 (the store filled through the library, for speed).
 */

#define CAP_N 520

struct cap_item {
	char id[ATOLOG_ID_TEXT_LEN + 1];
	int64_t us;
	uint64_t seq;
};

static int cap_newest_first(const void *x, const void *y)
{
	const struct cap_item *a = x, *b = y;

	if (a->us != b->us)
		return a->us < b->us ? 1 : -1;
	return a->seq < b->seq ? 1 : a->seq > b->seq ? -1 : 0;
}

/* r printed the ids of the first n of m (newest first), or of the last
 * n in reverse (oldest first). */
static void check_cap_ids(int line, const struct run *r,
			  const struct cap_item *m, size_t n, bool reverse)
{
	json_t *arr = run_json(line, r);

	if (json_array_size(arr) != n)
		fail(line, r, "printed %zu interactions, want %zu",
		     json_array_size(arr), n);
	for (size_t i = 0; i < n && i < json_array_size(arr); i++) {
		const char *want = m[reverse ? CAP_N - 1 - i : i].id;
		const char *got = jstr(json_array_get(arr, i), "id");

		if (!got || strcmp(got, want)) {
			fail(line, r, "line %zu is %s, want %s", i, got, want);
			break;
		}
	}
	json_decref(arr);
}

static void fill_cap(const char *dir, struct cap_item *m)
{
	atolog_options opts = { .sync = ATOLOG_SYNC_NONE };
	int64_t base = base_sec() * 1000000;
	atolog_store *s = NULL;
	int rc;

	rc = atolog_store_open(dir, &opts, &s);
	CHECK_OK(rc, NULL);
	for (int i = 0; s && i < CAP_N; i++) {
		atolog_interaction in = { .prompt = "bulk", .session_id = "big",
					  .has_created_at = 1 };
		atolog_interaction *out;

		/* Two records per second, in scrambled order. */
		in.created_at = base + (int64_t)((i * 7919) % (CAP_N / 2)) * 1000000;
		rc = atolog_interaction_record(s, &in, &out);
		CHECK_OK(rc, s);
		if (rc != ATOLOG_OK)
			break;
		memcpy(m[i].id, out->id, sizeof(m[i].id));
		m[i].us = out->created_at;
		m[i].seq = out->seq;
		atolog_interaction_free(out);
	}
	CHECK_OK(atolog_store_close(s), NULL);
	qsort(m, CAP_N, sizeof(*m), cap_newest_first);
}

static void test_limit_cap(const char *root)
{
	static const struct {
		const char *limit;
		size_t want;
	} cases[] = { { NULL, 50 }, { "499", 499 }, { "500", 500 },
		      { "501", 500 }, { "100000", 500 },
		      { "9223372036854775807", 500 } };
	struct cap_item *m = calloc(CAP_N, sizeof(*m));
	char *dir = check_path(root, "cap");
	struct stats st;
	struct run r;

	fill_cap(dir, m);
	STATS(dir, &st);
	CHECK_INT(st.records, CAP_N);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (cases[i].limit)
			cli(&r, NULL, dir, "list", "--limit", cases[i].limit, NULL);
		else
			cli(&r, NULL, dir, "list", NULL);
		CHECK_EXIT(&r, 0);
		check_cap_ids(__LINE__, &r, m, cases[i].want, false);
		run_free(&r);
	}
	/* replay is not capped, and runs oldest first. */
	cli(&r, NULL, dir, "replay", "big", NULL);
	CHECK_EXIT(&r, 0);
	check_cap_ids(__LINE__, &r, m, CAP_N, true);
	run_free(&r);
	free(m);
	free(dir);
}

/* ------------------------------------------------------------------------
 * A second writer is refused; readers fall back to read-only.
 */

static void test_second_writer(const char *root)
{
	atolog_options opts = { .sync = ATOLOG_SYNC_NONE };
	atolog_interaction in = { .prompt = "recorded by the test process",
				  .session_id = "lock-s" };
	atolog_interaction *mine = NULL;
	char *dir = check_path(root, "lock");
	json_t *first, *arr;
	atolog_store *s = NULL;
	struct stats st;
	struct run r;
	int rc;

	first = RECORD(dir, "{\"prompt\":\"before the lock\",\"session_id\":\"lock-s\"}",
		       false);
	rc = atolog_store_open(dir, &opts, &s);
	CHECK_OK(rc, NULL);
	if (rc != ATOLOG_OK || !first)
		goto out;
	CHECK_OK(atolog_interaction_record(s, &in, &mine), s);
	if (!mine)
		goto out;

	cli(&r, "{\"prompt\":\"refused\"}", dir, "record", NULL);
	CHECK_FAILS(&r, 3);
	CHECK(strstr(r.err, "LOCK") != NULL);
	run_free(&r);
	cli(&r, NULL, dir, "project", "add", "refused", NULL);
	CHECK_FAILS(&r, 3);
	run_free(&r);

	/* Readers still work and see the holder's record, newest first. */
	cli(&r, NULL, dir, "list", NULL);
	CHECK_EXIT(&r, 0);
	arr = RUN_JSON(&r);
	CHECK_INT(json_array_size(arr), 2);
	CHECK_STR(jstr(json_array_get(arr, 0), "id"), mine->id);
	CHECK_STR(jstr(json_array_get(arr, 0), "prompt"), in.prompt);
	CHECK(json_equal(json_array_get(arr, 1), first));
	json_decref(arr);
	run_free(&r);
	cli(&r, NULL, dir, "get", mine->id, NULL);
	CHECK_EXIT(&r, 0);
	arr = RUN_JSON(&r);
	CHECK_STR(jstr(json_array_get(arr, 0), "id"), mine->id);
	json_decref(arr);
	run_free(&r);
	STATS(dir, &st);
	CHECK_INT(st.records, 2);

	/* Released: the CLI can write again. */
	CHECK_OK(atolog_store_close(s), NULL);
	s = NULL;
	json_decref(RECORD(dir, "{\"prompt\":\"after the lock\"}", false));
	STATS(dir, &st);
	CHECK_INT(st.records, 3);
out:
	atolog_store_close(s);
	atolog_interaction_free(mine);
	json_decref(first);
	free(dir);
}

/*
 * A read command that is slow to drain (its stdout is a full pipe) holds
 * no writer lock: `record` goes through meanwhile, and the listing is
 * complete and correct once drained.
 */
#define SLOW_READER_RECORDS 300
#define SLOW_READER_PROMPT 2000

static void test_reader_holds_no_lock(const char *root)
{
	atolog_options opts = { .sync = ATOLOG_SYNC_NONE };
	char *dir = check_path(root, "slowreader");
	char *argv[] = { "atolog", "--data", dir, "list", "--limit", "500", NULL };
	char prompt[SLOW_READER_PROMPT + 1];
	struct buf out = { 0 }, err = { 0 };
	atolog_store *s = NULL;
	int fds[3], status;
	json_t *got;
	pid_t pid;
	struct run r;

	memset(prompt, 'p', SLOW_READER_PROMPT);
	prompt[SLOW_READER_PROMPT] = '\0';
	CHECK_OK(atolog_store_open(dir, &opts, &s), NULL);
	for (int i = 0; s && i < SLOW_READER_RECORDS; i++) {
		atolog_interaction in = { .prompt = prompt, .session_id = "slow" };

		CHECK_OK(atolog_interaction_record(s, &in, NULL), s);
	}
	CHECK_OK(atolog_store_close(s), NULL);

	spawn_cli(argv, &fds[0], &fds[1], &fds[2], &pid);
	close(fds[0]);
	/* One chunk of output: the reader has opened the store and is now
	 * blocked on a pipe holding far less than its 600 KB of output. */
	while (out.len == 0 && fds[1] >= 0)
		drain(&fds[1], &out);
	got = RECORD(dir, "{\"prompt\":\"while a reader is slow\"}", false);
	CHECK(got != NULL);
	while (fds[1] >= 0)
		drain(&fds[1], &out);
	while (fds[2] >= 0)
		drain(&fds[2], &err);
	waitpid(pid, &status, 0);
	memset(&r, 0, sizeof(r));
	snprintf(r.cmd, sizeof(r.cmd), "atolog list (slow reader)");
	r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
	r.out = out.p;
	r.out_len = out.len;
	r.err = err.p;
	CHECK_EXIT(&r, 0);
	{
		json_t *arr = RUN_JSON(&r);

		/* Opened before the new record: exactly the 300 older ones. */
		CHECK_INT(json_array_size(arr), SLOW_READER_RECORDS);
		CHECK_STR(jstr(json_array_get(arr, 0), "prompt"), prompt);
		json_decref(arr);
	}
	run_free(&r);
	json_decref(got);
	free(dir);
}

/*
 * Damage the writer refuses (a flipped byte in the unindexed part of the
 * log, before frames a later sync made durable) does not make the store
 * unreadable: read commands warn and serve what the index holds, and they
 * never serve the damaged record.
 */
#define DAMAGE_BATCH 20

static void record_n(const char *dir, int n, const char *session)
{
	atolog_options opts = { .sync = ATOLOG_SYNC_ALWAYS };
	atolog_store *s = NULL;

	CHECK_OK(atolog_store_open(dir, &opts, &s), NULL);
	for (int i = 0; s && i < n; i++) {
		atolog_interaction in = { .prompt = "an ordinary prompt of some length",
					  .session_id = session };

		CHECK_OK(atolog_interaction_record(s, &in, NULL), s);
	}
	CHECK_OK(atolog_store_close(s), NULL);
}

/* Three records; a byte flipped inside the last frame, which the index
 * holds. That frame was acknowledged: every command says so, with its
 * segment and offset, and none cuts it off (a read command never writes;
 * a writer refuses). */
static void test_flipped_last_frame(const char *root)
{
	char *dir = check_path(root, "lastflip");
	char *seg = check_path(dir, "segments/0000000000000001.seg");
	char *data = check_path(dir, "index/data.mdb");
	long long seg_size, data_size;
	struct run r;

	for (int i = 0; i < 3; i++) {
		cli(&r, "{\"prompt\":\"one of three\"}", dir, "record", NULL);
		CHECK_EXIT(&r, 0);
		run_free(&r);
	}
	seg_size = check_file_size(seg);
	data_size = check_file_size(data);
	check_flip_byte(seg, (uint64_t)seg_size - 20);
	for (int pass = 0; pass < 2; pass++) {
		static const char *const reads[][2] = {
			{ "verify", NULL }, { "list", NULL }, { "export", NULL },
			{ "stats", "--json" },
		};

		for (size_t i = 0; i < sizeof(reads) / sizeof(reads[0]); i++) {
			cli(&r, NULL, dir, reads[i][0], reads[i][1], NULL);
			/* stats reads counts, no frame; verify prints its
			 * report and export what came before the damage. */
			CHECK_EXIT(&r, strcmp(reads[i][0], "stats") == 0 ? 0 : 3);
			if (strcmp(reads[i][0], "stats") != 0)
				CHECK(strstr(r.err, "segment 0000000000000001 offset") != NULL);
			run_free(&r);
		}
		cli(&r, "{\"prompt\":\"a fourth\"}", dir, "record", NULL);
		CHECK_FAILS(&r, 3);
		CHECK(strstr(r.err, "segment 0000000000000001 offset") != NULL);
		run_free(&r);
		/* Nothing was cut, nothing rebuilt. */
		CHECK_INT(check_file_size(seg), seg_size);
		CHECK_INT(check_file_size(data), data_size);
	}
	free(seg);
	free(data);
	free(dir);
}

static void test_reader_on_damaged_log(const char *root)
{
	char *dir = check_path(root, "damaged");
	char *seg, *data, *saved, *lock;
	long long before, after;
	struct run r;
	json_t *arr;

	record_n(dir, DAMAGE_BATCH, "kept");
	seg = check_path(dir, "segments/0000000000000001.seg");
	data = check_path(dir, "index/data.mdb");
	lock = check_path(dir, "index/lock.mdb");
	saved = check_path(root, "damaged-index.mdb");
	before = check_file_size(seg);
	check_copy_file(data, saved);
	record_n(dir, DAMAGE_BATCH, "later");
	after = check_file_size(seg);
	/* The index forgets the later records; one of them is damaged. */
	check_copy_file(saved, data);
	unlink(lock);
	check_flip_byte(seg, (uint64_t)(before + (after - before) / 2));

	/* The reader serves the indexed records and, from the log, the later
	 * ones before the damage (they are the same size: half of them),
	 * says where the damage is, and changes nothing. */
	CHECK_INT((after - before) % DAMAGE_BATCH, 0);
	for (int pass = 0; pass < 2; pass++) {
		size_t kept = 0, later = 0;

		cli(&r, NULL, dir, "list", NULL);
		CHECK_EXIT(&r, 0);
		CHECK(strstr(r.err, "warning") && strstr(r.err, "offset"));
		arr = RUN_JSON(&r);
		for (size_t i = 0; i < json_array_size(arr); i++) {
			const char *session = jstr(json_array_get(arr, i), "session_id");

			kept += session && strcmp(session, "kept") == 0;
			later += session && strcmp(session, "later") == 0;
		}
		CHECK_INT(kept, DAMAGE_BATCH);
		CHECK_INT(later, DAMAGE_BATCH / 2);
		CHECK_INT(json_array_size(arr), kept + later);
		json_decref(arr);
		run_free(&r);
		CHECK_INT(check_file_size(seg), after);
	}
	cli(&r, "{\"prompt\":\"refused\"}", dir, "record", NULL);
	CHECK_FAILS(&r, 3);
	run_free(&r);
	free(seg);
	free(data);
	free(lock);
	free(saved);
	free(dir);
}

/* ------------------------------------------------------------------------
 * The tour.
 */

static void test_tour(const char *root)
{
	char *dir = check_path(root, "tour");
	struct stats st;
	struct run r;
	json_t *arr;

	cli(&r, NULL, dir, "tour", "--agents", "2", "--records", "40", NULL);
	CHECK_EXIT(&r, 0);
	arr = RUN_JSON(&r);
	for (size_t i = 0; i < json_array_size(arr); i++)
		check_shape(__LINE__, json_array_get(arr, i));
	json_decref(arr);
	run_free(&r);
	STATS(dir, &st);
	CHECK_INT(st.records, 40);
	free(dir);
}

int main(int argc, char **argv)
{
	char *root;

	check_args(argc, argv);
	cli_path = getenv("ATOLOG_CLI");
	if (!cli_path || access(cli_path, X_OK) != 0) {
		fprintf(stderr, "test_cli: ATOLOG_CLI is not an executable: %s\n",
			cli_path ? cli_path : "(unset)");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	check_rand_init("test_cli");
	root = check_tmpdir("cli");

	CHECK_RUN_WITH(test_no_store, root);
	CHECK_RUN_WITH(test_record_and_get, root);
	CHECK_RUN_WITH(test_record_numbers, root);
	CHECK_RUN_WITH(test_listing, root);
	CHECK_RUN_WITH(test_limit_cap, root);
	CHECK_RUN_WITH(test_second_writer, root);
	CHECK_RUN_WITH(test_reader_holds_no_lock, root);
	CHECK_RUN_WITH(test_reader_on_damaged_log, root);
	CHECK_RUN_WITH(test_flipped_last_frame, root);
	CHECK_RUN_WITH(test_tour, root);

	check_tmpdir_remove(root);
	return check_report("test_cli");
}
