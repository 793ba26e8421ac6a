/*
 * gen_corpus.c - makes the seed corpora of the fuzz targets from the
 * project's own code: records, frames, segments and journals as atolog
 * writes them (a store filled through the public API, then read back),
 * and texts that name every rule of the parsers, with each input that
 * once found a bug. tests/fuzz/corpus/ holds its output, committed; run
 * it again (fuzz_gen_corpus DIR) after a format change.
 *
 *   fuzz_gen_corpus OUT    writes OUT/<target>/<name> for every target
 *
 * The first byte of a scan, store, frame, journal or batch input is the
 * target's mode (see each target's opening comment): the generator writes
 * both modes of each binary input.
 *
 * Inputs that once found a bug are not made here: they are kept as they
 * were found in tests/fuzz/found/<target>/, which make fuzz-corpus leaves
 * alone and make test replays beside the corpus.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec.h"
#include "engine.h"
#include "fuzz.h"

#define GEN_ZEROS_AFTER 48 /* bytes of pre-allocated zeros kept after a log */

static const char *out_root;

static void die(const char *what)
{
	fprintf(stderr, "fuzz_gen_corpus: %s: %s (%s)\n", what, strerror(errno),
		atolog_errmsg(NULL));
	exit(1);
}

/* OUT/target/name = [mode byte, if mode >= 0] + bytes. */
static void put(const char *target, const char *name, int mode,
		const void *bytes, size_t len)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", out_root, target);
	if (mkdir(path, 0755) != 0 && errno != EEXIST)
		die(path);
	snprintf(path, sizeof(path), "%s/%s/%s", out_root, target, name);
	f = fopen(path, "wb");
	if (!f || (mode >= 0 && fputc(mode, f) == EOF) ||
	    (len && fwrite(bytes, 1, len, f) != len) || fclose(f) != 0)
		die(path);
}

static void put_text(const char *target, const char *name, const char *text)
{
	put(target, name, -1, text, strlen(text));
}

/* Both modes of a binary input: as written (0) and with checksums made (1). */
static void put_modes(const char *target, const char *name, const void *bytes,
		      size_t len)
{
	char named[256];

	snprintf(named, sizeof(named), "%s-asis", name);
	put(target, named, 0, bytes, len);
	snprintf(named, sizeof(named), "%s-made", name);
	put(target, named, 1, bytes, len);
}

/* ------------------------------------------------------------------------
 * JSON bodies, batch bodies, times, ids, request heads.
 */
