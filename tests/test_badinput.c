/*
 * test_badinput.c - every way a caller or the disk can say no, and the
 * promise that goes with it: a clear error, and the store as it was.
 *
 * Invalid interactions (blank prompt, bad UTF-8, oversize fields, a
 * context that is not an object or nests too deep, an id taken, a time out
 * of range), bad queries (since, ids), registry conflicts, a second writer,
 * writes on a read-only handle, bad options; then injected I/O faults: a
 * full disk, a short write, a failed truncate, a failed fdatasync, a failed
 * segment roll, and an index map that must grow many times.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "engine.h"

struct snapshot {
	uint64_t n_records, last_seq, log_bytes;
};

static struct snapshot snap(atolog_store *s)
{
	struct snapshot x = { 0 };
	atolog_stats st;

	CHECK_OK(atolog_store_stats(s, &st), s);
	x.n_records = st.n_records;
	x.last_seq = st.last_seq;
	x.log_bytes = st.log_bytes;
	return x;
}

#define CHECK_UNCHANGED(s, before)                                           \
	do {                                                                 \
		struct snapshot after_ = snap(s);                            \
		CHECK_INT(after_.n_records, (before).n_records);             \
		CHECK_INT(after_.last_seq, (before).last_seq);               \
		CHECK_INT(after_.log_bytes, (before).log_bytes);             \
	} while (0)

static atolog_store *open_store(const char *dir, unsigned flags, uint64_t segment)
{
	atolog_options o = { .flags = flags, .segment_size = segment };
	atolog_store *s = NULL;

	CHECK_OK(atolog_store_open(dir, &o, &s), NULL);
	if (!s)
		exit(check_report("test_badinput"));
	return s;
}

static int record(atolog_store *s, const atolog_interaction *in)
{
	atolog_interaction *out = NULL;
	int rc = atolog_interaction_record(s, in, &out);

	atolog_interaction_free(out);
	return rc;
}

static int record_text(atolog_store *s, const char *prompt)
{
	atolog_interaction in = { .prompt = prompt, .session_id = "s" };

	return record(s, &in);
}

/* Expects rc and a message containing text, and no change. */
static void check_refused(atolog_store *s, const atolog_interaction *in, int want,
			  const char *text)
{
	struct snapshot before = snap(s);

	CHECK_RC(record(s, in), want, s);
	CHECK_MSG(s, text);
	CHECK_UNCHANGED(s, before);
}

static char *repeat(char c, size_t n)
{
	char *s = malloc(n + 1);

	memset(s, c, n);
	s[n] = '\0';
	return s;
}

