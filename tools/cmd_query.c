/*
 * cmd_query.c - the read commands: `get ID`, `list [filters]`,
 * `replay SESSION` and `stats`. Output is JSON Lines with the seed's
 * field names; results stream, one line per interaction.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* {"name": count, ...} of one kind of name. */
static int print_count(const char *name, uint64_t count, void *ctx)
{
	size_t *n = ctx;
	char *q = NULL;

	if (cli_json_quote(name, &q) != 0)
		return ENOMEM;
	printf("%s%s:%" PRIu64, (*n)++ ? "," : "", q, count);
	free(q);
	return 0;
}

static int print_counts(atolog_store *store, const char *key, int what)
{
	size_t n = 0;
	int rc;

	printf(",\"%s\":{", key);
	rc = atolog_store_counts(store, what, print_count, &n);
	putchar('}');
	return rc;
}

static void print_time(const char *key, const atolog_stats *st, int64_t t)
{
	char seed[ATOLOG_TIME_SEED_LEN];

	if (!st->has_time_range) {
		printf(",\"%s\":null", key);
		return;
	}
	atolog_time_format_seed(t, seed);
	printf(",\"%s\":\"%s\"", key, seed);
}

int cmd_stats(struct cli *cli, int argc, char **argv)
{
	const struct command *cmd = cli_find_command("stats");
	atolog_store *store;
	atolog_stats st;
	int rc;

	if (cli_wants_help(cmd, argc, argv))
		return 0;
	if (argc > 2 || (argc == 2 && strcmp(argv[1], "--json") != 0))
		return cli_usage(cmd, "stats takes only --json");
	rc = cli_open_reader(cli, &store);
	if (rc != 0)
		return rc;
	rc = atolog_store_stats(store, &st);
	if (rc == ATOLOG_OK) {
		printf("{\"records\":%" PRIu64 ",\"last_seq\":%" PRIu64
		       ",\"segments\":%" PRIu64 ",\"log_bytes\":%" PRIu64
		       ",\"index_bytes\":%" PRIu64, st.n_records, st.last_seq,
		       st.n_segments, st.log_bytes, st.index_bytes);
		print_time("first_created_at", &st, st.first_created_at);
		print_time("last_created_at", &st, st.last_created_at);
		rc = print_counts(store, "projects", ATOLOG_COUNT_PROJECTS);
		if (rc == ATOLOG_OK)
			rc = print_counts(store, "clients", ATOLOG_COUNT_CLIENTS);
		puts("}");
	}
	rc = rc == ATOLOG_OK ? 0 : cli_fail(rc, store, "stats");
	atolog_store_close(store);
	return rc;
}

/* Where a feed starts: --from-seq N (inclusive), --since (from the
 * start, filtered), or after what the store holds now. */
static int follow_start(atolog_store *store, const struct cli_query *cq,
			uint64_t *after)
{
	atolog_stats st;
	int rc;

	if (cq->has_from_seq) {
		*after = cq->from_seq ? cq->from_seq - 1 : 0;
		return ATOLOG_OK;
	}
	if (cq->q.since) {
		*after = 0;
		return ATOLOG_OK;
	}
	rc = atolog_store_stats(store, &st);
	*after = st.last_seq;
	return rc;
}

int cmd_follow(struct cli *cli, int argc, char **argv)
{
	const struct command *cmd = cli_find_command("follow");
	const atolog_interaction *rec;
	struct cli_query cq;
	atolog_follow *feed = NULL;
	atolog_store *store;
	uint64_t after = 0;
	long printed = 0;
	int rc;

	if (cli_wants_help(cmd, argc, argv))
		return 0;
	rc = cli_parse_query(cmd, argc, argv, CLI_QUERY_FOLLOW, &cq);
	if (rc != 0)
		return rc;
	rc = cli_open_reader(cli, &store);
	if (rc != 0)
		return rc;
	rc = follow_start(store, &cq, &after);
	if (rc == ATOLOG_OK)
		rc = atolog_follow_open(store, &cq.q, after, &feed);
	while (rc == ATOLOG_OK && printed < cq.q.limit) {
		rc = atolog_follow_next(feed, &rec);
		if (rc == ATOLOG_OK) {
			rc = cli_print_interaction(rec);
			fflush(stdout);
			printed++;
		} else if (rc == ATOLOG_DONE) {
			/* Caught up: look again in a moment. */
			struct timespec nap = { 0, CLI_FOLLOW_POLL_MS * 1000000L };

			nanosleep(&nap, NULL);
			rc = ATOLOG_OK;
		}
	}
	rc = rc == ATOLOG_OK ? 0 : cli_fail(rc, store, "follow");
	atolog_follow_close(feed);
	atolog_store_close(store);
	return rc;
}
