/*
 * segment.c - segment files: naming, creation, appending, reading one
 * frame back, and the descriptor cache readers share.
 *
 * A segment is segments/<id as 16 hex digits>.seg: a 64-byte header
 * (codec/frame.c) followed by frames. Creation is atomic: the header is
 * written under a temporary name, synced, renamed into place and the
 * directory synced, so a crash never leaves a segment with a torn header.
 * Appends go at the end of valid data; a failed append cuts the file back
 * to where it was, so a write error never leaves half a frame behind for
 * the next append to bury.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "error.h"

void segment_path(char *out, size_t size, const char *dir, uint64_t id)
{
	snprintf(out, size, "%s/%016" PRIx64 SEGMENT_SUFFIX, dir, id);
}

/* Parses "<16 hex digits>.seg"; false for any other name. */
static bool segment_name_id(const char *name, uint64_t *id)
{
	uint64_t v = 0;

	if (strlen(name) != SEGMENT_NAME_LEN ||
	    strcmp(name + 16, SEGMENT_SUFFIX) != 0)
		return false;
	for (int i = 0; i < 16; i++) {
		char c = name[i];
		int d = c >= '0' && c <= '9' ? c - '0'
			: c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;

		if (d < 0)
			return false;
		v = v << 4 | (uint64_t)d;
	}
	*id = v;
	return true;
}