static void test_invalid_interactions(atolog_store *s)
{
	static const char *const blanks[] = { "", " ", " \t\n\r ", "\u3000\u00a0" };
	char *big = repeat('x', ATOLOG_TEXT_MAX_BYTES + 1);
	char *name = repeat('n', ATOLOG_NAME_MAX_BYTES + 1);
	char *ref = repeat('r', ATOLOG_REF_MAX_BYTES + 1);
	const char **refs = calloc(ATOLOG_REFS_MAX + 1, sizeof(char *));
	atolog_interaction in = { 0 };

	check_refused(s, &in, ATOLOG_INVALID, "prompt");
	for (size_t i = 0; i < sizeof(blanks) / sizeof(blanks[0]); i++) {
		in.prompt = blanks[i];
		check_refused(s, &in, ATOLOG_INVALID, "prompt must be non-empty");
	}
	in.prompt = "fine";
	in.response = "bad \xc3\x28 utf-8";
	check_refused(s, &in, ATOLOG_INVALID, "response is not valid UTF-8");
	in.response = NULL;
	in.prompt = big;
	check_refused(s, &in, ATOLOG_TOOBIG, "prompt");
	in.prompt = "fine";
	in.project = name;
	check_refused(s, &in, ATOLOG_TOOBIG, "project");
	in.project = NULL;
	in.session_id = name;
	check_refused(s, &in, ATOLOG_TOOBIG, "session_id");
	in.session_id = NULL;
	for (size_t i = 0; i <= ATOLOG_REFS_MAX; i++)
		refs[i] = "m";
	in.memories_used = refs;
	in.n_memories_used = ATOLOG_REFS_MAX + 1;
	check_refused(s, &in, ATOLOG_TOOBIG, "memories_used");
	refs[0] = ref;
	in.n_memories_used = 1;
	check_refused(s, &in, ATOLOG_TOOBIG, "memories_used[0]");
	refs[0] = NULL;
	check_refused(s, &in, ATOLOG_INVALID, "memories_used[0]");
	in.memories_used = NULL;
	in.n_memories_used = 0;
	in.context_pack = "[1,2]";
	check_refused(s, &in, ATOLOG_INVALID, "context_pack must be a JSON object");
	in.context_pack = "{\"a\":";
	check_refused(s, &in, ATOLOG_INVALID, "context_pack is not JSON");
	in.context_pack = NULL;
	in.has_created_at = 1;
	in.created_at = INT64_MAX;
	check_refused(s, &in, ATOLOG_INVALID, "created_at");
	in.has_created_at = 0;
	strcpy(in.id, "not-a-uuid");
	check_refused(s, &in, ATOLOG_INVALID, "id");
	/* Two full text fields pass their limits but not the record's. */
	big[ATOLOG_TEXT_MAX_BYTES] = '\0';
	in.id[0] = '\0';
	in.prompt = big;
	in.response = big;
	check_refused(s, &in, ATOLOG_TOOBIG, "the record encodes to");
	free(big);
	free(name);
	free(ref);
	free(refs);
}

static void test_deep_context(atolog_store *s)
{
	char ctx[8 * ATOLOG_CONTEXT_MAX_DEPTH + 16];
	atolog_interaction in = { .prompt = "deep", .context_pack = ctx };
	size_t n = 0;

	for (unsigned i = 0; i < ATOLOG_CONTEXT_MAX_DEPTH + 1; i++)
		n += (size_t)sprintf(ctx + n, "{\"a\":");
	n += (size_t)sprintf(ctx + n, "1");
	for (unsigned i = 0; i < ATOLOG_CONTEXT_MAX_DEPTH + 1; i++)
		ctx[n++] = '}';
	ctx[n] = '\0';
	check_refused(s, &in, ATOLOG_TOOBIG, "context_pack nests deeper");
}

static void test_duplicate_id(atolog_store *s)
{
	atolog_interaction in = { .prompt = "first" };
	atolog_interaction *out = NULL;
	struct snapshot before;

	CHECK_OK(atolog_interaction_record(s, &in, &out), s);
	if (!out)
		return;
	memcpy(in.id, out->id, sizeof(in.id));
	in.prompt = "second, same id";
	before = snap(s);
	CHECK_RC(record(s, &in), ATOLOG_EXISTS, s);
	CHECK_MSG(s, out->id);
	CHECK_UNCHANGED(s, before);
	atolog_interaction_free(out);
	CHECK_OK(atolog_interaction_get(s, in.id, &out), s);
	if (out)
		CHECK_STR(out->prompt, "first");
	atolog_interaction_free(out);
}

static void test_bad_queries(atolog_store *s)
{
	atolog_query q = { .since = "last tuesday", .limit = 10 };
	atolog_interaction *rec = NULL;
	atolog_iter *it = NULL;

	CHECK_RC(atolog_list_open(s, &q, &it), ATOLOG_INVALID, s);
	CHECK_MSG(s, "last tuesday");
	CHECK(it == NULL);
	q.since = "2026-02-30T00:00:00Z";
	CHECK_RC(atolog_list_open(s, &q, &it), ATOLOG_INVALID, s);
	CHECK_RC(atolog_interaction_get(s, "1234", &rec), ATOLOG_INVALID, s);
	CHECK_MSG(s, "not a UUID");
	CHECK_RC(atolog_interaction_get(s, "01890a5d-ac96-774b-bcce-b302099a8057", &rec),
		 ATOLOG_NOTFOUND, s);
	CHECK_RC(atolog_replay_open(s, "", &it), ATOLOG_INVALID, s);
	CHECK_RC(atolog_replay_open(s, NULL, &it), ATOLOG_INVALID, s);
}

