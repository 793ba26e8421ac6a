/*
 * atolog.h - the one public header of atolog, a storage engine for LLM
 * interactions.
 *
 * An interaction is one agent round trip: a prompt, the context pack that
 * was assembled for it, the response (or a summary), the memories and chunks
 * used, and who/where/when (client, project, session, UTC time). atolog keeps
 * interactions in an append-only log of checksummed segment files and keeps
 * LMDB indexes beside it, so that every query is a cursor seek.
 *
 * Conventions, for every function below:
 *  - The return value is an int: ATOLOG_OK (0) on success, one of the
 *    negative ATOLOG_* codes for atolog's own conditions, or a positive errno
 *    value passed through from the operating system (EIO, ENOMEM, EACCES...).
 *    atolog_strerror() names any of them; atolog_errmsg() gives the detailed
 *    message of the last failure of the calling thread on a handle.
 *  - Outputs are marked "out"; they are written only on success.
 *  - Strings are NUL-terminated UTF-8. Input strings are borrowed for the
 *    duration of the call only.
 *  - The library never prints and never exits.
 *  - A store handle may be used from any number of threads at once.
 */
#ifndef ATOLOG_H
#define ATOLOG_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------
 * Return codes. atolog's own codes live in [-31099, -31000]; positive
 * values are errno values.
 */
#define ATOLOG_OK 0
#define ATOLOG_NOTFOUND (-31000) /* no interaction with that id */
#define ATOLOG_DONE (-31001)     /* an iterator has no more interactions */
#define ATOLOG_INVALID (-31002)  /* bad argument or input; nothing changed */
#define ATOLOG_TOOBIG (-31003)   /* a field or record is over its limit */
#define ATOLOG_EXISTS (-31004)   /* the id or alias is already taken */
#define ATOLOG_CORRUPT (-31005)  /* checksum or structure failure on disk */
#define ATOLOG_LOCKED (-31006)   /* another process is the store's writer */
#define ATOLOG_READONLY (-31007) /* a write on a read-only handle */
#define ATOLOG_VERSION (-31008)  /* on-disk format newer than this build */
#define ATOLOG_FULL (-31009)     /* the disk (or quota) is full */
#define ATOLOG_FAILED (-31010)   /* an earlier I/O error poisoned the handle:
				  * writes are refused until it is reopened */
#define ATOLOG_TIMEDOUT (-31011) /* no room in the commit queue in time;
				  * nothing was written */

/* ------------------------------------------------------------------------
 * Sizes, limits and defaults (documented in README.md).
 */
#define ATOLOG_ID_TEXT_LEN 36 /* "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" */
#define ATOLOG_TEXT_MAX_BYTES (8u << 20)    /* prompt, response, summary */
#define ATOLOG_NAME_MAX_BYTES 256u          /* project, client, session_id */
#define ATOLOG_REF_MAX_BYTES 256u           /* one memory or chunk id */
#define ATOLOG_REFS_MAX 10000u              /* memories_used, chunks_used */
#define ATOLOG_CONTEXT_MAX_DEPTH 24u        /* nesting of context_pack */
#define ATOLOG_RECORD_MAX_BYTES (16u << 20) /* one encoded interaction */
#define ATOLOG_JSON_MAX_BYTES (32u << 20)   /* one JSON document in */
#define ATOLOG_ALIASES_MAX 64u              /* aliases of one project */
#define ATOLOG_SEGMENT_SIZE_DEFAULT (64ull << 20)
#define ATOLOG_SEGMENT_SIZE_MIN (4ull << 10)
#define ATOLOG_INDEX_MAP_SIZE_DEFAULT (1ull << 30) /* grows on demand */
#define ATOLOG_SYNC_INTERVAL_MS_DEFAULT 2  /* batch: longest delay of a sync */
#define ATOLOG_SYNC_BYTES_DEFAULT (1u << 20) /* batch: sync once this much waits */
#define ATOLOG_QUEUE_BYTES_DEFAULT (64u << 20) /* pending bytes before callers wait */
#define ATOLOG_LIST_LIMIT_DEFAULT 50 /* the seed's default page */
#define ATOLOG_LIST_LIMIT_MAX 500    /* the seed's cap for listings */

