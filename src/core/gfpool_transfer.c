/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gfpool_transfer.c: holes, progress, write-behind, read-ahead and the
 * upload's data/hole split (see gfpool_transfer.h). No gfapi in here.
 */
#include <string.h>

#include "gfpool_transfer.h"

/* For a callback that failed without saying why (a bug, but not a crash). */
#define TRANSFER_ERROR g_quark_from_static_string("gfpool-transfer-error")

/* ---- holes ----------------------------------------------------------- */

typedef struct {
    guint64 pos;
    guint64 len;
} Hole;

struct _GfpoolHoles {
    GMutex lock;
    GQueue q;
};

GfpoolHoles *
gfpool_holes_new(void)
{
    GfpoolHoles *h = g_new0(GfpoolHoles, 1);
    g_mutex_init(&h->lock);
    g_queue_init(&h->q);
    return h;
}

void
gfpool_holes_free(GfpoolHoles *h)
{
    if (!h)
        return;
    g_queue_clear_full(&h->q, g_free);
    g_mutex_clear(&h->lock);
    g_free(h);
}

void
gfpool_holes_push(GfpoolHoles *h, guint64 pos, guint64 len)
{
    Hole *e = g_new0(Hole, 1);
    e->pos = pos;
    e->len = len;
    g_mutex_lock(&h->lock);
    g_queue_push_tail(&h->q, e);
    g_mutex_unlock(&h->lock);
}

gboolean
gfpool_holes_peek(GfpoolHoles *h, guint64 *pos, guint64 *len)
{
    Hole *e;

    g_mutex_lock(&h->lock);
    if ((e = g_queue_peek_head(&h->q))) {
        *pos = e->pos;
        *len = e->len;
    }
    g_mutex_unlock(&h->lock);
    return e != NULL;
}

void
gfpool_holes_pop(GfpoolHoles *h)
{
    g_mutex_lock(&h->lock);
    g_free(g_queue_pop_head(&h->q));
    g_mutex_unlock(&h->lock);
}

/* ---- progress -------------------------------------------------------- */

struct _GfpoolProgress {
    GMutex lock;
    gboolean waiting_input;     /* on the stream, not on GlusterFS */
    gint64 last;                /* monotonic time of the last step */
    const char *what;           /* the call it waits on GlusterFS for */
    void (*step)(void *opaque);
    void *opaque;
};

GfpoolProgress *
gfpool_progress_new(void (*step)(void *opaque), void *opaque)
{
    GfpoolProgress *p = g_new0(GfpoolProgress, 1);
    g_mutex_init(&p->lock);
    p->last = g_get_monotonic_time();
    p->step = step;
    p->opaque = opaque;
    return p;
}

void
gfpool_progress_free(GfpoolProgress *p)
{
    if (!p)
        return;
    g_mutex_clear(&p->lock);
    g_free(p);
}

gboolean
gfpool_progress_stalled(GfpoolProgress *p, gint64 usec)
{
    return gfpool_progress_pending(p, NULL) > usec;
}

gint64
gfpool_progress_pending(GfpoolProgress *p, const char **what)
{
    gint64 pending;

    g_mutex_lock(&p->lock);
    pending = p->waiting_input ? 0 : g_get_monotonic_time() - p->last;
    if (what)
        *what = p->what ? p->what : "its writes";
    g_mutex_unlock(&p->lock);
    return pending;
}

static void
progress_step(GfpoolProgress *p, int waiting_input, const char *what)
{
    if (!p)
        return;
    g_mutex_lock(&p->lock);
    if (waiting_input >= 0)
        p->waiting_input = waiting_input;
    if (waiting_input >= 0 || what)
        p->what = what;
    p->last = g_get_monotonic_time();
    g_mutex_unlock(&p->lock);
    if (p->step)
        p->step(p->opaque);
}

void
gfpool_progress_step(GfpoolProgress *p, int waiting_input)
{
    progress_step(p, waiting_input, NULL);
}

void
gfpool_progress_begin(GfpoolProgress *p, const char *what)
{
    progress_step(p, FALSE, what);
}

/* ---- write-behind ---------------------------------------------------- */

typedef struct {
    char *buf;              /* NULL ends a writer */
    gsize len;
    guint64 off;
} WriteJob;

