/*
 * handlers.c - the routes, once a request has passed request.c's checks:
 * capture (one interaction or a batch), get, list, replay, health,
 * metrics, and the admin routes that wait for snapshots.
 *
 * Field names are the seed's; every failure is {"error": "..."} with the
 * status reply_status_of gives its code. A capture is answered only when
 * atolog_interaction_record has returned, that is once the interaction is
 * durable per the store's sync mode.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

static const char *body_of(const struct request *req)
{
	return req->body ? req->body : "";
}

/* Remembers whether the store is taking writes, for /health. */
static void note_write(struct server *srv, int rc)
{
	atomic_store(&srv->write_failing,
		     reply_status_of(rc) == MHD_HTTP_SERVICE_UNAVAILABLE ? rc : 0);
}

static enum MHD_Result reply_interaction(struct request *req,
					 struct MHD_Connection *conn,
					 unsigned status,
					 const atolog_interaction *rec)
{
	char *json, *body;
	int rc = atolog_interaction_to_json(rec, &json), n;

	if (rc != ATOLOG_OK)
		return reply_store_error(req, conn, rc, "rendering");
	n = asprintf(&body, "%s\n", json);
	free(json);
	if (n < 0)
		return MHD_NO;
	return reply_take(req, conn, status, "application/json", body, (size_t)n);
}

/* POST /interactions: the seed's body, stored, answered with 201 and the
 * interaction as stored (id, created_at, canonical project). */
static enum MHD_Result post_interaction(struct request *req,
					struct MHD_Connection *conn)
{
	struct server *srv = req->srv;
	atolog_interaction *in = NULL, *out = NULL;
	enum MHD_Result r;
	int rc = atolog_interaction_from_json(body_of(req), req->len, &in);

	if (rc == ATOLOG_OK)
		rc = atolog_interaction_validate(in);
	if (rc != ATOLOG_OK) {
		atomic_fetch_add(&srv->metrics.ingest_refused, 1);
		r = reply_error(req, conn, reply_status_of(rc), "%s",
				atolog_errmsg(NULL));
		atolog_interaction_free(in);
		return r;
	}
	rc = atolog_interaction_record(srv->store, in, &out);
	atolog_interaction_free(in);
	note_write(srv, rc);
	if (rc != ATOLOG_OK) {
		atomic_fetch_add(rc == ATOLOG_EXISTS ? &srv->metrics.ingest_refused
						     : &srv->metrics.ingest_failed, 1);
		return reply_store_error(req, conn, rc, "record");
	}
	atomic_fetch_add(&srv->metrics.ingest_stored, 1);
	r = reply_interaction(req, conn, MHD_HTTP_CREATED, out);
	atolog_interaction_free(out);
	return r;
}

/* ------------------------------------------------------------------------
 * POST /interactions/batch.
 */

/* One element of the body: parsed (item) or refused (why); stored once
 * recorded. */
struct batch_slot {
	atolog_interaction *item;
	char *why;
	atolog_interaction *stored;
};

struct batch {
	struct batch_slot *slots;
	size_t n, cap;
};

static void batch_free(struct batch *b)
{
	for (size_t i = 0; i < b->n; i++) {
		atolog_interaction_free(b->slots[i].item);
		atolog_interaction_free(b->slots[i].stored);
		free(b->slots[i].why);
	}
	free(b->slots);
}

/* Takes element index of the body: checked now, so that the write sees
 * only items it will take. */
static int batch_add(size_t index, int rc, const char *why,
		     atolog_interaction *item, void *ctx)
{
	struct batch *b = ctx;
	struct batch_slot *slot;

	if (index >= SERVE_BATCH_MAX_ITEMS) {
		atolog_interaction_free(item);
		return ATOLOG_TOOBIG;
	}
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 64;
		struct batch_slot *grown = realloc(b->slots, cap * sizeof(*grown));

		if (!grown) {
			atolog_interaction_free(item);
			return ENOMEM;
		}
		b->slots = grown;
		b->cap = cap;
	}
	slot = &b->slots[b->n++];
	*slot = (struct batch_slot){ 0 };
	if (rc == ATOLOG_OK && (rc = atolog_interaction_validate(item)) != ATOLOG_OK)
		why = atolog_errmsg(NULL);
	if (rc == ATOLOG_OK) {
		slot->item = item;
		return 0;
	}
	atolog_interaction_free(item);
	slot->why = strdup(why);
	return slot->why ? 0 : ENOMEM;
}

