/*
 * test_recovery.c - crashes and damage, and what a reopen makes of them.
 *
 *  - a writer child killed with SIGKILL mid-ingest: every id it reported
 *    as acknowledged is present, intact and unique after reopen;
 *  - torn tails written by hand (half a frame, garbage, a length past the
 *    end) are cut off, and nothing acknowledged is lost;
 *  - an index that lags the log is caught up from the tail only;
 *  - an index that points past the log (the log lost its end) is rebuilt;
 *  - a flipped byte inside an indexed frame is reported with segment and
 *    offset on read, never served; with the index gone, the writer open
 *    refuses the store and names the place; read-only still serves the rest;
 *  - a deleted or garbage index is rebuilt from the log.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "codec.h"
#include "engine.h"

#define SEGMENT_SIZE (32 * 1024)
#define KILL_ROUNDS 4
#define FLIP_RECORDS 600

static atolog_store *open_store(const char *dir, unsigned flags, int *rc_out)
{
	atolog_options o = { .flags = flags, .segment_size = SEGMENT_SIZE };
	atolog_store *s = NULL;
	int rc = atolog_store_open(dir, &o, &s);

	if (rc_out)
		*rc_out = rc;
	else
		CHECK_OK(rc, NULL);
	return s;
}

static int record_prompt(atolog_store *s, const char *prompt, const char *session,
			 char id_out[ATOLOG_ID_TEXT_LEN + 1])
{
	atolog_interaction in = { .prompt = prompt, .session_id = session,
				  .project = "p", .client = "c" };
	atolog_interaction *out = NULL;
	int rc = atolog_interaction_record(s, &in, &out);

	if (rc == ATOLOG_OK && id_out)
		memcpy(id_out, out->id, ATOLOG_ID_TEXT_LEN + 1);
	atolog_interaction_free(out);
	return rc;
}

/* Fills a store with n records "r<i>" in session "s"; ids optional. */
static void fill(const char *dir, int n, char (*ids)[ATOLOG_ID_TEXT_LEN + 1])
{
	atolog_store *s = open_store(dir, 0, NULL);
	char prompt[64];

	for (int i = 0; s && i < n; i++) {
		snprintf(prompt, sizeof(prompt), "r%d", i);
		CHECK_OK(record_prompt(s, prompt, "s", ids ? ids[i] : NULL), s);
	}
	CHECK_OK(atolog_store_close(s), NULL);
}

/* ------------------------------------------------------------------------
 * Segment files, read directly.
 */

struct frame_pos {
	uint64_t offset;
	uint32_t length;
	uint8_t kind;
};

/* Lists the frames of a segment file; returns how many. */
static size_t list_frames(const char *path, struct frame_pos *out, size_t max)
{
	int fd = open(path, O_RDONLY);
	uint8_t hdr[FRAME_HEADER_SIZE];
	uint64_t off = SEGMENT_HEADER_SIZE;
	size_t n = 0;

	while (fd >= 0 && n < max &&
	       pread(fd, hdr, sizeof(hdr), (off_t)off) == (ssize_t)sizeof(hdr)) {
		struct frame_header h;

		if (!frame_header_read(hdr, &h))
			break;
		out[n].offset = off;
		out[n].length = FRAME_HEADER_SIZE + h.payload_len;
		out[n].kind = h.kind;
		off += out[n++].length;
	}
	if (fd >= 0)
		close(fd);
	return n;
}

static char *segment_file(const char *dir, uint64_t id)
{
	char name[64];

	snprintf(name, sizeof(name), "segments/%016" PRIx64 ".seg", id);
	return check_path(dir, name);
}

static void append_bytes(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_APPEND);

	CHECK(fd >= 0 && write(fd, buf, len) == (ssize_t)len);
	if (fd >= 0)
		close(fd);
}

/* ------------------------------------------------------------------------
 * SIGKILL mid-ingest.
 */

struct ack {
	int round, n;
	char id[ATOLOG_ID_TEXT_LEN + 1];
};

static void writer_child(const char *dir, int round, int fd)
{
	atolog_store *s = open_store(dir, 0, NULL);
	char prompt[64], session[16];

	if (!s)
		_exit(2);
	snprintf(session, sizeof(session), "kill%d", round);
	for (int n = 0;; n++) {
		struct ack a = { .round = round, .n = n };

		snprintf(prompt, sizeof(prompt), "round %d record %d", round, n);
		if (record_prompt(s, prompt, session, a.id) != ATOLOG_OK)
			_exit(3);
		if (write(fd, &a, sizeof(a)) != (ssize_t)sizeof(a))
			_exit(4);
	}
}

