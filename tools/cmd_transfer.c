/*
 * cmd_transfer.c - `atolog export [filters] [--until T] [--format jsonl|csv]`
 * and `atolog import [FILE.jsonl | -]`: interactions out to files that can
 * be piped, and back in.
 *
 * Export streams oldest first (created_at, then seq), one interaction at a
 * time, so its memory does not grow with the store. JSON Lines are what
 * `list` prints, then one {"registry": ...} line per registered project
 * (so that aliases resolve the same after an import), and what import
 * reads back: ids and created_at_iso are
 * kept, so export then import into an empty store gives the same list and
 * replay. CSV has the same fields, one quoted cell each (RFC 4180), the
 * JSON-valued ones as JSON text.
 *
 * Import stores IMPORT_BATCH lines per commit. An id the store holds
 * already is skipped, so a second import of a file adds nothing. A line
 * that is not a valid interaction is reported (its number and why) and
 * skipped; the summary counts it, and the exit status is then 2.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <yajl/yajl_tree.h>

#include "cli.h"

#define IMPORT_BATCH 1000 /* lines per commit */

/* ------------------------------------------------------------------------
 * Export.
 */

static void csv_cell(const char *s, bool last)
{
	putchar('"');
	for (const char *p = s ? s : ""; *p; p++) {
		if (*p == '"')
			putchar('"');
		putchar(*p);
	}
	fputs(last ? "\"\r\n" : "\",", stdout);
}

/* A list of strings as JSON text, in a cell. */
static int csv_list(const char *const *items, size_t n)
{
	char *text = NULL, *q;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (!f)
		return ENOMEM;
	fputc('[', f);
	for (size_t i = 0; i < n; i++) {
		if (cli_json_quote(items[i], &q) != 0) {
			fclose(f);
			free(text);
			return ENOMEM;
		}
		fprintf(f, "%s%s", i ? "," : "", q);
		free(q);
	}
	fputc(']', f);
	fclose(f);
	csv_cell(text, false);
	free(text);
	return 0;
}

static const char csv_header[] =
	"id,prompt,response,response_summary,project,client,session_id,"
	"memories_used,chunks_used,context_pack,created_at,created_at_iso,seq\r\n";

static int csv_row(const atolog_interaction *r)
{
	char seed[ATOLOG_TIME_SEED_LEN], iso[ATOLOG_TIME_ISO_LEN], seq[24];
	int rc;

	csv_cell(r->id, false);
	csv_cell(r->prompt, false);
	csv_cell(r->response, false);
	csv_cell(r->response_summary, false);
	csv_cell(r->project, false);
	csv_cell(r->client, false);
	csv_cell(r->session_id, false);
	rc = csv_list(r->memories_used, r->n_memories_used);
	if (rc == 0)
		rc = csv_list(r->chunks_used, r->n_chunks_used);
	if (rc != 0)
		return rc;
	csv_cell(r->context_pack, false);
	atolog_time_format_seed(r->created_at, seed);
	atolog_time_format_iso(r->created_at, iso);
	snprintf(seq, sizeof(seq), "%" PRIu64, r->seq);
	csv_cell(seed, false);
	csv_cell(iso, false);
	csv_cell(seq, true);
	return ferror(stdout) ? EIO : 0;
}

/* One line per registered project, after the interactions, so that an
 * import resolves aliases as the source does from then on:
 * {"registry":{"name":N,"aliases":[A,...]}}. Quoted first and printed
 * whole, or not at all: an export that fails never ends in a torn line. */
static int print_registration(const atolog_project *p, void *ctx)
{
	char *name = NULL, **aliases = calloc(p->n_aliases + 1, sizeof(*aliases));
	int rc = aliases ? cli_json_quote(p->name, &name) : ENOMEM;

	(void)ctx;
	for (size_t i = 0; rc == 0 && i < p->n_aliases; i++)
		rc = cli_json_quote(p->aliases[i], &aliases[i]);
	if (rc == 0) {
		printf("{\"registry\":{\"name\":%s,\"aliases\":[", name);
		for (size_t i = 0; i < p->n_aliases; i++)
			printf("%s%s", i ? "," : "", aliases[i]);
		puts("]}}");
	}
	free(name);
	for (size_t i = 0; aliases && i < p->n_aliases; i++)
		free(aliases[i]);
	free(aliases);
	return rc;
}

