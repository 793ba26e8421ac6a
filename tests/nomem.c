/*
 * nomem.c - the failing allocator behind nomem.h: the __wrap_ functions
 * that `-Wl,--wrap=NAME` routes every call of NAME in a test executable
 * (libatolog.a's objects included) to.
 *
 * What is wrapped is what atolog calls that can fail for want of memory
 * and says so: the C library's allocators (malloc, calloc, realloc,
 * strdup, strndup, asprintf, vasprintf, getline, open_memstream, fopen,
 * opendir), and the entry points of the third-party libraries whose own
 * allocations happen inside shared objects that --wrap cannot reach, each
 * failed the way that library fails it: LMDB's (mdb_env_create,
 * mdb_txn_begin, mdb_cursor_open, mdb_put, mdb_del, mdb_txn_commit,
 * mdb_env_copy2: ENOMEM; a failed put or delete leaves the transaction
 * unusable, as LMDB's MDB_TXN_ERROR does, so that only abort undoes it),
 * msgpack-c's decoder (msgpack_unpack_next: MSGPACK_UNPACK_NOMEM_ERROR)
 * and yajl's handles (yajl_alloc, yajl_gen_alloc: NULL). Not reachable:
 * the allocations yajl makes inside a parse or a generation (yajl 2.1
 * does not check them: its buffer and lexer write through the pointer
 * malloc returned), and those of the C library's own internals (stdio
 * buffers, nftw, qsort).
 *
 * The state is process-wide (atomics) with one thread-local flag marking
 * the thread that armed; nothing here allocates.
 */
#include "nomem.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#if defined(__SANITIZE_ADDRESS__)
#define NOMEM_STACKS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NOMEM_STACKS 1
#endif
#endif
#ifdef NOMEM_STACKS
#include <sanitizer/common_interface_defs.h>
#endif

#include <lmdb.h>
#include <msgpack.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_parse.h>

static atomic_bool nomem_armed;
static atomic_int nomem_scope_now;
static atomic_long nomem_target_n = -1;
static atomic_long nomem_count;
static atomic_bool nomem_hit;
static _Thread_local bool nomem_is_armer;
static _Thread_local bool nomem_held;
/* The write transaction a failed mdb_put or mdb_del left unusable. */
static MDB_txn *_Atomic nomem_poisoned;

void nomem_arm(long target, enum nomem_scope scope)
{
	atomic_store(&nomem_armed, false);
	nomem_is_armer = true;
	atomic_store(&nomem_scope_now, scope);
	atomic_store(&nomem_target_n, target);
	atomic_store(&nomem_count, 0);
	atomic_store(&nomem_hit, false);
	atomic_store(&nomem_armed, true);
}

long nomem_disarm(bool *fired)
{
	atomic_store(&nomem_armed, false);
	nomem_is_armer = false;
	if (fired)
		*fired = atomic_load(&nomem_hit);
	return atomic_load(&nomem_count);
}

bool nomem_fired(void)
{
	return atomic_load(&nomem_hit);
}

long nomem_target(void)
{
	return atomic_load(&nomem_target_n);
}

void nomem_fire(void)
{
	atomic_store(&nomem_hit, true);
}

void nomem_count_add(long n)
{
	atomic_fetch_add(&nomem_count, n);
}

void nomem_hold(bool hold)
{
	nomem_held = hold;
}

/* Counts this call if it is in scope; true if it is the one to fail. */
static bool nomem_fail_now(void)
{
	long n;

	if (!atomic_load(&nomem_armed) || nomem_held)
		return false;
	if (nomem_is_armer != (atomic_load(&nomem_scope_now) == NOMEM_SELF))
		return false;
	n = atomic_fetch_add(&nomem_count, 1);
	if (n != atomic_load(&nomem_target_n))
		return false;
	atomic_store(&nomem_hit, true);
#ifdef NOMEM_STACKS
	/* Debugging: where the failure is (ATOLOG_NOMEM_STACK=1). */
	if (getenv("ATOLOG_NOMEM_STACK"))
		__sanitizer_print_stack_trace();
#endif
	return true;
}

