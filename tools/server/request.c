/*
 * request.c - one HTTP request from its headers to its completion:
 * which route it is, whether it may have it (bearer token, method,
 * content type, body size), and its body, gathered up to the limit.
 *
 * libmicrohttpd calls request_access once when the headers are in, once
 * per piece of body, and once more when the body is complete. Refusals
 * decided from the headers alone are answered at once when a body would
 * follow or the framing is in doubt (libmicrohttpd then reads no more and
 * closes the connection), and otherwise at the last call, which keeps the
 * connection alive.
 *
 * The checks of the head (request_check_head) read a plain view of it,
 * struct request_head, and nothing else of libmicrohttpd: they are what a
 * fuzz target drives in process. Where libmicrohttpd 0.9.75 is lenient in
 * a way that lets two readers of one byte stream disagree (duplicate
 * lengths, codings other than chunked, blanks in header names, a NUL
 * decoded from %00), the request is refused and the connection closed.
 */
#include <stdarg.h>
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

enum route request_route(const char *url, char **arg)
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

/* The value of the first header line named name, or NULL; *count (if
 * given) gets how many lines have that name. */
static const char *head_field(const struct request_head *h, const char *name,
			      unsigned *count)
{
	const char *first = NULL;
	unsigned n = 0;

	for (size_t i = 0; i < h->n_fields; i++) {
		if (strcasecmp(h->fields[i].key, name) != 0)
			continue;
		if (!n++)
			first = h->fields[i].value;
	}
	if (count)
		*count = n;
	return first;
}

static bool authorized(const struct request *req, const struct request_head *h)
{
	const char *v;

	if (!req->srv->token || req->route == ROUTE_HEALTH)
		return true;
	v = head_field(h, MHD_HTTP_HEADER_AUTHORIZATION, NULL);
	if (!v || strncasecmp(v, "Bearer ", 7) != 0)
		return false;
	v += 7;
	while (*v == ' ')
		v++;
	return same_secret(v, req->srv->token);
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

static void refuse(struct request *req, unsigned status, bool close,
		   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void refuse(struct request *req, unsigned status, bool close,
		   const char *fmt, ...)
{
	va_list ap;

	req->early = status;
	req->early_close = close;
	va_start(ap, fmt);
	vsnprintf(req->early_msg, sizeof(req->early_msg), fmt, ap);
	va_end(ap);
}

/* Refuses a body that is not what the route takes (415), or has no length
 * (411), or is too long by its Content-Length (413). */
static void check_body_headers(struct request *req, const struct request_head *h)
{
	const char *type = head_field(h, MHD_HTTP_HEADER_CONTENT_TYPE, NULL);
	const char *length = head_field(h, MHD_HTTP_HEADER_CONTENT_LENGTH, NULL);
	const char *te = head_field(h, MHD_HTTP_HEADER_TRANSFER_ENCODING, NULL);
	bool json = type && type_is(type, "application/json");

	req->ndjson = type && type_is(type, "application/x-ndjson");
	if (!json && !(req->ndjson && req->route == ROUTE_BATCH))
		refuse(req, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, false,
		       "Content-Type must be application/json%s (got %s)",
		       req->route == ROUTE_BATCH ? " or application/x-ndjson" : "",
		       type ? type : "none");
	else if (!length && !te)
		refuse(req, MHD_HTTP_LENGTH_REQUIRED, false,
		       "a request body needs Content-Length or chunked encoding");
	else if (length && strtoull(length, NULL, 10) > req->srv->cfg.max_body)
		refuse(req, MHD_HTTP_CONTENT_TOO_LARGE, false,
		       "the body is %s bytes, over the limit of %zu", length,
		       req->srv->cfg.max_body);
}

/* A field name is a token (RFC 9110 5.6.2): libmicrohttpd keeps the blank
 * of "Content-Length : 5" in the name, so that line would frame nothing
 * here while a proxy may read it as the length (RFC 9112 5.1: 400). */
static bool is_token(const char *s, size_t len)
{
	static const char extra[] = "!#$%&'*+-.^_`|~";

	if (!len)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!(c >= '0' && c <= '9') && !((c | 0x20) >= 'a' && (c | 0x20) <= 'z') &&
		    !(c && strchr(extra, c)))
			return false;
	}
	return true;
}

