/*
 * fuzz_http.c - the server's own checks of a request, driven in process
 * without a socket: the input is a request head as a client sends it
 * ("METHOD URL VERSION", header lines, a blank line). The target splits it
 * as libmicrohttpd would, decodes the path and query with the server's
 * unescaper (request_unescape), routes it (request_route), checks the head
 * (request_check_head) with and without a bearer token, and runs what a
 * GET that passes would read (list_query_parse, then the list, the replay
 * or the get) against a small store LLVMFuzzerInitialize fills.
 *
 * libmicrohttpd's own parsing is not what is fuzzed here: its refusals
 * (a malformed request line, a header without a colon) come before any of
 * this code runs.
 *
 * Properties: every head is passed or refused with a status of the set
 * below and a message; a path or query value with a raw control byte, or
 * one that decodes to a NUL (which would cut it short), is always refused
 * with 400, judged here from the bytes themselves; a token only ever adds
 * a 401; a listing holds what its session, client and since ask and no
 * more rows than its limit; the store's answers are found, not found or
 * invalid, never an error.
 */
#include <string.h>
#include <unistd.h>

#include "codec.h"
#include "fuzz.h"
#include "server.h"

#define FUZZ_TOKEN "s3cret-token"
#define FUZZ_FIELDS_MAX 64
#define FUZZ_ARGS_MAX 32
#define FUZZ_ROWS_MAX 64 /* rows read of one listing */

static char store_dir[] = "/tmp/atolog-fuzz-http-XXXXXX";
static atolog_store *store;

static void fuzz_store_close(void)
{
	atolog_store_close(store);
	fuzz_remove_tree(store_dir);
}

/* Twelve interactions over two projects, three sessions, two clients. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char *projects[] = { "alpha", "beta" };
	static const char *clients[] = { "openclaw", "claude-code" };
	static const char *sessions[] = { "s1", "s2", "s3" };
	atolog_options opts = { .sync = ATOLOG_SYNC_NONE,
				.segment_size = ATOLOG_SEGMENT_SIZE_MIN };

	(void)argc, (void)argv;
	FUZZ_CHECK(mkdtemp(store_dir) != NULL);
	FUZZ_CHECK(atolog_store_open(store_dir, &opts, &store) == ATOLOG_OK);
	atexit(fuzz_store_close);
	for (int i = 0; i < 12; i++) {
		atolog_interaction in = {
			.prompt = "what is in the log?",
			.project = projects[i % 2],
			.client = clients[i % 2],
			.session_id = sessions[i % 3],
			.has_created_at = 1,
			.created_at = INT64_C(1767225600000000) + i * INT64_C(3600000000),
		};

		FUZZ_CHECK(atolog_interaction_record(store, &in, NULL) == ATOLOG_OK);
	}
	return 0;
}

/* The head, split: each piece NUL-terminated in place. */
struct head {
	char *method, *url, *version;
	bool bytes_bad; /* the model's verdict: a raw control byte or a %00 */
	struct request_field fields[FUZZ_FIELDS_MAX];
	size_t n_fields;
	char *keys[FUZZ_ARGS_MAX], *values[FUZZ_ARGS_MAX];
	size_t n_args;
	bool url_bad;
};

/* Whether s (still encoded) holds a raw control byte or DEL, or a %00
 * that decoding would turn into a NUL. */
static bool encoded_bad(const char *s)
{
	for (; *s; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
		if (s[0] == '%' && s[1] == '0' && s[2] == '0')
			return true;
	}
	return false;
}

/* libmicrohttpd's query decoding: '+' is a space, then %HH. */
static void decode_query_part(struct head *h, char *s)
{
	h->bytes_bad |= encoded_bad(s);
	for (char *p = s; *p; p++) {
		if (*p == '+')
			*p = ' ';
	}
	request_unescape(s, &h->url_bad);
}

static char *cut(char **p, const char *sep)
{
	char *start = *p, *at = strstr(start, sep);

	if (!at)
		return NULL;
	*at = '\0';
	*p = at + strlen(sep);
	return start;
}

static void split_fields(struct head *h, char *p)
{
	char *line;

	while ((line = cut(&p, "\r\n")) && *line && h->n_fields < FUZZ_FIELDS_MAX) {
		char *colon = strchr(line, ':'), *value;

		if (!colon)
			continue;
		*colon = '\0';
		value = colon + 1;
		while (*value == ' ' || *value == '\t')
			value++;
		h->fields[h->n_fields++] = (struct request_field){
			.key = line, .key_len = strlen(line),
			.value = value, .value_len = strlen(value),
		};
	}
}

/* The query after '?', as libmicrohttpd splits it: & between arguments,
 * = between key and value, each decoded by the server's unescaper. */
static void split_query(struct head *h, char *q)
{
	while (q && *q && h->n_args < FUZZ_ARGS_MAX) {
		char *amp = strchr(q, '&'), *eq;

		if (amp)
			*amp = '\0';
		eq = strchr(q, '=');
		if (eq)
			*eq = '\0';
		h->keys[h->n_args] = q;
		h->values[h->n_args] = eq ? eq + 1 : NULL;
		decode_query_part(h, q);
		if (eq)
			decode_query_part(h, eq + 1);
		h->n_args++;
		q = amp ? amp + 1 : NULL;
	}
}

static bool split_head(struct head *h, char *text)
{
	char *p = text, *line = cut(&p, "\r\n"), *query;

	if (!line || !(h->method = cut(&line, " ")) || !(h->url = cut(&line, " ")))
		return false;
	h->version = line;
	query = strchr(h->url, '?');
	if (query)
		*query++ = '\0';
	h->bytes_bad |= encoded_bad(h->url);
	request_unescape(h->url, &h->url_bad);
	split_query(h, query);
	split_fields(h, p);
	return true;
}

