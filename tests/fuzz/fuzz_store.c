/*
 * fuzz_store.c - a writer open over an arbitrary log: the input is the
 * first segment file of an otherwise empty store (no index), so the open
 * runs the whole of recovery (store id, scan, torn-tail cut, index
 * rebuild), then verify reads what it made.
 *
 * An input whose first byte is odd has its checksums made for it, as in
 * fuzz_scan.c. Each input gets a fresh store under one directory that
 * LLVMFuzzerInitialize makes (in /dev/shm when it is there: this target
 * is bound by file system calls) and removes at exit.
 *
 * Properties: the open succeeds or fails with ATOLOG_CORRUPT,
 * ATOLOG_VERSION or ATOLOG_INVALID and a message, never a crash; a failed
 * open leaves the segment file byte for byte as it was; an open that
 * succeeds leaves a prefix of it (a torn tail cut, nothing else changed),
 * and then verify passes and the close succeeds.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec.h"
#include "engine.h"
#include "fuzz.h"

static char work_dir[64];

static void work_dir_remove(void)
{
	fuzz_remove_tree(work_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct stat st;

	(void)argc, (void)argv;
	snprintf(work_dir, sizeof(work_dir), "%s/atolog-fuzz-store-XXXXXX",
		 stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp");
	FUZZ_CHECK(mkdtemp(work_dir) != NULL);
	atexit(work_dir_remove);
	return 0;
}

static void write_file(const char *path, const uint8_t *buf, size_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	FUZZ_CHECK(fd >= 0);
	FUZZ_CHECK(size == 0 || write(fd, buf, size) == (ssize_t)size);
	close(fd);
}

/* The file's bytes (malloc'ed), *size of them. */
static uint8_t *read_file(const char *path, size_t *size)
{
	struct stat st;
	uint8_t *buf;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	FUZZ_CHECK(fd >= 0 && fstat(fd, &st) == 0);
	*size = (size_t)st.st_size;
	buf = malloc(*size ? *size : 1);
	FUZZ_CHECK(buf != NULL);
	FUZZ_CHECK(*size == 0 || pread(fd, buf, *size, 0) == (ssize_t)*size);
	close(fd);
	return buf;
}

static int no_frame(const struct log_frame *f, void *ctx)
{
	(void)f, (void)ctx;
	return 0;
}

/* Where the valid frames of the segment file at path end, by the scan;
 * UINT64_MAX when the scan finds it corrupt (no open may succeed then). */
static uint64_t valid_end_of(const char *path)
{
	struct scan_start from = { .segment_id = SEGMENT_FIRST_ID,
				   .offset = SEGMENT_HEADER_SIZE };
	struct scan_result res;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	FUZZ_CHECK(fd >= 0);
	int rc = scan_segment(fd, &from, no_frame, NULL, &res);

	FUZZ_CHECK(rc == ATOLOG_OK || rc == ATOLOG_CORRUPT);
	close(fd);
	return rc == ATOLOG_OK ? res.valid_end : UINT64_MAX;
}

/* Whether after is log cut no earlier than valid_end, then zeros (the
 * active segment's pre-allocated space) or nothing: a torn tail cut, no
 * valid frame lost, nothing else changed. */
static bool cut_at_tail(const uint8_t *after, size_t after_size,
			const uint8_t *log, size_t size, uint64_t valid_end)
{
	size_t same = 0, n = after_size < size ? after_size : size;

	while (same < n && after[same] == log[same])
		same++;
	for (size_t i = same; i < after_size; i++) {
		if (after[i] != 0)
			return false;
	}
	return same >= valid_end || same == size;
}

static void check_open(const char *dir, const char *seg, const uint8_t *log,
		       size_t size)
{
	/* Small: a fresh store per input, on tmpfs, where pre-allocating a
	 * 64 MiB segment would cost more than the open itself. */
	atolog_options opts = { .sync = ATOLOG_SYNC_NONE,
				.segment_size = ATOLOG_SEGMENT_SIZE_MIN,
				.index_map_size = 1u << 20 };
	atolog_verify_report report;
	atolog_store *store;
	uint8_t *after;
	size_t after_size;
	uint64_t valid_end = size >= SEGMENT_HEADER_SIZE ? valid_end_of(seg) : 0;
	int rc = atolog_store_open(dir, &opts, &store);

	after = read_file(seg, &after_size);
	if (rc != ATOLOG_OK) {
		fprintf(stderr, "open: %d %s (file %zu -> %zu bytes)\n", rc,
			atolog_errmsg(NULL), size, after_size);
		FUZZ_CHECK(rc == ATOLOG_CORRUPT || rc == ATOLOG_VERSION ||
			   rc == ATOLOG_INVALID);
		FUZZ_CHECK(atolog_errmsg(NULL)[0] != '\0');
		FUZZ_CHECK(after_size == size && memcmp(after, log, size) == 0);
		free(after);
		return;
	}
	FUZZ_CHECK(valid_end != UINT64_MAX);
	FUZZ_CHECK(cut_at_tail(after, after_size, log, size, valid_end));
	free(after);
	rc = atolog_store_verify(store, NULL, NULL, &report);
	if (rc != ATOLOG_OK)
		fprintf(stderr, "verify: %d %s (%" PRIu64 " problems: %s)\n", rc,
			atolog_errmsg(store), report.problems, report.first_problem);
	FUZZ_CHECK(rc == ATOLOG_OK);
	FUZZ_CHECK(atolog_store_close(store) == ATOLOG_OK);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char dir[128], seg[192];
	uint8_t *log;

	if (size == 0)
		return 0;
	log = fuzz_segment_input(data, size, &size);
	snprintf(dir, sizeof(dir), "%s/s", work_dir);
	FUZZ_CHECK(mkdir(dir, 0755) == 0);
	snprintf(seg, sizeof(seg), "%s/" STORE_SEGMENT_DIR, dir);
	FUZZ_CHECK(mkdir(seg, 0755) == 0);
	snprintf(seg, sizeof(seg), "%s/" STORE_SEGMENT_DIR "/%016" PRIx64 SEGMENT_SUFFIX,
		 dir, (uint64_t)SEGMENT_FIRST_ID);
	write_file(seg, log, size);
	check_open(dir, seg, log, size);
	fuzz_remove_tree(dir);
	free(log);
	return 0;
}