/* Runs a child until it has acknowledged `want` records, then kills it. */
static size_t kill_round(const char *dir, int round, int want, struct ack *acks)
{
	int pipefd[2], status;
	size_t n = 0;
	pid_t pid;

	CHECK(pipe(pipefd) == 0);
	pid = fork();
	if (pid == 0) {
		close(pipefd[0]);
		writer_child(dir, round, pipefd[1]);
	}
	close(pipefd[1]);
	while (n < (size_t)want &&
	       read(pipefd[0], &acks[n], sizeof(*acks)) == (ssize_t)sizeof(*acks))
		n++;
	kill(pid, SIGKILL);
	/* Acks the child wrote before it died are acknowledged too. */
	while (read(pipefd[0], &acks[n], sizeof(*acks)) == (ssize_t)sizeof(*acks))
		n++;
	close(pipefd[0]);
	waitpid(pid, &status, 0);
	/* Anything else (a failed write, a sanitizer's report) ended the
	 * child before the kill. */
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	return n;
}

static void check_acks(atolog_store *s, const struct ack *acks, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		atolog_interaction *rec = NULL;
		char prompt[64];

		snprintf(prompt, sizeof(prompt), "round %d record %d", acks[i].round,
			 acks[i].n);
		CHECK_OK(atolog_interaction_get(s, acks[i].id, &rec), s);
		if (rec)
			CHECK_STR(rec->prompt, prompt);
		atolog_interaction_free(rec);
	}
}

static void test_sigkill(void)
{
	char *dir = check_tmpdir("kill");
	struct ack *acks = calloc(4000, sizeof(*acks));
	size_t total = 0;

	for (int round = 0; round < KILL_ROUNDS; round++) {
		int want = 20 + (int)check_rand_below(300);
		size_t n = kill_round(dir, round, want, acks + total);
		atolog_store *s = open_store(dir, 0, NULL);
		char session[16];
		atolog_stats st;

		CHECK((int)n >= want);
		total += n;
		if (!s)
			break;
		check_acks(s, acks, total);
		/* Unique: a record is in the session once, and the count of
		 * records is at least the acknowledged ones (plus at most the
		 * one in flight when the child died). */
		snprintf(session, sizeof(session), "kill%d", round);
		CHECK(check_count_session(s, session) >= (long)n);
		CHECK(check_count_session(s, session) <= (long)n + 1);
		CHECK_OK(atolog_store_stats(s, &st), s);
		CHECK(st.n_records >= total);
		CHECK_OK(atolog_store_close(s), NULL);
	}
	fprintf(stderr, "test_recovery: sigkill: %zu acknowledged records over %d kills\n",
		total, KILL_ROUNDS);
	free(acks);
	check_tmpdir_remove(dir);
}

/* ------------------------------------------------------------------------
 * Torn tails.
 */

static void check_torn_tail(const void *junk, size_t len, const char *what)
{
	char *dir = check_tmpdir("torn");
	char ids[20][ATOLOG_ID_TEXT_LEN + 1];
	char *seg;
	atolog_store *s;
	atolog_stats st;

	fill(dir, 20, ids);
	s = open_store(dir, ATOLOG_OPEN_READONLY, NULL);
	CHECK_OK(atolog_store_stats(s, &st), s);
	atolog_store_close(s);
	seg = segment_file(dir, st.n_segments);
	append_bytes(seg, junk, len);
	s = open_store(dir, 0, NULL);
	if (s) {
		atolog_stats after;

		CHECK_OK(atolog_store_stats(s, &after), s);
		CHECK_INT(after.truncated_bytes, len);
		CHECK_INT(after.n_records, 20);
		CHECK_INT(check_count_session(s, "s"), 20);
		for (int i = 0; i < 20; i++) {
			atolog_interaction *rec = NULL;

			CHECK_OK(atolog_interaction_get(s, ids[i], &rec), s);
			atolog_interaction_free(rec);
		}
		/* The log goes on where the valid data ended. */
		CHECK_OK(record_prompt(s, "after the tear", "s", NULL), s);
		CHECK_OK(atolog_store_close(s), NULL);
	}
	s = open_store(dir, 0, NULL);
	CHECK_INT(check_count_session(s, "s"), 21);
	if (s) {
		CHECK_OK(atolog_store_stats(s, &st), s);
		CHECK_INT(st.truncated_bytes, 0);
	}
	atolog_store_close(s);
	fprintf(stderr, "test_recovery: torn tail (%s): done\n", what);
	free(seg);
	check_tmpdir_remove(dir);
}

static void test_torn_tails(void)
{
	uint8_t junk[600];
	uint8_t frame[FRAME_HEADER_SIZE + 100];

	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)check_rand();
	check_torn_tail(junk, sizeof(junk), "random bytes");
	/* A plausible header whose frame runs past the end of the file. */
	memset(frame, 'x', sizeof(frame));
	frame_header_write(frame, FRAME_KIND_RECORD, 0, 99, 100);
	check_torn_tail(frame, FRAME_HEADER_SIZE + 40, "half a frame");
	/* A complete frame with a bad checksum as the last one. */
	frame[FRAME_HEADER_SIZE + 50] ^= 1;
	check_torn_tail(frame, sizeof(frame), "bad checksum at the end");
	/* Just part of a header. */
	check_torn_tail(frame, 10, "part of a header");
}

