/*
 * engine.h - the engine's internal interface: the store handle, segment
 * files, the log scanner used by recovery, and the I/O shim.
 *
 * The engine is the only module that knows both the codec (bytes) and the
 * index (LMDB). Its invariants:
 *
 *  1. The log is the truth. The index only ever points at frames that were
 *     completely written (and, in sync modes always and batch, made
 *     durable) before the index transaction that names them committed.
 *  2. A segment is append-only while it is the newest one ("active") and
 *     immutable once a newer one exists ("sealed"); a sealed segment ends
 *     with a seal frame.
 *  3. Sequence numbers increase by one per record or registry frame as
 *     they are written, and are never given twice (seals carry the highest
 *     given, so removing the newest records keeps it); a compaction moves
 *     frames with their numbers, so the log's order is not seq order. The
 *     index's meta state says how far the log is indexed, written in the
 *     same transaction as the entries.
 *  4. A write that fails leaves the log as it was before the write (the
 *     writer truncates back); if even that fails, or a sync fails, the
 *     handle refuses further writes (ATOLOG_FAILED) until reopened, because
 *     it no longer knows what is on disk.
 *  5. A segment id is never used twice: a compaction writes new segments
 *     above every id and deletes old ones only once no reader has them
 *     open, so a place read from the index names either that frame or a
 *     file that is gone (engine/compact.c, engine/journal.c).
 */
#ifndef ATOLOG_ENGINE_H
#define ATOLOG_ENGINE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "atolog.h"
#include "codec.h"
#include "error.h"
#include "index.h"
#include "lock.h"

#define STORE_LOCK_FILE "LOCK"
#define STORE_SEGMENT_DIR "segments"
#define STORE_INDEX_DIR "index"
/* Present while the index may hold commits not yet flushed to disk (or, in
 * sync none, name log bytes not yet flushed); holds the boot id, so a
 * reboot (a machine crash) is detectable. */
#define STORE_UNSYNCED_FILE "index-unsynced"
#define STORE_LOCK_RETRY_MS 100 /* a writer open retries a held LOCK this
				 * long: readers hold it shared for an instant */
#define SEGMENT_SUFFIX ".seg"
#define SEGMENT_NAME_LEN 20         /* 16 hex digits + ".seg" */
#define SEGMENT_FIRST_ID 1
#define RECOVERY_BATCH_RECORDS 8192 /* entries per index transaction */
#define SEGMENT_FDS_MAX 64          /* read descriptors kept open */
#define ITER_BATCH 64               /* index hits fetched per transaction */
#define INDEX_IDLE_FLUSH_MS 1000    /* idle this long, the index is flushed */
#define COMMIT_GATHER_US 250        /* always mode: longest wait for callers
				     * returning to share a sync (commit.c) */
#define LEADER_WAKE_CHUNK 8         /* callers woken per hold of the lock */
#define RECENT_CHUNK_ITEMS 4096     /* items per chunk of the recent set */
#define RECENT_CHUNK_NAMES (512 * 1024) /* name bytes per chunk */
#define RECENT_MAX_ITEMS 65536      /* not yet indexed, before writers wait */
#define INDEX_TXN_MAX_ITEMS 16384   /* frames per index transaction */
#define INDEX_LINGER_US 1000        /* the index thread waits this long for
				     * more items before a small transaction */
#define INDEX_WAKE_ITEMS 1024       /* ... unless this many are waiting */
#define INDEX_FULL_RETRY_MS 100     /* a commit that found the disk full is
				     * tried again this often */
#define READ_RELOCATE_MAX 4         /* a read follows a record this often
				     * into a newer compacted segment */
#define FDS_REFRESH_MS 100          /* readers look this often whether a
				     * compaction ran (and close old fds) */

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
/* Writes total bytes from iov at off (iov is consumed). */
int io_pwritev_all(struct io_faults *f, int fd, struct iovec *iov, int n_iov,
		   uint64_t total, uint64_t off);
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
/* The same in two steps, so that a roll can make sure of the new segment
 * before it seals the old: the header under the temporary name (synced),
 * then the rename into place (and the directory synced); or abandoned. */
int segment_create_tmp(struct io_faults *io, const char *dir, uint64_t id,
		       const uint8_t store_id[UUID_SIZE], struct segment *out);
int segment_create_publish(struct io_faults *io, const char *dir,
			   const struct segment *seg);
