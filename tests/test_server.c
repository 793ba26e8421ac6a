/*
 * test_server.c - `atolog serve`, driven over real HTTP.
 *
 * Each test starts the real binary ($ATOLOG_CLI) on a free loopback port
 * (--listen 127.0.0.1:0; the bound URL is the first line on its stdout)
 * and talks to it with libcurl, or with a raw socket where a client must
 * misbehave (no length, a stalled upload). Expected listings and replays
 * come from the naive model (model.c), never from the server; JSON is
 * read back with jansson, an independent parser.
 *
 * What is covered: every route and every error status the issue lists;
 * backups (snapshots) and their cleanup over HTTP;
 * batches mixing good and bad items, as a JSON array and as NDJSON; a
 * long replay; auth on and off; a full disk (a file size limit lowered on
 * the running server) answered 503 while reads go on, and writes resuming;
 * stalled clients timed out without holding the server, and trickled
 * headers cut by their deadline; HEADs pipelined on one connection, read
 * byte for byte; framing a proxy could read differently (request
 * smuggling) refused and the connection closed; a few hundred hostile
 * requests; SIGTERM draining a request in flight; kill -9 under concurrent
 * keep-alive load, then a restart with every acknowledged interaction
 * present exactly once.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "check.h"
#include "model.h"

static const char *cli_path;

/* ------------------------------------------------------------------------
 * The server process.
 */

struct server {
	pid_t pid;
	char url[128];
	int port;
};

/* Starts `atolog --data dir [--sync mode] serve --listen 127.0.0.1:0
 * extra...` and waits for its URL. extra ends with NULL. */
static bool __attribute__((sentinel))
server_start(struct server *srv, const char *dir, const char *sync, ...)
{
	char *argv[32] = { "atolog", "--data", (char *)dir };
	int argc = 3, pipefd[2];
	char line[512];
	size_t len = 0;
	const char *u;
	va_list ap;

	if (sync) {
		argv[argc++] = "--sync";
		argv[argc++] = (char *)sync;
	}
	argv[argc++] = "serve";
	argv[argc++] = "--listen";
	argv[argc++] = "127.0.0.1:0";
	va_start(ap, sync);
	while (argc < 31 && (argv[argc] = va_arg(ap, char *)) != NULL)
		argc++;
	va_end(ap);
	argv[argc] = NULL;
	if (pipe(pipefd) != 0)
		abort();
	srv->pid = fork();
	if (srv->pid < 0)
		abort();
	if (srv->pid == 0) {
		/* A test that dies takes its server with it. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(pipefd[1], 1);
		close(pipefd[0]);
		close(pipefd[1]);
		execv(cli_path, argv);
		_exit(127);
	}
	close(pipefd[1]);
	while (len < sizeof(line) - 1) {
		struct pollfd p = { .fd = pipefd[0], .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, 20000) <= 0)
			break;
		n = read(pipefd[0], line + len, sizeof(line) - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
		if (memchr(line, '\n', len))
			break;
	}
	close(pipefd[0]);
	line[len] = '\0';
	u = strstr(line, "\"listening\":\"");
	if (!u || sscanf(u + 13, "%127[^\"]", srv->url) != 1) {
		int status;

		waitpid(srv->pid, &status, 0);
		srv->pid = -1;
		return false;
	}
	srv->port = atoi(strrchr(srv->url, ':') + 1);
	return true;
}

/* Sends sig and returns the exit status (128 + signal when killed). */
static int server_stop(struct server *srv, int sig)
{
	int status;

	if (srv->pid <= 0)
		return -1;
	kill(srv->pid, sig);
	while (waitpid(srv->pid, &status, 0) < 0 && errno == EINTR)
		;
	srv->pid = -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* The exit status of a server that is expected to refuse to start. */
static int server_start_fails(const char *dir, const char *extra)
{
	pid_t pid = fork();
	int status, null_fd;

	if (pid == 0) {
		null_fd = open("/dev/null", O_WRONLY);
		dup2(null_fd, 1);
		dup2(null_fd, 2);
		execl(cli_path, "atolog", "--data", dir, "serve", "--listen",
		      "127.0.0.1:0", extra, (char *)NULL);
		_exit(127);
	}
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* ------------------------------------------------------------------------
 * HTTP with libcurl.
 */

struct http {
	long status;
	char *body;
	size_t len;
	char headers[4096];
	size_t hlen;
	long connects; /* new connections this request opened */
};

static size_t on_body(char *data, size_t size, size_t n, void *ctx)
{
	struct http *r = ctx;
	char *grown = realloc(r->body, r->len + size * n + 1);

	if (!grown)
		return 0;
	r->body = grown;
	memcpy(r->body + r->len, data, size * n);
	r->len += size * n;
	r->body[r->len] = '\0';
	return size * n;
}

static size_t on_header(char *data, size_t size, size_t n, void *ctx)
{
	struct http *r = ctx;
	size_t take = size * n;

	if (take > sizeof(r->headers) - 1 - r->hlen)
		take = sizeof(r->headers) - 1 - r->hlen;
	memcpy(r->headers + r->hlen, data, take);
	r->hlen += take;
	r->headers[r->hlen] = '\0';
	return size * n;
}

/* One request on c (connections are reused between calls on one c).
 * type NULL sends no Content-Type; token NULL no Authorization. */
static long http_on(CURL *c, struct http *r, const char *method, const char *url,
		    const char *type, const char *body, size_t len,
		    const char *token)
{
	struct curl_slist *h = curl_slist_append(NULL, "Expect:");
	char line[512];
	CURLcode cc;

	memset(r, 0, sizeof(*r));
	curl_easy_reset(c);
	if (type) {
		snprintf(line, sizeof(line), "Content-Type: %s", type);
		h = curl_slist_append(h, line);
	}
	if (token) {
		snprintf(line, sizeof(line), "Authorization: Bearer %s", token);
		h = curl_slist_append(h, line);
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if (strcmp(method, "POST") == 0) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)(body ? len : 0));
	} else if (strcmp(method, "GET") != 0) {
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
		if (strcmp(method, "HEAD") == 0)
			curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	}
	cc = curl_easy_perform(c);
	curl_slist_free_all(h);
	if (cc != CURLE_OK) {
		r->status = -1;
		return -1;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &r->connects);
	if (!r->body) {
		r->body = calloc(1, 1);
		if (!r->body)
			abort();
	}
	return r->status;
}

static CURL *shared_curl;

static long http(struct http *r, const char *method, const char *url,
		 const char *type, const char *body, const char *token)
{
	return http_on(shared_curl, r, method, url, type, body,
		       body ? strlen(body) : 0, token);
}

static void http_free(struct http *r)
{
	free(r->body);
	r->body = NULL;
}

/* url = base + path (printf style). */
static void __attribute__((format(printf, 3, 4)))
url_of(char *out, const struct server *srv, const char *fmt, ...)
{
	size_t n = (size_t)snprintf(out, 1024, "%s", srv->url);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(out + n, 1024 - n, fmt, ap);
	va_end(ap);
}

static json_t *json_of(int line, const struct http *r)
{
	json_error_t e;
	json_t *j = json_loadb(r->body, r->len, 0, &e);

	if (!j) {
		fprintf(stderr, "%s:%d: body is not JSON (%s): %.200s\n", __FILE__,
			line, e.text, r->body);
		check_failures++;
	}
	return j;
}

static const char *jstr(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "";
}

static const char good_body[] = "{\"prompt\":\"fine\",\"session_id\":\"e\"}";

/* POSTs good_body, which must be stored (201). */
static void post_good(const struct server *srv)
{
	char url[1024];
	struct http r;

	url_of(url, srv, "/interactions");
	CHECK_INT(http(&r, "POST", url, "application/json", good_body, NULL), 201);
	http_free(&r);
}

/* The status must be want and the body {"error": "...text..."}. */
static void check_error(int line, const struct http *r, long want, const char *text)
{
	json_t *j;

	if (r->status != want) {
		fprintf(stderr, "%s:%d: status %ld, want %ld: %.300s\n", __FILE__, line,
			r->status, want, r->body ? r->body : "");
		check_failures++;
		return;
	}
	j = json_of(line, r);
	if (j && (!json_is_string(json_object_get(j, "error")) ||
		  !strstr(jstr(j, "error"), text))) {
		fprintf(stderr, "%s:%d: error body %.300s lacks \"%s\"\n", __FILE__,
			line, r->body, text);
		check_failures++;
	}
	json_decref(j);
}

/* The interaction a 201/200 body describes, into the model. */
static void model_add_json(struct model *m, const json_t *o)
{
	atolog_interaction rec = { 0 };

	snprintf(rec.id, sizeof(rec.id), "%s", jstr(o, "id"));
	if (atolog_time_parse(jstr(o, "created_at_iso"), &rec.created_at) != ATOLOG_OK)
		CHECK_FAILF("created_at_iso %s", jstr(o, "created_at_iso"));
	rec.seq = (uint64_t)json_integer_value(json_object_get(o, "seq"));
	rec.prompt = jstr(o, "prompt");
	rec.project = jstr(o, "project");
	rec.session_id = jstr(o, "session_id");
	rec.client = jstr(o, "client");
	model_add(m, &rec);
}

/* Records the store's count, as /health reports it. */
static long long health_records(const struct server *srv)
{
	char url[1024];
	struct http r;
	long long n = -1;
	json_t *j;

	url_of(url, srv, "/health");
	if (http(&r, "GET", url, NULL, NULL, NULL) == 200 &&
	    (j = json_of(__LINE__, &r)) != NULL) {
		n = json_integer_value(json_object_get(j, "records"));
		json_decref(j);
	}
	http_free(&r);
	return n;
}

/* ------------------------------------------------------------------------
 * Raw sockets, for clients curl will not imitate.
 */

static int raw_connect(const struct server *srv)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons((uint16_t)srv->port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		CHECK_FAILF("connect: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static void raw_send_n(int fd, const char *s, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = send(fd, s + done, len - done, MSG_NOSIGNAL);

		if (n <= 0)
			return;
		done += (size_t)n;
	}
}

static void raw_send(int fd, const char *s)
{
	raw_send_n(fd, s, strlen(s));
}

/* Reads until the peer closes or ms pass without a byte; returns what
 * came (malloc'ed, NUL-terminated, *len bytes if len is given) and whether
 * the peer closed. */
static char *raw_recv(int fd, int ms, bool *closed, size_t *len_out)
{
	char *buf = calloc(1, 65536);
	size_t len = 0;

	*closed = false;
	while (buf && len < 65535) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, ms) <= 0)
			break;
		n = recv(fd, buf + len, 65535 - len, 0);
		if (n <= 0) {
			*closed = true;
			break;
		}
		len += (size_t)n;
	}
	if (len_out)
		*len_out = len;
	return buf;
}

static char *raw_read(int fd, int ms, bool *closed)
{
	return raw_recv(fd, ms, closed, NULL);
}

/* One answer at the front of a byte stream, as a client must frame it
 * (RFC 9112 6.3): no body after a HEAD, 1xx, 204 or 304; else chunked,
 * Content-Length, or up to the close. */
struct raw_answer {
	int status;
	long length;     /* Content-Length, or -1 */
	bool chunked;    /* Transfer-Encoding: chunked */
	bool close;      /* Connection: close */
	char type[128];  /* Content-Type */
	size_t body_at, body_len;
	size_t total;    /* bytes of the whole answer */
};

