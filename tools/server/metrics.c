/*
 * metrics.c - what /metrics serves, in Prometheus' text exposition format
 * (version 0.0.4): the store's figures from atolog_store_stats, and the
 * server's own counters: requests by route and status, request latency by
 * route, and what capture took in.
 *
 * Requests are counted when libmicrohttpd reports them complete, so a
 * request's latency includes sending its answer (all of a stream).
 * Counters are relaxed atomics: a scrape sees each one exactly, not all of
 * them at one instant, which Prometheus expects.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "server.h"

static const unsigned statuses[METRICS_STATUSES - 1] = {
	200, 201, 207, 400, 401, 404, 405, 409, 411, 413, 415, 500, 501, 503, 0,
};

/* Upper bounds of the latency buckets, in seconds; the last is +Inf. */
static const double latency_bounds[METRICS_LATENCY_BUCKETS - 1] = {
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
	0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};

const char *route_name(enum route r)
{
	static const char *const names[ROUTE_COUNT] = {
		[ROUTE_INTERACTIONS] = "interactions",
		[ROUTE_BATCH] = "batch",
		[ROUTE_INTERACTION] = "interaction",
		[ROUTE_REPLAY] = "replay",
		[ROUTE_BACKUP] = "backup",
		[ROUTE_BACKUP_CLEANUP] = "backup_cleanup",
		[ROUTE_COMPACT] = "compact",
		[ROUTE_HEALTH] = "health",
		[ROUTE_METRICS] = "metrics",
		[ROUTE_UNKNOWN] = "unknown",
	};

	return r < ROUTE_COUNT ? names[r] : "unknown";
}

static size_t status_slot(unsigned status)
{
	for (size_t i = 0; statuses[i]; i++) {
		if (statuses[i] == status)
			return i;
	}
	return METRICS_STATUSES - 1; /* other */
}

void metrics_observe(struct metrics *m, enum route r, unsigned status,
		     uint64_t ns)
{
	struct route_metrics *rm = &m->routes[r < ROUTE_COUNT ? r : ROUTE_UNKNOWN];
	double s = (double)ns / 1e9;
	size_t b = 0;

	while (b < METRICS_LATENCY_BUCKETS - 1 && s > latency_bounds[b])
		b++;
	atomic_fetch_add_explicit(&rm->by_status[status_slot(status)], 1,
				  memory_order_relaxed);
	atomic_fetch_add_explicit(&rm->latency[b], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&rm->latency_sum_ns, ns, memory_order_relaxed);
}

static uint64_t load(atomic_uint_fast64_t *v)
{
	return atomic_load_explicit(v, memory_order_relaxed);
}

static void render_store(FILE *f, const atolog_stats *st)
{
	static const char *const gauges[][2] = {
		{ "atolog_records", "Interactions stored." },
		{ "atolog_last_seq", "Highest sequence number used." },
		{ "atolog_segments", "Segment files." },
		{ "atolog_log_bytes", "Bytes in segment files." },
		{ "atolog_index_bytes", "Bytes of the index in use." },
	};
	const uint64_t gauge_values[] = { st->n_records, st->last_seq, st->n_segments,
					  st->log_bytes, st->index_bytes };
	static const char *const counters[][2] = {
		{ "atolog_commit_groups_total", "Commit groups written (one write each)." },
		{ "atolog_commit_frames_total", "Frames in those groups." },
		{ "atolog_log_syncs_total", "fdatasyncs of the log." },
		{ "atolog_index_commits_total", "Index transactions." },
	};
	const uint64_t counter_values[] = { st->commit_groups, st->commit_frames,
					    st->log_syncs, st->index_commits };
	uint64_t cum = 0;

	for (size_t i = 0; i < sizeof(gauges) / sizeof(gauges[0]); i++)
		fprintf(f, "# HELP %s %s\n# TYPE %s gauge\n%s %" PRIu64 "\n",
			gauges[i][0], gauges[i][1], gauges[i][0], gauges[i][0],
			gauge_values[i]);
	for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++)
		fprintf(f, "# HELP %s %s\n# TYPE %s counter\n%s %" PRIu64 "\n",
			counters[i][0], counters[i][1], counters[i][0],
			counters[i][0], counter_values[i]);
	fputs("# HELP atolog_commit_group_frames Frames per commit group.\n"
	      "# TYPE atolog_commit_group_frames histogram\n", f);
	for (size_t i = 0; i < ATOLOG_GROUP_SIZE_BUCKETS; i++) {
		cum += st->group_sizes[i];
		if (i + 1 < ATOLOG_GROUP_SIZE_BUCKETS)
			fprintf(f, "atolog_commit_group_frames_bucket{le=\"%zu\"} %" PRIu64 "\n",
				(size_t)1 << i, cum);
	}
	fprintf(f, "atolog_commit_group_frames_bucket{le=\"+Inf\"} %" PRIu64 "\n"
		   "atolog_commit_group_frames_sum %" PRIu64 "\n"
		   "atolog_commit_group_frames_count %" PRIu64 "\n",
		cum, st->commit_frames, st->commit_groups);
}

