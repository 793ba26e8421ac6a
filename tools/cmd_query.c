/*
 * cmd_query.c - the read commands: `get ID`, `list [filters]`,
 * `replay SESSION` and `stats`. Output is JSON Lines with the seed's
 * field names; results stream, one line per interaction.
 */
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cmd_get(struct cli *cli, int argc, char **argv)
{
	const struct command *cmd = cli_find_command("get");
	atolog_interaction *rec;
	atolog_store *store;
	int rc;

	if (cli_wants_help(cmd, argc, argv))
		return 0;
	if (argc != 2)
		return cli_usage(cmd, "get takes one id");
	rc = cli_open_reader(cli, &store);
	if (rc != 0)
		return rc;
	rc = atolog_interaction_get(store, argv[1], &rec);
	if (rc == ATOLOG_OK) {
		rc = cli_print_interaction(rec);
		atolog_interaction_free(rec);
	}
	rc = rc == ATOLOG_OK ? 0 : cli_fail(rc, store, "get");
	atolog_store_close(store);
	return rc;
}

/* Prints every interaction of an iterator; *n counts them. */
static int print_all(atolog_store *store, atolog_iter *it, const char *what,
		     long *n)
{
	const atolog_interaction *rec;
	int rc;

	*n = 0;
	while ((rc = atolog_iter_next(it, &rec)) == ATOLOG_OK) {
		rc = cli_print_interaction(rec);
		if (rc != ATOLOG_OK)
			break;
		(*n)++;
	}
	atolog_iter_close(it);
	return rc == ATOLOG_DONE ? 0 : cli_fail(rc, store, what);
}

int cmd_list(struct cli *cli, int argc, char **argv)
{
	const struct command *cmd = cli_find_command("list");
	struct cli_query cq;
	atolog_store *store;
	atolog_iter *it;
	long n;
	int rc;

	if (cli_wants_help(cmd, argc, argv))
		return 0;
	rc = cli_parse_query(cmd, argc, argv, CLI_QUERY_LIST, &cq);
	if (rc != 0)
		return rc;
	rc = cli_open_reader(cli, &store);
	if (rc != 0)
		return rc;
	rc = atolog_list_open(store, &cq.q, &it);
	rc = rc == ATOLOG_OK ? print_all(store, it, "list", &n)
			     : cli_fail(rc, store, "list");
	atolog_store_close(store);
	return rc;
}

int cmd_replay(struct cli *cli, int argc, char **argv)
{
	const struct command *cmd = cli_find_command("replay");
	atolog_store *store;
	atolog_iter *it;
	long n = 0;
	int rc;

	if (cli_wants_help(cmd, argc, argv))
		return 0;
	if (argc != 2)
		return cli_usage(cmd, "replay takes one session id");
	rc = cli_open_reader(cli, &store);
	if (rc != 0)
		return rc;
	rc = atolog_replay_open(store, argv[1], &it);
	rc = rc == ATOLOG_OK ? print_all(store, it, "replay", &n)
			     : cli_fail(rc, store, "replay");
	if (rc == 0 && n == 0) {
		fprintf(stderr, "atolog: replay: no interactions in session %s\n",
			argv[1]);
		rc = EXIT_NOTFOUND;
	}
	atolog_store_close(store);
	return rc;
}

int cmd_stats(struct cli *cli, int argc, char **argv)
{
	const struct command *cmd = cli_find_command("stats");
	atolog_store *store;
	atolog_stats st;
	int rc;

	if (cli_wants_help(cmd, argc, argv))
		return 0;
	if (argc != 1)
		return cli_usage(cmd, "stats takes no arguments");
	rc = cli_open_reader(cli, &store);
	if (rc != 0)
		return rc;
	rc = atolog_store_stats(store, &st);
	if (rc == ATOLOG_OK)
		printf("{\"records\":%" PRIu64 ",\"last_seq\":%" PRIu64
		       ",\"segments\":%" PRIu64 ",\"log_bytes\":%" PRIu64
		       ",\"index_bytes\":%" PRIu64 "}\n",
		       st.n_records, st.last_seq, st.n_segments, st.log_bytes,
		       st.index_bytes);
	rc = rc == ATOLOG_OK ? 0 : cli_fail(rc, store, "stats");
	atolog_store_close(store);
	return rc;
}
