/*
 * server.h - `atolog serve`: the seed service's HTTP routes over one
 * writer handle, on libmicrohttpd.
 *
 * Shape: libmicrohttpd runs a pool of polling threads; each request is
 * answered in the thread that read it. A write blocks that thread until
 * the store acknowledges (durable per the sync mode), so the pool size is
 * also how many requests can share one group commit. Listings and replays
 * stream from an iterator as the client reads, so a response never holds
 * more than one interaction in memory.
 *
 *   server.c    lifecycle: listen, signals, drain, close the store
 *   request.c   one request: routing, auth, content type, body limits
 *   handlers.c  the routes
 *   admin.c     backups (snapshots) and their cleanup, compaction
 *   writers.c   the threads that wait on the store for captures
 *   stream.c    iterator -> chunked response (JSON envelope or NDJSON)
 *   reply.c     JSON replies and error bodies
 *   metrics.c   counters and histograms, Prometheus text
 */
#ifndef ATOLOG_SERVER_H
#define ATOLOG_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <microhttpd.h>

#include "atolog.h"

/* Defaults and limits (README, "Server"). */
#define SERVE_LISTEN_DEFAULT "127.0.0.1:8100"
#define SERVE_THREADS_DEFAULT 16       /* polling threads */
#define SERVE_THREADS_MAX 256
#define SERVE_WRITERS_DEFAULT 64       /* captures waiting on the store at once */
#define SERVE_WRITERS_MAX 1024
#define SERVE_MAX_BODY_DEFAULT (16u << 20) /* bytes of one request body */
#define SERVE_TIMEOUT_S_DEFAULT 30     /* idle or stalled connection */
#define SERVE_UPLOAD_TIMEOUTS 4        /* a body arrives within 4 timeouts */
#define SERVE_HEADER_TIMEOUTS 2        /* headers arrive within 2 timeouts */
#define SERVE_SWEEP_MS 250             /* how often late headers are looked for */
#define SERVE_CONNECTIONS_DEFAULT 512  /* open connections at once */
#define SERVE_BATCH_MAX_ITEMS 10000    /* interactions in one batch */
#define SERVE_QUEUE_TIMEOUT_MS 5000    /* a write waits this long for room */
#define SERVE_DRAIN_TIMEOUT_MS 10000   /* SIGTERM: in-flight requests */
#define SERVE_STREAM_BLOCK (64u << 10) /* bytes per chunk of a stream */
#define SERVE_BACKUP_SUFFIX ".snapshots" /* --backup-dir default: DATA.snapshots */

enum route {
	ROUTE_INTERACTIONS,   /* POST record, GET list */
	ROUTE_BATCH,          /* POST /interactions/batch */
	ROUTE_INTERACTION,    /* GET /interactions/{id} */
	ROUTE_REPLAY,         /* GET /sessions/{id}/replay */
	ROUTE_BACKUP,         /* POST /admin/backup */
	ROUTE_BACKUP_CLEANUP, /* POST /admin/backup/cleanup */
	ROUTE_COMPACT,        /* POST /admin/compact */
	ROUTE_HEALTH,
	ROUTE_METRICS,
	ROUTE_UNKNOWN,        /* 404 */
	ROUTE_COUNT
};

/* ------------------------------------------------------------------------
 * Metrics (metrics.c). Lock-free counters, read while they move.
 */
#define METRICS_STATUSES 16 /* the codes the server answers, then "other" */
#define METRICS_LATENCY_BUCKETS 17

struct route_metrics {
	atomic_uint_fast64_t by_status[METRICS_STATUSES];
	atomic_uint_fast64_t latency[METRICS_LATENCY_BUCKETS]; /* not cumulative */
	atomic_uint_fast64_t latency_sum_ns;
};

struct metrics {
	struct route_metrics routes[ROUTE_COUNT];
	atomic_uint_fast64_t ingest_stored;   /* interactions acknowledged */
	atomic_uint_fast64_t ingest_refused;  /* items refused as invalid */
	atomic_uint_fast64_t ingest_failed;   /* items the store failed */
	atomic_uint_fast64_t body_bytes;      /* request bodies read */
};

const char *route_name(enum route r);
void metrics_observe(struct metrics *m, enum route r, unsigned status,
		     uint64_t ns);
/* The Prometheus text exposition; *out is malloc'ed. */
int metrics_render(struct metrics *m, const atolog_stats *st, long in_flight,
		   char **out, size_t *len);

/* ------------------------------------------------------------------------
 * The server.
 */
struct server_config {
	const char *data_dir;
	atolog_sync_mode sync;
	const char *listen;        /* HOST:PORT; [v6]:PORT; port 0 = any */
	unsigned threads;
	unsigned writers;
	const char *token_file;    /* NULL: no auth */
	const char *backup_dir;    /* where POST /admin/backup puts snapshots */
	size_t max_body;
	unsigned timeout_s;
	unsigned max_connections;
};