static const char *const json_bodies[][2] = {
	{ "minimal", "{\"prompt\":\"x\"}" },
	{ "full", "{\"prompt\":\"How do I rotate logs?\",\"response\":\"Use logrotate.\","
		  "\"response_summary\":\"logrotate\",\"project\":\"atolog\","
		  "\"client\":\"claude-code\",\"session_id\":\"s-1\","
		  "\"memories_used\":[\"m1\",\"m2\"],\"chunks_used\":[\"c1\"],"
		  "\"context_pack\":{\"files\":[\"a.c\",\"b.c\"],\"tokens\":1234,"
		  "\"score\":0.5,\"ok\":true,\"none\":null,\"deep\":{\"x\":[1,[2,{}]]}},"
		  "\"reinforce\":true,\"extract\":false}" },
	{ "import", "{\"id\":\"0190c1a8-0000-7000-8000-000000000001\",\"prompt\":\"p\","
		    "\"created_at\":\"2026-01-02 03:04:05\"}" },
	{ "import-iso", "{\"prompt\":\"p\",\"created_at\":\"2026-01-02T03:04:05.123456+02:00\","
			"\"created_at_iso\":\"2026-01-02T01:04:05.123456Z\"}" },
	{ "unicode", "{\"prompt\":\"caf\\u00e9 \\ud83d\\ude00 \xe2\x82\xac\",\"project\":\"\\u00c9t\\u00e9\"}" },
	{ "lone-surrogate", "{\"prompt\":\"\\ud800x\"}" },
	{ "blank-prompt", "{\"prompt\":\" \\t\\n\"}" },
	{ "no-prompt", "{\"response\":\"r\"}" },
	{ "not-object", "[\"prompt\"]" },
	{ "truncated", "{\"prompt\":\"abc" },
	{ "trailing", "{\"prompt\":\"x\"} {}" },
	{ "mistyped", "{\"prompt\":\"x\",\"memories_used\":\"m\"}" },
	{ "mistyped-bool", "{\"prompt\":\"x\",\"reinforce\":\"yes\"}" },
	{ "huge-real", "{\"prompt\":\"x\",\"context_pack\":{\"n\":1e400}}" },
	{ "huge-int", "{\"prompt\":\"x\",\"context_pack\":{\"n\":123456789012345678901234567890}}" },
	{ "edge-ints", "{\"prompt\":\"x\",\"context_pack\":{\"a\":18446744073709551615,"
		       "\"b\":-9223372036854775808,\"c\":-0,\"d\":1.5e-300}}" },
	{ "dup-field", "{\"prompt\":\"x\",\"prompt\":\"y\"}" },
	{ "dup-null", "{\"prompt\":\"x\",\"project\":null,\"project\":\"p\"}" },
	{ "refs-null-repeat", "{\"prompt\":\"x\",\"memories_used\":[\"a\",\"b\"],"
			      "\"memories_used\":null}" },
	{ "refs-nested", "{\"prompt\":\"x\",\"chunks_used\":[[\"a\"]]}" },
	{ "context-array", "{\"prompt\":\"x\",\"context_pack\":[1]}" },
	{ "context-deep", "{\"prompt\":\"x\",\"context_pack\":{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}}" },
	{ "bad-id", "{\"prompt\":\"x\",\"id\":\"0190c1a8-0000-7000-8000-00000000000\"}" },
	{ "bad-id-dashes", "{\"prompt\":\"x\",\"id\":\"0190c1a8--000-7000-8000-000000000001\"}" },
	{ "bad-time", "{\"prompt\":\"x\",\"created_at\":\"2026-02-30\"}" },
	{ "name-nul", "{\"prompt\":\"x\",\"project\":\"a\\u0000b\"}" },
	{ "overlong-utf8", "{\"prompt\":\"\xc0\xaf\"}" },
	{ "unknown", "{\"prompt\":\"x\",\"extra\":{\"deep\":[1,2,{\"k\":null}]}}" },
};

static const char *const batch_bodies[][3] = {
	/* name, mode ("0" array, "1" NDJSON), body */
	{ "array", "0", "[{\"prompt\":\"a\"},{\"prompt\":\"b\",\"project\":\"p\"}]" },
	{ "array-mixed", "0", "[{\"prompt\":\"a\"},3,{\"response\":\"no prompt\"},null,[],{\"prompt\":\"c\"}]" },
	{ "array-empty", "0", "[]" },
	{ "array-torn", "0", "[{\"prompt\":\"a\"},{\"prompt\":" },
	{ "array-not", "0", "{\"prompt\":\"a\"}" },
	{ "ndjson", "1", "{\"prompt\":\"a\"}\n{\"prompt\":\"b\"}\n" },
	{ "ndjson-crlf", "1", "{\"prompt\":\"a\"}\r\n\r\n  \t\r\n{\"prompt\":\"b\"} \t\r\n" },
	{ "ndjson-bad", "1", "{\"prompt\":\"a\"}\nnot json\n{\"prompt\":\"\"}\n{\"prompt\":\"c\"}" },
	{ "ndjson-no-newline", "1", "{\"prompt\":\"a\"}" },
};

