/*
 * stream.c - a query's interactions as a chunked response, rendered one
 * at a time as the client reads: a listing as {"interactions":[...],
 * "count":N}, a replay as NDJSON. However long the result, the server
 * holds one rendered interaction per stream.
 *
 * The first interaction is read before the status is sent, so an empty
 * replay is a 404 and a first frame that fails its checksum a 500. A
 * failure after that can no longer change the status: the stream is cut
 * (the client sees the chunked body end without its last chunk) and the
 * failure is logged with its segment and offset.
 *
 * A HEAD gets the status and headers a GET would get, without a body. A
 * chunked answer cannot give that: libmicrohttpd 0.9.75 still ends it
 * with the empty last chunk ("0\r\n\r\n"), which a client that pipelines
 * reads as the start of the next answer. So a HEAD is rendered like a GET
 * but only counted, one interaction at a time, and answered with that
 * Content-Length: the exact size a GET would send now.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

struct stream {
	struct server *srv;
	enum route route; /* for the log */
	atolog_iter *iter;
	enum stream_shape shape;
	char *line;       /* the rendered interaction being sent */
	size_t line_len, line_off;
	long count;
	bool at_end;      /* the iterator is done; the tail is pending */
	bool tail_sent;
};

/* Renders rec as the next piece of the body, with its separator. */
static int stream_render(struct stream *st, const atolog_interaction *rec)
{
	char *json, *piece;
	int rc = atolog_interaction_to_json(rec, &json), n;

	if (rc != ATOLOG_OK)
		return rc;
	if (st->shape == STREAM_NDJSON)
		n = asprintf(&piece, "%s\n", json);
	else
		n = asprintf(&piece, "%s%s", st->count ? "," : "", json);
	free(json);
	if (n < 0)
		return ENOMEM;
	free(st->line);
	st->line = piece;
	st->line_len = (size_t)n;
	st->line_off = 0;
	st->count++;
	return ATOLOG_OK;
}

/* Fetches and renders the next interaction; ATOLOG_DONE at the end. */
static int stream_advance(struct stream *st)
{
	const atolog_interaction *rec;
	int rc = atolog_iter_next(st->iter, &rec);

	if (rc == ATOLOG_OK)
		rc = stream_render(st, rec);
	return rc;
}

static int stream_tail(struct stream *st)
{
	int n;

	free(st->line);
	st->line = NULL;
	st->line_len = st->line_off = 0;
	st->tail_sent = true;
	if (st->shape == STREAM_NDJSON)
		return ATOLOG_OK;
	n = asprintf(&st->line, "],\"count\":%ld}\n", st->count);
	if (n < 0)
		return ENOMEM;
	st->line_len = (size_t)n;
	return ATOLOG_OK;
}

/* Up to max bytes of the body into buf (*filled); ATOLOG_OK, also at the
 * end (then *filled is 0), or the failure. */
static int stream_fill(struct stream *st, char *buf, size_t max, size_t *filled_out)
{
	size_t filled = 0;

	*filled_out = 0;
	while (filled < max) {
		int rc = ATOLOG_OK;

		if (st->line_off < st->line_len) {
			size_t n = st->line_len - st->line_off;

			if (n > max - filled)
				n = max - filled;
			memcpy(buf + filled, st->line + st->line_off, n);
			st->line_off += n;
			filled += n;
			continue;
		}
		if (st->tail_sent)
			break;
		if (!st->at_end) {
			rc = stream_advance(st);
			st->at_end = rc == ATOLOG_DONE;
		}
		if (st->at_end)
			rc = stream_tail(st);
		if (rc != ATOLOG_OK)
			return rc;
	}
	*filled_out = filled;
	return ATOLOG_OK;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct stream *st = cls;
	size_t filled;
	int rc = stream_fill(st, buf, max, &filled);

	(void)pos;
	if (rc != ATOLOG_OK) {
		fprintf(stderr, "atolog: serve: %s stream cut after %ld "
			"interactions: %s\n", route_name(st->route), st->count,
			atolog_errmsg(st->srv->store));
		return MHD_CONTENT_READER_END_WITH_ERROR;
	}
	if (filled == 0)
		return MHD_CONTENT_READER_END_OF_STREAM;
	return (ssize_t)filled;
}