static const char *header_in(const char *head, size_t head_len, const char *name,
			     size_t *vlen)
{
	size_t nl = strlen(name);

	for (const char *p = head; p && p < head + head_len;) {
		const char *eol = memchr(p, '\n', (size_t)(head + head_len - p));

		if (!eol)
			break;
		if ((size_t)(eol - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			const char *v = p + nl + 1;

			v += strspn(v, " ");
			*vlen = (size_t)(eol - v) - (eol > v && eol[-1] == '\r');
			return v;
		}
		p = eol + 1;
	}
	return NULL;
}

/* False when buf[0..len) does not start with a whole answer. */
static bool raw_parse(const char *buf, size_t len, bool closed, bool head_request,
		      struct raw_answer *a)
{
	const char *end = memmem(buf, len, "\r\n\r\n", 4), *v;
	size_t head_len, vlen;

	memset(a, 0, sizeof(*a));
	a->length = -1;
	if (!end || len < 13 || strncmp(buf, "HTTP/1.1 ", 9) != 0 ||
	    sscanf(buf + 9, "%3d", &a->status) != 1)
		return false;
	head_len = (size_t)(end - buf) + 4;
	if ((v = header_in(buf, head_len, "Content-Length", &vlen)) != NULL)
		a->length = strtol(v, NULL, 10);
	if ((v = header_in(buf, head_len, "Transfer-Encoding", &vlen)) != NULL)
		a->chunked = vlen == 7 && strncasecmp(v, "chunked", 7) == 0;
	if ((v = header_in(buf, head_len, "Connection", &vlen)) != NULL)
		a->close = vlen == 5 && strncasecmp(v, "close", 5) == 0;
	if ((v = header_in(buf, head_len, "Content-Type", &vlen)) != NULL)
		snprintf(a->type, sizeof(a->type), "%.*s", (int)vlen, v);
	a->body_at = head_len;
	if (head_request || a->status < 200 || a->status == 204 || a->status == 304) {
		a->total = head_len;
	} else if (a->chunked) {
		size_t at = head_len;

		for (;;) {
			const char *eol = memmem(buf + at, len - at, "\r\n", 2);
			unsigned long n;

			if (!eol || sscanf(buf + at, "%lx", &n) != 1)
				return false;
			at = (size_t)(eol - buf) + 2;
			if (n == 0)
				break;
			if (at + n + 2 > len)
				return false;
			at += n + 2;
		}
		if (at + 2 > len || memcmp(buf + at, "\r\n", 2) != 0)
			return false;
		a->total = at + 2;
	} else if (a->length >= 0) {
		if (head_len + (size_t)a->length > len)
			return false;
		a->total = head_len + (size_t)a->length;
	} else if (closed) {
		a->total = len;
	} else {
		return false;
	}
	a->body_len = a->total - head_len;
	return true;
}

/* ------------------------------------------------------------------------
 * Capture and queries against the model.
 */

#define BASE_TIME_US INT64_C(1772323200000000) /* 2026-03-01T00:00:00Z */

static const char *const project_inputs[] = { "ATOLOG", "ato", " Ato ", "other", "" };
static const char *const project_canon[] = { "ATOLOG", "ATOLOG", "ATOLOG", "other", "" };
static const char *const sessions[] = { "s0", "s1", "s2", "s3" };
static const char *const clients[] = { "openclaw", "claude-code", "manual" };

struct gen {
	int64_t last_time;
	int n;
};

/* One random seed body; *canon receives the project it must be stored as. */
static char *gen_body(struct gen *g, const char **canon)
{
	size_t p = check_rand_below(5);
	int64_t t = g->n && check_rand_below(5) == 0
			    ? g->last_time
			    : BASE_TIME_US + (int64_t)check_rand_below(3 * 86400) * 1000000 +
				      (int64_t)check_rand_below(1000000);
	char iso[ATOLOG_TIME_ISO_LEN], *body;

	g->last_time = t;
	atolog_time_format_iso(t, iso);
	*canon = project_canon[p];
	if (asprintf(&body,
		     "{\"prompt\":\"question %d \\u00e9\",\"response\":\"answer\","
		     "\"project\":\"%s\",\"session_id\":\"%s\",\"client\":\"%s\","
		     "\"memories_used\":[\"m%d\"],\"chunks_used\":[],"
		     "\"context_pack\":{\"n\":%d,\"nested\":[1,2.5,{\"k\":null}]},"
		     "\"created_at\":\"%s\",\"reinforce\":true,\"extract\":false}",
		     g->n, project_inputs[p], sessions[check_rand_below(4)],
		     clients[check_rand_below(3)], g->n, g->n, iso) < 0)
		abort();
	g->n++;
	return body;
}

/* GET /interactions/{id} into the model, checking the stored project. */
static void fetch_into_model(const struct server *srv, struct model *m,
			     const char *id, const char *canon)
{
	char url[1024];
	struct http r;
	json_t *j;

	url_of(url, srv, "/interactions/%s", id);
	if (http(&r, "GET", url, NULL, NULL, NULL) != 200) {
		CHECK_FAILF("GET %s: %ld %s", url, r.status, r.body);
	} else if ((j = json_of(__LINE__, &r)) != NULL) {
		CHECK_STR(jstr(j, "id"), id);
		CHECK_STR(jstr(j, "project"), canon);
		model_add_json(m, j);
		json_decref(j);
	}
	http_free(&r);
}

static void post_one(const struct server *srv, struct model *m, struct gen *g)
{
	const char *canon;
	char *body = gen_body(g, &canon), url[1024];
	struct http r;
	json_t *j;

	url_of(url, srv, "/interactions");
	if (http(&r, "POST", url, "application/json", body, NULL) != 201) {
		CHECK_FAILF("POST: %ld %s", r.status, r.body);
	} else if ((j = json_of(__LINE__, &r)) != NULL) {
		CHECK_STR(jstr(j, "project"), canon);
		CHECK(strlen(jstr(j, "id")) == ATOLOG_ID_TEXT_LEN);
		CHECK(strlen(jstr(j, "created_at")) == 19);
		CHECK(json_integer_value(json_object_get(
			      json_object_get(j, "context_pack"), "n")) == g->n - 1);
		model_add_json(m, j);
		json_decref(j);
	}
	http_free(&r);
	free(body);
}

/* A batch of n good bodies and a few bad ones, as a JSON array or NDJSON;
 * checks the answer item by item. */
static void post_batch(const struct server *srv, struct model *m, struct gen *g,
		       size_t n, bool ndjson)
{
	static const char *const bad[] = {
		"{\"prompt\":\"\"}", "{\"prompt\":5}", "{\"prompt\":\"x\",\"memories_used\":\"m\"}",
		"{\"response\":\"no prompt\"}", "{\"prompt\":\"x\",\"since\":1,\"project\":[]}",
	};
	const char *canon[64];
	bool is_bad[64];
	char *doc = NULL, url[1024];
	size_t len = 0, total = 0;
	FILE *f = open_memstream(&doc, &len);
	struct http r;
	json_t *j, *ids, *errors;

	fputs(ndjson ? "" : "[", f);
	for (size_t i = 0; i < n && total < 60; i++) {
		if (check_rand_below(4) == 0) {
			is_bad[total] = true;
			fprintf(f, "%s%s", total && !ndjson ? "," : "",
				bad[check_rand_below(5)]);
		} else {
			char *body = gen_body(g, &canon[total]);

			is_bad[total] = false;
			fprintf(f, "%s%s", total && !ndjson ? "," : "", body);
			free(body);
		}
		total++;
		fputs(ndjson ? "\n" : "", f);
	}
	fputs(ndjson ? "" : "]", f);
	fclose(f);
	url_of(url, srv, "/interactions/batch");
	http(&r, "POST", url, ndjson ? "application/x-ndjson" : "application/json", doc, NULL);
	j = json_of(__LINE__, &r);
	ids = json_object_get(j, "ids");
	errors = json_object_get(j, "errors");
	if (!json_is_array(ids) || json_array_size(ids) != total || !json_is_array(errors)) {
		CHECK_FAILF("batch answer %ld %.300s", r.status, r.body);
	} else {
		size_t n_bad = 0, e = 0;

		for (size_t i = 0; i < total; i++) {
			json_t *id = json_array_get(ids, i);

			if (is_bad[i]) {
				json_t *err = json_array_get(errors, e++);

				n_bad++;
				CHECK(json_is_null(id));
				CHECK_INT(json_integer_value(json_object_get(err, "index")), i);
				CHECK(strlen(jstr(err, "error")) > 0);
			} else if (!json_is_string(id)) {
				CHECK_FAILF("batch item %zu not stored: %.300s", i, r.body);
			} else {
				fetch_into_model(srv, m, json_string_value(id), canon[i]);
			}
		}
		CHECK_INT(json_array_size(errors), n_bad);
		CHECK_INT(r.status, n_bad ? 207 : 201);
	}
	json_decref(j);
	http_free(&r);
	free(doc);
}

/* Appends &key=escaped(value). */
static void query_add(char *q, size_t cap, const char *key, const char *value)
{
	char *e = curl_easy_escape(shared_curl, value, 0);
	size_t n = strlen(q);

	snprintf(q + n, cap - n, "%s%s=%s", n ? "&" : "", key, e);
	curl_free(e);
}

/* One random listing, compared with the model. */
static void check_random_list(const struct server *srv, const struct model *m)
{
	struct model_query q = { .since = INT64_MIN, .limit = ATOLOG_LIST_LIMIT_DEFAULT };
	const struct model_rec **want = calloc(m->n + 1, sizeof(*want));
	char qs[1024] = "", url[2048], limit[32];
	size_t p = check_rand_below(6), n;
	struct http r;
	json_t *j, *arr;

	if (p < 5) {
		q.project_given = project_inputs[p];
		q.project = *project_canon[p] ? project_canon[p] : NULL;
		query_add(qs, sizeof(qs), "project", q.project_given);
	}
	if (check_rand_below(3) == 0) {
		q.session = sessions[check_rand_below(4)];
		query_add(qs, sizeof(qs), "session_id", q.session);
	}
	if (check_rand_below(3) == 0) {
		q.client = clients[check_rand_below(3)];
		query_add(qs, sizeof(qs), "client", q.client);
	}
	if (check_rand_below(2) == 0 && m->n) {
		model_random_since(&q, m->recs[check_rand_below(m->n)].created_at);
		query_add(qs, sizeof(qs), "since", q.since_text);
	}
	switch (check_rand_below(4)) {
	case 0:
		break; /* the default, 50 */
	case 1:
		q.limit = (long)check_rand_below(700) + 1;
		break;
	case 2:
		q.limit = -(long)check_rand_below(3);
		break;
	default:
		q.limit = (long)check_rand_below(20) + 1;
		break;
	}
	if (q.limit != ATOLOG_LIST_LIMIT_DEFAULT) {
		snprintf(limit, sizeof(limit), "%ld", q.limit);
		query_add(qs, sizeof(qs), "limit", limit);
	}
	if (q.limit > ATOLOG_LIST_LIMIT_MAX)
		q.limit = ATOLOG_LIST_LIMIT_MAX;
	n = model_list(m, &q, want);
	url_of(url, srv, "/interactions?%s", qs);
	http(&r, "GET", url, NULL, NULL, NULL);
	j = json_of(__LINE__, &r);
	arr = json_object_get(j, "interactions");
	if (r.status != 200 || !json_is_array(arr)) {
		CHECK_FAILF("GET %s: %ld %.200s", url, r.status, r.body);
	} else {
		CHECK_INT(json_array_size(arr), n);
		CHECK_INT(json_integer_value(json_object_get(j, "count")), n);
		for (size_t i = 0; i < n && i < json_array_size(arr); i++) {
			const char *got = jstr(json_array_get(arr, i), "id");

			if (strcmp(got, want[i]->id) != 0) {
				CHECK_FAILF("GET %s: row %zu is %s, want %s", url, i, got,
				     want[i]->id);
				break;
			}
		}
	}
	json_decref(j);
	http_free(&r);
	free(want);
}

/* The NDJSON replay of a session, compared with the model. */
static void check_replay(const struct server *srv, const struct model *m,
			 const char *session)
{
	const struct model_rec **want = calloc(m->n + 1, sizeof(*want));
	size_t n = model_session(m, session, want), got = 0;
	char url[1024], *line, *save = NULL;
	struct http r;

	url_of(url, srv, "/sessions/%s/replay", session);
	http(&r, "GET", url, NULL, NULL, NULL);
	if (r.status != (n ? 200 : 404))
		CHECK_FAILF("replay %s: %ld, want %s", session, r.status, n ? "200" : "404");
	if (!strstr(r.headers, "application/x-ndjson") && n)
		CHECK_FAILF("replay %s: not NDJSON: %s", session, r.headers);
	for (line = n ? strtok_r(r.body, "\n", &save) : NULL; line;
	     line = strtok_r(NULL, "\n", &save)) {
		json_t *o = json_loads(line, 0, NULL);

		if (got < n && (!o || strcmp(jstr(o, "id"), want[got]->id) != 0))
			CHECK_FAILF("replay %s: line %zu is %.80s, want %s", session, got, line,
			     want[got]->id);
		json_decref(o);
		got++;
	}
	if (n)
		CHECK_INT(got, n);
	http_free(&r);
	free(want);
}

static void register_project(const char *dir)
{
	pid_t pid = fork();
	int status;

	if (pid == 0) {
		execl(cli_path, "atolog", "--data", dir, "project", "add", "ATOLOG",
		      "--alias", "ato", (char *)NULL);
		_exit(127);
	}
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void test_capture_and_query(const char *dir)
{
	struct server srv;
	struct model m = { 0 };
	struct gen g = { 0 };

	register_project(dir);
	if (!server_start(&srv, dir, NULL, (char *)NULL)) {
		CHECK_FAILF("server did not start");
		return;
	}
	while (m.n < 400) {
		switch (check_rand_below(3)) {
		case 0:
			post_one(&srv, &m, &g);
			break;
		case 1:
			post_batch(&srv, &m, &g, check_rand_below(30) + 1, false);
			break;
		default:
			post_batch(&srv, &m, &g, check_rand_below(30) + 1, true);
			break;
		}
	}
	CHECK_INT(health_records(&srv), m.n);
	for (int i = 0; i < 120; i++)
		check_random_list(&srv, &m);
	for (size_t i = 0; i < 4; i++)
		check_replay(&srv, &m, sessions[i]);
	check_replay(&srv, &m, "no-such-session");
	CHECK_INT(server_stop(&srv, SIGTERM), 0);

	/* After a restart, the same answers. */
	if (server_start(&srv, dir, NULL, (char *)NULL)) {
		for (int i = 0; i < 30; i++)
			check_random_list(&srv, &m);
		check_replay(&srv, &m, sessions[0]);
		CHECK_INT(server_stop(&srv, SIGINT), 0);
	} else {
		CHECK_FAILF("server did not restart");
	}
	model_free(&m);
}

/* ------------------------------------------------------------------------
 * Every refusal, and that it changed nothing.
 */

#define DEEP10 "[[[[[[[[[["
#define UNDEEP10 "]]]]]]]]]]"
#define DEEP50 DEEP10 DEEP10 DEEP10 DEEP10 DEEP10
#define UNDEEP50 UNDEEP10 UNDEEP10 UNDEEP10 UNDEEP10 UNDEEP10
/* Past yajl's generator depth (128), not only past atolog's (24). */
#define DEEP_BODY "{\"prompt\":\"p\",\"context_pack\":{\"a\":" DEEP50 DEEP50 DEEP50 \
	UNDEEP50 UNDEEP50 UNDEEP50 "}}"

/* What well-behaved clients also do: a charset, a HEAD, Expect. */
static void check_ordinary_variants(const struct server *srv)
{
	char url[1024], big[3000];
	struct http r;
	json_t *j;

	url_of(url, srv, "/interactions");
	http(&r, "POST", url, "application/json; charset=utf-8", good_body, NULL);
	CHECK_INT(r.status, 201);
	http_free(&r);
	http(&r, "POST", url, "Application/JSON ;charset=UTF-8", good_body, NULL);
	CHECK_INT(r.status, 201);
	http_free(&r);
	url_of(url, srv, "/health");
	http(&r, "HEAD", url, NULL, NULL, NULL);
	CHECK_INT(r.status, 200);
	CHECK_INT(r.len, 0);
	http_free(&r);
	/* A body large enough that curl asks "Expect: 100-continue". */
	{
		struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");

		snprintf(big, sizeof(big), "{\"prompt\":\"%0*d\"}", 2500, 7);
		url_of(url, srv, "/interactions");
		memset(&r, 0, sizeof(r));
		curl_easy_reset(shared_curl);
		h = curl_slist_append(h, "Expect: 100-continue");
		curl_easy_setopt(shared_curl, CURLOPT_URL, url);
		curl_easy_setopt(shared_curl, CURLOPT_HTTPHEADER, h);
		curl_easy_setopt(shared_curl, CURLOPT_POSTFIELDS, big);
		curl_easy_setopt(shared_curl, CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(shared_curl, CURLOPT_WRITEDATA, &r);
		curl_easy_setopt(shared_curl, CURLOPT_HEADERFUNCTION, on_header);
		curl_easy_setopt(shared_curl, CURLOPT_HEADERDATA, &r);
		CHECK(curl_easy_perform(shared_curl) == CURLE_OK);
		curl_easy_getinfo(shared_curl, CURLINFO_RESPONSE_CODE, &r.status);
		CHECK_INT(r.status, 201);
		CHECK(strstr(r.headers, "100 Continue") != NULL);
		curl_slist_free_all(h);
		http_free(&r);
	}
	/* A batch with one element nested too deep: only that one refused. */
	url_of(url, srv, "/interactions/batch");
	http(&r, "POST", url, "application/json",
	     "[{\"prompt\":\"a\"}," DEEP_BODY ",{\"prompt\":\"b\"}]", NULL);
	CHECK_INT(r.status, 207);
	j = json_of(__LINE__, &r);
	CHECK(json_is_string(json_array_get(json_object_get(j, "ids"), 0)));
	CHECK(json_is_null(json_array_get(json_object_get(j, "ids"), 1)));
	CHECK(json_is_string(json_array_get(json_object_get(j, "ids"), 2)));
	CHECK_INT(json_integer_value(json_object_get(
			  json_array_get(json_object_get(j, "errors"), 0), "index")), 1);
	json_decref(j);
	http_free(&r);
}

static void check_refusals(const struct server *srv)
{
	static const struct {
		const char *method, *path, *type, *body;
		long status;
		const char *text;
	} cases[] = {
		{ "POST", "/interactions", "application/json", "{\"prompt\":", 400, "malformed JSON" },
		{ "POST", "/interactions", "application/json", "[1,2]", 400, "expected a JSON object" },
		{ "POST", "/interactions", "application/json", "{\"prompt\":7}", 400, "prompt must be a string" },
		{ "POST", "/interactions", "application/json", "{\"prompt\":\" \\n\\t\"}", 400, "prompt" },
		{ "POST", "/interactions", "application/json", "{\"response\":\"r\"}", 400, "prompt is required" },
		{ "POST", "/interactions", "application/json", "{\"prompt\":\"p\",\"chunks_used\":[1]}", 400, "chunks_used[0]" },
		{ "POST", "/interactions", "application/json", "{\"prompt\":\"p\",\"context_pack\":\"x\"}", 400, "context_pack" },
		{ "POST", "/interactions", "application/json", "{\"prompt\":\"p\",\"extract\":\"yes\"}", 400, "extract" },
		{ "POST", "/interactions", "application/json", "{\"prompt\":\"\\ud800\"}", 400, "surrogate" },
		{ "POST", "/interactions", "application/json", "", 400, "malformed JSON" },
		{ "POST", "/interactions", "text/plain", good_body, 415, "application/json" },
		{ "POST", "/interactions", NULL, good_body, 415, "Content-Type" },
		{ "POST", "/interactions", "application/x-ndjson", good_body, 415, "application/json" },
		{ "POST", "/interactions/batch", "application/json", "{\"prompt\":\"p\"}", 400, "expected a JSON array" },
		{ "POST", "/interactions/batch", "application/json", "[{\"prompt\":\"p\"},", 400, "malformed JSON" },
		{ "POST", "/interactions/batch", "text/csv", "[]", 415, "x-ndjson" },
		{ "GET", "/interactions?since=yesterday", NULL, NULL, 400, "yesterday" },
		{ "GET", "/interactions?since=2026-13-01", NULL, NULL, 400, "since" },
		{ "GET", "/interactions?limit=ten", NULL, NULL, 400, "limit must be an integer" },
		{ "GET", "/interactions?limit=", NULL, NULL, 400, "limit" },
		{ "GET", "/interactions/0190f000-0000-7000-8000-000000000000", NULL, NULL, 404, "no interaction" },
		{ "GET", "/interactions/not-a-uuid", NULL, NULL, 404, "no interaction" },
		{ "GET", "/sessions/none/replay", NULL, NULL, 404, "no interactions in session none" },
		{ "GET", "/nowhere", NULL, NULL, 404, "no such route" },
		{ "GET", "/interactions/a/b", NULL, NULL, 404, "no such route" },
		{ "DELETE", "/interactions", NULL, NULL, 405, "DELETE" },
		{ "GET", "/interactions/batch", NULL, NULL, 405, "POST" },
		{ "PUT", "/health", NULL, NULL, 405, "GET" },
		{ "GET", "/admin/backup", NULL, NULL, 405, "POST" },
		{ "POST", "/admin/backup/cleanup", "application/json", "{\"dry_run\":\"no\"}", 400, "dry_run must be true or false" },
		{ "POST", "/admin/backup/cleanup", "application/json", "{\"keep_last\":-1}", 400, "counts" },
		{ "POST", "/admin/backup/cleanup", "application/json", "[1]", 400, "JSON object" },
		{ "POST", "/admin/backup/cleanup", "text/plain", "{}", 415, "application/json" },
		{ "GET", "/admin/compact", NULL, NULL, 405, "POST" },
		{ "POST", "/admin/compact", "application/json", "{\"older_than\":\"90x\"}", 400, "duration" },
		{ "POST", "/admin/compact", "application/json", "{\"older_than\":\"9d\",\"before\":\"2026-01-01\"}", 400, "not both" },
		{ "POST", "/admin/compact", "application/json", "{\"before\":\"soon\"}", 400, "ISO-8601" },
		{ "POST", "/admin/compact", "application/json", "{\"project\":7}", 400, "strings" },
		{ "POST", "/admin/compact", "application/json", "{\"dry_run\":0}", 400, "dry_run" },
		{ "POST", "/interactions", "application/json", DEEP_BODY, 400, "nests deeper" },
		{ "POST", "/interactions", "application/jsonx", good_body, 415, "application/json" },
		/* An encoded NUL would cut the value the handlers see. */
		{ "GET", "/sessions/e%00/replay", NULL, NULL, 400, "NUL" },
		{ "GET", "/interactions?since=2026-01-01%00x", NULL, NULL, 400, "NUL" },
		{ "GET", "/interactions?li%00mit=5", NULL, NULL, 400, "NUL" },
		{ "HEAD", "/interactions?project=a%00", NULL, NULL, 400, "" },
		/* Bytes yajl lets through (an overlong NUL, a surrogate) are
		 * not echoed into the error: it stays JSON. */
		{ "GET", "/interactions/%C0%80", NULL, NULL, 404, "no interaction" },
		{ "GET", "/interactions?since=%ED%A0%80", NULL, NULL, 400, "since" },
	};
	char url[1024];
	struct http r;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		url_of(url, srv, "%s", cases[i].path);
		http(&r, cases[i].method, url, cases[i].type, cases[i].body, NULL);
		if (r.status != cases[i].status)
			CHECK_FAILF("%s %s (%s): %ld, want %ld", cases[i].method, cases[i].path,
			     cases[i].body ? cases[i].body : "", r.status, cases[i].status);
		else if (strcmp(cases[i].method, "HEAD") == 0)
			CHECK_INT(r.len, 0);
		else
			check_error(__LINE__, &r, cases[i].status, cases[i].text);
		if (cases[i].status == 405 && !strstr(r.headers, "Allow: "))
			CHECK_FAILF("405 without Allow: %s", r.headers);
		http_free(&r);
	}
}

/* 411: a POST with neither Content-Length nor chunked encoding. */
static void check_length_required(const struct server *srv)
{
	int fd = raw_connect(srv);
	bool closed;
	char *got;

	if (fd < 0)
		return;
	raw_send(fd, "POST /interactions HTTP/1.1\r\nHost: t\r\n"
		     "Content-Type: application/json\r\n\r\n");
	got = raw_read(fd, 2000, &closed);
	if (!got || strncmp(got, "HTTP/1.1 411", 12) != 0 || !strstr(got, "\"error\""))
		CHECK_FAILF("no 411: %.200s", got ? got : "");
	free(got);
	close(fd);
}

/* POSTs copies x chunk as a chunked body; returns what came back. */
static char *post_chunked(const struct server *srv, const char *chunk, int copies)
{
	char head[64], *got;
	int fd = raw_connect(srv);
	bool closed;

	if (fd < 0)
		return NULL;
	raw_send(fd, "POST /interactions HTTP/1.1\r\nHost: t\r\n"
		     "Content-Type: application/json\r\n"
		     "Transfer-Encoding: chunked\r\n\r\n");
	snprintf(head, sizeof(head), "%zx\r\n", strlen(chunk));
	for (int i = 0; i < copies; i++) {
		raw_send(fd, head);
		raw_send(fd, chunk);
		raw_send(fd, "\r\n");
	}
	raw_send(fd, "0\r\n\r\n");
	got = raw_read(fd, 3000, &closed);
	close(fd);
	return got;
}

/* 413, from Content-Length and from a chunked body that runs over. */
static void check_too_large(const struct server *srv, size_t max_body)
{
	char *big = malloc(max_body + 2), url[1024];
	struct http r = { 0 };
	int fd;
	bool closed;
	char *got;

	if (!big)
		abort();
	memset(big, ' ', max_body + 1);
	memcpy(big, good_body, sizeof(good_body) - 1);
	big[max_body + 1] = '\0';
	url_of(url, srv, "/interactions");
	http(&r, "POST", url, "application/json", big, NULL);
	check_error(__LINE__, &r, 413, "over the limit");
	http_free(&r);
	/* Exactly at the limit is fine. */
	big[max_body] = '\0';
	http(&r, "POST", url, "application/json", big, NULL);
	CHECK_INT(r.status, 201);
	http_free(&r);

	/* Chunked: the length is known only as the body arrives; over the
	 * limit by a little, and by a lot (still read to its end). */
	big[max_body / 2 + 8] = '\0';
	got = post_chunked(srv, big, 2);
	if (!got || strncmp(got, "HTTP/1.1 413", 12) != 0)
		CHECK_FAILF("chunked over the limit: %.200s", got ? got : "");
	free(got);
	big[max_body / 2 + 8] = ' ';
	big[max_body] = '\0';
	got = post_chunked(srv, big, 5);
	if (!got || strncmp(got, "HTTP/1.1 413", 12) != 0)
		CHECK_FAILF("chunked five times over the limit: %.200s", got ? got : "");
	free(got);
	/* Both framings: refused, and nothing read as a body. */
	fd = raw_connect(srv);
	if (fd >= 0) {
		raw_send(fd, "POST /interactions HTTP/1.1\r\nHost: t\r\n"
			     "Content-Type: application/json\r\nContent-Length: 0\r\n"
			     "Transfer-Encoding: chunked\r\n\r\n");
		got = raw_read(fd, 3000, &closed);
		if (!got || strncmp(got, "HTTP/1.1 400", 12) != 0 ||
		    !strstr(got, "both Content-Length and Transfer-Encoding"))
			CHECK_FAILF("Content-Length with chunked: %.200s", got ? got : "");
		free(got);
		close(fd);
	}
	free(big);
}

static void test_refusals(const char *dir)
{
	struct server srv;
	long long before;
	char url[1024];
	struct http r;

	if (!server_start(&srv, dir, NULL, "--max-body", "4096", (char *)NULL)) {
		CHECK_FAILF("server did not start");
		return;
	}
	url_of(url, &srv, "/interactions");
	post_good(&srv);
	before = health_records(&srv);
	check_refusals(&srv);
	check_length_required(&srv);
	CHECK_INT(health_records(&srv), before);
	check_ordinary_variants(&srv);
	before += 5; /* two charsets, Expect, and a batch's two */
	CHECK_INT(health_records(&srv), before);
	check_too_large(&srv, 4096);
	CHECK_INT(health_records(&srv), before + 1); /* the one at the limit */

	/* A supplied id that is taken: 409, and nothing added. */
	{
		char body[256];
		json_t *j;

		http(&r, "POST", url, "application/json",
		     "{\"prompt\":\"p\",\"id\":\"0190f000-0000-7000-8000-0000000000aa\"}", NULL);
		CHECK_INT(r.status, 201);
		http_free(&r);
		snprintf(body, sizeof(body), "{\"prompt\":\"q\",\"id\":\"%s\"}",
			 "0190f000-0000-7000-8000-0000000000aa");
		http(&r, "POST", url, "application/json", body, NULL);
		check_error(__LINE__, &r, 409, "0190f000");
		http_free(&r);
		url_of(url, &srv, "/interactions/batch");
		http(&r, "POST", url, "application/json",
		     "[{\"prompt\":\"new\"},{\"prompt\":\"dup\",\"id\":"
		     "\"0190f000-0000-7000-8000-0000000000aa\"}]", NULL);
		CHECK_INT(r.status, 207);
		j = json_of(__LINE__, &r);
		CHECK(json_is_string(json_array_get(json_object_get(j, "ids"), 0)));
		CHECK(json_is_null(json_array_get(json_object_get(j, "ids"), 1)));
		CHECK(strstr(jstr(json_array_get(json_object_get(j, "errors"), 0), "error"),
			     "already stored") != NULL);
		json_decref(j);
		http_free(&r);
		CHECK_INT(health_records(&srv), before + 3);
		/* The id it names, followed by an encoded NUL: refused, not
		 * served as the id cut at the NUL. */
		url_of(url, &srv, "/interactions/0190f000-0000-7000-8000-0000000000aa%%00");
		http(&r, "GET", url, NULL, NULL, NULL);
		check_error(__LINE__, &r, 400, "NUL");
		CHECK(strstr(r.headers, "Connection: close") != NULL);
		http_free(&r);
	}
	/* A batch whose items are refused with messages quoting bytes that
	 * yajl's generator passes (an overlong form, a surrogate): still a
	 * JSON answer, 207, each refused item with its own error. */
	{
		json_t *j, *ids, *errors;

		url_of(url, &srv, "/interactions/batch");
		http(&r, "POST", url, "application/json",
		     "[{\"prompt\":\"a\",\"created_at\":\"\xc0\x80\"},"
		     "{\"prompt\":\"b\",\"id\":\"\xed\xa0\x80\"},{\"prompt\":\"c\"}]", NULL);
		CHECK_INT(r.status, 207);
		j = json_of(__LINE__, &r);
		ids = json_object_get(j, "ids");
		errors = json_object_get(j, "errors");
		CHECK(json_is_null(json_array_get(ids, 0)) && json_is_null(json_array_get(ids, 1)));
		CHECK(json_is_string(json_array_get(ids, 2)));
		CHECK_INT(json_array_size(errors), 2);
		for (size_t i = 0; i < 2; i++) {
			json_t *e = json_array_get(errors, i);

			CHECK_INT(json_integer_value(json_object_get(e, "index")), i);
			CHECK(strstr(jstr(e, "error"), i ? "id" : "created_at") != NULL);
		}
		json_decref(j);
		http_free(&r);
		CHECK_INT(health_records(&srv), before + 4);
	}
	CHECK_INT(server_stop(&srv, SIGTERM), 0);
}

/* ------------------------------------------------------------------------
 * Auth.
 */

static void test_auth(const char *dir)
{
	char *token_path = check_path(dir, "token"), url[1024];
	FILE *f = fopen(token_path, "w");
	struct server srv;
	struct http r;

	if (!f)
		abort();
	fputs("  s3cret-token\n", f);
	fclose(f);
	if (!server_start(&srv, dir, NULL, "--token-file", token_path, (char *)NULL)) {
		CHECK_FAILF("server did not start");
		free(token_path);
		return;
	}
	url_of(url, &srv, "/interactions");
	http(&r, "POST", url, "application/json", good_body, NULL);
	check_error(__LINE__, &r, 401, "bearer token");
	CHECK(strstr(r.headers, "WWW-Authenticate: Bearer") != NULL);
	http_free(&r);
	http(&r, "POST", url, "application/json", good_body, "s3cret-tokeN");
	check_error(__LINE__, &r, 401, "bearer token");
	http_free(&r);
	http(&r, "POST", url, "application/json", good_body, "s3cret-token-longer");
	check_error(__LINE__, &r, 401, "bearer token");
	http_free(&r);
	http(&r, "POST", url, "application/json", good_body, "s3cret-token");
	CHECK_INT(r.status, 201);
	http_free(&r);
	/* Every route but /health wants it, known or not. */
	{
		static const char *const paths[] = { "/interactions", "/metrics",
						     "/sessions/e/replay", "/nowhere",
						     "/interactions/x" };

		for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
			url_of(url, &srv, "%s", paths[i]);
			http(&r, "GET", url, NULL, NULL, NULL);
			check_error(__LINE__, &r, 401, "bearer token");
			http_free(&r);
		}
	}
	url_of(url, &srv, "/sessions/e/replay");
	http(&r, "GET", url, NULL, NULL, "s3cret-token");
	CHECK_INT(r.status, 200);
	http_free(&r);
	CHECK(health_records(&srv) >= 1);
	CHECK_INT(server_stop(&srv, SIGTERM), 0);

	/* Auth off: the same request needs nothing. */
	if (server_start(&srv, dir, NULL, (char *)NULL)) {
		url_of(url, &srv, "/metrics");
		http(&r, "GET", url, NULL, NULL, NULL);
		CHECK_INT(r.status, 200);
		http_free(&r);
		CHECK_INT(server_stop(&srv, SIGTERM), 0);
	}
	/* An empty or missing token file is refused at start. */
	f = fopen(token_path, "w");
	if (f)
		fclose(f);
	{
		char opt[600];

		snprintf(opt, sizeof(opt), "--token-file=%s", token_path);
		CHECK_INT(server_start_fails(dir, opt), 2);
		snprintf(opt, sizeof(opt), "--token-file=%s.missing", token_path);
		CHECK_INT(server_start_fails(dir, opt), 2);
	}
	free(token_path);
}

/* ------------------------------------------------------------------------
 * A full disk: 503 while it lasts, reads served, writes back after.
 */

static bool set_fsize(pid_t pid, rlim_t soft)
{
	struct rlimit lim = { .rlim_cur = soft, .rlim_max = RLIM_INFINITY };

	if (prlimit(pid, RLIMIT_FSIZE, &lim, NULL) != 0) {
		CHECK_FAILF("prlimit: %s", strerror(errno));
		return false;
	}
	return true;
}

static void test_disk_full(const char *dir)
{
	struct server srv;
	char url[1024];
	struct http r;
	long long before;

	if (!server_start(&srv, dir, NULL, (char *)NULL)) {
		CHECK_FAILF("server did not start");
		return;
	}
	url_of(url, &srv, "/interactions");
	post_good(&srv);
	before = health_records(&srv);
	/* Every write past byte 1 of any file now fails with EFBIG. */
	if (set_fsize(srv.pid, 1)) {
		for (int i = 0; i < 3; i++) {
			http(&r, "POST", url, "application/json", good_body, NULL);
			check_error(__LINE__, &r, 503, "record");
			CHECK(strstr(r.headers, "Retry-After:") != NULL);
			http_free(&r);
		}
		url_of(url, &srv, "/interactions/batch");
		http(&r, "POST", url, "application/json",
		     "[{\"prompt\":\"a\"},{\"prompt\":\"b\"}]", NULL);
		check_error(__LINE__, &r, 503, "batch");
		http_free(&r);
		/* Reads go on, and health says what is wrong. */
		url_of(url, &srv, "/sessions/e/replay");
		CHECK_INT(http(&r, "GET", url, NULL, NULL, NULL), 200);
		http_free(&r);
		url_of(url, &srv, "/health");
		CHECK_INT(http(&r, "GET", url, NULL, NULL, NULL), 200);
		CHECK(strstr(r.body, "full") != NULL);
		http_free(&r);
		CHECK_INT(health_records(&srv), before);
		/* Room again: the same server takes writes. */
		set_fsize(srv.pid, RLIM_INFINITY);
		url_of(url, &srv, "/interactions");
		http(&r, "POST", url, "application/json", good_body, NULL);
		CHECK_INT(r.status, 201);
		http_free(&r);
		CHECK_INT(health_records(&srv), before + 1);
	}
	CHECK_INT(server_stop(&srv, SIGTERM), 0);
}

/* ------------------------------------------------------------------------
 * Clients that stall.
 */

static void test_stalled_clients(const char *dir)
{
	enum { N_STALLED = 40 };
	int fds[N_STALLED];
	struct server srv;
	bool closed;
	time_t start;

	if (!server_start(&srv, dir, NULL, "--threads", "2", "--timeout", "1",
			  (char *)NULL)) {
		CHECK_FAILF("server did not start");
		return;
	}
	/* Half send part of their headers, half part of a body. */
	for (int i = 0; i < N_STALLED; i++) {
		fds[i] = raw_connect(&srv);
		if (fds[i] < 0)
			continue;
		raw_send(fds[i], i % 2 ? "POST /interactions HTTP/1.1\r\nHost: t\r\n"
				       : "POST /interactions HTTP/1.1\r\nHost: t\r\n"
					 "Content-Type: application/json\r\n"
					 "Content-Length: 100\r\n\r\n{\"prompt\"");
	}
	/* With 2 threads and 40 stalled connections, others are served. */
	post_good(&srv);
	/* One that trickles a byte now and then never goes idle: cut once its
	 * body is SERVE_UPLOAD_TIMEOUTS timeouts late. */
	{
		int fd = raw_connect(&srv);
		bool cut = false;

		raw_send(fd, "POST /interactions HTTP/1.1\r\nHost: t\r\n"
			     "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n");
		start = time(NULL);
		for (int i = 0; i < 60 && !cut && fd >= 0; i++) {
			char *got;

			raw_send(fd, " ");
			got = raw_read(fd, 400, &cut);
			free(got);
		}
		if (!cut)
			CHECK_FAILF("a trickling upload was never cut (%lds)",
			     (long)(time(NULL) - start));
		if (fd >= 0)
			close(fd);
	}
	/* And the stalled ones are cut after the timeout. */
	start = time(NULL);
	for (int i = 0; i < N_STALLED; i++) {
		char *got;

		if (fds[i] < 0)
			continue;
		got = raw_read(fds[i], 15000, &closed);
		if (!closed)
			CHECK_FAILF("stalled connection %d still open after %lds", i,
			     (long)(time(NULL) - start));
		free(got);
		close(fds[i]);
	}
	CHECK_INT(server_stop(&srv, SIGTERM), 0);
}

/* A request's headers must be in within SERVE_HEADER_TIMEOUTS (2)
 * timeouts; the sweep runs every 250 ms. A trickling client is cut well
 * within this (load included); without the bound it is never cut. */
#define HEADER_CUT_MAX_S 8

/* Sends s one byte at a time, ms apart, until the server closes (true:
 * *secs is how long it took) or s is sent; calls between(i) after byte i. */
static bool trickle(int fd, const char *s, int ms, double *secs,
		    void (*between)(size_t i, void *ctx), void *ctx)
{
	struct timespec t0, t1;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (size_t i = 0; s[i]; i++) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		char c;

		raw_send_n(fd, s + i, 1);
		if (between)
			between(i, ctx);
		if (poll(&p, 1, ms) > 0 && recv(fd, &c, 1, 0) <= 0) {
			clock_gettime(CLOCK_MONOTONIC, &t1);
			*secs = (double)(t1.tv_sec - t0.tv_sec) +
				(double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
			return true;
		}
	}
	return false;
}

static void serve_meanwhile(size_t i, void *ctx)
{
	if (i == 3)
		post_good(ctx);
}

static void test_trickled_headers(const char *dir)
{
	static const char slow[] = "GET /health HTTP/1.1\r\nHost: t\r\nX-Slow: "
				   "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
	struct server srv;
	double secs = 0;
	bool closed;
	char *got;
	int fd;

	if (!server_start(&srv, dir, NULL, "--threads", "2", "--timeout", "1",
			  (char *)NULL)) {
		CHECK_FAILF("server did not start");
		return;
	}
	/* A byte every 200 ms never leaves the connection idle for the
	 * timeout (1 s): cut by the headers' deadline, while another client
	 * is served. */
	fd = raw_connect(&srv);
	if (fd >= 0) {
		if (!trickle(fd, slow, 200, &secs, serve_meanwhile, &srv))
			CHECK_FAILF("trickled headers were never cut");
		else if (secs > HEADER_CUT_MAX_S)
			CHECK_FAILF("trickled headers cut after %.1f s", secs);
		close(fd);
	}
	/* The same for the second request of a keep-alive connection: its
	 * deadline runs from the first one's answer. */
	fd = raw_connect(&srv);
	if (fd >= 0) {
		raw_send(fd, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
		got = raw_read(fd, 500, &closed);
		CHECK(got && strncmp(got, "HTTP/1.1 200", 12) == 0 && !closed);
		free(got);
		if (!trickle(fd, slow, 200, &secs, NULL, NULL))
			CHECK_FAILF("a keep-alive connection's trickled headers were never cut");
		else if (secs > HEADER_CUT_MAX_S)
			CHECK_FAILF("keep-alive trickled headers cut after %.1f s", secs);
		close(fd);
	}
	/* Headers that arrive whole, if late in a slow upload's life, are
	 * not cut by the sweep: the body has its own deadline. */
	post_good(&srv);
	CHECK_INT(health_records(&srv), 2);
	CHECK_INT(server_stop(&srv, SIGTERM), 0);
}

/* ------------------------------------------------------------------------
 * HEAD: the headers a GET would get, and nothing after them, so that a
 * pipelining client stays in step.
 */

static void test_head_pipelined(const char *dir)
{
	static const char *const heads[] = {
		"/interactions", "/sessions/h/replay", "/sessions/none/replay",
		"/interactions/0190f000-0000-7000-8000-000000000000",
	};
	static const long want_status[] = { 200, 200, 404, 404 };
	static const char *const want_type[] = { "application/json", "application/x-ndjson",
						 "application/json", "application/json" };
	struct server srv;
	struct raw_answer a;
	char url[1024], req[2048] = "", *got;
	long get_len[2];
	size_t len, at = 0;
	bool closed;
	struct http r;
	int fd;

	if (!server_start(&srv, dir, NULL, (char *)NULL)) {
		CHECK_FAILF("server did not start");
		return;
	}
	url_of(url, &srv, "/interactions");
	for (int i = 0; i < 3; i++) {
		http(&r, "POST", url, "application/json",
		     "{\"prompt\":\"head\",\"session_id\":\"h\"}", NULL);
		CHECK_INT(r.status, 201);
		http_free(&r);
	}
	/* What a GET sends, to compare the HEADs' lengths with. */
	for (int i = 0; i < 2; i++) {
		url_of(url, &srv, "%s", heads[i]);
		CHECK_INT(http(&r, "GET", url, NULL, NULL, NULL), 200);
		CHECK(strstr(r.headers, "chunked") != NULL);
		get_len[i] = (long)r.len;
		http_free(&r);
	}
	/* Four HEADs then a GET, in one write on one connection. */
	for (size_t i = 0; i < 4; i++)
		snprintf(req + strlen(req), sizeof(req) - strlen(req),
			 "HEAD %s HTTP/1.1\r\nHost: t\r\n\r\n", heads[i]);
	strcat(req, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
	fd = raw_connect(&srv);
	if (fd < 0)
		return;
	raw_send(fd, req);
	got = raw_recv(fd, 1500, &closed, &len);
	for (size_t i = 0; i < 4; i++) {
		if (!raw_parse(got + at, len - at, closed, true, &a)) {
			CHECK_FAILF("HEAD %s: no whole answer at byte %zu: %.200s", heads[i],
				    at, got + at);
			break;
		}
		CHECK_INT(a.status, want_status[i]);
		CHECK_STR(a.type, want_type[i]);
		CHECK(!a.chunked && !a.close);
		if (i < 2)
			CHECK_INT(a.length, get_len[i]);
		else
			CHECK(a.length > 0); /* the error a GET would get */
		at += a.total;
	}
	/* The GET's answer follows at once, and is the last byte sent. */
	if (raw_parse(got + at, len - at, closed, false, &a)) {
		CHECK_INT(a.status, 200);
		CHECK(a.body_len > 0 && strstr(got + at + a.body_at, "\"records\":3") != NULL);
		at += a.total;
		CHECK_INT(len - at, 0);
	} else {
		CHECK_FAILF("GET after the HEADs: %.200s", got + at);
	}
	CHECK(!closed);
	free(got);
	close(fd);
	CHECK_INT(server_stop(&srv, SIGTERM), 0);
}

/* ------------------------------------------------------------------------
 * Framing that two readers could disagree on is refused, the connection
 * closed, and the bytes after it never read as another request.
 */

static void test_smuggling(const char *dir)
{
	static const char smuggled_body[] = "{\"prompt\":\"smuggled\"}";
	static const struct {
		const char *what, *head; /* head: printf, %zu the smuggled length */
		long status;
		const char *text;
	} cases[] = {
		{ "two lengths, 0 first",
		  "POST /interactions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
		  "Content-Length: 0\r\nContent-Length: %zu\r\n\r\n", 400, "one Content-Length" },
		{ "two lengths, 0 last",
		  "POST /interactions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
		  "Content-Length: %zu\r\nContent-Length: 0\r\n\r\n", 400, "one Content-Length" },
		{ "two equal lengths",
		  "POST /interactions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
		  "Content-Length: %1$zu\r\ncontent-length: %1$zu\r\n\r\n", 400, "one Content-Length" },
		{ "two lengths on a GET",
		  "GET /health HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n"
		  "Content-Length: %zu\r\n\r\n", 400, "one Content-Length" },
		{ "a blank before the colon",
		  "POST /interactions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
		  "Content-Length : %zu\r\n\r\n", 400, "token" },
		{ "gzip",
		  "POST /interactions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
		  "Transfer-Encoding: gzip\r\n\r\n", 400, "chunked" },
		{ "chunked, then gzip",
		  "POST /interactions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
		  "Transfer-Encoding: chunked, gzip\r\n\r\n", 400, "chunked" },
		{ "gzip, then chunked",
		  "POST /interactions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
		  "Transfer-Encoding: gzip, chunked\r\n\r\n", 501, "chunked" },
		{ "chunked twice",
		  "POST /interactions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
		  "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		  400, "one Transfer-Encoding" },
		{ "a length and chunked",
		  "POST /interactions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
		  "Transfer-Encoding: chunked\r\nContent-Length: %zu\r\n\r\n", 400, "both" },
		{ "HTTP/1.1 without Host", "GET /health HTTP/1.1\r\n\r\n", 400, "Host" },
		{ "two Hosts", "GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "Host" },
		{ "a bare CR in a value",
		  "GET /health HTTP/1.1\r\nHost: t\r\nX-A: a\rContent-Length: %zu\r\n\r\n",
		  400, "control" },
		{ "a raw control byte in the path", "GET /hea\x01lth HTTP/1.1\r\nHost: t\r\n\r\n",
		  400, "control" },
	};
	char smuggled[512], head[1024], *got;
	long long before;
	struct server srv;
	struct raw_answer a;
	size_t len;
	bool closed;
	struct http r;
	json_t *j;

	if (!server_start(&srv, dir, NULL, (char *)NULL)) {
		CHECK_FAILF("server did not start");
		return;
	}
	snprintf(smuggled, sizeof(smuggled),
		 "POST /interactions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
		 "Content-Length: %zu\r\n\r\n%s", strlen(smuggled_body), smuggled_body);
	before = health_records(&srv);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int fd = raw_connect(&srv);

		if (fd < 0)
			continue;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
		snprintf(head, sizeof(head), cases[i].head, strlen(smuggled));
#pragma GCC diagnostic pop
		raw_send(fd, head);
		raw_send(fd, smuggled);
		got = raw_recv(fd, 3000, &closed, &len);
		if (!raw_parse(got, len, closed, false, &a)) {
			CHECK_FAILF("%s: no answer: %.200s", cases[i].what, got);
		} else {
			if (a.status != cases[i].status)
				CHECK_FAILF("%s: %d, want %ld: %.300s", cases[i].what, a.status,
					    cases[i].status, got);
			j = json_loadb(got + a.body_at, a.body_len, 0, NULL);
			if (!json_is_string(json_object_get(j, "error")) ||
			    !strstr(jstr(j, "error"), cases[i].text))
				CHECK_FAILF("%s: error lacks \"%s\": %.300s", cases[i].what,
					    cases[i].text, got + a.body_at);
			json_decref(j);
			/* One answer, then the close: the rest was not read. */
			if (len != a.total || !closed || !a.close)
				CHECK_FAILF("%s: %zu bytes after the answer, %s: %.300s",
					    cases[i].what, len - a.total,
					    closed ? "closed" : "left open", got);
		}
		free(got);
		close(fd);
	}
	CHECK_INT(health_records(&srv), before);
	url_of(head, &srv, "/interactions?limit=500");
	http(&r, "GET", head, NULL, NULL, NULL);
	CHECK(r.status == 200 && !strstr(r.body, "smuggled"));
	http_free(&r);
	/* HTTP/1.0 needs no Host. */
	{
		int fd = raw_connect(&srv);

		if (fd >= 0) {
			raw_send(fd, "GET /health HTTP/1.0\r\n\r\n");
			got = raw_recv(fd, 3000, &closed, &len);
			CHECK(raw_parse(got, len, closed, false, &a) && a.status == 200);
			free(got);
			close(fd);
		}
	}
	CHECK_INT(server_stop(&srv, SIGTERM), 0);
}

/* ------------------------------------------------------------------------
 * Hostile clients: a few hundred malformed requests over raw sockets. Each
 * answer must be a proper HTTP answer ({"error": ...} when atolog refuses,
 * libmicrohttpd's HTML page when it does), the server must live on and
 * keep answering, and what is stored must be what was acknowledged.
 */

enum { FUZZ_CASES = 320, FUZZ_PARALLEL = 32, FUZZ_WAIT_MS = 2000 };

struct buf {
	char *p;
	size_t len, cap;
};

static void buf_add(struct buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->p = realloc(b->p, b->cap);
		if (!b->p)
			abort();
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void __attribute__((format(printf, 2, 3))) buf_printf(struct buf *b, const char *fmt, ...)
{
	char *s;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		abort();
	buf_add(b, s, (size_t)n);
	free(s);
}

static const char *pick(const char *const *v, size_t n)
{
	return v[check_rand_below(n)];
}

#define PICK(v) pick(v, sizeof(v) / sizeof(v[0]))

/* One malformed request: a valid one's parts, mangled, then its bytes. */
static void fuzz_request(struct buf *out, int n)
{
	static const char *const methods[] = { "GET", "HEAD", "POST", "get", "GETT", "PUT",
					       "DELETE", "OPTIONS", "CONNECT", "TRACE", "",
					       " GET", "POST\t" };
	static const char *const paths[] = {
		"/health", "/interactions", "/interactions/batch", "/sessions/f/replay",
		"/", "//health", "/interactions/../health", "/%", "/%zz", "/%00",
		"/interactions/%FF", "/interactions/%C0%80", "/sessions//replay",
		"/sessions/%2F/replay", "*", "http://t/health", "/interactions?limit=%00",
		"/interactions?since=2026-13-01&limit=x", "/interactions?project=%ED%A0%80",
		"/interactions?a&b=&=c&&", "/metrics", "/admin/compact", "/interactions\x7f",
	};
	static const char *const versions[] = { "HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.9",
						"HTTP/0.9", "http/1.1", "HTTP/1.1x", "",
						"HTTP/1.1 ", "HTTP/1." };
	static const char *const headers[] = {
		"Content-Length: 5", "Content-Length: 0", "Content-Length: -1",
		"Content-Length: 99999999999999999999", "Content-Length: 5, 5",
		"Content-Length : 3", "Transfer-Encoding: chunked", "Transfer-Encoding: gzip",
		"Transfer-Encoding: chunked, identity", "Transfer-Encoding:  chunked",
		"Host: x", "Host:", "X: \x01", " folded", "\tfolded", "Expect: 100-continue",
		"Expect: bogus", "Connection: close", "Connection: keep-alive, upgrade",
		"Content-Type: application/x-ndjson", "Content-Type: text/plain",
		"Authorization: Bearer x", ": novalue", "NoColon", "X-\xff: v", "X: v\xc0\x80",
	};
	static const char *const sizes[] = { "zz", "-1", "ffffffffffffffffff", "5;ext=1",
					     "0x5", " 5", "5 ", "", "00000000000000005" };
	const char *method = "GET", *path = "/health", *version = "HTTP/1.1";
	char body[128], chunk_size[32];
	struct buf head = { 0 }, whole = { 0 };
	unsigned kind = (unsigned)check_rand_below(4), mutations = 1 + (unsigned)check_rand_below(3);
	bool chunked = kind == 3;
	int extra_gets = 0;

	snprintf(body, sizeof(body), "{\"prompt\":\"fuzz %d\",\"session_id\":\"f\"}", n);
	snprintf(chunk_size, sizeof(chunk_size), "%zx", strlen(body));
	if (kind >= 2) {
		method = "POST";
		path = "/interactions";
	} else if (kind == 1) {
		method = "HEAD";
		path = "/interactions";
	}
	buf_add(&head, "Host: t\r\n", 9);
	if (kind >= 2)
		buf_add(&head, "Content-Type: application/json\r\n", 32);
	for (unsigned m = 0; m < mutations; m++) {
		switch (check_rand_below(9)) {
		case 0:
			method = PICK(methods);
			break;
		case 1:
			path = PICK(paths);
			break;
		case 2:
			version = PICK(versions);
			break;
		case 3:
		case 4:
			buf_printf(&head, "%s\r\n", PICK(headers));
			break;
		case 5:
			if (check_rand_below(2)) {
				char *big = malloc(40001);

				memset(big, 'b', 40000);
				big[40000] = '\0';
				buf_printf(&head, "X-Big: %s\r\n", big);
				free(big);
			} else {
				for (int i = 0; i < 300; i++)
					buf_printf(&head, "X-%d: v\r\n", i);
			}
			break;
		case 6:
			snprintf(chunk_size, sizeof(chunk_size), "%s", PICK(sizes));
			break;
		case 7:
			extra_gets = 1 + (int)check_rand_below(3);
			break;
		default:
			chunked = !chunked;
			break;
		}
	}
	buf_printf(&whole, "%s %s %s\r\n%.*s", method, path, version, (int)head.len,
		   head.p);
	if (strcmp(method, "POST") == 0 || check_rand_below(4) == 0) {
		if (chunked)
			buf_printf(&whole, "Transfer-Encoding: chunked\r\n\r\n%s\r\n%s\r\n0\r\n\r\n",
				   chunk_size, body);
		else
			buf_printf(&whole, "Content-Length: %zu\r\n\r\n%s", strlen(body), body);
	} else {
		buf_add(&whole, "\r\n", 2);
	}
	for (int i = 0; i < extra_gets; i++)
		buf_printf(&whole, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
	/* Then a few byte-level wounds. */
	for (unsigned m = (unsigned)check_rand_below(3); m > 0 && whole.len > 2; m--) {
		static const char nasty[] = { 0, '\r', '\n', ' ', ':', 0x7f, (char)0x80, (char)0xff,
					      '%', '\t' };
		size_t at = check_rand_below(whole.len);

		switch (check_rand_below(4)) {
		case 0:
			whole.p[at] = nasty[check_rand_below(sizeof(nasty))];
			break;
		case 1:
			whole.p[at] = (char)check_rand_below(256);
			break;
		case 2: {
			size_t n_del = 1 + check_rand_below(20);

			if (at + n_del > whole.len)
				n_del = whole.len - at;
			memmove(whole.p + at, whole.p + at + n_del, whole.len - at - n_del);
			whole.len -= n_del;
			break;
		}
		default:
			whole.len = at; /* cut short */
			break;
		}
	}
	*out = whole;
	free(head.p);
}

struct fuzz_tally {
	long answers, acked, in_doubt, by_mhd;
};

/* Checks every answer of one exchange and counts the interactions they
 * acknowledge. */
static void fuzz_check(const struct buf *req, const char *got, size_t len, bool closed,
		       struct fuzz_tally *t)
{
	bool head = req->len > 5 && memcmp(req->p, "HEAD ", 5) == 0;
	bool capture = req->len > 5 && memcmp(req->p, "POST ", 5) == 0;
	size_t at = 0;
	struct raw_answer a;

	while (at < len) {
		if (!raw_parse(got + at, len - at, closed, head, &a)) {
			if (closed || strncmp(got + at, "HTTP/1.1 ", len - at < 9 ? len - at : 9) != 0)
				CHECK_FAILF("not an HTTP answer at byte %zu to %.120s: %.200s", at,
					    req->p, got + at);
			t->in_doubt += capture;
			return;
		}
		t->answers++;
		if (a.status < 100 || a.status > 599 || a.status == 500)
			CHECK_FAILF("status %d to %.200s", a.status, req->p);
		if (a.close && len - at - a.body_at >= 12 &&
		    memcmp(got + at + a.body_at, got + at, 12) == 0) {
			/* libmicrohttpd 0.9.75 refusing a Content-Length (or a
			 * chunk size) itself sends its header block twice
			 * (README); the rest goes with the connection. */
			t->by_mhd++;
			return;
		}
		if (a.status >= 400 && a.body_len) {
			if (strncmp(a.type, "application/json", 16) == 0) {
				json_t *j = json_loadb(got + at + a.body_at, a.body_len, 0, NULL);

				if (!json_is_string(json_object_get(j, "error")))
					CHECK_FAILF("%d without {\"error\"} to %.120s: %.200s",
						    a.status, req->p, got + at + a.body_at);
				json_decref(j);
			} else if (strncmp(got + at + a.body_at, "<html>", 6) == 0) {
				t->by_mhd++;
			} else {
				CHECK_FAILF("%d neither JSON nor libmicrohttpd's: %.200s",
					    a.status, got + at);
			}
		}
		if (a.status == 201)
			t->acked++;
		at += a.total;
		if (a.status >= 200)
			head = false; /* what is pipelined after is a GET */
	}
	if (!len && capture)
		t->in_doubt++;
}

/* One round: FUZZ_PARALLEL connections at once, each given its request
 * (half of them then half-closed), read until each closes or goes quiet. */
static void fuzz_round(const struct server *srv, int first, struct fuzz_tally *t)
{
	struct {
		struct buf req;
		int fd;
		char *got;
		size_t len;
		bool closed;
	} c[FUZZ_PARALLEL];
	struct timespec t0, now;

	for (int i = 0; i < FUZZ_PARALLEL; i++) {
		fuzz_request(&c[i].req, first + i);
		c[i].fd = raw_connect(srv);
		c[i].got = calloc(1, 65536);
		c[i].len = 0;
		c[i].closed = c[i].fd < 0;
		if (c[i].fd < 0)
			continue;
		raw_send_n(c[i].fd, c[i].req.p, c[i].req.len);
		if (check_rand_below(2))
			shutdown(c[i].fd, SHUT_WR);
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct pollfd p[FUZZ_PARALLEL];
		int n = 0, at[FUZZ_PARALLEL];

		for (int i = 0; i < FUZZ_PARALLEL; i++) {
			if (!c[i].closed && c[i].len < 65535) {
				p[n] = (struct pollfd){ .fd = c[i].fd, .events = POLLIN };
				at[n++] = i;
			}
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (!n || (now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000 >
				  FUZZ_WAIT_MS)
			break;
		if (poll(p, (nfds_t)n, 100) <= 0)
			continue;
		for (int k = 0; k < n; k++) {
			int i = at[k];
			ssize_t got;

			if (!(p[k].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			got = recv(c[i].fd, c[i].got + c[i].len, 65535 - c[i].len, 0);
			if (got <= 0)
				c[i].closed = true;
			else
				c[i].len += (size_t)got;
		}
	}
	for (int i = 0; i < FUZZ_PARALLEL; i++) {
		fuzz_check(&c[i].req, c[i].got, c[i].len, c[i].closed, t);
		if (c[i].fd >= 0)
			close(c[i].fd);
		free(c[i].got);
		free(c[i].req.p);
	}
}

static void test_hostile_clients(const char *dir)
{
	struct fuzz_tally t = { 0 };
	struct server srv;
	long long before, after;
	char cmd[4096];

	/* A request cut short waits for the rest until the timeout. */
	if (!server_start(&srv, dir, NULL, "--timeout", "1", (char *)NULL)) {
		CHECK_FAILF("server did not start");
		return;
	}
	before = health_records(&srv);
	for (int i = 0; i < FUZZ_CASES; i += FUZZ_PARALLEL) {
		fuzz_round(&srv, i, &t);
		/* Alive, and answering others. */
		if (kill(srv.pid, 0) != 0 || health_records(&srv) < 0) {
			CHECK_FAILF("the server died or stopped answering after case %d", i);
			return;
		}
	}
	after = health_records(&srv);
	fprintf(stderr, "test_server: %d hostile requests: %ld answers (%ld by "
		"libmicrohttpd), %ld captures acknowledged, %lld stored, %ld "
		"unanswered\n", FUZZ_CASES, t.answers, t.by_mhd, t.acked,
		after - before, t.in_doubt);
	/* Stored is what was acknowledged, plus at most the captures whose
	 * connection ended before an answer could be read. */
	if (after - before < t.acked || after - before > t.acked + t.in_doubt)
		CHECK_FAILF("%lld stored, %ld acknowledged, %ld in doubt", after - before,
			    t.acked, t.in_doubt);
	CHECK(t.answers >= FUZZ_CASES / 2);
	CHECK_INT(server_stop(&srv, SIGTERM), 0);
	snprintf(cmd, sizeof(cmd), "%s --data %s verify >/dev/null 2>&1", cli_path, dir);
	CHECK(system(cmd) == 0);
}

/* ------------------------------------------------------------------------
 * SIGTERM drains a request in flight; kill -9 loses nothing acknowledged.
 */

/* Waits (up to 30 s) until /metrics shows at least n requests in flight. */
static bool wait_in_flight(const struct server *srv, long n)
{
	static const char key[] = "\natolog_http_requests_in_flight ";
	char url[1024];

	url_of(url, srv, "/metrics");
	for (int i = 0; i < 3000; i++) {
		struct http r;
		const char *at;
		long got = 0;

		http(&r, "GET", url, NULL, NULL, NULL);
		at = r.body ? strstr(r.body, key) : NULL;
		if (at)
			got = atol(at + strlen(key));
		http_free(&r);
		if (got >= n)
			return true;
		usleep(10 * 1000);
	}
	return false;
}

static void test_sigterm_drains(const char *dir)
{
	struct server srv;
	char head[256], *got, id[ATOLOG_ID_TEXT_LEN + 1] = "", url[1024];
	const char *at;
	struct http r;
	bool closed;
	int fd, status;

	if (!server_start(&srv, dir, NULL, (char *)NULL)) {
		CHECK_FAILF("server did not start");
		return;
	}
	fd = raw_connect(&srv);
	if (fd < 0)
		return;
	snprintf(head, sizeof(head),
		 "POST /interactions HTTP/1.1\r\nHost: t\r\n"
		 "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
		 sizeof(good_body) - 1);
	raw_send(fd, head);
	raw_send(fd, "{\"prompt\":");
	/* Begun: in flight beside the /metrics request that asks. */
	if (!wait_in_flight(&srv, 2))
		CHECK_FAILF("the half-sent request never began");
	kill(srv.pid, SIGTERM);
	usleep(200 * 1000);
	raw_send(fd, good_body + 10);
	got = raw_read(fd, 10000, &closed);
	if (!got || strncmp(got, "HTTP/1.1 201", 12) != 0)
		CHECK_FAILF("in-flight request during drain: %.200s", got ? got : "");
	else if (!strstr(got, "Connection: close"))
		CHECK_FAILF("a draining answer must close: %.300s", got);
	at = got ? strstr(got, "\"id\":\"") : NULL;
	if (at)
		snprintf(id, sizeof(id), "%.36s", at + 6);
	free(got);
	close(fd);
	waitpid(srv.pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	srv.pid = -1;
	/* It was stored. */
	if (server_start(&srv, dir, NULL, (char *)NULL)) {
		url_of(url, &srv, "/interactions/%s", id);
		CHECK_INT(http(&r, "GET", url, NULL, NULL, NULL), 200);
		http_free(&r);
		CHECK_INT(server_stop(&srv, SIGTERM), 0);
	}
}

enum { LOAD_THREADS = 8, LOAD_MAX_ACKED = 100000 };

struct load {
	const struct server *srv;
	int t;
	atomic_bool *stop;
	char (*acked)[ATOLOG_ID_TEXT_LEN + 1];
	size_t n_acked;
	long connects, requests;
};

/* Adds the ids of a 201 answer (one interaction or a batch's ids). */
static void load_note(struct load *l, const struct http *r, bool batch)
{
	json_t *j = json_loadb(r->body, r->len, 0, NULL), *ids;

	if (!j)
		return;
	if (!batch) {
		snprintf(l->acked[l->n_acked++], ATOLOG_ID_TEXT_LEN + 1, "%s", jstr(j, "id"));
	} else if ((ids = json_object_get(j, "ids")) != NULL) {
		for (size_t i = 0; i < json_array_size(ids) && l->n_acked < LOAD_MAX_ACKED; i++)
			snprintf(l->acked[l->n_acked++], ATOLOG_ID_TEXT_LEN + 1, "%s",
				 json_string_value(json_array_get(ids, i)));
	}
	json_decref(j);
}

static void *load_run(void *arg)
{
	struct load *l = arg;
	CURL *c = curl_easy_init();
	char url[1024], batch_url[1024], body[256], batch[2048];
	struct http r;

	url_of(url, l->srv, "/interactions");
	url_of(batch_url, l->srv, "/interactions/batch");
	while (c && !atomic_load(l->stop) && l->n_acked < LOAD_MAX_ACKED - 10) {
		bool is_batch = l->requests % 5 == 4;

		snprintf(body, sizeof(body),
			 "{\"prompt\":\"load %ld\",\"session_id\":\"load-%d\",\"client\":\"t%d\"}",
			 l->requests, l->t, l->t);
		snprintf(batch, sizeof(batch), "[%s,%s,%s,%s]", body, body, body, body);
		http_on(c, &r, "POST", is_batch ? batch_url : url, "application/json",
			is_batch ? batch : body, strlen(is_batch ? batch : body), NULL);
		l->requests++;
		l->connects += r.connects;
		if (r.status == 201)
			load_note(l, &r, is_batch);
		http_free(&r);
		if (r.status < 0)
			break; /* the server is gone */
	}
	curl_easy_cleanup(c);
	return NULL;
}

static int compare_ids(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* Every acknowledged id of thread t is in its session exactly once. */
static void check_load_session(const struct server *srv, struct load *l)
{
	char url[1024], *line, *save = NULL;
	char (*seen)[ATOLOG_ID_TEXT_LEN + 1] = calloc(LOAD_MAX_ACKED + 64, sizeof(*seen));
	size_t n_seen = 0, missing = 0;
	struct http r;

	url_of(url, srv, "/sessions/load-%d/replay", l->t);
	http(&r, "GET", url, NULL, NULL, NULL);
	for (line = r.status == 200 ? strtok_r(r.body, "\n", &save) : NULL;
	     line && n_seen < LOAD_MAX_ACKED + 64; line = strtok_r(NULL, "\n", &save)) {
		json_t *o = json_loads(line, 0, NULL);

		snprintf(seen[n_seen++], ATOLOG_ID_TEXT_LEN + 1, "%s", jstr(o, "id"));
		json_decref(o);
	}
	http_free(&r);
	qsort(seen, n_seen, sizeof(*seen), compare_ids);
	for (size_t i = 1; i < n_seen; i++) {
		if (strcmp(seen[i - 1], seen[i]) == 0)
			CHECK_FAILF("load-%d: %s stored twice", l->t, seen[i]);
	}
	for (size_t i = 0; i < l->n_acked; i++) {
		if (!bsearch(l->acked[i], seen, n_seen, sizeof(*seen), compare_ids))
			missing++;
	}
	if (missing)
		CHECK_FAILF("load-%d: %zu of %zu acknowledged interactions lost", l->t,
		     missing, l->n_acked);
	/* Unacknowledged ones may be there too, but no more than in flight. */
	CHECK(n_seen >= l->n_acked && n_seen <= l->n_acked + 4);
	free(seen);
}

/* Runs LOAD_THREADS keep-alive writers, stops the server with sig, then
 * restarts it and checks every acknowledged interaction. */
static void load_then_stop(const char *dir, int sig)
{
	struct load loads[LOAD_THREADS];
	pthread_t threads[LOAD_THREADS];
	atomic_bool stop = false;
	struct server srv;
	size_t total = 0;
	long connects = 0, requests = 0;

	if (!server_start(&srv, dir, NULL, "--threads", "4", (char *)NULL)) {
		CHECK_FAILF("server did not start");
		return;
	}
	for (int t = 0; t < LOAD_THREADS; t++) {
		loads[t] = (struct load){ .srv = &srv, .t = t, .stop = &stop,
					  .acked = calloc(LOAD_MAX_ACKED, ATOLOG_ID_TEXT_LEN + 1) };
		pthread_create(&threads[t], NULL, load_run, &loads[t]);
	}
	usleep(1500 * 1000);
	/* SIGTERM drains: a clean exit, whatever was in flight. */
	CHECK_INT(server_stop(&srv, sig), sig == SIGKILL ? 128 + SIGKILL : 0);
	atomic_store(&stop, true);
	for (int t = 0; t < LOAD_THREADS; t++) {
		pthread_join(threads[t], NULL);
		total += loads[t].n_acked;
		connects += loads[t].connects;
		requests += loads[t].requests;
	}
	fprintf(stderr, "test_server: %s after %zu acknowledged interactions "
		"(%ld requests on %ld connections)\n", strsignal(sig), total, requests,
		connects);
	CHECK(total > 0);
	/* Keep-alive: connections are reused, not one per request. */
	CHECK(connects <= LOAD_THREADS * 2);
	if (server_start(&srv, dir, NULL, (char *)NULL)) {
		for (int t = 0; t < LOAD_THREADS; t++)
			check_load_session(&srv, &loads[t]);
		CHECK_INT(server_stop(&srv, SIGTERM), 0);
	} else {
		CHECK_FAILF("server did not restart after %s", strsignal(sig));
	}
	for (int t = 0; t < LOAD_THREADS; t++)
		free(loads[t].acked);
}

static void test_kill9_under_load(const char *dir)
{
	load_then_stop(dir, SIGKILL);
}

static void test_sigterm_under_load(const char *dir)
{
	load_then_stop(dir, SIGTERM);
}

/* ------------------------------------------------------------------------
 * A long replay, the metrics, and a second writer.
 */

static void test_long_replay_and_metrics(const char *dir)
{
	enum { N_BATCHES = 20, PER_BATCH = 500 };
	struct server srv;
	char url[1024], *doc, *line, *save = NULL, *metrics;
	size_t len = 0, got = 0;
	uint64_t last_seq = 0;
	struct http r;
	FILE *f;

	if (!server_start(&srv, dir, "batch", (char *)NULL)) {
		CHECK_FAILF("server did not start");
		return;
	}
	url_of(url, &srv, "/interactions/batch");
	for (int b = 0; b < N_BATCHES; b++) {
		doc = NULL;
		f = open_memstream(&doc, &len);
		for (int i = 0; i < PER_BATCH; i++)
			fprintf(f, "{\"prompt\":\"turn %d\",\"session_id\":\"long\","
				   "\"context_pack\":{\"turn\":%d}}\n",
				b * PER_BATCH + i, b * PER_BATCH + i);
		fclose(f);
		http_on(shared_curl, &r, "POST", url, "application/x-ndjson", doc, len, NULL);
		CHECK_INT(r.status, 201);
		http_free(&r);
		free(doc);
	}
	url_of(url, &srv, "/sessions/long/replay");
	http(&r, "GET", url, NULL, NULL, NULL);
	CHECK_INT(r.status, 200);
	CHECK(strstr(r.headers, "chunked") != NULL);
	for (line = strtok_r(r.body, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		json_t *o = json_loads(line, 0, NULL);
		uint64_t seq = (uint64_t)json_integer_value(json_object_get(o, "seq"));
		long turn = (long)json_integer_value(
			json_object_get(json_object_get(o, "context_pack"), "turn"));

		if (turn != (long)got || seq <= last_seq) {
			CHECK_FAILF("replay line %zu: turn %ld seq %" PRIu64, got, turn, seq);
			json_decref(o);
			break;
		}
		last_seq = seq;
		got++;
		json_decref(o);
	}
	CHECK_INT(got, N_BATCHES * PER_BATCH);
	http_free(&r);

	/* Listings of a big session: the default page, the cap, nothing. */
	{
		static const struct {
			const char *query;
			long want;
		} pages[] = {
			{ "", 50 }, { "&limit=1000", 500 }, { "&limit=500", 500 },
			{ "&limit=499", 499 }, { "&limit=0", 0 }, { "&limit=-5", 0 },
		};

		for (size_t i = 0; i < sizeof(pages) / sizeof(pages[0]); i++) {
			json_t *j, *arr;

			url_of(url, &srv, "/interactions?session_id=long%s", pages[i].query);
			http(&r, "GET", url, NULL, NULL, NULL);
			j = json_of(__LINE__, &r);
			arr = json_object_get(j, "interactions");
			CHECK_INT(json_array_size(arr), pages[i].want);
			CHECK_INT(json_integer_value(json_object_get(j, "count")), pages[i].want);
			/* Newest first: the last turns, descending. */
			for (size_t k = 0; k < json_array_size(arr); k++) {
				json_t *ctx = json_object_get(json_array_get(arr, k), "context_pack");

				if (json_integer_value(json_object_get(ctx, "turn")) !=
				    (json_int_t)(N_BATCHES * PER_BATCH - 1 - k)) {
					CHECK_FAILF("%s: row %zu out of order", url, k);
					break;
				}
			}
			json_decref(j);
			http_free(&r);
		}
	}

	/* The metrics count what happened. */
	url_of(url, &srv, "/metrics");
	http(&r, "GET", url, NULL, NULL, NULL);
	CHECK_INT(r.status, 200);
	CHECK(strstr(r.headers, "text/plain; version=0.0.4") != NULL);
	metrics = r.body;
	{
		static const char *const want[] = {
			"\natolog_records 10000\n",
			"\natolog_ingest_stored_total 10000\n",
			"\natolog_http_requests_total{route=\"batch\",code=\"201\"} 20\n",
			"\natolog_http_requests_total{route=\"replay\",code=\"200\"} 1\n",
			"\natolog_http_requests_total{route=\"interactions\",code=\"200\"} 6\n",
			"\natolog_http_request_seconds_count{route=\"batch\"} 20\n",
			"\natolog_http_request_seconds_bucket{route=\"batch\",le=\"+Inf\"} 20\n",
			"\natolog_commit_frames_total 10000\n",
			"\natolog_commit_group_frames_count ",
			"\natolog_log_syncs_total ",
			"\n# TYPE atolog_http_request_seconds histogram\n",
		};

		for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
			if (!strstr(metrics, want[i]))
				CHECK_FAILF("metrics lack %s", want[i] + 1);
		}
	}
	http_free(&r);

	/* A second server on the same store is refused: one writer. */
	CHECK_INT(server_start_fails(dir, "--threads=2"), 3);
	CHECK_INT(server_stop(&srv, SIGTERM), 0);
}

/* `atolog serve --data DIR` as the issue writes it: the option after the
 * command wins over the one before it. */
static void test_data_after_serve(const char *dir)
{
	char *decoy = check_path(dir, "not-this-one"), *real = check_path(dir, "store");
	struct server srv;
	char url[1024];
	struct http r;

	if (!server_start(&srv, decoy, NULL, "--data", real, (char *)NULL)) {
		CHECK_FAILF("server did not start");
	} else {
		url_of(url, &srv, "/interactions");
		http(&r, "POST", url, "application/json", good_body, NULL);
		CHECK_INT(r.status, 201);
		http_free(&r);
		CHECK_INT(server_stop(&srv, SIGTERM), 0);
		CHECK(access(decoy, F_OK) != 0);
		CHECK(access(real, F_OK) == 0);
	}
	free(decoy);
	free(real);
}

/* ------------------------------------------------------------------------
 * Backups: snapshots over HTTP, and their cleanup.
 */

static long count_snapshots(const char *dir)
{
	char cmd[4096], line[1024];
	long n = 0;
	FILE *p;

	snprintf(cmd, sizeof(cmd), "%s snapshot list %s", cli_path, dir);
	p = popen(cmd, "r");
	while (p && fgets(line, sizeof(line), p))
		n += strstr(line, "\"created_at\"") != NULL;
	if (p)
		pclose(p);
	return n;
}

static void test_admin_backup(const char *dir)
{
	char *backups = check_path(dir, "backups"), url[1024], cmd[4096];
	char first[64] = "";
	struct server srv;
	struct http r;
	json_t *j;

	if (!server_start(&srv, dir, NULL, "--backup-dir", backups, (char *)NULL)) {
		CHECK_FAILF("server did not start");
		free(backups);
		return;
	}
	/* Before any backup: an empty plan, not an error. */
	url_of(url, &srv, "/admin/backup/cleanup");
	http(&r, "POST", url, NULL, NULL, NULL);
	CHECK_INT(r.status, 200);
	CHECK(strstr(r.body, "\"kept\":0") != NULL);
	http_free(&r);
	url_of(url, &srv, "/interactions");
	for (int i = 0; i < 50; i++) {
		http(&r, "POST", url, "application/json", good_body, NULL);
		http_free(&r);
	}
	url_of(url, &srv, "/admin/backup");
	for (int i = 0; i < 3; i++) {
		http(&r, "POST", url, i ? "application/json" : NULL, i ? "{}" : NULL, NULL);
		CHECK_INT(r.status, 201);
		j = json_of(__LINE__, &r);
		CHECK_INT(json_integer_value(json_object_get(j, "records")), 50);
		if (i == 0)
			snprintf(first, sizeof(first), "%s", jstr(j, "snapshot"));
		json_decref(j);
		http_free(&r);
	}
	CHECK_INT(count_snapshots(backups), 3);
	/* A backup is a store that verifies. */
	snprintf(cmd, sizeof(cmd), "%s snapshot verify %s/%s >/dev/null 2>&1", cli_path,
		 backups, first);
	CHECK(system(cmd) == 0);
	/* Cleanup is a dry run unless told. */
	url_of(url, &srv, "/admin/backup/cleanup");
	http(&r, "POST", url, "application/json",
	     "{\"keep_last\":1,\"keep_daily\":0,\"keep_weekly\":0}", NULL);
	CHECK_INT(r.status, 200);
	CHECK(strstr(r.body, "\"dry_run\":true") && strstr(r.body, "\"would_delete\":2"));
	http_free(&r);
	CHECK_INT(count_snapshots(backups), 3);
	http(&r, "POST", url, "application/json",
	     "{\"dry_run\":false,\"keep_last\":1,\"keep_daily\":0,\"keep_weekly\":0}",
	     NULL);
	CHECK_INT(r.status, 200);
	CHECK(strstr(r.body, "\"dry_run\":false") && strstr(r.body, "\"deleted\":2"));
	CHECK(strstr(r.body, "\"action\":\"deleted\"") != NULL);
	http_free(&r);
	CHECK_INT(count_snapshots(backups), 1);
	/* With no body: the defaults, and still a dry run. */
	http(&r, "POST", url, NULL, NULL, NULL);
	CHECK_INT(r.status, 200);
	CHECK(strstr(r.body, "\"dry_run\":true") != NULL);
	http_free(&r);
	/* The cron script, while the server runs: one more, verified. */
	if (getenv("ATOLOG_SOURCE_DIR")) {
		snprintf(cmd, sizeof(cmd), "ATOLOG=%s ATOLOG_DATA=%s BACKUP_DIR=%s "
			 "KEEP_LAST=5 sh %s/deploy/cron-backup.sh >/dev/null 2>&1",
			 cli_path, dir, backups, getenv("ATOLOG_SOURCE_DIR"));
		CHECK(system(cmd) == 0);
		CHECK_INT(count_snapshots(backups), 2);
	} else {
		CHECK_FAILF("ATOLOG_SOURCE_DIR is not set: the cron script is not tested");
	}
	CHECK_INT(server_stop(&srv, SIGTERM), 0);
	free(backups);
}

static long count_substr(const char *s, const char *needle)
{
	long n = 0;

	for (const char *p = s; p && (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

/* POST /admin/compact: a dry run unless told, then the old records of a
 * project are gone from the served store's queries, the rest stay. */
static void test_admin_compact(const char *dir)
{
	static const char old[] = "{\"prompt\":\"old\",\"project\":\"attic\","
				  "\"created_at\":\"2025-06-01 10:00:00\"}";
	static const char body[] = "{\"before\":\"2026-01-01T00:00:00Z\","
				   "\"project\":\"attic\"%s}";
	char url[1024], req[256];
	struct server srv;
	struct http r;
	json_t *j;

	if (!server_start(&srv, dir, NULL, (char *)NULL)) {
		CHECK_FAILF("server did not start");
		return;
	}
	url_of(url, &srv, "/interactions");
	for (int i = 0; i < 30; i++) {
		http(&r, "POST", url, "application/json", i % 3 ? good_body : old, NULL);
		CHECK_INT(r.status, 201);
		http_free(&r);
	}
	url_of(url, &srv, "/admin/compact");
	for (int apply = 0; apply < 2; apply++) {
		snprintf(req, sizeof(req), body, apply ? ",\"dry_run\":false" : "");
		http(&r, "POST", url, "application/json", req, NULL);
		CHECK_INT(r.status, 200);
		j = json_of(__LINE__, &r);
		CHECK(json_is_boolean(json_object_get(j, "applied")) &&
		      json_is_true(json_object_get(j, "applied")) == apply);
		CHECK_INT(json_integer_value(json_object_get(j, "records_removed")), 10);
		json_decref(j);
		http_free(&r);
	}
	url_of(url, &srv, "/interactions?project=attic");
	http(&r, "GET", url, NULL, NULL, NULL);
	CHECK_INT(r.status, 200);
	CHECK(r.body && strstr(r.body, "\"id\"") == NULL);
	http_free(&r);
	url_of(url, &srv, "/interactions?limit=500");
	http(&r, "GET", url, NULL, NULL, NULL);
	CHECK_INT(count_substr(r.body, "\"prompt\":\"fine\""), 20);
	http_free(&r);
	post_good(&srv); /* the store still takes writes */
	CHECK_INT(server_stop(&srv, SIGTERM), 0);
}

static void test_bad_options(const char *dir)
{
	CHECK_INT(server_start_fails(dir, "--threads=0"), 2);
	CHECK_INT(server_start_fails(dir, "--max-body=lots"), 2);
	CHECK_INT(server_start_fails(dir, "--bogus"), 2);
	CHECK_INT(server_start_fails(dir, "--sync=sometimes"), 2);
	for (int i = 0; i < 2; i++) {
		pid_t pid = fork();
		int status;

		if (pid == 0) {
			int null_fd = open("/dev/null", O_WRONLY);

			dup2(null_fd, 1);
			dup2(null_fd, 2);
			execl(cli_path, "atolog", "--data", dir, "serve", "--listen",
			      i ? "127.0.0.1:70000" : "no-port-here", (char *)NULL);
			_exit(127);
		}
		waitpid(pid, &status, 0);
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 2);
	}
}

/* ------------------------------------------------------------------------
 * Values a body cannot have (a number msgpack cannot hold, a field given
 * twice): 400 naming where, nothing stored; in a batch (JSON array or
 * NDJSON), that item's error alone.
 */

static void check_body_refused(const struct server *srv, const char *body,
			       const char *why)
{
	char url[1024], batch[1024];
	struct http r;
	json_t *j, *errors;

	url_of(url, srv, "/interactions");
	http(&r, "POST", url, "application/json", body, NULL);
	check_error(__LINE__, &r, 400, why);
	http_free(&r);
	url_of(url, srv, "/interactions/batch");
	for (int ndjson = 0; ndjson < 2; ndjson++) {
		snprintf(batch, sizeof(batch), ndjson ? "%s\n%s\n" : "[%s,%s]",
			 good_body, body);
		http(&r, "POST", url, ndjson ? "application/x-ndjson" : "application/json",
		     batch, NULL);
		CHECK_INT(r.status, 207);
		j = json_of(__LINE__, &r);
		errors = json_object_get(j, "errors");
		CHECK(json_is_string(json_array_get(json_object_get(j, "ids"), 0)));
		CHECK(json_is_null(json_array_get(json_object_get(j, "ids"), 1)));
		CHECK_INT(json_array_size(errors), 1);
		CHECK_INT(json_integer_value(json_object_get(json_array_get(errors, 0),
							     "index")), 1);
		if (!strstr(jstr(json_array_get(errors, 0), "error"), why))
			CHECK_FAILF("batch %s: errors %s lack \"%s\"", batch, r.body, why);
		json_decref(j);
		http_free(&r);
	}
}

static void test_body_values(const char *dir)
{
	static const char exact[] =
		"{\"n\":[-9223372036854775808,9223372036854775807,18446744073709551615],"
		"\"d\":[0.1,1e+308,-0.0]}";
	struct server srv;
	long long before;
	char url[1024], body[512], want[512];
	struct http r;

	if (!server_start(&srv, dir, NULL, (char *)NULL)) {
		CHECK_FAILF("server did not start");
		return;
	}
	before = health_records(&srv);
	check_body_refused(&srv, "{\"prompt\":\"p\",\"context_pack\":{\"a\":1e400}}",
			   "context_pack.a: the number 1e400");
	check_body_refused(&srv, "{\"prompt\":\"p\",\"context_pack\":{\"a\":[{\"b\":-1e400}]}}",
			   "context_pack.a[0].b: the number -1e400");
	check_body_refused(&srv, "{\"prompt\":\"p\",\"context_pack\":"
			   "{\"x\":123456789012345678901234567890}}",
			   "context_pack.x: the integer 123456789012345678901234567890");
	/* A field given twice: which one the client meant is unknown. */
	check_body_refused(&srv, "{\"prompt\":\"a\",\"session_id\":\"s\",\"prompt\":\"b\"}",
			   "prompt is given twice");
	check_body_refused(&srv, "{\"prompt\":\"a\",\"context_pack\":{\"k\":1},"
			   "\"context_pack\":null}", "context_pack is given twice");
	CHECK_INT(health_records(&srv), before + 10); /* the batches' good items */

	/* In range: exactly what was sent. */
	url_of(url, &srv, "/interactions");
	snprintf(body, sizeof(body), "{\"prompt\":\"p\",\"context_pack\":%s}", exact);
	snprintf(want, sizeof(want), "\"context_pack\":%s,", exact);
	http(&r, "POST", url, "application/json", body, NULL);
	CHECK_INT(r.status, 201);
	if (!r.body || !strstr(r.body, want))
		CHECK_FAILF("201 body %s lacks %s", r.body ? r.body : "", want);
	if (r.body && strncmp(r.body, "{\"id\":\"", 7) == 0) {
		char id[ATOLOG_ID_TEXT_LEN + 1];

		snprintf(id, sizeof(id), "%.*s", ATOLOG_ID_TEXT_LEN, r.body + 7);
		http_free(&r);
		url_of(url, &srv, "/interactions/%s", id);
		http(&r, "GET", url, NULL, NULL, NULL);
		CHECK_INT(r.status, 200);
		if (!r.body || !strstr(r.body, want))
			CHECK_FAILF("GET body %s lacks %s", r.body ? r.body : "", want);
	}
	http_free(&r);
	CHECK_INT(server_stop(&srv, SIGTERM), 0);
}

int main(int argc, char **argv)
{
	static const struct check_case tests[] = {
		{ "capture_and_query", test_capture_and_query },
		{ "refusals", test_refusals },
		{ "auth", test_auth },
		{ "disk_full", test_disk_full },
		{ "stalled_clients", test_stalled_clients },
		{ "trickled_headers", test_trickled_headers },
		{ "head_pipelined", test_head_pipelined },
		{ "smuggling", test_smuggling },
		{ "hostile_clients", test_hostile_clients },
		{ "sigterm_drains", test_sigterm_drains },
		{ "kill9_under_load", test_kill9_under_load },
		{ "sigterm_under_load", test_sigterm_under_load },
		{ "long_replay_and_metrics", test_long_replay_and_metrics },
		{ "data_after_serve", test_data_after_serve },
		{ "admin_backup", test_admin_backup },
		{ "admin_compact", test_admin_compact },
		{ "bad_options", test_bad_options },
		{ "body_values", test_body_values },
	};
	int rc;

	check_args(argc, argv);
	cli_path = getenv("ATOLOG_CLI");
	if (!cli_path) {
		fprintf(stderr, "test_server: set ATOLOG_CLI to the atolog binary\n");
		return 2;
	}
	check_rand_init("test_server");
	curl_global_init(CURL_GLOBAL_DEFAULT);
	shared_curl = curl_easy_init();
	/* ATOLOG_TEST_ONLY=name,name runs only those cases (while developing). */
	{
		const char *only = getenv("ATOLOG_TEST_ONLY");
		struct check_case chosen[sizeof(tests) / sizeof(tests[0])];
		size_t n = 0;

		for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
			const char *at = only ? strstr(only, tests[i].name) : NULL;
			size_t nl = strlen(tests[i].name);

			if (!only || (at && (at == only || at[-1] == ',') &&
				      (at[nl] == '\0' || at[nl] == ',')))
				chosen[n++] = tests[i];
		}
		rc = check_run_cases("test_server", chosen, n);
	}
	curl_easy_cleanup(shared_curl);
	curl_global_cleanup();
	return rc;
}