int cmd_export(struct cli *cli, int argc, char **argv)
{
	const struct command *cmd = cli_find_command("export");
	struct cli_query cq;
	const atolog_interaction *rec;
	struct cli_progress bar;
	atolog_progress_fn progress = cli_progress_begin(&bar, "export", "rows");
	atolog_store *store;
	atolog_iter *it;
	uint64_t n = 0, total = 0;
	atolog_stats st;
	int rc;

	if (cli_wants_help(cmd, argc, argv))
		return 0;
	rc = cli_parse_query(cmd, argc, argv, CLI_QUERY_EXPORT, &cq);
	if (rc != 0)
		return rc;
	rc = cli_open_reader(cli, &store);
	if (rc != 0)
		return rc;
	rc = atolog_list_open(store, &cq.q, &it);
	if (rc != ATOLOG_OK) {
		rc = cli_fail(rc, store, "export");
		atolog_store_close(store);
		return rc;
	}
	/* Without filters the end is known: everything. */
	if (progress && !cq.q.project && !cq.q.session_id && !cq.q.client &&
	    !cq.q.since && !cq.q.until && atolog_store_stats(store, &st) == ATOLOG_OK)
		total = st.n_records;
	if (cq.csv)
		fputs(csv_header, stdout);
	while ((rc = atolog_iter_next(it, &rec)) == ATOLOG_OK) {
		rc = cq.csv ? csv_row(rec) : cli_print_interaction(rec);
		if (rc != 0)
			break;
		if (progress)
			progress(++n, total, &bar);
	}
	/* After them: a record stored under a name before it became an alias
	 * keeps that name when imported, as it did here. */
	if (rc == ATOLOG_DONE && !cq.csv &&
	    (rc = atolog_project_foreach(store, print_registration, NULL)) == ATOLOG_OK)
		rc = ferror(stdout) ? EIO : ATOLOG_DONE;
	cli_progress_end(&bar);
	atolog_iter_close(it);
	rc = rc == ATOLOG_DONE ? 0 : cli_fail(rc, store, "export");
	atolog_store_close(store);
	return rc;
}

/* ------------------------------------------------------------------------
 * Import.
 */

struct import {
	atolog_store *store;
	struct cli_progress bar;
	atolog_progress_fn progress;
	uint64_t size;  /* of the file (0: a pipe) */
	uint64_t bytes; /* read so far */
	atolog_interaction *items[IMPORT_BATCH];
	long lines[IMPORT_BATCH]; /* where each came from */
	size_t n;
	uint64_t read, stored, existing, refused, projects;
	const char *source;
};

static void import_refuse(struct import *im, long line, const char *why)
{
	im->refused++;
	fprintf(stderr, "atolog: import: %s line %ld: %s\n", im->source, line, why);
}

/* Stores what is pending; a store error stops the import (its code). */
static int import_flush(struct import *im)
{
	atolog_interaction batch[IMPORT_BATCH];
	int rcs[IMPORT_BATCH], rc;

	if (im->n == 0)
		return ATOLOG_OK;
	for (size_t i = 0; i < im->n; i++)
		batch[i] = *im->items[i];
	rc = cli_record_batch(im->store, batch, im->n, rcs);
	for (size_t i = 0; i < im->n; i++) {
		if (rcs[i] == ATOLOG_OK)
			im->stored++;
		else if (rcs[i] == ATOLOG_EXISTS)
			im->existing++;
		else if (rcs[i] == ATOLOG_INVALID || rcs[i] == ATOLOG_TOOBIG)
			import_refuse(im, im->lines[i], atolog_strerror(rcs[i]));
		atolog_interaction_free(im->items[i]);
	}
	im->n = 0;
	return rc;
}

#define REGISTRY_PREFIX "{\"registry\":"

/* A registration line of an export: the project added (or there already,
 * with its aliases). Pending interactions go first: order is kept, so a
 * record stored under a name before it became an alias keeps it. */
static int import_registration(struct import *im, const char *line, long number)
{
	const char *name_path[] = { "registry", "name", NULL };
	const char *aliases_path[] = { "registry", "aliases", NULL };
	yajl_val v = yajl_tree_parse(line, NULL, 0), name, aliases;
	const char *list[ATOLOG_ALIASES_MAX];
	size_t n = 0;
	int rc = import_flush(im);

	name = yajl_tree_get(v, name_path, yajl_t_string);
	aliases = yajl_tree_get(v, aliases_path, yajl_t_array);
	if (rc == ATOLOG_OK && (!name || !aliases ||
				aliases->u.array.len > ATOLOG_ALIASES_MAX)) {
		import_refuse(im, number, "a registry line needs a name and aliases");
	} else if (rc == ATOLOG_OK) {
		for (size_t i = 0; i < aliases->u.array.len; i++) {
			if (YAJL_IS_STRING(aliases->u.array.values[i]))
				list[n++] = aliases->u.array.values[i]->u.string;
		}
		rc = atolog_project_add(im->store, name->u.string, list, n);
		if (rc == ATOLOG_OK)
			im->projects++;
		else if (rc == ATOLOG_EXISTS || rc == ATOLOG_INVALID || rc == ATOLOG_TOOBIG)
			import_refuse(im, number, atolog_errmsg(im->store));
		rc = rc == ATOLOG_EXISTS || rc == ATOLOG_INVALID || rc == ATOLOG_TOOBIG
			     ? ATOLOG_OK : rc;
	}
	yajl_tree_free(v);
	return rc;
}

