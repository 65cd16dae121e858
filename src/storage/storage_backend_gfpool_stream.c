/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * storage_backend_gfpool_stream.c: vol-upload and vol-download for the
 * module, between libvirt's fd stream and the core's stream functions.
 */
#include <config.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>

#include "internal.h"
#include "virerror.h"
#include "virlog.h"
#include "virfdstream.h"
#include "virthread.h"
#include "datatypes.h"
#include "driver.h"
#include "virevent.h"
#include "virobject.h"

#include "storage_backend_gfpool_priv.h"

#define VIR_FROM_THIS VIR_FROM_STORAGE

VIR_LOG_INIT("storage.storage_backend_gfpool_stream");

/*
 * vol-upload / vol-download.
 *
 * libvirt's fd stream moves the bytes between the client and one end of a
 * pipe; a pump thread moves them between the other end and gfapi. Nothing
 * touches a local file. The storage driver insists on an fd stream (it sets
 * an fd-stream close callback on uploads), but an fd stream over a pipe
 * cannot carry holes: it would lseek the pipe. So the stream keeps
 * libvirt's fd-stream data and event handling, and gets a driver table of
 * ours that forwards everything but the hole calls: holes travel beside the
 * pipe as "after N bytes, a hole of L" records (GfpoolHoles), counted on
 * both sides. Errors of the pump reach the client through the same calls.
 *
 * libvirtd runs the daemon's side of a stream (its sends, its receives and
 * the client's finish) on its event loop, which every client shares, and
 * the finish of an upload has to wait for the pump: the stream is a success
 * only once GlusterFS has every byte. So:
 * - the daemon's stream callback gets an event only when handling it
 *   cannot run into a pump stuck on GlusterFS: an upload's pump must have
 *   made a step within GFPOOL_STALL_USEC (or wait for the stream), a
 *   download's must have said what comes next. Events that come too early
 *   are held back, and handed over when that is true: each step of the
 *   pump kicks a recheck, a timer rechecks every GFPOOL_RECHECK_MS;
 * - the core writes and flushes an upload whenever its stream idles, so
 *   its end finds at most the last few MiB to write;
 * - a finish waits for the pump only while GlusterFS answers: while a
 *   step of the pump is pending, a probe thread asks the pool's volume for
 *   its size over and over (a statfs, which every brick answers, unlike a
 *   stat that md-cache may). A step that is slow on a busy disk or CPU is
 *   not a hung cluster: the probes still come back. The finish fails,
 *   saying the end of the upload was not confirmed and which step was
 *   pending, once neither a step nor a probe has come back for
 *   GFPOOL_FINISH_STALL_USEC, or once one step has been pending for
 *   GFPOOL_FINISH_MAX_USEC however GlusterFS answers: every client of the
 *   daemon waits while the finish does, and no client's keepalive may
 *   miss more than one answer. The pump carries on and logs its outcome.
 */
#define GFPOOL_STALL_USEC (200 * 1000)
#define GFPOOL_FINISH_STALL_USEC (500 * 1000)
#define GFPOOL_FINISH_MAX_USEC (5 * 1000 * 1000)
#define GFPOOL_PROBE_AFTER_USEC (100 * 1000)
#define GFPOOL_RECHECK_MS 20

typedef struct {
    gint refs;
    virStreamPtr stream;        /* not a reference: the entry dies with it */
    GfpoolPoolState *state;     /* a reference */
    char *name;
    unsigned char pooluuid[VIR_UUID_BUFLEN];
    guint64 offset;
    guint64 length;
    int fd;                     /* the pump's end of the pipe */
    bool upload;
    bool sparse;
    GfpoolHoles *holes;
    GfpoolProgress *progress;   /* upload */

    GMutex lock;
    GCond cond;
    int streamfd;               /* the fd stream's end of the pipe */
    guint64 piped;              /* upload: data bytes the client has sent */
    guint64 taken;              /* download: data bytes the daemon has read */
    bool done;                  /* the pump has finished */
    bool closed;                /* the stream was finished or aborted */
    bool abandoned;             /* the finish gave up waiting for it */
    bool probing;               /* a probe of GlusterFS is in flight */
    gint64 probed;              /* when the last probe started */
    gint64 answered;            /* when the last probe came back */
    char *error;                /* its failure, if any */

    /* the daemon's event callback, and the events held back from it */
    virStreamEventCallback cb;
    void *cbopaque;
    virFreeCallback cbff;
    int events;                 /* what the daemon asks for */
    int withheld;
    int timer;                  /* recheck timer while withheld, else -1 */
    bool dispatching;
    bool cbremoved;             /* removed while dispatching: free after */
} GfpoolPump;