void segment_create_abandon(const char *dir, struct segment *seg);
/* Opens an existing segment for appending and checks its header. */
int segment_open(const char *dir, uint64_t id, int flags,
		 struct segment_header *hdr, int *fd_out);
/* Appends len bytes at seg->size (the caller then advances size); on
 * failure cuts the file back, or sets *failed when even that fails. */
int segment_append(struct io_faults *io, struct segment *seg,
		   const void *buf, size_t len, bool *failed);
/* The same for a vector of total bytes (iov is consumed). */
int segment_appendv(struct io_faults *io, struct segment *seg,
		    struct iovec *iov, int n_iov, uint64_t total, bool *failed);
/* Reserves the file up to size (best effort): an fdatasync after writing
 * into reserved space does not have to grow the file, which costs about
 * twice as much (measured on ext4 here: 0.77 ms against 0.43 ms). */
void segment_preallocate(struct segment *seg, uint64_t size);
/* Cuts the reserved tail off at seg->size and syncs: a sealed segment is
 * exactly its frames. */
int segment_seal(struct io_faults *io, struct segment *seg);
/* Reads and verifies the frame at loc into a malloc'ed buffer. */
int segment_read_frame(int fd, uint64_t segment_id, uint64_t offset,
		       uint32_t length, uint8_t kind, uint8_t **frame_out);

/* Read descriptors shared by all readers of a handle. */
struct segment_fds {
	struct lock lock;
	char *dir;
	struct segment_fd {
		uint64_t id;
		int fd;
		unsigned refs;
		bool stale;  /* flushed while borrowed: closed when put back */
		uint64_t last_use;
	} slots[SEGMENT_FDS_MAX];
	size_t n;
	uint64_t clock;
	uint64_t compaction;   /* the index's last compaction, when looked at */
	int64_t looked_at_ms;  /* monotonic */
};
int segment_fds_init(struct segment_fds *c, const char *dir);
void segment_fds_destroy(struct segment_fds *c);
int segment_fds_get(struct segment_fds *c, uint64_t id, int *fd);
void segment_fds_put(struct segment_fds *c, uint64_t id, int fd);
/* Closes every descriptor (borrowed ones when put back): after a
 * compaction, so that no old segment is kept open for nothing. */
void segment_fds_flush(struct segment_fds *c);
/* At most every FDS_REFRESH_MS: flushes when idx's last compaction
 * changed since the last look. */
void segment_fds_refresh(struct segment_fds *c, struct index *idx);

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
	const char *why;      /* a torn end: what is wrong there (static) */
};

struct scan_start {
	uint64_t segment_id;
	uint64_t offset;
	uint8_t prev_kind; /* kind of the frame before offset, 0 if none */
};

/*
 * Calls fn for every valid frame of segment fd from the start position. A
 * bad frame followed by a valid frame written after a later sync is
 * corruption: ATOLOG_CORRUPT with segment and offset in the message. fn
 * returning non-zero stops with that code.
 */
int scan_segment(int fd, const struct scan_start *from,
		 int (*fn)(const struct log_frame *frame, void *ctx), void *ctx,
		 struct scan_result *result);

/* ------------------------------------------------------------------------
 * The recent set (engine/recent.c): acknowledged frames the index may not
 * have committed yet, merged into every read of this process.
 */
struct commit_req;

/* What a written frame leaves behind for readers and for the index. */
struct log_item {
	uint8_t kind;                          /* FRAME_KIND_RECORD or _REGISTRY */
	struct index_entry entry;              /* registry frames: seq and loc only */
	const struct index_registry_row *rows; /* registry frames */
	size_t n_rows;
	struct commit_req *waiter;             /* registry: acked once indexed */
};

struct recent_chunk;

struct recent {
	struct rwlock lock;
	struct recent_chunk *head, *tail;
	struct recent_chunk *reserved; /* the leader's, not yet in the list */
	/* The leader's plan: the tail once everything reserved is published,
	 * and reserved chunks not yet used. */
	size_t plan_items, plan_names, plan_chunks;
	uint64_t end;                  /* items published since open */
	uint64_t indexed;              /* items below this are in LMDB */
	struct index_state last;       /* the log after the last item */
};

/* One index transaction's worth of items (the index thread's). */
struct recent_batch {
	struct index_entry *entries;   /* INDEX_TXN_MAX_ITEMS */
	size_t n_entries;
	struct index_registry_row *rows;
	size_t n_rows, cap_rows;
	struct commit_req **waiters;   /* INDEX_TXN_MAX_ITEMS */
	size_t n_waiters;
	struct index_state state;      /* the log after the last item */
};

