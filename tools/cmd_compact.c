/*
 * cmd_compact.c - `atolog compact [--older-than DURATION] [--before T]
 * [--project P] [--small BYTES] [--apply]`: merges small sealed segments
 * and applies retention (atolog_store_compact). A dry run unless --apply:
 * it prints what would be removed and reclaimed, and changes nothing.
 *
 * It needs the store's writer: a store a server holds is compacted
 * through the server (POST /admin/compact).
 */
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void print_projects(FILE *f, const atolog_compact_report *r)
{
	fputs(",\"projects\":[", f);
	for (size_t i = 0; i < r->n_projects; i++) {
		char *q = NULL;

		if (cli_json_quote(r->projects[i].project, &q) != 0)
			break;
		fprintf(f, "%s{\"project\":%s,\"records\":%" PRIu64 ",\"bytes\":%" PRIu64 "}",
			i ? "," : "", q, r->projects[i].records, r->projects[i].bytes);
		free(q);
	}
	fputs("]", f);
}

void cli_print_compact_report(FILE *f, const atolog_compact_report *r)
{
	uint64_t reclaimed = r->bytes_in > r->bytes_out ? r->bytes_in - r->bytes_out : 0;

	fprintf(f, "{\"applied\":%s,\"records_removed\":%" PRIu64
		",\"bytes_removed\":%" PRIu64 ",\"records_moved\":%" PRIu64
		",\"segments_in\":%" PRIu64 ",\"segments_out\":%" PRIu64
		",\"bytes_in\":%" PRIu64 ",\"bytes_out\":%" PRIu64
		",\"bytes_reclaimed\":%" PRIu64 ",\"segments_waiting\":%" PRIu64
		",\"pause_us\":%" PRIu64,
		r->applied ? "true" : "false", r->records_removed, r->bytes_removed,
		r->records_moved, r->segments_in, r->segments_out, r->bytes_in,
		r->bytes_out, reclaimed, r->segments_waiting, r->pause_us);
	print_projects(f, r);
	fputs("}\n", f);
}

static void say_summary(const atolog_compact_report *r)
{
	if (!r->applied) {
		fprintf(stderr, "atolog: compact: dry run: would remove %" PRIu64
			" interactions (%" PRIu64 " bytes) and rewrite %" PRIu64
			" segments (%" PRIu64 " bytes); --apply does it\n",
			r->records_removed, r->bytes_removed, r->segments_in, r->bytes_in);
		return;
	}
	fprintf(stderr, "atolog: compact: removed %" PRIu64 " interactions, moved %"
		PRIu64 "; %" PRIu64 " segments (%" PRIu64 " bytes) became %" PRIu64
		" (%" PRIu64 " bytes)\n", r->records_removed, r->records_moved,
		r->segments_in, r->bytes_in, r->segments_out, r->bytes_out);
	if (r->segments_waiting)
		fprintf(stderr, "atolog: compact: %" PRIu64 " old segments are still "
			"open in a reader; they are deleted once closed (by a later "
			"compact or open)\n", r->segments_waiting);
}

static int parse_args(const struct command *cmd, int argc, char **argv,
		      atolog_compact_options *o, bool *help)
{
	static const struct option longs[] = {
		{ "older-than", required_argument, NULL, 'o' },
		{ "before", required_argument, NULL, 'b' },
		{ "project", required_argument, NULL, 'p' },
		{ "small", required_argument, NULL, 's' },
		{ "apply", no_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int64_t age;
	long small;
	int c;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longs, NULL)) != -1) {
		switch (c) {
		case 'o':
			if (!cli_parse_duration(optarg, &age))
				return cli_usage(cmd, "--older-than wants a duration "
						 "such as 90d, 12h or 2w, not '%s'", optarg);
			if ((o->flags & ATOLOG_COMPACT_BEFORE))
				return cli_usage(cmd, "--older-than and --before "
						 "say the same thing: give one");
			o->flags |= ATOLOG_COMPACT_BEFORE;
			o->before = cli_now_us() - age;
			break;
		case 'b':
			if ((o->flags & ATOLOG_COMPACT_BEFORE))
				return cli_usage(cmd, "--older-than and --before "
						 "say the same thing: give one");
			if (atolog_time_parse(optarg, &o->before) != ATOLOG_OK)
				return cli_usage(cmd, "--before wants an ISO-8601 time, "
						 "not '%s'", optarg);
			o->flags |= ATOLOG_COMPACT_BEFORE;
			break;
		case 'p':
			o->flags |= ATOLOG_COMPACT_PROJECT;
			o->project = optarg;
			break;
		case 's':
			if (!cli_parse_long(optarg, 1, LONG_MAX, &small))
				return cli_usage(cmd, "--small wants a size in bytes");
			o->small_bytes = (uint64_t)small;
			break;
		case 'a':
			o->flags |= ATOLOG_COMPACT_APPLY;
			break;
		case 'h':
			*help = true;
			return 0;
		default:
			return cli_usage(cmd, "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind != argc)
		return cli_usage(cmd, "compact takes options only");
	return 0;
}

int cmd_compact(struct cli *cli, int argc, char **argv)
{
	const struct command *cmd = cli_find_command("compact");
	struct cli_progress bar;
	atolog_compact_options o = { .progress = cli_progress_begin(&bar, "compact", "MB"),
				     .progress_ctx = &bar };
	atolog_compact_report report;
	atolog_store *store;
	bool help = false;
	int rc = parse_args(cmd, argc, argv, &o, &help);

	if (rc != 0 || help) {
		if (help)
			printf("usage: atolog compact %s\n%s\n", cmd->args, cmd->summary);
		return rc;
	}
	rc = cli_open_writer(cli, &store);
	if (rc != 0)
		return rc;
	rc = atolog_store_compact(store, &o, &report);
	cli_progress_end(&bar);
	if (rc != ATOLOG_OK) {
		rc = cli_fail(rc, store, "compact");
		atolog_store_close(store);
		return rc;
	}
	cli_print_compact_report(stdout, &report);
	say_summary(&report);
	atolog_compact_report_free(&report);
	rc = atolog_store_close(store);
	return rc == ATOLOG_OK ? 0 : cli_fail(rc, NULL, "closing the store");
}
