/*
 * main.c - the atolog command line: global options, then one subcommand.
 *
 *   atolog [--data DIR] [--sync always|batch|none] COMMAND [ARGS...]
 *
 * Each subcommand is a thin program over include/atolog.h (tools/cmd_*.c).
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

const struct command cli_commands[] = {
	{ "record", cmd_record, "< interaction.json",
	  "store one interaction read as a JSON object from stdin" },
	{ "get", cmd_get, "ID", "print one interaction" },
	{ "list", cmd_list,
	  "[--project P] [--session S] [--client C] [--since T] [--limit N]",
	  "interactions matching every filter, newest first" },
	{ "replay", cmd_replay, "SESSION", "a whole session, oldest first" },
	{ "project", cmd_project, "add NAME [--alias A]... | list",
	  "the project registry" },
	{ "stats", cmd_stats, "[--json]",
	  "records, sizes, segments, time range, counts by project and client" },
	{ "follow", cmd_follow,
	  "[--project P] [--session S] [--client C] [--since T | --from-seq N] [--limit N]",
	  "new interactions as they are committed, in seq order, like tail -f" },
	{ "verify", cmd_verify, "",
	  "check every frame's checksum and the index against the log (live store)" },
	{ "reindex", cmd_reindex, "",
	  "empty the index and rebuild it from the log (needs the writer lock)" },
	{ "snapshot", cmd_snapshot,
	  "create DEST | list DIR | verify SNAP | restore SNAP DATA_DIR [--force] | "
	  "cleanup DIR [--keep-last N] [--keep-daily D] [--keep-weekly W] [--apply]",
	  "consistent online copies of the store, and putting one back" },
	{ "compact", cmd_compact,
	  "[--older-than DURATION | --before T] [--project P] [--small BYTES] [--apply]",
	  "merge small sealed segments and remove old records (dry run unless --apply)" },
	{ "export", cmd_export,
	  "[--project P] [--session S] [--client C] [--since T] [--until T] "
	  "[--limit N] [--format jsonl|csv]",
	  "every matching interaction, oldest first, streamed (import reads it back)" },
	{ "import", cmd_import, "[FILE.jsonl | -]",
	  "store interactions from JSON Lines (ids kept; those present are skipped)" },
	{ "import-sqlite", cmd_import_sqlite, "PATH",
	  "move the seed service's SQLite database in (ids and times kept; rerun adds nothing)" },
	{ "serve", cmd_serve,
	  "[--listen HOST:PORT] [--threads N] [--writers N] [--token-file F] "
	  "[--max-body BYTES] "
	  "[--timeout S] [--max-connections N] [--backup-dir DIR]",
	  "the HTTP capture server (the seed's routes) on this store" },
	{ "tour", cmd_tour, "[--agents N] [--records N]",
	  "capture synthetic interactions from concurrent agents, then query them" },
	{ NULL, NULL, NULL, NULL },
};

const struct command *cli_find_command(const char *name)
{
	for (const struct command *c = cli_commands; c->name; c++) {
		if (strcmp(c->name, name) == 0)
			return c;
	}
	return NULL;
}

static void usage(FILE *out)
{
	fprintf(out, "usage: atolog [--data DIR] [--sync always|batch|none] COMMAND [ARGS]\n\n"
		     "  --data DIR    the store directory (default %s)\n"
		     "  --sync MODE   always: acknowledge after fdatasync (default);\n"
		     "                batch: after an fdatasync shared by a few ms of writes;\n"
		     "                none: after write(2), survives a process crash only\n\n"
		     "commands:\n", CLI_DEFAULT_DATA);
	for (const struct command *c = cli_commands; c->name; c++)
		fprintf(out, "  %-8s %s\n", c->name, c->summary);
	fprintf(out, "\nexit: 0 ok, 1 not found, 2 usage or invalid input, "
		     "3 store error\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "data", required_argument, NULL, 'd' },
		{ "sync", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct cli cli = { .data_dir = CLI_DEFAULT_DATA, .sync = ATOLOG_SYNC_ALWAYS,
			   .prog = argv[0] };
	const struct command *cmd;
	int c;

	/* A write past a file size limit is EFBIG, a full disk the commands
	 * report (exit 3), not a signal that kills them mid-write. */
	signal(SIGXFSZ, SIG_IGN);

	opterr = 0; /* every message starts "atolog: ", whatever argv[0] is */
	while ((c = getopt_long(argc, argv, "+:d:h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			cli.data_dir = optarg;
			break;
		case 's':
			if (!cli_parse_sync(optarg, &cli.sync)) {
				fprintf(stderr, "atolog: unknown sync mode \"%s\"\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			fprintf(stderr, "atolog: %s option %s\n",
				c == ':' ? "missing argument to" : "unknown",
				argv[optind - 1]);
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	cmd = cli_find_command(argv[optind]);
	if (!cmd) {
		fprintf(stderr, "atolog: unknown command \"%s\"\n", argv[optind]);
		usage(stderr);
		return EXIT_USAGE;
	}
	argc -= optind;
	argv += optind;
	optind = 0; /* reset getopt for the subcommand */
	return cmd->run(&cli, argc, argv);
}
