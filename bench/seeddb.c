/*
 * seeddb.c - building the seed's SQLite database for the benchmarks (see
 * seeddb.h): the schema of the seed service, its four indexes, and rows
 * bound from workload records.
 */
#include <errno.h>
#include <stdio.h>

#include "seeddb.h"

const char seeddb_schema[] =
	"CREATE TABLE interactions (id TEXT PRIMARY KEY, prompt TEXT NOT NULL, "
	"context_pack TEXT DEFAULT '{}', response_summary TEXT DEFAULT '', "
	"response TEXT DEFAULT '', memories_used TEXT DEFAULT '[]', "
	"chunks_used TEXT DEFAULT '[]', client TEXT DEFAULT '', "
	"session_id TEXT DEFAULT '', project TEXT DEFAULT '', "
	"created_at DATETIME DEFAULT CURRENT_TIMESTAMP);"
	"CREATE INDEX idx_interactions_project ON interactions(project, created_at);"
	"CREATE INDEX idx_interactions_session ON interactions(session_id, created_at);"
	"CREATE INDEX idx_interactions_client ON interactions(client);"
	"CREATE INDEX idx_interactions_created ON interactions(created_at);";

const char seeddb_insert_sql[] =
	"INSERT INTO interactions (id, prompt, context_pack, response_summary, "
	"response, memories_used, chunks_used, client, session_id, project, "
	"created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

int seeddb_exec(sqlite3 *db, const char *sql, const char *who, const char *what)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK)
		fprintf(stderr, "%s: sqlite %s: %s\n", who, what,
			msg ? msg : sqlite3_errmsg(db));
	sqlite3_free(msg);
	return rc;
}

int seeddb_create(struct seeddb *b, const char *path, const char *who)
{
	int rc;

	*b = (struct seeddb){ .who = who };
	rc = sqlite3_open_v2(path, &b->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
			     NULL);
	if (rc != SQLITE_OK) {
		fprintf(stderr, "%s: sqlite open %s: %s\n", who, path,
			b->db ? sqlite3_errmsg(b->db) : sqlite3_errstr(rc));
		return rc;
	}
	if ((rc = seeddb_exec(b->db, "PRAGMA journal_mode=WAL", who, "journal_mode")) ||
	    (rc = seeddb_exec(b->db, "PRAGMA synchronous=OFF", who, "synchronous")) ||
	    (rc = seeddb_exec(b->db, seeddb_schema, who, "schema")))
		return rc;
	rc = sqlite3_prepare_v2(b->db, seeddb_insert_sql, -1, &b->ins, NULL);
	if (rc != SQLITE_OK)
		fprintf(stderr, "%s: sqlite prepare: %s\n", who, sqlite3_errmsg(b->db));
	return rc;
}

void seeddb_bind(sqlite3_stmt *st, const struct workload_record *w, const char *id,
		 const char *created_at)
{
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, w->in.prompt, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, w->in.context_pack, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, w->in.response_summary, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, w->in.response, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, w->memories_json, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 7, w->chunks_json, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 8, w->in.client, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 9, w->in.session_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 10, w->in.project, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 11, created_at, -1, SQLITE_STATIC);
}

int seeddb_insert(struct seeddb *b, const struct workload_record *w, const char *id)
{
	sqlite3_stmt *st = b->ins;
	int rc;

	if (b->rows_in_txn == 0 &&
	    (rc = seeddb_exec(b->db, "BEGIN", b->who, "BEGIN")) != SQLITE_OK)
		return rc;
	seeddb_bind(st, w, id, w->created_at_seed);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE) {
		fprintf(stderr, "%s: sqlite INSERT: %s\n", b->who, sqlite3_errmsg(b->db));
		return rc;
	}
	if (++b->rows_in_txn == SEEDDB_TXN_ROWS) {
		b->rows_in_txn = 0;
		return seeddb_exec(b->db, "COMMIT", b->who, "COMMIT");
	}
	return SQLITE_OK;
}

int seeddb_close(struct seeddb *b)
{
	int rc = 0;

	if (b->rows_in_txn && seeddb_exec(b->db, "COMMIT", b->who, "COMMIT") != SQLITE_OK)
		rc = EIO;
	b->rows_in_txn = 0;
	if (!rc && seeddb_exec(b->db, "PRAGMA wal_checkpoint(TRUNCATE)", b->who,
			       "checkpoint") != SQLITE_OK)
		rc = EIO;
	sqlite3_finalize(b->ins);
	b->ins = NULL;
	if (sqlite3_close(b->db) != SQLITE_OK) {
		fprintf(stderr, "%s: sqlite close: %s\n", b->who, sqlite3_errmsg(b->db));
		rc = EIO;
	}
	b->db = NULL;
	return rc;
}
