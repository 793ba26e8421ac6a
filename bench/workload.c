/*
 * workload.c - the deterministic interaction generator (see workload.h for
 * what a record looks like).
 *
 * Every record starts its own splitmix64 stream from (seed, i), so record
 * i is the same whichever thread makes it and in whatever order. A record
 * is assembled in a stack buffer, then copied into one allocation that
 * owns all of its strings.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "workload.h"

#define RECORD_SCRATCH_BYTES 16384 /* a record is < 6 KB; room to spare */
#define MAKE_THREADS_MAX 8
#define SENTENCE_WORDS_MIN 5
#define SENTENCE_WORDS_SPAN 10   /* 5..14 words per sentence */
#define PARAGRAPH_BYTES_MIN 250
#define PARAGRAPH_BYTES_SPAN 300
#define CODE_BLOCK_ONE_IN 3      /* responses that quote a code line */
#define QUERY_BYTES 80           /* context_pack.query: the prompt's start */
#define GOLDEN64 0x9E3779B97F4A7C15ull

static const char *const project_names[WORKLOAD_PROJECTS] = {
	"atocore", "atolog", "p04-gigabit", "p05-interferometer",
	"openclaw-infra", "dalidou-deploy", "memory-service", "chunker",
	"reranker-eval", "docs-site", "billing-api", "mobile-app",
	"data-pipeline", "search-ui", "infra-terraform", "ml-notebooks",
	"auth-gateway", "cli-tools", "perf-lab", "support-bot",
};

static const char *const client_names[WORKLOAD_CLIENTS] = {
	"openclaw", "claude-code", "manual", "cursor", "aider",
};
/* Relative share of sessions per client, in client_names order. */
static const unsigned client_weights[WORKLOAD_CLIENTS] = { 30, 35, 5, 20, 10 };

static const char *const words[] = {
	"the", "a", "of", "to", "and", "in", "is", "for", "with", "that", "on",
	"when", "from", "by", "this", "it", "we", "should", "can", "not", "each",
	"index", "segment", "log", "frame", "checksum", "writer", "reader",
	"session", "project", "memory", "chunk", "context", "pack", "prompt",
	"response", "summary", "agent", "client", "query", "cursor", "seek",
	"latency", "throughput", "fsync", "group", "commit", "batch", "queue",
	"retry", "timeout", "recovery", "torn", "tail", "replay", "registry",
	"alias", "canonical", "schema", "migration", "table", "column", "row",
	"transaction", "lock", "thread", "pipeline", "deploy", "config",
	"service", "endpoint", "request", "handler", "cache", "eviction",
	"budget", "tokens", "embedding", "vector", "score", "rerank", "filter",
	"timestamp", "offset", "sequence", "order", "newest", "oldest", "since",
	"limit", "page", "snapshot", "backup", "retention", "cleanup", "cron",
	"compaction", "merge", "rollback", "error", "warning", "test", "suite",
	"coverage", "benchmark", "profile", "allocation", "buffer", "pointer",
	"struct", "function", "module", "interface", "header", "library",
	"release", "version", "format", "layout", "bytes", "kilobytes",
	"durable", "crash", "power", "loss", "disk", "file", "directory",
	"rename", "truncate", "append", "write", "read", "open", "close",
	"explain", "why", "how", "which", "does", "would", "could", "must",
	"faster", "slower", "safer", "simpler", "correct", "broken", "stale",
	"fresh", "missing", "duplicate", "unique", "random", "monotonic",
};
#define N_WORDS (sizeof(words) / sizeof(words[0]))

static const char *const code_lines[] = {
	"rc = atolog_list_open(store, &q, &it);",
	"printf(\"%s\\n\", rec->prompt);",
	"if (fdatasync(fd) != 0)\n\treturn errno;",
	"SELECT * FROM interactions WHERE project = ? ORDER BY created_at DESC;",
	"for (size_t i = 0; i < n; i++)\n\tsum += lat[i];",
};
#define N_CODE_LINES (sizeof(code_lines) / sizeof(code_lines[0]))

static const char *const memory_types[] = {
	"decision", "preference", "fact", "constraint", "todo",
};
#define N_MEMORY_TYPES (sizeof(memory_types) / sizeof(memory_types[0]))

