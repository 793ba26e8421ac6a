/*
 * bench.c - helpers shared by the benchmarks (see bench.h): clock, latency
 * percentiles, the machine line, terminal progress, scratch directories.
 *
 * Percentiles use the nearest-rank rule on the sorted samples: p50 of
 * n samples is the ceil(0.5 n)-th smallest, p99 the ceil(0.99 n)-th.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define RMTREE_FDS 32 /* descriptors nftw may hold open */
#define DISK_USAGE_DEPTH_MAX 16

double bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------------------
 * Latency samples.
 */

int bench_lat_init(struct bench_lat *l, size_t cap)
{
	l->n = 0;
	l->cap = cap ? cap : 1;
	l->us = malloc(l->cap * sizeof(*l->us));
	return l->us ? 0 : ENOMEM;
}

static int lat_reserve(struct bench_lat *l, size_t need)
{
	double *p;
	size_t cap = l->cap ? l->cap : 1;

	if (need <= l->cap)
		return 0;
	while (cap < need)
		cap *= 2;
	p = realloc(l->us, cap * sizeof(*p));
	if (!p)
		return ENOMEM;
	l->us = p;
	l->cap = cap;
	return 0;
}

int bench_lat_add(struct bench_lat *l, double us)
{
	if (l->n == l->cap && lat_reserve(l, l->n + 1) != 0)
		return ENOMEM;
	l->us[l->n++] = us;
	return 0;
}

int bench_lat_merge(struct bench_lat *dst, struct bench_lat *src)
{
	if (lat_reserve(dst, dst->n + src->n) != 0)
		return ENOMEM;
	if (src->n)
		memcpy(dst->us + dst->n, src->us, src->n * sizeof(*src->us));
	dst->n += src->n;
	src->n = 0;
	return 0;
}

void bench_lat_free(struct bench_lat *l)
{
	free(l->us);
	l->us = NULL;
	l->n = l->cap = 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

void bench_lat_sort(struct bench_lat *l)
{
	if (l->n > 1)
		qsort(l->us, l->n, sizeof(*l->us), cmp_double);
}

double bench_lat_pct(const struct bench_lat *l, double p)
{
	size_t rank;

	if (l->n == 0)
		return 0;
	rank = (size_t)ceil(p / 100.0 * (double)l->n);
	if (rank < 1)
		rank = 1;
	if (rank > l->n)
		rank = l->n;
	return l->us[rank - 1];
}

/* ------------------------------------------------------------------------
 * The machine line.
 */

static void cpu_model(char *buf, size_t size)
{
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[512];

	snprintf(buf, size, "unknown CPU");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *colon;

		if (strncmp(line, "model name", 10) != 0)
			continue;
		colon = strchr(line, ':');
		if (!colon)
			continue;
		colon++;
		while (*colon == ' ' || *colon == '\t')
			colon++;
		colon[strcspn(colon, "\n")] = '\0';
		snprintf(buf, size, "%s", colon);
		break;
	}
	fclose(f);
}

/* The file system type of the mount that holds dir (longest prefix). */
static void fs_type(const char *dir, char *buf, size_t size)
{
	char real[PATH_MAX], dev[256], mnt[PATH_MAX], type[64];
	size_t best = 0;
	FILE *f;

	snprintf(buf, size, "unknown fs");
	if (!realpath(dir, real))
		return;
	f = fopen("/proc/self/mounts", "r");
	if (!f)
		return;
	while (fscanf(f, "%255s %4095s %63s %*[^\n]", dev, mnt, type) == 3) {
		size_t n = strlen(mnt);
		bool prefix = strncmp(real, mnt, n) == 0 &&
			      (real[n] == '/' || real[n] == '\0' || n == 1);

		if (prefix && n >= best) {
			best = n;
			snprintf(buf, size, "%s", type);
		}
	}
	fclose(f);
}

void bench_machine_line(const char *dir, char *buf, size_t size)
{
	char model[256], fs[64], real[PATH_MAX];
	struct utsname u;
	long cores = sysconf(_SC_NPROCESSORS_ONLN);

	cpu_model(model, sizeof(model));
	fs_type(dir, fs, sizeof(fs));
	if (uname(&u) != 0)
		snprintf(u.release, sizeof(u.release), "unknown");
	if (!realpath(dir, real))
		snprintf(real, sizeof(real), "%s", dir);
	snprintf(buf, size, "machine: %s, %ld cores, Linux %s, %s at %s", model,
		 cores, u.release, fs, real);
}

/* ------------------------------------------------------------------------
 * Progress.
 */

static bool progress_on(void)
{
	return isatty(STDERR_FILENO) == 1;
}

