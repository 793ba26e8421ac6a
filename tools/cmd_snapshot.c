/*
 * cmd_snapshot.c - `atolog snapshot create DEST | list DIR | verify SNAP |
 * restore SNAP DATA_DIR [--force]`: consistent online copies of a store
 * (atolog_store_snapshot), what is in a directory of them, whether one is
 * intact, and putting one back. Each prints JSON lines; long ones show
 * progress on a terminal.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <getopt.h>
#include <limits.h>

#include "cli.h"
#include "retention.h"

static void print_info(const char *path, const atolog_snapshot_info *i)
{
	char iso[ATOLOG_TIME_ISO_LEN], *q = NULL;

	atolog_time_format_iso(i->created_at, iso);
	if (cli_json_quote(path, &q) != 0)
		return;
	printf("{\"snapshot\":%s,\"created_at\":\"%s\",\"records\":%" PRIu64
	       ",\"last_seq\":%" PRIu64 ",\"segments\":%" PRIu64 ",\"bytes\":%" PRIu64
	       ",\"linked_segments\":%" PRIu64 "}\n",
	       q, iso, i->records, i->last_seq, i->segments, i->bytes,
	       i->linked_segments);
	free(q);
}

static int snapshot_create(struct cli *cli, const struct command *cmd, int argc,
			   char **argv)
{
	atolog_snapshot_info info;
	struct cli_progress bar;
	atolog_store *store;
	int rc;

	if (argc != 1)
		return cli_usage(cmd, "snapshot create takes one destination");
	rc = cli_open_reader(cli, &store);
	if (rc != 0)
		return rc;
	rc = atolog_store_snapshot(store, argv[0],
				   cli_progress_begin(&bar, "snapshot", "MB"), &bar, &info);
	cli_progress_end(&bar);
	if (rc == ATOLOG_OK)
		print_info(argv[0], &info);
	rc = rc == ATOLOG_OK ? 0 : cli_fail(rc, store, "snapshot create");
	atolog_store_close(store);
	return rc;
}

static int snapshot_list(const struct command *cmd, int argc, char **argv)
{
	struct retention_policy keep_all = { .keep_last = LONG_MAX };
	struct retention_plan plan;
	int rc;

	if (argc != 1)
		return cli_usage(cmd, "snapshot list takes one directory");
	rc = retention_plan(argv[0], &keep_all, &plan);
	if (rc != 0) {
		fprintf(stderr, "atolog: snapshot list: %s: %s\n", argv[0], strerror(rc));
		return EXIT_STORE;
	}
	/* Oldest first, as they were made. */
	for (size_t i = plan.n; i-- > 0;) {
		char iso[ATOLOG_TIME_ISO_LEN], *q = NULL;

		atolog_time_format_iso(plan.items[i].created_at, iso);
		if (cli_json_quote(plan.items[i].name, &q) == 0)
			printf("{\"name\":%s,\"created_at\":\"%s\"}\n", q, iso);
		free(q);
	}
	retention_free(&plan);
	return 0;
}

static int parse_cleanup(const struct command *cmd, int argc, char **argv,
			 struct retention_policy *p, bool *apply, const char **dir)
{
	static const struct option opts[] = {
		{ "keep-last", required_argument, NULL, 'l' },
		{ "keep-daily", required_argument, NULL, 'd' },
		{ "keep-weekly", required_argument, NULL, 'w' },
		{ "apply", no_argument, NULL, 'a' },
		{ NULL, 0, NULL, 0 },
	};
	/* Each count not given keeps its default (as over HTTP). */
	struct retention_policy given = { RETENTION_KEEP_LAST_DEFAULT,
					  RETENTION_KEEP_DAILY_DEFAULT,
					  RETENTION_KEEP_WEEKLY_DEFAULT };
	int c;

	optind = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		long *slot = c == 'l' ? &given.keep_last : c == 'd' ? &given.keep_daily
					 : &given.keep_weekly;