/* Every cut of the last frame is a torn tail. */
static void test_cut_every_byte(void)
{
	char *dir = check_tmpdir("cut");
	struct frame_pos frames[64];
	char *seg;
	size_t n;
	int failures = check_failures;

	fill(dir, 5, NULL);
	seg = segment_file(dir, 1);
	n = list_frames(seg, frames, 64);
	CHECK(n == 5);
	for (uint32_t cut = 1; n == 5 && cut < frames[4].length; cut += 7) {
		char *copy = check_tmpdir("cutcopy");
		char *copy_seg = segment_file(copy, 1);
		char cmd[1024];
		atolog_store *s;

		snprintf(cmd, sizeof(cmd), "cp -r %s/segments %s/", dir, copy);
		CHECK(system(cmd) == 0);
		CHECK(truncate(copy_seg, (off_t)(frames[4].offset + cut)) == 0);
		s = open_store(copy, 0, NULL);
		CHECK_INT(check_count_session(s, "s"), 4);
		atolog_store_close(s);
		free(copy_seg);
		check_tmpdir_remove(copy);
	}
	fprintf(stderr, "test_recovery: cut at every 7th byte of the last frame: %s\n",
		failures == check_failures ? "ok" : "FAILED");
	free(seg);
	check_tmpdir_remove(dir);
}

/* ------------------------------------------------------------------------
 * The index behind the log, and beyond it.
 */

static void copy_index(const char *from, const char *to)
{
	char cmd[2048];

	snprintf(cmd, sizeof(cmd), "rm -rf %s/index.saved && cp -r %s/index %s/index.saved",
		 to, from, to);
	CHECK(system(cmd) == 0);
}

static void restore_index(const char *dir)
{
	char cmd[2048];

	snprintf(cmd, sizeof(cmd), "rm -rf %s/index && mv %s/index.saved %s/index",
		 dir, dir, dir);
	CHECK(system(cmd) == 0);
}

static void test_index_lags(void)
{
	char *dir = check_tmpdir("lag");
	atolog_store *s;
	atolog_stats st;

	fill(dir, 100, NULL);
	copy_index(dir, dir); /* the index as it was at 100 */
	fill(dir, 60, NULL);
	restore_index(dir); /* as if the last 60 never reached the index */
	s = open_store(dir, 0, NULL);
	if (s) {
		CHECK_OK(atolog_store_stats(s, &st), s);
		CHECK_INT(st.index_rebuilt, 0);
		/* Only the tail is read: 60 records and the seals after them. */
		CHECK(st.recovered_frames >= 60 && st.recovered_frames < 100);
		CHECK_INT(st.n_records, 160);
		CHECK_INT(check_count_session(s, "s"), 160);
	}
	atolog_store_close(s);
	check_tmpdir_remove(dir);
}

/* The log loses a record the index holds: that record was acknowledged,
 * so its loss is damage to report, not a torn tail to cut and forget.
 * Readers serve what is there and never the missing one; a writer refuses
 * until asked to rebuild the index from the log as it is. */
static void test_index_past_log(void)
{
	char *dir = check_tmpdir("past");
	char ids[10][ATOLOG_ID_TEXT_LEN + 1];
	struct frame_pos frames[16];
	atolog_interaction *rec = NULL;
	atolog_store *s;
	atolog_stats st;
	char *seg, where[96];
	size_t n;
	int rc;

	fill(dir, 10, ids);
	seg = segment_file(dir, 1);
	n = list_frames(seg, frames, 16);
	CHECK_INT(n, 10);
	CHECK(n == 10 && truncate(seg, (off_t)frames[9].offset) == 0);
	snprintf(where, sizeof(where), "segment 0000000000000001 offset %" PRIu64,
		 n == 10 ? frames[9].offset : 0);
	s = open_store(dir, 0, &rc);
	CHECK_RC(rc, ATOLOG_CORRUPT, NULL);
	CHECK_MSG(NULL, where);
	CHECK(s == NULL);
	s = open_store(dir, ATOLOG_OPEN_READONLY, NULL);
	if (s) {
		CHECK_RC(atolog_interaction_get(s, ids[9], &rec), ATOLOG_CORRUPT, s);
		CHECK(rec == NULL);
		CHECK_OK(atolog_interaction_get(s, ids[8], &rec), s);
		atolog_interaction_free(rec);
	}
	atolog_store_close(s);
	/* Still refused: the open changed nothing. */
	s = open_store(dir, 0, &rc);
	CHECK_RC(rc, ATOLOG_CORRUPT, NULL);
	s = open_store(dir, ATOLOG_OPEN_REBUILD_INDEX, NULL);
	if (s) {
		CHECK_OK(atolog_store_stats(s, &st), s);
		CHECK_INT(st.index_rebuilt, 1);
		CHECK_INT(st.n_records, 9);
		CHECK_RC(atolog_interaction_get(s, ids[9], &rec), ATOLOG_NOTFOUND, s);
	}
	atolog_store_close(s);
	free(seg);
	check_tmpdir_remove(dir);
}

