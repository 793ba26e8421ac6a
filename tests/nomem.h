/*
 * nomem.h - a test-only allocator that fails the Nth allocation.
 *
 * It is never in the library: test executables are linked with the
 * linker's --wrap for every allocating call atolog makes (NOMEM_WRAP_FLAGS
 * in tests/CMakeLists.txt), so that each call from libatolog.a goes
 * through nomem.c, which counts it and, once armed, fails the chosen one
 * as the real function fails for want of memory (NULL with errno ENOMEM,
 * ENOMEM from LMDB, MSGPACK_UNPACK_NOMEM_ERROR from msgpack-c). Every
 * other call goes on to the real function (ASan's allocator, under the
 * sanitizers).
 *
 * Counting is deterministic where it matters: only calls made between
 * nomem_arm and nomem_disarm count, and only from the threads the scope
 * names, so the writer's index thread does not shift the count of a
 * caller's operation (NOMEM_SELF), and it can be aimed at on its own
 * (NOMEM_OTHERS). One call fails, the target; those after it succeed.
 */
#ifndef ATOLOG_TEST_NOMEM_H
#define ATOLOG_TEST_NOMEM_H

#include <stdbool.h>

enum nomem_scope {
	NOMEM_SELF = 0,   /* calls from the thread that armed */
	NOMEM_OTHERS = 1, /* calls from every other thread (the index thread) */
};

/* Counts from zero; the call numbered target fails (target < 0: none,
 * only counted). Called by the thread NOMEM_SELF is about. */
void nomem_arm(long target, enum nomem_scope scope);

/* Stops counting; returns how many calls were counted since nomem_arm,
 * and *fired (may be NULL) whether the target was among them. */
long nomem_disarm(bool *fired);

/* Whether the target has failed since nomem_arm (still armed). */
bool nomem_fired(void);

/* The target armed; and, for a failure injected elsewhere (a child
 * process running atolog_nomem with it), marks it as reached. */
long nomem_target(void);
void nomem_fire(void);
/* Adds n calls counted elsewhere (that child) to the count. */
void nomem_count_add(long n);

/* While held, the calling thread's calls are neither counted nor failed
 * (a test's own work inside a callback of the operation it runs). */
void nomem_hold(bool hold);

#endif
