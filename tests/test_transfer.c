/*
 * test_transfer.c - `atolog import-sqlite`, `export` and `import`, black
 * box, against SQL on the very database imported.
 *
 * The test builds a database with the seed's schema (unicode, malformed
 * JSON cells, NULL cells, blank prompts, many equal timestamps), imports
 * it with the CLI, and then asks both sides the same questions: every
 * combination of list filters is an SQL query on that database (blank
 * prompts left out, ties broken by rowid, which is the import's order
 * and so atolog's sequence order), and every session's replay. The ids
 * and their order must be the same. A second import adds nothing. An
 * export, imported into an empty store, exports the same again, and
 * export's filters (--until included) match SQL too.
 */
#include <errno.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "check.h"

#define N_ROWS 900
#define N_SESSIONS 15
#define TIME_BASE INT64_C(1767261600) /* 2026-01-01T10:00:00Z, seconds */

static const char *cli_path;
static const char *const projects[] = { "alpha", "beta", "gamma \u00e9", "" };
static const char *const clients[] = { "openclaw", "claude-code", "manual", "" };

/* ------------------------------------------------------------------------
 * Running the CLI.
 */

/* Runs `atolog --data dir args`; stdout into *out (malloc'ed). Returns the
 * exit status. */
static int run(const char *dir, const char *args, char **out)
{
	char cmd[8192];
	size_t len = 0, cap = 1 << 16, n;
	FILE *p;
	int status;

	snprintf(cmd, sizeof(cmd), "%s --data %s %s 2>/dev/null", cli_path, dir, args);
	*out = malloc(cap);
	p = popen(cmd, "r");
	if (!p || !*out)
		abort();
	while ((n = fread(*out + len, 1, cap - 1 - len, p)) > 0) {
		len += n;
		if (len + 1 == cap) {
			cap *= 2;
			*out = realloc(*out, cap);
			if (!*out)
				abort();
		}
	}
	(*out)[len] = '\0';
	status = pclose(p);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The last line of text, parsed. */
static json_t *last_line(const char *text)
{
	const char *end = text + strlen(text), *start;

	while (end > text && end[-1] == '\n')
		end--;
	start = end;
	while (start > text && start[-1] != '\n')
		start--;
	return json_loadb(start, (size_t)(end - start), 0, NULL);
}

static long long jnum(const json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

/* ------------------------------------------------------------------------
 * The seed's database.
 */

static void sql_exec(sqlite3 *db, const char *sql)
{
	char *err = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
		CHECK_FAILF("sql: %s: %s", sql, err);
		sqlite3_free(err);
	}
}

struct expect {
	long blanks, repaired;
};

static void random_uuid(char out[37])
{
	uint64_t a = check_rand(), b = check_rand();

	snprintf(out, 37, "%08x-%04x-4%03x-%04x-%012llx", (unsigned)(a >> 32),
		 (unsigned)(a >> 16) & 0xffff, (unsigned)a & 0xfff,
		 (unsigned)(0x8000 | ((b >> 48) & 0x3fff)),
		 (unsigned long long)(b & 0xffffffffffffULL));
}

/* One row: a malformed JSON cell in about one in ten, a blank prompt in
 * one in twenty, a NULL text cell now and then. */
static void insert_row(sqlite3_stmt *st, long i, struct expect *e)
{
	static const char *const bad_json[] = { "{oops", "[1,", "\"a string\"", "42",
						"null" };
	char id[37], prompt[96], session[16], when[24], mem[64];
	unsigned kind = (unsigned)check_rand_below(20);
	time_t t = (time_t)(TIME_BASE + (int64_t)check_rand_below(90) * 600);
	struct tm tm;
	bool blank = kind == 0, bad = kind == 1 || kind == 2;

	random_uuid(id);
	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
	if (blank) /* spaces, nothing, other white space */
		snprintf(prompt, sizeof(prompt), "%s",
			 i % 3 == 0 ? "   " : i % 3 == 1 ? "" : " \t\n\r ");
	else
		snprintf(prompt, sizeof(prompt), "prompt %ld \u6f22\u5b57", i);
	snprintf(session, sizeof(session), "s%02u", (unsigned)check_rand_below(N_SESSIONS));
	snprintf(mem, sizeof(mem), "[\"m%ld\",\"shared\"]", i % 7);
	sqlite3_reset(st);
	sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, prompt, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 3, kind == 1 ? bad_json[i % 5] : "{\"k\":[1,\"two\"]}", -1,
			  SQLITE_TRANSIENT);
	if (check_rand_below(10) == 0)
		sqlite3_bind_null(st, 4);
	else
		sqlite3_bind_text(st, 4, "summary", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, "response \u00fc", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, kind == 2 ? bad_json[i % 5] : mem, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 7, "[]", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 8, clients[check_rand_below(4)], -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 9, session, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 10, projects[check_rand_below(4)], -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 11, when, -1, SQLITE_TRANSIENT);
	if (sqlite3_step(st) != SQLITE_DONE)
		CHECK_FAILF("insert %ld", i);
	e->blanks += blank;
	/* "null" is a JSON null: not a list nor an object, so repaired. */
	e->repaired += bad && !blank;
}