struct _GfpoolWriteBehind {
    GfpoolWriteFunc write;
    void *opaque;
    gsize chunk;
    guint slots;
    GfpoolProgress *progress;
    GAsyncQueue *free;      /* buffers of chunk bytes */
    GAsyncQueue *work;      /* WriteJob* */
    GThread **thread;
    guint nthreads;
    gint failed;
    GMutex lock;
    GError *error;          /* the first failure */
    char *slab;
};

static gpointer
write_behind_worker(gpointer opaque)
{
    GfpoolWriteBehind *wb = opaque;
    WriteJob *job;

    while ((job = g_async_queue_pop(wb->work)) && job->buf) {
        g_autoptr(GError) err = NULL;

        if (!g_atomic_int_get(&wb->failed) &&
            !wb->write(wb->opaque, job->off, job->buf, job->len, &err)) {
            g_mutex_lock(&wb->lock);
            if (!wb->error)
                wb->error = err ? g_steal_pointer(&err) :
                    g_error_new(TRANSFER_ERROR, 0,
                                "write at %" G_GUINT64_FORMAT " failed", job->off);
            g_mutex_unlock(&wb->lock);
            g_atomic_int_set(&wb->failed, 1);
        }
        gfpool_progress_step(wb->progress, -1);
        g_async_queue_push(wb->free, job->buf);
        g_free(job);
    }
    g_free(job);
    return NULL;
}

GfpoolWriteBehind *
gfpool_write_behind_new(GfpoolWriteFunc write, void *opaque, gsize chunk, guint slots,
                        GfpoolProgress *progress)
{
    GfpoolWriteBehind *wb = g_new0(GfpoolWriteBehind, 1);

    wb->write = write;
    wb->opaque = opaque;
    wb->chunk = chunk;
    wb->slots = slots;
    wb->progress = progress;
    g_mutex_init(&wb->lock);
    wb->free = g_async_queue_new();
    wb->work = g_async_queue_new();
    wb->slab = g_malloc((gsize)slots * chunk);
    wb->thread = g_new0(GThread *, slots);
    for (guint i = 0; i < slots; i++) {
        g_async_queue_push(wb->free, wb->slab + (gsize)i * chunk);
        if ((wb->thread[wb->nthreads] = g_thread_try_new("gfpool-write", write_behind_worker,
                                                         wb, NULL)))
            wb->nthreads++;
    }
    return wb;
}

static gboolean
write_behind_ok(GfpoolWriteBehind *wb, GError **error)
{
    if (!g_atomic_int_get(&wb->failed))
        return TRUE;
    g_mutex_lock(&wb->lock);
    g_propagate_error(error, g_error_copy(wb->error));
    g_mutex_unlock(&wb->lock);
    return FALSE;
}

gboolean
gfpool_write_behind_submit(GfpoolWriteBehind *wb, const void *buf, gsize len, guint64 off,
                           GError **error)
{
    const char *p = buf;

    /* No thread could start: write here. */
    if (wb->nthreads == 0) {
        if (!write_behind_ok(wb, error))
            return FALSE;
        if (wb->write(wb->opaque, off, buf, len, error))
            return TRUE;
        g_atomic_int_set(&wb->failed, 1);
        g_mutex_lock(&wb->lock);
        wb->error = error && *error ? g_error_copy(*error) :
            g_error_new(TRANSFER_ERROR, 0, "write at %" G_GUINT64_FORMAT " failed",
                        off);
        g_mutex_unlock(&wb->lock);
        return FALSE;
    }
    while (len > 0) {
        WriteJob *job;
        gsize n = MIN(len, wb->chunk);

        if (!write_behind_ok(wb, error))
            return FALSE;
        job = g_new0(WriteJob, 1);
        job->buf = g_async_queue_pop(wb->free);
        memcpy(job->buf, p, n);
        job->len = n;
        job->off = off;
        g_async_queue_push(wb->work, job);
        p += n;
        off += n;
        len -= n;
    }
    return TRUE;
}

gboolean
gfpool_write_behind_drain(GfpoolWriteBehind *wb, GError **error)
{
    g_autofree char **bufs = NULL;

    if (!wb)
        return TRUE;
    /* every buffer back in the free queue: no write in flight */
    if (wb->nthreads > 0) {
        bufs = g_new0(char *, wb->slots);
        for (guint i = 0; i < wb->slots; i++)
            bufs[i] = g_async_queue_pop(wb->free);
        for (guint i = 0; i < wb->slots; i++)
            g_async_queue_push(wb->free, bufs[i]);
    }
    return write_behind_ok(wb, error);
}