static int count_projects(const atolog_project *p, void *ctx)
{
	(void)p;
	(*(int *)ctx)++;
	return 0;
}

static void test_registry_conflicts(atolog_store *s)
{
	static const char *const a1[] = { "one", "uno" };
	static const char *const a2[] = { "dos", "UNO" };
	const char *many[ATOLOG_ALIASES_MAX + 1];
	struct snapshot before;
	char *canon = NULL;
	int n = 0;

	CHECK_OK(atolog_project_add(s, "first", a1, 2), s);
	before = snap(s);
	CHECK_RC(atolog_project_add(s, "second", a2, 2), ATOLOG_EXISTS, s);
	CHECK_MSG(s, "UNO");
	CHECK_RC(atolog_project_add(s, "One", NULL, 0), ATOLOG_EXISTS, s);
	CHECK_RC(atolog_project_add(s, "  ", NULL, 0), ATOLOG_INVALID, s);
	for (size_t i = 0; i <= ATOLOG_ALIASES_MAX; i++)
		many[i] = "x";
	CHECK_RC(atolog_project_add(s, "third", many, ATOLOG_ALIASES_MAX + 1),
		 ATOLOG_TOOBIG, s);
	CHECK_UNCHANGED(s, before);
	/* Nothing of "second" was registered, not even "dos". */
	CHECK_OK(atolog_project_resolve(s, "dos", &canon), s);
	CHECK_STR(canon, "dos");
	free(canon);
	CHECK_OK(atolog_project_foreach(s, count_projects, &n), s);
	CHECK_INT(n, 1);
	/* Registering again what is there changes nothing. */
	CHECK_OK(atolog_project_add(s, "FIRST", a1, 2), s);
	CHECK_UNCHANGED(s, before);
}

/* A reader's look at LOCK (a shared flock for an instant) does not make a
 * writer opening at that instant fail as if another writer held it. */
static void test_lock_beside_a_look(const char *dir)
{
	char *path = check_path(dir, "LOCK");
	int fd = open(path, O_RDONLY), status;
	atolog_store *s = NULL;
	pid_t pid;

	CHECK(fd >= 0 && flock(fd, LOCK_SH) == 0);
	pid = fork();
	if (pid == 0) {
		/* A long look (the lock is the shared open file's: the
		 * child lets it go for both), while the writer tries. */
		usleep(30000);
		flock(fd, LOCK_UN);
		_exit(0);
	}
	CHECK_OK(atolog_store_open(dir, NULL, &s), NULL); /* retried, not LOCKED */
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	atolog_store_close(s);
	close(fd);
	free(path);
}

static void test_locks_and_modes(const char *dir)
{
	atolog_options bad = { .segment_size = 100 };
	atolog_store *s = open_store(dir, 0, 0), *other = NULL, *ro;
	atolog_interaction in = { .prompt = "read-only?" };
	int status = -1;
	pid_t pid;

	CHECK_RC(atolog_store_open(dir, NULL, &other), ATOLOG_LOCKED, NULL);
	CHECK_MSG(NULL, "LOCK");
	CHECK_MSG(NULL, "locked by another writer");
	CHECK(other == NULL);
	/* A read-only handle refuses writes; in a child, as LMDB forbids one
	 * environment open twice in a process. */
	pid = fork();
	if (pid == 0) {
		ro = open_store(dir, ATOLOG_OPEN_READONLY, 0);
		CHECK_RC(record(ro, &in), ATOLOG_READONLY, ro);
		CHECK_RC(atolog_project_add(ro, "x", NULL, 0), ATOLOG_READONLY, ro);
		atolog_store_close(ro);
		_exit(check_failures ? 1 : 0);
	}
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	atolog_store_close(s);
	CHECK_RC(atolog_store_open(dir, &bad, &other), ATOLOG_INVALID, NULL);
	bad.segment_size = 0;
	bad.flags = 0x100;
	CHECK_RC(atolog_store_open(dir, &bad, &other), ATOLOG_INVALID, NULL);
	bad.flags = ATOLOG_OPEN_READONLY;
	CHECK_RC(atolog_store_open("/nonexistent/atolog", &bad, &other),
		 ATOLOG_NOTFOUND, NULL);
}