static const char *const times[][2] = {
	{ "date", "2026-01-01" },
	{ "seed", "2026-01-02 03:04:05" },
	{ "iso-z", "2026-01-02T03:04:05Z" },
	{ "iso-frac", "2026-01-02T03:04:05.123456789Z" },
	{ "offset", "2026-01-02t03:04+05:30" },
	{ "offset-compact", "2026-01-02 03:04:05-0800" },
	{ "offset-hours", " 2026-01-02T03:04:05+01 " },
	{ "min", "0001-01-01T00:00:00Z" },
	{ "max", "9999-12-31T23:59:59.999999Z" },
	{ "below-min", "0001-01-01T00:00:00+01:00" },
	{ "above-max", "9999-12-31T23:59:59-01:00" },
	{ "leap-day", "2024-02-29" },
	{ "not-leap", "2025-02-29" },
	{ "hour-24", "2026-01-01T24:00:00" },
	{ "nul-inside", "2026-01-01\0x" },
	{ "uuid", "0190c1a8-0000-7000-8000-000000000001" },
	{ "uuid-upper", "0190C1A8-ABCD-7EF0-8000-00000000000F" },
	{ "uuid-dashes", "0190c1a8--000-7000-8000-000000000001" },
	{ "uuid-short", "0190c1a8-0000-7000-8000-00000000001" },
};

static const char *const heads[][2] = {
	{ "list", "GET /interactions?project=alpha&session_id=s1&client=openclaw&since=2026-01-01&limit=5 HTTP/1.1\r\nHost: x\r\n\r\n" },
	{ "list-limit-bad", "GET /interactions?limit=ten HTTP/1.1\r\nHost: x\r\n\r\n" },
	{ "list-limit-big", "GET /interactions?limit=99999999999999999999 HTTP/1.1\r\nHost: x\r\n\r\n" },
	{ "list-since-nul", "GET /interactions?since=2026-01-01%00x HTTP/1.1\r\nHost: x\r\n\r\n" },
	{ "get", "GET /interactions/0190c1a8-0000-7000-8000-000000000001 HTTP/1.1\r\nHost: x\r\n\r\n" },
	{ "get-nul", "GET /interactions/0190c1a8-0000-7000-8000-000000000001%00 HTTP/1.1\r\nHost: x\r\n\r\n" },
	{ "replay", "HEAD /sessions/s1/replay HTTP/1.1\r\nHost: x\r\n\r\n" },
	{ "replay-encoded", "GET /sessions/s%2F1/replay HTTP/1.1\r\nHost: x\r\n\r\n" },
	{ "post", "POST /interactions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 14\r\n\r\n" },
	{ "post-auth", "POST /interactions/batch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret-token\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n" },
	{ "post-two-lengths", "POST /interactions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 14\r\nContent-Length: 15\r\n\r\n" },
	{ "post-cl-te", "POST /interactions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 14\r\nTransfer-Encoding: chunked\r\n\r\n" },
	{ "post-no-type", "POST /interactions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n" },
	{ "no-host", "GET /health HTTP/1.1\r\n\r\n" },
	{ "http10", "GET /metrics HTTP/1.0\r\n\r\n" },
	{ "method", "DELETE /interactions HTTP/1.1\r\nHost: x\r\n\r\n" },
	{ "admin", "POST /admin/backup HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\n\r\n" },
	{ "unknown", "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n" },
	{ "control", "GET /interactions?project=a%01b HTTP/1.1\r\nHost: x\r\n\r\n" },
};

static void put_texts(void)
{
	char name[64];

	for (size_t i = 0; i < sizeof(json_bodies) / sizeof(json_bodies[0]); i++)
		put_text("json", json_bodies[i][0], json_bodies[i][1]);
	for (size_t i = 0; i < sizeof(batch_bodies) / sizeof(batch_bodies[0]); i++)
		put("batch", batch_bodies[i][0], batch_bodies[i][1][0] - '0',
		    batch_bodies[i][2], strlen(batch_bodies[i][2]));
	for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
		/* "nul-inside" keeps what follows its NUL */
		size_t len = strlen(times[i][1]);

		if (strcmp(times[i][0], "nul-inside") == 0)
			len += 2;
		put("time", times[i][0], -1, times[i][1], len);
	}
	for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++)
		put_text("http", heads[i][0], heads[i][1]);
	for (size_t i = 0; i < sizeof(json_bodies) / sizeof(json_bodies[0]); i++) {
		/* Every JSON body is also an NDJSON line and an array element. */
		char *body;

		snprintf(name, sizeof(name), "line-%s", json_bodies[i][0]);
		put("batch", name, 1, json_bodies[i][1], strlen(json_bodies[i][1]));
		if (asprintf(&body, "[%s,%s]", json_bodies[i][1], json_bodies[0][1]) < 0)
			die("asprintf");
		snprintf(name, sizeof(name), "element-%s", json_bodies[i][0]);
		put("batch", name, 0, body, strlen(body));
		free(body);
	}
}