/* ------------------------------------------------------------------------
 * The C library.
 */

void *__real_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t size);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
int __real_vasprintf(char **out, const char *fmt, va_list ap);
ssize_t __real_getline(char **line, size_t *cap, FILE *f);
FILE *__real_open_memstream(char **buf, size_t *len);
FILE *__real_fopen(const char *path, const char *mode);
DIR *__real_opendir(const char *path);

void *__wrap_malloc(size_t size);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t size);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);
int __wrap_asprintf(char **out, const char *fmt, ...);
int __wrap_vasprintf(char **out, const char *fmt, va_list ap);
ssize_t __wrap_getline(char **line, size_t *cap, FILE *f);
FILE *__wrap_open_memstream(char **buf, size_t *len);
FILE *__wrap_fopen(const char *path, const char *mode);
DIR *__wrap_opendir(const char *path);

#define NOMEM_FAIL_NULL()                                                    \
	do {                                                                 \
		if (nomem_fail_now()) {                                      \
			errno = ENOMEM;                                      \
			return NULL;                                         \
		}                                                            \
	} while (0)

void *__wrap_malloc(size_t size)
{
	NOMEM_FAIL_NULL();
	return __real_malloc(size);
}

void *__wrap_calloc(size_t n, size_t size)
{
	NOMEM_FAIL_NULL();
	return __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t size)
{
	NOMEM_FAIL_NULL(); /* p stays allocated, as realloc leaves it */
	return __real_realloc(p, size);
}

char *__wrap_strdup(const char *s)
{
	NOMEM_FAIL_NULL();
	return __real_strdup(s);
}

char *__wrap_strndup(const char *s, size_t n)
{
	NOMEM_FAIL_NULL();
	return __real_strndup(s, n);
}

int __wrap_vasprintf(char **out, const char *fmt, va_list ap)
{
	if (nomem_fail_now()) {
		errno = ENOMEM;
		return -1;
	}
	return __real_vasprintf(out, fmt, ap);
}

int __wrap_asprintf(char **out, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = __wrap_vasprintf(out, fmt, ap);
	va_end(ap);
	return n;
}

ssize_t __wrap_getline(char **line, size_t *cap, FILE *f)
{
	if (nomem_fail_now()) {
		errno = ENOMEM;
		return -1;
	}
	return __real_getline(line, cap, f);
}

FILE *__wrap_open_memstream(char **buf, size_t *len)
{
	NOMEM_FAIL_NULL();
	return __real_open_memstream(buf, len);
}

FILE *__wrap_fopen(const char *path, const char *mode)
{
	NOMEM_FAIL_NULL();
	return __real_fopen(path, mode);
}

DIR *__wrap_opendir(const char *path)
{
	NOMEM_FAIL_NULL();
	return __real_opendir(path);
}

/* ------------------------------------------------------------------------
 * LMDB: ENOMEM, as its own mallocs report it.
 */

int __real_mdb_env_create(MDB_env **env);
int __real_mdb_txn_begin(MDB_env *env, MDB_txn *parent, unsigned flags,
			 MDB_txn **txn);
int __real_mdb_cursor_open(MDB_txn *txn, MDB_dbi dbi, MDB_cursor **cursor);
int __real_mdb_put(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data,
		   unsigned flags);
int __real_mdb_del(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data);
int __real_mdb_txn_commit(MDB_txn *txn);
void __real_mdb_txn_abort(MDB_txn *txn);
int __real_mdb_env_copy2(MDB_env *env, const char *path, unsigned flags);

int __wrap_mdb_env_create(MDB_env **env);
int __wrap_mdb_txn_begin(MDB_env *env, MDB_txn *parent, unsigned flags,
			 MDB_txn **txn);
int __wrap_mdb_cursor_open(MDB_txn *txn, MDB_dbi dbi, MDB_cursor **cursor);
int __wrap_mdb_put(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data,
		   unsigned flags);
int __wrap_mdb_del(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data);
int __wrap_mdb_txn_commit(MDB_txn *txn);
void __wrap_mdb_txn_abort(MDB_txn *txn);
int __wrap_mdb_env_copy2(MDB_env *env, const char *path, unsigned flags);