/* A field value holds no control byte but HTAB (RFC 9110 5.5): a bare CR
 * is a line end to some readers and not to libmicrohttpd; a NUL (which it
 * would end the value at) makes the length differ from strlen. */
static bool value_is_clean(const char *s, size_t len)
{
	if (strlen(s) != len)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return false;
	}
	return true;
}

/*
 * How the body is framed, refused whenever two readers could disagree
 * (RFC 9112 6.1, 6.3): that is how requests are smuggled past proxies.
 * libmicrohttpd takes the first of two Content-Length lines (the bytes of
 * the second's body are then read as the next request), reads any
 * Transfer-Encoding other than exactly "chunked" as a body ending only
 * with the connection, and lets Transfer-Encoding win over a length.
 * Each refusal closes the connection. False when refused.
 */
static bool check_framing(struct request *req, const struct request_head *h)
{
	unsigned n_length, n_te, n_host;
	const char *length = head_field(h, MHD_HTTP_HEADER_CONTENT_LENGTH, &n_length);
	const char *te = head_field(h, MHD_HTTP_HEADER_TRANSFER_ENCODING, &n_te);
	const char *last;

	head_field(h, MHD_HTTP_HEADER_HOST, &n_host);
	for (size_t i = 0; i < h->n_fields; i++) {
		const struct request_field *f = &h->fields[i];

		if (!is_token(f->key, f->key_len) || strlen(f->key) != f->key_len) {
			refuse(req, MHD_HTTP_BAD_REQUEST, true,
			       "a header name must be a token, without blanks or "
			       "control bytes");
			return false;
		}
		if (!value_is_clean(f->value, f->value_len)) {
			refuse(req, MHD_HTTP_BAD_REQUEST, true,
			       "the value of header %.60s holds a control byte",
			       f->key);
			return false;
		}
	}
	if (h->url_bad) {
		refuse(req, MHD_HTTP_BAD_REQUEST, true,
		       "the URL holds an encoded NUL (%%00) or a raw control byte");
	} else if (n_length > 1 || n_te > 1) {
		refuse(req, MHD_HTTP_BAD_REQUEST, true, "a request may carry one %s",
		       n_length > 1 ? "Content-Length" : "Transfer-Encoding");
	} else if (length && te) {
		refuse(req, MHD_HTTP_BAD_REQUEST, true,
		       "a request may not carry both Content-Length and "
		       "Transfer-Encoding");
	} else if (te && strcasecmp(te, "chunked") != 0) {
		/* Only chunked is implemented (501); a list that does not end
		 * with it cannot be framed at all (400). */
		last = strrchr(te, ',');
		last = last ? last + 1 : te;
		last += strspn(last, " \t");
		refuse(req, strncasecmp(last, "chunked", 7) == 0 &&
				    !last[7 + strspn(last + 7, " \t")]
			    ? MHD_HTTP_NOT_IMPLEMENTED : MHD_HTTP_BAD_REQUEST,
		       true, "Transfer-Encoding must be chunked (got %.60s)", te);
	} else if (n_host > 1 ||
		   (!n_host && strcmp(h->version, MHD_HTTP_VERSION_1_0) != 0)) {
		/* RFC 9112 3.2: HTTP/1.1 needs exactly one Host. */
		refuse(req, MHD_HTTP_BAD_REQUEST, true, "%s needs one Host header",
		       h->version);
	} else {
		return true;
	}
	return false;
}

void request_check_head(struct request *req, const struct request_head *h)
{
	req->early = 0;
	req->early_close = false;
	if (!check_framing(req, h))
		return;
	if (!authorized(req, h))
		refuse(req, MHD_HTTP_UNAUTHORIZED, false,
		       "a valid bearer token is required (Authorization: Bearer ...)");
	else if (req->route == ROUTE_UNKNOWN)
		refuse(req, MHD_HTTP_NOT_FOUND, false, "no such route");
	else if (!method_allowed(req->route, h->method))
		refuse(req, MHD_HTTP_METHOD_NOT_ALLOWED, false,
		       "%.20s is not allowed here (allowed: %s)", h->method,
		       route_allows(req->route));
	else if (strcmp(h->method, MHD_HTTP_METHOD_POST) == 0 &&
		 (req->route == ROUTE_INTERACTIONS || req->route == ROUTE_BATCH ||
		  request_body_follows(h)))
		/* The admin routes take an optional body; when there is one,
		 * the same rules. */
		check_body_headers(req, h);
}

