/*
 * error.h - how every module reports a failure.
 *
 * A failing function returns an int code (see atolog.h) and, before that,
 * records a human message with err_set(). The message lives in a small
 * thread-local slot, like errno: a store handle is shared by many threads,
 * so a per-handle buffer would be overwritten by a neighbour, and
 * atolog_store_open has no handle yet when it fails. The slot also records
 * which handle the failing call was made on ("owner"), so that
 * atolog_errmsg(store) never shows another handle's message.
 *
 * Lower layers (codec, index) call err_set() without knowing the owner;
 * the public entry points call err_begin(store) first.
 */
#ifndef ATOLOG_COMMON_ERROR_H
#define ATOLOG_COMMON_ERROR_H

#include <stddef.h>

#define ERR_MSG_SIZE 512

/* Marks the start of a public call on owner (may be NULL): clears the slot. */
void err_begin(const void *owner);

/* Forgets a failure that was handled (keeps the owner). */
void err_clear(void);

/* Records code with a printf-style message; returns code. */
int err_set(int code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Records an errno failure as "<message>: <strerror>"; returns the code
 * callers should return (ATOLOG_FULL for ENOSPC/EDQUOT, else errno). */
int err_errno(int errnum, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Prepends "<context>: " to the current message (keeps the code); returns
 * code so it can wrap a failing call: return err_context(rc, "segment %s", n). */
int err_context(int code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* The message of the last failure on owner in this thread, or "". */
const char *err_message(const void *owner);

/* Maps an errno value to the code atolog returns for it. */
int err_code_from_errno(int errnum);

#endif
