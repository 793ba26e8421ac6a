/*
 * cmd_tour.c - `atolog tour`, what `make run` shows: several agent threads
 * capture synthetic interactions into one store at once, then a `list
 * --since` and a `replay` read them back, with the rates seen.
 *
 * Human messages go to stderr; the interactions printed go to stdout as
 * JSON Lines, exactly as `list` and `replay` print them.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

#define TOUR_AGENTS_DEFAULT 8
#define TOUR_RECORDS_DEFAULT 4000
#define TOUR_SESSION_LENGTH 20 /* interactions per session */
#define TOUR_LIST_REPEATS 200  /* list queries timed */

static const char *const tour_projects[] = { "atocore", "atolog", "p04-gigabit",
					     "p05-interferometer", "openclaw-infra" };
static const char *const tour_clients[] = { "openclaw", "claude-code", "manual" };

struct tour_agent {
	atolog_store *store;
	int index;
	long n_records;
	double *latency_ms; /* one per record */
	int rc;
	char failure[256];
};

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int record_one(struct tour_agent *a, long i)
{
	char prompt[256], response[512], summary[128], session[64], ctx[256];
	char mem[2][32], chunk[3][32];
	const char *mems[2] = { mem[0], mem[1] };
	const char *chunks[3] = { chunk[0], chunk[1], chunk[2] };
	long session_no = (long)a->index * 100000 + i / TOUR_SESSION_LENGTH;
	atolog_interaction in = { 0 };

	snprintf(prompt, sizeof(prompt), "agent %d, turn %ld: how does the "
		 "segment roll interact with the index catch-up?", a->index, i);
	snprintf(response, sizeof(response), "The writer seals the segment, "
		 "syncs, and starts the next one; recovery resumes from the "
		 "indexed position (turn %ld).", i);
	snprintf(summary, sizeof(summary), "roll then catch-up (turn %ld)", i);
	snprintf(session, sizeof(session), "tour-s%06ld", session_no);
	snprintf(ctx, sizeof(ctx), "{\"query\":\"segment roll\",\"budget\":4000,"
		 "\"chunks\":[\"c%ld\",\"c%ld\"],\"agent\":%d}", i, i + 1, a->index);
	for (int k = 0; k < 2; k++)
		snprintf(mem[k], sizeof(mem[k]), "mem-%ld", (i * 7 + k) % 500);
	for (int k = 0; k < 3; k++)
		snprintf(chunk[k], sizeof(chunk[k]), "chunk-%ld", (i * 13 + k) % 2000);
	in.prompt = prompt;
	in.response = response;
	in.response_summary = summary;
	in.project = tour_projects[(session_no) % 5];
	in.client = tour_clients[a->index % 3];
	in.session_id = session;
	in.memories_used = mems;
	in.n_memories_used = 2;
	in.chunks_used = chunks;
	in.n_chunks_used = 3;
	in.context_pack = ctx;
	return atolog_interaction_record(a->store, &in, NULL);
}

static void *tour_agent_run(void *arg)
{
	struct tour_agent *a = arg;

	for (long i = 0; i < a->n_records; i++) {
		double t0 = now_seconds();

		a->rc = record_one(a, i);
		if (a->rc != ATOLOG_OK) {
			snprintf(a->failure, sizeof(a->failure), "%s",
				 atolog_errmsg(a->store));
			break;
		}
		a->latency_ms[i] = (now_seconds() - t0) * 1e3;
	}
	return NULL;
}

static int compare_double(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;

	return a < b ? -1 : a > b;
}

/* Runs the agents; prints the rate and ack latency percentiles. */
static int tour_capture(atolog_store *store, int n_agents, long n_records)
{
	struct tour_agent *agents = calloc((size_t)n_agents, sizeof(*agents));
	pthread_t *threads = calloc((size_t)n_agents, sizeof(*threads));
	double *all = calloc((size_t)n_records, sizeof(double));
	long per = n_records / n_agents, total = 0;
	double t0, elapsed;
	int rc = 0;

	if (!agents || !threads || !all) {
		rc = cli_fail(ENOMEM, NULL, "tour");
		goto out;
	}
	t0 = now_seconds();
	for (int i = 0; i < n_agents; i++) {
		agents[i] = (struct tour_agent){ .store = store, .index = i,
						 .n_records = per,
						 .latency_ms = all + (long)i * per };
		pthread_create(&threads[i], NULL, tour_agent_run, &agents[i]);
	}
	for (int i = 0; i < n_agents; i++) {
		pthread_join(threads[i], NULL);
		if (agents[i].rc != ATOLOG_OK && rc == 0) {
			fprintf(stderr, "atolog: tour: agent %d: %s\n", i, agents[i].failure);
			rc = cli_exit_code(agents[i].rc);
		}
		total += per;
	}
	elapsed = now_seconds() - t0;
	if (rc == 0) {
		qsort(all, (size_t)total, sizeof(double), compare_double);
		fprintf(stderr, "  %d agents captured %ld interactions in %.2f s: "
			"%.0f interactions/s; ack latency p50 %.2f ms, p99 %.2f ms\n",
			n_agents, total, elapsed, (double)total / elapsed,
			all[total / 2], all[total * 99 / 100]);
	}
out:
	free(agents);
	free(threads);
	free(all);
	return rc;
}