static const char *const rerankers[] = {
	"bge-reranker-base", "bge-reranker-v2-m3", "none",
};
#define N_RERANKERS (sizeof(rerankers) / sizeof(rerankers[0]))

/* ------------------------------------------------------------------------
 * Random numbers.
 */

uint64_t workload_rand(uint64_t *state)
{
	uint64_t z = (*state += GOLDEN64);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/* Uniform in [0, n). */
static uint64_t rand_below(uint64_t *state, uint64_t n)
{
	return n ? workload_rand(state) % n : 0;
}

/* Uniform in [0, 1). */
static double rand_unit(uint64_t *state)
{
	return (double)(workload_rand(state) >> 11) / (double)(1ull << 53);
}

/* A stateless hash of a few numbers (for per-session, per-id choices). */
static uint64_t hash3(uint64_t a, uint64_t b, uint64_t c)
{
	uint64_t s = a ^ (b * GOLDEN64) ^ (c * 0xD1B54A32D192ED03ull);

	return workload_rand(&s);
}

static void uuid4_from(uint64_t hi, uint64_t lo, char out[WORKLOAD_UUID_TEXT_SIZE])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t b[16];
	int k = 0;

	for (int i = 0; i < 8; i++) {
		b[i] = (uint8_t)(hi >> (56 - 8 * i));
		b[8 + i] = (uint8_t)(lo >> (56 - 8 * i));
	}
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* version 4 */
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* RFC 9562 variant */
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[k++] = '-';
		out[k++] = hex[b[i] >> 4];
		out[k++] = hex[b[i] & 15];
	}
	out[k] = '\0';
}

void workload_uuid4(uint64_t *state, char out[WORKLOAD_UUID_TEXT_SIZE])
{
	uint64_t hi = workload_rand(state);

	uuid4_from(hi, workload_rand(state), out);
}

/* ------------------------------------------------------------------------
 * The shape of the stream.
 */

void workload_init(struct workload *w, uint64_t seed, size_t n_records,
		   size_t n_sessions, int64_t start_us, int64_t span_us)
{
	w->seed = seed;
	w->n_records = n_records ? n_records : 1;
	w->n_sessions = n_sessions ? n_sessions : 1;
	w->start_us = start_us;
	w->span_us = span_us > 0 ? span_us : 1;
}

const char *workload_project_name(uint32_t project)
{
	return project_names[project % WORKLOAD_PROJECTS];
}

const char *workload_client_name(uint32_t client)
{
	return client_names[client % WORKLOAD_CLIENTS];
}

/* Zipf (s = 1) over the projects: project k has weight 1 / (k + 1). */
static uint32_t session_project(const struct workload *w, uint32_t s)
{
	double total = 0, acc = 0, x;
	uint64_t h = hash3(w->seed, s, 1);

	for (int k = 0; k < WORKLOAD_PROJECTS; k++)
		total += 1.0 / (k + 1);
	x = rand_unit(&h) * total;
	for (uint32_t k = 0; k < WORKLOAD_PROJECTS; k++) {
		acc += 1.0 / (k + 1);
		if (x < acc)
			return k;
	}
	return WORKLOAD_PROJECTS - 1;
}

static uint32_t session_client(const struct workload *w, uint32_t s)
{
	unsigned total = 0, acc = 0, x;
	uint64_t h = hash3(w->seed, s, 2);

	for (int k = 0; k < WORKLOAD_CLIENTS; k++)
		total += client_weights[k];
	x = (unsigned)rand_below(&h, total);
	for (uint32_t k = 0; k < WORKLOAD_CLIENTS; k++) {
		acc += client_weights[k];
		if (x < acc)
			return k;
	}
	return WORKLOAD_CLIENTS - 1;
}

void workload_session_name(const struct workload *w, uint32_t s, char *buf,
			   size_t size)
{
	uint64_t h = hash3(w->seed, s, 3);

	snprintf(buf, size, "%s-%012llx", client_names[session_client(w, s)],
		 (unsigned long long)(h & 0xffffffffffffull));
}

/*
 * Session of record i: the stream is cut in blocks of (records per
 * session) x WORKLOAD_ACTIVE_SESSIONS records; block b holds sessions
 * b*A .. b*A+A-1, each record picking one of them at random, so A
 * sessions are interleaved at any time and each lasts about one block.
 */
