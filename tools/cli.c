/*
 * cli.c - helpers shared by the subcommands (see cli.h).
 */
#include <ctype.h>
#include <getopt.h>
#include <limits.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <yajl/yajl_gen.h>

#include "cli.h"

int cli_exit_code(int rc)
{
	switch (rc) {
	case ATOLOG_OK:
		return 0;
	case ATOLOG_NOTFOUND:
		return EXIT_NOTFOUND;
	case ATOLOG_INVALID:
	case ATOLOG_TOOBIG:
	case ATOLOG_EXISTS:
		return EXIT_USAGE;
	default:
		return EXIT_STORE;
	}
}

int cli_fail(int rc, const atolog_store *store, const char *what)
{
	const char *detail = atolog_errmsg(store);

	if (!*detail)
		detail = atolog_strerror(rc);
	fprintf(stderr, "atolog: %s: %s\n", what, detail);
	return cli_exit_code(rc);
}

int cli_usage(const struct command *cmd, const char *fmt, ...)
{
	va_list ap;

	fputs("atolog: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nusage: atolog [--data DIR] %s %s\n", cmd->name, cmd->args);
	return EXIT_USAGE;
}

static int cli_open(struct cli *cli, unsigned flags, atolog_store **out)
{
	atolog_options opts = { .flags = flags, .sync = cli->sync };

	return atolog_store_open(cli->data_dir, &opts, out);
}

int cli_open_writer(struct cli *cli, atolog_store **out)
{
	int rc = cli_open(cli, 0, out);

	return rc == ATOLOG_OK ? 0 : cli_fail(rc, NULL, cli->data_dir);
}

/*
 * Read commands open read-only and never change the store, whether a
 * writer runs or not. With none running, the read-only open serves what
 * a dead writer acknowledged but did not index, from the log itself
 * (engine/tail.c); damage met there is said once on stderr, and what
 * precedes it is served.
 */
static void cli_warn_damage(atolog_store *s)
{
	atolog_stats st;

	if (atolog_store_stats(s, &st) == ATOLOG_OK && st.damaged_segment)
		fprintf(stderr, "atolog: warning: the log is damaged at segment %016"
			PRIx64 " offset %" PRIu64 ", past what the index holds; "
			"serving what precedes it (atolog verify tells more)\n",
			st.damaged_segment, st.damaged_offset);
}

int cli_open_reader(struct cli *cli, atolog_store **out)
{
	char path[4096];
	struct stat st;
	int rc;

	snprintf(path, sizeof(path), "%s/segments", cli->data_dir);
	if (stat(path, &st) != 0) {
		fprintf(stderr, "atolog: %s: no store here (record something first)\n",
			cli->data_dir);
		return EXIT_STORE;
	}
	rc = cli_open(cli, ATOLOG_OPEN_READONLY, out);
	if (rc != ATOLOG_OK)
		return cli_fail(rc, NULL, cli->data_dir);
	cli_warn_damage(*out);
	return 0;
}

