/*
 * cmd_record.c - `atolog record`: one interaction, as the seed's POST body
 * (a JSON object on stdin), stored and printed back as one JSON line with
 * its id and created_at. The input is checked completely before the store
 * is opened, so invalid input changes nothing.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>

#include "cli.h"

int cmd_record(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = { { "help", no_argument, NULL, 'h' },
					      { NULL, 0, NULL, 0 } };
	const struct command *cmd = cli_find_command("record");
	atolog_interaction *in = NULL, *out = NULL;
	atolog_store *store = NULL;
	char *text;
	size_t len;
	int c, rc;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'h') {
			printf("usage: atolog record %s\n", cmd->args);
			return 0;
		}
		return cli_usage(cmd, "unknown option %s", argv[optind - 1]);
	}
	if (optind != argc)
		return cli_usage(cmd, "record takes no arguments");
	rc = cli_read_all(stdin, ATOLOG_JSON_MAX_BYTES, &text, &len);
	if (rc != 0)
		return cli_fail(rc, NULL, "reading stdin");
	rc = atolog_interaction_from_json(text, len, &in);
	free(text);
	if (rc == ATOLOG_OK)
		rc = atolog_interaction_validate(in);
	if (rc != ATOLOG_OK) {
		atolog_interaction_free(in);
		return cli_fail(rc, NULL, "invalid interaction");
	}
	rc = cli_open_writer(cli, &store);
	if (rc != 0) {
		atolog_interaction_free(in);
		return rc;
	}
	rc = atolog_interaction_record(store, in, &out);
	if (rc == ATOLOG_OK)
		rc = cli_print_interaction(out);
	if (rc != ATOLOG_OK)
		rc = cli_fail(rc, store, "record");
	atolog_interaction_free(in);
	atolog_interaction_free(out);
	if (atolog_store_close(store) != ATOLOG_OK && rc == 0)
		rc = cli_fail(EIO, store, "closing the store");
	return rc;
}
