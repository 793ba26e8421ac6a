/*
 * cmd_project.c - `atolog project add NAME [--alias A]...` and
 * `atolog project list` (one JSON line per project: name, aliases).
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_gen.h>

#include "cli.h"

static int project_add(struct cli *cli, const struct command *cmd, int argc,
		       char **argv)
{
	static const struct option opts[] = {
		{ "alias", required_argument, NULL, 'a' },
		{ NULL, 0, NULL, 0 },
	};
	const char **aliases = calloc((size_t)argc, sizeof(char *));
	atolog_store *store;
	size_t n = 0;
	int c, rc;

	if (!aliases)
		return cli_fail(ENOMEM, NULL, "project add");
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c != 'a') {
			free(aliases);
			return cli_usage(cmd, "unknown option %s", argv[optind - 1]);
		}
		aliases[n++] = optarg;
	}
	if (optind != argc - 1) {
		free(aliases);
		return cli_usage(cmd, "project add takes one NAME");
	}
	rc = cli_open_writer(cli, &store);
	if (rc == 0) {
		rc = atolog_project_add(store, argv[optind], aliases, n);
		rc = rc == ATOLOG_OK ? 0 : cli_fail(rc, store, "project add");
		atolog_store_close(store);
	}
	free(aliases);
	return rc;
}

static int gen_string(yajl_gen g, const char *s)
{
	return yajl_gen_string(g, (const unsigned char *)s, strlen(s)) !=
	       yajl_gen_status_ok;
}

static int print_project(const atolog_project *p, void *ctx)
{
	yajl_gen g = yajl_gen_alloc(NULL);
	const unsigned char *line;
	size_t len;
	int bad;

	(void)ctx;
	if (!g)
		return ENOMEM;
	bad = yajl_gen_map_open(g) != yajl_gen_status_ok || gen_string(g, "name") ||
	      gen_string(g, p->name) || gen_string(g, "aliases") ||
	      yajl_gen_array_open(g) != yajl_gen_status_ok;
	for (size_t i = 0; !bad && i < p->n_aliases; i++)
		bad = gen_string(g, p->aliases[i]);
	bad = bad || yajl_gen_array_close(g) != yajl_gen_status_ok ||
	      yajl_gen_map_close(g) != yajl_gen_status_ok ||
	      yajl_gen_get_buf(g, &line, &len) != yajl_gen_status_ok;
	if (!bad)
		printf("%.*s\n", (int)len, (const char *)line);
	yajl_gen_free(g);
	return bad ? ENOMEM : 0;
}

static int project_list(struct cli *cli, const struct command *cmd, int argc)
{
	atolog_store *store;
	int rc;

	if (argc != 1)
		return cli_usage(cmd, "project list takes no arguments");
	rc = cli_open_reader(cli, &store);
	if (rc != 0)
		return rc;
	rc = atolog_project_foreach(store, print_project, NULL);
	rc = rc == ATOLOG_OK ? 0 : cli_fail(rc, store, "project list");
	atolog_store_close(store);
	return rc;
}

int cmd_project(struct cli *cli, int argc, char **argv)
{
	const struct command *cmd = cli_find_command("project");

	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		printf("usage: atolog project %s\n", cmd->args);
		return 0;
	}
	if (argc >= 2 && strcmp(argv[1], "add") == 0)
		return project_add(cli, cmd, argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "list") == 0)
		return project_list(cli, cmd, argc - 1);
	return cli_usage(cmd, "project wants add or list");
}