int __wrap_mdb_env_create(MDB_env **env)
{
	return nomem_fail_now() ? ENOMEM : __real_mdb_env_create(env);
}

int __wrap_mdb_txn_begin(MDB_env *env, MDB_txn *parent, unsigned flags,
			 MDB_txn **txn)
{
	return nomem_fail_now() ? ENOMEM
				: __real_mdb_txn_begin(env, parent, flags, txn);
}

int __wrap_mdb_cursor_open(MDB_txn *txn, MDB_dbi dbi, MDB_cursor **cursor)
{
	return nomem_fail_now() ? ENOMEM : __real_mdb_cursor_open(txn, dbi, cursor);
}

int __wrap_mdb_put(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data,
		   unsigned flags)
{
	if (atomic_load(&nomem_poisoned) == txn)
		return MDB_BAD_TXN;
	if (nomem_fail_now()) {
		atomic_store(&nomem_poisoned, txn);
		return ENOMEM;
	}
	return __real_mdb_put(txn, dbi, key, data, flags);
}

int __wrap_mdb_del(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data)
{
	if (atomic_load(&nomem_poisoned) == txn)
		return MDB_BAD_TXN;
	if (nomem_fail_now()) {
		atomic_store(&nomem_poisoned, txn);
		return ENOMEM;
	}
	return __real_mdb_del(txn, dbi, key, data);
}

/* A failed commit aborts the transaction, as LMDB's does. */
int __wrap_mdb_txn_commit(MDB_txn *txn)
{
	int rc = 0;

	if (atomic_load(&nomem_poisoned) == txn)
		rc = MDB_BAD_TXN;
	else if (nomem_fail_now())
		rc = ENOMEM;
	if (rc == 0)
		return __real_mdb_txn_commit(txn);
	atomic_store(&nomem_poisoned, NULL);
	__real_mdb_txn_abort(txn);
	return rc;
}

void __wrap_mdb_txn_abort(MDB_txn *txn)
{
	MDB_txn *expect = txn;

	atomic_compare_exchange_strong(&nomem_poisoned, &expect, NULL);
	__real_mdb_txn_abort(txn);
}

int __wrap_mdb_env_copy2(MDB_env *env, const char *path, unsigned flags)
{
	return nomem_fail_now() ? ENOMEM : __real_mdb_env_copy2(env, path, flags);
}

/* ------------------------------------------------------------------------
 * msgpack-c and yajl.
 */

msgpack_unpack_return __real_msgpack_unpack_next(msgpack_unpacked *result,
						 const char *data, size_t len,
						 size_t *off);
msgpack_unpack_return __wrap_msgpack_unpack_next(msgpack_unpacked *result,
						 const char *data, size_t len,
						 size_t *off);
yajl_handle __real_yajl_alloc(const yajl_callbacks *cb, yajl_alloc_funcs *afs,
			      void *ctx);
yajl_handle __wrap_yajl_alloc(const yajl_callbacks *cb, yajl_alloc_funcs *afs,
			      void *ctx);
yajl_gen __real_yajl_gen_alloc(const yajl_alloc_funcs *afs);
yajl_gen __wrap_yajl_gen_alloc(const yajl_alloc_funcs *afs);

/* As a failed zone allocation: the old result released, nothing kept. */
msgpack_unpack_return __wrap_msgpack_unpack_next(msgpack_unpacked *result,
						 const char *data, size_t len,
						 size_t *off)
{
	if (nomem_fail_now()) {
		msgpack_unpacked_destroy(result);
		return MSGPACK_UNPACK_NOMEM_ERROR;
	}
	return __real_msgpack_unpack_next(result, data, len, off);
}

yajl_handle __wrap_yajl_alloc(const yajl_callbacks *cb, yajl_alloc_funcs *afs,
			      void *ctx)
{
	return nomem_fail_now() ? NULL : __real_yajl_alloc(cb, afs, ctx);
}

yajl_gen __wrap_yajl_gen_alloc(const yajl_alloc_funcs *afs)
{
	return nomem_fail_now() ? NULL : __real_yajl_gen_alloc(afs);
}
