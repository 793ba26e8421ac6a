/*
 * http.c - atolog_bench_http: what capturing over HTTP costs beside
 * capturing in process.
 *
 * For each client count (1, 4, 16, 64 by default) and one sync mode
 * (always by default), three runs of RUN_SECONDS each on a fresh store:
 *
 *   in-process  N threads call atolog_interaction_record, one record at a
 *               time, each waiting for its acknowledgement;
 *   HTTP single N keep-alive libcurl clients POST /interactions, one body
 *               per request, each waiting for its 201;
 *   HTTP batch  N keep-alive clients POST /interactions/batch with
 *               BATCH_ITEMS bodies per request (a JSON array).
 *
 * The server is the real `atolog serve` (path compiled in, or --server),
 * started per run on a free loopback port with its default thread count,
 * so the figures are what a user gets. The bodies are the ingest
 * benchmark's workload (workload.h) as the seed's POST JSON, rendered
 * before timing. records/s counts acknowledged records over the time from
 * the start to the last acknowledgement; latency is per call or request.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>
#include <yajl/yajl_gen.h>

#include "atolog.h"
#include "bench.h"
#include "workload.h"

#define HTTP_SEED 0x68747470ull  /* "http" */
#define POOL_RECORDS 20000       /* bodies rendered once, cycled */
#define RUN_SECONDS 3.0
#define QUICK_RUN_SECONDS 0.5
#define BATCH_ITEMS 100          /* bodies per batch request */
#define CLIENTS_MAX 256
#define CLIENT_COUNTS_MAX 16

static const long default_clients[] = { 1, 4, 16, 64 };
static const long quick_clients[] = { 1, 4 };

enum kind { KIND_INPROC, KIND_SINGLE, KIND_BATCH, N_KINDS };
static const char *const kind_names[N_KINDS] = { "in-process", "HTTP single",
						 "HTTP batch" };

struct options {
	long clients[CLIENT_COUNTS_MAX];
	int n_clients;
	double seconds;
	const char *sync;
	const char *server;
	const char *threads; /* serve --threads, NULL for its default */
	const char *dir;
};

struct pool {
	struct workload_record *recs;
	char **bodies;   /* the seed's POST body of each record */
	char **batches;  /* JSON arrays of BATCH_ITEMS bodies */
	size_t n, n_batches;
};

struct result {
	enum kind kind;
	long clients;
	size_t records;
	double rps, p50_ms, p99_ms, seconds;
	bool ok;
};

struct run {
	enum kind kind;
	const struct pool *pool;
	atolog_store *store;   /* in-process */
	char url[160];         /* HTTP */
	double start, deadline;
	pthread_barrier_t barrier;
};

struct client {
	struct run *run;
	long index;
	pthread_t tid;
	size_t n_done;
	double t_end;
	struct bench_lat lat;
	int rc;
};

/* ------------------------------------------------------------------------
 * Bodies.
 */

/* "key":"value" with value escaped by yajl (keys are plain ASCII). */
static void put_string(FILE *f, const char *key, const char *value)
{
	yajl_gen g = yajl_gen_alloc(NULL);
	const unsigned char *buf;
	size_t len;

	fprintf(f, "\"%s\":", key);
	if (!g)
		return;
	yajl_gen_string(g, (const unsigned char *)value, strlen(value));
	yajl_gen_get_buf(g, &buf, &len);
	fwrite(buf, 1, len, f);
	yajl_gen_free(g);
}

/* The seed's POST body for a workload record (no id, no time: the server
 * takes the current time, as the seed does). */
static char *render_body(const struct workload_record *r)
{
	const atolog_interaction *in = &r->in;
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	if (!f)
		return NULL;
	fputc('{', f);
	put_string(f, "prompt", in->prompt);
	fputc(',', f);
	put_string(f, "response", in->response);
	fputc(',', f);
	put_string(f, "response_summary", in->response_summary);
	fputc(',', f);
	put_string(f, "project", in->project);
	fputc(',', f);
	put_string(f, "client", in->client);
	fputc(',', f);
	put_string(f, "session_id", in->session_id);
	fprintf(f, ",\"memories_used\":%s,\"chunks_used\":%s,\"context_pack\":%s}",
		r->memories_json, r->chunks_json, in->context_pack);
	return fclose(f) == 0 ? out : NULL;
}

