/*
 * index.h - the LMDB indexes beside the log.
 *
 * The index is derived data: everything in it can be rebuilt by reading
 * the segments from the start. It answers three kinds of question with
 * cursor seeks: where is the interaction with this id, which interactions
 * match a filter (newest first or oldest first, from a time on), and what
 * is the canonical name of a project. It knows nothing of segment files or
 * record encoding: it stores locations and names it is handed.
 *
 * Threads: an index handle is shared. Any number of scans and lookups run
 * at once; index_apply is called by one writer thread at a time.
 */
#ifndef ATOLOG_INDEX_H
#define ATOLOG_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define INDEX_ID_SIZE 16
#define INDEX_VERSION 2 /* bump when a key or value layout changes */
#define INDEX_COUNT_PROJECT 'p' /* the counts kept per name (index_counts) */
#define INDEX_COUNT_CLIENT 'c'

struct index;

/* Where a frame lives in the log. */
struct index_loc {
	uint64_t segment;
	uint64_t offset; /* of the frame header */
	uint32_t length; /* header + payload */
};

/* A name (project, session, client) that need not be NUL-terminated. */
struct index_name {
	const char *ptr; /* NULL: no name / no filter */
	size_t len;
};

/* What the index keeps of one interaction. */
struct index_entry {
	uint8_t id[INDEX_ID_SIZE];
	int64_t created_at;
	uint64_t seq;
	struct index_loc loc;
	struct index_name project, session, client;
};

/* How far the log is indexed; kept in `meta` and updated with every batch,
 * in the same transaction as the entries it covers. */
struct index_state {
	uint8_t store_id[INDEX_ID_SIZE];
	uint64_t segment;          /* segment of the last indexed frame */
	uint64_t end_offset;       /* end of that frame: resume here */
	uint64_t last_frame_offset; /* start of that frame (to re-check it) */
	uint32_t last_frame_length;
	uint64_t last_seq;
	uint64_t n_records;
};

/* One registry row: a folded name or alias -> canonical project name. */
struct index_registry_row {
	struct index_name key;       /* folded (trimmed, ASCII lower) */
	struct index_name canonical; /* the project's name as registered */
	struct index_name spelling;  /* the alias as given */
};

struct index_batch {
	const struct index_entry *entries;
	size_t n_entries;
	const struct index_registry_row *registry;
	size_t n_registry;
	const struct index_state *state; /* required */
};

/* How commits reach the disk. The log is the truth, so the index never
 * needs a full sync: INDEX_SYNC_DATA flushes data pages but not the meta
 * page (LMDB's MDB_NOMETASYNC: integrity kept, a machine crash may undo the
 * last commit, which recovery re-indexes from the log). INDEX_SYNC_NONE
 * leaves flushing to the OS (MDB_NOSYNC): a machine crash may damage the
 * file, so the engine rebuilds it after one. */
enum index_sync { INDEX_SYNC_DATA, INDEX_SYNC_NONE };

struct index_options {
	bool readonly;
	enum index_sync sync;
	uint64_t map_size; /* initial; doubled whenever it fills */
};

/*
 * Opens (creating unless readonly) the LMDB environment in dir. A
 * read-write open clears stale reader slots and creates the databases.
 * Returns ATOLOG_OK; ATOLOG_NOTFOUND (readonly and no index);
 * ATOLOG_CORRUPT (LMDB reports a damaged file); errno.
 */
int index_open(const char *dir, const struct index_options *opts,
	       struct index **out);
void index_close(struct index *idx);

/* Flushes everything, meta page included, to disk. */
int index_sync(struct index *idx);

/* The index layout version stored in meta, 0 if none. */
int index_version(struct index *idx, uint32_t *out);

/* Empties every database and stamps the current INDEX_VERSION; the index
 * counts as being rebuilt (the change feed waits) until index_rebuilt. */
int index_clear(struct index *idx);
int index_rebuilt(struct index *idx);

/* Reads the state; ATOLOG_NOTFOUND if the index is empty. */
int index_state_get(struct index *idx, struct index_state *out);

/*
 * Writes a batch in one transaction, growing the map when it is full.
 * Returns ATOLOG_OK; ATOLOG_EXISTS (an id is already indexed: *dup_at is
 * its position in the batch, nothing written); ATOLOG_FULL; errno.
 */
int index_apply(struct index *idx, const struct index_batch *batch,
		size_t *dup_at);

/* by_id lookup. Returns ATOLOG_OK, ATOLOG_NOTFOUND or an error. */
int index_lookup(struct index *idx, const uint8_t id[INDEX_ID_SIZE],
		 struct index_loc *loc);

/* Registry lookup of a folded key; *out is malloc'ed (free it).
 * ATOLOG_NOTFOUND when the name is not registered. */
int index_registry_get(struct index *idx, struct index_name key, char **out);

/* Every registry row, in key order. fn returns non-zero to stop. */
int index_registry_foreach(struct index *idx,
			   int (*fn)(const struct index_registry_row *row,
				     void *ctx),
			   void *ctx);

