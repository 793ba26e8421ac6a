/*
 * reply.c - answering a request: JSON bodies, the {"error": ...} shape
 * every failure takes, the status each atolog code maps to, and the
 * headers every response carries.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "server.h"

enum MHD_Result reply_queue(struct request *req, struct MHD_Connection *conn,
			    unsigned status, struct MHD_Response *resp)
{
	enum MHD_Result r;

	if (!resp)
		return MHD_NO;
	/* While draining, keep-alive clients are told to go: the server
	 * stops once the requests it has begun are answered. */
	if (atomic_load(&req->srv->draining))
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	if (status == MHD_HTTP_SERVICE_UNAVAILABLE)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
	if (status == MHD_HTTP_UNAUTHORIZED)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
					"Bearer realm=\"atolog\"");
	req->status = status;
	r = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return r;
}

enum MHD_Result reply_take(struct request *req, struct MHD_Connection *conn,
			   unsigned status, const char *type, char *body,
			   size_t len)
{
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);

	if (!resp) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	return reply_queue(req, conn, status, resp);
}

struct MHD_Response *error_response(const char *msg)
{
	struct MHD_Response *resp;
	char *quoted, *body;
	int n;

	if (cli_json_quote(msg, &quoted) != 0)
		return NULL;
	n = asprintf(&body, "{\"error\":%s}\n", quoted);
	free(quoted);
	if (n < 0)
		return NULL;
	resp = MHD_create_response_from_buffer((size_t)n, body, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(body);
		return NULL;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	return resp;
}

enum MHD_Result reply_error(struct request *req, struct MHD_Connection *conn,
			    unsigned status, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return reply_queue(req, conn, status, error_response(msg));
}

unsigned reply_status_of(int rc)
{
	switch (rc) {
	case ATOLOG_OK:
		return MHD_HTTP_OK;
	case ATOLOG_INVALID:
	case ATOLOG_TOOBIG: /* a field over its limit; bodies get 413 earlier */
		return MHD_HTTP_BAD_REQUEST;
	case ATOLOG_NOTFOUND:
		return MHD_HTTP_NOT_FOUND;
	case ATOLOG_EXISTS:
		return MHD_HTTP_CONFLICT;
	case ATOLOG_CORRUPT:
		return MHD_HTTP_INTERNAL_SERVER_ERROR;
	default:
		/* Disk full, a failed handle, an overloaded queue, errno:
		 * the store cannot take this now. */
		return MHD_HTTP_SERVICE_UNAVAILABLE;
	}
}

enum MHD_Result reply_store_error(struct request *req,
				  struct MHD_Connection *conn, int rc,
				  const char *what)
{
	const char *detail = atolog_errmsg(req->srv->store);

	if (!*detail)
		detail = atolog_strerror(rc);
	return reply_error(req, conn, reply_status_of(rc), "%s: %s", what, detail);
}
