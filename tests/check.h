/*
 * check.h - the test harness: CHECK macros that print file:line and keep
 * going, a per-test scratch directory, and a seeded random generator whose
 * seed is printed and can be replayed with ATOLOG_TEST_SEED=<n>.
 */
#ifndef ATOLOG_TEST_CHECK_H
#define ATOLOG_TEST_CHECK_H

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atolog.h"

extern int check_failures;

#define CHECK(cond)                                                          \
	do {                                                                 \
		if (!(cond)) {                                               \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, \
				__LINE__, #cond);                            \
			check_failures++;                                    \
		}                                                            \
	} while (0)

/* rc must equal want; prints both codes and the store's message. */
#define CHECK_RC(rc, want, store)                                            \
	do {                                                                 \
		int check_rc_ = (rc), check_want_ = (want);                  \
		if (check_rc_ != check_want_) {                              \
			fprintf(stderr, "%s:%d: %s returned %d (%s), want %d (%s): %s\n", \
				__FILE__, __LINE__, #rc, check_rc_,          \
				atolog_strerror(check_rc_), check_want_,     \
				atolog_strerror(check_want_),                \
				atolog_errmsg(store));                       \
			check_failures++;                                    \
		}                                                            \
	} while (0)

#define CHECK_OK(rc, store) CHECK_RC(rc, ATOLOG_OK, store)

#define CHECK_STR(got, want)                                                 \
	do {                                                                 \
		const char *check_g_ = (got), *check_w_ = (want);            \
		if (!check_g_ || !check_w_ || strcmp(check_g_, check_w_) != 0) { \
			fprintf(stderr, "%s:%d: %s is \"%s\", want \"%s\"\n", \
				__FILE__, __LINE__, #got,                    \
				check_g_ ? check_g_ : "(null)",              \
				check_w_ ? check_w_ : "(null)");             \
			check_failures++;                                    \
		}                                                            \
	} while (0)

#define CHECK_INT(got, want)                                                 \
	do {                                                                 \
		long long check_g_ = (long long)(got), check_w_ = (long long)(want); \
		if (check_g_ != check_w_) {                                  \
			fprintf(stderr, "%s:%d: %s is %lld, want %lld\n",    \
				__FILE__, __LINE__, #got, check_g_, check_w_); \
			check_failures++;                                    \
		}                                                            \
	} while (0)

/* Message of the last failure must contain the text. */
#define CHECK_MSG(store, text)                                               \
	do {                                                                 \
		const char *check_m_ = atolog_errmsg(store);                 \
		if (!strstr(check_m_, (text))) {                             \
			fprintf(stderr, "%s:%d: message \"%s\" lacks \"%s\"\n", \
				__FILE__, __LINE__, check_m_, (text));       \
			check_failures++;                                    \
		}                                                            \
	} while (0)

/* Reports a failure with a formatted explanation (for table-driven loops,
 * where the line of a CHECK alone would not say which entry failed). */
#define CHECK_FAILF(...)                                                     \
	do {                                                                 \
		fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);              \
		fprintf(stderr, __VA_ARGS__);                                \
		fputc('\n', stderr);                                         \
		check_failures++;                                            \
	} while (0)

/* A test of a suite: run in a fresh scratch directory of its own. */
struct check_case {
	const char *name;
	void (*run)(const char *dir);
};

/* Picking tests: `./test_x NAME...` runs only the tests whose names
 * contain one of the NAMEs (every test without one). main passes its
 * arguments to check_args first; check_run_cases and CHECK_RUN ask
 * check_selected, and check_report fails a run that selected nothing.
 * Together with ATOLOG_TEST_SEED (check_rand_init), one test of a
 * randomized run is replayed alone. */
void check_args(int argc, char **argv);
bool check_selected(const char *name);
/* Runs test function fn (no arguments, or the ones given) if selected. */
#define CHECK_RUN(fn)                                                        \
	do {                                                                 \
		if (check_selected(#fn))                                     \
			fn();                                                \
	} while (0)
#define CHECK_RUN_WITH(fn, ...)                                              \
	do {                                                                 \
		if (check_selected(#fn))                                     \
			fn(__VA_ARGS__);                                     \
	} while (0)

/* Runs every selected case in order (each in its own check_tmpdir,
 * removed after), then returns check_report(suite). */
int check_run_cases(const char *suite, const struct check_case *cases, size_t n);

/* Ends main: prints the verdict, returns the exit status. */
int check_report(const char *name);

/* A fresh empty directory under $TMPDIR, removed by check_tmpdir_remove. */
char *check_tmpdir(const char *name);
void check_tmpdir_remove(char *dir);

/* Deterministic random numbers (splitmix64); seed printed at init. */
void check_rand_init(const char *name);
uint64_t check_rand(void);
uint64_t check_rand_below(uint64_t n);
uint64_t check_seed(void);

/* Path helpers for tests that poke at files. */
char *check_path(const char *dir, const char *name);
/* Size of a file, or -1. */
long long check_file_size(const char *path);
/* XORs the byte at offset with 0x5a. */
void check_flip_byte(const char *path, uint64_t offset);
/* Copies a file's bytes (replacing to). */
void check_copy_file(const char *from, const char *to);

/* Interactions a replay of the session returns, or -1 on an error. */
long check_count_session(atolog_store *s, const char *session);
/* Deletes a store's LMDB files, so that the next writer rebuilds them. */
void check_remove_index(const char *dir);
/* atolog_store_verify on a read-only handle of dir: its code, with the
 * first problem printed when it is not ATOLOG_OK. */
int check_verify_dir(const char *dir);

#endif
