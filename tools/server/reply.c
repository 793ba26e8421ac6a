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

/* The length of the UTF-8 sequence s starts (1 to 4), or 0 when it is
 * not a valid one: no overlong form, surrogate or code point past
 * U+10FFFF. Reads no further than a NUL. */
static size_t utf8_sequence(const unsigned char *s)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xbf;
	size_t n;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
	else
		return 0;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	}
	return n;
}

/* Messages quote what clients sent (an id from the path, a since value, a
 * field of a body), and yajl's generator lets overlong forms and
 * surrogates through even when it validates: without this, an error body
 * would not be JSON to a strict reader. */
int reply_quote(const char *s, char **out)
{
	size_t len = strlen(s);
	char *clean = malloc(len + 1);
	int rc;

	if (!clean)
		return ENOMEM;
	for (size_t i = 0; i < len;) {
		size_t n = utf8_sequence((const unsigned char *)s + i);

		if (n) {
			memcpy(clean + i, s + i, n);
			i += n;
		} else {
			clean[i++] = '?';
		}
	}
	clean[len] = '\0';
	rc = cli_json_quote(clean, out);
	free(clean);
	return rc;
}

struct MHD_Response *error_response(const char *msg)
{
	struct MHD_Response *resp;
	char *quoted, *body;
	int n;

	if (reply_quote(msg, &quoted) != 0)
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