void bench_progress(const char *fmt, ...)
{
	va_list ap;

	if (!progress_on())
		return;
	fputs("\r\033[K", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fflush(stderr);
}

void bench_progress_done(void)
{
	if (!progress_on())
		return;
	fputs("\r\033[K", stderr);
	fflush(stderr);
}

/* ------------------------------------------------------------------------
 * Files.
 */

int bench_fmt(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n >= 0 && (size_t)n < size ? 0 : ENAMETOOLONG;
}

int bench_mkdirs(const char *path)
{
	char tmp[BENCH_PATH_SIZE];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(tmp))
		return ENAMETOOLONG;
	memcpy(tmp, path, n + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
			return errno;
		*p = '/';
	}
	if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
		return errno;
	return 0;
}

static int rmtree_one(const char *path, const struct stat *st, int flag,
		      struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path) == 0 ? 0 : errno;
}

int bench_rmtree(const char *path)
{
	struct stat st;

	if (lstat(path, &st) != 0)
		return errno == ENOENT ? 0 : errno;
	return nftw(path, rmtree_one, RMTREE_FDS, FTW_DEPTH | FTW_PHYS);
}

static uint64_t usage_at(int at, const char *name, int depth)
{
	struct stat st;
	uint64_t total;
	struct dirent *e;
	DIR *d;
	int fd;

	if (fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return 0;
	total = (uint64_t)st.st_blocks * 512;
	if (!S_ISDIR(st.st_mode) || depth > DISK_USAGE_DEPTH_MAX)
		return total;
	fd = openat(at, name, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return total;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return total;
	}
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			total += usage_at(dirfd(d), e->d_name, depth + 1);
	}
	closedir(d);
	return total;
}

uint64_t bench_disk_usage(const char *path)
{
	return usage_at(AT_FDCWD, path, 0);
}

/* ------------------------------------------------------------------------
 * Options and programs.
 */

int bench_parse_int_list(const char *text, long *out, int max)
{
	int n = 0;
	const char *p = text;

	while (*p) {
		char *end;
		long v;

		errno = 0;
		v = strtol(p, &end, 10);
		if (end == p || errno || v <= 0 || n == max)
			return -1;
		/* 100k, 1M */
		if (*end == 'k' || *end == 'K') {
			v *= 1000;
			end++;
		} else if (*end == 'm' || *end == 'M') {
			v *= 1000000;
			end++;
		}
		out[n++] = v;
		if (*end == ',')
			end++;
		else if (*end)
			return -1;
		p = end;
	}
	return n;
}

const char *bench_find_program(const char *prog, char *buf, size_t size)
{
	const char *path = getenv("PATH");

	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path) {
		size_t n = strcspn(path, ":");

		if (n > 0 && (size_t)snprintf(buf, size, "%.*s/%s", (int)n, path,
					      prog) < size &&
		    access(buf, X_OK) == 0)
			return buf;
		path += n;
		if (*path == ':')
			path++;
	}
	return NULL;
}

FILE *bench_gnuplot_open(const char *who, const char *png, int width,
			 int height, int *rc)
{
	char gp[BENCH_PATH_SIZE];
	FILE *p;

	*rc = 0;
	if (!bench_find_program("gnuplot", gp, sizeof(gp))) {
		printf("chart skipped: gnuplot is not on PATH (scripts/deps.sh bench "
		       "installs gnuplot-nox)\n");
		return NULL;
	}
	p = popen("gnuplot", "w");
	if (!p) {
		*rc = errno;
		fprintf(stderr, "%s: cannot run gnuplot: %s\n", who, strerror(errno));
		return NULL;
	}
	fprintf(p, "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) "
		"{ set terminal pngcairo size %d,%d font 'sans,10' } "
		"else { set terminal png size %d,%d }\n", width, height, width, height);
	fprintf(p, "set output '%s'\n", png);
	return p;
}

int bench_gnuplot_close(FILE *p, const char *who, const char *png)
{
	int status = pclose(p);

	if (status != 0) {
		fprintf(stderr, "%s: gnuplot failed (status %d)\n", who, status);
		return EIO;
	}
	printf("chart: %s\n", png);
	return 0;
}

void bench_gnuplot_text(char *out, size_t size, const char *text)
{
	snprintf(out, size, "%s", text);
	for (char *c = out; *c; c++) {
		if (*c == '\'' || *c == '"' || *c == '\\')
			*c = ' ';
	}
}

void bench_format_count(uint64_t n, char *buf, size_t size)
{
	if (n >= 1000000 && n % 1000000 == 0)
		snprintf(buf, size, "%lluM", (unsigned long long)(n / 1000000));
	else if (n >= 1000 && n % 1000 == 0)
		snprintf(buf, size, "%lluk", (unsigned long long)(n / 1000));
	else
		snprintf(buf, size, "%llu", (unsigned long long)n);
}
