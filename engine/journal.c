/*
 * journal.c - what makes a compaction all or nothing across a crash: the
 * COMPACT journal, and the retiring of old segments.
 *
 * A compaction's commit point is the rename of its new segment to its
 * final name (engine/compact.c). Just before, it writes the journal: the
 * new segment's id and nonce (also in that segment's header), the old
 * segments it replaces. The index holds the nonce once swapped. A writer open that finds a journal decides by the new segment
 * alone:
 *
 *   - not there under its name with that nonce: the compaction never
 *     committed; the journal is dropped (the half-written file is a
 *     .seg.tmp, which every open removes). The store is as before.
 *   - there: it committed. The old segments are redundant (every record
 *     kept is in the new one) and are retired; if the index does not hold
 *     the nonce, the swap never reached it, and the index is emptied, to
 *     be rebuilt from the log (it is derived data). The store is as after.
 *
 * Retiring a segment deletes it when no reader has it open (readers hold
 * a shared flock on every segment they open, engine/segment.c) and
 * otherwise renames it to NAME.retired, which is no segment name: it is
 * deleted by a later compaction or open once nobody holds it. Readers that
 * still have an old place in hand find the file gone and look the record
 * up again (engine/read.c).
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
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "engine.h"
#include "error.h"

#define JOURNAL_MAGIC "atolog-compact 1"

static int journal_path(const atolog_store *s, char *out, size_t size)
{
	int n = snprintf(out, size, "%s/%s", s->dir, COMPACT_JOURNAL_FILE);

	return n > 0 && (size_t)n < size ? ATOLOG_OK
					 : err_set(ENAMETOOLONG, "journal path");
}

char *journal_format(const struct compact_journal *j, size_t *len)
{
	size_t cap = 160 + j->n_inputs * 18, n;
	char *buf = malloc(cap);

	if (!buf)
		return NULL;
	n = (size_t)snprintf(buf, cap, "%s\nnonce %016" PRIx64
			     "\noutputs %016" PRIx64 " %zu\ninputs %zu", JOURNAL_MAGIC,
			     j->nonce, j->output, j->n_outputs, j->n_inputs);
	for (size_t i = 0; i < j->n_inputs; i++)
		n += (size_t)snprintf(buf + n, cap - n, " %016" PRIx64, j->inputs[i]);
	n += (size_t)snprintf(buf + n, cap - n, "\nxxh3 %016" PRIx64 "\n",
			      (uint64_t)XXH3_64bits(buf, n));
	*len = n;
	return buf;
}

int journal_write(atolog_store *s, const struct compact_journal *j)
{
	char path[PATH_MAX], tmp[PATH_MAX + 8];
	size_t len;
	char *text = journal_format(j, &len);
	int fd, rc = journal_path(s, path, sizeof(path));

	if (!text)
		return err_set(ENOMEM, "compaction: writing the journal");
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = rc == ATOLOG_OK ? open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)
			     : -1;
	if (rc == ATOLOG_OK && fd < 0)
		rc = err_errno(errno, "compaction: creating %s", tmp);
	if (rc == ATOLOG_OK) {
		int e = io_pwrite_all(&s->compact_io, fd, text, len, 0);

		if (e == 0)
			e = io_fdatasync(&s->compact_io, fd);
		if (e == 0 && rename(tmp, path) != 0)
			e = errno;
		if (e == 0)
			e = io_fsync_dir(&s->compact_io, s->dir);
		if (e != 0)
			rc = err_errno(e, "compaction: writing %s", path);
	}
	if (fd >= 0)
		close(fd);
	if (rc != ATOLOG_OK)
		unlink(tmp);
	free(text);
	return rc;
}

int journal_remove(atolog_store *s)
{
	char path[PATH_MAX];
	int rc = journal_path(s, path, sizeof(path)), e;

	if (rc != ATOLOG_OK)
		return rc;
	if (unlink(path) != 0 && errno != ENOENT)
		return err_errno(errno, "compaction: removing %s", path);
	e = io_fsync_dir(&s->compact_io, s->dir);
	return e ? err_errno(e, "compaction: syncing %s", s->dir) : ATOLOG_OK;
}

static int journal_damaged(const char *why)
{
	return err_set(ATOLOG_CORRUPT, "the compaction journal %s is damaged (%s); "
		       "it was written whole and renamed, so this is not a crash",
		       COMPACT_JOURNAL_FILE, why);
}

/* Fails a parse: nothing kept. */
static int journal_refuse(struct compact_journal *j, int rc)
{
	free(j->inputs);
	memset(j, 0, sizeof(*j));
	return rc;
}