		if (c == 'a') {
			*apply = true;
		} else if (c == 'l' || c == 'd' || c == 'w') {
			if (!cli_parse_long(optarg, 0, LONG_MAX, slot))
				return cli_usage(cmd, "%s wants a count", argv[optind - 1]);
		} else {
			return cli_usage(cmd, "unknown option %s", argv[optind - 1]);
		}
	}
	if (optind != argc - 1)
		return cli_usage(cmd, "snapshot cleanup takes one directory");
	*dir = argv[optind];
	*p = given;
	return 0;
}

/* Dry run unless --apply: what it keeps and why, what it would delete. */
static int snapshot_cleanup(const struct command *cmd, int argc, char **argv)
{
	struct retention_policy policy = { 0 };
	struct retention_plan plan;
	const char *dir = NULL;
	bool apply = false;
	size_t doomed = 0;
	int rc = parse_cleanup(cmd, argc, argv, &policy, &apply, &dir);

	if (rc != 0)
		return rc;
	rc = retention_plan(dir, &policy, &plan);
	if (rc == 0 && apply)
		rc = retention_apply(dir, &plan);
	retention_print(stdout, &plan, "\n");
	if (plan.n || plan.n_stale)
		putchar('\n');
	for (size_t i = 0; i < plan.n; i++)
		doomed += plan.items[i].reasons == 0;
	printf("{\"dry_run\":%s,\"kept\":%zu,\"%s\":%zu,\"%s\":%zu}\n",
	       apply ? "false" : "true", plan.n - doomed,
	       apply ? "deleted" : "would_delete", doomed,
	       apply ? "stale_deleted" : "stale", plan.n_stale);
	if (!apply && doomed + plan.n_stale)
		fprintf(stderr, "atolog: snapshot cleanup: dry run; --apply deletes the "
			"%zu marked \"delete\"\n", doomed + plan.n_stale);
	if (rc != 0) {
		fprintf(stderr, "atolog: snapshot cleanup: %s: %s\n", dir,
			plan.error[0] ? plan.error : strerror(rc));
		rc = EXIT_STORE;
	}
	retention_free(&plan);
	return rc;
}

static int snapshot_restore(const struct command *cmd, int argc, char **argv)
{
	struct cli_progress bar;
	bool force = false;
	const char *args[2];
	int n = 0, rc;

	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--force") == 0)
			force = true;
		else if (n < 2)
			args[n++] = argv[i];
		else
			return cli_usage(cmd, "unexpected argument \"%s\"", argv[i]);
	}
	if (n != 2)
		return cli_usage(cmd, "snapshot restore takes SNAP DATA_DIR [--force]");
	rc = atolog_snapshot_restore(args[0], args[1], force ? ATOLOG_RESTORE_REPLACE : 0,
				     cli_progress_begin(&bar, "restore", "MB"), &bar);
	cli_progress_end(&bar);
	if (rc != ATOLOG_OK)
		return cli_fail(rc, NULL, "snapshot restore");
	fprintf(stderr, "atolog: snapshot restore: %s now holds %s\n", args[1], args[0]);
	return 0;
}

int cmd_snapshot(struct cli *cli, int argc, char **argv)
{
	const struct command *cmd = cli_find_command("snapshot");
	const char *sub = argc > 1 ? argv[1] : "";
	struct cli at;

	if (strcmp(sub, "create") == 0)
		return snapshot_create(cli, cmd, argc - 2, argv + 2);
	if (strcmp(sub, "list") == 0)
		return snapshot_list(cmd, argc - 2, argv + 2);
	if (strcmp(sub, "restore") == 0)
		return snapshot_restore(cmd, argc - 2, argv + 2);
	if (strcmp(sub, "cleanup") == 0)
		return snapshot_cleanup(cmd, argc - 1, argv + 1);
	if (strcmp(sub, "verify") == 0) {
		/* A snapshot is a store: verify it as one. */
		if (argc != 3)
			return cli_usage(cmd, "snapshot verify takes one snapshot");
		at = *cli;
		at.data_dir = argv[2];
		return cmd_verify(&at, 1, argv + 1);
	}
	if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) {
		printf("usage: atolog snapshot %s\n%s\n", cmd->args, cmd->summary);
		return 0;
	}
	return cli_usage(cmd, "unknown snapshot command \"%s\"", sub);
}