int cli_read_all(FILE *f, size_t max, char **out, size_t *len)
{
	size_t cap = 64 * 1024, n = 0;
	char *buf = malloc(cap + 1);

	while (buf) {
		size_t got;

		if (n == cap) {
			char *grown;

			if (cap > max)
				break;
			cap *= 2;
			grown = realloc(buf, cap + 1);
			if (!grown) {
				free(buf);
				return ENOMEM;
			}
			buf = grown;
		}
		got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (got == 0)
			break;
	}
	if (!buf)
		return ENOMEM;
	if (ferror(f)) {
		free(buf);
		return EIO;
	}
	if (n > max) {
		free(buf);
		return ATOLOG_TOOBIG;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

int cli_print_interaction(const atolog_interaction *rec)
{
	char *line;
	int rc = atolog_interaction_to_json(rec, &line);

	if (rc != ATOLOG_OK)
		return rc;
	puts(line);
	free(line);
	return ferror(stdout) ? EIO : ATOLOG_OK;
}

bool cli_parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return false;
	*out = v;
	return true;
}

bool cli_parse_sync(const char *s, atolog_sync_mode *out)
{
	if (strcmp(s, "always") == 0)
		*out = ATOLOG_SYNC_ALWAYS;
	else if (strcmp(s, "batch") == 0)
		*out = ATOLOG_SYNC_BATCH;
	else if (strcmp(s, "none") == 0)
		*out = ATOLOG_SYNC_NONE;
	else
		return false;
	return true;
}

/* yajl refuses invalid UTF-8 when asked to validate; a message that
 * quotes such input is answered with its non-ASCII bytes as '?'. */
static int quote_with(const char *s, bool validate, char **out)
{
	yajl_gen g = yajl_gen_alloc(NULL);
	const unsigned char *buf;
	size_t len;
	int rc = ENOMEM;

	if (!g)
		return ENOMEM;
	yajl_gen_config(g, yajl_gen_validate_utf8, validate ? 1 : 0);
	if (yajl_gen_string(g, (const unsigned char *)s, strlen(s)) ==
	    yajl_gen_status_ok) {
		yajl_gen_get_buf(g, &buf, &len);
		*out = malloc(len + 1);
		if (*out) {
			memcpy(*out, buf, len);
			(*out)[len] = '\0';
			rc = 0;
		}
	} else {
		rc = EINVAL;
	}
	yajl_gen_free(g);
	return rc;
}

int cli_json_quote(const char *s, char **out)
{
	char *ascii;
	int rc = quote_with(s, true, out);

	if (rc != EINVAL)
		return rc;
	ascii = strdup(s);
	if (!ascii)
		return ENOMEM;
	for (char *p = ascii; *p; p++) {
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	}
	rc = quote_with(ascii, false, out);
	free(ascii);
	return rc;
}

static int64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

atolog_progress_fn cli_progress_begin(struct cli_progress *p, const char *label,
				      const char *unit)
{
	*p = (struct cli_progress){ .label = label, .unit = unit,
				    .start_us = mono_us(), .active = isatty(2) };
	return p->active ? cli_progress : NULL;
}

void cli_progress(uint64_t done, uint64_t total, void *ctx)
{
	struct cli_progress *p = ctx;
	int64_t now = mono_us(), elapsed = now - p->start_us;
	double scale = strcmp(p->unit, "MB") == 0 ? 1e6 : 1, rate;

	if ((!total || done < total) &&
	    now - p->drawn_us < CLI_PROGRESS_REDRAW_MS * 1000)
		return;
	p->drawn_us = now;
	rate = elapsed > 0 ? (double)done / scale / ((double)elapsed / 1e6) : 0;
	if (!total) { /* no end known: how far, and how fast */
		fprintf(stderr, "\r\033[Katolog: %s: %.0f %s, %.0f %s/s", p->label,
			(double)done / scale, p->unit, rate, p->unit);
		return;
	}
	if (done > total)
		done = total;
	fprintf(stderr, "\r\033[Katolog: %s: %3" PRIu64 "%% %.0f %s/s", p->label,
		total ? done * 100 / total : 100, rate, p->unit);
	if (done > 0 && done < total) {
		int64_t eta = (int64_t)((double)elapsed / 1e6 * (double)(total - done) /
					(double)done);

		fprintf(stderr, " ETA %" PRId64 ":%02" PRId64, eta / 60, eta % 60);
	}
}

void cli_progress_end(struct cli_progress *p)
{
	if (p->active)
		fputs("\r\033[K", stderr);
}

bool cli_parse_duration(const char *s, int64_t *out_us)
{
	static const struct {
		char unit;
		int64_t us;
	} units[] = {
		{ 's', INT64_C(1000000) },       { 'm', INT64_C(60000000) },
		{ 'h', INT64_C(3600000000) },    { 'd', INT64_C(86400000000) },
		{ 'w', INT64_C(604800000000) },
	};
	char *end;
	long long n;

	if (!s || !isdigit((unsigned char)*s))
		return false;
	errno = 0;
	n = strtoll(s, &end, 10);
	if (errno || n <= 0 || end[0] == '\0' || end[1] != '\0')
		return false;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (*end == units[i].unit) {
			if (n > INT64_MAX / units[i].us)
				return false;
			*out_us = n * units[i].us;
			return true;
		}
	}
	return false;
}

int64_t cli_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

bool cli_wants_help(const struct command *cmd, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			printf("usage: atolog %s %s\n%s\n", cmd->name, cmd->args,
			       cmd->summary);
			return true;
		}
	}
	return false;
}