static GMutex gfpoolPumpsLock;
static GHashTable *gfpoolPumps;     /* virStreamPtr -> GfpoolPump* */
/* uploads whose finish has begun, until their pump is done; a reference each */
static GPtrArray *gfpoolFinishing;
static GCond gfpoolFinishingCond;
static virStreamDriver gfpoolStreamDriver;
static virStreamDriver *gfpoolFDStreamDriver;  /* libvirt's, which we forward to */

static void gfpoolPumpKick(void *opaque);

static void
gfpoolPumpUnref(GfpoolPump *pump)
{
    if (!pump || !g_atomic_int_dec_and_test(&pump->refs))
        return;
    gfpoolPoolStateUnref(pump->state);
    g_free(pump->name);
    if (pump->fd >= 0)
        close(pump->fd);
    gfpool_holes_free(pump->holes);
    gfpool_progress_free(pump->progress);
    g_free(pump->error);
    g_mutex_clear(&pump->lock);
    g_cond_clear(&pump->cond);
    g_free(pump);
}

static GfpoolPump *
gfpoolPumpFind(virStreamPtr st)
{
    GfpoolPump *pump;

    g_mutex_lock(&gfpoolPumpsLock);
    if ((pump = g_hash_table_lookup(gfpoolPumps, st)))
        g_atomic_int_inc(&pump->refs);
    g_mutex_unlock(&gfpoolPumpsLock);
    return pump;
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(GfpoolPump, gfpoolPumpUnref)

static void
gfpoolPumpForget(virStreamPtr st)
{
    g_mutex_lock(&gfpoolPumpsLock);
    g_hash_table_remove(gfpoolPumps, st);
    g_mutex_unlock(&gfpoolPumpsLock);
}

/* Report the pump's failure on the calling thread; -1. */
static int
gfpoolPumpReportError(GfpoolPump *pump)
{
    virReportError(VIR_ERR_OPERATION_FAILED, "%s",
                   pump->error ? pump->error : _("the stream's transfer thread failed"));
    return -1;
}

static void
gfpoolPumpThread(void *opaque)
{
    GfpoolPump *pump = opaque;
    g_autoptr(GError) err = NULL;
    gboolean ok;

    if (pump->upload)
        ok = gfpool_vol_upload(pump->state->conn, pump->name, pump->offset, pump->length,
                               pump->fd, pump->sparse, pump->holes, pump->progress, NULL,
                               &err);
    else
        ok = gfpool_vol_download(pump->state->conn, pump->name, pump->offset, pump->length,
                                 pump->fd, pump->sparse, pump->holes, NULL, &err);
    /* After a failed upload, take and drop what the client still sends
     * until the stream is finished or aborted: with our end of the pipe
     * closed, the daemon's next write would fail with EPIPE, or its event
     * loop see the pipe's error first, and the client would get "stream had
     * I/O failure" instead of the reason. Where libvirtd survives a failed
     * send (meson.build), the next send returns the reason at once and the
     * client stops; elsewhere finish returns it. */
    if (!ok) {
        VIR_WARN("%s", gfpoolErrorText(err));
        gfpoolPoolStateNoteError(pump->state, err);
        g_mutex_lock(&pump->lock);
        pump->error = g_strdup(gfpoolErrorText(err));
        g_mutex_unlock(&pump->lock);
        gfpoolPumpKick(pump);
    }
    if (!ok && pump->upload) {
        char sink[64 * 1024];
        ssize_t n;

        do {
            n = read(pump->fd, sink, sizeof(sink));
        } while (n > 0 || (n < 0 && errno == EINTR));
    }
    g_mutex_lock(&pump->lock);
    /* A download ends when the daemon has taken every byte and every hole:
     * its event loop turns our end's hangup into an immediate EOF for the
     * client, dropping whatever was still queued (a trailing hole, always). */
    while (ok && !pump->upload && !pump->closed) {
        guint64 hpos, hlen;
        int avail = 0;
        if (ioctl(pump->streamfd, FIONREAD, &avail) < 0)
            avail = 0;
        if (avail == 0 && !gfpool_holes_peek(pump->holes, &hpos, &hlen))
            break;
        g_cond_wait_until(&pump->cond, &pump->lock, g_get_monotonic_time() + 20 * 1000);
    }
    pump->done = true;
    if (pump->abandoned && ok)
        VIR_WARN("the upload to volume '%s' completed after its client was told it failed",
                 pump->name);
    g_cond_broadcast(&pump->cond);
    g_mutex_unlock(&pump->lock);
    gfpoolPumpKick(pump);
    g_mutex_lock(&gfpoolPumpsLock);
    if (g_ptr_array_remove(gfpoolFinishing, pump))
        g_cond_broadcast(&gfpoolFinishingCond);
    g_mutex_unlock(&gfpoolPumpsLock);
    /* Only now, with the outcome recorded, close our end: EOF for a
     * download (checked against the error first), EPIPE for an upload
     * still sending. */
    close(pump->fd);
    pump->fd = -1;
    gfpoolPumpUnref(pump);
}

/* Download: what comes next is data (how much is surely before the next
 * hole) or a hole. With pump->lock held; FALSE when the pump has not said
 * yet. */
static bool
gfpoolPumpNext(GfpoolPump *pump, int *inData, long long *length)
{
    guint64 hpos, hlen;
    int avail = 0;

    /* Bytes in the pipe first, holes second: the pump records a hole
     * before it writes what follows it, so no byte counted here can lie
     * beyond a hole we do not see yet. */
    if (ioctl(pump->streamfd, FIONREAD, &avail) < 0)
        avail = 0;
    if (gfpool_holes_peek(pump->holes, &hpos, &hlen) && hpos == pump->taken) {
        *inData = 0;
        *length = hlen;
    } else if (avail > 0) {
        *inData = 1;
        *length = avail;
        if (gfpool_holes_peek(pump->holes, &hpos, &hlen))
            *length = MIN((guint64)avail, hpos - pump->taken);
    } else if (pump->done) {
        *inData = 0;
        *length = 0;
    } else {
        return false;
    }
    return true;
}

/* Whether the daemon can handle the stream now without waiting on the
 * pump; with pump->lock held. */
static bool
gfpoolPumpReady(GfpoolPump *pump)
{
    int inData;
    long long length;

    if (pump->done || pump->error)
        return true;
    if (pump->upload)
        return !gfpool_progress_stalled(pump->progress, GFPOOL_STALL_USEC);
    return gfpoolPumpNext(pump, &inData, &length);
}

static int
gfpoolStreamInData(virStreamPtr st, int *inData, long long *length)
{
    g_autoptr(GfpoolPump) pump = gfpoolPumpFind(st);
    bool known;

    if (!pump || pump->upload)
        return gfpoolFDStreamDriver->streamInData(st, inData, length);

    g_mutex_lock(&pump->lock);
    if (pump->done && pump->error) {
        g_mutex_unlock(&pump->lock);
        return gfpoolPumpReportError(pump);
    }
    known = gfpoolPumpNext(pump, inData, length);
    g_mutex_unlock(&pump->lock);
    /* The daemon asks only on the events gfpoolPumpDispatch lets through,
     * and those come only once the pump has said. */
    if (!known) {
        virReportError(VIR_ERR_INTERNAL_ERROR, "%s",
                       _("stream asked for data before the volume was read"));
        return -1;
    }
    return 0;
}

static int
gfpoolStreamRecvFlags(virStreamPtr st, char *data, size_t nbytes, unsigned int flags)
{
    g_autoptr(GfpoolPump) pump = gfpoolPumpFind(st);
    int rc;

    rc = gfpoolFDStreamDriver->streamRecvFlags ?
        gfpoolFDStreamDriver->streamRecvFlags(st, data, nbytes, flags) :
        gfpoolFDStreamDriver->streamRecv(st, data, nbytes);
    if (pump && rc > 0) {
        g_mutex_lock(&pump->lock);
        pump->taken += (guint64)rc;
        g_mutex_unlock(&pump->lock);
    } else if (pump && rc == 0 && !pump->upload) {
        bool failed;
        g_mutex_lock(&pump->lock);
        failed = pump->error != NULL;
        g_mutex_unlock(&pump->lock);
        /* EOF because the pump failed, not because the volume ended. */
        if (failed)
            return gfpoolPumpReportError(pump);
    }
    return rc;
}

static int
gfpoolStreamRecv(virStreamPtr st, char *data, size_t nbytes)
{
    return gfpoolStreamRecvFlags(st, data, nbytes, 0);
}

static int
gfpoolStreamSend(virStreamPtr st, const char *data, size_t nbytes)
{
    g_autoptr(GfpoolPump) pump = gfpoolPumpFind(st);
    int rc;

    if (GFPOOL_STREAM_SEND_ERROR_SAFE && pump && pump->upload) {
        /* the pump's failure at once: the client stops sending */
        g_mutex_lock(&pump->lock);
        if (pump->error) {
            g_mutex_unlock(&pump->lock);
            return gfpoolPumpReportError(pump);
        }
        g_mutex_unlock(&pump->lock);
    }
    rc = gfpoolFDStreamDriver->streamSend(st, data, nbytes);
    if (pump && rc > 0) {
        g_mutex_lock(&pump->lock);
        pump->piped += (guint64)rc;
        g_mutex_unlock(&pump->lock);
    }
    return rc;
}

static int
gfpoolStreamSendHole(virStreamPtr st, long long length, unsigned int flags)
{
    g_autoptr(GfpoolPump) pump = gfpoolPumpFind(st);
    guint64 hpos, hlen;

    virCheckFlags(0, -1);
    if (!pump)
        return gfpoolFDStreamDriver->streamSendHole(st, length, flags);
    if (length <= 0) {
        virReportError(VIR_ERR_INVALID_ARG, _("invalid stream hole length %lld"), length);
        return -1;
    }
    g_mutex_lock(&pump->lock);
    if (pump->upload) {
        /* The bytes sent so far are in the pipe: the hole goes after them. */
        gfpool_holes_push(pump->holes, pump->piped, (guint64)length);
    } else if (!gfpool_holes_peek(pump->holes, &hpos, &hlen) || hpos != pump->taken ||
               hlen != (guint64)length) {
        /* Read side: the daemon skips the hole InData announced. */
        g_mutex_unlock(&pump->lock);
        virReportError(VIR_ERR_INTERNAL_ERROR, "%s", _("stream hole out of sequence"));
        return -1;
    } else {
        gfpool_holes_pop(pump->holes);
        g_cond_broadcast(&pump->cond);
    }
    g_mutex_unlock(&pump->lock);
    return 0;
}

static int
gfpoolStreamRecvHole(virStreamPtr st, long long *length, unsigned int flags)
{
    /* Only the remote driver's client side calls this; forward. */
    return gfpoolFDStreamDriver->streamRecvHole(st, length, flags);
}

static void gfpoolPumpRecheck(int timer, void *opaque);

static void
gfpoolPumpUnrefCb(void *opaque)
{
    gfpoolPumpUnref(opaque);
}

static void
gfpoolPumpTimerFree(void *opaque)
{
    GfpoolPump *pump = opaque;

    virObjectUnref(pump->stream);
    gfpoolPumpUnref(pump);
}

/* Hands events to the daemon's callback, or holds them back until the
 * pump is ready. On the event loop. */
static void
gfpoolPumpDispatch(GfpoolPump *pump, virStreamPtr st, int events)
{
    virStreamEventCallback cb;
    void *cbopaque;
    virFreeCallback ff = NULL;

    g_mutex_lock(&pump->lock);
    if (!pump->cb || pump->cbremoved) {
        g_mutex_unlock(&pump->lock);
        return;
    }
    if (!gfpoolPumpReady(pump)) {
        bool mute = pump->timer < 0;

        pump->withheld |= events;
        if (mute) {
            g_atomic_int_inc(&pump->refs);
            virObjectRef(st);
            pump->timer = virEventAddTimeout(GFPOOL_RECHECK_MS, gfpoolPumpRecheck, pump,
                                             gfpoolPumpTimerFree);
            if (pump->timer < 0) {
                virObjectUnref(st);
                g_atomic_int_dec_and_test(&pump->refs);
                mute = false;
            }
        }
        g_mutex_unlock(&pump->lock);
        /* The pipe's readiness is level-triggered: unwatched until the
         * recheck, or the event loop would spin on it. */
        if (mute)
            gfpoolFDStreamDriver->streamEventUpdateCallback(st, 0);
        return;
    }
    events |= pump->withheld;
    pump->withheld = 0;
    cb = pump->cb;
    cbopaque = pump->cbopaque;
    pump->dispatching = true;
    g_mutex_unlock(&pump->lock);

    cb(st, events, cbopaque);

    g_mutex_lock(&pump->lock);
    pump->dispatching = false;
    if (pump->cbremoved) {
        ff = pump->cbff;
        pump->cbff = NULL;
    }
    g_mutex_unlock(&pump->lock);
    if (ff)
        ff(cbopaque);
}

static void
gfpoolPumpRecheck(int timer, void *opaque)
{
    GfpoolPump *pump = opaque;
    int events;
    int withheld;

    g_mutex_lock(&pump->lock);
    if (pump->timer != timer) {
        g_mutex_unlock(&pump->lock);
        return;
    }
    if (pump->cb && !pump->cbremoved && !gfpoolPumpReady(pump)) {
        /* back to the slow beat after a kick that came too early */
        virEventUpdateTimeout(timer, GFPOOL_RECHECK_MS);
        g_mutex_unlock(&pump->lock);
        return;
    }
    virEventRemoveTimeout(timer);
    pump->timer = -1;
    if (!pump->cb || pump->cbremoved) {
        g_mutex_unlock(&pump->lock);
        return;
    }
    events = pump->events;
    withheld = pump->withheld;
    pump->withheld = 0;
    g_mutex_unlock(&pump->lock);

    gfpoolFDStreamDriver->streamEventUpdateCallback(pump->stream, events);
    if (withheld)
        gfpoolPumpDispatch(pump, pump->stream, withheld);
}

/* The pump may be ready now: recheck at once if events are held back.
 * On the pump's thread. */
static void
gfpoolPumpKick(void *opaque)
{
    GfpoolPump *pump = opaque;

    g_mutex_lock(&pump->lock);
    if (pump->timer >= 0)
        virEventUpdateTimeout(pump->timer, 0);
    g_mutex_unlock(&pump->lock);
}

static void
gfpoolStreamEvent(virStreamPtr st, int events, void *opaque)
{
    gfpoolPumpDispatch(opaque, st, events);
}

static int
gfpoolStreamEventAddCallback(virStreamPtr st, int events, virStreamEventCallback cb,
                             void *opaque, virFreeCallback ff)
{
    g_autoptr(GfpoolPump) pump = gfpoolPumpFind(st);

    if (!pump)
        return gfpoolFDStreamDriver->streamEventAddCallback(st, events, cb, opaque, ff);
    g_mutex_lock(&pump->lock);
    if (pump->cb) {
        g_mutex_unlock(&pump->lock);
        virReportError(VIR_ERR_INTERNAL_ERROR, "%s",
                       _("stream already has a callback registered"));
        return -1;
    }
    pump->cb = cb;
    pump->cbopaque = opaque;
    pump->cbff = ff;
    pump->events = events;
    pump->cbremoved = false;
    g_mutex_unlock(&pump->lock);

    g_atomic_int_inc(&pump->refs);
    if (gfpoolFDStreamDriver->streamEventAddCallback(st, events, gfpoolStreamEvent, pump,
                                                    gfpoolPumpUnrefCb) < 0) {
        gfpoolPumpUnref(pump);
        g_mutex_lock(&pump->lock);
        pump->cb = NULL;
        pump->cbff = NULL;
        g_mutex_unlock(&pump->lock);
        return -1;
    }
    return 0;
}

static int
gfpoolStreamEventUpdateCallback(virStreamPtr st, int events)
{
    g_autoptr(GfpoolPump) pump = gfpoolPumpFind(st);
    bool muted;

    if (!pump)
        return gfpoolFDStreamDriver->streamEventUpdateCallback(st, events);
    g_mutex_lock(&pump->lock);
    pump->events = events;
    muted = pump->timer >= 0;
    g_mutex_unlock(&pump->lock);
    /* while muted, the recheck restores what was asked for last */
    if (muted)
        return 0;
    return gfpoolFDStreamDriver->streamEventUpdateCallback(st, events);
}

static int
gfpoolStreamEventRemoveCallback(virStreamPtr st)
{
    g_autoptr(GfpoolPump) pump = gfpoolPumpFind(st);
    virFreeCallback ff = NULL;
    void *opaque = NULL;
    int rc;

    rc = gfpoolFDStreamDriver->streamEventRemoveCallback(st);
    if (!pump)
        return rc;
    g_mutex_lock(&pump->lock);
    if (pump->timer >= 0) {
        virEventRemoveTimeout(pump->timer);
        pump->timer = -1;
    }
    pump->withheld = 0;
    if (pump->dispatching) {
        pump->cbremoved = true;
    } else {
        ff = pump->cbff;
        opaque = pump->cbopaque;
        pump->cbff = NULL;
    }
    pump->cb = NULL;
    g_mutex_unlock(&pump->lock);
    if (ff)
        ff(opaque);
    return rc;
}

static void
gfpoolPumpClosed(virStreamPtr st)
{
    g_autoptr(GfpoolPump) pump = gfpoolPumpFind(st);

    if (!pump)
        return;
    g_mutex_lock(&pump->lock);
    pump->closed = true;
    g_cond_broadcast(&pump->cond);
    g_mutex_unlock(&pump->lock);
}

static void
gfpoolPumpProbeThread(void *opaque)
{
    GfpoolPump *pump = opaque;
    g_autoptr(GError) err = NULL;
    guint64 capacity, allocation, available;
    bool ok;

    ok = gfpool_pool_info(pump->state->conn, &capacity, &allocation, &available, &err);
    g_mutex_lock(&pump->lock);
    pump->probing = false;
    if (ok)
        pump->answered = g_get_monotonic_time();
    g_cond_broadcast(&pump->cond);
    g_mutex_unlock(&pump->lock);
    gfpoolPumpUnref(pump);
}

/* Whether the finish of an upload must give up on its pump; with
 * pump->lock held. Starts a probe of GlusterFS while a step is pending.
 * *what and *pending say which step, and for how long. */
static bool
gfpoolPumpStuck(GfpoolPump *pump, const char **what, gint64 *pending, bool *silent)
{
    gint64 now = g_get_monotonic_time();
    virThread thread;

    *pending = gfpool_progress_pending(pump->progress, what);
    *silent = MIN(*pending, now - pump->answered) > GFPOOL_FINISH_STALL_USEC;
    if (pump->abandoned || *silent || *pending > GFPOOL_FINISH_MAX_USEC)
        return true;
    if (*pending > GFPOOL_PROBE_AFTER_USEC && !pump->probing &&
        now - pump->probed >= GFPOOL_PROBE_AFTER_USEC) {
        pump->probing = true;
        pump->probed = now;
        g_atomic_int_inc(&pump->refs);
        if (virThreadCreateFull(&thread, false, gfpoolPumpProbeThread, "gfpool-probe",
                                false, pump) < 0) {
            /* no probe, no evidence: the stall bound alone decides */
            pump->probing = false;
            g_atomic_int_dec_and_test(&pump->refs);
        }
    }
    return false;
}

/* Upload: the client is done sending; the volume is done only when the pump
 * has written and flushed everything, and only then may we say so. */
static int
gfpoolStreamFinish(virStreamPtr st)
{
    g_autoptr(GfpoolPump) pump = gfpoolPumpFind(st);
    int rc;

    if (pump && !pump->upload)
        gfpoolPumpClosed(st);
    if (pump && pump->upload) {
        /* before the fd stream's finish, which starts libvirt's refresh */
        g_mutex_lock(&gfpoolPumpsLock);
        g_mutex_lock(&pump->lock);
        if (!pump->done) {
            g_atomic_int_inc(&pump->refs);
            g_ptr_array_add(gfpoolFinishing, pump);
        }
        g_mutex_unlock(&pump->lock);
        g_mutex_unlock(&gfpoolPumpsLock);
    }
    rc = gfpoolFDStreamDriver->streamFinish(st);
    if (!pump)
        return rc;
    gfpoolPumpForget(st);
    /* A download's bytes are all out; its failure ended them early (the
     * daemon turns our end's hangup into EOF without reading it), and
     * whatever the pump still does, the client is not waiting for. */
    if (!pump->upload) {
        bool failed;

        g_mutex_lock(&pump->lock);
        failed = pump->error != NULL;
        g_mutex_unlock(&pump->lock);
        return rc == 0 && failed ? gfpoolPumpReportError(pump) : rc;
    }
    g_mutex_lock(&pump->lock);
    while (!pump->done) {
        const char *what;
        gint64 pending;
        bool silent;

        if (gfpoolPumpStuck(pump, &what, &pending, &silent)) {
            pump->abandoned = true;
            g_mutex_unlock(&pump->lock);
            if (silent)
                virReportError(VIR_ERR_OPERATION_TIMEOUT,
                               _("the end of the upload to volume '%s' was not confirmed: GlusterFS stopped answering (%s pending for %.1f s); the volume may hold part of it"),
                               pump->name, what, pending / 1e6);
            else
                virReportError(VIR_ERR_OPERATION_TIMEOUT,
                               _("the end of the upload to volume '%s' was not confirmed: %s was still pending after %.1f s, although GlusterFS answered; the volume may hold part of it"),
                               pump->name, what, pending / 1e6);
            return -1;
        }
        g_cond_wait_until(&pump->cond, &pump->lock, g_get_monotonic_time() + 20 * 1000);
    }
    g_mutex_unlock(&pump->lock);
    if (rc == 0 && pump->error)
        return gfpoolPumpReportError(pump);
    return rc;
}

static int
gfpoolStreamAbort(virStreamPtr st)
{
    int rc;

    gfpoolPumpClosed(st);
    rc = gfpoolFDStreamDriver->streamAbort(st);

    /* The pump sees EOF or EPIPE on its end and stops by itself. */
    gfpoolPumpForget(st);
    return rc;
}

static int
gfpoolVolStream(virStoragePoolObj *pool, virStorageVolDef *vol, virStreamPtr stream,
                unsigned long long offset, unsigned long long length, bool upload,
                bool sparse)
{
    g_autoptr(GError) err = NULL;
    GfpoolPump *pump;
    virThread thread;
    int fds[2];

    /* A range gfapi cannot take fails the call itself, before a stream
     * exists to carry the error. */
    if (!gfpool_range_check(upload ? "upload" : "download", offset, length, &err)) {
        gfpoolReportError(err, _("cannot %s volume '%s'"), upload ? "upload to" : "download from",
                          vol->name);
        return -1;
    }
    if (pipe2(fds, O_CLOEXEC) < 0) {
        virReportSystemError(errno, "%s", _("cannot create a pipe"));
        return -1;
    }
    /* 1 MiB instead of 64 KiB: fewer wake-ups per byte (best effort). */
    ignore_value(fcntl(fds[0], F_SETPIPE_SZ, 1024 * 1024));
    pump = g_new0(GfpoolPump, 1);
    pump->refs = 1;
    g_mutex_init(&pump->lock);
    g_cond_init(&pump->cond);
    pump->fd = upload ? fds[0] : fds[1];
    pump->streamfd = upload ? fds[1] : fds[0];
    if (!(pump->state = gfpoolPoolStateGet(pool))) {
        close(fds[0]);
        close(fds[1]);
        pump->fd = -1;
        gfpoolPumpUnref(pump);
        return -1;
    }
    pump->stream = stream;
    pump->name = g_strdup(vol->name);
    memcpy(pump->pooluuid, virStoragePoolObjGetDef(pool)->uuid, VIR_UUID_BUFLEN);
    pump->offset = offset;
    pump->length = length;
    pump->upload = upload;
    pump->sparse = sparse;
    pump->holes = gfpool_holes_new();
    pump->timer = -1;
    if (upload)
        pump->progress = gfpool_progress_new(gfpoolPumpKick, pump);

    /* The stream owns the other end from here on. */
    if (virFDStreamOpen(stream, upload ? fds[1] : fds[0]) < 0) {
        close(upload ? fds[1] : fds[0]);
        gfpoolPumpUnref(pump);
        return -1;
    }
    g_mutex_lock(&gfpoolPumpsLock);
    if (!gfpoolFDStreamDriver) {
        /* Every fd stream shares libvirt's one driver table. */
        gfpoolFDStreamDriver = stream->driver;
        gfpoolStreamDriver = *stream->driver;
        gfpoolStreamDriver.streamSend = gfpoolStreamSend;
        gfpoolStreamDriver.streamRecv = gfpoolStreamRecv;
        gfpoolStreamDriver.streamRecvFlags = gfpoolStreamRecvFlags;
        gfpoolStreamDriver.streamSendHole = gfpoolStreamSendHole;
        gfpoolStreamDriver.streamRecvHole = gfpoolStreamRecvHole;
        gfpoolStreamDriver.streamInData = gfpoolStreamInData;
        gfpoolStreamDriver.streamFinish = gfpoolStreamFinish;
        gfpoolStreamDriver.streamAbort = gfpoolStreamAbort;
        gfpoolStreamDriver.streamEventAddCallback = gfpoolStreamEventAddCallback;
        gfpoolStreamDriver.streamEventUpdateCallback = gfpoolStreamEventUpdateCallback;
        gfpoolStreamDriver.streamEventRemoveCallback = gfpoolStreamEventRemoveCallback;
    }
    g_hash_table_replace(gfpoolPumps, stream, pump);
    g_atomic_int_inc(&pump->refs);      /* the table's; the first is the thread's */
    g_mutex_unlock(&gfpoolPumpsLock);
    stream->driver = &gfpoolStreamDriver;

    if (virThreadCreateFull(&thread, false, gfpoolPumpThread,
                            upload ? "gfpool-upload" : "gfpool-download", false, pump) < 0) {
        virReportSystemError(errno, "%s", _("cannot start the stream thread"));
        gfpoolPumpForget(stream);
        gfpoolPumpUnref(pump);
        return -1;
    }
    return 0;
}

int
gfpoolUploadVol(virStoragePoolObj *pool, virStorageVolDef *vol, virStreamPtr stream,
                unsigned long long offset, unsigned long long length, unsigned int flags)
{
    virCheckFlags(VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM, -1);
    return gfpoolVolStream(pool, vol, stream, offset, length, true,
                           !!(flags & VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM));
}

int
gfpoolDownloadVol(virStoragePoolObj *pool, virStorageVolDef *vol, virStreamPtr stream,
                  unsigned long long offset, unsigned long long length, unsigned int flags)
{
    virCheckFlags(VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM, -1);
    return gfpoolVolStream(pool, vol, stream, offset, length, false,
                           !!(flags & VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM));
}


/* Waits for the uploads to this pool whose end is being written; false
 * when one of them is stuck on GlusterFS. */
bool
gfpoolStreamUploadsSettle(const unsigned char *uuid)
{
    bool settled = true;

    g_mutex_lock(&gfpoolPumpsLock);
    for (;;) {
        bool waiting = false;

        for (guint i = 0; i < gfpoolFinishing->len && settled; i++) {
            GfpoolPump *pump = g_ptr_array_index(gfpoolFinishing, i);
            const char *what;
            gint64 pending;
            bool silent;

            if (memcmp(pump->pooluuid, uuid, VIR_UUID_BUFLEN) != 0)
                continue;
            waiting = true;
            /* the finish's verdict: a refresh gives up where it does */
            g_mutex_lock(&pump->lock);
            settled = !gfpoolPumpStuck(pump, &what, &pending, &silent);
            g_mutex_unlock(&pump->lock);
        }
        if (!waiting || !settled)
            break;
        g_cond_wait_until(&gfpoolFinishingCond, &gfpoolPumpsLock,
                          g_get_monotonic_time() + 50 * 1000);
    }
    g_mutex_unlock(&gfpoolPumpsLock);
    return settled;
}

void
gfpoolStreamInit(void)
{
    g_mutex_lock(&gfpoolPumpsLock);
    if (!gfpoolPumps) {
        gfpoolPumps = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL,
                                            (GDestroyNotify)gfpoolPumpUnref);
        gfpoolFinishing = g_ptr_array_new_with_free_func((GDestroyNotify)gfpoolPumpUnref);
    }
    g_mutex_unlock(&gfpoolPumpsLock);
}