static uint32_t record_session(const struct workload *w, size_t i, uint64_t *rng)
{
	size_t active = w->n_sessions < WORKLOAD_ACTIVE_SESSIONS ?
				w->n_sessions : WORKLOAD_ACTIVE_SESSIONS;
	size_t per_session = w->n_records / w->n_sessions;
	size_t block = (per_session ? per_session : 1) * active;
	size_t s = (i / block) * active + rand_below(rng, active);

	if (s >= w->n_sessions)
		s = rand_below(rng, w->n_sessions);
	return (uint32_t)s;
}

/* ------------------------------------------------------------------------
 * Assembling one record.
 */

struct builder {
	char buf[RECORD_SCRATCH_BYTES];
	size_t len;
	bool overflow;
};

static void put_mem(struct builder *b, const char *s, size_t n)
{
	if (b->len + n + 1 > sizeof(b->buf)) {
		b->overflow = true;
		return;
	}
	memcpy(b->buf + b->len, s, n);
	b->len += n;
}

static void put(struct builder *b, const char *s)
{
	put_mem(b, s, strlen(s));
}

static void put_char(struct builder *b, char c)
{
	put_mem(b, &c, 1);
}

__attribute__((format(printf, 2, 3)))
static void putf(struct builder *b, const char *fmt, ...)
{
	va_list ap;
	size_t room = sizeof(b->buf) - b->len;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(b->buf + b->len, room, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= room)
		b->overflow = true;
	else
		b->len += (size_t)n;
}

/* Ends the current string; returns its offset. */
static size_t end_string(struct builder *b, size_t start)
{
	put_char(b, '\0');
	return start;
}

/* A JSON string literal as json.dumps(ensure_ascii=True) writes it; the
 * text here is ASCII. */
static void put_json_string(struct builder *b, const char *s)
{
	put_char(b, '"');
	for (; *s; s++) {
		switch (*s) {
		case '"': put(b, "\\\""); break;
		case '\\': put(b, "\\\\"); break;
		case '\n': put(b, "\\n"); break;
		case '\t': put(b, "\\t"); break;
		case '\r': put(b, "\\r"); break;
		default:
			if ((unsigned char)*s < 0x20)
				putf(b, "\\u%04x", (unsigned char)*s);
			else
				put_char(b, *s);
		}
	}
	put_char(b, '"');
}

static size_t json_string_len(const char *s)
{
	size_t n = 2;

	for (; *s; s++) {
		if (*s == '"' || *s == '\\' || *s == '\n' || *s == '\t' || *s == '\r')
			n += 2;
		else if ((unsigned char)*s < 0x20)
			n += 6;
		else
			n++;
	}
	return n;
}

/* A length around base, +-WORKLOAD_SIZE_JITTER_PCT. */
static size_t jittered(uint64_t *rng, size_t base)
{
	size_t span = base * WORKLOAD_SIZE_JITTER_PCT / 100;

	return base - span + rand_below(rng, 2 * span + 1);
}

/* English-like text of about target bytes: sentences of random words,
 * the last one ended with `end`. */
static void put_prose(struct builder *b, uint64_t *rng, size_t target, char end)
{
	size_t start = b->len, left = 0;

	while (b->len - start + 1 < target && !b->overflow) {
		const char *w = words[rand_below(rng, N_WORDS)];

		if (left == 0) {
			left = SENTENCE_WORDS_MIN + rand_below(rng, SENTENCE_WORDS_SPAN);
			if (b->len > start)
				put_char(b, ' ');
			put_char(b, (char)(w[0] - 'a' + 'A'));
			put(b, w + 1);
		} else {
			put_char(b, ' ');
			put(b, w);
		}
		if (--left == 0)
			put_char(b, '.');
	}
	if (b->len > start && b->buf[b->len - 1] == '.')
		b->buf[b->len - 1] = end;
	else
		put_char(b, end);
}

