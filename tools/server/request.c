/*
 * request.c - one HTTP request from its headers to its completion:
 * which route it is, whether it may have it (bearer token, method,
 * content type, body size), and its body, gathered up to the limit.
 *
 * libmicrohttpd calls request_access once when the headers are in, once
 * per piece of body, and once more when the body is complete. Refusals
 * decided from the headers alone are answered at once when a body would
 * follow (libmicrohttpd then discards it and closes the connection), and
 * otherwise at the last call, which keeps the connection alive.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "server.h"

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* "/sessions/ID/replay" -> ID, or NULL. */
static char *replay_session(const char *url)
{
	static const char prefix[] = "/sessions/", suffix[] = "/replay";
	size_t len = strlen(url), pl = sizeof(prefix) - 1, sl = sizeof(suffix) - 1;

	if (len <= pl + sl || strncmp(url, prefix, pl) != 0 ||
	    strcmp(url + len - sl, suffix) != 0)
		return NULL;
	return strndup(url + pl, len - pl - sl);
}

/* The route of a path; *arg gets the path's {id} (malloc'ed) if any. */
static enum route route_of(const char *url, char **arg)
{
	static const struct {
		const char *path;
		enum route route;
	} fixed[] = {
		{ "/interactions", ROUTE_INTERACTIONS },
		{ "/interactions/batch", ROUTE_BATCH },
		{ "/admin/backup", ROUTE_BACKUP },
		{ "/admin/backup/cleanup", ROUTE_BACKUP_CLEANUP },
		{ "/admin/compact", ROUTE_COMPACT },
		{ "/health", ROUTE_HEALTH },
		{ "/metrics", ROUTE_METRICS },
	};
	static const char item[] = "/interactions/";

	*arg = NULL;
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		if (strcmp(url, fixed[i].path) == 0)
			return fixed[i].route;
	}
	if (strncmp(url, item, sizeof(item) - 1) == 0 && url[sizeof(item) - 1] &&
	    !strchr(url + sizeof(item) - 1, '/')) {
		*arg = strdup(url + sizeof(item) - 1);
		return *arg ? ROUTE_INTERACTION : ROUTE_UNKNOWN;
	}
	*arg = replay_session(url);
	return *arg ? ROUTE_REPLAY : ROUTE_UNKNOWN;
}

/* The methods a route answers, for 405's Allow header. */
static const char *route_allows(enum route r)
{
	switch (r) {
	case ROUTE_INTERACTIONS:
		return "GET, HEAD, POST";
	case ROUTE_BATCH:
	case ROUTE_BACKUP:
	case ROUTE_BACKUP_CLEANUP:
	case ROUTE_COMPACT:
		return "POST";
	default:
		return "GET, HEAD";
	}
}

static bool method_allowed(enum route r, const char *method)
{
	bool post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;
	bool get = strcmp(method, MHD_HTTP_METHOD_GET) == 0 ||
		   strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;

	if (r == ROUTE_INTERACTIONS)
		return post || get;
	return strcmp(route_allows(r), "POST") == 0 ? post : get;
}

/* Compares without stopping at the first difference, so the time taken
 * tells nothing about how much of a guessed token was right. */
static bool same_secret(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned char diff = la != lb;

	for (size_t i = 0; i < la; i++)
		diff |= (unsigned char)a[i] ^ (unsigned char)b[i % (lb ? lb : 1)];
	return diff == 0;
}

static bool authorized(struct server *srv, struct MHD_Connection *conn,
		       enum route r)
{
	const char *h;

	if (!srv->token || r == ROUTE_HEALTH)
		return true;
	h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
					MHD_HTTP_HEADER_AUTHORIZATION);
	if (!h || strncasecmp(h, "Bearer ", 7) != 0)
		return false;
	h += 7;
	while (*h == ' ')
		h++;
	return same_secret(h, srv->token);
}

/* The media type of the body, without parameters, matches want:
 * "application/json", "Application/JSON ; charset=utf-8". */
static bool type_is(const char *type, const char *want)
{
	size_t n = strlen(want);

	type += strspn(type, " \t");
	if (strncasecmp(type, want, n) != 0)
		return false;
	type += n;
	type += strspn(type, " \t");
	return *type == '\0' || *type == ';';
}