/* ------------------------------------------------------------------------
 * Scans. A scan walks the most selective index for its filter and checks
 * the other filters against hashes kept in by_id, so the rows it returns
 * match (up to a 64-bit hash collision, which the caller rules out by
 * comparing the decoded record). It holds no transaction between calls.
 */
struct index_filter {
	struct index_name project, session, client; /* ptr NULL: any */
	int64_t since;     /* inclusive lower bound on created_at */
	bool has_until;
	int64_t until;     /* exclusive upper bound, when has_until */
	bool oldest_first; /* else newest first */
};

struct index_hit {
	uint8_t id[INDEX_ID_SIZE];
	int64_t created_at;
	uint64_t seq;
	struct index_loc loc;
};

struct index_scan;

int index_scan_open(struct index *idx, const struct index_filter *filter,
		    struct index_scan **out);
/* Fills up to max hits; *n = 0 at the end. */
int index_scan_next(struct index_scan *scan, struct index_hit *hits,
		    size_t max, size_t *n);
void index_scan_close(struct index_scan *scan);

/* The change feed: up to max hits matching f (names by hash, since) with
 * seq > *after, in seq order; *after moves to the last seq looked at, so
 * the next call goes on from there (rows that do not match move it too;
 * at most SEQ_SCAN_LOOK are looked at per call, so a call with *n = 0
 * may not be the end). */
#define SEQ_SCAN_LOOK 4096
int index_seq_scan(struct index *idx, const struct index_filter *f, uint64_t *after,
		   struct index_hit *hits, size_t max, size_t *n, bool *rebuilding);

/* Calls fn for every name of kind (INDEX_COUNT_*) with its count of
 * interactions, in name order. fn returning non-zero stops with it. */
int index_counts(struct index *idx, char kind,
		 int (*fn)(struct index_name name, uint64_t n, void *ctx), void *ctx);
/* created_at of the oldest and newest interaction (*any false: none). */
int index_time_range(struct index *idx, bool *any, int64_t *first, int64_t *last);

/* ------------------------------------------------------------------------
 * Verification (index/verify.c): the whole index in one read transaction.
 */
struct index_check {
	bool has_state;
	struct index_state state; /* as of the same transaction */
	uint64_t by_id, by_time, by_project, by_session, by_client, by_seq; /* entries */
	uint64_t problems;        /* inconsistencies inside the index */
	char first_problem[160];
};

/*
 * Calls fn for every by_id row (in id order) and checks every secondary
 * entry against by_id, all in one read transaction. fn returning non-zero
 * stops with that code. Returns ATOLOG_OK (problems counted in *out), fn's
 * code, or an error.
 */
int index_check(struct index *idx,
		int (*fn)(const struct index_hit *row, void *ctx), void *ctx,
		struct index_check *out);

/* Reader slots that processes which died left behind, cleared by
 * mdb_reader_check when this handle opened. */
unsigned index_stale_readers(const struct index *idx);

/* Writes a compacted copy of the environment, as of one read transaction,
 * into the existing empty directory dir (mdb_env_copy2). */
int index_copy(struct index *idx, const char *dir);
/* Bytes of the LMDB data file in use (its pages up to the last one). */
uint64_t index_file_size(struct index *idx);

/* ------------------------------------------------------------------------
 * Compaction (index/compact.c).
 */

/* A kept interaction whose frame moved to another segment. */
struct index_move {
	uint8_t id[INDEX_ID_SIZE];
	struct index_loc from, to;
};

struct index_compaction {
	const struct index_move *moves;
	size_t n_moves;
	const struct index_entry *removed; /* loc: where it was */
	size_t n_removed;
	const struct index_state *state;   /* required */
	uint64_t nonce;                    /* this compaction's (not 0) */
};

/*
 * Moves and removes in one transaction, with the state and the count.
 * Every row must name the place given (a move's from, a removal's loc),
 * else ATOLOG_CORRUPT and nothing is written. ATOLOG_FULL; errno.
 */
int index_compact_apply(struct index *idx, const struct index_compaction *c);

/* The nonce of the last compaction the index has seen (0: none since it
 * was built). */
int index_last_compaction(struct index *idx, uint64_t *out);

/* One interaction a retention rule selects (names valid during fn). */
struct index_retained {
	uint8_t id[INDEX_ID_SIZE];
	struct index_name project;
	int64_t created_at;
	struct index_loc loc;
};

struct index_retention {
	struct index_name project; /* ptr NULL: every project */
	int64_t before;            /* created_at below this; INT64_MAX: any */
	int (*fn)(const struct index_retained *hit, void *ctx);
	void *ctx;
};

/* Calls r->fn for every indexed interaction the rule selects, in one read
 * transaction (by_project: a project is one range of it). fn returning
 * non-zero stops with that code. */
int index_retention_scan(struct index *idx, const struct index_retention *r);

#endif
