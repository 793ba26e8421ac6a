/*
 * workload.h - the synthetic interactions every benchmark records: a
 * deterministic generator, so that atolog and SQLite get exactly the same
 * strings, run after run.
 *
 * Record i of a workload is a pure function of (seed, i) and the workload's
 * shape, so records can be made in any order or in chunks. Each record
 * looks like one agent round trip of the seed service:
 *
 *   prompt            ~300 B of English-like technical text (+-25%)
 *   response          ~1.5 KB in a few paragraphs, with newlines
 *   response_summary  ~100 B
 *   context_pack      a ~1 KB JSON object: nested objects, a list of the
 *                     chunks and one of the memories with scores, numbers,
 *                     a boolean; written as Python's json.dumps writes it
 *   memories_used     3-5 UUID-shaped ids from a pool per project
 *   chunks_used       3-5 UUID-shaped ids from a pool per project
 *   project           one of 20, Zipf-weighted (a few busy projects)
 *   client            one of 5 (openclaw, claude-code, manual, cursor,
 *                     aider), weighted; fixed per session
 *   session_id        one of n_sessions; a session keeps one project and
 *                     one client, and WORKLOAD_ACTIVE_SESSIONS sessions are
 *                     interleaved at any point of the stream
 *   created_at        start + i * span / n plus jitter: non-decreasing in i,
 *                     spread evenly over the span
 *
 * The seed stores memories_used, chunks_used and context_pack as JSON
 * text (json.dumps); memories_json and chunks_json hold that text, and
 * context_pack is already in that form, so SQLite stores the very strings
 * atolog is given.
 */
#ifndef ATOLOG_BENCH_WORKLOAD_H
#define ATOLOG_BENCH_WORKLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "atolog.h"

#define WORKLOAD_PROJECTS 20
#define WORKLOAD_CLIENTS 5
#define WORKLOAD_SESSIONS_DEFAULT 2000
#define WORKLOAD_ACTIVE_SESSIONS 64 /* sessions interleaved at a time */
#define WORKLOAD_PROMPT_BYTES 300
#define WORKLOAD_RESPONSE_BYTES 1500
#define WORKLOAD_SUMMARY_BYTES 100
#define WORKLOAD_SIZE_JITTER_PCT 25 /* text lengths vary by +-this much */
#define WORKLOAD_REFS_MIN 3
#define WORKLOAD_REFS_MAX 5
#define WORKLOAD_MEMORY_POOL 400  /* distinct memory ids per project */
#define WORKLOAD_CHUNK_POOL 4000  /* distinct chunk ids per project */
#define WORKLOAD_UUID_TEXT_SIZE (ATOLOG_ID_TEXT_LEN + 1)

/* The shape of a stream of records. */
struct workload {
	uint64_t seed;
	size_t n_records;  /* records in the stream (spreads time, sessions) */
	size_t n_sessions;
	int64_t start_us;  /* created_at of record 0 */
	int64_t span_us;   /* created_at of the last record is about start + span */
};

/* One record, ready for atolog_interaction_record (id empty, so atolog
 * makes one; has_created_at 1 with created_at from the stream) and for
 * SQLite's INSERT. */
struct workload_record {
	atolog_interaction in;
	const char *memories[WORKLOAD_REFS_MAX];
	const char *chunks[WORKLOAD_REFS_MAX];
	const char *memories_json; /* json.dumps(memories_used) */
	const char *chunks_json;   /* json.dumps(chunks_used) */
	char created_at_seed[ATOLOG_TIME_SEED_LEN]; /* "YYYY-MM-DD HH:MM:SS" */
	size_t json_bytes;   /* the interaction as the seed's POST body JSON */
	uint32_t project;    /* index into the project names */
	uint32_t client;     /* index into the client names */
	uint32_t session;    /* 0 .. n_sessions-1 */
	char *text;          /* owns every string above */
};

/* A workload of n_records records in n_sessions sessions whose created_at
 * spread over [start_us, start_us + span_us). */
void workload_init(struct workload *w, uint64_t seed, size_t n_records,
		   size_t n_sessions, int64_t start_us, int64_t span_us);

/* Makes record i (0 <= i < n_records). Returns 0 or ENOMEM. */
int workload_make(const struct workload *w, size_t i, struct workload_record *out);
void workload_record_free(struct workload_record *r);

/* Makes records first .. first+n-1 into out[0..n-1], on both cores.
 * Returns 0 or ENOMEM (then nothing is left allocated). */
int workload_make_range(const struct workload *w, size_t first, size_t n,
			struct workload_record *out);
void workload_free_range(struct workload_record *recs, size_t n);

const char *workload_project_name(uint32_t project);
const char *workload_client_name(uint32_t client);
/* The session name of session s, as records carry it. */
void workload_session_name(const struct workload *w, uint32_t s, char *buf,
			   size_t size);

/* A small deterministic generator (splitmix64) for the benches' own
 * random choices: query targets, v4 ids. */
uint64_t workload_rand(uint64_t *state);
/* A random UUID v4 in canonical text form from *state. */
void workload_uuid4(uint64_t *state, char out[WORKLOAD_UUID_TEXT_SIZE]);

#endif /* ATOLOG_BENCH_WORKLOAD_H */