/* The bytes of a file (malloc'ed), *len of them. */
static uint8_t *file_bytes(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	long size;

	*len = 0;
	if (!f || fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) != 0 || !(buf = malloc((size_t)size + 1)) ||
	    fread(buf, 1, (size_t)size, f) != (size_t)size) {
		CHECK_FAILF("reading %s", path);
	} else {
		*len = (size_t)size;
	}
	if (f)
		fclose(f);
	return buf;
}

/* A log the open refuses (here an id twice: a frame copied after its
 * original) with a torn tail after it: the open fails naming the copy,
 * and the tail is still there, byte for byte. The cut used to come
 * first (found by fuzz_store). */
static void test_refused_open_keeps_tail(void)
{
	static const uint8_t torn[] = { 0x5a, 0x01, 0x02 };
	char *dir = check_tmpdir("refused"), *seg, where[96];
	struct frame_pos frames[4];
	uint8_t *before, *after;
	size_t n, len_before, len_after;
	FILE *f;
	int rc;

	fill(dir, 3, NULL);
	seg = segment_file(dir, 1);
	n = list_frames(seg, frames, 4);
	CHECK_INT(n, 3);
	before = file_bytes(seg, &len_before);
	f = fopen(seg, "ab");
	CHECK(f && before && n == 3 &&
	      fwrite(before + frames[0].offset, 1, frames[0].length, f) == frames[0].length &&
	      fwrite(torn, 1, sizeof(torn), f) == sizeof(torn) && fclose(f) == 0);
	free(before);
	before = file_bytes(seg, &len_before);
	snprintf(where, sizeof(where), "segment 0000000000000001 offset %" PRIu64,
		 n == 3 ? frames[2].offset + frames[2].length : 0);
	CHECK(open_store(dir, 0, &rc) == NULL);
	CHECK_RC(rc, ATOLOG_CORRUPT, NULL);
	CHECK_MSG(NULL, "appears twice");
	CHECK_MSG(NULL, where);
	after = file_bytes(seg, &len_after);
	CHECK_INT(len_after, len_before);
	CHECK(before && after && len_after == len_before &&
	      memcmp(before, after, len_before) == 0);
	free(before);
	free(after);
	free(seg);
	check_tmpdir_remove(dir);
}

/* A failure to read the last indexed frame that is not damage (here the
 * segment is, for a moment, a directory: EISDIR) fails the open with it,
 * and leaves the index alone: it used to empty the index for a rebuild. */
static void test_state_frame_unreadable(void)
{
	char *dir = check_tmpdir("unreadable");
	atolog_store *s;
	atolog_stats st;
	char *seg, *aside;
	int rc;

	fill(dir, 20, NULL);
	s = open_store(dir, ATOLOG_OPEN_READONLY, NULL);
	CHECK_OK(atolog_store_stats(s, &st), s);
	atolog_store_close(s);
	seg = segment_file(dir, st.n_segments);
	aside = check_path(dir, "aside.seg");
	CHECK(rename(seg, aside) == 0 && mkdir(seg, 0755) == 0);
	s = open_store(dir, 0, &rc);
	CHECK_RC(rc, EISDIR, NULL);
	CHECK(s == NULL);
	CHECK(rmdir(seg) == 0 && rename(aside, seg) == 0);
	s = open_store(dir, 0, NULL);
	if (s) {
		CHECK_OK(atolog_store_stats(s, &st), s);
		CHECK_INT(st.index_rebuilt, 0);
		CHECK_INT(st.recovered_frames, 0);
		CHECK_INT(check_count_session(s, "s"), 20);
	}
	atolog_store_close(s);
	free(seg);
	free(aside);
	check_tmpdir_remove(dir);
}

/* ------------------------------------------------------------------------
 * What a reader sees when a writer stopped at awkward moments.
 */

struct synced {
	_Atomic uint64_t segment, size;
};

static void note_synced(uint64_t segment, uint64_t size, void *ctx)
{
	struct synced *sy = ctx;

	sy->segment = segment;
	sy->size = size;
}

/* Sync none: the idle flush removes the index-unsynced marker only once
 * the log the index names is synced too, or a power cut would leave an
 * index naming frames the log lost, with no marker to say so. */