/* The seed's table, empty. */
static sqlite3 *empty_seed_db(const char *path)
{
	sqlite3 *db = NULL;

	CHECK(sqlite3_open(path, &db) == SQLITE_OK);
	sql_exec(db, "CREATE TABLE interactions (id TEXT PRIMARY KEY, prompt TEXT NOT "
		     "NULL, context_pack TEXT DEFAULT '{}', response_summary TEXT DEFAULT "
		     "'', response TEXT DEFAULT '', memories_used TEXT DEFAULT '[]', "
		     "chunks_used TEXT DEFAULT '[]', client TEXT DEFAULT '', session_id "
		     "TEXT DEFAULT '', project TEXT DEFAULT '', created_at DATETIME "
		     "DEFAULT CURRENT_TIMESTAMP)");
	return db;
}

static sqlite3 *make_seed_db(const char *path, struct expect *e)
{
	sqlite3 *db = empty_seed_db(path);
	sqlite3_stmt *st;

	sql_exec(db, "BEGIN");
	CHECK(sqlite3_prepare_v2(db, "INSERT INTO interactions VALUES "
				 "(?,?,?,?,?,?,?,?,?,?,?)", -1, &st, NULL) == SQLITE_OK);
	for (long i = 0; i < N_ROWS; i++)
		insert_row(st, i, e);
	sqlite3_finalize(st);
	sql_exec(db, "COMMIT");
	return db;
}

/* ------------------------------------------------------------------------
 * The same question to both.
 */

struct question {
	const char *project, *session, *client, *since, *until;
	long limit;
	bool oldest_first;
};

/* The ids SQL answers, one per line. */
static char *sql_ids(sqlite3 *db, const struct question *q)
{
	char sql[1024], *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	sqlite3_stmt *st;
	int k = 1;

	snprintf(sql, sizeof(sql),
		 "SELECT id FROM interactions WHERE trim(prompt, ' ' || char(9) || "
		 "char(10) || char(13)) != ''%s%s%s%s%s "
		 "ORDER BY created_at %s, rowid %s LIMIT ?",
		 q->project ? " AND project = ?" : "", q->session ? " AND session_id = ?" : "",
		 q->client ? " AND client = ?" : "", q->since ? " AND created_at >= ?" : "",
		 q->until ? " AND created_at < ?" : "", q->oldest_first ? "ASC" : "DESC",
		 q->oldest_first ? "ASC" : "DESC");
	CHECK(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK);
	if (q->project)
		sqlite3_bind_text(st, k++, q->project, -1, SQLITE_STATIC);
	if (q->session)
		sqlite3_bind_text(st, k++, q->session, -1, SQLITE_STATIC);
	if (q->client)
		sqlite3_bind_text(st, k++, q->client, -1, SQLITE_STATIC);
	if (q->since)
		sqlite3_bind_text(st, k++, q->since, -1, SQLITE_STATIC);
	if (q->until)
		sqlite3_bind_text(st, k++, q->until, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, k, q->limit);
	while (sqlite3_step(st) == SQLITE_ROW)
		fprintf(f, "%s\n", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	fclose(f);
	return out;
}

/* Calls fn for each line of JSON Lines, parsed (NULL: not JSON), and
 * returns what fn printed into f, malloc'ed. */
static char *map_lines(const char *lines, void (*fn)(FILE *f, json_t *o, const char *line,
						   size_t n))
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	for (const char *p = lines; *p;) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		json_t *o = json_loadb(p, n, 0, NULL);

		fn(f, o, p, n);
		json_decref(o);
		p += n + (nl != NULL);
	}
	fclose(f);
	return out;
}

static void put_id(FILE *f, json_t *o, const char *line, size_t n)
{
	if (o && json_object_get(o, "id"))
		fprintf(f, "%s\n", json_string_value(json_object_get(o, "id")));
	else if (!o && n)
		CHECK_FAILF("not JSON: %.*s", (int)n, line);
}

/* The ids of JSON Lines, one per line. */
static char *json_ids(const char *lines)
{
	return map_lines(lines, put_id);
}

