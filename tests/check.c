/*
 * check.c - the test harness behind check.h.
 */
#include "check.h"

#include <fcntl.h>
#include <ftw.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

int check_failures;
static uint64_t rand_state;
static uint64_t rand_seed;
/* The names a run is limited to (check_args), and how many tests ran. */
static char **selected_names;
static int n_selected_names;
static int tests_selected;

void check_args(int argc, char **argv)
{
	selected_names = argv + 1;
	n_selected_names = argc > 1 ? argc - 1 : 0;
}

bool check_selected(const char *name)
{
	bool run = n_selected_names == 0;

	for (int i = 0; i < n_selected_names && !run; i++)
		run = strstr(name, selected_names[i]) != NULL;
	tests_selected += run;
	return run;
}

int check_report(const char *name)
{
	if (n_selected_names > 0 && tests_selected == 0) {
		fprintf(stderr, "%s: no test's name contains %s%s\n", name,
			selected_names[0], n_selected_names > 1 ? " (or the others)" : "");
		return 2;
	}
	if (check_failures) {
		fprintf(stderr, "%s: %d check(s) FAILED (seed %" PRIu64 ")\n", name,
			check_failures, rand_seed);
		return 1;
	}
	fprintf(stderr, "%s: ok\n", name);
	return 0;
}

char *check_tmpdir(const char *name)
{
	const char *base = getenv("TMPDIR");
	char *dir;

	if (!base || !*base)
		base = "/tmp";
	if (asprintf(&dir, "%s/atolog-%s-XXXXXX", base, name) < 0 || !mkdtemp(dir)) {
		perror("mkdtemp");
		exit(2);
	}
	return dir;
}

static int remove_entry(const char *path, const struct stat *st, int flag,
			struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

void check_tmpdir_remove(char *dir)
{
	if (!getenv("ATOLOG_TEST_KEEP"))
		nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(dir);
}

void check_rand_init(const char *name)
{
	const char *env = getenv("ATOLOG_TEST_SEED");

	rand_seed = env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL) ^ (uint64_t)getpid();
	rand_state = rand_seed;
	fprintf(stderr, "%s: seed %" PRIu64 " (replay with ATOLOG_TEST_SEED=%" PRIu64 ")\n",
		name, rand_seed, rand_seed);
}

uint64_t check_seed(void)
{
	return rand_seed;
}

uint64_t check_rand(void)
{
	uint64_t z = (rand_state += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

uint64_t check_rand_below(uint64_t n)
{
	return n ? check_rand() % n : 0;
}

char *check_path(const char *dir, const char *name)
{
	char *p;

	if (asprintf(&p, "%s/%s", dir, name) < 0)
		exit(2);
	return p;
}

long long check_file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

void check_flip_byte(const char *path, uint64_t offset)
{
	int fd = open(path, O_RDWR);
	uint8_t b = 0;

	CHECK(fd >= 0 && pread(fd, &b, 1, (off_t)offset) == 1);
	b ^= 0x5a;
	CHECK(pwrite(fd, &b, 1, (off_t)offset) == 1);
	if (fd >= 0)
		close(fd);
}

void check_copy_file(const char *from, const char *to)
{
	int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	char buf[65536];
	ssize_t n = 0;

	CHECK(in >= 0 && out >= 0);
	while (in >= 0 && out >= 0 && (n = read(in, buf, sizeof(buf))) > 0)
		CHECK(write(out, buf, (size_t)n) == n);
	CHECK(n == 0);
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
}

long check_count_session(atolog_store *s, const char *session)
{
	const atolog_interaction *rec;
	atolog_iter *it;
	long n = 0;
	int rc;

	if (!s || atolog_replay_open(s, session, &it) != ATOLOG_OK)
		return -1;
	while ((rc = atolog_iter_next(it, &rec)) == ATOLOG_OK)
		n++;
	atolog_iter_close(it);
	return rc == ATOLOG_DONE ? n : -1;
}

void check_remove_index(const char *dir)
{
	char *data = check_path(dir, "index/data.mdb");
	char *lock = check_path(dir, "index/lock.mdb");

	CHECK(unlink(data) == 0);
	unlink(lock);
	free(data);
	free(lock);
}

int check_run_cases(const char *suite, const struct check_case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char *dir;

		if (!check_selected(cases[i].name))
			continue;
		dir = check_tmpdir(cases[i].name);
		fprintf(stderr, "%s: %s\n", suite, cases[i].name);
		cases[i].run(dir);
		check_tmpdir_remove(dir);
	}
	return check_report(suite);
}

int check_verify_dir(const char *dir)
{
	atolog_options ro = { .flags = ATOLOG_OPEN_READONLY };
	atolog_verify_report rep;
	atolog_store *s;
	int rc = atolog_store_open(dir, &ro, &s);

	if (rc != ATOLOG_OK) {
		fprintf(stderr, "verify %s: open: %s\n", dir, atolog_errmsg(NULL));
		return rc;
	}
	rc = atolog_store_verify(s, NULL, NULL, &rep);
	if (rc != ATOLOG_OK)
		fprintf(stderr, "verify %s: %s\n", dir, atolog_errmsg(s));
	atolog_store_close(s);
	return rc;
}
