/*
 * cmd_import_sqlite.c - `atolog import-sqlite PATH`: moves the seed
 * service's SQLite database into the store, keeping ids and created_at.
 *
 * Rows are read in rowid order (the order the seed wrote them, which
 * breaks ties of created_at the way atolog's sequence numbers do) and
 * stored IMPORT_SQLITE_BATCH at a time through the batch write path.
 * Cells are read as the seed reads them (`_row_to_interaction`): NULL text
 * is "", and a JSON cell that does not parse, or is not the right kind (a
 * list for memories_used and chunks_used, an object for context_pack),
 * becomes [] or {}; list items that are not strings become the text
 * Python's str() makes of them (True, None, 3, 100.0, {'a': [1, 2]}).
 * JSON that Python reads and yajl does not (NaN, Infinity) counts as
 * malformed. A context_pack cell Python reads but atolog refuses (an
 * integer beyond 64 bits, a real beyond float64 such as 1e400, which
 * Python reads as inf, nesting past the limit) becomes {} as well, since
 * atolog never changes a number: its line says why. Such a row is stored,
 * and named in the output as repaired. A
 * row with a blank prompt, no id, or one atolog refuses (an id that is
 * not a UUID, a created_at that is not a time, a name over the limits),
 * is named as skipped. An id the store holds already is skipped quietly and
 * counted: importing twice adds nothing.
 *
 * Output, JSON Lines: one line per repaired or skipped row, then a
 * summary. Exit 0, or 2 when the file is not an SQLite database, has no
 * interactions table, or lacks one of its columns.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>
#include <yajl/yajl_parse.h>
#include <yajl/yajl_tree.h>

#include "cli.h"

#define IMPORT_SQLITE_BATCH 1000 /* rows per commit */
#define SEED_COLUMNS "id, prompt, context_pack, response_summary, response, " \
		     "memories_used, chunks_used, client, session_id, project, " \
		     "created_at"

enum repair { REPAIR_CONTEXT = 1, REPAIR_MEMORIES = 2, REPAIR_CHUNKS = 4 };

/* One row, its strings owned. */
struct seed_row {
	int64_t rowid;
	char *text[9]; /* id prompt summary response client session project created_at context */
	char **memories, **chunks;
	size_t n_memories, n_chunks;
	unsigned repaired;
	char *refused; /* why the store refused the context_pack cell, or NULL */
	atolog_interaction in;
};

struct sqlite_import {
	atolog_store *store;
	struct seed_row rows[IMPORT_SQLITE_BATCH];
	size_t n;
	uint64_t total, done, stored, existing, skipped, repaired;
	struct cli_progress bar;
	atolog_progress_fn progress;
};

static void row_free(struct seed_row *r)
{
	for (size_t i = 0; i < sizeof(r->text) / sizeof(r->text[0]); i++)
		free(r->text[i]);
	for (size_t i = 0; i < r->n_memories; i++)
		free(r->memories[i]);
	for (size_t i = 0; i < r->n_chunks; i++)
		free(r->chunks[i]);
	free(r->memories);
	free(r->chunks);
	free(r->refused);
	memset(r, 0, sizeof(*r));
}

static char *column_text(sqlite3_stmt *st, int col)
{
	const unsigned char *t = sqlite3_column_text(st, col);

	return strdup(t ? (const char *)t : "");
}

/*
 * A list item as the seed stores it: Python's str(item), after json.loads.
 * A string is itself; anything else is its repr: True, False, None, ints
 * as decimals, floats in Python's shortest round-trip form (1e2 is
 * 100.0), lists and dicts with ', ' and ': ' and quoted strings.
 */
static void py_repr(FILE *f, yajl_val v);

static void py_string_repr(FILE *f, const char *s)
{
	char quote = strchr(s, '\'') && !strchr(s, '"') ? '"' : '\'';

	fputc(quote, f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '\\' || *p == (unsigned char)quote)
			fprintf(f, "\\%c", *p);
		else if (*p == '\n')
			fputs("\\n", f);
		else if (*p == '\r')
			fputs("\\r", f);
		else if (*p == '\t')
			fputs("\\t", f);
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(f, "\\x%02x", *p);
		else
			fputc(*p, f);
	}
	fputc(quote, f);
}

