/*
 * bench.h - helpers shared by the benchmarks: a monotonic clock,
 * latency samples and their percentiles, the machine line printed at the
 * top of every report, progress lines for a terminal, scratch directories,
 * option lists, and finding gnuplot.
 *
 * Nothing here is measured: these are the measuring tools. No function
 * prints on stdout; messages go to stderr.
 */
#ifndef ATOLOG_BENCH_H
#define ATOLOG_BENCH_H

#include <stdbool.h>
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>

#define BENCH_MACHINE_LINE_SIZE 512
#define BENCH_PATH_SIZE 4096

/* Seconds on CLOCK_MONOTONIC. */
double bench_now(void);

/* Latency samples in microseconds, appended by one thread. */
struct bench_lat {
	double *us;
	size_t n, cap;
};

/* Reserves room for cap samples up front so that appending never
 * allocates inside a timed loop. Returns 0 or ENOMEM. */
int bench_lat_init(struct bench_lat *l, size_t cap);
/* Appends one sample; returns 0 or ENOMEM (it grows when full). */
int bench_lat_add(struct bench_lat *l, double us);
/* Moves every sample of src to the end of dst; src is emptied. */
int bench_lat_merge(struct bench_lat *dst, struct bench_lat *src);
void bench_lat_free(struct bench_lat *l);
/* Sorts the samples (needed once before bench_lat_pct). */
void bench_lat_sort(struct bench_lat *l);
/* The p-th percentile (0..100) of sorted samples, nearest rank; 0 if none. */
double bench_lat_pct(const struct bench_lat *l, double p);

/* "machine: AMD EPYC, 2 cores, Linux 6.1.0, ext4 (/work/x)" for dir. */
void bench_machine_line(const char *dir, char *buf, size_t size);

/* Progress on stderr, only when stderr is a terminal: each call replaces
 * the current line; bench_progress_done() clears it. */
void bench_progress(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
void bench_progress_done(void);

/* snprintf that says whether everything fit: 0, or ENAMETOOLONG when the
 * text was cut (paths must not be). */
int bench_fmt(char *buf, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* mkdir -p. Returns 0 or an errno value. */
int bench_mkdirs(const char *path);
/* rm -rf (path need not exist). Returns 0 or an errno value. */
int bench_rmtree(const char *path);

/* Bytes allocated on disk under path (st_blocks, so sparse files count
 * what they use); 0 if it cannot be read. */
uint64_t bench_disk_usage(const char *path);

/* Parses "1,4,16" into at most max positive integers. Returns the count,
 * or -1 on a malformed list. */
int bench_parse_int_list(const char *text, long *out, int max);

/* The full path of prog if it is an executable on $PATH, else NULL
 * (buf holds the answer). */
const char *bench_find_program(const char *prog, char *buf, size_t size);

/* Starts gnuplot drawing a width x height PNG at png (pngcairo when it
 * has it). NULL when gnuplot is not on PATH (stdout says the chart is
 * skipped; *rc 0) or cannot start (*rc an errno, said on stderr). */
FILE *bench_gnuplot_open(const char *who, const char *png, int width,
			 int height, int *rc);
/* Ends the script and says where the chart is; 0 or EIO. */
int bench_gnuplot_close(FILE *p, const char *who, const char *png);
/* text without the quotes and backslashes a gnuplot string cannot hold. */
void bench_gnuplot_text(char *out, size_t size, const char *text);

/* Formats a count compactly: 1000 -> "1k", 1000000 -> "1M", 1500 -> "1500". */
void bench_format_count(uint64_t n, char *buf, size_t size);

#endif /* ATOLOG_BENCH_H */
