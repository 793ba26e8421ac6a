/*
 * server.c - the life of `atolog serve`: open the store as its writer,
 * read the token, listen, wait for SIGTERM or SIGINT, drain, close.
 *
 * Signals are taken synchronously: they are blocked before libmicrohttpd
 * starts its threads (which inherit the mask) and the main thread waits
 * for them in sigtimedwait, so no handler runs in signal context and
 * nothing global is needed; between signals, every SERVE_SWEEP_MS, it
 * cuts the connections whose headers are late (server_sweep). Draining
 * stops accepting, asks keep-alive clients to close (reply.c), waits for
 * the requests already begun, then stops the daemon and closes the store,
 * which flushes the index: a clean stop leaves nothing for the next open
 * to recover.
 */
#include <assert.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "server.h"

/* While starting, libmicrohttpd's complaint is kept for the start-up
 * error; once serving, each message goes to stderr as it comes. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct server *srv = cls;
	char msg[sizeof(srv->mhd_error)];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	pthread_mutex_lock(&srv->log_lock);
	if (srv->log_live)
		fprintf(stderr, "atolog: serve: libmicrohttpd: %s\n", msg);
	else
		memcpy(srv->mhd_error, msg, sizeof(msg));
	pthread_mutex_unlock(&srv->log_lock);
}

/* The first line of the token file, without surrounding blanks. */
static int read_token(struct server *srv)
{
	FILE *f = fopen(srv->cfg.token_file, "r");
	char line[4096], *p = line, *end;

	if (!f) {
		fprintf(stderr, "atolog: serve: --token-file %s: %s\n",
			srv->cfg.token_file, strerror(errno));
		return EXIT_USAGE;
	}
	if (!fgets(line, sizeof(line), f))
		line[0] = '\0';
	fclose(f);
	while (*p == ' ' || *p == '\t')
		p++;
	end = p + strlen(p);
	while (end > p && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' ' ||
			   end[-1] == '\t'))
		*--end = '\0';
	if (!*p) {
		fprintf(stderr, "atolog: serve: --token-file %s holds no token\n",
			srv->cfg.token_file);
		return EXIT_USAGE;
	}
	srv->token = strdup(p);
	return srv->token ? EXIT_OK : EXIT_STORE;
}

/* libmicrohttpd's connection notifications: a watch per open connection,
 * listed for the sweep (struct conn_watch). Both run on the connection's
 * polling thread; CLOSED before libmicrohttpd closes the socket. A
 * connection left without a watch (out of memory) is closed by
 * request_access when its headers are in. */
static void conn_notify(void *cls, struct MHD_Connection *conn,
			void **socket_context, enum MHD_ConnectionNotificationCode code)
{
	struct server *srv = cls;
	struct conn_watch *w = *socket_context;
	const union MHD_ConnectionInfo *info;

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		w = info ? calloc(1, sizeof(*w)) : NULL;
		if (!w)
			return;
		w->fd = info->connect_fd;
		atomic_init(&w->head_since_ns, now_ns());
		atomic_init(&w->in_request, false);
		pthread_mutex_lock(&srv->conns_lock);
		w->next = srv->conns;
		if (w->next)
			w->next->prev = w;
		srv->conns = w;
		pthread_mutex_unlock(&srv->conns_lock);
		*socket_context = w;
		return;
	}
	if (!w)
		return;
	pthread_mutex_lock(&srv->conns_lock);
	if (w->prev)
		w->prev->next = w->next;
	else
		srv->conns = w->next;
	if (w->next)
		w->next->prev = w->prev;
	pthread_mutex_unlock(&srv->conns_lock);
	free(w);
	*socket_context = NULL;
}

/* Shuts down each connection whose request headers are more than
 * SERVE_HEADER_TIMEOUTS timeouts late; libmicrohttpd then reads the end
 * of the stream and closes it as usual. Under conns_lock, so that the
 * descriptor is still the connection's (see struct conn_watch). */