/* Quotes a CLI argument for the shell (single quotes). */
static void arg(char *buf, size_t size, const char *flag, const char *value)
{
	size_t n = strlen(buf);

	if (!value)
		return;
	n += (size_t)snprintf(buf + n, size - n, " %s '", flag);
	for (const char *p = value; *p && n + 5 < size; p++) {
		if (*p == '\'')
			n += (size_t)snprintf(buf + n, size - n, "'\\''");
		else
			buf[n++] = *p;
	}
	snprintf(buf + n, size - n, "'");
}

static void ask_both(sqlite3 *db, const char *dir, const char *command,
		     const struct question *q)
{
	char args[2048];
	char *out, *want, *got;

	snprintf(args, sizeof(args), "%s", command);
	arg(args, sizeof(args), "--project", q->project);
	arg(args, sizeof(args), "--session", q->session);
	arg(args, sizeof(args), "--client", q->client);
	arg(args, sizeof(args), "--since", q->since);
	arg(args, sizeof(args), "--until", q->until);
	if (strcmp(command, "list") == 0)
		snprintf(args + strlen(args), sizeof(args) - strlen(args), " --limit %ld",
			 q->limit);
	CHECK_INT(run(dir, args, &out), 0);
	want = sql_ids(db, q);
	got = json_ids(out);
	if (strcmp(want, got) != 0)
		CHECK_FAILF("%s: the ids differ from SQL's", args);
	free(out);
	free(want);
	free(got);
}

/* The filters given are the bits of mask: project 1, session 2, client 4,
 * since 8, until 16; their values are drawn at random. */
static void question_of(unsigned mask, struct question *q, char *since, char *until)
{
	time_t a = (time_t)(TIME_BASE + (int64_t)check_rand_below(95) * 600),
	       b = a + (time_t)check_rand_below(40) * 600;
	struct tm tm;
	static char session[16];

	memset(q, 0, sizeof(*q));
	if (mask & 1)
		q->project = projects[check_rand_below(3)]; /* "" is no filter */
	if (mask & 2) {
		snprintf(session, sizeof(session), "s%02u",
			 (unsigned)check_rand_below(N_SESSIONS));
		q->session = session;
	}
	if (mask & 4)
		q->client = clients[check_rand_below(3)];
	if (mask & 8) {
		gmtime_r(&a, &tm);
		strftime(since, 24, "%Y-%m-%d %H:%M:%S", &tm);
		q->since = since;
	}
	if (mask & 16) {
		gmtime_r(&b, &tm);
		strftime(until, 24, "%Y-%m-%d %H:%M:%S", &tm);
		q->until = until;
	}
	q->limit = 1 + (long)check_rand_below(ATOLOG_LIST_LIMIT_MAX);
}

/* ------------------------------------------------------------------------
 * The tests.
 */

static void test_import_sqlite(const char *dir)
{
	char *db_path = check_path(dir, "seed.db"), *store = check_path(dir, "store");
	char *out, since[24], until[24];
	struct expect e = { 0 };
	sqlite3 *db = make_seed_db(db_path, &e);
	char args[4096];
	json_t *sum;

	snprintf(args, sizeof(args), "import-sqlite %s", db_path);
	CHECK_INT(run(store, args, &out), 0);
	sum = last_line(out);
	CHECK_INT(jnum(sum, "rows"), N_ROWS);
	CHECK_INT(jnum(sum, "stored"), N_ROWS - e.blanks);
	CHECK_INT(jnum(sum, "skipped"), e.blanks);
	CHECK_INT(jnum(sum, "repaired"), e.repaired);
	json_decref(sum);
	/* Each one named, on a line of its own. */
	{
		long named_skip = 0, named_fix = 0;

		for (const char *p = out; (p = strstr(p, "\"row\":")) != NULL; p++) {
			const char *nl = strchr(p, '\n');

			named_skip += nl && memmem(p, (size_t)(nl - p), "\"skipped\"", 9) != NULL;
			named_fix += nl && memmem(p, (size_t)(nl - p), "\"repaired\"", 10) != NULL;
		}
		CHECK_INT(named_skip, e.blanks);
		CHECK_INT(named_fix, e.repaired);
	}
	free(out);

	/* Every combination of list's filters (3 draws each), and every
	 * replay, as SQL says. */
	for (unsigned mask = 0; mask < 16; mask++) {
		for (int i = 0; i < 3; i++) {
			struct question q;

			question_of(mask, &q, since, until);
			ask_both(db, store, "list", &q);
		}
	}
	for (unsigned s = 0; s < N_SESSIONS; s++) {
		char session[16];
		struct question q = { .session = session, .limit = LONG_MAX,
				      .oldest_first = true };

		snprintf(session, sizeof(session), "s%02u", s);
		snprintf(args, sizeof(args), "replay %s", session);
		{
			char *got_out, *want, *got;

			CHECK_INT(run(store, args, &got_out), 0);
			want = sql_ids(db, &q);
			got = json_ids(got_out);
			if (strcmp(want, got) != 0)
				CHECK_FAILF("replay %s differs from SQL", session);
			free(got_out);
			free(want);
			free(got);
		}
	}
	/* export takes the same filters, with --until, oldest first. */
	for (unsigned mask = 0; mask < 32; mask++) {
		struct question q;

		question_of(mask, &q, since, until);
		q.limit = LONG_MAX;
		q.oldest_first = true;
		ask_both(db, store, "export", &q);
	}

	/* Again: nothing new. */
	snprintf(args, sizeof(args), "import-sqlite %s", db_path);
	CHECK_INT(run(store, args, &out), 0);
	sum = last_line(out);
	CHECK_INT(jnum(sum, "stored"), 0);
	CHECK_INT(jnum(sum, "existing"), N_ROWS - e.blanks);
	json_decref(sum);
	free(out);
	sqlite3_close(db);

	/* Not the seed's database: refused, clearly. */
	free(db_path);
	db_path = check_path(dir, "text.db");
	{
		FILE *t = fopen(db_path, "w");

		fputs("just some text, long enough to be read as a header\n", t);
		fclose(t);
	}
	snprintf(args, sizeof(args), "import-sqlite %s", db_path);
	CHECK_INT(run(store, args, &out), 2);
	free(out);
	db = NULL;
	free(db_path);
	db_path = check_path(dir, "other.db");
	CHECK(sqlite3_open(db_path, &db) == SQLITE_OK);
	sql_exec(db, "CREATE TABLE notes (x)");
	sqlite3_close(db);
	snprintf(args, sizeof(args), "import-sqlite %s", db_path);
	CHECK_INT(run(store, args, &out), 2);
	free(out);
	free(db_path);
	free(store);
}