gboolean
gfpool_write_behind_finish(GfpoolWriteBehind *wb, GError **error)
{
    gboolean ok;

    if (!wb)
        return TRUE;
    for (guint i = 0; i < wb->nthreads; i++)
        g_async_queue_push(wb->work, g_new0(WriteJob, 1));
    for (guint i = 0; i < wb->nthreads; i++)
        g_thread_join(wb->thread[i]);
    ok = wb->error == NULL;
    if (wb->error)
        g_propagate_error(error, wb->error);
    g_async_queue_unref(wb->free);
    g_async_queue_unref(wb->work);
    g_mutex_clear(&wb->lock);
    g_free(wb->slab);
    g_free(wb->thread);
    g_free(wb);
    return ok;
}

/* ---- read-ahead ------------------------------------------------------ */

typedef struct {
    char *buf;
    gssize n;
    GError *error;
    gboolean ready;
} ReadSlot;

struct _GfpoolReadAhead {
    GfpoolReadFunc read;
    void *opaque;
    guint64 start;
    guint64 len;
    gsize chunk;
    guint slots;
    guint64 nchunks;
    guint64 next_read;      /* next chunk a reader takes */
    guint64 next_take;      /* next chunk the caller takes */
    gboolean stop;
    GMutex lock;
    GCond cond;
    ReadSlot *slot;
    GThread **thread;
    gboolean threaded;      /* else the caller reads each chunk itself */
    char *slab;
};

/* Chunk c into its slot; -1 with error set on failure. */
static gssize
read_ahead_read(GfpoolReadAhead *ra, guint64 c, char *buf, GError **error)
{
    guint64 off = c * ra->chunk;
    gssize n = ra->read(ra->opaque, ra->start + off, buf,
                        (gsize)MIN((guint64)ra->chunk, ra->len - off), error);

    if (n < 0 && error && !*error)
        g_set_error(error, TRANSFER_ERROR, 0,
                    "read at %" G_GUINT64_FORMAT " failed", ra->start + off);
    return n;
}

static gpointer
read_ahead_worker(gpointer opaque)
{
    GfpoolReadAhead *ra = opaque;

    g_mutex_lock(&ra->lock);
    for (;;) {
        GError *err = NULL;
        ReadSlot *s;
        guint64 c;
        gssize n;

        /* A slot is free once the caller has released the chunk that used
         * it last: at most `slots` chunks ahead of the caller. */
        while (!ra->stop && ra->next_read < ra->nchunks &&
               ra->next_read >= ra->next_take + ra->slots)
            g_cond_wait(&ra->cond, &ra->lock);
        if (ra->stop || ra->next_read >= ra->nchunks)
            break;
        c = ra->next_read++;
        s = &ra->slot[c % ra->slots];
        g_mutex_unlock(&ra->lock);

        n = read_ahead_read(ra, c, s->buf, &err);

        g_mutex_lock(&ra->lock);
        s->n = n;
        s->error = err;
        s->ready = TRUE;
        g_cond_broadcast(&ra->cond);
    }
    g_mutex_unlock(&ra->lock);
    return NULL;
}

GfpoolReadAhead *
gfpool_read_ahead_new(GfpoolReadFunc read, void *opaque, guint64 start, guint64 len,
                      gsize chunk, guint slots, char *bufs)
{
    GfpoolReadAhead *ra = g_new0(GfpoolReadAhead, 1);

    ra->read = read;
    ra->opaque = opaque;
    ra->start = start;
    ra->len = len;
    ra->chunk = chunk;
    ra->slots = slots;
    ra->nchunks = (len + chunk - 1) / chunk;
    g_mutex_init(&ra->lock);
    g_cond_init(&ra->cond);
    ra->slot = g_new0(ReadSlot, slots);
    ra->thread = g_new0(GThread *, slots);
    if (bufs) {
        for (guint i = 0; i < slots; i++)
            ra->slot[i].buf = bufs + (gsize)i * chunk;
    } else {
        gsize size = (gsize)MIN((guint64)chunk, MAX(len, 1));
        guint n = (guint)MIN((guint64)slots, MAX(ra->nchunks, 1));

        ra->slab = g_malloc((gsize)n * size);
        for (guint i = 0; i < n; i++)
            ra->slot[i].buf = ra->slab + (gsize)i * size;
    }
    /* One chunk gains nothing from a thread. */
    for (guint i = 0; ra->nchunks > 1 && i < slots && i < ra->nchunks; i++) {
        if ((ra->thread[i] = g_thread_try_new("gfpool-read", read_ahead_worker, ra, NULL)))
            ra->threaded = TRUE;
    }
    return ra;
}