static void test_sync_none_marker(void)
{
	char *dir = check_tmpdir("nonemarker"), *marker;
	atolog_options o = { .sync = ATOLOG_SYNC_NONE, .segment_size = SEGMENT_SIZE };
	struct synced sy = { 0, 0 };
	atolog_store *s = NULL;
	atolog_stats st;
	int waited = 0;

	marker = check_path(dir, "index-unsynced");
	CHECK_OK(atolog_store_open(dir, &o, &s), NULL);
	if (s) {
		store_observe_syncs(s, note_synced, &sy);
		for (int i = 0; i < 5; i++)
			CHECK_OK(record_prompt(s, "unsynced", "s", NULL), s);
		CHECK(access(marker, F_OK) == 0);
		while (access(marker, F_OK) == 0 && waited++ < 500)
			usleep(10000);
		CHECK(access(marker, F_OK) != 0);
		CHECK_OK(atolog_store_stats(s, &st), s);
		/* Gone only after a sync that covers what the index names. */
		CHECK_INT(sy.segment, st.n_segments);
		CHECK(sy.size >= (uint64_t)SEGMENT_HEADER_SIZE + 5 * FRAME_HEADER_SIZE);
	}
	atolog_store_close(s);
	free(marker);
	check_tmpdir_remove(dir);
}

static void die_on_progress(uint64_t done, uint64_t total, void *ctx)
{
	(void)done, (void)total, (void)ctx;
	_exit(9);
}

/* A rebuild killed before its first batch leaves an index with no state:
 * readers serve the whole log from the log, not nothing. */
static void test_rebuild_killed_early(void)
{
	char *dir = check_tmpdir("rebuildkill");
	atolog_store *s;
	atolog_stats st;
	int status;
	pid_t pid;

	fill(dir, 5000, NULL);
	pid = fork();
	if (pid == 0) {
		atolog_options o = { .flags = ATOLOG_OPEN_REBUILD_INDEX,
				     .segment_size = SEGMENT_SIZE,
				     .progress = die_on_progress };

		atolog_store_open(dir, &o, &s);
		_exit(2);
	}
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 9);
	s = open_store(dir, ATOLOG_OPEN_READONLY, NULL);
	if (s) {
		CHECK_INT(check_count_session(s, "s"), 5000);
		CHECK_OK(atolog_store_stats(s, &st), s);
		CHECK_INT(st.tail_records, 5000);
		CHECK_INT(st.damaged_segment, 0);
	}
	atolog_store_close(s);
	s = open_store(dir, 0, NULL); /* and a writer finishes the rebuild */
	CHECK_INT(check_count_session(s, "s"), 5000);
	atolog_store_close(s);
	check_tmpdir_remove(dir);
}

/* The index's state ends on a seal (a roll was cut short after the seal:
 * the next open made the successor and indexed the seal), and a writer
 * then died with records in the next segment unindexed: a reader resumes
 * after the seal and serves them, and sees no damage. */
static void test_tail_after_seal(void)
{
	char *dir = check_tmpdir("tailseal");
	char *big = malloc(3000);
	atolog_options o = { .segment_size = ATOLOG_SEGMENT_SIZE_MIN };
	atolog_store *s = NULL;
	atolog_stats st;
	int status;
	pid_t pid;

	memset(big, 'b', 2999);
	big[2999] = '\0';
	CHECK_OK(atolog_store_open(dir, &o, &s), NULL);
	CHECK_OK(record_prompt(s, big, "s", NULL), s);
	/* The next record rolls: the new segment's sync (0), the seal's (1),
	 * then the directory's (2) fails: sealed, with no successor. */
	store_inject_fault(s, IO_SYNC, 2, EIO, false);
	CHECK(record_prompt(s, big, "s", NULL) != ATOLOG_OK);
	atolog_store_close(s);
	pid = fork();
	if (pid == 0) {
		atolog_store *c;

		if (atolog_store_open(dir, &o, &c) != ATOLOG_OK)
			_exit(1);
		store_pause_index(c, true);
		for (int i = 0; i < 4; i++)
			if (record_prompt(c, "after the seal", "s", NULL) != ATOLOG_OK)
				_exit(3);
		_exit(0);
	}
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	s = open_store(dir, ATOLOG_OPEN_READONLY, NULL);
	if (s) {
		CHECK_OK(atolog_store_stats(s, &st), s);
		CHECK_INT(st.n_segments, 2);
		CHECK_INT(st.damaged_segment, 0);
		CHECK_INT(st.tail_records, 4);
		CHECK_INT(st.n_records, 5);
		CHECK_INT(check_count_session(s, "s"), 5);
	}
	atolog_store_close(s);
	free(big);
	check_tmpdir_remove(dir);
}

/* ------------------------------------------------------------------------
 * Flipped bytes.
 */

static void check_corrupt_get(atolog_store *s, const char *id, const char *where)
{
	atolog_interaction *rec = NULL;

	CHECK_RC(atolog_interaction_get(s, id, &rec), ATOLOG_CORRUPT, s);
	CHECK_MSG(s, where);
	CHECK(rec == NULL);
}

static void check_corrupt_replay(atolog_store *s, const char *where)
{
	const atolog_interaction *rec;
	atolog_iter *it;
	int rc;

	CHECK_OK(atolog_replay_open(s, "s", &it), s);
	while ((rc = atolog_iter_next(it, &rec)) == ATOLOG_OK)
		CHECK(strcmp(rec->prompt, "r0") == 0 || strncmp(rec->prompt, "r", 1) == 0);
	CHECK_RC(rc, ATOLOG_CORRUPT, s);
	CHECK_MSG(s, where);
	atolog_iter_close(it);
}