/* One seed row, its memories_used cell given. */
static void seed_row(sqlite3 *db, const char *id, const char *memories, const char *prompt)
{
	sqlite3_stmt *st;

	CHECK(sqlite3_prepare_v2(db, "INSERT INTO interactions (id, prompt, "
				 "memories_used, session_id, created_at) VALUES "
				 "(?, ?, ?, 'py', '2026-01-01 00:00:00')", -1, &st,
				 NULL) == SQLITE_OK);
	if (id)
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 1);
	sqlite3_bind_text(st, 2, prompt, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, memories, -1, SQLITE_STATIC);
	CHECK(sqlite3_step(st) == SQLITE_DONE);
	sqlite3_finalize(st);
}


/* List items that are not strings become what Python's str() makes of
 * them after json.loads, as the seed stores them (the expected texts are
 * CPython 3's, for this very cell); a row with no id is skipped. */
static void test_seed_cells(const char *dir)
{
	static const char cell[] =
		"[1.0, 1e2, {\"a\": 1, \"b\": [\"x\", \"it's\"]}, [1,2], -0, 0.5, 123.25, "
		"1e16, 1.5e-05, 0.0001, -0.0, true, null, \"s\", 12345678901234567890, "
		"3.141592653589793]";
	static const char *const want[] = {
		"1.0", "100.0", "{'a': 1, 'b': ['x', \"it's\"]}", "[1, 2]", "0", "0.5",
		"123.25", "1e+16", "1.5e-05", "0.0001", "-0.0", "True", "None", "s",
		"12345678901234567890", "3.141592653589793",
	};
	char *db_path = check_path(dir, "cells.db"), *store = check_path(dir, "store");
	sqlite3 *db = empty_seed_db(db_path);
	char args[4096], *out;
	json_t *sum, *rec, *mem;

	seed_row(db, "0e1f7a2c-3b4d-4e5f-8a9b-0c1d2e3f4a5b", cell, "cells");
	/* Python's json refuses comments; 1e400 is its inf. */
	seed_row(db, "1e1f7a2c-3b4d-4e5f-8a9b-0c1d2e3f4a5b",
		 "[1e400, -1e400, \"a/b\"] /* not JSON */", "comment");
	seed_row(db, "2e1f7a2c-3b4d-4e5f-8a9b-0c1d2e3f4a5b", "[1e400, -1e400, \"a/b\"]",
		 "infinities");
	seed_row(db, NULL, "[]", "no id");
	seed_row(db, "", "[]", "empty id");
	sqlite3_close(db);
	snprintf(args, sizeof(args), "import-sqlite %s", db_path);
	for (int run_no = 0; run_no < 2; run_no++) {
		CHECK_INT(run(store, args, &out), 0);
		sum = last_line(out);
		CHECK_INT(jnum(sum, "stored"), run_no ? 0 : 3);
		CHECK_INT(jnum(sum, "skipped"), 2);
		CHECK_INT(jnum(sum, "repaired"), run_no ? 0 : 1);
		CHECK(strstr(out, "\"skipped\":\"no id\"") != NULL);
		json_decref(sum);
		free(out);
	}
	CHECK_INT(run(store, "replay py", &out), 0);
	rec = json_loads(out, JSON_DISABLE_EOF_CHECK, NULL);
	mem = json_object_get(rec, "memories_used");
	CHECK_INT(json_array_size(mem), sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < json_array_size(mem); i++) {
		const char *got = json_string_value(json_array_get(mem, i));

		if (i < sizeof(want) / sizeof(want[0]) && (!got || strcmp(got, want[i]) != 0))
			CHECK_FAILF("item %zu is %s, want %s", i, got ? got : "?", want[i]);
	}
	json_decref(rec);
	/* The replay is oldest first, ties by seq: cells, comment, infinities. */
	{
		const char *p = strchr(out, '\n');
		json_t *c = p ? json_loads(p + 1, JSON_DISABLE_EOF_CHECK, NULL) : NULL;
		const char *q = p ? strchr(p + 1, '\n') : NULL;
		json_t *inf = q ? json_loads(q + 1, JSON_DISABLE_EOF_CHECK, NULL) : NULL;
		json_t *m = json_object_get(inf, "memories_used");

		CHECK_INT(json_array_size(json_object_get(c, "memories_used")), 0);
		CHECK(json_array_size(m) == 3 &&
		      strcmp(json_string_value(json_array_get(m, 0)), "inf") == 0 &&
		      strcmp(json_string_value(json_array_get(m, 1)), "-inf") == 0 &&
		      strcmp(json_string_value(json_array_get(m, 2)), "a/b") == 0);
		json_decref(c);
		json_decref(inf);
	}
	free(out);
	free(db_path);
	free(store);
}