/* start: the index's state after recovery (the set starts empty there). */
int recent_init(struct recent *r, const struct index_state *start);
void recent_destroy(struct recent *r);
/* Leader: starts planning from the tail as it is (nothing reserved is
 * waiting to be published). */
void recent_plan_sync(struct recent *r);
/* Leader: makes room to publish items (call before writing them). */
int recent_reserve(struct recent *r, const struct log_item *items, size_t n);
/* Leader: appends items (names are copied); returns the new end. */
uint64_t recent_publish(struct recent *r, const struct log_item *items, size_t n);
/* Index thread: items below indexed are committed; frees what it can. */
void recent_trim(struct recent *r, uint64_t indexed);
/* The log state after the last published item. */
void recent_last_state(struct recent *r, struct index_state *out);
/* A compaction moved the log's end (nothing unindexed may be waiting). */
void recent_set_last(struct recent *r, const struct index_state *state);
/* Readers: the location of a recent record with this id. */
bool recent_find(struct recent *r, const uint8_t id[UUID_SIZE],
		 struct index_loc *loc);
/* Readers: every recent record not yet surely in LMDB that matches f
 * (names compared exactly), in f's order; *out is malloc'ed. */
int recent_collect(struct recent *r, const struct index_filter *f,
		   struct index_hit **out, size_t *n);
/* Orders hits by (created_at, seq): <0, 0, >0. */
int recent_hit_cmp(const struct index_hit *a, const struct index_hit *b);
/* Index thread: items [from, to) as one batch (to - from <= the max). */
int recent_batch_init(struct recent_batch *b);
void recent_batch_free(struct recent_batch *b);
int recent_take(struct recent *r, uint64_t from, uint64_t to,
		struct recent_batch *b);

/* ------------------------------------------------------------------------
 * The commit pipeline (engine/commit.c).
 *
 * Callers encode their frames in their own threads and queue a request.
 * One caller at a time leads: it takes everything queued as one group,
 * numbers the frames, appends them with one write and makes them durable
 * per the sync mode, then publishes the group to the recent set and wakes
 * its callers. The index thread commits the recent set to LMDB behind
 * them, in large transactions.
 */
struct commit_frame {
	uint8_t *data;  /* FRAME_HEADER_SIZE reserved, then the payload */
	uint32_t len;   /* header + payload */
	uint8_t kind;
	bool id_given;  /* a caller's id: must not be stored already */
	struct index_entry entry;              /* records */
	const struct index_registry_row *rows; /* registrations */
	size_t n_rows;
	int rc;         /* in: not OK means "skip me"; out: the outcome */
	bool queued;    /* it was OK when submitted */
	uint64_t seq;   /* out */
};

struct commit_req {
	struct commit_frame *frames;
	size_t n_frames;
	uint64_t bytes;
	bool done;
	bool wait_indexed;   /* registry rows: done once the index has them */
	pthread_cond_t wake; /* done, or "lead now" */
	struct commit_req *wake_next; /* the leader's list of callers to wake */
	char msg[ERR_MSG_SIZE]; /* why a frame failed, from the thread that saw it */
	struct commit_req *next;
};

struct writer {
	pthread_mutex_t registry_lock; /* one registration (check + write) at a time */
	pthread_mutex_t ids_lock;      /* the id generator */
	struct uuid_v7_gen ids;

	/* The leader's (one at a time, handed on under lock; recovery sets
	 * them up before the first). */
	struct segment active;
	uint64_t next_seq;
	bool sync_start_next;         /* the next frame opens a sync unit */
	uint64_t unsynced_bytes;
	int64_t unsynced_since;       /* monotonic us of the oldest unsynced write */
	bool io_failed;               /* what is on disk is unknown */

	/* Who holds the log (debug builds): the leader, or maintenance
	 * between writer_exclusive_begin and _end; writer_holds_log(). */
	struct owner log_owner;