/* ------------------------------------------------------------------------
 * Opening a store.
 *
 * A store is a directory: LOCK, segments/, index/ (and index-unsynced while
 * a sync-none writer runs; see docs/FORMAT.md). One process at a time
 * opens it for writing (an flock on LOCK); any number of processes open it
 * read-only at the same time, without locking against the writer.
 */
typedef struct atolog_store atolog_store;

#define ATOLOG_OPEN_READONLY 0x1u /* never writes; the directory must exist */
/* Sync every index transaction (LMDB's MDB_NOMETASYNC), so that a machine
 * crash never costs an index rebuild, at the price of an fdatasync per
 * index transaction (off the callers' path: the index commits behind
 * them). Without it the index is flushed when idle and at
 * close, and rebuilt from the log after a machine crash that caught it
 * unflushed. Either way the log is the truth and nothing acknowledged is
 * lost. */
#define ATOLOG_OPEN_INDEX_DURABLE 0x2u
/* Empty the index and rebuild it from the log (`atolog reindex`): the
 * index is derived data, and this is how to get it back in full. */
#define ATOLOG_OPEN_REBUILD_INDEX 0x4u

/*
 * When an interaction is acknowledged (the record call returns). Writes
 * from all threads are committed in groups: one write(2) and at most one
 * fdatasync per group, then every caller of the group returns. In every
 * mode a returned record is at once visible to every reader of this
 * handle; readers in other processes see it once the index thread has
 * committed it (about a millisecond later; docs/FORMAT.md §8.7).
 */
typedef enum atolog_sync_mode {
	ATOLOG_SYNC_ALWAYS = 0, /* after the group's fdatasync: survives power
				 * loss. The default. */
	ATOLOG_SYNC_NONE = 1,   /* after the group's write(2): survives a crash
				 * of the process, not of the machine. */
	ATOLOG_SYNC_BATCH = 2,  /* after an fdatasync shared by every group
				 * that arrives while the log is busy: the
				 * log keeps appending while records wait,
				 * and syncs when none are left, or when the
				 * oldest unsynced write is sync_interval_ms
				 * old, or sync_bytes wait. Durable like
				 * ALWAYS, with fewer syncs under load. */
} atolog_sync_mode;

/* Told how far a long operation is: done of total (bytes, say). */
typedef void (*atolog_progress_fn)(uint64_t done, uint64_t total, void *ctx);

typedef struct atolog_options {
	unsigned flags;            /* ATOLOG_OPEN_* */
	atolog_sync_mode sync;     /* ATOLOG_SYNC_ALWAYS if zeroed */
	uint64_t segment_size;     /* roll size; 0 = ATOLOG_SEGMENT_SIZE_DEFAULT */
	uint64_t index_map_size;   /* initial LMDB map; 0 = default */
	uint32_t sync_interval_ms; /* batch; 0 = ATOLOG_SYNC_INTERVAL_MS_DEFAULT */
	uint64_t sync_bytes;       /* batch; 0 = ATOLOG_SYNC_BYTES_DEFAULT */
	uint64_t queue_bytes;      /* bytes of interactions waiting to commit
				    * before callers wait for room; 0 =
				    * ATOLOG_QUEUE_BYTES_DEFAULT */
	uint32_t queue_timeout_ms; /* how long a caller waits for room before
				    * ATOLOG_TIMEDOUT; 0 = for ever */
	atolog_progress_fn progress; /* a writer open: told bytes of the log
				      * recovery reads (a rebuild: all) */
	void *progress_ctx;
} atolog_options;

/*
 * Opens (creating if needed, unless read-only) the store in directory dir.
 * opts may be NULL for defaults. Opening for writing takes the writer lock,
 * catches the index up with the log, truncates a torn tail and rebuilds a
 * missing or damaged index. Opening read-only never scans or changes the
 * log: it serves what the index names, checking every frame as it reads it.
 * A writer handle reads too, and sees what it wrote at once; readers in
 * other processes see it once indexed. Open a store once per process: two
 * handles on one store in one process share LMDB's per-process locks, and
 * closing either releases the other's.
 * Returns ATOLOG_OK; ATOLOG_LOCKED (another writer); ATOLOG_CORRUPT (writer
 * only: a bad frame followed by valid ones; the message names segment and
 * offset; a read-only open still serves what is intact); ATOLOG_VERSION
 * (segments or index from a newer atolog); ATOLOG_INVALID (bad options);
 * ATOLOG_NOTFOUND (read-only open of a directory that holds no store, or
 * whose index is missing); errno.
 * On failure *out is untouched and atolog_errmsg(NULL) tells why.
 */