static int id_compare(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int segment_list(const char *dir, uint64_t **ids_out, size_t *n_out)
{
	uint64_t *ids = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	DIR *d = opendir(dir);

	if (!d)
		return err_errno(errno, "listing %s", dir);
	while ((de = readdir(d)) != NULL) {
		uint64_t id;

		if (!segment_name_id(de->d_name, &id))
			continue;
		if (n == cap) {
			uint64_t *grown = realloc(ids, (cap ? cap * 2 : 16) * sizeof(*ids));

			if (!grown) {
				free(ids);
				closedir(d);
				return err_set(ENOMEM, "listing %s", dir);
			}
			ids = grown;
			cap = cap ? cap * 2 : 16;
		}
		ids[n++] = id;
	}
	closedir(d);
	if (n > 0)
		qsort(ids, n, sizeof(*ids), id_compare);
	*ids_out = ids;
	*n_out = n;
	return ATOLOG_OK;
}

int segment_create_tmp(struct io_faults *io, const char *dir, uint64_t id,
		       const uint8_t store_id[UUID_SIZE], struct segment *out)
{
	struct segment_header h = { .major = SEGMENT_FORMAT_MAJOR,
				    .minor = SEGMENT_FORMAT_MINOR,
				    .segment_id = id,
				    .created_at = time_now_us() };
	uint8_t header[SEGMENT_HEADER_SIZE];
	char path[PATH_MAX], tmp[PATH_MAX + 8];
	int fd, rc;

	memcpy(h.store_id, store_id, UUID_SIZE);
	segment_header_write(header, &h);
	segment_path(path, sizeof(path), dir, id);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return err_errno(errno, "creating %s", tmp);
	rc = io_pwrite_all(io, fd, header, sizeof(header), 0);
	if (rc == 0)
		rc = io_fdatasync(io, fd);
	if (rc != 0) {
		close(fd);
		unlink(tmp);
		return err_errno(rc, "creating segment %016" PRIx64, id);
	}
	out->id = id;
	out->fd = fd;
	out->size = SEGMENT_HEADER_SIZE;
	return ATOLOG_OK;
}

int segment_create_publish(struct io_faults *io, const char *dir,
			   const struct segment *seg)
{
	char path[PATH_MAX], tmp[PATH_MAX + 8];
	int rc = 0;

	segment_path(path, sizeof(path), dir, seg->id);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (rename(tmp, path) != 0)
		rc = errno;
	if (rc == 0)
		rc = io_fsync_dir(io, dir);
	return rc ? err_errno(rc, "creating segment %016" PRIx64, seg->id)
		  : ATOLOG_OK;
}

void segment_create_abandon(const char *dir, struct segment *seg)
{
	char path[PATH_MAX], tmp[PATH_MAX + 8];

	segment_path(path, sizeof(path), dir, seg->id);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	close(seg->fd);
	seg->fd = -1;
	unlink(tmp); /* a leftover is removed by the next writer open */
}

int segment_create(struct io_faults *io, const char *dir, uint64_t id,
		   const uint8_t store_id[UUID_SIZE], struct segment *out)
{
	int rc = segment_create_tmp(io, dir, id, store_id, out);

	if (rc == ATOLOG_OK) {
		rc = segment_create_publish(io, dir, out);
		if (rc != ATOLOG_OK)
			segment_create_abandon(dir, out);
	}
	return rc;
}

int segment_open(const char *dir, uint64_t id, int flags,
		 struct segment_header *hdr, int *fd_out)
{
	uint8_t header[SEGMENT_HEADER_SIZE];
	char path[PATH_MAX];
	size_t got;
	int fd, rc;

	segment_path(path, sizeof(path), dir, id);
	fd = open(path, flags | O_CLOEXEC);
	if (fd < 0)
		return err_errno(errno, "opening %s", path);
	rc = io_pread_all(fd, header, sizeof(header), 0, &got);
	if (rc != 0) {
		close(fd);
		return err_errno(rc, "reading the header of %s", path);
	}
	rc = got < sizeof(header) ? err_set(ATOLOG_CORRUPT, "header is short")
				  : segment_header_read(header, hdr);
	if (rc == ATOLOG_OK && hdr->segment_id != id)
		rc = err_set(ATOLOG_CORRUPT, "header names segment %016" PRIx64,
			     hdr->segment_id);
	if (rc != ATOLOG_OK) {
		close(fd);
		return err_context(rc, "segment %016" PRIx64, id);
	}
	*fd_out = fd;
	return ATOLOG_OK;
}

/* After a failed append of rc: leave no partial frame behind, since the
 * next append would bury it. Cutting back also drops the reserved tail;
 * the segment is simply no longer pre-allocated. */
static int segment_cut_back(struct io_faults *io, struct segment *seg, int rc,
			    bool *failed)
{
	int cut = io_ftruncate(io, seg->fd, seg->size);

	if (cut != 0) {
		*failed = true;
		return err_errno(cut, "segment %016" PRIx64
				 ": cutting back a failed append at offset %" PRIu64,
				 seg->id, seg->size);
	}
	return err_errno(rc, "segment %016" PRIx64 ": appending at offset %" PRIu64,
			 seg->id, seg->size);
}

int segment_append(struct io_faults *io, struct segment *seg, const void *buf,
		   size_t len, bool *failed)
{
	int rc = io_pwrite_all(io, seg->fd, buf, len, seg->size);

	return rc == 0 ? ATOLOG_OK : segment_cut_back(io, seg, rc, failed);
}

int segment_appendv(struct io_faults *io, struct segment *seg,
		    struct iovec *iov, int n_iov, uint64_t total, bool *failed)
{
	int rc = io_pwritev_all(io, seg->fd, iov, n_iov, total, seg->size);

	return rc == 0 ? ATOLOG_OK : segment_cut_back(io, seg, rc, failed);
}

void segment_preallocate(struct segment *seg, uint64_t size)
{
	/* Errors only lose the speed-up: ENOSPC shows up at the write. But a
	 * reservation that fails part way keeps what it got (ext4 stretches
	 * the file over the blocks it found): that is given back, or a
	 * nearly full disk loses its last room to a segment holding a few
	 * frames. Only the reserved tail is cut: seg->size is where the next
	 * frame goes. */
	if (size > seg->size && fallocate(seg->fd, 0, 0, (off_t)size) != 0)
		(void)ftruncate(seg->fd, (off_t)seg->size);
}

int segment_seal(struct io_faults *io, struct segment *seg)
{
	int rc = io_ftruncate(io, seg->fd, seg->size);

	if (rc == 0)
		rc = io_fdatasync(io, seg->fd);
	if (rc != 0)
		return err_errno(rc, "segment %016" PRIx64 ": sealing", seg->id);
	return ATOLOG_OK;
}

int segment_read_frame(int fd, uint64_t segment_id, uint64_t offset,
		       uint32_t length, uint8_t kind, uint8_t **frame_out)
{
	struct frame_header h;
	uint8_t *frame;
	size_t got;
	int rc;

	if (length < FRAME_HEADER_SIZE ||
	    length > FRAME_HEADER_SIZE + FRAME_PAYLOAD_MAX)
		return err_set(ATOLOG_CORRUPT,
			       "segment %016" PRIx64 " offset %" PRIu64
			       ": index gives an impossible frame length %u",
			       segment_id, offset, length);
	frame = malloc(length);
	if (!frame)
		return err_set(ENOMEM, "reading a frame");
	rc = io_pread_all(fd, frame, length, offset, &got);
	if (rc != 0) {
		free(frame);
		return err_errno(rc, "segment %016" PRIx64 " offset %" PRIu64,
				 segment_id, offset);
	}
	if (got < length || !frame_header_read(frame, &h) || h.kind != kind ||
	    h.payload_len + FRAME_HEADER_SIZE != length ||
	    !frame_checksum_ok(frame, h.payload_len)) {
		free(frame);
		return err_set(ATOLOG_CORRUPT,
			       "segment %016" PRIx64 " offset %" PRIu64
			       ": frame %s", segment_id, offset,
			       got < length ? "is cut short"
					    : "fails its checksum or header check");
	}
	*frame_out = frame;
	return ATOLOG_OK;
}

/* ------------------------------------------------------------------------
 * The descriptor cache. Readers borrow a descriptor (refs > 0) for the
 * length of one pread; only idle descriptors are evicted, least recently
 * used first. When every slot is busy a reader gets a private descriptor
 * that is closed when it is put back.
 */

int segment_fds_init(struct segment_fds *c, const char *dir)
{
	memset(c, 0, sizeof(*c));
	c->dir = strdup(dir);
	if (!c->dir)
		return err_set(ENOMEM, "opening the store");
	lock_init(&c->lock);
	return ATOLOG_OK;
}

void segment_fds_destroy(struct segment_fds *c)
{
	if (!c->dir)
		return;
	for (size_t i = 0; i < c->n; i++)
		close(c->slots[i].fd);
	lock_destroy(&c->lock);
	free(c->dir);
	c->dir = NULL;
}

static int segment_fds_open(struct segment_fds *c, uint64_t id, int *fd)
{
	char path[PATH_MAX];

	segment_path(path, sizeof(path), c->dir, id);
	*fd = open(path, O_RDONLY | O_CLOEXEC);
	if (*fd < 0)
		return err_errno(errno, "opening segment %016" PRIx64, id);
	/* A shared lock tells a compactor that a reader has it open; the
	 * compactor holds it exclusively only while it deletes the file, so
	 * one that cannot be had is a file on its way out: gone. */
	if (flock(*fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
		close(*fd);
		return err_errno(ENOENT, "opening segment %016" PRIx64, id);
	}
	/* Other failures (a file system without flock) leave it unlocked:
	 * readable, but a compaction may then delete it while it is open,
	 * which POSIX allows; the reader keeps its data. */
	return ATOLOG_OK;
}

/* A slot to (re)use: a free one, else the least recently used idle one
 * (with the lock held). */
static struct segment_fd *segment_fds_victim(struct segment_fds *c)
{
	struct segment_fd *victim = NULL;

	lock_assert_held(&c->lock);
	if (c->n < SEGMENT_FDS_MAX)
		return &c->slots[c->n++];
	for (size_t i = 0; i < c->n; i++) {
		struct segment_fd *s = &c->slots[i];

		if (s->refs == 0 && (!victim || s->last_use < victim->last_use))
			victim = s;
	}
	if (victim)
		close(victim->fd);
	return victim;
}

/* Closes slot i and moves the last slot into its place (with the lock
 * held). */
static void slot_drop(struct segment_fds *c, size_t i)
{
	lock_assert_held(&c->lock);
	close(c->slots[i].fd);
	c->slots[i] = c->slots[--c->n];
}

void segment_fds_flush(struct segment_fds *c)
{
	lock_acquire(&c->lock);
	for (size_t i = c->n; i-- > 0;) {
		if (c->slots[i].refs == 0)
			slot_drop(c, i);
		else
			c->slots[i].stale = true; /* closed when put back */
	}
	lock_release(&c->lock);
}

void segment_fds_refresh(struct segment_fds *c, struct index *idx)
{
	int64_t now = time_mono_us() / 1000;
	uint64_t count;
	bool due;

	lock_acquire(&c->lock);
	due = c->n > 0 && now - c->looked_at_ms >= FDS_REFRESH_MS;
	if (due)
		c->looked_at_ms = now;
	lock_release(&c->lock);
	/* A failed look changes nothing: descriptors stay valid, only kept. */
	if (!due || index_last_compaction(idx, &count) != ATOLOG_OK)
		return;
	lock_acquire(&c->lock);
	due = count != c->compaction;
	c->compaction = count;
	lock_release(&c->lock);
	if (due)
		segment_fds_flush(c);
}

int segment_fds_get(struct segment_fds *c, uint64_t id, int *fd)
{
	struct segment_fd *slot;
	int rc;

	lock_acquire(&c->lock);
	for (size_t i = 0; i < c->n; i++) {
		if (c->slots[i].id == id && !c->slots[i].stale) {
			c->slots[i].refs++;
			c->slots[i].last_use = ++c->clock;
			*fd = c->slots[i].fd;
			lock_release(&c->lock);
			return ATOLOG_OK;
		}
	}
	rc = segment_fds_open(c, id, fd);
	if (rc == ATOLOG_OK && (slot = segment_fds_victim(c)) != NULL) {
		slot->id = id;
		slot->fd = *fd;
		slot->refs = 1;
		slot->stale = false;
		slot->last_use = ++c->clock;
	}
	lock_release(&c->lock);
	return rc;
}

void segment_fds_put(struct segment_fds *c, uint64_t id, int fd)
{
	lock_acquire(&c->lock);
	for (size_t i = 0; i < c->n; i++) {
		if (c->slots[i].id == id && c->slots[i].fd == fd) {
			if (--c->slots[i].refs == 0 && c->slots[i].stale)
				slot_drop(c, i);
			lock_release(&c->lock);
			return;
		}
	}
	lock_release(&c->lock);
	close(fd); /* a private descriptor */
}