/* ------------------------------------------------------------------------
 * Injected faults.
 */

static void test_disk_full(const char *dir)
{
	atolog_store *s = open_store(dir, 0, 0);
	struct snapshot before;

	CHECK_OK(record_text(s, "before"), s);
	before = snap(s);
	store_inject_fault(s, IO_WRITE, 0, ENOSPC, false);
	CHECK_RC(record_text(s, "no room"), ATOLOG_FULL, s);
	CHECK_MSG(s, "No space left on device");
	CHECK_UNCHANGED(s, before);
	/* Half written, then full: cut back to where it was. */
	store_inject_fault(s, IO_WRITE, 0, ENOSPC, true);
	CHECK_RC(record_text(s, "half"), ATOLOG_FULL, s);
	CHECK_UNCHANGED(s, before);
	/* Past a file size limit (RLIMIT_FSIZE) is full too. */
	store_inject_fault(s, IO_WRITE, 0, EFBIG, false);
	CHECK_RC(record_text(s, "over the limit"), ATOLOG_FULL, s);
	CHECK_UNCHANGED(s, before);
	/* Room again: the handle goes on. */
	CHECK_OK(record_text(s, "after"), s);
	CHECK_INT(snap(s).n_records, before.n_records + 1);
	atolog_store_close(s);
}

static void test_failed_truncate(const char *dir)
{
	atolog_store *s = open_store(dir, 0, 0);
	struct snapshot before = snap(s);
	atolog_stats st;

	store_inject_fault(s, IO_WRITE, 0, EIO, true);
	store_inject_fault(s, IO_TRUNCATE, 0, EIO, true);
	CHECK_RC(record_text(s, "half, and stuck"), EIO, s);
	/* It no longer knows what is on disk: it stops writing. */
	CHECK_RC(record_text(s, "refused"), ATOLOG_FAILED, s);
	CHECK_MSG(s, "reopen");
	atolog_store_close(s);
	s = open_store(dir, 0, 0);
	CHECK_OK(atolog_store_stats(s, &st), s);
	CHECK(st.truncated_bytes > 0); /* the half frame was a torn tail */
	CHECK_INT(st.n_records, before.n_records);
	CHECK_OK(record_text(s, "after reopen"), s);
	atolog_store_close(s);
}

/*
 * A caller that queued while the sync that failed the handle ran must be
 * refused too, not written by the next leader (whose own sync may well
 * succeed: Linux reports a writeback error once).
 */
struct queued_behind {
	atolog_store *store;
	pthread_t thread;
	int rc;
	bool started;
};

static void *record_behind(void *arg)
{
	struct queued_behind *q = arg;
	atolog_interaction in = { .prompt = "queued behind a failing sync",
				  .session_id = "behind" };

	q->rc = atolog_interaction_record(q->store, &in, NULL);
	return NULL;
}

static void queue_one_more(void *arg)
{
	struct queued_behind *q = arg;
	uint64_t queued = 0;

	if (q->started)
		return;
	q->started = true;
	pthread_create(&q->thread, NULL, record_behind, q);
	for (int i = 0; i < 5000 && queued == 0; i++) {
		lock_acquire(&q->store->w.lock);
		queued = q->store->w.queued_reqs;
		lock_release(&q->store->w.lock);
		if (!queued)
			usleep(1000);
	}
	CHECK(queued > 0);
}