int atolog_store_open(const char *dir, const atolog_options *opts,
		      atolog_store **out);

/* Closes the store; NULL is allowed. No other call on the handle may be
 * running or start meanwhile. Returns the first error met while flushing,
 * after releasing everything regardless. */
int atolog_store_close(atolog_store *store);

#define ATOLOG_GROUP_SIZE_BUCKETS 12 /* 1, 2, 4, ... 1024 frames, more */

typedef struct atolog_stats {
	uint64_t n_records;         /* interactions stored (a writer: acknowledged;
				     * read-only: in the index) */
	uint64_t last_seq;          /* highest sequence number used */
	uint64_t n_segments;        /* segment files */
	uint64_t log_bytes;         /* bytes in segment files */
	uint64_t index_bytes;       /* bytes of the LMDB data file in use */
	uint64_t recovered_frames;  /* frames indexed from the log at open */
	uint64_t truncated_bytes;   /* torn tail cut off at open */
	int index_rebuilt;          /* 1 if open rebuilt the whole index */
	uint64_t stale_readers;     /* index reader slots of dead processes
				     * cleared at open */
	uint64_t segments_waiting;  /* at open: old segments a compaction
				     * replaced that a reader still holds */
	/* Since open, for this handle's writes: */
	uint64_t commit_groups;     /* groups written (one write(2) each) */
	uint64_t commit_frames;     /* frames in them */
	uint64_t log_syncs;         /* fdatasyncs of the log */
	uint64_t index_commits;     /* index transactions */
	/* Groups by size: group_sizes[i] counts the groups of at most 2^i
	 * frames and more than 2^(i-1); the last entry counts every larger
	 * group. Not cumulative. */
	uint64_t group_sizes[ATOLOG_GROUP_SIZE_BUCKETS];
	/* The time range of what the index holds, when has_time_range (a
	 * writer's newest records may not be indexed yet). */
	int has_time_range;
	int64_t first_created_at, last_created_at;
	/* Read-only handles opened with no writer running: interactions
	 * served from the log past the index (a writer died before indexing
	 * them; n_records and last_seq count them), and the damage that
	 * ended that tail early, if any: a frame failing its checksum with
	 * synced frames after it. What precedes it is served, nothing after
	 * it; `atolog verify` and a writer open report it too. damaged_segment
	 * is 0 when there is none. */
	uint64_t tail_records;
	uint64_t damaged_segment, damaged_offset;
} atolog_stats;

#define ATOLOG_COUNT_PROJECTS 1 /* atolog_store_counts: by project */
#define ATOLOG_COUNT_CLIENTS 2  /* by client */

/* Calls fn for every project (or client) with the number of interactions
 * the index holds for it, in name order, from counts the index keeps (no
 * scan). fn returning non-zero stops with that value. */
typedef int (*atolog_count_fn)(const char *name, uint64_t count, void *ctx);
int atolog_store_counts(atolog_store *store, int what, atolog_count_fn fn, void *ctx);

/* Fills *out from the index and the segment directory (no log scan). */
int atolog_store_stats(atolog_store *store, atolog_stats *out);

/* ------------------------------------------------------------------------
 * Checking a store.
 */


typedef struct atolog_verify_report {
	uint64_t segments;         /* segment files read */
	uint64_t frames;           /* frames whose checksum was checked */
	uint64_t bytes;            /* bytes of those frames */
	uint64_t records;          /* interactions the index covers */
	uint64_t index_entries;    /* by_id rows */
	uint64_t unindexed_frames; /* valid frames past what the index covers
				    * (a live writer's tail, indexed soon) */
	uint64_t problems;         /* inconsistencies found */
	char first_problem[256];   /* the first, with segment and offset */
	/* An interrupted compaction's journal waits for the next writer open,
	 * which has one step left to take: ATOLOG_PENDING_*. The store is
	 * checked as the index describes it, and the segments the journal
	 * names on the other side are counted in set_aside, not read. */
	int pending_compaction;
	uint64_t set_aside;
} atolog_verify_report;