static const char *head_arg(void *ctx, const char *key)
{
	struct head *h = ctx;

	for (size_t i = 0; i < h->n_args; i++) {
		if (strcmp(h->keys[i], key) == 0)
			return h->values[i]; /* NULL for "?key" without '=' */
	}
	return NULL;
}

static bool status_known(unsigned s)
{
	static const unsigned known[] = {
		0, MHD_HTTP_BAD_REQUEST, MHD_HTTP_UNAUTHORIZED, MHD_HTTP_NOT_FOUND,
		MHD_HTTP_METHOD_NOT_ALLOWED, MHD_HTTP_LENGTH_REQUIRED,
		MHD_HTTP_CONTENT_TOO_LARGE, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
		MHD_HTTP_EXPECTATION_FAILED, MHD_HTTP_NOT_IMPLEMENTED,
		MHD_HTTP_HTTP_VERSION_NOT_SUPPORTED,
	};

	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
		if (s == known[i])
			return true;
	}
	return false;
}

static unsigned check_with(struct server *srv, struct request *req,
			   const struct request_head *rh, bool bytes_bad)
{
	req->srv = srv;
	request_check_head(req, rh);
	FUZZ_CHECK(status_known(req->early));
	if (req->early)
		FUZZ_CHECK(req->early_msg[0] != '\0');
	FUZZ_CHECK(rh->url_bad == bytes_bad);
	if (bytes_bad)
		FUZZ_CHECK(req->early == MHD_HTTP_BAD_REQUEST);
	return req->early;
}

static bool matches(const char *want, const char *got)
{
	return !want || !*want || strcmp(want, got ? got : "") == 0;
}

static void read_list(struct head *h)
{
	char why[LIST_QUERY_WHY_SIZE];
	atolog_query q;
	atolog_iter *iter;
	const atolog_interaction *rec;
	int64_t since;
	long rows = 0;
	int rc = list_query_parse(head_arg, h, &q, why, sizeof(why));

	if (rc != ATOLOG_OK) {
		FUZZ_CHECK(rc == ATOLOG_INVALID && why[0]);
		return;
	}
	FUZZ_CHECK(q.limit <= ATOLOG_LIST_LIMIT_MAX);
	if (q.since && *q.since && atolog_time_parse(q.since, &since) == ATOLOG_OK)
		since = time_floor_second(since); /* the seed's whole seconds */
	else
		since = INT64_MIN;
	rc = atolog_list_open(store, &q, &iter);
	FUZZ_CHECK(rc == ATOLOG_OK || rc == ATOLOG_INVALID);
	if (rc != ATOLOG_OK)
		return;
	while (rows < FUZZ_ROWS_MAX && (rc = atolog_iter_next(iter, &rec)) == ATOLOG_OK) {
		rows++;
		FUZZ_CHECK(rows <= q.limit);
		FUZZ_CHECK(matches(q.session_id, rec->session_id));
		FUZZ_CHECK(matches(q.client, rec->client));
		FUZZ_CHECK(rec->created_at >= since);
	}
	FUZZ_CHECK(rc == ATOLOG_OK || rc == ATOLOG_DONE);
	atolog_iter_close(iter);
}

static void read_route(struct head *h, enum route route, const char *arg)
{
	atolog_interaction *rec = NULL;
	atolog_iter *iter;
	int rc;

	if (route == ROUTE_INTERACTIONS) {
		read_list(h);
	} else if (route == ROUTE_INTERACTION) {
		rc = atolog_interaction_get(store, arg, &rec);
		FUZZ_CHECK(rc == ATOLOG_OK || rc == ATOLOG_NOTFOUND || rc == ATOLOG_INVALID);
		atolog_interaction_free(rec);
	} else if (route == ROUTE_REPLAY) {
		const atolog_interaction *row;

		rc = atolog_replay_open(store, arg, &iter);
		FUZZ_CHECK(rc == ATOLOG_OK || rc == ATOLOG_INVALID);
		if (rc != ATOLOG_OK)
			return;
		while ((rc = atolog_iter_next(iter, &row)) == ATOLOG_OK)
			FUZZ_CHECK(strcmp(row->session_id, arg) == 0);
		FUZZ_CHECK(rc == ATOLOG_DONE);
		atolog_iter_close(iter);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct server open = { .cfg = { .max_body = SERVE_MAX_BODY_DEFAULT } };
	struct server guarded = { .cfg = { .max_body = SERVE_MAX_BODY_DEFAULT },
				  .token = FUZZ_TOKEN };
	struct head h = { 0 };
	struct request req = { 0 };
	char *text = fuzz_strndup(data, size), *arg = NULL;
	unsigned without, with;

	if (split_head(&h, text)) {
		struct request_head rh = {
			.method = h.method, .version = h.version, .url = h.url,
			.url_bad = h.url_bad, .fields = h.fields, .n_fields = h.n_fields,
		};

		req.route = request_route(h.url, &arg);
		FUZZ_CHECK((arg != NULL) == (req.route == ROUTE_INTERACTION ||
					     req.route == ROUTE_REPLAY));
		without = check_with(&open, &req, &rh, h.bytes_bad);
		FUZZ_CHECK(without != MHD_HTTP_UNAUTHORIZED);
		with = check_with(&guarded, &req, &rh, h.bytes_bad);
		FUZZ_CHECK(with == without || with == MHD_HTTP_UNAUTHORIZED);
		if (without == 0 && (strcmp(h.method, "GET") == 0 ||
				     strcmp(h.method, "HEAD") == 0))
			read_route(&h, req.route, arg);
	}
	free(arg);
	free(text);
	return 0;
}