/* repr(float): the fewest digits that read back the same; fixed notation
 * while the decimal point falls in (-4, 16], else scientific. */
static void py_float_repr(FILE *f, double d)
{
	char buf[40], digits[24];
	int prec, exp, nd = 0, decpt;
	const char *p;

	if (isinf(d)) { /* 1e400 reads as that */
		fputs(d < 0 ? "-inf" : "inf", f);
		return;
	}
	for (prec = 1; prec < 17; prec++) {
		snprintf(buf, sizeof(buf), "%.*e", prec - 1, d);
		if (strtod(buf, NULL) == d)
			break;
	}
	snprintf(buf, sizeof(buf), "%.*e", prec - 1, d);
	p = buf;
	if (*p == '-')
		fputc(*p++, f);
	for (; *p && *p != 'e'; p++) {
		if (*p != '.')
			digits[nd++] = *p;
	}
	digits[nd] = '\0';
	exp = atoi(p + 1);
	decpt = exp + 1;
	if (decpt > -4 && decpt <= 16) {
		if (decpt <= 0) {
			fputs("0.", f);
			for (int i = 0; i < -decpt; i++)
				fputc('0', f);
			fputs(digits, f);
		} else if (decpt >= nd) {
			fputs(digits, f);
			for (int i = nd; i < decpt; i++)
				fputc('0', f);
			fputs(".0", f);
		} else {
			fprintf(f, "%.*s.%s", decpt, digits, digits + decpt);
		}
	} else {
		fprintf(f, "%c%s%se%c%02d", digits[0], nd > 1 ? "." : "", digits + 1,
			exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
	}
}

static void py_number_repr(FILE *f, const char *text)
{
	if (strpbrk(text, ".eE")) {
		py_float_repr(f, strtod(text, NULL));
		return;
	}
	/* An int: -0 is 0; leading zeros cannot occur in JSON. */
	fputs(strcmp(text, "-0") == 0 ? "0" : text, f);
}

static void py_repr(FILE *f, yajl_val v)
{
	if (YAJL_IS_STRING(v)) {
		py_string_repr(f, v->u.string);
	} else if (YAJL_IS_NUMBER(v)) {
		py_number_repr(f, v->u.number.r);
	} else if (YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v)) {
		fputs(YAJL_IS_TRUE(v) ? "True" : "False", f);
	} else if (YAJL_IS_OBJECT(v)) {
		fputc('{', f);
		for (size_t i = 0; i < v->u.object.len; i++) {
			fputs(i ? ", " : "", f);
			py_string_repr(f, v->u.object.keys[i]);
			fputs(": ", f);
			py_repr(f, v->u.object.values[i]);
		}
		fputc('}', f);
	} else if (YAJL_IS_ARRAY(v)) {
		fputc('[', f);
		for (size_t i = 0; i < v->u.array.len; i++) {
			fputs(i ? ", " : "", f);
			py_repr(f, v->u.array.values[i]);
		}
		fputc(']', f);
	} else {
		fputs("None", f);
	}
}

