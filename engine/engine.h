/*
 * engine.h - the engine's internal interface: the store handle, segment
 * files, the log scanner used by recovery, and the I/O shim.
 *
 * The engine is the only module that knows both the codec (bytes) and the
 * index (LMDB). Its invariants:
 *
 *  1. The log is the truth. The index only ever points at frames that were
 *     completely written (and, in sync mode always, made durable) before
 *     the index transaction that names them committed.
 *  2. A segment is append-only while it is the newest one ("active") and
 *     immutable once a newer one exists ("sealed"); a sealed segment ends
 *     with a seal frame.
 *  3. Sequence numbers increase by one per record or registry frame across
 *     the whole store; the index's meta state says how far the log is
 *     indexed, written in the same transaction as the entries.
 *  4. A write that fails leaves the log as it was before the write (the
 *     writer truncates back); if even that fails, or a sync fails, the
 *     handle refuses further writes (ATOLOG_FAILED) until reopened, because
 *     it no longer knows what is on disk.
 */
#ifndef ATOLOG_ENGINE_H
#define ATOLOG_ENGINE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "atolog.h"
#include "codec.h"
#include "index.h"

#define STORE_LOCK_FILE "LOCK"
#define STORE_SEGMENT_DIR "segments"
#define STORE_INDEX_DIR "index"
/* Present while a sync-none writer may have index pages only in the page
 * cache; holds the boot id, so a reboot (a machine crash) is detectable. */
#define STORE_UNSYNCED_FILE "index-unsynced"
#define SEGMENT_SUFFIX ".seg"
#define SEGMENT_NAME_LEN 20         /* 16 hex digits + ".seg" */
#define SEGMENT_FIRST_ID 1
#define RECOVERY_BATCH_RECORDS 8192 /* entries per index transaction */
#define SEGMENT_FDS_MAX 64          /* read descriptors kept open */
#define ITER_BATCH 64               /* index hits fetched per transaction */

/* ------------------------------------------------------------------------
 * I/O shim (engine/io.c): every write-side system call goes through here,
 * so tests can make the nth call fail (ENOSPC, EIO) or write short.
 */
enum io_op { IO_WRITE, IO_SYNC, IO_TRUNCATE, IO_CREATE, IO_OP_COUNT };

struct io_faults {
	long countdown[IO_OP_COUNT]; /* fail when it reaches 0; <0: never */
	int err[IO_OP_COUNT];
	bool short_write; /* an IO_WRITE fault writes half, then fails */
};

void io_faults_init(struct io_faults *f);
/* Writes all of buf at off (or fails, possibly after a partial write). */
int io_pwrite_all(struct io_faults *f, int fd, const void *buf, size_t len,
		  uint64_t off);
int io_fdatasync(struct io_faults *f, int fd);
int io_ftruncate(struct io_faults *f, int fd, uint64_t len);
int io_fsync_dir(struct io_faults *f, const char *dir);
/* Reads exactly len bytes at off; ATOLOG_CORRUPT-free: short reads are
 * reported as EIO-like errno (the caller adds context). */
int io_pread_all(int fd, void *buf, size_t len, uint64_t off, size_t *got);

/* ------------------------------------------------------------------------
 * Segments (engine/segment.c).
 */
struct segment {
	uint64_t id;
	int fd;
	uint64_t size; /* end of valid data: where the next frame goes */
};

/* Lists segment ids in dir, ascending; *ids is malloc'ed. */
int segment_list(const char *dir, uint64_t **ids, size_t *n);
void segment_path(char *out, size_t size, const char *dir, uint64_t id);
/* Creates segment id with a header (temp name, sync, rename, sync dir). */
int segment_create(struct io_faults *io, const char *dir, uint64_t id,
		   const uint8_t store_id[UUID_SIZE], struct segment *out);
/* Opens an existing segment for appending and checks its header. */
int segment_open(const char *dir, uint64_t id, int flags,
		 struct segment_header *hdr, int *fd_out);
/* Appends len bytes at seg->size; on failure cuts the file back. */
int segment_append(struct io_faults *io, struct segment *seg,
		   const void *buf, size_t len, bool *failed);