static int pool_make(struct pool *p, size_t n)
{
	struct workload w;
	int rc;

	p->n = n;
	p->n_batches = n / BATCH_ITEMS;
	p->recs = calloc(n, sizeof(*p->recs));
	p->bodies = calloc(n, sizeof(*p->bodies));
	p->batches = calloc(p->n_batches, sizeof(*p->batches));
	if (!p->recs || !p->bodies || !p->batches)
		return ENOMEM;
	workload_init(&w, HTTP_SEED, n, WORKLOAD_SESSIONS_DEFAULT, 0,
		      (int64_t)30 * 86400 * 1000000);
	if ((rc = workload_make_range(&w, 0, n, p->recs)) != 0)
		return rc;
	for (size_t i = 0; i < n; i++) {
		p->recs[i].in.has_created_at = 0;
		if (!(p->bodies[i] = render_body(&p->recs[i])))
			return ENOMEM;
	}
	for (size_t b = 0; b < p->n_batches; b++) {
		size_t len = 0;
		FILE *f = open_memstream(&p->batches[b], &len);

		if (!f)
			return ENOMEM;
		for (size_t k = 0; k < BATCH_ITEMS; k++)
			fprintf(f, "%s%s", k ? "," : "[", p->bodies[b * BATCH_ITEMS + k]);
		fputc(']', f);
		if (fclose(f) != 0)
			return ENOMEM;
	}
	return 0;
}

static void pool_free(struct pool *p)
{
	for (size_t i = 0; i < p->n && p->bodies; i++)
		free(p->bodies[i]);
	for (size_t b = 0; b < p->n_batches && p->batches; b++)
		free(p->batches[b]);
	if (p->recs)
		workload_free_range(p->recs, p->n);
	free(p->recs);
	free(p->bodies);
	free(p->batches);
}

/* ------------------------------------------------------------------------
 * Clients.
 */

static size_t discard(char *data, size_t size, size_t n, void *ctx)
{
	(void)data;
	(void)ctx;
	return size * n;
}

/* One POST; returns the records it acknowledged (0 on failure). */
static size_t post(CURL *c, const char *url, const char *body, size_t items)
{
	long status = 0;

	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
	if (curl_easy_perform(c) != CURLE_OK)
		return 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	return status == 201 ? items : 0;
}

static CURL *client_curl(struct curl_slist *headers)
{
	CURL *c = curl_easy_init();

	if (!c)
		return NULL;
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
	return c;
}

/* One unit of work: a record, a body or a batch; returns records acked. */
static size_t client_step(struct client *cl, CURL *c, char *url, size_t i)
{
	const struct pool *p = cl->run->pool;

	switch (cl->run->kind) {
	case KIND_INPROC:
		return atolog_interaction_record(cl->run->store, &p->recs[i % p->n].in,
						 NULL) == ATOLOG_OK;
	case KIND_SINGLE:
		return post(c, url, p->bodies[i % p->n], 1);
	default:
		return post(c, url, p->batches[i % p->n_batches], BATCH_ITEMS);
	}
}

static void *client_main(void *arg)
{
	struct client *cl = arg;
	struct run *r = cl->run;
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
	CURL *c = NULL;
	char url[200];

	h = curl_slist_append(h, "Expect:");
	snprintf(url, sizeof(url), "%s%s", r->url,
		 r->kind == KIND_BATCH ? "/interactions/batch" : "/interactions");
	if (r->kind != KIND_INPROC && !(c = client_curl(h)))
		cl->rc = ENOMEM;
	pthread_barrier_wait(&r->barrier);
	cl->t_end = r->start;
	for (size_t i = (size_t)cl->index * 7919; !cl->rc; i++) {
		double t0 = bench_now(), t1;
		size_t acked;

		if (t0 >= r->deadline)
			break;
		acked = client_step(cl, c, url, i);
		if (!acked) {
			cl->rc = EIO;
			break;
		}
		t1 = bench_now();
		bench_lat_add(&cl->lat, (t1 - t0) * 1e6);
		cl->n_done += acked;
		cl->t_end = t1;
	}
	if (c)
		curl_easy_cleanup(c);
	curl_slist_free_all(h);
	return NULL;
}

