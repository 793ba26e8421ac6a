/*
 * seeddb.h - the seed service's SQLite database, as the benchmarks build
 * it: its schema and indexes, and rows inserted in large transactions.
 * The query bench compares against it; the import bench migrates it.
 */
#ifndef ATOLOG_BENCH_SEEDDB_H
#define ATOLOG_BENCH_SEEDDB_H

#include <sqlite3.h>
#include <stddef.h>

#include "workload.h"

#define SEEDDB_TXN_ROWS 10000 /* rows per transaction while building */

/* The seed's table and its four indexes; its INSERT of all 11 columns. */
extern const char seeddb_schema[];
extern const char seeddb_insert_sql[];

struct seeddb {
	sqlite3 *db;
	sqlite3_stmt *ins;
	size_t rows_in_txn;
	const char *who; /* for messages: "query", "import" */
};

/* Creates path (WAL, synchronous=OFF while building) with the schema. */
int seeddb_create(struct seeddb *b, const char *path, const char *who);
/* Binds w's 11 columns to st (seeddb_insert_sql), under id and created_at
 * (the seed's text form); the strings must outlive the step. */
void seeddb_bind(sqlite3_stmt *st, const struct workload_record *w, const char *id,
		 const char *created_at);
/* Inserts w under id (a UUID text). Returns SQLITE_OK or an error. */
int seeddb_insert(struct seeddb *b, const struct workload_record *w, const char *id);
/* Commits, checkpoints the WAL into the file and closes. 0 or EIO. */
int seeddb_close(struct seeddb *b);
/* sqlite3_exec with the error on stderr. */
int seeddb_exec(sqlite3 *db, const char *sql, const char *who, const char *what);

#endif