/* Paragraphs separated by blank lines, sometimes with a code block. */
static void put_response(struct builder *b, uint64_t *rng, size_t target)
{
	size_t start = b->len;
	bool code = rand_below(rng, CODE_BLOCK_ONE_IN) == 0;

	while (b->len - start < target && !b->overflow) {
		size_t left = target - (b->len - start);
		size_t para = PARAGRAPH_BYTES_MIN + rand_below(rng, PARAGRAPH_BYTES_SPAN);

		if (b->len > start)
			put(b, "\n\n");
		if (code && b->len > start) {
			put(b, "```c\n");
			put(b, code_lines[rand_below(rng, N_CODE_LINES)]);
			put(b, "\n```\n\n");
			code = false;
		}
		put_prose(b, rng, para < left ? para : left, '.');
	}
}

/* The id of memory (or chunk) k of a project, stable across records. */
static void ref_id(const struct workload *w, uint32_t project, uint64_t kind,
		   uint64_t k, char out[WORKLOAD_UUID_TEXT_SIZE])
{
	uuid4_from(hash3(w->seed, project, (kind << 32) | k),
		   hash3(w->seed ^ GOLDEN64, project, (kind << 32) | k), out);
}

struct offsets {
	size_t prompt, response, summary, project, client, session, context;
	size_t memories[WORKLOAD_REFS_MAX], chunks[WORKLOAD_REFS_MAX];
	size_t memories_json, chunks_json;
};

static void put_ids(struct builder *b, char ids[][WORKLOAD_UUID_TEXT_SIZE],
		    size_t n, size_t *offs)
{
	for (size_t k = 0; k < n; k++) {
		offs[k] = b->len;
		put(b, ids[k]);
		end_string(b, offs[k]);
	}
}

/* json.dumps(list of str): ["a", "b"] */
static size_t put_json_list(struct builder *b, char ids[][WORKLOAD_UUID_TEXT_SIZE],
			    size_t n)
{
	size_t start = b->len;

	put_char(b, '[');
	for (size_t k = 0; k < n; k++) {
		if (k)
			put(b, ", ");
		put_json_string(b, ids[k]);
	}
	put_char(b, ']');
	return end_string(b, start);
}

/* A number of the given decimals as Python's repr(float) writes it:
 * value / 10^decimals with trailing zeros dropped, one decimal kept. */
static void put_decimal(struct builder *b, unsigned value, int decimals)
{
	char digits[32];
	unsigned scale = 1;
	int n;

	for (int k = 0; k < decimals; k++)
		scale *= 10;
	n = snprintf(digits, sizeof(digits), "%u.%0*u", value / scale, decimals,
		     value % scale);
	while (n > 0 && digits[n - 1] == '0' && digits[n - 2] != '.')
		digits[--n] = '\0';
	put(b, digits);
}

/* The context pack, as json.dumps(dict) writes it (", " and ": "). */
static size_t put_context(struct builder *b, uint64_t *rng, const char *prompt,
			  const char *project,
			  char mems[][WORKLOAD_UUID_TEXT_SIZE], size_t n_mems,
			  char chunks[][WORKLOAD_UUID_TEXT_SIZE], size_t n_chunks)
{
	size_t start = b->len;
	char query[QUERY_BYTES + 1];
	unsigned budget = 4000, used = 0;
	size_t query_len = strnlen(prompt, QUERY_BYTES);

	memcpy(query, prompt, query_len);
	query[query_len] = '\0';
	put(b, "{\"query\": ");
	put_json_string(b, query);
	put(b, ", \"project\": ");
	put_json_string(b, project);
	putf(b, ", \"retrieval\": {\"k\": %u, \"min_score\": ", (unsigned)(n_chunks + 3));
	put_decimal(b, 25 + 5 * (unsigned)rand_below(rng, 5), 2);
	put(b, ", \"reranker\": ");
	put_json_string(b, rerankers[rand_below(rng, N_RERANKERS)]);
	put(b, ", \"hybrid\": ");
	put(b, rand_below(rng, 2) ? "true" : "false");
	put(b, "}, \"chunks\": [");
	for (size_t k = 0; k < n_chunks; k++) {
		unsigned tokens = 120 + (unsigned)rand_below(rng, 400);

		used += tokens;
		putf(b, "%s{\"id\": \"%s\", \"score\": ", k ? ", " : "", chunks[k]);
		put_decimal(b, 9500 - 1000 * (unsigned)k - (unsigned)rand_below(rng, 500), 4);
		putf(b, ", \"source\": \"docs/%s/%s.md\", \"tokens\": %u}",
		     words[rand_below(rng, N_WORDS)], words[rand_below(rng, N_WORDS)],
		     tokens);
	}
	put(b, "], \"memories\": [");
	for (size_t k = 0; k < n_mems; k++) {
		putf(b, "%s{\"id\": \"%s\", \"type\": \"%s\", \"confidence\": ",
		     k ? ", " : "", mems[k], memory_types[rand_below(rng, N_MEMORY_TYPES)]);
		put_decimal(b, 50 + (unsigned)rand_below(rng, 51), 2);
		put_char(b, '}');
	}
	putf(b, "], \"budget\": {\"max_tokens\": %u, \"used_tokens\": %u}, "
	     "\"timing_ms\": {\"retrieve\": ", budget, used);
	put_decimal(b, 20 + (unsigned)rand_below(rng, 300), 1);
	put(b, ", \"rank\": ");
	put_decimal(b, 10 + (unsigned)rand_below(rng, 100), 1);
	put(b, ", \"assemble\": ");
	put_decimal(b, 2 + (unsigned)rand_below(rng, 20), 1);
	put(b, "}}");
	return end_string(b, start);
}