#define ATOLOG_PENDING_NONE 0
#define ATOLOG_PENDING_UNDO 1    /* not committed: its new segments go */
#define ATOLOG_PENDING_RETIRE 2  /* committed and indexed: old segments go */
#define ATOLOG_PENDING_REINDEX 3 /* committed, the index not swapped: old
				  * segments go, the index is rebuilt */

/*
 * Reads every frame of every segment, checking its checksum and decoding
 * each interaction, and checks the index against the log: every
 * interaction up to the point the index covers is named once by by_id at
 * its place, every by_id row points at one, the secondary indexes agree
 * with by_id and with the log's counts, and sealed segments end with their
 * seal. Works on a read-only handle beside a running writer (the index is
 * read in one transaction, held for the whole run); changes nothing.
 * progress (may be NULL) is told bytes read of the segments' total.
 * *out is filled on ATOLOG_OK and on ATOLOG_CORRUPT.
 * Returns ATOLOG_OK (no problem); ATOLOG_CORRUPT (problems > 0; the message
 * counts them and quotes the first); errno.
 */
int atolog_store_verify(atolog_store *store, atolog_progress_fn progress,
			void *ctx, atolog_verify_report *out);

#define ATOLOG_SNAPSHOT_MANIFEST "SNAPSHOT.json" /* in a finished snapshot */

typedef struct atolog_snapshot_info {
	int64_t created_at;       /* microseconds, UTC */
	uint64_t records;         /* interactions it holds */
	uint64_t last_seq;
	uint64_t segments;
	uint64_t bytes;           /* of its segments */
	uint64_t linked_segments; /* sealed segments hard-linked, not copied */
} atolog_snapshot_info;

/*
 * Makes an online, consistent copy of the store in the new directory dest,
 * itself a valid store: the index as of one read transaction (compacted,
 * mdb_env_copy2) and the prefix of the log it describes (sealed segments
 * hard-linked when on the same filesystem, else copied; the segment being
 * written copied up to that point). Interactions acknowledged after that
 * point are not in it; on the writer's handle the point is taken once the
 * index holds every interaction acknowledged before the call (a read-only
 * handle's is what the writer had indexed). Built under dest.tmp-PID,
 * synced, then renamed, so a crash never leaves what looks like a finished
 * snapshot; the last file written is ATOLOG_SNAPSHOT_MANIFEST. Works on a
 * read-only handle beside a running writer. progress (may be NULL) is
 * told bytes taken.
 * Returns ATOLOG_OK and *out; ATOLOG_EXISTS (dest exists); ATOLOG_NOTFOUND
 * (the store holds nothing yet); ATOLOG_INVALID; ATOLOG_FULL; errno.
 */
int atolog_store_snapshot(atolog_store *store, const char *dest,
			  atolog_progress_fn progress, void *ctx,
			  atolog_snapshot_info *out);

#define ATOLOG_RESTORE_REPLACE 0x1u /* move a store already at dir aside */

/*
 * Restores a snapshot into dir, which becomes a store: sealed segments
 * hard-linked when possible (never written again), the newest segment and
 * the index copied (a writer on the restored store appends to them, and
 * the snapshot must stay as it was). Built under dir.tmp-PID and renamed.
 * A dir that a writer holds is always refused; a dir that is not empty is
 * refused unless flags has ATOLOG_RESTORE_REPLACE, which moves it to
 * dir.replaced-SECONDS (kept, not deleted).
 * Returns ATOLOG_OK; ATOLOG_NOTFOUND (not a finished snapshot);
 * ATOLOG_LOCKED; ATOLOG_EXISTS; ATOLOG_INVALID; ATOLOG_FULL; errno.
 */
int atolog_snapshot_restore(const char *snapshot, const char *dir, unsigned flags,
			    atolog_progress_fn progress, void *ctx);

/*
 * Deletes a finished snapshot directory (its manifest first, so that an
 * interrupted delete never leaves what looks like a finished snapshot).
 * Returns ATOLOG_OK; ATOLOG_NOTFOUND (not a finished snapshot: nothing is
 * touched); ATOLOG_INVALID; errno.
 */