static void test_queued_behind_failed_sync(const char *dir)
{
	atolog_store *s = open_store(dir, 0, 0);
	struct queued_behind q = { .store = s, .rc = -1 };

	store_before_sync(s, queue_one_more, &q);
	store_inject_fault(s, IO_SYNC, 0, EIO, false);
	CHECK_RC(record_text(s, "the sync of this one fails"), EIO, s);
	if (q.started)
		pthread_join(q.thread, NULL);
	CHECK_INT(q.rc, ATOLOG_FAILED);
	store_before_sync(s, NULL, NULL);
	atolog_store_close(s);
	s = open_store(dir, 0, 0);
	CHECK_INT(check_count_session(s, "behind"), 0); /* never written */
	atolog_store_close(s);
}

static void test_failed_sync(const char *dir)
{
	atolog_store *s = open_store(dir, 0, 0);
	struct snapshot before = snap(s);

	store_inject_fault(s, IO_SYNC, 0, EIO, false);
	CHECK_RC(record_text(s, "unsure"), EIO, s);
	CHECK_MSG(s, "fdatasync");
	CHECK_RC(record_text(s, "refused"), ATOLOG_FAILED, s);
	atolog_store_close(s);
	s = open_store(dir, 0, 0);
	/* The unacknowledged record may or may not have survived; nothing
	 * acknowledged was lost. */
	CHECK(snap(s).n_records >= before.n_records);
	CHECK(snap(s).n_records <= before.n_records + 1);
	CHECK_OK(record_text(s, "after reopen"), s);
	atolog_store_close(s);
}

/* A roll makes the next segment (under its temporary name) before it
 * seals the active one: a full disk at either step changes nothing, the
 * record is refused with ATOLOG_FULL, and the next write rolls. Only a
 * failure once the seal is durable fails the handle. */
static void roll_fault_case(enum io_op op, long nth, int want_rc, int want_next)
{
	char *dir = check_tmpdir("roll");
	atolog_store *s = open_store(dir, 0, ATOLOG_SEGMENT_SIZE_MIN);
	char *big = repeat('b', 2000);
	atolog_stats st;
	uint64_t before;

	CHECK_OK(record_text(s, big), s);
	before = snap(s).n_records;
	store_inject_fault(s, op, nth, ENOSPC, false);
	CHECK_RC(record_text(s, big), want_rc, s);
	CHECK_RC(record_text(s, "next"), want_next, s);
	atolog_store_close(s);
	s = open_store(dir, 0, ATOLOG_SEGMENT_SIZE_MIN);
	CHECK_OK(atolog_store_stats(s, &st), s);
	CHECK_INT(st.n_records, before + (want_next == ATOLOG_OK));
	/* Refused: still one segment ("next" fits in it). Failed after the
	 * seal: the reopen made the successor. */
	CHECK_INT(st.n_segments, want_next == ATOLOG_OK ? 1 : 2);
	CHECK_OK(record_text(s, big), s);
	CHECK_INT(snap(s).n_records, before + (want_next == ATOLOG_OK) + 1);
	CHECK_OK(check_verify_dir(dir), NULL);
	atolog_store_close(s);
	free(big);
	check_tmpdir_remove(dir);
}

static void test_failed_roll(void)
{
	/* The new segment's header (write 0), its sync (sync 0). */
	roll_fault_case(IO_WRITE, 0, ATOLOG_FULL, ATOLOG_OK);
	roll_fault_case(IO_SYNC, 0, ATOLOG_FULL, ATOLOG_OK);
	/* The seal frame (write 1), the seal's sync (sync 1): in doubt. */
	roll_fault_case(IO_WRITE, 1, ATOLOG_FULL, ATOLOG_OK);
	roll_fault_case(IO_SYNC, 1, ATOLOG_FULL, ATOLOG_FAILED);
	/* The directory after the rename (sync 2): sealed, no successor. */
	roll_fault_case(IO_SYNC, 2, ATOLOG_FULL, ATOLOG_FAILED);
}

