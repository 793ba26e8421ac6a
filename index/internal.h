/*
 * internal.h - what the index's own files share: the handle, transaction
 * helpers, and the key and value layouts (docs/FORMAT.md, "Index").
 *
 * Databases of the one LMDB environment:
 *
 *   by_id       id[16]                          -> id value (below)
 *   by_time     time_key                        -> id[16]
 *   by_project  project 0x00 time_key           -> id[16]
 *   by_session  session_id 0x00 time_key        -> id[16]
 *   by_client   client 0x00 time_key            -> id[16]
 *   registry    folded name                     -> canonical 0x00 spelling
 *   meta        "version" -> u32 LE; "state" -> state value (below);
 *               "compaction" -> u64 LE, the last compaction's nonce
 *   by_seq      BE64(seq)                       -> id[16]
 *   counts      'p' project | 'c' client        -> u64 LE: interactions
 *
 *   time_key = BE64(created_at XOR 1<<63) BE64(seq): memcmp order is
 *   (created_at, seq) order, negative times included. Names never contain
 *   0x00, so "name 0x00" is an exact prefix and sorts before longer names.
 *
 *   id value (64 bytes, LE): segment u64 | offset u64 | length u32 |
 *   reserved u32 | created_at i64 | seq u64 | XXH3(project) u64 |
 *   XXH3(session_id) u64 | XXH3(client) u64
 *
 * Only by_id holds locations, so moving a frame (compaction) rewrites one
 * row; the secondary indexes hold ids, and the hashes in the by_id row let a
 * multi-filter query reject rows without reading the log.
 */
#ifndef ATOLOG_INDEX_INTERNAL_H
#define ATOLOG_INDEX_INTERNAL_H

#include <lmdb.h>
#include <pthread.h>

#include "bytes.h"
#include "index.h"

#define TIME_KEY_SIZE 16
#define NAMED_KEY_MAX (256 + 1 + TIME_KEY_SIZE)
#define ID_VALUE_SIZE 64
#define STATE_VALUE_SIZE 64
#define INDEX_MAX_READERS 1024
/* lock.mdb as atolog makes it: at least LMDB's reader table for
 * INDEX_MAX_READERS (65,664 bytes on x86-64); LMDB sizes the table from
 * the file, so a larger one only holds more readers. */
#define INDEX_LOCK_FILE_BYTES (128u << 10)
#define INDEX_FULL_SLACK_BYTES (1u << 20) /* less room than this: a failed
					  * commit's EIO was a full disk */
#define INDEX_MAX_DBS 16
#define COUNT_KEY_MAX (1 + 256)

enum index_db {
	DB_BY_ID,
	DB_BY_TIME,
	DB_BY_PROJECT,
	DB_BY_SESSION,
	DB_BY_CLIENT,
	DB_REGISTRY,
	DB_META,
	DB_BY_SEQ,
	DB_COUNTS,
	DB_COUNT
};

struct index {
	MDB_env *env;
	MDB_dbi dbi[DB_COUNT];
	bool readonly;
	bool env_open; /* mdb_env_open succeeded */
	/* Held shared by every transaction of this process and exclusively
	 * while the map is resized: LMDB remaps on resize, which would pull
	 * the memory from under a running transaction. */
	pthread_rwlock_t map_lock;
	char *path;
	unsigned stale_readers; /* reader slots of dead processes cleared at open */
	/* lock.mdb, held open to keep its blocks reserved (env.c); closed
	 * only after the environment, or LMDB's fcntl locks on it would go
	 * with it. -1 where it could not be opened for writing. */
	int lock_file_fd;
};

/* Maps an LMDB return code to atolog's (with the message). */
int index_mdb_error(int rc, const char *what);

/* Begins a transaction holding map_lock shared; end with index_txn_end. */
int index_txn_begin(struct index *idx, unsigned flags, MDB_txn **out);
/* Commits (commit true) or aborts, then releases map_lock. */
int index_txn_end(struct index *idx, MDB_txn *txn, bool commit);
/* Commits or aborts, releases map_lock; returns the LMDB code. */
int index_txn_finish(struct index *idx, MDB_txn *txn, bool commit);
/* Renews a reset read-only transaction under map_lock. */
int index_txn_renew(struct index *idx, MDB_txn *txn);
/* Resets a read-only transaction (keeps its reader slot). */
void index_txn_reset(struct index *idx, MDB_txn *txn);
/* Doubles the map size; no transaction of this process may be open. */
int index_grow_map(struct index *idx);

/* Runs fn in a write transaction and commits it, growing the map and
 * running fn again whenever the map is full. *mrc: the LMDB code of fn or
 * of the commit. Returns ATOLOG_OK, or the error of beginning or growing. */
typedef int (*index_write_fn)(struct index *idx, MDB_txn *txn, void *ctx);
int index_write(struct index *idx, index_write_fn fn, void *ctx, int *mrc);

static inline void time_key_put(uint8_t out[TIME_KEY_SIZE], int64_t created_at,
				uint64_t seq)
{
	put_be64(out, (uint64_t)created_at ^ (UINT64_C(1) << 63));
	put_be64(out + 8, seq);
}

static inline int64_t time_key_time(const uint8_t *key)
{
	return (int64_t)(get_be64(key) ^ (UINT64_C(1) << 63));
}

/* name 0x00 time_key; returns the key length. */
static inline size_t named_key_put(uint8_t *out, struct index_name name,
				   int64_t created_at, uint64_t seq)
{
	for (size_t i = 0; i < name.len; i++)
		out[i] = (uint8_t)name.ptr[i];
	out[name.len] = 0;
	time_key_put(out + name.len + 1, created_at, seq);
	return name.len + 1 + TIME_KEY_SIZE;
}

uint64_t index_name_hash(struct index_name name);

/* Adds delta to the count of kind (INDEX_COUNT_PROJECT or _CLIENT) and
 * name; a count that reaches 0 is deleted. An LMDB code. */
int index_count_add(struct index *idx, MDB_txn *txn, char kind,
		    struct index_name name, int delta);

/* A by_id row, decoded. */
struct id_row {
	struct index_loc loc;
	int64_t created_at;
	uint64_t seq;
	uint64_t h_project, h_session, h_client;
};

/* Reads the by_id row of id in txn; an LMDB code (MDB_CORRUPTED for a row
 * of the wrong size). */
int id_row_get(struct index *idx, MDB_txn *txn, const uint8_t *id,
	       struct id_row *out);

#define META_STATE_KEY "state"
#define META_REBUILDING_KEY "rebuilding" /* present while a rebuild runs */

/* The state row's value into *out. */
void index_state_decode(const uint8_t buf[STATE_VALUE_SIZE], struct index_state *out);

/* Writes the state row; an LMDB code, for the caller's batch loop. */
int index_put_state(struct index *idx, MDB_txn *txn, const struct index_state *s);

#endif