int atolog_snapshot_delete(const char *snapshot);

/*
 * The work directories in dir (NAME.tmp-PID-T, see atolog_store_snapshot)
 * of snapshots killed before their end: those whose process is gone, or
 * is a later process under the same pid. fn (may be NULL) is told each
 * one's name and pid; with remove, each is deleted first. A work
 * directory whose snapshot may still run is never touched. Snapshots call
 * this on their destination's directory. Returns ATOLOG_OK; fn's non-zero
 * return; errno (dir cannot be read, or a removal failed).
 */
typedef int (*atolog_stale_fn)(const char *name, long pid, void *ctx);
int atolog_snapshot_stale(const char *dir, int remove, atolog_stale_fn fn,
			  void *ctx);

/* ------------------------------------------------------------------------
 * Compaction: sealed segments rewritten, small ones merged, and records
 * removed by retention (see README, "Compaction").
 */
#define ATOLOG_COMPACT_APPLY 0x1u  /* do it; without it, a dry run */
#define ATOLOG_COMPACT_BEFORE 0x2u /* remove records created before `before` */
#define ATOLOG_COMPACT_PROJECT 0x4u /* remove records of `project` */
/* A sealed segment under this share of segment_size is merged (percent). */
#define ATOLOG_COMPACT_SMALL_PERCENT_DEFAULT 50u

typedef struct atolog_compact_options {
	unsigned flags;         /* ATOLOG_COMPACT_* */
	int64_t before;         /* microseconds, UTC (ATOLOG_COMPACT_BEFORE) */
	const char *project;    /* a name or alias (ATOLOG_COMPACT_PROJECT) */
	uint64_t small_bytes;   /* 0: ATOLOG_COMPACT_SMALL_PERCENT_DEFAULT of
				 * the store's segment_size */
	atolog_progress_fn progress; /* bytes of the segments rewritten */
	void *progress_ctx;
} atolog_compact_options;

/* The records retention removes (would remove) from one project. */
typedef struct atolog_compact_project {
	char *project;
	uint64_t records;
	uint64_t bytes;  /* of their frames */
} atolog_compact_project;

typedef struct atolog_compact_report {
	int applied;               /* 0: a dry run, nothing changed */
	uint64_t records_removed;  /* by retention */
	uint64_t bytes_removed;    /* their frames */
	uint64_t records_moved;    /* kept, rewritten into new segments */
	uint64_t segments_in;      /* sealed segments rewritten */
	uint64_t segments_out;     /* new segments written */
	uint64_t bytes_in;         /* size of the segments rewritten */
	uint64_t bytes_out;        /* size of the new ones (a dry run: an
				    * estimate) */
	uint64_t segments_waiting; /* rewritten, but a reader still has one
				    * open: deleted once none does */
	uint64_t pause_us;         /* writers were held (queued) this long */
	size_t n_projects;         /* removals by project, by name */
	atolog_compact_project *projects;
} atolog_compact_report;

/*
 * Compacts the store online, beside writers and readers of any process:
 * rewrites the sealed segments that are under small_bytes or hold records
 * that retention removes into as few new segments as they fill, keeping
 * every other record, and swaps the index over in one transaction, so a
 * removed record leaves every query at once. With retention the segment
 * being written is sealed first, so that it can be rewritten too. An old
 * segment's file is deleted only once no reader has it open; until then
 * it waits under another name (segments_waiting) and a later compaction
 * or open deletes it. A crash at any step leaves the store as before or
 * as after, and the next writer open finishes or undoes the step.
 * Without ATOLOG_COMPACT_APPLY nothing changes and *out says what would.
 * Needs a writer handle. Returns ATOLOG_OK and *out (free it with
 * atolog_compact_report_free); ATOLOG_READONLY; ATOLOG_INVALID;
 * ATOLOG_CORRUPT (a frame fails its checksum: nothing changed, the
 * message names segment and offset); ATOLOG_FULL; ATOLOG_FAILED; errno.
 */
int atolog_store_compact(atolog_store *store, const atolog_compact_options *opts,
			 atolog_compact_report *out);
void atolog_compact_report_free(atolog_compact_report *report);

