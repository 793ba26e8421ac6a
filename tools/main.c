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

#include "cli.h"

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