/* One option of a query command; EXIT_USAGE on a bad value. */
static int query_option(const struct command *cmd, int c, struct cli_query *out)
{
	long n;

	switch (c) {
	case 'p': out->q.project = optarg; return 0;
	case 's': out->q.session_id = optarg; return 0;
	case 'c': out->q.client = optarg; return 0;
	case 't': out->q.since = optarg; return 0;
	case 'u': out->q.until = optarg; return 0;
	case 'n':
		if (!cli_parse_long(optarg, LONG_MIN, LONG_MAX, &out->q.limit))
			return cli_usage(cmd, "--limit wants an integer");
		return 0;
	case 'f':
		if (strcmp(optarg, "jsonl") != 0 && strcmp(optarg, "csv") != 0)
			return cli_usage(cmd, "--format is jsonl or csv, not '%s'", optarg);
		out->csv = strcmp(optarg, "csv") == 0;
		return 0;
	default: /* 'q' */
		if (!cli_parse_long(optarg, 0, LONG_MAX, &n))
			return cli_usage(cmd, "--from-seq wants a sequence number");
		out->has_from_seq = true;
		out->from_seq = (uint64_t)n;
		return 0;
	}
}

/* The options each kind of query takes, as getopt letters. */
static const char *query_letters(unsigned kind)
{
	return kind == CLI_QUERY_EXPORT ? "psctunf" : kind == CLI_QUERY_FOLLOW ? "psctqn"
										 : "psctn";
}

int cli_parse_query(const struct command *cmd, int argc, char **argv,
		    unsigned kind, struct cli_query *out)
{
	static const struct option opts[] = {
		{ "project", required_argument, NULL, 'p' },
		{ "session", required_argument, NULL, 's' },
		{ "client", required_argument, NULL, 'c' },
		{ "since", required_argument, NULL, 't' },
		{ "until", required_argument, NULL, 'u' },
		{ "limit", required_argument, NULL, 'n' },
		{ "format", required_argument, NULL, 'f' },
		{ "from-seq", required_argument, NULL, 'q' },
		{ NULL, 0, NULL, 0 },
	};
	int c, rc, at = 0;

	memset(out, 0, sizeof(*out));
	out->q.limit = kind == CLI_QUERY_LIST ? ATOLOG_LIST_LIMIT_DEFAULT : LONG_MAX;
	out->q.oldest_first = kind != CLI_QUERY_LIST;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":", opts, &at)) != -1) {
		if (c == ':')
			return cli_usage(cmd, "%s wants a value", argv[optind - 1]);
		if (c == '?')
			return cli_usage(cmd, "unknown option %s", argv[optind - 1]);
		if (!strchr(query_letters(kind), c))
			return cli_usage(cmd, "%s takes no --%s", cmd->name, opts[at].name);
		rc = query_option(cmd, c, out);
		if (rc != 0)
			return rc;
	}
	if (optind != argc)
		return cli_usage(cmd, "unexpected argument \"%s\"", argv[optind]);
	/* The seed caps listings; `export` is the way to everything. */
	if (kind == CLI_QUERY_LIST && out->q.limit > ATOLOG_LIST_LIMIT_MAX)
		out->q.limit = ATOLOG_LIST_LIMIT_MAX;
	if (out->has_from_seq && out->q.since)
		return cli_usage(cmd, "--from-seq and --since both say where to "
				 "start: give one");
	return 0;
}

int cli_record_batch(atolog_store *store, const atolog_interaction *batch, size_t n,
		     int *rcs)
{
	int rc;

	for (size_t i = 0; i < n; i++)
		rcs[i] = INT_MIN;
	rc = atolog_interaction_record_batch(store, batch, n, rcs, NULL);
	for (size_t i = 0; i < n; i++) {
		if (rcs[i] == INT_MIN)
			rcs[i] = rc;
	}
	for (size_t i = 0; i < n; i++) {
		if (rcs[i] != ATOLOG_OK && rcs[i] != ATOLOG_EXISTS &&
		    rcs[i] != ATOLOG_INVALID && rcs[i] != ATOLOG_TOOBIG)
			return rcs[i];
	}
	return ATOLOG_OK;
}