/* One seed row with its context_pack and memories_used cells given. */
static void seed_row_cells(sqlite3 *db, const char *id, const char *context,
			   const char *memories, const char *prompt)
{
	sqlite3_stmt *st;

	CHECK(sqlite3_prepare_v2(db, "INSERT INTO interactions (id, prompt, "
				 "context_pack, memories_used, session_id, created_at) "
				 "VALUES (?, ?, ?, ?, 'num', '2026-01-01 00:00:00')", -1,
				 &st, NULL) == SQLITE_OK);
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, prompt, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, context, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, memories, -1, SQLITE_STATIC);
	CHECK(sqlite3_step(st) == SQLITE_DONE);
	sqlite3_finalize(st);
}

/* Whether the len bytes at line hold the literal lit. */
#define HAS(line, len, lit) (memmem((line), (len), lit, sizeof(lit) - 1) != NULL)

/* The line of text that holds needle, or NULL. */
static const char *line_with(const char *text, const char *needle, size_t *len)
{
	const char *p = strstr(text, needle), *start, *end;

	if (!p)
		return NULL;
	for (start = p; start > text && start[-1] != '\n'; start--)
		;
	end = strchr(p, '\n');
	*len = end ? (size_t)(end - start) : strlen(start);
	return start;
}

/*
 * Numbers atolog cannot keep exactly (an integer beyond 64 bits, a real
 * beyond float64) are never changed. import-sqlite: a context_pack cell
 * the seed's Python reads with one is stored as {} and its line says
 * "repaired" and why; such a number as a list item is Python's str() of
 * it, exact. import (JSON Lines): the line is refused by number, exit 2.
 * In range, integers come through exactly.
 */