/* The body of a HEAD's answer: libmicrohttpd asks for none (it counts it
 * as sent); should it ask, the answer ends. */
static ssize_t stream_no_body(void *cls, uint64_t pos, char *buf, size_t max)
{
	(void)cls, (void)pos, (void)buf, (void)max;
	return MHD_CONTENT_READER_END_WITH_ERROR;
}

/* HEAD: the length of the body a GET would send. */
static int stream_count(struct stream *st, uint64_t *len)
{
	char buf[4096];
	size_t filled;
	int rc;

	*len = 0;
	do {
		rc = stream_fill(st, buf, sizeof(buf), &filled);
		*len += filled;
	} while (rc == ATOLOG_OK && filled > 0);
	return rc;
}

static void stream_free(void *cls)
{
	struct stream *st = cls;

	atolog_iter_close(st->iter);
	free(st->line);
	free(st);
}

/* The opening of the body, with the first interaction (or the end). */
static int stream_start(struct stream *st)
{
	int rc = stream_advance(st);
	char *head;
	int n;

	st->at_end = rc == ATOLOG_DONE;
	if (rc != ATOLOG_OK && rc != ATOLOG_DONE)
		return rc;
	if (st->shape == STREAM_NDJSON)
		return ATOLOG_OK;
	n = asprintf(&head, "{\"interactions\":[%s", st->line ? st->line : "");
	if (n < 0)
		return ENOMEM;
	free(st->line);
	st->line = head;
	st->line_len = (size_t)n;
	st->line_off = 0;
	return ATOLOG_OK;
}

static const char *stream_type(enum stream_shape shape)
{
	return shape == STREAM_NDJSON ? "application/x-ndjson" : "application/json";
}

/* HEAD: counts the body (st is taken), answers its length and no body. */
static enum MHD_Result stream_head_reply(struct request *req,
					 struct MHD_Connection *conn,
					 struct stream *st)
{
	struct MHD_Response *resp;
	enum stream_shape shape = st->shape;
	uint64_t len;
	int rc = stream_count(st, &len);

	stream_free(st);
	if (rc != ATOLOG_OK)
		return reply_store_error(req, conn, rc, route_name(req->route));
	resp = MHD_create_response_from_callback(len, SERVE_STREAM_BLOCK,
						 stream_no_body, NULL, NULL);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, stream_type(shape));
	return reply_queue(req, conn, MHD_HTTP_OK, resp);
}

enum MHD_Result stream_reply(struct request *req, struct MHD_Connection *conn,
			     atolog_iter *iter, enum stream_shape shape,
			     const char *empty_msg)
{
	struct stream *st = calloc(1, sizeof(*st));
	struct MHD_Response *resp;
	int rc;

	if (!st) {
		atolog_iter_close(iter);
		return MHD_NO;
	}
	*st = (struct stream){ .srv = req->srv, .route = req->route, .iter = iter,
			       .shape = shape };
	rc = stream_start(st);
	if (rc == ATOLOG_OK && st->at_end && shape == STREAM_NDJSON) {
		stream_free(st);
		return reply_error(req, conn, MHD_HTTP_NOT_FOUND, "%s", empty_msg);
	}
	if (rc != ATOLOG_OK) {
		enum MHD_Result r = reply_store_error(req, conn, rc, route_name(req->route));

		stream_free(st);
		return r;
	}
	if (req->head)
		return stream_head_reply(req, conn, st);
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, SERVE_STREAM_BLOCK,
						 stream_read, st, stream_free);
	if (!resp) {
		stream_free(st);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, stream_type(shape));
	return reply_queue(req, conn, MHD_HTTP_OK, resp);
}