/* The values of the fields from p (after the magic line) to sum. */
static int journal_fields(const char *p, const char *sum,
			  struct compact_journal *j)
{
	size_t n;
	int used;

	if (sscanf(p, "nonce %" SCNx64 "\noutputs %" SCNx64 " %zu\ninputs %zu%n",
		   &j->nonce, &j->output, &j->n_outputs, &n, &used) != 4 ||
	    n > COMPACT_INPUTS_MAX || j->n_outputs == 0 ||
	    j->n_outputs > COMPACT_INPUTS_MAX)
		return journal_damaged("fields");
	j->inputs = calloc(n ? n : 1, sizeof(*j->inputs));
	if (!j->inputs)
		return err_set(ENOMEM, "reading the compaction journal");
	p += used;
	for (j->n_inputs = 0; j->n_inputs < n; j->n_inputs++) {
		if (sscanf(p, " %" SCNx64 "%n", &j->inputs[j->n_inputs], &used) != 1)
			return journal_damaged("inputs");
		p += used;
	}
	return p == sum ? ATOLOG_OK : journal_damaged("inputs");
}

int journal_parse(const char *text, size_t len, struct compact_journal *j)
{
	const char *sum = strstr(text, "\nxxh3 ");
	uint64_t want;
	size_t wlen;
	char *written;
	bool same;
	int rc;

	memset(j, 0, sizeof(*j));
	if (strlen(text) != len || !sum || sscanf(sum, "\nxxh3 %" SCNx64, &want) != 1 ||
	    want != XXH3_64bits(text, (size_t)(sum - text)) ||
	    strncmp(text, JOURNAL_MAGIC "\n", strlen(JOURNAL_MAGIC) + 1) != 0)
		return journal_damaged("checksum or header");
	rc = journal_fields(text + strlen(JOURNAL_MAGIC) + 1, sum, j);
	if (rc != ATOLOG_OK)
		return journal_refuse(j, rc);
	/* Written whole and renamed: one spelling only, the one written, and
	 * nothing after its checksum line (sscanf would also take other
	 * widths, signs and spaces, and ignore what follows). */
	written = journal_format(j, &wlen);
	if (!written)
		return journal_refuse(j, err_set(ENOMEM, "reading the compaction journal"));
	same = wlen == len && memcmp(written, text, len) == 0;
	free(written);
	return same ? ATOLOG_OK : journal_refuse(j, journal_damaged("spelling"));
}

/* ATOLOG_NOTFOUND when there is no journal. */
static int journal_read(atolog_store *s, struct compact_journal *j)
{
	char path[PATH_MAX];
	struct stat st;
	size_t got = 0;
	char *text;
	int fd, rc = journal_path(s, path, sizeof(path));

	memset(j, 0, sizeof(*j));
	if (rc != ATOLOG_OK)
		return rc;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? ATOLOG_NOTFOUND
				       : err_errno(errno, "opening %s", path);
	if (fstat(fd, &st) != 0 || st.st_size > COMPACT_JOURNAL_MAX_BYTES) {
		close(fd);
		return journal_damaged("size");
	}
	text = malloc((size_t)st.st_size + 1);
	rc = text ? io_pread_all(fd, text, (size_t)st.st_size, 0, &got) : ENOMEM;
	close(fd);
	if (rc == 0 && got != (size_t)st.st_size)
		rc = EIO;
	if (rc == 0) {
		text[st.st_size] = '\0';
		rc = journal_parse(text, (size_t)st.st_size, j);
	} else {
		rc = err_errno(rc, "reading %s", path);
	}
	free(text);
	return rc;
}

/* ------------------------------------------------------------------------
 * Retiring old segments.
 */