/* Times the list query, then prints its result. */
static int tour_list(atolog_store *store, const atolog_query *q)
{
	const atolog_interaction *rec;
	atolog_iter *it;
	double t0 = now_seconds();
	int rc = ATOLOG_OK;

	for (int i = 0; i < TOUR_LIST_REPEATS && rc == ATOLOG_OK; i++) {
		rc = atolog_list_open(store, q, &it);
		while (rc == ATOLOG_OK && (rc = atolog_iter_next(it, &rec)) == ATOLOG_OK)
			;
		if (rc == ATOLOG_DONE)
			rc = ATOLOG_OK;
		atolog_iter_close(it);
	}
	if (rc != ATOLOG_OK)
		return cli_fail(rc, store, "tour list");
	fflush(stdout); /* keep the commands and their output in order */
	fprintf(stderr, "\n$ atolog list --project %s --since '%s' --limit %ld"
		"   (%.0f us per query, mean of %d)\n", q->project, q->since,
		q->limit, (now_seconds() - t0) * 1e6 / TOUR_LIST_REPEATS,
		TOUR_LIST_REPEATS);
	rc = atolog_list_open(store, q, &it);
	while (rc == ATOLOG_OK && (rc = atolog_iter_next(it, &rec)) == ATOLOG_OK)
		rc = cli_print_interaction(rec);
	atolog_iter_close(it);
	return rc == ATOLOG_DONE ? 0 : cli_fail(rc, store, "tour list");
}

static int tour_replay(atolog_store *store, const char *session)
{
	const atolog_interaction *rec;
	atolog_iter *it;
	int rc;

	fflush(stdout);
	fprintf(stderr, "\n$ atolog replay %s\n", session);
	rc = atolog_replay_open(store, session, &it);
	while (rc == ATOLOG_OK && (rc = atolog_iter_next(it, &rec)) == ATOLOG_OK)
		rc = cli_print_interaction(rec);
	atolog_iter_close(it);
	return rc == ATOLOG_DONE ? 0 : cli_fail(rc, store, "tour replay");
}

static int tour_show(atolog_store *store)
{
	char since[ATOLOG_TIME_ISO_LEN];
	atolog_query q = { .project = "ATOLOG", .limit = 5, .since = since };
	atolog_stats st;
	int rc;

	/* Since a minute ago: everything just captured; "ATOLOG" is an alias. */
	atolog_time_format_iso(((int64_t)time(NULL) - 60) * 1000000, since);
	rc = tour_list(store, &q);
	if (rc == 0)
		rc = tour_replay(store, "tour-s000001");
	fflush(stdout);
	if (rc == 0 && atolog_store_stats(store, &st) == ATOLOG_OK)
		fprintf(stderr, "\nstore: %llu interactions, %llu segments, "
			"%.1f MiB log, %.1f MiB index\n",
			(unsigned long long)st.n_records,
			(unsigned long long)st.n_segments, st.log_bytes / 1048576.0,
			st.index_bytes / 1048576.0);
	return rc;
}

int cmd_tour(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "agents", required_argument, NULL, 'a' },
		{ "records", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const struct command *cmd = cli_find_command("tour");
	static const char *const aliases[] = { "ATOLOG", "ato-log" };
	long agents = TOUR_AGENTS_DEFAULT, records = TOUR_RECORDS_DEFAULT;
	atolog_store *store;
	int c, rc;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'a' && cli_parse_long(optarg, 1, 1024, &agents))
			continue;
		if (c == 'n' && cli_parse_long(optarg, 1, 100000000, &records))
			continue;
		if (c == 'h') {
			printf("usage: atolog tour %s\n%s\n", cmd->args, cmd->summary);
			return 0;
		}
		return cli_usage(cmd, "bad option %s", argv[optind - 1]);
	}
	if (records < agents)
		records = agents;
	rc = cli_open_writer(cli, &store);
	if (rc != 0)
		return rc;
	fprintf(stderr, "atolog tour on %s (sync %s)\n", cli->data_dir,
		cli->sync == ATOLOG_SYNC_ALWAYS ? "always" :
		cli->sync == ATOLOG_SYNC_BATCH ? "batch" : "none");
	rc = atolog_project_add(store, "atolog", (const char *const *)aliases, 2);
	rc = rc == ATOLOG_OK ? 0 : cli_fail(rc, store, "project add");
	if (rc == 0)
		rc = tour_capture(store, (int)agents, records);
	if (rc == 0)
		rc = tour_show(store);
	atolog_store_close(store);
	return rc;
}
