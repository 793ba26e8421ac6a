/*
 * handlers.c - the routes, once a request has passed request.c's checks:
 * capture (one interaction or a batch), get, list, replay, health and
 * metrics; the admin routes are in admin.c.
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

#include "cli.h"
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

/* Hands the write to a writer thread; once the server is stopping, a
 * capture that arrives between the drain and the end is refused. */
enum MHD_Result submit_write(struct request *req, struct MHD_Connection *conn,
			     void (*work)(struct request *req))
{
	if (writers_submit(&req->srv->writers, req, conn, work))
		return MHD_YES;
	return reply_error(req, conn, MHD_HTTP_SERVICE_UNAVAILABLE,
			   "the server is stopping; nothing was stored");
}

/* A capture being written: what the writer thread found. The message is
 * copied there, since atolog's messages are per thread. */
struct capture {
	atolog_interaction *in, *out;
	int rc;
	char msg[512];
};

static void capture_free(void *state)
{
	struct capture *c = state;

	atolog_interaction_free(c->in);
	atolog_interaction_free(c->out);
	free(c);
}

static void capture_note(struct capture *c, atolog_store *store, int rc)
{
	const char *m = atolog_errmsg(store);

	c->rc = rc;
	snprintf(c->msg, sizeof(c->msg), "%s", *m ? m : atolog_strerror(rc));
}

/* Runs on a writer thread. */
static void capture_work(struct request *req)
{
	struct capture *c = req->work_state;

	capture_note(c, req->srv->store,
		     atolog_interaction_record(req->srv->store, c->in, &c->out));
}

/* POST /interactions: the seed's body, checked here, written by a writer
 * thread, answered with 201 and the interaction as stored (id,
 * created_at, canonical project) once it is durable. */
static enum MHD_Result post_interaction(struct request *req,
					struct MHD_Connection *conn)
{
	struct server *srv = req->srv;
	struct capture *c = req->work_state;
	enum MHD_Result r;
	int rc;