/* NDJSON: one body per line; blank lines are not items. A line that is not
 * JSON is that item's error alone. */
static int batch_parse_lines(char *body, size_t len, struct batch *b)
{
	size_t index = 0;
	char *p = body, *end = body + len;

	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		char *stop = nl ? nl : end, *q = stop;
		atolog_interaction *item = NULL;
		int rc;

		while (q > p && (q[-1] == '\r' || q[-1] == ' ' || q[-1] == '\t'))
			q--;
		if (q > p) {
			rc = atolog_interaction_from_json(p, (size_t)(q - p), &item);
			rc = batch_add(index++, rc, atolog_errmsg(NULL), item, b);
			if (rc != 0)
				return rc;
		}
		p = stop + 1;
	}
	return ATOLOG_OK;
}

/* Records every item that passed its checks, in one commit. */
static int batch_record(struct server *srv, struct batch *b)
{
	size_t n = 0, *at = calloc(b->n ? b->n : 1, sizeof(*at));
	atolog_interaction *in = calloc(b->n ? b->n : 1, sizeof(*in)), **out;
	int *rcs, rc = ENOMEM;

	out = calloc(b->n ? b->n : 1, sizeof(*out));
	rcs = calloc(b->n ? b->n : 1, sizeof(*rcs));
	if (!at || !in || !out || !rcs)
		goto done;
	for (size_t i = 0; i < b->n; i++) {
		if (b->slots[i].item) {
			at[n] = i;
			in[n++] = *b->slots[i].item;
		}
	}
	rc = n ? atolog_interaction_record_batch(srv->store, in, n, rcs, out)
	       : ATOLOG_OK;
	note_write(srv, rc);
	if (reply_status_of(rc) == MHD_HTTP_SERVICE_UNAVAILABLE)
		goto done; /* nothing was stored */
	rc = ATOLOG_OK;
	for (size_t k = 0; k < n && rc == ATOLOG_OK; k++) {
		struct batch_slot *slot = &b->slots[at[k]];

		slot->stored = out[k];
		if (rcs[k] == ATOLOG_EXISTS)
			rc = asprintf(&slot->why, "an interaction with id %s is "
				      "already stored", slot->item->id) < 0 ? ENOMEM : 0;
		else if (rcs[k] != ATOLOG_OK)
			slot->why = strdup(atolog_strerror(rcs[k]));
	}
done:
	free(at);
	free(in);
	free(out);
	free(rcs);
	return rc;
}

/* {"ids": [id or null, ...], "errors": [{"index": i, "error": "..."}]} */
static int batch_render(const struct batch *b, char **body, size_t *len,
			size_t *n_errors)
{
	FILE *f = open_memstream(body, len);
	char *quoted;

	if (!f)
		return ENOMEM;
	*n_errors = 0;
	fputs("{\"ids\":[", f);
	for (size_t i = 0; i < b->n; i++) {
		const struct batch_slot *s = &b->slots[i];

		fprintf(f, "%s%s%s%s", i ? "," : "", s->stored ? "\"" : "",
			s->stored ? s->stored->id : "null", s->stored ? "\"" : "");
	}
	fputs("],\"errors\":[", f);
	for (size_t i = 0; i < b->n; i++) {
		if (b->slots[i].stored || json_quote(b->slots[i].why ? b->slots[i].why
								     : "not stored",
						     &quoted) != 0)
			continue;
		fprintf(f, "%s{\"index\":%zu,\"error\":%s}", (*n_errors)++ ? "," : "",
			i, quoted);
		free(quoted);
	}
	fputs("]}\n", f);
	return fclose(f) == 0 ? 0 : ENOMEM;
}