/* The seed's POST body as json.dumps would write it: every field. */
static size_t body_json_len(const struct workload_record *r)
{
	static const char *const keys[] = {
		"prompt", "response", "response_summary", "project", "client",
		"session_id", "memories_used", "chunks_used", "context_pack",
	};
	size_t n = 2 + 2 * (sizeof(keys) / sizeof(keys[0]) - 1); /* {} and ", " */

	for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
		n += strlen(keys[k]) + 2 + 2; /* "key": */
	n += json_string_len(r->in.prompt) + json_string_len(r->in.response) +
	     json_string_len(r->in.response_summary) +
	     json_string_len(r->in.project) + json_string_len(r->in.client) +
	     json_string_len(r->in.session_id);
	n += strlen(r->memories_json) + strlen(r->chunks_json) +
	     strlen(r->in.context_pack);
	return n;
}

int workload_make(const struct workload *w, size_t i, struct workload_record *out)
{
	struct builder *b = malloc(sizeof(*b));
	uint64_t rng = w->seed ^ ((uint64_t)(i + 1) * 0xD6E8FEB86659FD93ull);
	char mems[WORKLOAD_REFS_MAX][WORKLOAD_UUID_TEXT_SIZE];
	char chunks[WORKLOAD_REFS_MAX][WORKLOAD_UUID_TEXT_SIZE];
	struct offsets o;
	size_t n_mems, n_chunks;
	int64_t step = w->span_us / (int64_t)w->n_records;
	char session[96];

	if (!b)
		return ENOMEM;
	b->len = 0;
	b->overflow = false;
	memset(out, 0, sizeof(*out));
	workload_rand(&rng);
	out->session = record_session(w, i, &rng);
	out->project = session_project(w, out->session);
	out->client = session_client(w, out->session);
	n_mems = WORKLOAD_REFS_MIN +
		 rand_below(&rng, WORKLOAD_REFS_MAX - WORKLOAD_REFS_MIN + 1);
	n_chunks = WORKLOAD_REFS_MIN +
		   rand_below(&rng, WORKLOAD_REFS_MAX - WORKLOAD_REFS_MIN + 1);
	for (size_t k = 0; k < n_mems; k++)
		ref_id(w, out->project, 1, rand_below(&rng, WORKLOAD_MEMORY_POOL),
		       mems[k]);
	for (size_t k = 0; k < n_chunks; k++)
		ref_id(w, out->project, 2, rand_below(&rng, WORKLOAD_CHUNK_POOL),
		       chunks[k]);

	o.prompt = b->len;
	put_prose(b, &rng, jittered(&rng, WORKLOAD_PROMPT_BYTES), '?');
	end_string(b, o.prompt);
	o.response = b->len;
	put_response(b, &rng, jittered(&rng, WORKLOAD_RESPONSE_BYTES));
	end_string(b, o.response);
	o.summary = b->len;
	put_prose(b, &rng, jittered(&rng, WORKLOAD_SUMMARY_BYTES), '.');
	end_string(b, o.summary);
	o.project = b->len;
	put(b, project_names[out->project]);
	end_string(b, o.project);
	o.client = b->len;
	put(b, client_names[out->client]);
	end_string(b, o.client);
	o.session = b->len;
	workload_session_name(w, out->session, session, sizeof(session));
	put(b, session);
	end_string(b, o.session);
	put_ids(b, mems, n_mems, o.memories);
	put_ids(b, chunks, n_chunks, o.chunks);
	o.memories_json = put_json_list(b, mems, n_mems);
	o.chunks_json = put_json_list(b, chunks, n_chunks);
	o.context = put_context(b, &rng, b->buf + o.prompt, project_names[out->project],
				mems, n_mems, chunks, n_chunks);
	if (b->overflow) { /* a bug in the sizes above, not an input */
		free(b);
		return EOVERFLOW;
	}

	out->text = malloc(b->len);
	if (!out->text) {
		free(b);
		return ENOMEM;
	}
	memcpy(out->text, b->buf, b->len);
	free(b);
	out->in.prompt = out->text + o.prompt;
	out->in.response = out->text + o.response;
	out->in.response_summary = out->text + o.summary;
	out->in.project = out->text + o.project;
	out->in.client = out->text + o.client;
	out->in.session_id = out->text + o.session;
	out->in.context_pack = out->text + o.context;
	for (size_t k = 0; k < n_mems; k++)
		out->memories[k] = out->text + o.memories[k];
	for (size_t k = 0; k < n_chunks; k++)
		out->chunks[k] = out->text + o.chunks[k];
	out->in.memories_used = out->memories;
	out->in.n_memories_used = n_mems;
	out->in.chunks_used = out->chunks;
	out->in.n_chunks_used = n_chunks;
	out->memories_json = out->text + o.memories_json;
	out->chunks_json = out->text + o.chunks_json;
	out->in.has_created_at = 1;
	out->in.created_at = w->start_us + (int64_t)i * step +
			     (int64_t)rand_below(&rng, (uint64_t)(step / 2) + 1);
	atolog_time_format_seed(out->in.created_at, out->created_at_seed);
	out->json_bytes = body_json_len(out);
	return 0;
}

