/*
 * cmd_serve.c - `atolog serve`: options into a server_config, then the
 * HTTP server (tools/server/) runs until SIGTERM or SIGINT.
 */
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>

#include "cli.h"
#include "server.h"

static int serve_usage_number(const struct command *cmd, const char *opt,
			      long min, long max)
{
	return cli_usage(cmd, "%s wants an integer from %ld to %ld", opt, min, max);
}

int cmd_serve(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "data", required_argument, NULL, 'd' },
		{ "sync", required_argument, NULL, 's' },
		{ "listen", required_argument, NULL, 'l' },
		{ "threads", required_argument, NULL, 't' },
		{ "writers", required_argument, NULL, 'w' },
		{ "token-file", required_argument, NULL, 'k' },
		{ "max-body", required_argument, NULL, 'b' },
		{ "timeout", required_argument, NULL, 'o' },
		{ "max-connections", required_argument, NULL, 'c' },
		{ "backup-dir", required_argument, NULL, 'u' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const struct command *cmd = cli_find_command("serve");
	struct server_config cfg = {
		.data_dir = cli->data_dir,
		.sync = cli->sync,
		.listen = SERVE_LISTEN_DEFAULT,
		.threads = SERVE_THREADS_DEFAULT,
		.writers = SERVE_WRITERS_DEFAULT,
		.max_body = SERVE_MAX_BODY_DEFAULT,
		.timeout_s = SERVE_TIMEOUT_S_DEFAULT,
		.max_connections = SERVE_CONNECTIONS_DEFAULT,
	};
	char backup_dir[4096];
	long v;
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd': /* also accepted after the command, as the issue writes it */
			cfg.data_dir = optarg;
			break;
		case 's':
			if (!cli_parse_sync(optarg, &cfg.sync))
				return cli_usage(cmd, "unknown sync mode \"%s\"", optarg);
			break;
		case 'l':
			cfg.listen = optarg;
			break;
		case 'w':
			if (!cli_parse_long(optarg, 1, SERVE_WRITERS_MAX, &v))
				return serve_usage_number(cmd, "--writers", 1, SERVE_WRITERS_MAX);
			cfg.writers = (unsigned)v;
			break;
		case 'u':
			cfg.backup_dir = optarg;
			break;
		case 'k':
			cfg.token_file = optarg;
			break;
		case 't':
			if (!cli_parse_long(optarg, 1, SERVE_THREADS_MAX, &v))
				return serve_usage_number(cmd, "--threads", 1, SERVE_THREADS_MAX);
			cfg.threads = (unsigned)v;
			break;
		case 'b':
			/* A body is one JSON document: the codec's limit caps it. */
			if (!cli_parse_long(optarg, 1, ATOLOG_JSON_MAX_BYTES, &v))
				return serve_usage_number(cmd, "--max-body", 1,
							  ATOLOG_JSON_MAX_BYTES);
			cfg.max_body = (size_t)v;
			break;
		case 'o':
			if (!cli_parse_long(optarg, 1, 86400, &v))
				return serve_usage_number(cmd, "--timeout", 1, 86400);
			cfg.timeout_s = (unsigned)v;
			break;
		case 'c':
			if (!cli_parse_long(optarg, 1, 65536, &v))
				return serve_usage_number(cmd, "--max-connections", 1, 65536);
			cfg.max_connections = (unsigned)v;
			break;
		case 'h':
			printf("usage: atolog serve %s\n(--data DIR and --sync MODE may also "
			       "come before serve)\n%s\n", cmd->args, cmd->summary);
			return 0;
		default:
			return cli_usage(cmd, "unknown option %s", argv[optind - 1]);
		}
	}
	if (optind != argc)
		return cli_usage(cmd, "unexpected argument \"%s\"", argv[optind]);
	/* Beside the store unless told: DATA.snapshots. */
	if (!cfg.backup_dir) {
		if (snprintf(backup_dir, sizeof(backup_dir), "%s%s", cfg.data_dir,
			     SERVE_BACKUP_SUFFIX) >= (int)sizeof(backup_dir))
			return cli_usage(cmd, "--data is too long");
		cfg.backup_dir = backup_dir;
	}
	return server_run(&cfg);
}
