/*
 * lock.c - the thread identity behind the owner records of lock.h.
 *
 * The address of a thread-local variable: never 0, and no two live
 * threads share it. pthread_t would do as well but is opaque, and an
 * atomic of an opaque type is not portable.
 */
#include "lock.h"

uintptr_t lock_thread_self(void)
{
	static _Thread_local char self;

	return (uintptr_t)&self;
}