/* Deletes path if no reader holds it; else, when aside is given, renames
 * it there. *held is set when a reader holds it. */
static int retire_file(const char *path, const char *aside, bool *held)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;

	*held = false;
	if (fd < 0)
		return errno == ENOENT ? 0 : errno;
	if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
		/* Held exclusively across the unlink: a reader that opened it
		 * just now fails its shared lock and looks the record up. */
		if (unlink(path) != 0)
			rc = errno;
	} else if (errno != EWOULDBLOCK) {
		rc = errno;
	} else {
		*held = true;
		if (aside && rename(path, aside) != 0)
			rc = errno;
	}
	close(fd);
	return rc;
}

int compact_retire(atolog_store *s, const uint64_t *ids, size_t n,
		   uint64_t *waiting)
{
	int e = 0;

	for (size_t i = 0; i < n && e == 0; i++) {
		char path[PATH_MAX], aside[PATH_MAX + 16];
		bool held;

		segment_path(path, sizeof(path), s->segment_dir, ids[i]);
		snprintf(aside, sizeof(aside), "%s%s", path, SEGMENT_RETIRED_SUFFIX);
		e = retire_file(path, aside, &held);
		*waiting += held;
		if (e == 0 && i == 0)
			store_compact_step(s, COMPACT_STEP_RETIRED_ONE);
	}
	if (e == 0)
		e = io_fsync_dir(&s->compact_io, s->segment_dir);
	return e ? err_errno(e, "compaction: retiring old segments") : ATOLOG_OK;
}