static void test_flipped_byte(bool in_last_segment)
{
	char *dir = check_tmpdir("flip");
	char ids[FLIP_RECORDS][ATOLOG_ID_TEXT_LEN + 1];
	struct frame_pos frames[256];
	uint64_t seg_id;
	atolog_store *s;
	atolog_stats st;
	char where[96], *seg;
	size_t n, victim;
	int rc;

	fill(dir, FLIP_RECORDS, ids);
	s = open_store(dir, ATOLOG_OPEN_READONLY, NULL);
	CHECK_OK(atolog_store_stats(s, &st), s);
	atolog_store_close(s);
	CHECK(st.n_segments >= 3);
	seg_id = in_last_segment ? st.n_segments : 2;
	seg = segment_file(dir, seg_id);
	n = list_frames(seg, frames, 256);
	victim = n / 2;
	CHECK(n >= 3 && frames[victim].kind == FRAME_KIND_RECORD);
	check_flip_byte(seg, frames[victim].offset + FRAME_HEADER_SIZE + 5);
	snprintf(where, sizeof(where), "segment %016" PRIx64 " offset %" PRIu64,
		 seg_id, frames[victim].offset);

	/* Index intact: the writer opens; the damaged record is never served. */
	s = open_store(dir, 0, NULL);
	if (s) {
		int bad = -1;

		for (int i = 0; i < FLIP_RECORDS && bad < 0; i++) {
			atolog_interaction *rec = NULL;

			rc = atolog_interaction_get(s, ids[i], &rec);
			if (rc == ATOLOG_CORRUPT)
				bad = i;
			else
				CHECK_OK(rc, s);
			atolog_interaction_free(rec);
		}
		CHECK(bad >= 0);
		if (bad >= 0)
			check_corrupt_get(s, ids[bad], where);
		check_corrupt_replay(s, where);
		atolog_store_close(s);
	}

	/* Index gone: rebuilding meets the damage and refuses, naming it. */
	check_remove_index(dir);
	s = open_store(dir, 0, &rc);
	CHECK_RC(rc, ATOLOG_CORRUPT, NULL);
	CHECK_MSG(NULL, where);
	CHECK(s == NULL);
	atolog_store_close(s);
	fprintf(stderr, "test_recovery: flipped byte in %s segment: reported as \"%s\"\n",
		in_last_segment ? "the last" : "a sealed", atolog_errmsg(NULL));
	free(seg);
	check_tmpdir_remove(dir);
}

/* Damage in the unindexed tail: the writer cannot index past it and
 * refuses; a read-only open serves everything before it, indexed or not,
 * and says where it is. */
static void test_corrupt_tail_readonly(void)
{
	char *dir = check_tmpdir("tailflip");
	char ids[100][ATOLOG_ID_TEXT_LEN + 1];
	struct frame_pos frames[512];
	atolog_interaction *rec = NULL;
	atolog_store *s;
	atolog_stats st;
	uint64_t seg_id, tail;
	char *seg;
	size_t n;
	int rc;

	fill(dir, 100, ids);
	copy_index(dir, dir);
	fill(dir, 60, NULL);
	restore_index(dir);
	s = open_store(dir, ATOLOG_OPEN_READONLY, NULL);
	CHECK_OK(atolog_store_stats(s, &st), s);
	atolog_store_close(s);
	/* Undamaged, the reader serves the whole tail from the log. */
	CHECK_INT(st.tail_records, 60);
	CHECK_INT(st.n_records, 160);
	CHECK_INT(st.damaged_segment, 0);
	seg_id = st.n_segments;
	tail = st.tail_records;
	seg = segment_file(dir, seg_id);
	n = list_frames(seg, frames, 512);
	CHECK(n >= 3);
	check_flip_byte(seg, frames[n - 2].offset + FRAME_HEADER_SIZE + 3);
	s = open_store(dir, 0, &rc);
	CHECK_RC(rc, ATOLOG_CORRUPT, NULL);
	CHECK_MSG(NULL, "offset");
	CHECK(s == NULL);
	/* The reader serves the index and the tail up to the damage, and
	 * says where the damage is. */
	s = open_store(dir, ATOLOG_OPEN_READONLY, NULL);
	if (s) {
		size_t before = tail;

		for (size_t i = n - 2; i < n; i++)
			before -= frames[i].kind == FRAME_KIND_RECORD;
		CHECK_OK(atolog_store_stats(s, &st), s);
		CHECK_INT(st.damaged_segment, seg_id);
		CHECK_INT(st.damaged_offset, frames[n - 2].offset);
		CHECK_INT(st.tail_records, before);
		CHECK_INT(check_count_session(s, "s"), 100 + (long)before);
		CHECK_OK(atolog_interaction_get(s, ids[99], &rec), s);
		atolog_interaction_free(rec);
	}
	atolog_store_close(s);
	free(seg);
	check_tmpdir_remove(dir);
}

