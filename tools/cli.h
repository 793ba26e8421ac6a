/*
 * cli.h - what the atolog subcommands share: exit codes, opening the
 * store, reporting errors, reading input and printing interactions.
 *
 * Conventions: machine output (JSON Lines) goes to stdout, human messages
 * to stderr, one line per error. Exit codes: 0 ok, 1 not found, 2 usage
 * or invalid input, 3 store error.
 */
#ifndef ATOLOG_CLI_H
#define ATOLOG_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "atolog.h"

#define EXIT_OK 0
#define EXIT_NOTFOUND 1
#define EXIT_USAGE 2
#define EXIT_STORE 3

#define CLI_DEFAULT_DATA "./data"

struct cli {
	const char *data_dir;
	atolog_sync_mode sync;
	const char *prog;
};

struct command {
	const char *name;
	int (*run)(struct cli *cli, int argc, char **argv);
	const char *args;
	const char *summary;
};

/* The exit code for an atolog return code. */
int cli_exit_code(int rc);
/* The exit code for a file given on the command line that cannot be
 * opened: EXIT_USAGE for the path's fault, EXIT_STORE for the system's. */
int cli_exit_errno(int e);

/* Prints "atolog: <what>: <detail>" and returns the exit code for rc. */
int cli_fail(int rc, const atolog_store *store, const char *what);

/* Prints a usage error for cmd and returns EXIT_USAGE. */
int cli_usage(const struct command *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Opens the store for writing. */
int cli_open_writer(struct cli *cli, atolog_store **out);
/* Opens an existing store for reading: as its writer when no other process
 * is (so a crash's tail is recovered first), else read-only beside it. */
int cli_open_reader(struct cli *cli, atolog_store **out);

/* Reads all of f, up to max bytes; *out is malloc'ed and NUL-terminated. */
int cli_read_all(FILE *f, size_t max, char **out, size_t *len);

/* Prints rec as one JSON line on stdout; returns an atolog code. */
int cli_print_interaction(const atolog_interaction *rec);

/* s as a quoted, escaped JSON string (malloc'ed); invalid UTF-8 bytes
 * become '?'. Returns 0 or ENOMEM. */
int cli_json_quote(const char *s, char **out);

/* "always", "batch" or "none"; false otherwise. */
bool cli_parse_sync(const char *s, atolog_sync_mode *out);

/* Parses a decimal long in [min, max]; false otherwise. */
bool cli_parse_long(const char *s, long min, long max, long *out);

/* Progress of a long command on a terminal: "atolog: LABEL: 42% 310 MB/s
 * ETA 0:12" on stderr, redrawn in place at most every
 * CLI_PROGRESS_REDRAW_MS. cli_progress_begin returns the callback to pass
 * (with p as its ctx), or NULL when stderr is not a terminal, so that
 * piped runs stay quiet; cli_progress_end clears the line. unit is what
 * done and total count: "MB" for bytes, or e.g. "rows". A total of 0
 * means none is known: the line then says how far and how fast. */
#define CLI_PROGRESS_REDRAW_MS 100

struct cli_progress {
	const char *label;
	const char *unit;
	int64_t start_us, drawn_us;
	bool active;
};

atolog_progress_fn cli_progress_begin(struct cli_progress *p, const char *label,
				      const char *unit);
void cli_progress(uint64_t done, uint64_t total, void *p);
void cli_progress_end(struct cli_progress *p);

/* A compaction report as one JSON object and a newline (cmd_compact.c;
 * the server's POST /admin/compact answers the same). */
void cli_print_compact_report(FILE *f, const atolog_compact_report *r);

/* Stores a batch (atolog_interaction_record_batch) and sets every rcs[i]
 * (to the batch's code where it wrote none). Returns the first code that
 * is a store error rather than an item's own outcome (stored, EXISTS,
 * INVALID, TOOBIG), or ATOLOG_OK: a full disk is never taken for a
 * duplicate. */
int cli_record_batch(atolog_store *store, const atolog_interaction *batch, size_t n,
		     int *rcs);

/* True (after printing the command's usage on stdout) when argv asks for
 * --help or -h. */
bool cli_wants_help(const struct command *cmd, int argc, char **argv);

/* The filters of a query command (list, export, follow), parsed. */
#define CLI_QUERY_LIST 0x0   /* limit 50 by default, capped at 500 */
#define CLI_QUERY_EXPORT 0x1 /* --until, --format; no limit; oldest first */
#define CLI_QUERY_FOLLOW 0x2 /* --from-seq; --limit ends it; oldest first */

struct cli_query {
	atolog_query q;
	bool csv;          /* --format csv */
	bool has_from_seq; /* --from-seq N */
	uint64_t from_seq;
};

int cli_parse_query(const struct command *cmd, int argc, char **argv,
		    unsigned kind, struct cli_query *out);

/* The time now, microseconds since 1970, UTC. */
int64_t cli_now_us(void);

/* Parses a duration: a positive number and a unit, s m h d w (90d);
 * *out_us in microseconds. */
bool cli_parse_duration(const char *s, int64_t *out_us);

/* The command table, for dispatch and help (tools/main.c). */
extern const struct command cli_commands[];

int cmd_record(struct cli *cli, int argc, char **argv);
int cmd_get(struct cli *cli, int argc, char **argv);
int cmd_list(struct cli *cli, int argc, char **argv);
int cmd_replay(struct cli *cli, int argc, char **argv);
int cmd_project(struct cli *cli, int argc, char **argv);
int cmd_stats(struct cli *cli, int argc, char **argv);
int cmd_serve(struct cli *cli, int argc, char **argv);
int cmd_verify(struct cli *cli, int argc, char **argv);
int cmd_snapshot(struct cli *cli, int argc, char **argv);
int cmd_compact(struct cli *cli, int argc, char **argv);
int cmd_export(struct cli *cli, int argc, char **argv);
int cmd_import(struct cli *cli, int argc, char **argv);
int cmd_import_sqlite(struct cli *cli, int argc, char **argv);
int cmd_follow(struct cli *cli, int argc, char **argv);
int cmd_reindex(struct cli *cli, int argc, char **argv);

#define CLI_FOLLOW_POLL_MS 100 /* follow looks for new records this often */
int cmd_tour(struct cli *cli, int argc, char **argv);

const struct command *cli_find_command(const char *name);

#endif
