/*
 * lock.h - mutexes and read-write locks that know who holds them in debug
 * builds, so that "called with the lock held" is an assert, not prose.
 *
 * pthread locks cannot say who holds them. struct lock wraps a mutex with
 * an owner record, struct rwlock a read-write lock with an owner record
 * for its exclusive holder and a count of shared holds. The records exist
 * only in debug builds: with NDEBUG each struct is the bare pthread lock
 * and each function an inline call of its pthread counterpart, so release
 * builds pay nothing.
 *
 * struct owner on its own names the holder of a role that is not a lock
 * but is handed from thread to thread under one (the log's leader,
 * engine/commit.c).
 *
 * Invariants (debug builds):
 *  1. An owner record names a thread only while that thread holds what it
 *     records: the holder sets it right after taking and clears it right
 *     before giving up (around a condition wait too). So in the holder it
 *     always names the holder, and in any other thread it never names that
 *     thread: lock_held() is exact, whoever else is racing to take it.
 *  2. A shared hold of an rwlock is counted, not named: rwlock_held() says
 *     "this thread holds it exclusively, or some thread holds it shared".
 *
 * The asserts are for programmer errors only: nothing read from disk or
 * from a caller decides whether a lock is held.
 */
#ifndef ATOLOG_COMMON_LOCK_H
#define ATOLOG_COMMON_LOCK_H

#include <assert.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#ifndef NDEBUG
#include <stdatomic.h>
#endif

/* ------------------------------------------------------------------------
 * Owner records (debug builds; empty otherwise).
 */
struct owner {
#ifndef NDEBUG
	_Atomic uintptr_t thread; /* lock_thread_self() of the holder, or 0 */
#else
	char unused; /* C has no empty struct */
#endif
};

/* This thread's identity for owner records: never 0, unique among live
 * threads (the address of a thread-local variable). */
uintptr_t lock_thread_self(void);

#ifndef NDEBUG
static inline void owner_take(struct owner *o)
{
	atomic_store_explicit(&o->thread, lock_thread_self(), memory_order_relaxed);
}

static inline void owner_drop(struct owner *o)
{
	atomic_store_explicit(&o->thread, 0, memory_order_relaxed);
}

static inline bool owner_is_me(const struct owner *o)
{
	return atomic_load_explicit(&o->thread, memory_order_relaxed) ==
	       lock_thread_self();
}
#else
static inline void owner_take(struct owner *o) { (void)o; }
static inline void owner_drop(struct owner *o) { (void)o; }
static inline bool owner_is_me(const struct owner *o) { (void)o; return true; }
#endif

/* ------------------------------------------------------------------------
 * Mutexes.
 */
struct lock {
	pthread_mutex_t mutex;
#ifndef NDEBUG
	struct owner owner;
#endif
};

static inline void lock_init(struct lock *l)
{
	pthread_mutex_init(&l->mutex, NULL);
#ifndef NDEBUG
	owner_drop(&l->owner);
#endif
}

static inline void lock_destroy(struct lock *l)
{
	pthread_mutex_destroy(&l->mutex);
}

static inline void lock_acquire(struct lock *l)
{
	pthread_mutex_lock(&l->mutex);
#ifndef NDEBUG
	owner_take(&l->owner);
#endif
}

static inline void lock_release(struct lock *l)
{
#ifndef NDEBUG
	assert(owner_is_me(&l->owner));
	owner_drop(&l->owner);
#endif
	pthread_mutex_unlock(&l->mutex);
}

/* Whether this thread holds l (always true with NDEBUG: only for asserts). */
static inline bool lock_held(const struct lock *l)
{
#ifndef NDEBUG
	return owner_is_me(&l->owner);
#else
	(void)l;
	return true;
#endif
}

#define lock_assert_held(l) assert(lock_held(l))

/* pthread_cond_wait and _timedwait on l (which the caller holds). */
static inline void lock_wait(pthread_cond_t *c, struct lock *l)
{
#ifndef NDEBUG
	assert(owner_is_me(&l->owner));
	owner_drop(&l->owner);
#endif
	pthread_cond_wait(c, &l->mutex);
#ifndef NDEBUG
	owner_take(&l->owner);
#endif
}

static inline int lock_timedwait(pthread_cond_t *c, struct lock *l,
				 const struct timespec *until)
{
	int rc;

#ifndef NDEBUG
	assert(owner_is_me(&l->owner));
	owner_drop(&l->owner);
#endif
	rc = pthread_cond_timedwait(c, &l->mutex, until);
#ifndef NDEBUG
	owner_take(&l->owner);
#endif
	return rc;
}

/* ------------------------------------------------------------------------
 * Read-write locks.
 */
struct rwlock {
	pthread_rwlock_t rwlock;
#ifndef NDEBUG
	struct owner writer;
	atomic_uint readers;
#endif
};

/* attr may be NULL. */
static inline void rwlock_init(struct rwlock *l, const pthread_rwlockattr_t *attr)
{
	pthread_rwlock_init(&l->rwlock, attr);
#ifndef NDEBUG
	owner_drop(&l->writer);
	atomic_init(&l->readers, 0);
#endif
}

static inline void rwlock_destroy(struct rwlock *l)
{
	pthread_rwlock_destroy(&l->rwlock);
}

static inline void rwlock_acquire_shared(struct rwlock *l)
{
	pthread_rwlock_rdlock(&l->rwlock);
#ifndef NDEBUG
	atomic_fetch_add_explicit(&l->readers, 1, memory_order_relaxed);
#endif
}

static inline void rwlock_acquire(struct rwlock *l)
{
	pthread_rwlock_wrlock(&l->rwlock);
#ifndef NDEBUG
	owner_take(&l->writer);
#endif
}

/* Gives up a hold of either kind. */
static inline void rwlock_release(struct rwlock *l)
{
#ifndef NDEBUG
	if (owner_is_me(&l->writer)) {
		owner_drop(&l->writer);
	} else {
		assert(atomic_load_explicit(&l->readers, memory_order_relaxed) > 0);
		atomic_fetch_sub_explicit(&l->readers, 1, memory_order_relaxed);
	}
#endif
	pthread_rwlock_unlock(&l->rwlock);
}

/* This thread holds l exclusively, or some thread holds it shared
 * (invariant 2); always true with NDEBUG. */
static inline bool rwlock_held(const struct rwlock *l)
{
#ifndef NDEBUG
	return owner_is_me(&l->writer) ||
	       atomic_load_explicit(&l->readers, memory_order_relaxed) > 0;
#else
	(void)l;
	return true;
#endif
}

static inline bool rwlock_held_exclusive(const struct rwlock *l)
{
#ifndef NDEBUG
	return owner_is_me(&l->writer);
#else
	(void)l;
	return true;
#endif
}

#define rwlock_assert_held(l) assert(rwlock_held(l))
#define rwlock_assert_held_exclusive(l) assert(rwlock_held_exclusive(l))

#endif