/* ------------------------------------------------------------------------
 * Binary inputs, from a store written through the public API.
 */
struct frames_out {
	const uint8_t *file;
	uint64_t segment;
	int n;
};

static int put_frame(const struct log_frame *f, void *ctx)
{
	struct frames_out *o = ctx;
	const uint8_t *frame = o->file + f->offset;
	const char *kind = f->header.kind == FRAME_KIND_RECORD   ? "record"
			   : f->header.kind == FRAME_KIND_REGISTRY ? "registry"
								   : "seal";
	char name[96];

	snprintf(name, sizeof(name), "%s-%" PRIu64 "-%d", kind, o->segment, o->n++);
	put_modes("frame", name, frame, f->length);
	if (f->header.kind == FRAME_KIND_RECORD)
		put("record", name, -1, f->payload, f->header.payload_len);
	else if (f->header.kind == FRAME_KIND_REGISTRY)
		put("registry", name, -1, f->payload, f->header.payload_len);
	return 0;
}

static uint8_t *read_all(const char *path, size_t *len)
{
	struct stat st;
	uint8_t *buf;
	int fd = open(path, O_RDONLY);

	if (fd < 0 || fstat(fd, &st) != 0)
		die(path);
	buf = malloc((size_t)st.st_size);
	if (!buf || read(fd, buf, (size_t)st.st_size) != st.st_size)
		die(path);
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

/* One segment file: its frames one by one, and the file whole (to its
 * last frame and a few zeros after), then torn, flipped and overgrown. */
static void put_segment(const char *path, uint64_t id)
{
	struct frames_out o = { .segment = id };
	struct scan_start from = { .segment_id = id, .offset = SEGMENT_HEADER_SIZE };
	struct scan_result res;
	size_t len, end;
	uint8_t *file = read_all(path, &len), *copy;
	char name[64];
	int fd = open(path, O_RDONLY);

	o.file = file;
	if (fd < 0 || scan_segment(fd, &from, put_frame, &o, &res) != ATOLOG_OK)
		die(path);
	close(fd);
	put_modes("frame", "segment-header", file, SEGMENT_HEADER_SIZE);
	end = res.valid_end + GEN_ZEROS_AFTER < len ? (size_t)res.valid_end + GEN_ZEROS_AFTER
						      : len;
	snprintf(name, sizeof(name), "segment-%" PRIu64, id);
	put_modes("scan", name, file, end);
	put_modes("store", name, file, end);
	if (res.valid_end <= SEGMENT_HEADER_SIZE + FRAME_HEADER_SIZE)
		goto done;
	snprintf(name, sizeof(name), "torn-%" PRIu64, id);
	put_modes("scan", name, file, (size_t)res.valid_end - 5);
	put_modes("store", name, file, (size_t)res.valid_end - 5);
	copy = malloc(end);
	if (!copy)
		die("malloc");
	memcpy(copy, file, end);
	copy[SEGMENT_HEADER_SIZE + FRAME_HEADER_SIZE + 3] ^= 0x40; /* the first frame's payload */
	snprintf(name, sizeof(name), "flipped-first-%" PRIu64, id);
	put("scan", name, 0, copy, end);
	put("store", name, 0, copy, end);
	memcpy(copy, file, end);
	copy[res.valid_end - 3] ^= 0x01; /* the last frame */
	snprintf(name, sizeof(name), "flipped-last-%" PRIu64, id);
	put("scan", name, 0, copy, end);
	put("store", name, 0, copy, end);
	memcpy(copy, file, end);
	memset(copy + res.valid_end, 0xa5, end - res.valid_end);
	snprintf(name, sizeof(name), "garbage-after-%" PRIu64, id);
	put("scan", name, 0, copy, end);
	put("store", name, 0, copy, end);
	free(copy);
done:
	free(file);
}

static void fill_store(atolog_store *s)
{
	static const char *const aliases[] = { "Atolog", "the-log" };
	int n = 0;

	if (atolog_project_add(s, "atolog", aliases, 2) != ATOLOG_OK)
		die("project_add");
	/* Three rounds: enough for two 4 KiB segments, the first sealed. */
	for (size_t i = 0; i < 3 * sizeof(json_bodies) / sizeof(json_bodies[0]); i++) {
		const char *body = json_bodies[i % (sizeof(json_bodies) / sizeof(json_bodies[0]))][1];
		atolog_interaction *in = NULL;

		if (atolog_interaction_from_json(body, strlen(body), &in) == ATOLOG_OK &&
		    atolog_interaction_record(s, in, NULL) == ATOLOG_OK)
			n++;
		atolog_interaction_free(in);
	}
	if (n < 5)
		die("too few interactions stored");
}

static void put_store(void)
{
	char dir[] = "/tmp/atolog-gen-corpus-XXXXXX", path[4096];
	atolog_options opts = { .sync = ATOLOG_SYNC_NONE,
				.segment_size = ATOLOG_SEGMENT_SIZE_MIN };
	atolog_store *s;
	uint64_t *ids;
	size_t n;

	if (!mkdtemp(dir) || atolog_store_open(dir, &opts, &s) != ATOLOG_OK)
		die("store");
	fill_store(s);
	if (atolog_store_close(s) != ATOLOG_OK)
		die("close");
	snprintf(path, sizeof(path), "%s/" STORE_SEGMENT_DIR, dir);
	if (segment_list(path, &ids, &n) != ATOLOG_OK || n < 2)
		die("segments");
	for (size_t i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/" STORE_SEGMENT_DIR "/%016" PRIx64
			 SEGMENT_SUFFIX, dir, ids[i]);
		put_segment(path, ids[i]);
		unlink(path);
	}
	free(ids);
	fuzz_remove_tree(dir);
}