int compact_collect_retired(atolog_store *s, uint64_t *waiting)
{
	const size_t suffix = strlen(SEGMENT_SUFFIX SEGMENT_RETIRED_SUFFIX);
	DIR *d = opendir(s->segment_dir);
	struct dirent *de;
	int e = 0;

	*waiting = 0;
	if (!d)
		return err_errno(errno, "listing %s", s->segment_dir);
	while (e == 0 && (de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		char path[PATH_MAX];
		bool held;

		if (len <= suffix ||
		    strcmp(de->d_name + len - suffix, SEGMENT_SUFFIX SEGMENT_RETIRED_SUFFIX))
			continue;
		snprintf(path, sizeof(path), "%s/%s", s->segment_dir, de->d_name);
		e = retire_file(path, NULL, &held);
		*waiting += held;
	}
	closedir(d);
	return e ? err_errno(e, "deleting retired segments") : ATOLOG_OK;
}

/* ------------------------------------------------------------------------
 * Finishing an interrupted compaction.
 */

/* Whether new segment id is there with the journal's nonce. Only a file
 * that is not there is absent: any other failure to read its header (EIO,
 * EACCES, damage) is an error, for a committed compaction taken for an
 * uncommitted one would have its outputs removed. */
static int output_present(atolog_store *s, const struct compact_journal *j,
			  uint64_t id, bool *present)
{
	struct segment_header hdr;
	int fd, rc = segment_open(s->segment_dir, id, O_RDONLY, &hdr, &fd);

	*present = false;
	if (rc == ENOENT) {
		err_clear();
		return ATOLOG_OK;
	}
	if (rc != ATOLOG_OK)
		return err_context(rc, "compaction: a new segment of the journal");
	close(fd);
	*present = hdr.compaction == j->nonce;
	return ATOLOG_OK;
}

/* Whether the compaction committed: the last new segment has its name
 * (the commit point: the others' names were made durable before it). All
 * are required, so that an undo cut short after removing the first is
 * never taken for a commit. */
static int outputs_committed(atolog_store *s, const struct compact_journal *j,
			     bool *committed)
{
	int rc = ATOLOG_OK;

	*committed = true;
	for (size_t k = j->n_outputs; rc == ATOLOG_OK && *committed && k-- > 0;)
		rc = output_present(s, j, j->output + k, committed);
	return rc;
}

/* Undoes the renames of an uncommitted compaction, the last first. */
static int outputs_remove(atolog_store *s, const struct compact_journal *j)
{
	int e, rc = ATOLOG_OK;

	for (size_t k = j->n_outputs; rc == ATOLOG_OK && k-- > 0;) {
		char path[PATH_MAX];
		bool present;

		segment_path(path, sizeof(path), s->segment_dir, j->output + k);
		rc = output_present(s, j, j->output + k, &present);
		if (rc == ATOLOG_OK && present && unlink(path) != 0)
			rc = err_errno(errno, "compaction: undoing %s", path);
	}
	if (rc != ATOLOG_OK)
		return rc;
	e = io_fsync_dir(&s->compact_io, s->segment_dir);
	return e ? err_errno(e, "syncing %s", s->segment_dir) : ATOLOG_OK;
}

int compact_finish(atolog_store *s, bool at_open, uint64_t *waiting)
{
	struct compact_journal j;
	uint64_t last = 0;
	int rc = journal_read(s, &j);

	bool committed = false;

	*waiting = 0;
	if (rc == ATOLOG_NOTFOUND)
		return compact_collect_retired(s, waiting);
	if (rc == ATOLOG_OK)
		rc = outputs_committed(s, &j, &committed);
	if (rc == ATOLOG_OK && !committed) {
		rc = outputs_remove(s, &j);
	} else if (rc == ATOLOG_OK) {
		rc = index_last_compaction(s->idx, &last);
		if (rc == ATOLOG_OK && last != j.nonce) {
			/* The swap never reached the index. */
			if (!at_open)
				rc = err_set(ATOLOG_FAILED, "an interrupted compaction "
					     "waits: reopen the store to finish it");
			else
				rc = index_clear(s->idx); /* recovery rebuilds it */
		}
		if (rc == ATOLOG_OK)
			rc = compact_retire(s, j.inputs, j.n_inputs, waiting);
	}
	if (rc == ATOLOG_OK)
		rc = journal_remove(s);
	free(j.inputs);
	if (rc == ATOLOG_OK) {
		uint64_t more;

		rc = compact_collect_retired(s, &more);
		*waiting = more;
	}
	return rc;
}

bool compact_pending(const atolog_store *s)
{
	char path[PATH_MAX];
	struct stat st;

	return journal_path(s, path, sizeof(path)) == ATOLOG_OK &&
	       lstat(path, &st) == 0;
}

/* ------------------------------------------------------------------------
 * What a pending journal means to those who cannot finish it.
 */

int compact_view_read(atolog_store *s, struct compact_view *v)
{
	struct compact_journal j;
	uint64_t last = 0;
	int rc = journal_read(s, &j);

	memset(v, 0, sizeof(*v));
	if (rc == ATOLOG_NOTFOUND)
		return ATOLOG_OK;
	if (rc == ATOLOG_OK)
		rc = outputs_committed(s, &j, &v->committed);
	if (rc == ATOLOG_OK && v->committed)
		rc = index_last_compaction(s->idx, &last);
	if (rc == ATOLOG_OK) {
		v->pending = true;
		v->nonce = j.nonce;
		v->swapped = v->committed && last == j.nonce;
	}
	if (rc == ATOLOG_OK && v->swapped) {
		/* The index describes the new segments: the old are leftovers. */
		v->ignore = j.inputs;
		v->n_ignore = j.n_inputs;
		j.inputs = NULL;
	} else if (rc == ATOLOG_OK) {
		/* The index describes the old: the new are not its yet. */
		v->ignore = calloc(j.n_outputs, sizeof(*v->ignore));
		if (!v->ignore)
			rc = err_set(ENOMEM, "reading the compaction journal");
		for (size_t k = 0; v->ignore && k < j.n_outputs; k++)
			v->ignore[k] = j.output + k;
		v->n_ignore = v->ignore ? j.n_outputs : 0;
	}
	free(j.inputs);
	if (rc != ATOLOG_OK)
		compact_view_free(v);
	return rc;
}

bool compact_view_ignores(const struct compact_view *v, uint64_t id)
{
	for (size_t i = 0; i < v->n_ignore; i++) {
		if (v->ignore[i] == id)
			return true;
	}
	return false;
}

void compact_view_free(struct compact_view *v)
{
	free(v->ignore);
	memset(v, 0, sizeof(*v));
}