/* ------------------------------------------------------------------------
 * Interactions.
 *
 * On input, NULL strings mean "" and NULL context_pack means {}. id "" asks
 * for a generated id (a time-ordered UUID v7); has_created_at 0 asks for
 * the current time. On output every field is set.
 */
typedef struct atolog_interaction {
	char id[ATOLOG_ID_TEXT_LEN + 1]; /* lowercase canonical UUID text */
	int has_created_at;              /* input: 1 if created_at is given */
	int64_t created_at;              /* microseconds since 1970, UTC */
	uint64_t seq;                    /* output: the store's total order */
	const char *prompt;              /* required, not blank */
	const char *response;
	const char *response_summary;
	const char *project;     /* canonicalised through the registry */
	const char *client;
	const char *session_id;
	const char *const *memories_used;
	size_t n_memories_used;
	const char *const *chunks_used;
	size_t n_chunks_used;
	const char *context_pack; /* a JSON object, as compact text */
} atolog_interaction;

/*
 * Stores one interaction. The prompt must hold a non-blank character; the
 * project is canonicalised through the registry; strings must be valid
 * UTF-8 within the limits above; context_pack must be a JSON object whose
 * numbers msgpack holds exactly (integers from INT64_MIN to UINT64_MAX,
 * reals within float64's range; others are refused, never rounded).
 * If out is not NULL, *out receives the stored interaction (free it with
 * atolog_interaction_free).
 * Safe to call from any number of threads at once.
 * Returns ATOLOG_OK once the interaction is durable per the sync mode and
 * visible to every reader; ATOLOG_INVALID or ATOLOG_TOOBIG (nothing
 * written); ATOLOG_EXISTS (an interaction with that id is stored);
 * ATOLOG_READONLY; ATOLOG_TIMEDOUT (the commit queue stayed full for
 * queue_timeout_ms; nothing written); ATOLOG_FULL (nothing written);
 * ATOLOG_FAILED; errno.
 */
int atolog_interaction_record(atolog_store *store, const atolog_interaction *in,
			      atolog_interaction **out);

/*
 * Stores n interactions as one commit (one write, at most one sync). Each
 * item is checked on its own: rcs[i] receives its code, invalid items are
 * refused and the valid ones are stored. If out is
 * not NULL, out[i] receives item i as stored (NULL for a refused item; free
 * each with atolog_interaction_free).
 * Returns ATOLOG_OK when every item was stored, else the first item's error
 * (ATOLOG_INVALID, ATOLOG_TOOBIG, ATOLOG_EXISTS for refused items; a store
 * error such as ATOLOG_FULL when none of the valid items was stored).
 */
int atolog_interaction_record_batch(atolog_store *store,
				    const atolog_interaction *in, size_t n,
				    int *rcs, atolog_interaction **out);

/*
 * Checks an interaction as atolog_interaction_record would (prompt, UTF-8,
 * limits, context_pack, id and created_at when given) without a store, so a
 * front end can refuse bad input before it opens or creates anything.
 * Returns ATOLOG_OK; ATOLOG_INVALID or ATOLOG_TOOBIG with the message
 * naming the field (atolog_errmsg(NULL)); ENOMEM.
 */
int atolog_interaction_validate(const atolog_interaction *in);

/*
 * Fetches the interaction with the given id (UUID text, any case).
 * Returns ATOLOG_OK and *out (free with atolog_interaction_free);
 * ATOLOG_NOTFOUND; ATOLOG_INVALID (not a UUID); ATOLOG_CORRUPT (its frame
 * fails its checksum: never served); errno.
 */
int atolog_interaction_get(atolog_store *store, const char *id,
			   atolog_interaction **out);

/* Frees an interaction returned by this library; NULL is allowed. */
void atolog_interaction_free(atolog_interaction *rec);

/*
 * Parses one JSON object with the seed service's POST body fields (prompt,
 * response, response_summary, project, client, session_id, memories_used,
 * chunks_used, context_pack) and, for imports, id and created_at (any ISO
 * 8601 shape atolog_time_parse takes; created_at_iso wins when both are
 * given). Unknown fields are ignored; "reinforce" and "extract" must be
 * booleans when present. null means absent. A known field given twice
 * (null or not) is refused, as are numbers in context_pack it cannot hold
 * exactly (see atolog_interaction_record).
 * Returns ATOLOG_OK and *out (free with atolog_interaction_free);
 * ATOLOG_INVALID with a message naming the field; ATOLOG_TOOBIG.
 */