static enum MHD_Result post_batch(struct request *req, struct MHD_Connection *conn)
{
	struct server *srv = req->srv;
	struct batch b = { 0 };
	enum MHD_Result r;
	size_t len, n_errors = 0;
	char *body;
	int rc = req->ndjson ? batch_parse_lines(req->body, req->len, &b)
			     : atolog_interactions_from_json_array(body_of(req), req->len,
								   batch_add, &b);

	if (rc == ATOLOG_OK)
		rc = batch_record(srv, &b);
	if (rc == ATOLOG_TOOBIG)
		r = reply_error(req, conn, MHD_HTTP_CONTENT_TOO_LARGE,
				"a batch holds at most %d interactions",
				SERVE_BATCH_MAX_ITEMS);
	else if (rc == ATOLOG_INVALID)
		r = reply_error(req, conn, MHD_HTTP_BAD_REQUEST, "%s", atolog_errmsg(NULL));
	else if (rc != ATOLOG_OK)
		r = reply_store_error(req, conn, rc, "record batch");
	else if (batch_render(&b, &body, &len, &n_errors) != 0)
		r = MHD_NO;
	else
		r = reply_take(req, conn, n_errors ? MHD_HTTP_MULTI_STATUS : MHD_HTTP_CREATED,
			       "application/json", body, len);
	if (rc == ATOLOG_OK) {
		atomic_fetch_add(&srv->metrics.ingest_stored, b.n - n_errors);
		atomic_fetch_add(&srv->metrics.ingest_refused, n_errors);
	} else if (reply_status_of(rc) == MHD_HTTP_SERVICE_UNAVAILABLE) {
		atomic_fetch_add(&srv->metrics.ingest_failed, b.n);
	}
	batch_free(&b);
	return r;
}

/* ------------------------------------------------------------------------
 * Reads.
 */

static enum MHD_Result get_interaction(struct request *req,
				       struct MHD_Connection *conn)
{
	atolog_interaction *rec;
	enum MHD_Result r;
	int rc = atolog_interaction_get(req->srv->store, req->arg, &rec);

	/* An id that is not a UUID names no interaction, as in the seed. */
	if (rc == ATOLOG_NOTFOUND || rc == ATOLOG_INVALID)
		return reply_error(req, conn, MHD_HTTP_NOT_FOUND,
				   "no interaction with id %s", req->arg);
	if (rc != ATOLOG_OK)
		return reply_store_error(req, conn, rc, "get");
	r = reply_interaction(req, conn, MHD_HTTP_OK, rec);
	atolog_interaction_free(rec);
	return r;
}

static const char *query_arg(struct MHD_Connection *conn, const char *key)
{
	return MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, key);
}

/* GET /interactions?project=&session_id=&client=&since=&limit= */
static enum MHD_Result get_list(struct request *req, struct MHD_Connection *conn)
{
	atolog_query q = {
		.project = query_arg(conn, "project"),
		.session_id = query_arg(conn, "session_id"),
		.client = query_arg(conn, "client"),
		.since = query_arg(conn, "since"),
		.limit = ATOLOG_LIST_LIMIT_DEFAULT,
	};
	const char *limit = query_arg(conn, "limit");
	atolog_iter *iter;
	char *end;
	int rc;

	if (limit) {
		errno = 0;
		q.limit = strtol(limit, &end, 10);
		if (errno || end == limit || *end)
			return reply_error(req, conn, MHD_HTTP_BAD_REQUEST,
					   "limit must be an integer (got \"%s\")", limit);
	}
	if (q.limit > ATOLOG_LIST_LIMIT_MAX)
		q.limit = ATOLOG_LIST_LIMIT_MAX;
	rc = atolog_list_open(req->srv->store, &q, &iter);
	if (rc != ATOLOG_OK)
		return reply_store_error(req, conn, rc, "list");
	return stream_reply(req, conn, iter, STREAM_LIST, NULL);
}

