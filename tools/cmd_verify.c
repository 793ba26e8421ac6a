/*
 * cmd_verify.c - `atolog verify`: every checksum, and the index against
 * the log, on a store that may be live (a read-only open beside its
 * writer; nothing is changed). One JSON line sums it up; the exit status
 * is 0 when nothing is wrong and 3 when anything is. And `atolog reindex`:
 * the index emptied and rebuilt from the log, which needs the writer lock.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char *pending_name(int pending);

static void print_report(const atolog_verify_report *r)
{
	char *problem = NULL;

	printf("{\"segments\":%" PRIu64 ",\"frames\":%" PRIu64 ",\"bytes\":%" PRIu64
	       ",\"records\":%" PRIu64 ",\"index_entries\":%" PRIu64
	       ",\"unindexed_frames\":%" PRIu64 ",\"problems\":%" PRIu64,
	       r->segments, r->frames, r->bytes, r->records, r->index_entries,
	       r->unindexed_frames, r->problems);
	if (r->problems && cli_json_quote(r->first_problem, &problem) == 0)
		printf(",\"first_problem\":%s", problem);
	if (r->pending_compaction != ATOLOG_PENDING_NONE)
		printf(",\"pending_compaction\":\"%s\",\"set_aside\":%" PRIu64,
		       pending_name(r->pending_compaction), r->set_aside);
	puts("}");
	free(problem);
}

/* What the next writer open does with an interrupted compaction. */
static const char *pending_name(int pending)
{
	switch (pending) {
	case ATOLOG_PENDING_UNDO:
		return "undo";
	case ATOLOG_PENDING_RETIRE:
		return "retire";
	default:
		return "reindex";
	}
}

static const char *pending_says(int pending)
{
	switch (pending) {
	case ATOLOG_PENDING_UNDO:
		return "it never committed, and the next writer open removes its "
		       "new segments";
	case ATOLOG_PENDING_RETIRE:
		return "it committed, and the next writer open deletes the old "
		       "segments it replaced";
	default:
		return "it committed before its index swap, and the next writer "
		       "open deletes the old segments and rebuilds the index";
	}
}

int cmd_verify(struct cli *cli, int argc, char **argv)
{
	const struct command *cmd = cli_find_command("verify");
	atolog_options opts = { .flags = ATOLOG_OPEN_READONLY };
	atolog_verify_report report;
	struct cli_progress bar;
	atolog_store *store;
	int rc;

	if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		printf("usage: atolog verify\n%s\n", cmd->summary);
		return 0;
	}
	if (argc != 1)
		return cli_usage(cmd, "verify takes no arguments");
	rc = atolog_store_open(cli->data_dir, &opts, &store);
	if (rc != ATOLOG_OK)
		return cli_fail(rc, NULL, cli->data_dir);
	rc = atolog_store_verify(store, cli_progress_begin(&bar, "verify", "MB"), &bar,
				 &report);
	cli_progress_end(&bar);
	if (rc == ATOLOG_OK || rc == ATOLOG_CORRUPT)
		print_report(&report);
	if (rc == ATOLOG_OK)
		fprintf(stderr, "atolog: verify: %" PRIu64 " frames in %" PRIu64
			" segments, %" PRIu64 " interactions: all intact and indexed\n",
			report.frames, report.segments, report.records);
	if ((rc == ATOLOG_OK || rc == ATOLOG_CORRUPT) &&
	    report.pending_compaction != ATOLOG_PENDING_NONE)
		fprintf(stderr, "atolog: verify: an interrupted compaction waits "
			"(%" PRIu64 " segments set aside): %s\n", report.set_aside,
			pending_says(report.pending_compaction));
	rc = rc == ATOLOG_OK ? 0 : cli_fail(rc, store, "verify");
	atolog_store_close(store);
	/* Any problem is a store error, invalid input or not. */
	return rc ? EXIT_STORE : 0;
}

int cmd_reindex(struct cli *cli, int argc, char **argv)
{
	const struct command *cmd = cli_find_command("reindex");
	struct cli_progress bar;
	atolog_options opts = { .flags = ATOLOG_OPEN_REBUILD_INDEX, .sync = cli->sync };
	atolog_store *store;
	atolog_stats st;
	int rc;

	if (cli_wants_help(cmd, argc, argv))
		return 0;
	if (argc != 1)
		return cli_usage(cmd, "reindex takes no arguments");
	opts.progress = cli_progress_begin(&bar, "reindex", "MB");
	opts.progress_ctx = &bar;
	rc = atolog_store_open(cli->data_dir, &opts, &store);
	cli_progress_end(&bar);
	if (rc != ATOLOG_OK)
		return cli_fail(rc, NULL, cli->data_dir);
	rc = atolog_store_stats(store, &st);
	if (rc == ATOLOG_OK)
		printf("{\"records\":%" PRIu64 ",\"frames\":%" PRIu64 ",\"segments\":%" PRIu64
		       ",\"index_bytes\":%" PRIu64 "}\n", st.n_records, st.recovered_frames,
		       st.n_segments, st.index_bytes);
	rc = rc == ATOLOG_OK ? 0 : cli_fail(rc, store, "reindex");
	if (atolog_store_close(store) != ATOLOG_OK && rc == 0)
		rc = cli_fail(ATOLOG_FAILED, NULL, "closing the store");
	return rc;
}
