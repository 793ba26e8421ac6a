/*
 * io.c - the write-side system calls, behind a shim that tests use to
 * inject failures (a full disk, an I/O error, a short write) at an exact
 * call, the way SQLite's test VFS and Redis's AOF tests do. In production
 * the countdowns are negative and the shim is a straight pass-through.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "engine.h"
#include "error.h"

void io_faults_init(struct io_faults *f)
{
	for (int i = 0; i < IO_OP_COUNT; i++) {
		f->countdown[i] = -1;
		f->err[i] = 0;
	}
	f->short_write = false;
}

/* Consumes one call of op; returns the errno to fail with, or 0. */
static int io_fault_due(struct io_faults *f, enum io_op op)
{
	if (!f || f->countdown[op] < 0)
		return 0;
	if (f->countdown[op]-- > 0)
		return 0;
	return f->err[op];
}

int io_pwritev_all(struct io_faults *f, int fd, struct iovec *iov, int n_iov,
		   uint64_t total, uint64_t off)
{
	int fault = io_fault_due(f, IO_WRITE);

	if (fault) {
		/* Half of the bytes land, then the error: a torn group. */
		uint64_t left = f->short_write ? total / 2 : 0;

		for (int i = 0; i < n_iov && left > 0; i++) {
			size_t n = iov[i].iov_len < left ? iov[i].iov_len : (size_t)left;

			if (pwrite(fd, iov[i].iov_base, n, (off_t)off) < 0)
				return errno;
			off += n;
			left -= n;
		}
		return fault;
	}
	while (n_iov > 0) {
		ssize_t n = pwritev(fd, iov, n_iov, (off_t)off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno;
		}
		if (n == 0)
			return EIO;
		off += (uint64_t)n;
		/* Step over what was written; a partial iovec is trimmed. */
		while (n_iov > 0 && (size_t)n >= iov->iov_len) {
			n -= (ssize_t)iov->iov_len;
			iov++;
			n_iov--;
		}
		if (n_iov > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + n;
			iov->iov_len -= (size_t)n;
		}
	}
	return 0;
}

int io_pwrite_all(struct io_faults *f, int fd, const void *buf, size_t len,
		  uint64_t off)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };

	return io_pwritev_all(f, fd, &iov, 1, len, off);
}

int io_fdatasync(struct io_faults *f, int fd)
{
	int fault = io_fault_due(f, IO_SYNC);

	if (fault)
		return fault;
	return fdatasync(fd) == 0 ? 0 : errno;
}

int io_ftruncate(struct io_faults *f, int fd, uint64_t len)
{
	int fault = io_fault_due(f, IO_TRUNCATE);

	if (fault)
		return fault;
	return ftruncate(fd, (off_t)len) == 0 ? 0 : errno;
}

int io_fsync_dir(struct io_faults *f, const char *dir)
{
	int fd, rc = io_fault_due(f, IO_SYNC);

	if (rc)
		return rc;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno;
	rc = fsync(fd) == 0 ? 0 : errno;
	close(fd);
	return rc;
}

int io_pread_all(int fd, void *buf, size_t len, uint64_t off, size_t *got)
{
	uint8_t *p = buf;

	*got = 0;
	while (*got < len) {
		ssize_t n = pread(fd, p + *got, len - *got, (off_t)(off + *got));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno;
		}
		if (n == 0)
			break; /* end of file: the caller decides what it means */
		*got += (size_t)n;
	}
	return 0;
}