static void test_import_numbers(const char *dir)
{
	static const char exact[] =
		"{\"u\":18446744073709551615,\"i\":-9223372036854775808,\"d\":-0.0}";
	char *db_path = check_path(dir, "numbers.db"), *store = check_path(dir, "store");
	char *lines = check_path(dir, "numbers.jsonl"), *other = check_path(dir, "other");
	char args[4096], *out, want[256];
	const char *line;
	size_t len;
	sqlite3 *db = empty_seed_db(db_path);
	json_t *sum;
	FILE *f;

	seed_row_cells(db, "0e1f7a2c-3b4d-4e5f-8a9b-0c1d2e3f4a51",
		       "{\"big\":123456789012345678901234567890,\"x\":1}", "[]", "big");
	seed_row_cells(db, "0e1f7a2c-3b4d-4e5f-8a9b-0c1d2e3f4a52", "{\"inf\":[1e400]}",
		       "[]", "inf");
	seed_row_cells(db, "0e1f7a2c-3b4d-4e5f-8a9b-0c1d2e3f4a53", exact,
		       "[123456789012345678901234567890, -18446744073709551616]", "exact");
	sqlite3_close(db);
	snprintf(args, sizeof(args), "import-sqlite %s", db_path);
	CHECK_INT(run(store, args, &out), 0);
	sum = last_line(out);
	CHECK_INT(jnum(sum, "stored"), 3);
	CHECK_INT(jnum(sum, "repaired"), 2);
	CHECK_INT(jnum(sum, "skipped"), 0);
	json_decref(sum);
	line = line_with(out, "4a51", &len);
	CHECK(line && HAS(line, len, "\"repaired\":[\"context_pack\"]") &&
	      HAS(line, len, "context_pack.big: the integer "
		     "123456789012345678901234567890"));
	line = line_with(out, "4a52", &len);
	CHECK(line && HAS(line, len, "\"repaired\":[\"context_pack\"]") &&
	      HAS(line, len, "context_pack.inf[0]: the number 1e400"));
	CHECK(line_with(out, "4a53", &len) == NULL);
	free(out);
	CHECK_INT(run(store, "replay num", &out), 0);
	line = line_with(out, "\"prompt\":\"big\"", &len);
	CHECK(line && HAS(line, len, "\"context_pack\":{}"));
	line = line_with(out, "\"prompt\":\"inf\"", &len);
	CHECK(line && HAS(line, len, "\"context_pack\":{}"));
	line = line_with(out, "\"prompt\":\"exact\"", &len);
	snprintf(want, sizeof(want), "\"context_pack\":%s", exact);
	CHECK(line && memmem(line, len, want, strlen(want)));
	CHECK(line && HAS(line, len, "\"memories_used\":[\"123456789012345678901234567890\","
			     "\"-18446744073709551616\"]"));
	free(out);

	/* JSON Lines: the lines with such numbers are refused, the rest go in. */
	f = fopen(lines, "w");
	fprintf(f, "{\"prompt\":\"one\",\"context_pack\":%s}\n"
		   "{\"prompt\":\"two\",\"context_pack\":{\"big\":-123456789012345678901234567890}}\n"
		   "{\"prompt\":\"three\",\"context_pack\":{\"a\":{\"b\":1e400}}}\n"
		   "{\"prompt\":\"four\"}\n", exact);
	fclose(f);
	snprintf(args, sizeof(args), "import %s", lines);
	CHECK_INT(run(other, args, &out), 2);
	sum = last_line(out);
	CHECK_INT(jnum(sum, "read"), 4);
	CHECK_INT(jnum(sum, "stored"), 2);
	CHECK_INT(jnum(sum, "refused"), 2);
	json_decref(sum);
	free(out);
	CHECK_INT(run(other, "export", &out), 0);
	CHECK(strstr(out, want) != NULL && strstr(out, "\"prompt\":\"four\"") != NULL);
	CHECK(strstr(out, "\"prompt\":\"two\"") == NULL &&
	      strstr(out, "\"prompt\":\"three\"") == NULL);
	free(out);
	/* Why, on stderr (merged here into the pipe). */
	snprintf(args, sizeof(args), "import %s 2>&1 | cat", lines);
	run(store, args, &out);
	CHECK(strstr(out, "line 2: context_pack.big: the integer "
			  "-123456789012345678901234567890") != NULL);
	CHECK(strstr(out, "line 3: context_pack.a.b: the number 1e400") != NULL);
	free(out);
	free(db_path);
	free(store);
	free(lines);
	free(other);
}

/* A full disk in the middle of an import is an error (exit 3), even when
 * the batch it hits begins with a row already there. */
static void test_import_full_disk(const char *dir)
{
	char *small = check_path(dir, "small.db"), *big = check_path(dir, "big.db"),
	     *store = check_path(dir, "store");
	char args[8192], prompt[8192], id[37], *out;
	sqlite3 *db;
	json_t *sum;

	memset(prompt, 'x', sizeof(prompt) - 1);
	prompt[sizeof(prompt) - 1] = '\0';
	db = empty_seed_db(small);
	seed_row(db, "0e1f7a2c-3b4d-4e5f-8a9b-0c1d2e3f4a5b", "[]", "first");
	sqlite3_close(db);
	db = empty_seed_db(big);
	sql_exec(db, "BEGIN");
	seed_row(db, "0e1f7a2c-3b4d-4e5f-8a9b-0c1d2e3f4a5b", "[]", "first");
	for (int i = 0; i < 900; i++) { /* one batch, over the limit */
		random_uuid(id);
		seed_row(db, id, "[]", prompt);
	}
	sql_exec(db, "COMMIT");
	sqlite3_close(db);
	snprintf(args, sizeof(args), "import-sqlite %s", small);
	CHECK_INT(run(store, args, &out), 0);
	free(out);
	/* 2 MiB for any file (ulimit counts 512-byte blocks in sh). */
	snprintf(args, sizeof(args), "sh -c 'ulimit -f 4096; exec %s --data %s "
		 "--sync none import-sqlite %s' 2>/dev/null", cli_path, store, big);
	{
		FILE *p = popen(args, "r");
		char text[65536];
		size_t n = p ? fread(text, 1, sizeof(text) - 1, p) : 0;
		int status = p ? pclose(p) : -1;

		text[n] = '\0';
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 3);
		sum = last_line(text);
		CHECK(jnum(sum, "stored") < 900);
		json_decref(sum);
	}
	free(small);
	free(big);
	free(store);
}