	/* Shared, under lock. */
	struct lock lock;
	pthread_cond_t index_wake, room, idle;
	struct commit_req *queue_head, *queue_tail;
	uint64_t queued_reqs;         /* requests in the queue */
	uint64_t queued_bytes;        /* queued or in flight, not yet acked */
	bool leading;                 /* a caller is leading the log */
	unsigned waking;              /* past leaders still waking callers */
	struct commit_req *gatherer;  /* always mode: the leader, waiting for */
	uint64_t last_sync_reqs;      /* as many callers as the last sync had */
	uint64_t published, indexed;  /* items of the recent set, and in LMDB */
	uint64_t active_id;           /* active.id, for others to read */
	uint64_t index_next;          /* the index thread's next item */
	uint64_t recent_max;          /* published - indexed before callers wait */
	enum { INDEX_BUSY, INDEX_LINGERING, INDEX_ASLEEP } index_mode;
	bool index_urgent;            /* a registration waits: no lingering */
	bool index_failed;            /* it stopped committing */
	bool index_full;              /* its last commit found the disk full:
				       * it retries; a full recent set refuses */
	char index_full_msg[ERR_MSG_SIZE];
	bool stopping, index_stop, started;
	bool ran;                     /* the writer started once: close trims */
	bool paused;                  /* test hook: nobody leads */
	bool exclusive;               /* maintenance holds the log: nobody leads */
	bool index_paused;            /* test hook: the index thread commits nothing */
	/* Test hook: told (segment, bytes) after each fdatasync of the log. */
	void (*on_sync)(uint64_t segment, uint64_t size, void *ctx);
	void *on_sync_ctx;
	/* Test hook: called by the leader just before a group's fdatasync. */
	void (*before_sync)(void *ctx);
	void *before_sync_ctx;
	int failed_rc;                /* sticky: every later write fails */
	char failed_msg[ERR_MSG_SIZE];
	struct index_state state;     /* what the index holds */
	uint64_t n_groups, n_frames, n_syncs, n_index_commits;
	uint64_t group_sizes[ATOLOG_GROUP_SIZE_BUCKETS]; /* atolog_stats' */
	struct io_faults io;          /* tests set faults under lock */
	struct recent recent;
	struct recent_batch batch;    /* the index thread's */
	pthread_t index_thread;
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
	bool marker_present;     /* STORE_UNSYNCED_FILE exists (marker_lock) */
	/* Read-only handles: the log's unindexed tail, loaded at open when no
	 * writer holds the store (engine/tail.c; the damage that ended it, if
	 * any, is in open_stats.damaged_*). */
	struct recent tail;
	bool tail_ready;
	bool writer_ready;       /* writer_init ran: stop and destroy on close */
	/* One maintenance task at a time per handle: compaction, snapshot,
	 * verify (each reads segments that another may retire). */
	struct lock maint_lock;
	/* Held across "the index is synced, the marker goes" and across a
	 * compaction's "marker, swap, sync", so that neither cuts into the
	 * other (engine/store.c); marker_present is read and written only
	 * with it held. */
	struct lock marker_lock;
	/* The compactor's I/O (one at a time, under maint_lock): tests make
	 * its nth call fail, as w.io does for the writer. */
	struct io_faults compact_io;
	/* Test hook: told each step of a compaction (engine/compact.c). */
	void (*compact_hook)(int step, void *ctx);
	void *compact_hook_ctx;
};

/* engine/commit.c */
int writer_init(atolog_store *store);
/* Whether this thread holds the log: it leads, or has it for maintenance
 * (writer_exclusive_begin returned ATOLOG_OK), or is closing the store.
 * Debug builds only (always true with NDEBUG): for asserts where struct
 * writer's first part is touched (commit.c, invariant 6). */
bool writer_holds_log(const atolog_store *store);
/* Refuses every later write with rc and msg, until reopened. */
void writer_fail(atolog_store *store, int rc, const char *msg);
/* Starts the index thread (after recovery). */
int writer_start(atolog_store *store);
/* Drains the queue and the recent set into the index, stops the index
 * thread, trims and syncs the log; returns the first error. */
int writer_stop(atolog_store *store);
void writer_destroy(atolog_store *store);
/* Queues req and waits until its frames are durable per the sync mode and
 * visible to this process's readers (registrations: until indexed), or
 * refused; the calling thread may lead the log meanwhile. Frames whose rc
 * is not OK are passed over. Returns the first error of a frame it
 * queued, with its message. */
int commit_submit(atolog_store *store, struct commit_req *req);
/* Seals the active segment and starts the next (the leader). */
int writer_roll(atolog_store *store);
/* The first half of a roll: appends the seal frame, cuts the segment to
 * its frames and syncs it. */
