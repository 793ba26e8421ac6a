/*
 * test_lock.c - the debug-build lock records of common/lock.h, and the
 * asserts the engine makes with them.
 *
 * A lock's record must name the thread that holds it, in that thread
 * only: before, after, and around condition waits, and never in another
 * thread while the holder has it (lock_held is what every *_locked
 * function asserts). The log's holder (writer_holds_log) is the thread
 * between writer_exclusive_begin and _end, and no other. Then the rules
 * the asserts check are shown to be checked: a child that breaks one
 * (writes the marker without marker_lock, seals the log it does not hold)
 * dies of SIGABRT, where it used to go on. With NDEBUG (no asserts) those
 * cases are skipped, and say so.
 *
 * And the path of the review's marker suspect, for ThreadSanitizer (make
 * tsan) to watch: the index thread's idle flush removes the marker, a
 * compaction's swap writes it again, then writers make the index thread
 * look at it. Every record must be there after, the store must verify,
 * and nothing may wait for ever (the index thread now takes marker_lock).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "engine.h"
#include "lock.h"

/* ------------------------------------------------------------------------
 * Another thread's view of a lock or of the log.
 */
struct probe {
	struct lock *lock;
	struct rwlock *rwlock;
	atolog_store *store;
	bool held; /* out */
};

static void *probe_main(void *arg)
{
	struct probe *p = arg;

	if (p->lock)
		p->held = lock_held(p->lock);
	else if (p->rwlock)
		p->held = rwlock_held_exclusive(p->rwlock);
	else
		p->held = writer_holds_log(p->store);
	return NULL;
}

/* What another thread's lock_held / writer_holds_log says right now. */
static bool held_elsewhere(struct probe p)
{
	pthread_t t;

	CHECK(pthread_create(&t, NULL, probe_main, &p) == 0);
	pthread_join(t, NULL);
	return p.held;
}

/* ------------------------------------------------------------------------
 * The records.
 */

struct waiter {
	struct lock lock;
	pthread_cond_t cond;
	bool waiting, go;
	bool held_after_wait; /* the waiter's view once woken */
};

static void *waiter_main(void *arg)
{
	struct waiter *w = arg;

	lock_acquire(&w->lock);
	w->waiting = true;
	while (!w->go)
		lock_wait(&w->cond, &w->lock);
	w->held_after_wait = lock_held(&w->lock);
	lock_release(&w->lock);
	return NULL;
}

static void test_lock_records(const char *dir)
{
	struct waiter w = { .go = false };
	struct timespec soon;
	pthread_t t;

	(void)dir;
#ifdef NDEBUG
	fprintf(stderr, "test_lock: NDEBUG build, lock records not kept: skipped\n");
	return;
#endif
	lock_init(&w.lock);
	pthread_cond_init(&w.cond, NULL);
	CHECK(!lock_held(&w.lock));
	lock_acquire(&w.lock);
	CHECK(lock_held(&w.lock));
	CHECK(!held_elsewhere((struct probe){ .lock = &w.lock }));
	lock_release(&w.lock);
	CHECK(!lock_held(&w.lock));

	/* A timed wait gives the lock up and takes it back. */
	lock_acquire(&w.lock);
	clock_gettime(CLOCK_REALTIME, &soon);
	soon.tv_nsec += 1000000;
	if (soon.tv_nsec >= 1000000000) {
		soon.tv_sec++;
		soon.tv_nsec -= 1000000000;
	}
	CHECK_INT(lock_timedwait(&w.cond, &w.lock, &soon), ETIMEDOUT);
	CHECK(lock_held(&w.lock));
	lock_release(&w.lock);

	/* A waiter gives the lock up while it sleeps (this thread takes it
	 * and is the one named) and holds it again once woken. */
	CHECK(pthread_create(&t, NULL, waiter_main, &w) == 0);
	for (bool woke = false; !woke;) {
		lock_acquire(&w.lock);
		CHECK(lock_held(&w.lock));
		if (w.waiting) {
			w.go = woke = true;
			pthread_cond_signal(&w.cond);
		}
		lock_release(&w.lock);
		if (!woke)
			usleep(1000);
	}
	pthread_join(t, NULL);
	CHECK(w.held_after_wait);
	CHECK(!lock_held(&w.lock));
	pthread_cond_destroy(&w.cond);
	lock_destroy(&w.lock);
}