	if (c && !req->work_done)
		return MHD_YES; /* still being written (not called while suspended) */
	if (c) {
		note_write(srv, c->rc);
		if (c->rc != ATOLOG_OK) {
			bool refused = reply_status_of(c->rc) != MHD_HTTP_SERVICE_UNAVAILABLE;

			atomic_fetch_add(refused ? &srv->metrics.ingest_refused
						 : &srv->metrics.ingest_failed, 1);
			return reply_error(req, conn, reply_status_of(c->rc), "record: %s",
					   c->msg);
		}
		atomic_fetch_add(&srv->metrics.ingest_stored, 1);
		return reply_interaction(req, conn, MHD_HTTP_CREATED, c->out);
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return MHD_NO;
	req->work_state = c;
	req->work_free = capture_free;
	/* The record call checks the rest (blank prompt, limits) itself and
	 * writes nothing on a refusal: no separate validate pass. */
	rc = atolog_interaction_from_json(body_of(req), req->len, &c->in);
	if (rc != ATOLOG_OK) {
		atomic_fetch_add(&srv->metrics.ingest_refused, 1);
		r = reply_error(req, conn, reply_status_of(rc), "%s", atolog_errmsg(NULL));
		return r;
	}
	return submit_write(req, conn, capture_work);
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
	int rc;        /* the write's, set by the writer thread */
	char msg[512];
};

static bool batch_item_stored(const struct batch_slot *s)
{
	return s->stored && !s->why;
}

static void batch_free(void *state)
{
	struct batch *b = state;

	for (size_t i = 0; i < b->n; i++) {
		atolog_interaction_free(b->slots[i].item);
		atolog_interaction_free(b->slots[i].stored);
		free(b->slots[i].why);
	}
	free(b->slots);
	free(b);
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

int batch_split_lines(const char *body, size_t len, atolog_json_item_fn fn,
		      void *ctx)
{
	size_t index = 0, at = 0;

	while (at < len) {
		const char *p = body + at, *nl = memchr(p, '\n', len - at);
		size_t line = nl ? (size_t)(nl - p) : len - at, used = line;
		atolog_interaction *item = NULL;
		int rc;

		while (used > 0 && (p[used - 1] == '\r' || p[used - 1] == ' ' ||
				    p[used - 1] == '\t'))
			used--;
		at += line + 1;
		if (used == 0)
			continue;
		rc = atolog_interaction_from_json(p, used, &item);
		if (rc == ENOMEM) /* the server's want, not the item's fault */
			return rc;
		rc = fn(index++, rc, rc == ATOLOG_OK ? NULL : atolog_errmsg(NULL),
			item, ctx);
		if (rc != 0)
			return rc;
	}
	return ATOLOG_OK;
}

/* Why item k of a write was not stored. */
static char *batch_item_why(const struct batch_slot *slot, int rc)
{
	char *why = NULL;

	if (rc == ATOLOG_EXISTS &&
	    asprintf(&why, "an interaction with id %s is already stored",
		     slot->item->id) >= 0)
		return why;
	return strdup(atolog_strerror(rc));
}

/*
 * Records every item that passed its checks, in one commit. Each item's
 * fate is read from its own code: the call's return names only the first
 * failure, and an item refused for itself says nothing of the others. A
 * store error (503) is the answer only when nothing was stored.
 */
static int batch_record(struct server *srv, struct batch *b)
{
	size_t n = 0, stored = 0, *at = calloc(b->n ? b->n : 1, sizeof(*at));
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
	for (size_t k = 0; k < n; k++) {
		struct batch_slot *slot = &b->slots[at[k]];

		slot->stored = out[k];
		stored += rcs[k] == ATOLOG_OK;
		if (rcs[k] != ATOLOG_OK)
			slot->why = batch_item_why(slot, rcs[k]);
	}
	if (!stored && reply_status_of(rc) == MHD_HTTP_SERVICE_UNAVAILABLE) {
		const char *m = atolog_errmsg(srv->store);

		snprintf(b->msg, sizeof(b->msg), "%s", *m ? m : atolog_strerror(rc));
		goto done; /* nothing was stored */
	}
	rc = ATOLOG_OK;
done:
	free(at);
	free(in);
	free(out);
	free(rcs);
	return rc;
}

/* {"ids": [id or null, ...], "errors": [{"index": i, "error": "..."}]}:
 * every item not stored has its error, so that the status (207 when there
 * is one) never says all were stored while an id is null. */
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

		if (batch_item_stored(s))
			fprintf(f, "%s\"%s\"", i ? "," : "", s->stored->id);
		else
			fputs(i ? ",null" : "null", f);
	}
	fputs("],\"errors\":[", f);
	for (size_t i = 0; i < b->n; i++) {
		const struct batch_slot *s = &b->slots[i];

		if (batch_item_stored(s))
			continue;
		fprintf(f, "%s{\"index\":%zu,\"error\":", (*n_errors)++ ? "," : "", i);
		if (reply_quote(s->why ? s->why : "not stored", &quoted) == 0) {
			fputs(quoted, f);
			free(quoted);
		} else {
			fputs("\"not stored (out of memory saying why)\"", f);
		}
		fputc('}', f);
	}
	fputs("]}\n", f);
	return fclose(f) == 0 ? 0 : ENOMEM;
}

/* Runs on a writer thread. */
static void batch_work(struct request *req)
{
	struct batch *b = req->work_state;

	b->rc = batch_record(req->srv, b);
}

/* Adds a batch's items to the ingest counters: stored, refused as
 * invalid or duplicate, or failed by the store. */
static void batch_count(struct server *srv, const struct batch *b, bool store_failed)
{
	for (size_t i = 0; i < b->n; i++) {
		const struct batch_slot *s = &b->slots[i];
		atomic_uint_fast64_t *c = &srv->metrics.ingest_refused;

		if (s->item && store_failed)
			c = &srv->metrics.ingest_failed;
		else if (batch_item_stored(s))
			c = &srv->metrics.ingest_stored;
		atomic_fetch_add(c, 1);
	}
}