static void render_requests(FILE *f, struct metrics *m)
{
	fputs("# HELP atolog_http_requests_total HTTP requests answered, by route "
	      "and status.\n# TYPE atolog_http_requests_total counter\n", f);
	for (int r = 0; r < ROUTE_COUNT; r++) {
		for (size_t s = 0; s < METRICS_STATUSES; s++) {
			uint64_t n = load(&m->routes[r].by_status[s]);
			char code[16] = "other";

			if (!n)
				continue;
			if (s < METRICS_STATUSES - 1)
				snprintf(code, sizeof(code), "%u", statuses[s]);
			fprintf(f, "atolog_http_requests_total{route=\"%s\",code=\"%s\"} %"
				PRIu64 "\n", route_name((enum route)r), code, n);
		}
	}
	fputs("# HELP atolog_http_request_seconds Time from a request's headers "
	      "to the end of its answer.\n"
	      "# TYPE atolog_http_request_seconds histogram\n", f);
	for (int r = 0; r < ROUTE_COUNT; r++) {
		struct route_metrics *rm = &m->routes[r];
		const char *name = route_name((enum route)r);
		uint64_t cum = 0;

		for (size_t b = 0; b < METRICS_LATENCY_BUCKETS; b++) {
			cum += load(&rm->latency[b]);
			if (b + 1 < METRICS_LATENCY_BUCKETS)
				fprintf(f, "atolog_http_request_seconds_bucket{route=\"%s\","
					"le=\"%g\"} %" PRIu64 "\n", name,
					latency_bounds[b], cum);
		}
		fprintf(f, "atolog_http_request_seconds_bucket{route=\"%s\",le=\"+Inf\"} %"
			PRIu64 "\natolog_http_request_seconds_sum{route=\"%s\"} %.9f\n"
			"atolog_http_request_seconds_count{route=\"%s\"} %" PRIu64 "\n",
			name, cum, name, (double)load(&rm->latency_sum_ns) / 1e9, name, cum);
	}
}

static void render_ingest(FILE *f, struct metrics *m)
{
	static const char *const names[][2] = {
		{ "atolog_ingest_stored_total", "Interactions acknowledged over HTTP." },
		{ "atolog_ingest_refused_total", "Interactions refused as invalid or duplicate." },
		{ "atolog_ingest_failed_total", "Interactions the store could not take." },
		{ "atolog_http_body_bytes_total", "Bytes of request bodies read." },
	};
	atomic_uint_fast64_t *values[] = { &m->ingest_stored, &m->ingest_refused,
					   &m->ingest_failed, &m->body_bytes };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		fprintf(f, "# HELP %s %s\n# TYPE %s counter\n%s %" PRIu64 "\n",
			names[i][0], names[i][1], names[i][0], names[i][0],
			load(values[i]));
}

int metrics_render(struct metrics *m, const atolog_stats *st, long in_flight,
		   char **out, size_t *len)
{
	FILE *f = open_memstream(out, len);

	if (!f)
		return ENOMEM;
	render_store(f, st);
	fprintf(f, "# HELP atolog_http_requests_in_flight Requests begun and not "
		   "yet answered (this one included).\n"
		   "# TYPE atolog_http_requests_in_flight gauge\n"
		   "atolog_http_requests_in_flight %ld\n", in_flight);
	render_requests(f, m);
	render_ingest(f, m);
	return fclose(f) == 0 ? 0 : ENOMEM;
}