static void server_sweep(struct server *srv)
{
	uint64_t now = now_ns(), limit = (uint64_t)srv->cfg.timeout_s *
					 SERVE_HEADER_TIMEOUTS * 1000000000u;

	pthread_mutex_lock(&srv->conns_lock);
	for (struct conn_watch *w = srv->conns; w; w = w->next) {
		uint64_t since;

		if (w->cut || atomic_load(&w->in_request))
			continue;
		/* An answer may complete after now was read. */
		since = atomic_load(&w->head_since_ns);
		if (since >= now || now - since <= limit)
			continue;
		shutdown(w->fd, SHUT_RDWR);
		w->cut = true;
	}
	pthread_mutex_unlock(&srv->conns_lock);
}

/* HOST:PORT or [HOST]:PORT into an address to bind. */
static int resolve_listen(const char *listen, struct addrinfo **out)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	char host[256];
	const char *colon = strrchr(listen, ':'), *h = listen;
	size_t hl;
	int rc;

	char *end;
	unsigned long port;

	if (!colon || !colon[1])
		return EAI_NONAME;
	port = strtoul(colon + 1, &end, 10);
	if (*end || port > 65535 || colon[1] == '-' || colon[1] == '+')
		return EAI_SERVICE;
	hl = (size_t)(colon - listen);
	if (hl >= 2 && listen[0] == '[' && colon[-1] == ']') {
		h++;
		hl -= 2;
	}
	if (hl == 0 || hl >= sizeof(host))
		return EAI_NONAME;
	memcpy(host, h, hl);
	host[hl] = '\0';
	rc = getaddrinfo(host, colon + 1, &hints, out);
	return rc;
}