struct request;

/* One open connection, from libmicrohttpd's STARTED notification to its
 * CLOSED one (server.c). libmicrohttpd resets its idle timeout on every
 * byte and calls no handler before the headers are complete, so a client
 * trickling its headers is cut by the sweep, which shuts the socket down
 * once they are SERVE_HEADER_TIMEOUTS timeouts late. libmicrohttpd 0.9.75
 * sends CLOSED before it closes the descriptor (daemon.c: in
 * MHD_cleanup_connections, and on the failure path after STARTED in
 * new_connection_process_), and the sweep touches fd only under
 * conns_lock while the watch is listed: never a closed or reused
 * descriptor. */
struct conn_watch {
	int fd;
	atomic_uint_fast64_t head_since_ns; /* opened, or the last answer done */
	atomic_bool in_request;             /* its headers are in */
	bool url_bad;    /* the URL had an encoded NUL or a raw control byte
			  * (set and read by the connection's own thread) */
	bool cut;        /* shut down by the sweep (under conns_lock) */
	struct conn_watch *prev, *next;
};

/* The write pool (writers.c): a queue of requests whose connections are
 * suspended while a writer thread runs their work. */
struct writers {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct request *head, *tail;
	bool stopping;
	bool ready;  /* lock and cond initialised */
	pthread_t *threads;
	unsigned n;
};

int writers_start(struct writers *w, unsigned n);
/* Runs what is queued, then stops the threads; later submissions are
 * refused. */
void writers_stop(struct writers *w);
/* Stops if needed, then frees (after the daemon is stopped). */
void writers_free(struct writers *w);

struct server {
	struct server_config cfg;
	struct writers writers;
	atolog_store *store;
	char *token;               /* bearer token, NULL when auth is off */
	struct MHD_Daemon *daemon;
	atomic_bool draining;      /* SIGTERM seen: answers close */
	atomic_long in_flight;     /* requests begun and not completed */
	atomic_int write_failing;  /* the last write's store error, or 0 */
	struct metrics metrics;
	pthread_mutex_t conns_lock;
	struct conn_watch *conns;  /* open connections, for the sweep */
	pthread_mutex_t log_lock;  /* libmicrohttpd logs from any thread */
	bool log_live;             /* started: its messages go to stderr */
	char mhd_error[256];       /* its last complaint while starting */
};

/* Runs until SIGTERM or SIGINT; returns a CLI exit code. */
int server_run(const struct server_config *cfg);

/* ------------------------------------------------------------------------
 * One request (request.c), alive from its headers until completed.
 */
struct request {
	struct server *srv;
	enum route route;
	char *arg;          /* the {id} of the path, decoded */
	uint64_t start_ns;
	unsigned status;    /* what was answered, for the metrics */
	bool body_done;     /* the first call is over */
	bool head;          /* HEAD: the headers a GET would get, no body */
	unsigned early;     /* a status decided from the headers, or 0 */
	bool early_close;   /* the framing is in doubt: answer now and close */
	char early_msg[160];
	char *body;
	size_t len, cap;
	bool too_big;       /* over max_body: the rest is discarded */
	size_t discarded;
	bool ndjson;        /* batch body is application/x-ndjson */
	/* A capture's write, run by a writer thread (writers.c). */
	void *work_state;   /* the route's, freed by work_free if left */
	void (*work_free)(void *state);
	void (*work)(struct request *req);
	bool work_done;     /* set before the connection is resumed */
	struct MHD_Connection *conn;
	struct request *job_next;
};

/* Suspends conn and runs work(req) on a writer thread; libmicrohttpd
 * calls the access handler for req again once it has run. False (nothing
 * suspended) once the writers are stopping. */
bool writers_submit(struct writers *w, struct request *req,
		    struct MHD_Connection *conn, void (*work)(struct request *req));

/* The head of a request as libmicrohttpd parsed it: what the checks of
 * request_check_head read, without a connection, so that they can be
 * driven in process (a fuzz target) as well as by request_access. */
struct request_field {
	const char *key, *value;
	size_t key_len, value_len;
};

struct request_head {
	const char *method, *version, *url;
	bool url_bad;                       /* see struct conn_watch */
	const struct request_field *fields; /* the header lines, in order */
	size_t n_fields;
};

/* Everything the head decides, into req->early (0: go on), early_msg,
 * early_close and ndjson; req->srv (its cfg and token) and req->route
 * must be set. */