/* Refuses a body that is not what the route takes (415), or has no length
 * (411), or is too long by its Content-Length (413). */
static void check_body_headers(struct request *req, struct MHD_Connection *conn)
{
	const char *type = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						       MHD_HTTP_HEADER_CONTENT_TYPE);
	const char *length = MHD_lookup_connection_value(
		conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	const char *te = MHD_lookup_connection_value(
		conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
	bool json = type && type_is(type, "application/json");

	req->ndjson = type && type_is(type, "application/x-ndjson");
	if (!json && !(req->ndjson && req->route == ROUTE_BATCH)) {
		req->early = MHD_HTTP_UNSUPPORTED_MEDIA_TYPE;
		snprintf(req->early_msg, sizeof(req->early_msg),
			 "Content-Type must be application/json%s (got %s)",
			 req->route == ROUTE_BATCH ? " or application/x-ndjson" : "",
			 type ? type : "none");
	} else if (!length && !(te && strcasestr(te, "chunked"))) {
		req->early = MHD_HTTP_LENGTH_REQUIRED;
		snprintf(req->early_msg, sizeof(req->early_msg),
			 "a request body needs Content-Length or chunked encoding");
	} else if (length && strtoull(length, NULL, 10) > req->srv->cfg.max_body) {
		req->early = MHD_HTTP_CONTENT_TOO_LARGE;
		snprintf(req->early_msg, sizeof(req->early_msg),
			 "the body is %s bytes, over the limit of %zu", length,
			 req->srv->cfg.max_body);
	}
}

static bool body_follows(struct MHD_Connection *conn);

static const char *header(struct MHD_Connection *conn, const char *name)
{
	return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
}

/* Everything that can be decided from the headers, into req->early. */
static void check_headers(struct request *req, struct MHD_Connection *conn,
			  const char *method)
{
	/* Both framings at once is how requests are smuggled past proxies
	 * (RFC 9112 6.3): refused, whatever the route. */
	if (header(conn, MHD_HTTP_HEADER_CONTENT_LENGTH) &&
	    header(conn, MHD_HTTP_HEADER_TRANSFER_ENCODING)) {
		req->early = MHD_HTTP_BAD_REQUEST;
		snprintf(req->early_msg, sizeof(req->early_msg),
			 "a request may not carry both Content-Length and "
			 "Transfer-Encoding");
	} else if (!authorized(req->srv, conn, req->route)) {
		req->early = MHD_HTTP_UNAUTHORIZED;
		snprintf(req->early_msg, sizeof(req->early_msg),
			 "a valid bearer token is required (Authorization: Bearer ...)");
	} else if (req->route == ROUTE_UNKNOWN) {
		req->early = MHD_HTTP_NOT_FOUND;
		snprintf(req->early_msg, sizeof(req->early_msg), "no such route");
	} else if (!method_allowed(req->route, method)) {
		req->early = MHD_HTTP_METHOD_NOT_ALLOWED;
		snprintf(req->early_msg, sizeof(req->early_msg),
			 "%s is not allowed here (allowed: %s)", method,
			 route_allows(req->route));
	} else if (strcmp(method, MHD_HTTP_METHOD_POST) == 0 &&
		   (req->route == ROUTE_INTERACTIONS || req->route == ROUTE_BATCH ||
		    body_follows(conn))) {
		/* The admin routes take an optional body; when there is one,
		 * the same rules. */
		check_body_headers(req, conn);
	}
}

/* Whether a body follows the headers (then an early answer closes). The
 * transfer encoding wins over a length, as it does in libmicrohttpd. */
static bool body_follows(struct MHD_Connection *conn)
{
	const char *length = header(conn, MHD_HTTP_HEADER_CONTENT_LENGTH);

	if (header(conn, MHD_HTTP_HEADER_TRANSFER_ENCODING))
		return true;
	return length && strtoull(length, NULL, 10) > 0;
}

struct conn_watch *conn_watch_of(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *info =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return info ? info->socket_context : NULL;
}

static enum MHD_Result answer_early(struct request *req,
				    struct MHD_Connection *conn)
{
	struct MHD_Response *resp = error_response(req->early_msg);

	if (resp && req->early == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW,
					route_allows(req->route));
	return reply_queue(req, conn, req->early, resp);
}

/* A request's body must arrive within SERVE_UPLOAD_TIMEOUTS times the
 * connection timeout: a client that trickles a byte now and then never
 * goes idle, so the idle timeout alone would let it hold its connection. */
static bool upload_overdue(const struct request *req)
{
	uint64_t limit = (uint64_t)req->srv->cfg.timeout_s * SERVE_UPLOAD_TIMEOUTS *
			 1000000000u;

	return now_ns() - req->start_ns > limit;
}

/* Throws body bytes away (a refused or oversized request), up to the
 * deadline, so that the answer can still be sent once the body has been
 * read: libmicrohttpd 0.9 cannot answer in the middle of an upload. */
static enum MHD_Result discard_body(struct request *req, size_t *size)
{
	req->discarded += *size;
	*size = 0;
	return upload_overdue(req) ? MHD_NO : MHD_YES;
}

/* Keeps up to max_body bytes; beyond, discards (answered with 413). */
static enum MHD_Result take_body(struct request *req, const char *data,
				 size_t *size)
{
	size_t n = *size, max = req->srv->cfg.max_body;

	atomic_fetch_add(&req->srv->metrics.body_bytes, n);
	if (req->too_big || n > max - req->len) {
		req->too_big = true;
		return discard_body(req, size);
	}
	*size = 0;
	if (upload_overdue(req))
		return MHD_NO;
	if (req->len + n > req->cap) {
		size_t cap = req->cap ? req->cap : 4096;
		char *grown;

		while (cap < req->len + n)
			cap *= 2;
		if (cap > max)
			cap = max;
		grown = realloc(req->body, cap + 1);
		if (!grown)
			return MHD_NO;
		req->body = grown;
		req->cap = cap;
	}
	memcpy(req->body + req->len, data, n);
	req->len += n;
	req->body[req->len] = '\0';
	return MHD_YES;
}

static struct request *request_begin(struct server *srv, const char *url)
{
	struct request *req = calloc(1, sizeof(*req));

	if (!req)
		return NULL;
	req->srv = srv;
	req->start_ns = now_ns();
	req->route = route_of(url, &req->arg);
	atomic_fetch_add(&srv->in_flight, 1);
	return req;
}

enum MHD_Result request_access(void *cls, struct MHD_Connection *conn,
			       const char *url, const char *method,
			       const char *version, const char *upload,
			       size_t *upload_size, void **con_cls)
{
	struct request *req = *con_cls;

	(void)version;
	if (!req) {
		struct conn_watch *w = conn_watch_of(conn);

		/* Without its watch (out of memory when it opened) a
		 * connection could not be cut: closed. */
		if (!w)
			return MHD_NO;
		atomic_store(&w->in_request, true);
		req = request_begin(cls, url);
		if (!req)
			return MHD_NO;
		*con_cls = req;
		req->head = strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
		check_headers(req, conn, method);
		if (req->early && body_follows(conn))
			return answer_early(req, conn);
		return MHD_YES;
	}
	if (*upload_size)
		return req->early ? discard_body(req, upload_size)
				  : take_body(req, upload, upload_size);
	if (req->early)
		return answer_early(req, conn);
	if (req->too_big)
		return reply_error(req, conn, MHD_HTTP_CONTENT_TOO_LARGE,
				   "the body is over the limit of %zu bytes",
				   req->srv->cfg.max_body);
	return handle_request(req, conn, method);
}

void request_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
		       enum MHD_RequestTerminationCode toe)
{
	struct server *srv = cls;
	struct request *req = *con_cls;
	struct conn_watch *w = conn_watch_of(conn);

	(void)toe;
	/* The next request's headers are due from now. */
	if (w) {
		atomic_store(&w->head_since_ns, now_ns());
		atomic_store(&w->in_request, false);
	}
	if (!req)
		return;
	metrics_observe(&srv->metrics, req->route, req->status,
			now_ns() - req->start_ns);
	if (req->work_state)
		req->work_free(req->work_state);
	free(req->arg);
	free(req->body);
	free(req);
	*con_cls = NULL;
	atomic_fetch_sub(&srv->in_flight, 1);
}