/* A group too large for one pwritev fails in its second write: the whole
 * group comes off the log, not only the part that failed. */
static void test_failed_large_group(void)
{
	char *dir = check_tmpdir("large");
	atolog_store *s = open_store(dir, 0, 0);
	enum { N = 700 };
	atolog_interaction *items = calloc(N, sizeof(*items));
	int *rcs = calloc(N, sizeof(*rcs));
	struct snapshot before;
	atolog_stats st;

	CHECK_OK(record_text(s, "before"), s);
	before = snap(s);
	for (int i = 0; i < N; i++) {
		items[i].prompt = "large group";
		items[i].session_id = "large";
	}
	store_inject_fault(s, IO_WRITE, 1, ENOSPC, false);
	CHECK_RC(atolog_interaction_record_batch(s, items, N, rcs, NULL), ATOLOG_FULL, s);
	for (int i = 0; i < N; i++)
		CHECK_RC(rcs[i], ATOLOG_FULL, s);
	CHECK_UNCHANGED(s, before);
	CHECK_OK(record_text(s, "after"), s);
	atolog_store_close(s);
	/* Rebuilt from the log alone, the failed group must not reappear. */
	{
		char *data = check_path(dir, "index/data.mdb");

		CHECK(unlink(data) == 0);
		free(data);
	}
	s = open_store(dir, 0, 0);
	CHECK_OK(atolog_store_stats(s, &st), s);
	CHECK_INT(st.index_rebuilt, 1);
	CHECK_INT(st.n_records, before.n_records + 1);
	atolog_store_close(s);
	free(items);
	free(rcs);
	check_tmpdir_remove(dir);
}

static void test_map_growth(void)
{
	char *dir = check_tmpdir("map");
	atolog_options o = { .sync = ATOLOG_SYNC_NONE, .index_map_size = 64 * 1024 };
	atolog_store *s = NULL;
	atolog_stats st;
	char prompt[32];

	CHECK_OK(atolog_store_open(dir, &o, &s), NULL);
	for (int i = 0; s && i < 3000; i++) {
		snprintf(prompt, sizeof(prompt), "grow %d", i);
		CHECK_OK(record_text(s, prompt), s);
	}
	if (s) {
		store_index_wait(s); /* index_bytes is what LMDB holds */
		CHECK_OK(atolog_store_stats(s, &st), s);
		CHECK_INT(st.n_records, 3000);
		CHECK(st.index_bytes > 64 * 1024);
	}
	atolog_store_close(s);
	check_tmpdir_remove(dir);
}

int main(int argc, char **argv)
{
	char *dir = check_tmpdir("bad");
	atolog_store *s = open_store(dir, 0, 0);

	check_args(argc, argv);
	CHECK_RUN_WITH(test_invalid_interactions, s);
	CHECK_RUN_WITH(test_deep_context, s);
	CHECK_RUN_WITH(test_duplicate_id, s);
	CHECK_RUN_WITH(test_bad_queries, s);
	CHECK_RUN_WITH(test_registry_conflicts, s);
	atolog_store_close(s);
	CHECK_RUN_WITH(test_locks_and_modes, dir);
	CHECK_RUN_WITH(test_lock_beside_a_look, dir);
	CHECK_RUN_WITH(test_disk_full, dir);
	CHECK_RUN_WITH(test_failed_truncate, dir);
	CHECK_RUN_WITH(test_failed_sync, dir);
	CHECK_RUN_WITH(test_queued_behind_failed_sync, dir);
	CHECK_RUN(test_failed_roll);
	CHECK_RUN(test_failed_large_group);
	CHECK_RUN(test_map_growth);
	check_tmpdir_remove(dir);
	return check_report("test_badinput");
}