int atolog_interaction_from_json(const char *json, size_t len,
				 atolog_interaction **out);

/*
 * Called by atolog_interactions_from_json_array once per element, in
 * order. rc is ATOLOG_OK with item parsed (item belongs to fn now: free it
 * with atolog_interaction_free), or the element's refusal (ATOLOG_INVALID
 * or ATOLOG_TOOBIG, item NULL) with why naming the field. A non-zero
 * return stops the parse.
 */
typedef int (*atolog_json_item_fn)(size_t index, int rc, const char *why,
				   atolog_interaction *item, void *ctx);

/*
 * Parses a JSON array of objects of the shape atolog_interaction_from_json
 * takes (the seed's bodies, many in one document), in one pass. An element
 * that is refused (wrong type, no prompt, not an object) is reported to fn
 * and the others go on.
 * Returns ATOLOG_OK; fn's non-zero answer; ATOLOG_INVALID when the document
 * is not a JSON array or not well formed (the message says where; fn may
 * have been called for the elements before the fault); ATOLOG_TOOBIG (over
 * ATOLOG_JSON_MAX_BYTES); ENOMEM.
 */
int atolog_interactions_from_json_array(const char *json, size_t len,
					atolog_json_item_fn fn, void *ctx);

/*
 * Renders an interaction as one compact JSON object with the seed's field
 * names (id, prompt, response, response_summary, project, client,
 * session_id, memories_used, chunks_used, context_pack, created_at as
 * "YYYY-MM-DD HH:MM:SS") plus created_at_iso (microseconds, Z) and seq.
 * *out is malloc'ed, NUL-terminated, without a trailing newline; free() it.
 * Returns ATOLOG_OK; ATOLOG_INVALID (context_pack is not JSON); ENOMEM.
 */
int atolog_interaction_to_json(const atolog_interaction *rec, char **out);

/* ------------------------------------------------------------------------
 * Queries. Both return an iterator; atolog_iter_next yields interactions
 * one at a time, so a query never holds its whole result in memory.
 */
typedef struct atolog_iter atolog_iter;

typedef struct atolog_query {
	const char *project;    /* NULL or "" = any; aliases resolved */
	const char *session_id; /* NULL or "" = any */
	const char *client;     /* NULL or "" = any */
	const char *since;      /* ISO 8601, inclusive, NULL or "" = no bound;
				 * normalised like the seed: to UTC, whole
				 * seconds */
	long limit;             /* <= 0 returns nothing; no cap here (front
				 * ends apply ATOLOG_LIST_LIMIT_MAX) */
	const char *until;      /* ISO 8601, exclusive, whole seconds like
				 * since; NULL or "" = no bound */
	int oldest_first;       /* 1: created_at ascending (export) */
} atolog_query;

/*
 * Interactions matching every given filter, newest first (created_at
 * descending, ties by sequence descending; oldest_first reverses both),
 * at most limit of them.
 * Returns ATOLOG_OK and *out; ATOLOG_INVALID (bad since: the message
 * quotes it); errno.
 */
int atolog_list_open(atolog_store *store, const atolog_query *query,
		     atolog_iter **out);

/*
 * Every interaction of a session, oldest first (created_at ascending, ties
 * by sequence), streamed. Returns ATOLOG_OK and *out; ATOLOG_INVALID.
 */
int atolog_replay_open(atolog_store *store, const char *session_id,
		       atolog_iter **out);

/*
 * Advances the iterator. On ATOLOG_OK, *rec points at an interaction owned
 * by the iterator and valid until the next call or atolog_iter_close.
 * Returns ATOLOG_OK; ATOLOG_DONE at the end; ATOLOG_CORRUPT (the message
 * names segment and offset; the iterator is then finished); errno.
 */
int atolog_iter_next(atolog_iter *iter, const atolog_interaction **rec);

