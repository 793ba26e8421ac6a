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

#include <yajl/yajl_tree.h>

#include "cli.h"

static void show_progress(uint64_t done, uint64_t total, void *ctx)
{
	if (total)
		fprintf(stderr, "\ratolog: %s: %3" PRIu64 "%%", (const char *)ctx,
			done * 100 / total);
}

static void end_progress(bool tty)
{
	if (tty)
		fputs("\r\033[K", stderr);
}

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
	atolog_store *store;
	bool tty = isatty(2);
	int rc;

	if (argc != 1)
		return cli_usage(cmd, "snapshot create takes one destination");
	rc = cli_open_reader(cli, &store);
	if (rc != 0)
		return rc;
	rc = atolog_store_snapshot(store, argv[0], tty ? show_progress : NULL,
				   "snapshot", &info);
	end_progress(tty);
	if (rc == ATOLOG_OK)
		print_info(argv[0], &info);
	rc = rc == ATOLOG_OK ? 0 : cli_fail(rc, store, "snapshot create");
	atolog_store_close(store);
	return rc;
}

/* The manifest of dir/name, or NULL when it is not a finished snapshot. */
static yajl_val read_manifest(const char *dir, const char *name)
{
	char path[4096], *text;
	size_t len;
	FILE *f;
	yajl_val v = NULL;

	snprintf(path, sizeof(path), "%s/%s/%s", dir, name, ATOLOG_SNAPSHOT_MANIFEST);
	f = fopen(path, "r");
	if (!f)
		return NULL;
	if (cli_read_all(f, 1 << 16, &text, &len) == 0) {
		v = yajl_tree_parse(text, NULL, 0);
		free(text);
	}
	fclose(f);
	return v;
}

static int snapshot_list(const struct command *cmd, int argc, char **argv)
{
	const char *created[] = { "created_at", NULL };
	struct dirent **names;
	int n;

	if (argc != 1)
		return cli_usage(cmd, "snapshot list takes one directory");
	/* Names sort as they were made when they carry the time (cron does). */
	n = scandir(argv[0], &names, NULL, alphasort);
	if (n < 0) {
		fprintf(stderr, "atolog: snapshot list: %s: %s\n", argv[0], strerror(errno));
		return EXIT_STORE;
	}
	for (int i = 0; i < n; i++) {
		yajl_val m = names[i]->d_name[0] == '.' ? NULL
							: read_manifest(argv[0], names[i]->d_name);
		yajl_val t = m ? yajl_tree_get(m, created, yajl_t_string) : NULL;
		char *q = NULL;

		if (t && cli_json_quote(names[i]->d_name, &q) == 0)
			printf("{\"name\":%s,\"created_at\":\"%s\"}\n", q, YAJL_GET_STRING(t));
		free(q);
		yajl_tree_free(m);
		free(names[i]);
	}
	free(names);
	return 0;
}

static int snapshot_restore(const struct command *cmd, int argc, char **argv)
{
	bool force = false, tty = isatty(2);
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
				     tty ? show_progress : NULL, "restore");
	end_progress(tty);
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