static void put_journals(void)
{
	static uint64_t inputs[] = { 1, 2, 0x10, 0xffffffffffffffffu };
	const struct compact_journal js[] = {
		{ .nonce = 0x1234abcd, .output = 0x11, .n_outputs = 1,
		  .inputs = inputs, .n_inputs = 4 },
		{ .nonce = 1, .output = 5, .n_outputs = 3, .inputs = inputs, .n_inputs = 0 },
	};
	char name[32];

	for (size_t i = 0; i < sizeof(js) / sizeof(js[0]); i++) {
		size_t len;
		char *text = journal_format(&js[i], &len), *sum;

		if (!text)
			die("journal_format");
		snprintf(name, sizeof(name), "journal-%zu", i);
		put("journal", name, 0, text, len);
		sum = strstr(text, "\nxxh3 ");
		snprintf(name, sizeof(name), "fields-%zu", i);
		put("journal", name, 1, text, (size_t)(sum - text));
		snprintf(name, sizeof(name), "trailing-%zu", i);
		text[len - 1] = ' ';
		put("journal", name, 0, text, len);
		free(text);
	}
	put_text("journal", "spelling", "\001atolog-compact 1\nnonce 1\noutputs 2 1\ninputs 1 +3");
	/* Mode 2: values, as bytes, for journal_format to write. */
	put_text("journal", "values", "\002nonce---first---\003input-1-input-2-");
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: fuzz_gen_corpus OUTDIR\n");
		return 2;
	}
	out_root = argv[1];
	if (mkdir(out_root, 0755) != 0 && errno != EEXIST)
		die(out_root);
	put_texts();
	put_store();
	put_journals();
	return 0;
}
