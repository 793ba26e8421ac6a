/*
 * writers.c - the threads that wait on the store for captures.
 *
 * A write blocks until the store acknowledges it: an fdatasync away in
 * sync always. Done in a polling thread, that wait would stall every
 * other connection of the thread, and the number of writes that can share
 * one group commit would be the number of polling threads, whichever
 * connections they happened to get. So a capture is parsed and checked in
 * its polling thread, its connection is suspended, and the write itself
 * runs on one of these threads; when it returns the connection is
 * resumed and the polling thread answers. The pool's size is how many
 * captures can be in one group commit.
 *
 * Invariant: a request is on the queue, or being written, only while its
 * connection is suspended; writers_stop runs every queued write (and so
 * resumes every connection) before it returns, which libmicrohttpd needs
 * before MHD_stop_daemon. A polling thread may still take a capture after
 * that (a keep-alive client between the drain and the daemon's stop):
 * writers_submit refuses it without suspending, and the lock it takes
 * lives until writers_free, after the daemon has stopped.
 */
#include <errno.h>
#include <stdlib.h>

#include "server.h"

static void *writer_main(void *arg)
{
	struct writers *w = arg;

	pthread_mutex_lock(&w->lock);
	for (;;) {
		struct request *req = w->head;

		if (!req) {
			if (w->stopping)
				break;
			pthread_cond_wait(&w->cond, &w->lock);
			continue;
		}
		w->head = req->job_next;
		if (!w->head)
			w->tail = NULL;
		pthread_mutex_unlock(&w->lock);
		req->work(req);
		req->work_done = true;
		MHD_resume_connection(req->conn);
		pthread_mutex_lock(&w->lock);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

int writers_start(struct writers *w, unsigned n)
{
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	w->ready = true;
	w->threads = calloc(n, sizeof(*w->threads));
	if (!w->threads)
		return ENOMEM;
	for (w->n = 0; w->n < n; w->n++) {
		if (pthread_create(&w->threads[w->n], NULL, writer_main, w) != 0) {
			writers_stop(w);
			return EAGAIN;
		}
	}
	return 0;
}

void writers_stop(struct writers *w)
{
	if (!w->ready)
		return;
	pthread_mutex_lock(&w->lock);
	w->stopping = true;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	for (unsigned i = 0; i < w->n; i++)
		pthread_join(w->threads[i], NULL);
	w->n = 0;
}

void writers_free(struct writers *w)
{
	if (!w->ready)
		return;
	writers_stop(w);
	free(w->threads);
	w->threads = NULL;
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
	w->ready = false;
}

bool writers_submit(struct writers *w, struct request *req,
		    struct MHD_Connection *conn, void (*work)(struct request *req))
{
	req->conn = conn;
	req->work = work;
	req->work_done = false;
	req->job_next = NULL;
	pthread_mutex_lock(&w->lock);
	if (w->stopping) {
		pthread_mutex_unlock(&w->lock);
		return false;
	}
	/* Suspended before it is queued, so the resume always comes after;
	 * under the lock, so writers_stop cannot miss it. */
	MHD_suspend_connection(conn);
	if (w->tail)
		w->tail->job_next = req;
	else
		w->head = req;
	w->tail = req;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
	return true;
}