gssize
gfpool_read_ahead_take(GfpoolReadAhead *ra, const char **buf, GError **error)
{
    ReadSlot *s;
    gssize n;

    if (ra->next_take >= ra->nchunks)
        return 0;
    s = &ra->slot[ra->next_take % ra->slots];
    *buf = s->buf;
    if (!ra->threaded) {
        g_autoptr(GError) err = NULL;
        n = read_ahead_read(ra, ra->next_take, s->buf, &err);
        ra->next_take++;
        if (n < 0)
            g_propagate_error(error, g_steal_pointer(&err));
        return n;
    }
    g_mutex_lock(&ra->lock);
    while (!s->ready)
        g_cond_wait(&ra->cond, &ra->lock);
    g_mutex_unlock(&ra->lock);
    if ((n = s->n) < 0) {
        g_propagate_error(error, s->error);
        s->error = NULL;
    }
    return n;
}

void
gfpool_read_ahead_release(GfpoolReadAhead *ra)
{
    if (!ra->threaded)
        return;
    g_mutex_lock(&ra->lock);
    ra->slot[ra->next_take % ra->slots].ready = FALSE;
    ra->next_take++;
    g_cond_broadcast(&ra->cond);
    g_mutex_unlock(&ra->lock);
}

void
gfpool_read_ahead_free(GfpoolReadAhead *ra)
{
    if (!ra)
        return;
    g_mutex_lock(&ra->lock);
    ra->stop = TRUE;
    g_cond_broadcast(&ra->cond);
    g_mutex_unlock(&ra->lock);
    for (guint i = 0; i < ra->slots; i++) {
        if (ra->thread[i])
            g_thread_join(ra->thread[i]);
        g_clear_error(&ra->slot[i].error);
    }
    g_mutex_clear(&ra->lock);
    g_cond_clear(&ra->cond);
    g_free(ra->slot);
    g_free(ra->thread);
    g_free(ra->slab);
    g_free(ra);
}

/* ---- upload split ---------------------------------------------------- */

static gboolean
all_zero(const char *buf, gsize len)
{
    return len == 0 || (buf[0] == 0 && memcmp(buf, buf + 1, len - 1) == 0);
}

/* Data of the stream, with runs of zeros found per block, not per buffer: a
 * 4 MiB buffer that is mostly holes must not be written whole. */
static gboolean
split_data(const char *buf, gsize len, gboolean find_zeros, gsize block,
           const GfpoolSplitOps *ops, void *opaque, GError **error)
{
    if (!find_zeros)
        return len == 0 || ops->data(opaque, buf, len, error);
    while (len > 0) {
        gsize run = MIN(len, block);
        gboolean zero = all_zero(buf, run);

        while (run < len) {
            gsize n = MIN(len - run, block);
            if (all_zero(buf + run, n) != zero)
                break;
            run += n;
        }
        if (zero ? !ops->hole(opaque, run, error) : !ops->data(opaque, buf, run, error))
            return FALSE;
        buf += run;
        len -= run;
    }
    return TRUE;
}

gboolean
gfpool_upload_split(const char *buf, gsize n, guint64 received, GfpoolHoles *holes,
                    gboolean find_zeros, gsize block, const GfpoolSplitOps *ops, void *opaque,
                    GError **error)
{
    gsize used = 0;

    /* Holes are queued before the bytes that follow them are sent, so
     * every hole before or inside buf is known by now. */
    for (;;) {
        guint64 hpos, hlen;
        gsize seg = n - used;

        if (holes && gfpool_holes_peek(holes, &hpos, &hlen)) {
            if (hpos <= received + used) {
                if (!ops->hole(opaque, hlen, error))
                    return FALSE;
                gfpool_holes_pop(holes);
                continue;
            }
            seg = (gsize)MIN((guint64)seg, hpos - (received + used));
        }
        if (seg == 0)
            return TRUE;
        if (!split_data(buf + used, seg, find_zeros, block, ops, opaque, error))
            return FALSE;
        used += seg;
    }
}