/* The transfer encoding wins over a length, as it does in libmicrohttpd. */
bool request_body_follows(const struct request_head *h)
{
	const char *length = head_field(h, MHD_HTTP_HEADER_CONTENT_LENGTH, NULL);

	if (head_field(h, MHD_HTTP_HEADER_TRANSFER_ENCODING, NULL))
		return true;
	return length && strtoull(length, NULL, 10) > 0;
}

size_t request_unescape(char *s, bool *bad)
{
	size_t len;

	for (const char *p = s; *p; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*bad = true;
	}
	len = MHD_http_unescape(s);
	if (strlen(s) != len)
		*bad = true;
	return len;
}

/* Replaces libmicrohttpd's unescaper for the path and each query key and
 * value: the same decoding, noting what it would otherwise cut silently
 * (an encoded NUL ends the C string the handlers see). */
size_t request_unescape_cb(void *cls, struct MHD_Connection *conn, char *s)
{
	struct conn_watch *w = conn_watch_of(conn);
	bool bad = false;
	size_t len;

	(void)cls;
	len = request_unescape(s, &bad);
	if (w && bad)
		w->url_bad = true;
	return len;
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
	if (resp && req->early_close)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	return reply_queue(req, conn, req->early, resp);
}

struct field_list {
	struct request_field *v;
	size_t n, cap;
};

static enum MHD_Result add_field(void *cls, enum MHD_ValueKind kind,
				 const char *key, size_t key_len,
				 const char *value, size_t value_len)
{
	struct field_list *l = cls;

	(void)kind;
	if (l->n == l->cap)
		return MHD_NO;
	l->v[l->n++] = (struct request_field){ .key = key, .key_len = key_len,
					       .value = value ? value : "",
					       .value_len = value ? value_len : 0 };
	return MHD_YES;
}

/* Checks the head as libmicrohttpd parsed it (request_check_head). */
static bool check_connection_head(struct request *req, struct MHD_Connection *conn,
				  struct conn_watch *w, const char *url,
				  const char *method, const char *version)
{
	int n = MHD_get_connection_values_n(conn, MHD_HEADER_KIND, NULL, NULL);
	struct field_list l = { .cap = n > 0 ? (size_t)n : 0 };
	struct request_head h = { .method = method, .version = version, .url = url,
				  .url_bad = w->url_bad };

	w->url_bad = false;
	l.v = calloc(l.cap ? l.cap : 1, sizeof(*l.v));
	if (!l.v)
		return false;
	MHD_get_connection_values_n(conn, MHD_HEADER_KIND, add_field, &l);
	h.fields = l.v;
	h.n_fields = l.n;
	request_check_head(req, &h);
	if (req->early && request_body_follows(&h))
		req->early_close = true; /* answered now: libmicrohttpd closes */
	free(l.v);
	return true;
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
	req->route = request_route(url, &req->arg);
	atomic_fetch_add(&srv->in_flight, 1);
	return req;
}

enum MHD_Result request_access(void *cls, struct MHD_Connection *conn,
			       const char *url, const char *method,
			       const char *version, const char *upload,
			       size_t *upload_size, void **con_cls)
{
	struct request *req = *con_cls;

	if (!req) {
		struct conn_watch *w = conn_watch_of(conn);

		/* Without its watch (out of memory when it opened) a
		 * connection could not be cut or checked: closed. */
		if (!w)
			return MHD_NO;
		atomic_store(&w->in_request, true);
		req = request_begin(cls, url);
		if (!req)
			return MHD_NO;
		*con_cls = req;
		req->head = strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
		if (!check_connection_head(req, conn, w, url, method, version))
			return MHD_NO;
		/* A refusal that closes is answered at once, before any body
		 * is read: libmicrohttpd then reads no more of the connection. */
		if (req->early_close)
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