static int import_line(struct import *im, char *line, size_t len, long number)
{
	atolog_interaction *rec;
	int rc;

	while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		line[--len] = '\0';
	if (len == 0)
		return ATOLOG_OK; /* blank lines are no records */
	if (strncmp(line, REGISTRY_PREFIX, strlen(REGISTRY_PREFIX)) == 0)
		return import_registration(im, line, number);
	im->read++;
	rc = atolog_interaction_from_json(line, len, &rec);
	if (rc == ATOLOG_INVALID || rc == ATOLOG_TOOBIG) {
		import_refuse(im, number, atolog_errmsg(NULL));
		return ATOLOG_OK;
	}
	if (rc != ATOLOG_OK) /* ENOMEM: not the line's fault; the import stops */
		return rc;
	im->items[im->n] = rec;
	im->lines[im->n++] = number;
	return im->n == IMPORT_BATCH ? import_flush(im) : ATOLOG_OK;
}

static int import_stream(struct import *im, FILE *in)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	long number = 0;
	int rc = ATOLOG_OK;

	while (rc == ATOLOG_OK && (errno = 0, len = getline(&line, &cap, in)) >= 0) {
		number++;
		if ((size_t)len > ATOLOG_JSON_MAX_BYTES) {
			im->read++;
			import_refuse(im, number, "the line is over the JSON size limit");
		} else
			rc = import_line(im, line, (size_t)len, number);
		im->bytes += (uint64_t)len;
		if (im->progress && (number & 1023) == 0)
			im->progress(im->bytes, im->size, &im->bar);
	}
	/* getline's -1 is the end only at the end: ENOMEM (which sets no
	 * error flag) or a read error must not pass for a complete import. */
	if (rc == ATOLOG_OK && !feof(in))
		rc = ferror(in) || errno == 0 ? EIO : errno;
	if (rc == ATOLOG_OK)
		rc = import_flush(im);
	for (size_t i = 0; i < im->n; i++)
		atolog_interaction_free(im->items[i]);
	free(line);
	return rc;
}

int cmd_import(struct cli *cli, int argc, char **argv)
{
	const struct command *cmd = cli_find_command("import");
	struct import im = { .source = "stdin" };
	FILE *in = stdin;
	int rc;

	if (cli_wants_help(cmd, argc, argv))
		return 0;
	if (argc > 2)
		return cli_usage(cmd, "import takes one file (or - for stdin)");
	if (argc == 2 && strcmp(argv[1], "-") != 0) {
		im.source = argv[1];
		in = fopen(argv[1], "re");
		if (!in) {
			int e = errno;

			fprintf(stderr, "atolog: import: %s: %s\n", argv[1], strerror(e));
			return cli_exit_errno(e);
		}
	}
	rc = cli_open_writer(cli, &im.store);
	if (rc == 0) {
		struct stat st;

		if (fstat(fileno(in), &st) == 0 && S_ISREG(st.st_mode))
			im.size = (uint64_t)st.st_size;
		im.progress = cli_progress_begin(&im.bar, "import", "MB");
		rc = import_stream(&im, in);
		cli_progress_end(&im.bar);
		rc = rc == ATOLOG_OK ? 0 : cli_fail(rc, im.store, "import");
		printf("{\"read\":%" PRIu64 ",\"stored\":%" PRIu64 ",\"existing\":%" PRIu64
		       ",\"refused\":%" PRIu64 ",\"projects\":%" PRIu64 "}\n", im.read,
		       im.stored, im.existing, im.refused, im.projects);
		if (atolog_store_close(im.store) != ATOLOG_OK && rc == 0)
			rc = cli_fail(ATOLOG_FAILED, NULL, "closing the store");
	}
	if (in != stdin)
		fclose(in);
	return rc ? rc : im.refused ? EXIT_USAGE : 0;
}