static void test_garbage_index(void)
{
	char *dir = check_tmpdir("garbage");
	char *data = check_path(dir, "index/data.mdb");
	uint8_t junk[8192];
	atolog_store *s;
	atolog_stats st;
	int fd;

	fill(dir, 50, NULL);
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)check_rand();
	fd = open(data, O_WRONLY | O_TRUNC);
	CHECK(fd >= 0 && write(fd, junk, sizeof(junk)) == (ssize_t)sizeof(junk));
	close(fd);
	s = open_store(dir, 0, NULL);
	if (s) {
		CHECK_OK(atolog_store_stats(s, &st), s);
		CHECK_INT(st.index_rebuilt, 1);
		CHECK_INT(check_count_session(s, "s"), 50);
	}
	atolog_store_close(s);
	free(data);
	check_tmpdir_remove(dir);
}

/* ------------------------------------------------------------------------
 * Frames a dishonest or newer writer could leave: checksum-valid, but not
 * for this build to index.
 */

/* A complete, checksum-valid frame with the given kind and payload. */
static size_t craft_frame(uint8_t *out, uint8_t kind, const void *payload,
			  size_t len)
{
	memcpy(out + FRAME_HEADER_SIZE, payload, len);
	frame_header_write(out, kind, 0, 1000, (uint32_t)len);
	return FRAME_HEADER_SIZE + len;
}

/* The project every crafted log registers first, with its alias. */
#define CRAFTED_PROJECT "atolog"
#define CRAFTED_ALIAS "the-log"

static void check_refused_frame(uint8_t kind, const void *payload, size_t len,
				int want, const char *what)
{
	static const char *const aliases[] = { CRAFTED_ALIAS };
	char *dir = check_tmpdir("crafted");
	uint8_t *frame = malloc(FRAME_HEADER_SIZE + len);
	atolog_store *s;
	char *seg;
	long long size;
	int rc;

	fill(dir, 3, NULL);
	s = open_store(dir, 0, NULL);
	if (s) {
		CHECK_OK(atolog_project_add(s, CRAFTED_PROJECT, aliases, 1), s);
		CHECK_OK(atolog_store_close(s), NULL);
	}
	seg = segment_file(dir, 1);
	append_bytes(seg, frame, craft_frame(frame, kind, payload, len));
	size = check_file_size(seg);
	CHECK(open_store(dir, 0, &rc) == NULL);
	CHECK_RC(rc, want, NULL);
	CHECK_MSG(NULL, "segment 0000000000000001 offset");
	CHECK_INT(check_file_size(seg), size); /* nothing cut */
	fprintf(stderr, "test_recovery: %s: refused: %s\n", what, atolog_errmsg(NULL));
	free(frame);
	free(seg);
	check_tmpdir_remove(dir);
}

static void test_crafted_frames(void)
{
	char *project = malloc(400);
	struct record_fields f = { .created_at = 1, .prompt = { "p", 1 } };
	msgpack_sbuffer sb;

	memset(project, 'x', 400);
	f.project.ptr = project;
	f.project.len = 400;
	f.id[0] = 1;
	msgpack_sbuffer_init(&sb);
	CHECK_OK(record_encode(&f, &sb), NULL);
	check_refused_frame(FRAME_KIND_RECORD, sb.data, sb.size, ATOLOG_CORRUPT,
			    "a 400-byte project name");
	check_refused_frame(9, "\x80", 1, ATOLOG_VERSION, "a frame of kind 9");
	/* An alias re-pointed at another project: a writer refuses it with
	 * ATOLOG_EXISTS, and replay used to take it (found by fuzz_store;
	 * verify then failed on the first registration). */
	{
		struct text other = { "ztolog", 6 }, alias = { CRAFTED_ALIAS, 7 };

		msgpack_sbuffer_clear(&sb);
		CHECK_OK(registry_encode(other, &alias, 1, &sb), NULL);
		check_refused_frame(FRAME_KIND_REGISTRY, sb.data, sb.size, ATOLOG_CORRUPT,
				    "an alias of another project registered again");
		CHECK_MSG(NULL, "already belongs to '" CRAFTED_PROJECT "'");
	}
	msgpack_sbuffer_destroy(&sb);
	free(project);
}

static void test_newer_segment_header(void)
{
	char *dir = check_tmpdir("major");
	char *seg;
	uint8_t hdr[SEGMENT_HEADER_SIZE];
	struct segment_header h;
	int fd, rc;

	fill(dir, 3, NULL);
	seg = segment_file(dir, 1);
	fd = open(seg, O_RDWR);
	CHECK(pread(fd, hdr, sizeof(hdr), 0) == (ssize_t)sizeof(hdr));
	CHECK_OK(segment_header_read(hdr, &h), NULL);
	h.major = SEGMENT_FORMAT_MAJOR + 1;
	segment_header_write(hdr, &h);
	CHECK(pwrite(fd, hdr, sizeof(hdr), 0) == (ssize_t)sizeof(hdr));
	close(fd);
	CHECK(open_store(dir, ATOLOG_OPEN_READONLY, &rc) == NULL);
	CHECK_RC(rc, ATOLOG_VERSION, NULL);
	CHECK(open_store(dir, 0, &rc) == NULL);
	CHECK_RC(rc, ATOLOG_VERSION, NULL);
	free(seg);
	check_tmpdir_remove(dir);
}