static void put_without_seq(FILE *f, json_t *o, const char *line, size_t n)
{
	char *text;

	(void)line;
	(void)n;
	json_object_del(o, "seq");
	text = json_dumps(o, JSON_SORT_KEYS | JSON_COMPACT);
	fprintf(f, "%s\n", text ? text : "?");
	free(text);
}

/* Everything of an export but seq, which is each store's own count. */
static char *without_seq(const char *lines)
{
	return map_lines(lines, put_without_seq);
}

static void test_export_import(const char *dir)
{
	char *a = check_path(dir, "a"), *b = check_path(dir, "b"),
	     *file = check_path(dir, "all.jsonl"), *bad = check_path(dir, "bad.jsonl");
	char args[4096], *out, *first, *second;
	json_t *sum;
	FILE *f;

	/* A store with registered aliases, many sessions, a roll or two. */
	for (int i = 0; i < 300; i++) {
		char body[256];
		FILE *p;

		snprintf(args, sizeof(args), "%s --data %s --sync none record >/dev/null",
			 cli_path, a);
		snprintf(body, sizeof(body), "{\"prompt\":\"q%d \\\"x\\\" \u00e9\",\"project\":"
			 "\"%s\",\"session_id\":\"s%d\",\"memories_used\":[\"m%d\"],"
			 "\"created_at\":\"2026-02-0%d 10:00:0%d\"}", i,
			 i % 50 == 7 ? "A" : projects[i % 4], /* "A": an alias from 150 on */
			 i % 9, i, 1 + i % 5, i % 3);
		p = popen(args, "w");
		fputs(body, p);
		CHECK(pclose(p) == 0);
		if (i == 150) { /* a registration between records */
			CHECK_INT(run(a, "project add alpha --alias A", &out), 0);
			free(out);
		}
	}
	CHECK_INT(run(a, "export", &first), 0);
	/* Piped, a long command says nothing on stderr. */
	snprintf(args, sizeof(args), "%s --data %s export 2>&1 >/dev/null", cli_path, a);
	{
		FILE *p = popen(args, "r");
		char buf[256];
		size_t n = p ? fread(buf, 1, sizeof(buf), p) : 1;

		if (p)
			pclose(p);
		CHECK_INT(n, 0);
	}
	f = fopen(file, "w");
	fputs(first, f);
	fclose(f);
	snprintf(args, sizeof(args), "import %s", file);
	CHECK_INT(run(b, args, &out), 0);
	sum = last_line(out);
	CHECK_INT(jnum(sum, "stored"), 300);
	json_decref(sum);
	free(out);
	CHECK_INT(run(b, "export", &second), 0);
	{
		char *x = without_seq(first), *y = without_seq(second);

		CHECK(strcmp(x, y) == 0);
		free(x);
		free(y);
	}
	free(second);
	/* The registry came along: an alias lists the same in both. */
	{
		char *la, *lb;

		CHECK_INT(run(a, "list --project A --limit 500", &la), 0);
		CHECK_INT(run(b, "list --project A --limit 500", &lb), 0);
		CHECK(strlen(la) > 100 && strcmp(la, lb) != 0 /* seq differs */);
		{
			char *x = without_seq(la), *y = without_seq(lb);

			CHECK(strcmp(x, y) == 0);
			free(x);
			free(y);
		}
		free(la);
		free(lb);
	}
	for (int s = 0; s < 9; s++) {
		char *ra, *rb, *x, *y;

		snprintf(args, sizeof(args), "replay s%d", s);
		CHECK_INT(run(a, args, &ra), 0);
		CHECK_INT(run(b, args, &rb), 0);
		x = without_seq(ra);
		y = without_seq(rb);
		CHECK(strcmp(x, y) == 0 && strlen(x) > 0);
		free(ra);
		free(rb);
		free(x);
		free(y);
	}
	/* Again: nothing new. Through stdin. */
	snprintf(args, sizeof(args), "import - < %s", file);
	CHECK_INT(run(b, args, &out), 0);
	sum = last_line(out);
	CHECK_INT(jnum(sum, "stored"), 0);
	CHECK_INT(jnum(sum, "existing"), 300);
	json_decref(sum);
	free(out);
	/* A bad line is reported and skipped; the rest go in; exit 2. */
	f = fopen(bad, "w");
	fprintf(f, "{\"prompt\":\"good one\"}\n{\"prompt\":\n{\"prompt\":\"  \"}\n\n"
		   "{\"prompt\":\"good two\"}\n");
	fclose(f);
	snprintf(args, sizeof(args), "import %s", bad);
	CHECK_INT(run(b, args, &out), 2);
	sum = last_line(out);
	CHECK_INT(jnum(sum, "read"), 4);
	CHECK_INT(jnum(sum, "stored"), 2);
	CHECK_INT(jnum(sum, "refused"), 2);
	json_decref(sum);
	free(out);
	/* CSV: a header, a row per interaction, quotes doubled. */
	CHECK_INT(run(a, "export --format csv --project beta", &out), 0);
	CHECK(strncmp(out, "id,prompt,", 10) == 0);
	CHECK(strstr(out, "\"\"x\"\"") != NULL);
	{
		long rows = -1, want = 0;

		for (const char *p = out; (p = strstr(p, "\r\n")) != NULL; p += 2)
			rows++;
		for (int i = 0; i < 300; i++)
			want += i % 4 == 1 && i % 50 != 7;
		CHECK_INT(rows, want);
	}
	free(out);
	/* reindex: the index rebuilt from the log gives the same export, seq
	 * and all, and stats from its counts. */
	{
		char *again, *stats;
		json_t *sum2, *per;

		CHECK_INT(run(a, "reindex", &out), 0);
		sum2 = last_line(out);
		CHECK_INT(jnum(sum2, "records"), 300);
		CHECK_INT(jnum(sum2, "frames"), 301); /* the registration too */
		json_decref(sum2);
		free(out);
		CHECK_INT(run(a, "export", &again), 0);
		CHECK(strcmp(again, first) == 0);
		free(again);
		CHECK_INT(run(a, "stats", &stats), 0);
		sum2 = last_line(stats);
		per = json_object_get(sum2, "projects");
		CHECK_INT(json_integer_value(json_object_get(per, "beta")), 72);
		CHECK_INT(json_integer_value(json_object_get(per, "A")), 3);
		json_decref(sum2);
		free(stats);
		CHECK_INT(run(a, "reindex extra", &out), 2);
		free(out);
	}
	CHECK_INT(run(a, "export --format xml", &out), 2);
	free(out);
	CHECK_INT(run(a, "list --until 2026-01-01", &out), 2);
	free(out);
	CHECK_INT(run(a, "export --until yesterday", &out), 2);
	free(out);
	free(first);
	free(a);
	free(b);
	free(file);
	free(bad);
}

