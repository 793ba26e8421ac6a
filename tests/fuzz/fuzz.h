/*
 * fuzz.h - what every fuzz target shares: libFuzzer's entry points, and a
 * check that stops the run on a broken property in any build.
 *
 * A target is one file, fuzz_NAME.c, defining LLVMFuzzerTestOneInput (and
 * LLVMFuzzerInitialize when it needs a set-up). It is linked two ways:
 * with libFuzzer (make fuzz: clang, -fsanitize=fuzzer,address,undefined),
 * and with replay.c (make test: any compiler, the suite's sanitizers),
 * which feeds it every file of its corpus, tests/fuzz/corpus/NAME/.
 *
 * Invariants of every target: it never writes outside its own temporary
 * directory, frees all it allocates (the leak checker runs on each input),
 * and keeps no state from one input to the next but what its
 * LLVMFuzzerInitialize made, so that a crash replays from its input alone.
 */
#ifndef ATOLOG_FUZZ_H
#define ATOLOG_FUZZ_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A property of the code under test: abort (a finding) when it fails.
 * Not assert(): it must hold in release builds too. */
#define FUZZ_CHECK(cond)                                                     \
	do {                                                                 \
		if (!(cond)) {                                               \
			fprintf(stderr, "%s:%d: property failed: %s\n",      \
				__FILE__, __LINE__, #cond);                  \
			abort();                                             \
		}                                                            \
	} while (0)

/* A segment file's checksums made as a writer makes them: the header's,
 * then each frame's as far as their headers chain (plausible, and within
 * size). What the binary targets do with an input whose first byte is odd. */
void fuzz_make_checksums(uint8_t *buf, size_t size);
/* A segment file from an input (size > 0): the bytes after the mode byte
 * (malloc'ed, *len of them), with checksums made when the mode is odd. */
uint8_t *fuzz_segment_input(const uint8_t *data, size_t size, size_t *len);

/* Removes a directory tree (the targets' temporary stores). */
void fuzz_remove_tree(const char *path);

/* data as a NUL-terminated copy (malloc'ed; aborts when memory is out, as
 * a fuzz target may). */
char *fuzz_strndup(const uint8_t *data, size_t size);

#endif