static void write_marker(const char *dir, const char *boot_id)
{
	char *marker = check_path(dir, "index-unsynced");
	FILE *f = fopen(marker, "w");

	CHECK(f && fprintf(f, "%s\n", boot_id) > 0);
	if (f)
		fclose(f);
	free(marker);
}

/* Fills a store with n records "r<i>" in session "s" in the sync mode. */
static void fill_mode(const char *dir, int n, atolog_sync_mode mode)
{
	atolog_options o = { .sync = mode, .segment_size = SEGMENT_SIZE };
	atolog_store *s = NULL;
	char prompt[64];

	CHECK_OK(atolog_store_open(dir, &o, &s), NULL);
	for (int i = 0; s && i < n; i++) {
		snprintf(prompt, sizeof(prompt), "r%d", i);
		CHECK_OK(record_prompt(s, prompt, "s", NULL), s);
	}
	CHECK_OK(atolog_store_close(s), NULL);
}

/*
 * A machine crash can leave a hole (pages the OS never wrote) before frames
 * that did reach the disk. Whether that is a torn tail or damage depends on
 * whether a sync came between them: frames of an unsynced stretch carry no
 * SYNC_START after the first, so under sync none the hole ends the log;
 * under sync always every group is synced, so a hole before later frames is
 * damage to acknowledged data, after a reboot as much as before.
 */
static void check_hole(atolog_sync_mode mode, int want)
{
	char *dir = check_tmpdir("hole");
	struct frame_pos frames[32];
	uint8_t zeros[64] = { 0 };
	char *seg, *tmp;
	atolog_store *s;
	atolog_stats st;
	size_t n;
	int fd, rc;

	fill_mode(dir, 10, mode);
	seg = segment_file(dir, 1);
	n = list_frames(seg, frames, 32);
	CHECK_INT(n, 10);
	fd = open(seg, O_RDWR);
	CHECK(n == 10 && pwrite(fd, zeros, sizeof(zeros),
				(off_t)frames[6].offset) == (ssize_t)sizeof(zeros));
	close(fd);
	write_marker(dir, "a-boot-long-ago"); /* the index is dropped */
	/* A reader cannot rebuild: it refuses an index the crash may have hurt. */
	CHECK(open_store(dir, ATOLOG_OPEN_READONLY, &rc) == NULL);
	CHECK_RC(rc, ATOLOG_CORRUPT, NULL);
	CHECK_MSG(NULL, "open the store for writing once");
	tmp = check_path(dir, "segments/0000000000000002.seg.tmp");
	fclose(fopen(tmp, "w"));
	s = open_store(dir, 0, &rc);
	CHECK_RC(rc, want, NULL);
	if (s) {
		CHECK_OK(atolog_store_stats(s, &st), s);
		CHECK_INT(st.index_rebuilt, 1);
		CHECK_INT(st.n_records, 6);
		CHECK(st.truncated_bytes > 0);
		CHECK_INT(check_count_session(s, "s"), 6);
		CHECK_OK(atolog_store_close(s), NULL);
		CHECK_INT(check_file_size(tmp), -1); /* a half-made segment is gone */
	}
	free(tmp);
	free(seg);
	check_tmpdir_remove(dir);
}

static void test_machine_crash_hole(void)
{
	check_hole(ATOLOG_SYNC_NONE, ATOLOG_OK);
	check_hole(ATOLOG_SYNC_ALWAYS, ATOLOG_CORRUPT);
}

int main(int argc, char **argv)
{
	check_args(argc, argv);
	check_rand_init("test_recovery");
	CHECK_RUN(test_sigkill);
	CHECK_RUN(test_torn_tails);
	CHECK_RUN(test_cut_every_byte);
	CHECK_RUN(test_index_lags);
	CHECK_RUN(test_index_past_log);
	CHECK_RUN(test_refused_open_keeps_tail);
	CHECK_RUN(test_state_frame_unreadable);
	CHECK_RUN(test_sync_none_marker);
	CHECK_RUN(test_rebuild_killed_early);
	CHECK_RUN(test_tail_after_seal);
	CHECK_RUN_WITH(test_flipped_byte, false);
	CHECK_RUN_WITH(test_flipped_byte, true);
	CHECK_RUN(test_corrupt_tail_readonly);
	CHECK_RUN(test_garbage_index);
	CHECK_RUN(test_crafted_frames);
	CHECK_RUN(test_newer_segment_header);
	CHECK_RUN(test_machine_crash_hole);
	return check_report("test_recovery");
}