static enum MHD_Result get_replay(struct request *req, struct MHD_Connection *conn)
{
	char empty[ATOLOG_NAME_MAX_BYTES + 64];
	atolog_iter *iter;
	int rc = atolog_replay_open(req->srv->store, req->arg, &iter);

	if (rc != ATOLOG_OK)
		return reply_store_error(req, conn, rc, "replay");
	snprintf(empty, sizeof(empty), "no interactions in session %.*s",
		 (int)ATOLOG_NAME_MAX_BYTES, req->arg);
	return stream_reply(req, conn, iter, STREAM_NDJSON, empty);
}

/* ------------------------------------------------------------------------
 * Operations.
 */

static const char *sync_name(atolog_sync_mode m)
{
	return m == ATOLOG_SYNC_NONE ? "none" : m == ATOLOG_SYNC_BATCH ? "batch" : "always";
}

/* 200 while writes are taken; 503 once the handle has failed for good
 * (it refuses every write until the server restarts). A full disk is
 * reported but stays 200: space may come back, and writes with it. */
static enum MHD_Result get_health(struct request *req, struct MHD_Connection *conn)
{
	struct server *srv = req->srv;
	int failing = atomic_load(&srv->write_failing);
	atolog_stats st;
	char *body;
	int rc = atolog_store_stats(srv->store, &st), n;

	if (rc != ATOLOG_OK)
		return reply_store_error(req, conn, rc, "health");
	n = asprintf(&body, "{\"status\":\"%s\",\"writes\":\"%s\",\"records\":%" PRIu64
		     ",\"last_seq\":%" PRIu64 ",\"sync\":\"%s\"}\n",
		     failing == ATOLOG_FAILED ? "failing" : "ok",
		     failing ? atolog_strerror(failing) : "ok", st.n_records,
		     st.last_seq, sync_name(srv->cfg.sync));
	if (n < 0)
		return MHD_NO;
	return reply_take(req, conn,
			  failing == ATOLOG_FAILED ? MHD_HTTP_SERVICE_UNAVAILABLE
						   : MHD_HTTP_OK,
			  "application/json", body, (size_t)n);
}

static enum MHD_Result get_metrics(struct request *req, struct MHD_Connection *conn)
{
	atolog_stats st;
	char *body;
	size_t len;
	int rc = atolog_store_stats(req->srv->store, &st);

	if (rc != ATOLOG_OK)
		return reply_store_error(req, conn, rc, "metrics");
	if (metrics_render(&req->srv->metrics, &st, atomic_load(&req->srv->in_flight),
			   &body, &len) != 0)
		return MHD_NO;
	return reply_take(req, conn, MHD_HTTP_OK,
			  "text/plain; version=0.0.4; charset=utf-8", body, len);
}

static enum MHD_Result post_backup(struct request *req, struct MHD_Connection *conn)
{
	return reply_error(req, conn, MHD_HTTP_NOT_IMPLEMENTED,
			   "%s is not available yet: it arrives with snapshots "
			   "(atolog snapshot)",
			   req->route == ROUTE_BACKUP ? "backup" : "backup cleanup");
}

enum MHD_Result handle_request(struct request *req, struct MHD_Connection *conn,
			       const char *method)
{
	switch (req->route) {
	case ROUTE_INTERACTIONS:
		return strcmp(method, MHD_HTTP_METHOD_POST) == 0
			       ? post_interaction(req, conn)
			       : get_list(req, conn);
	case ROUTE_BATCH:
		return post_batch(req, conn);
	case ROUTE_INTERACTION:
		return get_interaction(req, conn);
	case ROUTE_REPLAY:
		return get_replay(req, conn);
	case ROUTE_BACKUP:
	case ROUTE_BACKUP_CLEANUP:
		return post_backup(req, conn);
	case ROUTE_HEALTH:
		return get_health(req, conn);
	case ROUTE_METRICS:
		return get_metrics(req, conn);
	default:
		return reply_error(req, conn, MHD_HTTP_NOT_FOUND, "no such route");
	}
}