static int server_listen(struct server *srv)
{
	struct addrinfo *ai;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
			 MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	int rc = resolve_listen(srv->cfg.listen, &ai);

	if (rc != 0) {
		fprintf(stderr, "atolog: serve: --listen %s: %s (want HOST:PORT)\n",
			srv->cfg.listen, rc == EAI_SYSTEM ? strerror(errno)
							  : gai_strerror(rc));
		return EXIT_USAGE;
	}
	if (ai->ai_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	srv->daemon = MHD_start_daemon(
		flags, 0, NULL, NULL, request_access, srv,
		MHD_OPTION_SOCK_ADDR, ai->ai_addr,
		MHD_OPTION_THREAD_POOL_SIZE, srv->cfg.threads,
		MHD_OPTION_CONNECTION_TIMEOUT, srv->cfg.timeout_s,
		MHD_OPTION_CONNECTION_LIMIT, srv->cfg.max_connections,
		MHD_OPTION_NOTIFY_COMPLETED, request_completed, srv,
		MHD_OPTION_NOTIFY_CONNECTION, conn_notify, srv,
		MHD_OPTION_UNESCAPE_CALLBACK, request_unescape_cb, srv,
		MHD_OPTION_EXTERNAL_LOGGER, mhd_log, srv,
		MHD_OPTION_END);
	freeaddrinfo(ai);
	if (!srv->daemon) {
		fprintf(stderr, "atolog: serve: cannot listen on %s: %s\n",
			srv->cfg.listen, srv->mhd_error[0] ? srv->mhd_error
							   : "libmicrohttpd refused to start");
		return EXIT_STORE;
	}
	return EXIT_OK;
}

/* The URL clients use: the bound port (the asked one may be 0). */
static void announce(struct server *srv)
{
	const union MHD_DaemonInfo *info =
		MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
	unsigned port = info ? info->port : 0;
	const char *colon = strrchr(srv->cfg.listen, ':');
	char url[320], *data = NULL;

	snprintf(url, sizeof(url), "http://%.*s:%u",
		 (int)(colon - srv->cfg.listen), srv->cfg.listen, port);
	/* Machine-readable on stdout, for scripts and tests; a hint on stderr. */
	if (cli_json_quote(srv->cfg.data_dir, &data) == 0)
		printf("{\"listening\":\"%s\",\"data\":%s,\"threads\":%u,"
		       "\"writers\":%u}\n", url, data, srv->cfg.threads,
		       srv->cfg.writers);
	free(data);
	fflush(stdout);
	pthread_mutex_lock(&srv->log_lock);
	srv->log_live = true;
	pthread_mutex_unlock(&srv->log_lock);
	fprintf(stderr,
		"atolog: serving %s on %s (Ctrl-C stops)\n"
		"  try: curl -s -H 'Content-Type: application/json'%s -d "
		"'{\"prompt\":\"hello\",\"project\":\"demo\"}' %s/interactions\n",
		srv->cfg.data_dir, url,
		srv->token ? " -H \"Authorization: Bearer $TOKEN\"" : "", url);
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Stops accepting, lets begun requests finish (bounded), runs every
 * queued write (resuming its connection: libmicrohttpd must not stop with
 * a connection suspended), stops. */
static void server_drain(struct server *srv)
{
	MHD_socket sock;
	long waited = 0;

	atomic_store(&srv->draining, true);
	sock = MHD_quiesce_daemon(srv->daemon);
	while (atomic_load(&srv->in_flight) > 0 && waited < SERVE_DRAIN_TIMEOUT_MS) {
		sleep_ms(10);
		waited += 10;
	}
	if (atomic_load(&srv->in_flight) > 0)
		fprintf(stderr, "atolog: serve: %ld requests still running after %d ms; "
			"stopping anyway\n", atomic_load(&srv->in_flight),
			SERVE_DRAIN_TIMEOUT_MS);
	writers_stop(&srv->writers);
	MHD_stop_daemon(srv->daemon);
	srv->daemon = NULL;
	assert(!srv->conns); /* every connection was notified closed */
	writers_free(&srv->writers);
	if (sock != MHD_INVALID_SOCKET)
		close(sock);
}

static int server_open_store(struct server *srv)
{
	atolog_options opts = { .sync = srv->cfg.sync,
				.queue_timeout_ms = SERVE_QUEUE_TIMEOUT_MS };
	int rc = atolog_store_open(srv->cfg.data_dir, &opts, &srv->store);

	if (rc == ATOLOG_OK)
		return EXIT_OK;
	fprintf(stderr, "atolog: serve: %s: %s\n", srv->cfg.data_dir,
		*atolog_errmsg(NULL) ? atolog_errmsg(NULL) : atolog_strerror(rc));
	return rc == ATOLOG_INVALID ? EXIT_USAGE : EXIT_STORE;
}

static int server_wait_and_stop(struct server *srv, const sigset_t *stop)
{
	int sig = 0, rc;

	announce(srv);
	/* The sweep runs between signals, on this thread. */
	for (;;) {
		struct timespec tick = { 0, SERVE_SWEEP_MS * 1000000L };

		sig = sigtimedwait(stop, NULL, &tick);
		if (sig > 0)
			break;
		if (errno == EAGAIN)
			server_sweep(srv);
	}
	fprintf(stderr, "atolog: serve: %s: draining\n", strsignal(sig));
	server_drain(srv);
	rc = atolog_store_close(srv->store);
	srv->store = NULL;
	if (rc != ATOLOG_OK) {
		fprintf(stderr, "atolog: serve: closing the store: %s\n",
			atolog_errmsg(NULL));
		return EXIT_STORE;
	}
	fprintf(stderr, "atolog: serve: stopped cleanly\n");
	return EXIT_OK;
}

int server_run(const struct server_config *cfg)
{
	struct server *srv = calloc(1, sizeof(*srv));
	sigset_t stop, old;
	int rc;

	if (!srv)
		return EXIT_STORE;
	srv->cfg = *cfg;
	pthread_mutex_init(&srv->log_lock, NULL);
	pthread_mutex_init(&srv->conns_lock, NULL);
	/* A write past a file size limit must fail with EFBIG (seen as a
	 * full disk), not kill the server. */
	signal(SIGXFSZ, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	pthread_sigmask(SIG_BLOCK, &stop, &old);
	rc = cfg->token_file ? read_token(srv) : EXIT_OK;
	if (rc == EXIT_OK)
		rc = server_open_store(srv);
	if (rc == EXIT_OK && writers_start(&srv->writers, cfg->writers) != 0) {
		fprintf(stderr, "atolog: serve: cannot start %u writer threads\n",
			cfg->writers);
		rc = EXIT_STORE;
	}
	if (rc == EXIT_OK)
		rc = server_listen(srv);
	if (rc == EXIT_OK) {
		rc = server_wait_and_stop(srv, &stop);
	} else {
		writers_free(&srv->writers);
		atolog_store_close(srv->store);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_mutex_destroy(&srv->log_lock);
	pthread_mutex_destroy(&srv->conns_lock);
	free(srv->token);
	free(srv);
	return rc;
}