static void test_rwlock_records(const char *dir)
{
	struct rwlock l;

	(void)dir;
#ifdef NDEBUG
	return;
#endif
	rwlock_init(&l, NULL);
	CHECK(!rwlock_held(&l));
	rwlock_acquire_shared(&l);
	CHECK(rwlock_held(&l));
	CHECK(!rwlock_held_exclusive(&l));
	rwlock_acquire_shared(&l); /* two shared holds, counted */
	rwlock_release(&l);
	CHECK(rwlock_held(&l));
	rwlock_release(&l);
	CHECK(!rwlock_held(&l));
	rwlock_acquire(&l);
	CHECK(rwlock_held(&l) && rwlock_held_exclusive(&l));
	CHECK(!held_elsewhere((struct probe){ .rwlock = &l }));
	rwlock_release(&l);
	CHECK(!rwlock_held(&l));
	rwlock_destroy(&l);
}

/* ------------------------------------------------------------------------
 * The log's holder.
 */

static atolog_store *open_store(const char *dir)
{
	atolog_store *s = NULL;

	CHECK_OK(atolog_store_open(dir, NULL, &s), NULL);
	return s;
}

static void test_log_holder(const char *dir)
{
	atolog_interaction in = { .prompt = "held?" };
	atolog_store *s = open_store(dir);

#ifdef NDEBUG
	atolog_store_close(s);
	return;
#endif
	if (!s)
		return;
	/* A record leads the log and gives it back. */
	CHECK_OK(atolog_interaction_record(s, &in, NULL), s);
	CHECK(!writer_holds_log(s));
	CHECK_OK(writer_exclusive_begin(s), s);
	CHECK(writer_holds_log(s));
	CHECK(!held_elsewhere((struct probe){ .store = s }));
	writer_exclusive_end(s);
	CHECK(!writer_holds_log(s));
	CHECK_OK(atolog_interaction_record(s, &in, NULL), s);
	CHECK_OK(atolog_store_close(s), NULL);
}

/* ------------------------------------------------------------------------
 * The marker across a swap.
 */

#define MARKER_WRITERS 4
#define MARKER_RECORDS 50   /* per writer, after the swap */
#define MARKER_WAIT_S 30    /* for the idle flush (INDEX_IDLE_FLUSH_MS) */

static void *marker_writer_main(void *arg)
{
	atolog_store *s = arg;
	atolog_interaction in = { .prompt = "after the swap", .project = "kept",
				  .session_id = "after" };

	for (int i = 0; i < MARKER_RECORDS; i++)
		CHECK_OK(atolog_interaction_record(s, &in, NULL), s);
	return NULL;
}

/* Waits until the idle flush has removed the marker; false if it never
 * came. */
static bool marker_flushed(const char *path)
{
	for (int i = 0; i < MARKER_WAIT_S * 100; i++) {
		if (access(path, F_OK) != 0)
			return true;
		usleep(10 * 1000);
	}
	return false;
}

static void test_marker_across_swap(const char *dir)
{
	atolog_compact_options o = { .flags = ATOLOG_COMPACT_APPLY |
					      ATOLOG_COMPACT_PROJECT,
				     .project = "gone" };
	atolog_compact_report r = { 0 };
	char *marker = check_path(dir, STORE_UNSYNCED_FILE);
	pthread_t writers[MARKER_WRITERS];
	atolog_store *s = open_store(dir);
	atolog_verify_report v;
	atolog_stats st;

	for (int i = 0; s && i < 20; i++) {
		atolog_interaction in = { .prompt = "before", .session_id = "before",
					  .project = i % 2 ? "gone" : "kept" };

		CHECK_OK(atolog_interaction_record(s, &in, NULL), s);
	}
	if (!s || !marker_flushed(marker)) {
		CHECK_FAILF("the idle flush never removed %s", marker);
		goto out;
	}
	/* The swap finds no marker and writes one (compact.c swap_index). */
	CHECK_OK(atolog_store_compact(s, &o, &r), s);
	CHECK_INT(r.applied, 1);
	CHECK_INT(r.records_removed, 10);
	atolog_compact_report_free(&r);
	for (int i = 0; i < MARKER_WRITERS; i++)
		CHECK(pthread_create(&writers[i], NULL, marker_writer_main, s) == 0);
	for (int i = 0; i < MARKER_WRITERS; i++)
		pthread_join(writers[i], NULL);
	CHECK_OK(atolog_store_stats(s, &st), s);
	CHECK_INT(st.n_records, 10 + MARKER_WRITERS * MARKER_RECORDS);
	CHECK_INT(check_count_session(s, "after"), MARKER_WRITERS * MARKER_RECORDS);
	CHECK_OK(atolog_store_verify(s, NULL, NULL, &v), s);
	/* A clean close flushes the index: no marker is left. */
	CHECK_OK(atolog_store_close(s), NULL);
	s = NULL;
	CHECK(access(marker, F_OK) != 0);
out:
	atolog_store_close(s);
	free(marker);
}