/* Reads and verifies the frame at loc into a malloc'ed buffer. */
int segment_read_frame(int fd, uint64_t segment_id, uint64_t offset,
		       uint32_t length, uint8_t kind, uint8_t **frame_out);

/* Read descriptors shared by all readers of a handle. */
struct segment_fds {
	pthread_mutex_t lock;
	char *dir;
	struct segment_fd {
		uint64_t id;
		int fd;
		unsigned refs;
		uint64_t last_use;
	} slots[SEGMENT_FDS_MAX];
	size_t n;
	uint64_t clock;
};
int segment_fds_init(struct segment_fds *c, const char *dir);
void segment_fds_destroy(struct segment_fds *c);
int segment_fds_get(struct segment_fds *c, uint64_t id, int *fd);
void segment_fds_put(struct segment_fds *c, uint64_t id, int fd);

/* ------------------------------------------------------------------------
 * Log scanning (engine/scan.c): walks frames from a position, classifying
 * where the valid log ends.
 */
struct log_frame {
	uint64_t segment;
	uint64_t offset;
	uint32_t length;
	struct frame_header header;
	const uint8_t *payload; /* valid until the next frame */
};

/* Where a segment's valid frames end, and why. */
enum scan_end {
	SCAN_END_CLEAN, /* end of file, or zeros to the end */
	SCAN_END_TORN,  /* a bad last frame with nothing valid after it */
};

struct scan_result {
	enum scan_end end;
	uint64_t valid_end;   /* offset after the last valid frame */
	uint64_t file_size;
	uint8_t last_kind;    /* kind of the last valid frame, 0 if none */
};

struct scan_start {
	uint64_t segment_id;
	uint64_t offset;
	uint8_t prev_kind; /* kind of the frame before offset, 0 if none */
	/* After a machine crash under sync none, the OS may have written a
	 * later page of the tail and not an earlier one; nothing after such a
	 * hole was durable, so the hole ends the log instead of being damage. */
	bool holes_are_torn;
};

/*
 * Calls fn for every valid frame of segment fd from the start position. A
 * bad frame followed by a valid one is corruption: ATOLOG_CORRUPT with
 * segment and offset in the message (unless holes_are_torn). fn returning
 * non-zero stops with that code.
 */
int scan_segment(int fd, const struct scan_start *from,
		 int (*fn)(const struct log_frame *frame, void *ctx), void *ctx,
		 struct scan_result *result);

/* ------------------------------------------------------------------------
 * The store handle.
 */
struct writer {
	pthread_mutex_t lock;   /* one append at a time */
	struct segment active;
	uint64_t next_seq;
	struct index_state state; /* what the index holds */
	bool failed;            /* see invariant 4 */
	struct uuid_v7_gen ids;
	struct io_faults io;
};

struct atolog_store {
	char *dir;
	char *segment_dir;
	char *index_dir;
	atolog_options opts;
	bool readonly;
	int lock_fd;
	uint8_t store_id[UUID_SIZE];
	struct index *idx;
	struct segment_fds fds;
	struct writer w;
	atolog_stats open_stats; /* recovery figures */
	bool marker_present;      /* STORE_UNSYNCED_FILE exists */
	bool after_machine_crash; /* it was left by an earlier boot */
};

/* engine/recovery.c: brings the index level with the log at open. */
int recovery_run(atolog_store *store);

/* engine/write.c */
int writer_init(atolog_store *store);
void writer_destroy(atolog_store *store);

/* engine/read.c: reads and decodes the record frame at a location. */
int store_read_record(atolog_store *store, const struct index_loc *loc,
		      struct record_view *view, uint8_t **frame);

/* engine/registry.c: canonical project name for a query or a write;
 * *out is malloc'ed. */
int store_resolve_project(atolog_store *store, const char *name, size_t len,
			  char **out);

/* Test hook: make the nth (0 = next) call of op fail with err. */
void store_inject_fault(atolog_store *store, enum io_op op, long nth, int err,
			bool short_write);

#endif