int writer_seal(atolog_store *store);
/* Makes next the active segment (the second half); with state, also what
 * the index holds from now on (a compaction's swap). */
void writer_adopt(atolog_store *store, const struct segment *next,
		  const struct index_state *state);
/* Takes the log for maintenance: waits until no caller leads and the
 * index holds everything published; callers queue meanwhile. Returns
 * ATOLOG_FAILED on a failed handle (end it all the same). */
int writer_exclusive_begin(atolog_store *store);
void writer_exclusive_end(atolog_store *store);
/* Waits until the index holds everything published when it was called
 * (writers go on meanwhile). */
void writer_index_catch_up(atolog_store *store);

/* engine/store.c: this boot's id (the kernel's), "" if unknown; an error
 * (errno) if it is there and cannot be read, *out then "". */
#define STORE_BOOT_ID_SIZE 64
int store_boot_id(char out[STORE_BOOT_ID_SIZE]);

/* engine/store.c: the index-unsynced marker (see the comment there).
 * store_marker_write is called with marker_lock held; store_marker_clear
 * takes it. */
bool store_needs_marker(const atolog_store *store);
int store_marker_write(atolog_store *store);
int store_marker_clear(atolog_store *store);

/* ------------------------------------------------------------------------
 * Compaction (engine/compact.c, engine/journal.c).
 */
#define COMPACT_JOURNAL_FILE "COMPACT"      /* in the store directory */
#define COMPACT_OUTPUT_PREFIX "compact-" /* in segments/: compact-K.seg.tmp,
					  * removed by every writer open */
#define SEGMENT_RETIRED_SUFFIX ".retired"   /* an old segment a reader holds */
#define COMPACT_INPUTS_MAX 1000000          /* old segments in one journal */
#define COMPACT_JOURNAL_MAX_BYTES (32u << 20)
#define COMPACT_WRITE_BUFFER (1u << 20)     /* bytes per write of a new segment */
#define MAINT_COMPACTION_RETRIES 8          /* a snapshot or verify that met
					     * another process's compaction
					     * starts again, this often */
#define MAINT_RETRY_WAIT_MS 50              /* ... after this pause */

/* The steps after which a test may stop a compaction (a crash). */
enum compact_step {
	COMPACT_STEP_WRITTEN,     /* the new segment is written, as .seg.tmp */
	COMPACT_STEP_SEALED,      /* the active segment is sealed */
	COMPACT_STEP_JOURNALED,   /* the journal is written */
	COMPACT_STEP_RENAMED_ONE, /* new segments but the last have names */
	COMPACT_STEP_RENAMED,     /* the last has its name: committed */
	COMPACT_STEP_INDEX_COMMITTED, /* the index swap committed, not synced */
	COMPACT_STEP_INDEXED,     /* the index swap is durable */
	COMPACT_STEP_RETIRED_ONE, /* the first old segment is gone */
	COMPACT_STEP_DONE,        /* the journal is removed */
	COMPACT_STEP_COUNT
};

struct compact_journal {
	uint64_t nonce;   /* also in the new segments' headers and, once
			   * swapped, in the index */
	uint64_t output;  /* the first new segment's id */
	size_t n_outputs; /* new segments: ids output, output + 1, ... */
	uint64_t *inputs; /* the segments it replaces */
	size_t n_inputs;
};

/* The journal's text (malloc'ed, NUL-terminated, *len bytes): fields,
 * then the XXH3 of everything before the newline that precedes it. */
char *journal_format(const struct compact_journal *j, size_t *len);
/* Parses a journal's text (len bytes, NUL-terminated) into *j (inputs
 * malloc'ed; nothing to free on failure): ATOLOG_CORRUPT unless it is
 * exactly what journal_format writes; ENOMEM. */
int journal_parse(const char *text, size_t len, struct compact_journal *j);
int journal_write(atolog_store *store, const struct compact_journal *j);
int journal_remove(atolog_store *store);
/* Deletes the segments (or sets held ones aside as .retired, counted in
 * *waiting), then syncs the directory. */
int compact_retire(atolog_store *store, const uint64_t *ids, size_t n,
		   uint64_t *waiting);
/* Deletes the .retired segments no reader holds; *waiting: the others. */
int compact_collect_retired(atolog_store *store, uint64_t *waiting);
/* Finishes or undoes what a journal describes (at_open: a writer open,
 * before recovery, which may then rebuild the index), then collects
 * retired segments. */