/* ------------------------------------------------------------------------
 * Broken rules end in an assert. Each runs in a child, which must die of
 * SIGABRT; the same call made by the rules must succeed.
 */

enum breach { MARKER_UNLOCKED, MARKER_LOCKED, SEAL_NOT_HOLDING, SEAL_HOLDING };

static int breach_run(atolog_store *s, enum breach b)
{
	int rc;

	switch (b) {
	case MARKER_UNLOCKED:
		return store_marker_write(s);
	case MARKER_LOCKED:
		lock_acquire(&s->marker_lock);
		rc = store_marker_write(s);
		lock_release(&s->marker_lock);
		return rc;
	case SEAL_NOT_HOLDING:
		return writer_seal(s);
	case SEAL_HOLDING:
		rc = writer_exclusive_begin(s);
		if (rc == ATOLOG_OK)
			rc = writer_roll(s);
		writer_exclusive_end(s);
		return rc;
	}
	return -1;
}

/* The child's wait status. */
static int breach_status(const char *dir, enum breach b)
{
	int status = -1;
	pid_t pid = fork();

	if (pid == 0) {
		atolog_store *s = NULL;

		if (atolog_store_open(dir, NULL, &s) != ATOLOG_OK)
			_exit(2);
		if (breach_run(s, b) != ATOLOG_OK)
			_exit(3);
		_exit(atolog_store_close(s) == ATOLOG_OK ? 0 : 4);
	}
	waitpid(pid, &status, 0);
	return status;
}

static bool aborted(int status)
{
	return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
}

static bool exited_ok(int status)
{
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static void test_breaches_abort(const char *dir)
{
	atolog_verify_report v;
	atolog_stats st;
	atolog_store *s = open_store(dir);

	/* A store to open: the children are its writers, one at a time. */
	CHECK_OK(atolog_store_close(s), NULL);
#ifdef NDEBUG
	fprintf(stderr, "test_lock: NDEBUG build, no asserts: breaches skipped\n");
	return;
#endif
	CHECK(exited_ok(breach_status(dir, MARKER_LOCKED)));
	CHECK(exited_ok(breach_status(dir, SEAL_HOLDING)));
	/* The child's assert message goes to stderr: it is expected. */
	fprintf(stderr, "test_lock: two assert failures follow, on purpose\n");
	CHECK(aborted(breach_status(dir, MARKER_UNLOCKED)));
	CHECK(aborted(breach_status(dir, SEAL_NOT_HOLDING)));
	/* The store is none the worse: the asserts fire before anything
	 * is written, and the next open finds a store that verifies. */
	s = open_store(dir);
	if (!s)
		return;
	CHECK_OK(atolog_store_stats(s, &st), s);
	CHECK_INT(st.n_records, 0);
	CHECK_OK(atolog_store_verify(s, NULL, NULL, &v), s);
	CHECK_OK(atolog_store_close(s), NULL);
}

int main(int argc, char **argv)
{
	static const struct check_case cases[] = {
		{ "lock records", test_lock_records },
		{ "rwlock records", test_rwlock_records },
		{ "log holder", test_log_holder },
		{ "breaches abort", test_breaches_abort },
		{ "marker across a swap", test_marker_across_swap },
	};

	check_args(argc, argv);
	return check_run_cases("test_lock", cases, sizeof(cases) / sizeof(cases[0]));
}