static int run_clients(struct run *r, long n, double seconds, struct result *res)
{
	struct client *cls = calloc((size_t)n, sizeof(*cls));
	struct bench_lat all = { 0 };
	double end = 0;
	int rc = 0;

	if (!cls || pthread_barrier_init(&r->barrier, NULL, (unsigned)n + 1) != 0) {
		free(cls);
		return ENOMEM;
	}
	for (long k = 0; k < n; k++) {
		cls[k] = (struct client){ .run = r, .index = k };
		if (bench_lat_init(&cls[k].lat, 1 << 16) != 0 ||
		    pthread_create(&cls[k].tid, NULL, client_main, &cls[k]) != 0) {
			fprintf(stderr, "http: cannot start client threads\n");
			exit(3);
		}
	}
	r->start = bench_now();
	r->deadline = r->start + seconds;
	pthread_barrier_wait(&r->barrier);
	for (long k = 0; k < n; k++)
		pthread_join(cls[k].tid, NULL);
	pthread_barrier_destroy(&r->barrier);
	*res = (struct result){ .kind = r->kind, .clients = n };
	for (long k = 0; k < n; k++) {
		rc = rc ? rc : cls[k].rc;
		res->records += cls[k].n_done;
		if (cls[k].t_end > end)
			end = cls[k].t_end;
		bench_lat_merge(&all, &cls[k].lat);
		bench_lat_free(&cls[k].lat);
	}
	free(cls);
	res->seconds = end - r->start;
	if (res->seconds > 0)
		res->rps = (double)res->records / res->seconds;
	bench_lat_sort(&all);
	res->p50_ms = bench_lat_pct(&all, 50) / 1e3;
	res->p99_ms = bench_lat_pct(&all, 99) / 1e3;
	bench_lat_free(&all);
	res->ok = rc == 0 && res->records > 0;
	return rc;
}

/* ------------------------------------------------------------------------
 * The server.
 */

static pid_t server_start(const struct options *o, const char *data, char *url,
			  size_t url_size)
{
	int fds[2];
	char line[512] = "";
	size_t len = 0;
	const char *at;
	pid_t pid;

	if (pipe(fds) != 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		int quiet = open("/dev/null", O_WRONLY);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(fds[1], 1);
		dup2(quiet, 2); /* its banner and drain notes would cut the table */
		close(fds[0]);
		close(fds[1]);
		execl(o->server, "atolog", "--data", data, "--sync", o->sync, "serve",
		      "--listen", "127.0.0.1:0", o->threads ? "--threads" : (char *)NULL,
		      o->threads, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	while (pid > 0 && len < sizeof(line) - 1 && !memchr(line, '\n', len)) {
		struct pollfd p = { .fd = fds[0], .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, 20000) <= 0 ||
		    (n = read(fds[0], line + len, sizeof(line) - 1 - len)) <= 0)
			break;
		len += (size_t)n;
		line[len] = '\0';
	}
	close(fds[0]);
	at = strstr(line, "\"listening\":\"");
	if (pid <= 0 || !at || sscanf(at + 13, "%159[^\"]", url) != 1) {
		fprintf(stderr, "http: %s serve did not start\n", o->server);
		if (pid > 0)
			kill(pid, SIGKILL);
		return -1;
	}
	(void)url_size;
	return pid;
}

static int server_stop(pid_t pid)
{
	int status;

	kill(pid, SIGTERM);
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0) {
		fprintf(stderr, "http: the server did not stop cleanly\n");
		return EIO;
	}
	return 0;
}

static int run_one(const struct options *o, const struct pool *p, enum kind kind,
		   long n, const char *dir, struct result *res)
{
	char data[BENCH_PATH_SIZE];
	struct run r = { .kind = kind, .pool = p };
	atolog_options opts = { .sync = strcmp(o->sync, "none") == 0 ? ATOLOG_SYNC_NONE
				: strcmp(o->sync, "batch") == 0 ? ATOLOG_SYNC_BATCH
								: ATOLOG_SYNC_ALWAYS };
	pid_t pid = -1;
	int rc, crc = 0;

	if ((rc = bench_fmt(data, sizeof(data), "%s/store", dir)) != 0)
		return rc;
	bench_rmtree(data);
	if (kind == KIND_INPROC)
		rc = atolog_store_open(data, &opts, &r.store);
	else if ((pid = server_start(o, data, r.url, sizeof(r.url))) < 0)
		rc = EIO;
	if (rc == 0)
		rc = run_clients(&r, n, o->seconds, res);
	if (r.store)
		crc = atolog_store_close(r.store);
	if (pid > 0)
		crc = server_stop(pid);
	bench_rmtree(data);
	return rc ? rc : crc;
}

/* ------------------------------------------------------------------------
 * Report.
 */

static const struct result *find(const struct result *res, size_t n,
				 enum kind kind, long clients)
{
	for (size_t i = 0; i < n; i++) {
		if (res[i].kind == kind && res[i].clients == clients && res[i].ok)
			return &res[i];
	}
	return NULL;
}