/* The answer once the batch is written. */
static enum MHD_Result batch_answer(struct request *req, struct MHD_Connection *conn,
				    struct batch *b)
{
	struct server *srv = req->srv;
	size_t len, n_errors = 0;
	char *body;

	note_write(srv, b->rc);
	if (b->rc != ATOLOG_OK) {
		batch_count(srv, b, true);
		return reply_error(req, conn, reply_status_of(b->rc), "record batch: %s",
				   b->rc == ENOMEM ? "out of memory" : b->msg);
	}
	if (batch_render(b, &body, &len, &n_errors) != 0)
		return reply_error(req, conn, MHD_HTTP_SERVICE_UNAVAILABLE,
				   "record batch: out of memory rendering the answer");
	batch_count(srv, b, false);
	return reply_take(req, conn, n_errors ? MHD_HTTP_MULTI_STATUS : MHD_HTTP_CREATED,
			  "application/json", body, len);
}

static enum MHD_Result post_batch(struct request *req, struct MHD_Connection *conn)
{
	struct batch *b = req->work_state;
	int rc;

	if (b)
		return req->work_done ? batch_answer(req, conn, b) : MHD_YES;
	b = calloc(1, sizeof(*b));
	if (!b)
		return MHD_NO;
	req->work_state = b;
	req->work_free = batch_free;
	rc = req->ndjson ? batch_split_lines(body_of(req), req->len, batch_add, b)
			 : atolog_interactions_from_json_array(body_of(req), req->len,
							       batch_add, b);
	if (rc == ATOLOG_TOOBIG)
		return reply_error(req, conn, MHD_HTTP_CONTENT_TOO_LARGE,
				   "a batch holds at most %d interactions",
				   SERVE_BATCH_MAX_ITEMS);
	if (rc != ATOLOG_OK)
		return reply_error(req, conn, reply_status_of(rc), "%s",
				   atolog_errmsg(NULL));
	return submit_write(req, conn, batch_work);
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

int list_query_parse(request_arg_fn arg, void *ctx, atolog_query *q,
		     char *why, size_t size)
{
	const char *limit = arg(ctx, "limit");
	char *end;

	*q = (atolog_query){
		.project = arg(ctx, "project"),
		.session_id = arg(ctx, "session_id"),
		.client = arg(ctx, "client"),
		.since = arg(ctx, "since"),
		.limit = ATOLOG_LIST_LIMIT_DEFAULT,
	};
	if (limit) {
		errno = 0;
		q->limit = strtol(limit, &end, 10);
		if (errno || end == limit || *end) {
			snprintf(why, size, "limit must be an integer (got \"%.64s\")",
				 limit);
			return ATOLOG_INVALID;
		}
	}
	if (q->limit > ATOLOG_LIST_LIMIT_MAX)
		q->limit = ATOLOG_LIST_LIMIT_MAX;
	return ATOLOG_OK;
}

static const char *connection_arg(void *conn, const char *key)
{
	return query_arg(conn, key);
}

/* GET /interactions?project=&session_id=&client=&since=&limit= */
static enum MHD_Result get_list(struct request *req, struct MHD_Connection *conn)
{
	char why[LIST_QUERY_WHY_SIZE];
	atolog_query q;
	atolog_iter *iter;
	int rc = list_query_parse(connection_arg, conn, &q, why, sizeof(why));

	if (rc != ATOLOG_OK)
		return reply_error(req, conn, MHD_HTTP_BAD_REQUEST, "%s", why);
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
	case ROUTE_COMPACT:
		return post_admin(req, conn);
	case ROUTE_HEALTH:
		return get_health(req, conn);
	case ROUTE_METRICS:
		return get_metrics(req, conn);
	default:
		return reply_error(req, conn, MHD_HTTP_NOT_FOUND, "no such route");
	}
}