/* str(item); NULL when out of memory. */
static char *py_str(yajl_val v)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	if (YAJL_IS_STRING(v))
		return strdup(v->u.string);
	f = open_memstream(&text, &len);
	if (!f)
		return NULL;
	py_repr(f, v);
	if (fclose(f) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

/* yajl's tree parser takes comments, which Python's json refuses: a '/'
 * outside strings makes the cell malformed, as it is for the seed. */
static bool has_comment(const char *text)
{
	bool in_string = false;

	for (const char *p = text; *p; p++) {
		if (in_string && *p == '\\' && p[1])
			p++;
		else if (*p == '"')
			in_string = !in_string;
		else if (!in_string && *p == '/')
			return true;
	}
	return false;
}

/* A list cell as the seed reads it; *bad when it was not a JSON list. */
static int parse_list(const char *cell, char ***items, size_t *n, bool *bad)
{
	yajl_val v = *cell && !has_comment(cell) ? yajl_tree_parse(cell, NULL, 0) : NULL;
	int rc = 0;

	*items = NULL;
	*n = 0;
	*bad = *cell && !YAJL_IS_ARRAY(v);
	if (YAJL_IS_ARRAY(v) && v->u.array.len) {
		*items = calloc(v->u.array.len, sizeof(**items));
		rc = *items ? 0 : ENOMEM;
		for (size_t i = 0; rc == 0 && i < v->u.array.len; i++) {
			yajl_val item = v->u.array.values[i];

			(*items)[i] = py_str(item);
			rc = (*items)[i] ? 0 : ENOMEM;
			*n = i + 1;
		}
	}
	yajl_tree_free(v);
	return rc;
}

/* context_pack as the seed reads it: an object, else {}. */
static int context_repair(struct seed_row *r)
{
	free(r->text[8]);
	r->text[8] = strdup("{}");
	r->in.context_pack = r->text[8];
	return r->text[8] ? 0 : ENOMEM;
}

/* Whether text is one JSON object, by a pass of yajl's parser with no
 * callbacks (no tree is built; comments and trailing bytes refused, as
 * Python's json refuses them): the store parses the cell once more as it
 * writes it, and that is the one parse that builds anything. */
static bool json_object_text(const char *text)
{
	const char *p = text;
	yajl_handle h;
	bool ok;

	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	if (*p != '{')
		return false;
	h = yajl_alloc(NULL, NULL, NULL);
	ok = h && yajl_parse(h, (const unsigned char *)text, strlen(text)) == yajl_status_ok &&
	     yajl_complete_parse(h) == yajl_status_ok;
	if (h)
		yajl_free(h);
	return ok;
}

/* context_pack as the seed reads it: an object, else {}. A cell the store
 * still refuses (deeper than it takes) is repaired when refused
 * (import_outcome). */
static int check_context(struct seed_row *r)
{
	const char *text = r->text[8];

	if (json_object_text(text))
		return 0;
	if (*text)
		r->repaired |= REPAIR_CONTEXT;
	return context_repair(r);
}

/* Reads the current row into r (everything it needs, owned). */
static int row_read(sqlite3_stmt *st, struct seed_row *r)
{
	static const int cols[9] = { 0, 1, 3, 4, 7, 8, 9, 10, 2 };
	char *mem, *chunks;
	bool bad;
	int rc = 0;

	r->rowid = sqlite3_column_int64(st, 11);
	for (size_t i = 0; i < 9; i++) {
		r->text[i] = column_text(st, cols[i]);
		if (!r->text[i])
			return ENOMEM;
	}
	mem = column_text(st, 5);
	chunks = column_text(st, 6);
	if (!mem || !chunks)
		rc = ENOMEM;
	if (rc == 0)
		rc = parse_list(mem, &r->memories, &r->n_memories, &bad);
	if (rc == 0 && bad)
		r->repaired |= REPAIR_MEMORIES;
	if (rc == 0)
		rc = parse_list(chunks, &r->chunks, &r->n_chunks, &bad);
	if (rc == 0 && bad)
		r->repaired |= REPAIR_CHUNKS;
	free(mem);
	free(chunks);
	return rc ? rc : check_context(r);
}

/* The interaction the row stands for; NULL, or why it is skipped. */
static const char *row_interaction(struct seed_row *r)
{
	atolog_interaction *in = &r->in;
	const char *p = r->text[1];

	memset(in, 0, sizeof(*in));
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	if (!*p)
		return "blank prompt";
	/* atolog would give it a new id each time: a rerun would add it again */
	if (!*r->text[0])
		return "no id";
	if (strlen(r->text[0]) > ATOLOG_ID_TEXT_LEN)
		return "the id is not a UUID";
	snprintf(in->id, sizeof(in->id), "%s", r->text[0]);
	in->prompt = r->text[1];
	in->response_summary = r->text[2];
	in->response = r->text[3];
	in->client = r->text[4];
	in->session_id = r->text[5];
	in->project = r->text[6];
	in->context_pack = r->text[8];
	in->memories_used = (const char *const *)r->memories;
	in->n_memories_used = r->n_memories;
	in->chunks_used = (const char *const *)r->chunks;
	in->n_chunks_used = r->n_chunks;
	in->has_created_at = 1;
	if (atolog_time_parse(r->text[7], &in->created_at) != ATOLOG_OK)
		return "created_at is not a time";
	return NULL; /* the rest the store checks, as it writes (import_refused) */
}

/* One line naming a row: {"row", "id", then "skipped": why or
 * "repaired": [fields], and "why" when the store refused the context_pack
 * the seed reads (a number beyond 64 bits, nesting past the limit). */
static void report_row(const struct seed_row *r, const char *skipped)
{
	static const char *const fields[] = { "context_pack", "memories_used",
					      "chunks_used" };
	const char *because = skipped ? skipped : r->refused;
	char *id = NULL, *why = NULL;

	if (cli_json_quote(r->text[0], &id) != 0 ||
	    (because && cli_json_quote(because, &why) != 0)) {
		free(id);
		return;
	}
	printf("{\"row\":%" PRId64 ",\"id\":%s", r->rowid, id);
	if (skipped) {
		printf(",\"skipped\":%s}\n", why);
	} else {
		fputs(",\"repaired\":[", stdout);
		for (unsigned i = 0, k = 0; i < 3; i++) {
			if (r->repaired & (1u << i))
				printf("%s\"%s\"", k++ ? "," : "", fields[i]);
		}
		fputs("]", stdout);
		if (why)
			printf(",\"why\":%s", why);
		puts("}");
	}
	free(id);
	free(why);
}

/* Counts one row's outcome; a row the store refused is looked at again:
 * if its context_pack was what it refused, it is repaired as the seed
 * would ({}) and written alone. *rc: a store error of that write. */
static void import_outcome(struct sqlite_import *im, struct seed_row *r, int code,
			   int *rc)
{
	char why[512];
	int again;

	if (code == ATOLOG_OK) {
		im->stored++;
		im->repaired += r->repaired != 0;
		if (r->repaired)
			report_row(r, NULL);
		return;
	}
	if (code == ATOLOG_EXISTS) {
		im->existing++;
		return;
	}
	if (code != ATOLOG_INVALID && code != ATOLOG_TOOBIG)
		return; /* a store error: *rc has it */
	atolog_interaction_validate(&r->in);
	snprintf(why, sizeof(why), "%s", atolog_errmsg(NULL));
	if (!(r->repaired & REPAIR_CONTEXT) && context_repair(r) == 0 &&
	    atolog_interaction_validate(&r->in) == ATOLOG_OK) {
		r->repaired |= REPAIR_CONTEXT;
		r->refused = strdup(why); /* NULL: the line just lacks the why */
		*rc = cli_record_batch(im->store, &r->in, 1, &again);
		if (*rc == ATOLOG_OK)
			import_outcome(im, r, again, rc);
		return;
	}
	im->skipped++;
	report_row(r, why);
}

/* Stores the pending rows; a store error stops the import (its code). */
static int import_flush(struct sqlite_import *im)
{
	atolog_interaction batch[IMPORT_SQLITE_BATCH];
	int rcs[IMPORT_SQLITE_BATCH], rc = ATOLOG_OK;

	for (size_t i = 0; i < im->n; i++)
		batch[i] = im->rows[i].in;
	if (im->n)
		rc = cli_record_batch(im->store, batch, im->n, rcs);
	for (size_t i = 0; i < im->n; i++) {
		if (rc == ATOLOG_OK)
			import_outcome(im, &im->rows[i], rcs[i], &rc);
		row_free(&im->rows[i]);
	}
	im->n = 0;
	if (im->progress)
		im->progress(im->done, im->total, &im->bar);
	return rc;
}

static int import_row(struct sqlite_import *im, sqlite3_stmt *st)
{
	struct seed_row *r = &im->rows[im->n];
	const char *why;
	int rc = row_read(st, r);

	im->done++;
	if (rc != 0) {
		row_free(r);
		return rc;
	}
	why = row_interaction(r);
	if (why) {
		im->skipped++;
		report_row(r, why);
		row_free(r);
		return ATOLOG_OK;
	}
	return ++im->n == IMPORT_SQLITE_BATCH ? import_flush(im) : ATOLOG_OK;
}

/* Opens PATH read-only and prepares the read of its rows; a clear usage
 * error when it is not the seed's database. */
static int open_seed(const char *path, sqlite3 **db, sqlite3_stmt **count,
		     sqlite3_stmt **rows)
{
	int rc = sqlite3_open_v2(path, db, SQLITE_OPEN_READONLY, NULL);

	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(*db, "SELECT count(*) FROM interactions", -1,
					count, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(*db, "SELECT " SEED_COLUMNS ", rowid FROM "
					"interactions ORDER BY rowid", -1, rows, NULL);
	if (rc == SQLITE_OK)
		return 0;
	if (rc == SQLITE_NOTADB)
		fprintf(stderr, "atolog: import-sqlite: %s is not an SQLite database\n", path);
	else if (rc == SQLITE_CANTOPEN)
		fprintf(stderr, "atolog: import-sqlite: %s cannot be opened\n", path);
	else if (strstr(sqlite3_errmsg(*db), "no such table"))
		fprintf(stderr, "atolog: import-sqlite: %s has no interactions table\n",
			path);
	else
		fprintf(stderr, "atolog: import-sqlite: %s is not the seed's database: %s\n",
			path, sqlite3_errmsg(*db));
	return EXIT_USAGE;
}

static int import_rows(struct sqlite_import *im, sqlite3 *db, sqlite3_stmt *count,
		       sqlite3_stmt *rows)
{
	int rc, step;

	if (sqlite3_step(count) == SQLITE_ROW)
		im->total = (uint64_t)sqlite3_column_int64(count, 0);
	while ((step = sqlite3_step(rows)) == SQLITE_ROW) {
		rc = import_row(im, rows);
		if (rc != ATOLOG_OK)
			return rc;
	}
	rc = import_flush(im);
	if (rc == ATOLOG_OK && step != SQLITE_DONE) {
		fprintf(stderr, "atolog: import-sqlite: reading: %s\n", sqlite3_errmsg(db));
		rc = EIO;
	}
	return rc;
}

int cmd_import_sqlite(struct cli *cli, int argc, char **argv)
{
	const struct command *cmd = cli_find_command("import-sqlite");
	struct sqlite_import *im;
	sqlite3_stmt *count = NULL, *rows = NULL;
	sqlite3 *db = NULL;
	int rc;

	if (cli_wants_help(cmd, argc, argv))
		return 0;
	if (argc != 2)
		return cli_usage(cmd, "import-sqlite takes the path of the seed's database");
	rc = open_seed(argv[1], &db, &count, &rows);
	im = rc == 0 ? calloc(1, sizeof(*im)) : NULL;
	if (rc == 0 && !im)
		rc = cli_fail(ENOMEM, NULL, "import-sqlite");
	if (rc == 0)
		rc = cli_open_writer(cli, &im->store);
	if (rc == 0) {
		im->progress = cli_progress_begin(&im->bar, "import-sqlite", "rows");
		rc = import_rows(im, db, count, rows);
		cli_progress_end(&im->bar);
		rc = rc == ATOLOG_OK ? 0 : cli_fail(rc, im->store, "import-sqlite");
		printf("{\"rows\":%" PRIu64 ",\"stored\":%" PRIu64 ",\"existing\":%" PRIu64
		       ",\"skipped\":%" PRIu64 ",\"repaired\":%" PRIu64 "}\n", im->done,
		       im->stored, im->existing, im->skipped, im->repaired);
		for (size_t i = 0; i < im->n; i++)
			row_free(&im->rows[i]);
		if (atolog_store_close(im->store) != ATOLOG_OK && rc == 0)
			rc = cli_fail(ATOLOG_FAILED, NULL, "closing the store");
	}
	free(im);
	sqlite3_finalize(count);
	sqlite3_finalize(rows);
	sqlite3_close(db);
	return rc;
}