int compact_finish(atolog_store *store, bool at_open, uint64_t *waiting);
/* Whether a compaction is between its journal and its end (in any
 * process): old and new segments may both be there. */
bool compact_pending(const atolog_store *store);

/* A pending journal as a reader sees it (verify, a read-only handle's
 * tail): which segments lie outside the log the index describes, and
 * what the next writer open will do. Reads only. */
struct compact_view {
	bool pending;    /* a journal is there */
	bool committed;  /* its new segments all are: it will be finished */
	bool swapped;    /* the index holds its swap */
	uint64_t nonce;
	uint64_t *ignore; /* not the index's: new segments until swapped,
			   * old ones after */
	size_t n_ignore;
};
int compact_view_read(atolog_store *store, struct compact_view *v);
bool compact_view_ignores(const struct compact_view *v, uint64_t id);
void compact_view_free(struct compact_view *v);
/* Calls the test hook, if any. */
void store_compact_step(atolog_store *store, enum compact_step step);
/* Test hook: make the nth (0 = next) call of op by the compactor fail. */
void store_inject_compact_fault(atolog_store *store, enum io_op op, long nth,
				int err);
/* Test hook: fn is told each step (it may _exit to simulate a crash). */
void store_on_compact_step(atolog_store *store, void (*fn)(int step, void *ctx),
			   void *ctx);

/* engine/tail.c: a read-only open's look past the index. */
int tail_load(atolog_store *store);

/* engine/recovery.c: brings the index level with the log at open. */
int recovery_run(atolog_store *store);
/* engine/recovery.c: reads back the frame st names as the last indexed:
 * ATOLOG_OK (*kind its kind, 0 for none yet); ATOLOG_NOTFOUND (st does not
 * describe this log: its segment is gone, or it contradicts itself);
 * ATOLOG_CORRUPT (that acknowledged frame is damaged, or the log ends
 * before it); errno. */
int state_frame_check(atolog_store *store, const struct index_state *st,
		      uint8_t *kind);

/* engine/read.c: reads and decodes the record frame at a location. */
int store_read_record(atolog_store *store, const struct index_loc *loc,
		      struct record_view *view, uint8_t **frame);

/* engine/registry.c: canonical project name for a query or a write;
 * *out is malloc'ed. */
int store_resolve_project(atolog_store *store, const char *name, size_t len,
			  char **out);

/* Test hook: fn learns how far each fdatasync of the log reached. */
void store_observe_syncs(atolog_store *store,
			 void (*fn)(uint64_t segment, uint64_t size, void *ctx),
			 void *ctx);

/* Test hook: fn runs in the leader just before each group's fdatasync. */
void store_before_sync(atolog_store *store, void (*fn)(void *ctx), void *ctx);

/* Test hook: let nobody lead (requests queue up), or let them go. */
void store_pause_log(atolog_store *store, bool paused);
/* Test hook: hold the index thread (the recent set grows), or let it go;
 * and how many recent items make callers wait (0: RECENT_MAX_ITEMS). */
void store_pause_index(atolog_store *store, bool paused);
void store_set_recent_max(atolog_store *store, uint64_t max);
/* Test hook: whether the index's last commit found the disk full. */
bool store_index_full(atolog_store *store);
/* Test hook: waits until the index holds everything published. */
void store_index_wait(atolog_store *store);
/* Whole-structure check of the set's invariants (recent.c's list), for
 * tests to call between steps: false, and why, at the first one broken. */
bool recent_sane(struct recent *r, char *why, size_t size);
/* Test hook: readers take every item still in the set for not yet
 * indexed, so that they meet records in both streams (the race of a
 * commit between a reader's two looks, made certain). */
void recent_forget_indexed(struct recent *r);

/* engine/read.c: reads the interaction a hit names (following it into a
 * compaction's new segment) and, when its names are exactly those given
 * (NULL: any), flattens it into *out with *taken; a hash collision, or a
 * record removed since, leaves *taken false. */
int store_take_hit(atolog_store *store, const struct index_hit *hit,
		   const char *project, const char *session, const char *client,
		   atolog_interaction **out, bool *taken);

/* engine/read.c: the recent set of a writer handle, NULL if read-only. */
struct recent *store_recent(atolog_store *store);

/* Test hook: make the nth (0 = next) call of op fail with err. */
void store_inject_fault(atolog_store *store, enum io_op op, long nth, int err,
			bool short_write);

#endif