void workload_record_free(struct workload_record *r)
{
	free(r->text);
	r->text = NULL;
}

void workload_free_range(struct workload_record *recs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		workload_record_free(&recs[i]);
}

/* ------------------------------------------------------------------------
 * Making many records on every core.
 */

struct make_job {
	const struct workload *w;
	size_t first, n;
	struct workload_record *out;
	int rc;
};

static void *make_main(void *arg)
{
	struct make_job *j = arg;

	j->rc = 0;
	for (size_t k = 0; k < j->n; k++) {
		int rc = workload_make(j->w, j->first + k, &j->out[k]);

		if (rc != 0) {
			workload_free_range(j->out, k);
			j->rc = rc;
			j->n = 0;
			break;
		}
	}
	return NULL;
}

int workload_make_range(const struct workload *w, size_t first, size_t n,
			struct workload_record *out)
{
	struct make_job jobs[MAKE_THREADS_MAX];
	pthread_t tids[MAKE_THREADS_MAX];
	bool started[MAKE_THREADS_MAX] = { false };
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	size_t n_threads = cores < 1 ? 1 : (size_t)cores, done = 0;
	int rc = 0;

	if (n_threads > MAKE_THREADS_MAX)
		n_threads = MAKE_THREADS_MAX;
	if (n_threads > n)
		n_threads = n ? n : 1;
	for (size_t t = 0; t < n_threads; t++) {
		size_t share = n / n_threads + (t < n % n_threads);

		jobs[t] = (struct make_job){ w, first + done, share, out + done, 0 };
		done += share;
	}
	for (size_t t = 1; t < n_threads; t++) {
		if (pthread_create(&tids[t], NULL, make_main, &jobs[t]) == 0)
			started[t] = true;
		else
			make_main(&jobs[t]); /* no thread: make it here */
	}
	make_main(&jobs[0]);
	for (size_t t = 0; t < n_threads; t++) {
		if (started[t])
			pthread_join(tids[t], NULL);
		if (jobs[t].rc != 0)
			rc = jobs[t].rc;
	}
	if (rc != 0) {
		for (size_t t = 0; t < n_threads; t++)
			workload_free_range(jobs[t].out, jobs[t].n);
	}
	return rc;
}