/*
 * The change feed: every interaction with seq > after_seq, in seq order
 * (the order the store numbered them), that matches query's project
 * (aliases resolved), session_id, client and since (limit, until and
 * oldest_first are not used; query may be NULL). Works beside a writer in
 * another process, across segment rolls and compactions.
 * atolog_follow_next returns ATOLOG_OK and *rec (valid until the next
 * call), or ATOLOG_DONE when it has caught up: call it again later for
 * what was committed since. To resume after a stop, open with the last
 * rec->seq seen. Returns ATOLOG_OK; ATOLOG_INVALID (bad since); errno.
 */
typedef struct atolog_follow atolog_follow;
int atolog_follow_open(atolog_store *store, const atolog_query *query,
		       uint64_t after_seq, atolog_follow **out);
int atolog_follow_next(atolog_follow *feed, const atolog_interaction **rec);
/* The seq the feed has passed: reopening after it misses nothing. */
uint64_t atolog_follow_position(const atolog_follow *feed);
void atolog_follow_close(atolog_follow *feed);

/* Releases an iterator; NULL is allowed. */
void atolog_iter_close(atolog_iter *iter);

/* ------------------------------------------------------------------------
 * The project registry: canonical project names and their aliases,
 * matched without regard to ASCII case or surrounding blanks. Names that are
 * not registered pass through unchanged. Registered projects are part of
 * the log, so they survive an index rebuild.
 */

/*
 * Registers project name with n_aliases aliases (adding aliases to it if it
 * is already registered). Returns ATOLOG_OK; ATOLOG_EXISTS (the name or an
 * alias already belongs to another project); ATOLOG_INVALID; ATOLOG_TOOBIG;
 * ATOLOG_READONLY; ATOLOG_FAILED (the handle failed, perhaps while indexing
 * this registration: it is then in the log, and the next open indexes it);
 * errno. On any other error nothing is registered.
 */
int atolog_project_add(atolog_store *store, const char *name,
		       const char *const *aliases, size_t n_aliases);

/*
 * The canonical name for name, or name itself when it is not registered:
 * *out is malloc'ed; free() it. Returns ATOLOG_OK; ATOLOG_INVALID; errno.
 */
int atolog_project_resolve(atolog_store *store, const char *name, char **out);

/* One registered project: the canonical name and its aliases. */
typedef struct atolog_project {
	const char *name;
	const char *const *aliases;
	size_t n_aliases;
} atolog_project;

/*
 * Calls fn once per registered project, in name order, until fn returns
 * non-zero (which is then returned). Returns ATOLOG_OK or an error.
 */
int atolog_project_foreach(atolog_store *store,
			   int (*fn)(const atolog_project *project, void *ctx),
			   void *ctx);

/* ------------------------------------------------------------------------
 * Time. Microseconds since 1970-01-01T00:00:00Z.
 */

/*
 * Parses ISO 8601: YYYY-MM-DD, then optionally a 'T', 't' or space and
 * HH:MM[:SS[.fraction]], then optionally Z or an offset +HH:MM, +HHMM,
 * +HH; surrounding blanks ignored. A time without an offset is UTC. Digits
 * of the fraction beyond microseconds are truncated. The instant must lie
 * within 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z.
 * Returns ATOLOG_OK and *out_us; ATOLOG_INVALID.
 */
int atolog_time_parse(const char *text, int64_t *out_us);

/* "YYYY-MM-DD HH:MM:SS" (the seed's storage form); buf >= 20 bytes. */
#define ATOLOG_TIME_SEED_LEN 20
void atolog_time_format_seed(int64_t us, char buf[ATOLOG_TIME_SEED_LEN]);

/* "YYYY-MM-DDTHH:MM:SS.ffffffZ"; buf >= 28 bytes. */
#define ATOLOG_TIME_ISO_LEN 28
void atolog_time_format_iso(int64_t us, char buf[ATOLOG_TIME_ISO_LEN]);

/* ------------------------------------------------------------------------
 * Errors.
 */

/* A short static description of any code this library returns. */
const char *atolog_strerror(int code);

/*
 * The message of the last failed call the calling thread made on store
 * (NULL: on atolog_store_open or a call that takes no store), e.g.
 * "segment 0000000000000003 offset 4168: frame checksum mismatch".
 * Never NULL; "" if there is none. Valid until this thread's next call.
 */
const char *atolog_errmsg(const atolog_store *store);

#ifdef __cplusplus
}
#endif
#endif /* ATOLOG_H */
