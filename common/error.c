/*
 * error.c - the thread-local error slot behind atolog_errmsg() and the
 * table behind atolog_strerror(). See error.h for why it is thread-local.
 */
#include "error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "atolog.h"

struct err_slot {
	const void *owner;
	int code;
	char msg[ERR_MSG_SIZE];
};

static _Thread_local struct err_slot err_slot;

void err_begin(const void *owner)
{
	err_slot.owner = owner;
	err_slot.code = 0;
	err_slot.msg[0] = '\0';
}

void err_clear(void)
{
	err_slot.code = 0;
	err_slot.msg[0] = '\0';
}

static void err_vformat(const char *fmt, va_list ap)
{
	vsnprintf(err_slot.msg, sizeof(err_slot.msg), fmt, ap);
}

int err_set(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	err_vformat(fmt, ap);
	va_end(ap);
	err_slot.code = code;
	return code;
}

int err_code_from_errno(int errnum)
{
	/* EFBIG: past a file size limit (RLIMIT_FSIZE), a quota by another
	 * name. */
	if (errnum == ENOSPC || errnum == EDQUOT || errnum == EFBIG)
		return ATOLOG_FULL;
	return errnum > 0 ? errnum : EIO;
}

int err_errno(int errnum, const char *fmt, ...)
{
	va_list ap;
	size_t used;

	va_start(ap, fmt);
	err_vformat(fmt, ap);
	va_end(ap);
	used = strlen(err_slot.msg);
	snprintf(err_slot.msg + used, sizeof(err_slot.msg) - used, ": %s",
		 atolog_strerror(errnum));
	err_slot.code = err_code_from_errno(errnum);
	return err_slot.code;
}

/* out = "<a>: <b>", cut to ERR_MSG_SIZE. */
static void err_join(char out[ERR_MSG_SIZE], const char *a, const char *b)
{
	size_t a_len = strnlen(a, ERR_MSG_SIZE - 3);
	size_t b_len = strnlen(b, ERR_MSG_SIZE - 3 - a_len);

	memcpy(out, a, a_len);
	out[a_len] = ':';
	out[a_len + 1] = ' ';
	memcpy(out + a_len + 2, b, b_len);
	out[a_len + 2 + b_len] = '\0';
}

int err_context(int code, const char *fmt, ...)
{
	char prefix[ERR_MSG_SIZE];
	char old[ERR_MSG_SIZE];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, err_slot.msg, sizeof(old));
	if (old[0] == '\0')
		snprintf(old, sizeof(old), "%s", atolog_strerror(code));
	err_join(err_slot.msg, prefix, old);
	err_slot.code = code;
	return code;
}

const char *err_message(const void *owner)
{
	if (err_slot.owner != owner || err_slot.code == 0)
		return "";
	return err_slot.msg;
}

const char *atolog_strerror(int code)
{
	switch (code) {
	case ATOLOG_OK:
		return "success";
	case ATOLOG_NOTFOUND:
		return "not found";
	case ATOLOG_DONE:
		return "no more interactions";
	case ATOLOG_INVALID:
		return "invalid input";
	case ATOLOG_TOOBIG:
		return "over a size limit";
	case ATOLOG_EXISTS:
		return "already exists";
	case ATOLOG_CORRUPT:
		return "store is corrupt";
	case ATOLOG_LOCKED:
		return "store is locked by another writer";
	case ATOLOG_READONLY:
		return "store is open read-only";
	case ATOLOG_VERSION:
		return "store format is newer than this build";
	case ATOLOG_FULL:
		return "disk full";
	case ATOLOG_FAILED:
		return "store handle failed after an I/O error; reopen it";
	case ATOLOG_TIMEDOUT:
		return "timed out waiting for room in the commit queue";
	default:
		break;
	}
	if (code > 0) {
		/* strerror() may share a buffer between threads; this may not. */
		const char *desc = strerrordesc_np(code);

		if (desc)
			return desc;
	}
	return "unknown error";
}

const char *atolog_errmsg(const atolog_store *store)
{
	return err_message(store);
}