void request_check_head(struct request *req, const struct request_head *head);
/* The route of a decoded path; *arg gets the path's {id} (malloc'ed), or
 * NULL. ROUTE_UNKNOWN also when that copy cannot be made. */
enum route request_route(const char *url, char **arg);
/* Whether a body follows the head (then an early answer closes). */
bool request_body_follows(const struct request_head *head);
/* Decodes %HH in s, in place, returning the new length; *bad is set when
 * s held a raw control byte or decodes to a NUL (the length is then more
 * than strlen(s)). */
size_t request_unescape(char *s, bool *bad);

/* libmicrohttpd's unescaper (MHD_OPTION_UNESCAPE_CALLBACK). */
size_t request_unescape_cb(void *cls, struct MHD_Connection *conn, char *s);
/* The watch libmicrohttpd keeps for conn (server.c), or NULL. */
struct conn_watch *conn_watch_of(struct MHD_Connection *conn);
enum MHD_Result request_access(void *cls, struct MHD_Connection *conn,
			       const char *url, const char *method,
			       const char *version, const char *upload,
			       size_t *upload_size, void **con_cls);
void request_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
		       enum MHD_RequestTerminationCode toe);
uint64_t now_ns(void);

/* ------------------------------------------------------------------------
 * Routes (handlers.c): each answers the request, returning MHD's verdict.
 */
enum MHD_Result handle_request(struct request *req, struct MHD_Connection *conn,
			       const char *method);
/* A query argument by name (decoded), or NULL when absent. */
typedef const char *(*request_arg_fn)(void *ctx, const char *key);
/* GET /interactions' arguments into *q (pointing at what arg returns):
 * ATOLOG_OK, or ATOLOG_INVALID with why (a limit that is not an integer;
 * the store judges the rest). A limit over ATOLOG_LIST_LIMIT_MAX is cut
 * to it, as the seed does. */
int list_query_parse(request_arg_fn arg, void *ctx, atolog_query *q,
		     char *why, size_t size);
#define LIST_QUERY_WHY_SIZE 160 /* room for list_query_parse's why */
/* NDJSON (a batch body): one interaction per line; blank lines (spaces,
 * tabs, a CR before the LF) are not items, and a line that is not JSON is
 * that item's refusal alone. fn as atolog_interactions_from_json_array
 * calls it; its non-zero answer stops the split and is returned, as is
 * ENOMEM (never an item's refusal). body may be NULL when len is 0. */
int batch_split_lines(const char *body, size_t len, atolog_json_item_fn fn,
		      void *ctx);
/* Hands work to a writer thread (503 once the server is stopping). */
enum MHD_Result submit_write(struct request *req, struct MHD_Connection *conn,
			     void (*work)(struct request *req));
/* POST /admin/backup, /admin/backup/cleanup and /admin/compact (admin.c). */
enum MHD_Result post_admin(struct request *req, struct MHD_Connection *conn);

/* ------------------------------------------------------------------------
 * Replies (reply.c).
 */
/* Queues body (malloc'ed; taken) with the status and a content type. */
enum MHD_Result reply_take(struct request *req, struct MHD_Connection *conn,
			   unsigned status, const char *type, char *body,
			   size_t len);
/* s as a JSON string (malloc'ed), made valid UTF-8 first: a byte that
 * starts no valid sequence (yajl lets overlong forms and surrogates
 * through) becomes '?'. 0, or ENOMEM. */
int reply_quote(const char *s, char **out);
/* A response whose body is {"error": msg}, or NULL (out of memory). */
struct MHD_Response *error_response(const char *msg);
/* {"error": message} with the status. */
enum MHD_Result reply_error(struct request *req, struct MHD_Connection *conn,
			    unsigned status, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* The status for an atolog return code, and a message for it. */
unsigned reply_status_of(int rc);
enum MHD_Result reply_store_error(struct request *req,
				  struct MHD_Connection *conn, int rc,
				  const char *what);
/* Queues a response made elsewhere (a stream), adding the common headers. */
enum MHD_Result reply_queue(struct request *req, struct MHD_Connection *conn,
			    unsigned status, struct MHD_Response *resp);

/* ------------------------------------------------------------------------
 * Streams (stream.c).
 */
enum stream_shape {
	STREAM_LIST,   /* {"interactions": [...], "count": N} */
	STREAM_NDJSON, /* one interaction per line */
};

/* Answers with iter's interactions, streamed as the client reads; iter is
 * taken. 404 when an NDJSON stream would be empty; 500 when the first
 * interaction cannot be read. A HEAD gets the same status and headers,
 * with the Content-Length the body would have, and no body. */
enum MHD_Result stream_reply(struct request *req, struct MHD_Connection *conn,
			     atolog_iter *iter, enum stream_shape shape,
			     const char *empty_msg);

#endif