static void print_table(const struct options *o, const struct result *res,
			size_t n)
{
	printf("\nsync %s; records/s (p50/p99 ms per call or request); batches of %d\n",
	       o->sync, BATCH_ITEMS);
	printf("%-8s %-26s %-26s %-12s %-26s\n", "clients", "in-process",
	       "HTTP single", "single/inproc", "HTTP batch");
	for (int c = 0; c < o->n_clients; c++) {
		char cells[N_KINDS][64], ratio[16] = "-";
		const struct result *r[N_KINDS];

		for (int k = 0; k < N_KINDS; k++) {
			r[k] = find(res, n, (enum kind)k, o->clients[c]);
			if (r[k])
				snprintf(cells[k], sizeof(cells[k]), "%.0f (%.3f/%.3f)",
					 r[k]->rps, r[k]->p50_ms, r[k]->p99_ms);
			else
				snprintf(cells[k], sizeof(cells[k]), "failed");
		}
		if (r[KIND_INPROC] && r[KIND_SINGLE])
			snprintf(ratio, sizeof(ratio), "%.2fx",
				 r[KIND_SINGLE]->rps / r[KIND_INPROC]->rps);
		printf("%-8ld %-26s %-26s %-12s %-26s\n", o->clients[c],
		       cells[KIND_INPROC], cells[KIND_SINGLE], ratio, cells[KIND_BATCH]);
	}
}

static void usage(FILE *f)
{
	fprintf(f, "usage: atolog_bench_http [--clients 1,4,16,64] [--seconds S] "
		   "[--sync always|batch|none] [--server PATH] [--threads N] [--dir DIR] "
		   "[--quick]\n");
}

static int parse_options(int argc, char **argv, struct options *o)
{
	static const struct option opts[] = {
		{ "clients", required_argument, NULL, 'c' },
		{ "seconds", required_argument, NULL, 's' },
		{ "sync", required_argument, NULL, 'y' },
		{ "server", required_argument, NULL, 'e' },
		{ "threads", required_argument, NULL, 't' },
		{ "dir", required_argument, NULL, 'd' },
		{ "quick", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	*o = (struct options){ .seconds = RUN_SECONDS, .sync = "always",
			       .server = ATOLOG_CLI_PATH, .dir = "." };
	o->n_clients = 4;
	memcpy(o->clients, default_clients, sizeof(default_clients));
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			o->n_clients = bench_parse_int_list(optarg, o->clients,
							    CLIENT_COUNTS_MAX);
			if (o->n_clients <= 0)
				return -1;
			for (int i = 0; i < o->n_clients; i++) {
				if (o->clients[i] > CLIENTS_MAX)
					return -1;
			}
			break;
		case 's': o->seconds = atof(optarg); break;
		case 'y': o->sync = optarg; break;
		case 'e': o->server = optarg; break;
		case 't': o->threads = optarg; break;
		case 'd': o->dir = optarg; break;
		case 'q':
			o->seconds = QUICK_RUN_SECONDS;
			o->n_clients = 2;
			memcpy(o->clients, quick_clients, sizeof(quick_clients));
			break;
		case 'h': usage(stdout); exit(0);
		default: return -1;
		}
	}
	if (o->seconds <= 0 || (strcmp(o->sync, "always") && strcmp(o->sync, "batch") &&
				strcmp(o->sync, "none")))
		return -1;
	return 0;
}

int main(int argc, char **argv)
{
	struct options o;
	struct pool p = { 0 };
	struct result res[CLIENT_COUNTS_MAX * N_KINDS];
	char dir[BENCH_PATH_SIZE], machine[BENCH_MACHINE_LINE_SIZE];
	size_t n_res = 0;
	int failures = 0;

	if (parse_options(argc, argv, &o) != 0) {
		usage(stderr);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (bench_fmt(dir, sizeof(dir), "%s/http-%ld", o.dir, (long)getpid()) != 0 ||
	    bench_mkdirs(dir) != 0) {
		fprintf(stderr, "http: cannot create %s\n", dir);
		return 3;
	}
	bench_machine_line(dir, machine, sizeof(machine));
	printf("atolog_bench_http\n%s\n", machine);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	bench_progress("http: rendering %d bodies", POOL_RECORDS);
	if (pool_make(&p, POOL_RECORDS) != 0) {
		fprintf(stderr, "http: out of memory\n");
		return 3;
	}
	bench_progress_done();
	for (int c = 0; c < o.n_clients; c++) {
		for (int k = 0; k < N_KINDS; k++) {
			bench_progress("http: %s, %ld clients", kind_names[k], o.clients[c]);
			if (run_one(&o, &p, (enum kind)k, o.clients[c], dir, &res[n_res]) != 0) {
				fprintf(stderr, "http: %s with %ld clients failed\n",
					kind_names[k], o.clients[c]);
				failures++;
			}
			n_res++;
		}
	}
	bench_progress_done();
	print_table(&o, res, n_res);
	pool_free(&p);
	bench_rmtree(dir);
	curl_global_cleanup();
	return failures ? 1 : 0;
}