/* Every subcommand answers --help with its usage, on stdout, exit 0; the
 * top-level usage lists each. */
static void test_help_everywhere(const char *dir)
{
	static const char *const commands[] = {
		"record", "get", "list", "replay", "export", "import", "import-sqlite",
		"follow", "project", "stats", "verify", "reindex", "compact", "snapshot",
		"serve", "tour",
	};
	char *top, *out, args[64], want[64];

	CHECK_INT(run(dir, "--help", &top), 0);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		snprintf(args, sizeof(args), "%s --help", commands[i]);
		snprintf(want, sizeof(want), "usage: atolog %s", commands[i]);
		CHECK_INT(run(dir, args, &out), 0);
		if (strncmp(out, want, strlen(want)) != 0)
			CHECK_FAILF("%s --help printed: %.60s", commands[i], out);
		snprintf(want, sizeof(want), "  %s ", commands[i]);
		if (!strstr(top, want))
			CHECK_FAILF("atolog --help does not list %s", commands[i]);
		free(out);
	}
	free(top);
}

int main(int argc, char **argv)
{
	static const struct check_case cases[] = {
		{ "import_sqlite", test_import_sqlite },
		{ "export_import", test_export_import },
		{ "help_everywhere", test_help_everywhere },
		{ "seed_cells", test_seed_cells },
		{ "import_numbers", test_import_numbers },
		{ "import_full_disk", test_import_full_disk },
	};

	check_args(argc, argv);
	cli_path = getenv("ATOLOG_CLI");
	check_rand_init("test_transfer");
	if (!cli_path) {
		fprintf(stderr, "test_transfer: set ATOLOG_CLI to the atolog binary\n");
		return 1;
	}
	return check_run_cases("test_transfer", cases, sizeof(cases) / sizeof(cases[0]));
}
