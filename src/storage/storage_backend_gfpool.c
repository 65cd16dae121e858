/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * storage_backend_gfpool.c: the libvirt side of gfpool.
 *
 * With storage_backend_gfpool_stream.c (uploads and downloads), the only
 * files that include libvirt's internal headers. It translates
 * between libvirt's pool/volume definitions and the gfapi core
 * (gfpool_conn.h, gfpool_volume.h) and turns GErrors into libvirt errors;
 * every decision about gluster lives in the core.
 *
 * libvirtd loads this as libvirt_storage_backend_gluster.so in place of
 * Debian's module and calls virStorageBackendGlusterRegister().
 */
#include <config.h>

#include "configmake.h"
#include "internal.h"
#include "storage_backend.h"
#include "storage_util.h"
#include "storage_conf.h"
#include "virstorageobj.h"
#include "virerror.h"
#include "virlog.h"
#include "viruuid.h"

#include "gfpool_pool_xml.h"
#include "gfpool_uri.h"
#include "gfpool_volinfo_xml.h"
#include "gfpool_data.h"
#include "gfpool_find_sources.h"
#include "gfpool_volume.h"
#include "storage_backend_gfpool.h"
#include "storage_backend_gfpool_priv.h"

#define VIR_FROM_THIS VIR_FROM_STORAGE

VIR_LOG_INIT("storage.storage_backend_gfpool");

/* A connect in progress for a pool: callers that need the same pool wait
 * for it (it ends within the core's connect deadline) and share its
 * result, instead of each opening a connection of its own. */
typedef struct {
    gint refs;
    gboolean done;
    GError *err;        /* why it failed, for every waiter */
} GfpoolPoolConnect;

/* The module's state across pools, set up by the register function. */
static struct {
    GMutex lock;
    GCond cond;                 /* a GfpoolPoolConnect is done */
    GHashTable *states;         /* uuid string -> GfpoolPoolState* */
    GHashTable *connects;       /* uuid string -> GfpoolPoolConnect* */
    GHashTable *failed_builds;  /* "uuid/name" of builds that failed (gfpoolBuildVol) */
} gfpoolDriver;

static void
gfpoolPoolConnectUnref(GfpoolPoolConnect *pc)
{
    if (!pc || !g_atomic_int_dec_and_test(&pc->refs))
        return;
    g_clear_error(&pc->err);
    g_free(pc);
}


/* Callbacks that run with the pool unlocked (buildVol, uploads) may still use
 * a state that pool-stop has dropped: the last reference closes it. */
void
gfpoolPoolStateUnref(GfpoolPoolState *state)
{
    if (!state || !g_atomic_int_dec_and_test(&state->refs))
        return;
    gfpool_conn_close(state->conn);
    gfpool_probe_cache_free(state->cache);
    g_free(state->cache_path);
    g_free(state);
}


/*
 * A call that failed because the servers went away (ENOTCONN: killed,
 * restarted, or frozen past the ping-timeout) leaves a connection that gfapi
 * repairs only at its next reconnect tick, up to 3 s after the servers are
 * back: every call until then fails too. The next call opens a fresh
 * connection instead (milliseconds when the servers answer, the connect
 * deadline when they don't).
 */
void
gfpoolPoolStateNoteError(GfpoolPoolState *state, const GError *err)
{
    if (state && err && g_error_matches(err, GFPOOL_ERROR, GFPOOL_ERROR_UNREACHABLE)) {
        g_atomic_int_set(&state->unreachable, 1);
        gfpool_conn_cache_discard(state->conn);
    }
}


static int
gfpoolErrorCode(const GError *err)
{
    if (!err)
        return VIR_ERR_INTERNAL_ERROR;
    if (err->domain == GFPOOL_ERROR) {
        switch ((GfpoolErrorCode)err->code) {
        case GFPOOL_ERROR_EXISTS:
            return VIR_ERR_STORAGE_VOL_EXIST;
        case GFPOOL_ERROR_NOT_FOUND:
            return VIR_ERR_NO_STORAGE_VOL;
        case GFPOOL_ERROR_INVALID:
            return VIR_ERR_INVALID_ARG;
        case GFPOOL_ERROR_TIMEOUT:
            return VIR_ERR_OPERATION_TIMEOUT;
        case GFPOOL_ERROR_UNSUPPORTED:
            return VIR_ERR_OPERATION_UNSUPPORTED;
        case GFPOOL_ERROR_DENIED:
            return VIR_ERR_OPERATION_DENIED;
        case GFPOOL_ERROR_UNREACHABLE:
        case GFPOOL_ERROR_NOT_EMPTY:
        case GFPOOL_ERROR_FAILED:
            break;
        }
    } else if (err->domain == GFPOOL_IMAGE_ERROR) {
        if (err->code == GFPOOL_IMAGE_ERROR_INVALID)
            return VIR_ERR_INVALID_ARG;
        if (err->code == GFPOOL_IMAGE_ERROR_UNSUPPORTED)
            return VIR_ERR_OPERATION_UNSUPPORTED;
    } else if (err->domain == GFPOOL_CONF_ERROR) {
        return VIR_ERR_XML_ERROR;
    }
    return VIR_ERR_OPERATION_FAILED;
}


const char *
gfpoolErrorText(const GError *err)
{
    return gfpool_error_text(err);
}


/* The one way a callback reports a core failure: what failed on which
 * object (the format), then the core's reason, with libvirt's error code
 * derived from the core's. */
void
gfpoolReportError(const GError *err, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *what = NULL;

    va_start(ap, fmt);
    what = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    virReportError(gfpoolErrorCode(err), "%s: %s", what, gfpoolErrorText(err));
}


/* The gfapi core's view of a libvirt pool definition. */
static GfpoolSource *
gfpoolSourceFromDef(virStoragePoolDef *def)
{
    g_autoptr(GfpoolSource) src = gfpool_source_new();
    g_autoptr(GError) err = NULL;
    size_t i;

    src->volume = g_strdup(def->source.name);
    if (def->source.dir && *def->source.dir) {
        /* libvirt accepts '/images/'; the core wants one spelling. */
        g_autofree char *dir = g_strdup(def->source.dir);
        size_t len = strlen(dir);
        while (len > 1 && dir[len - 1] == '/')
            dir[--len] = '\0';
        src->dir = g_steal_pointer(&dir);
    } else {
        src->dir = g_strdup("/");
    }

    if (def->namespaceData) {
        /* Our namespace lists every host with its transport. */
        const GPtrArray *hosts = def->namespaceData;
        for (i = 0; i < hosts->len; i++)
            g_ptr_array_add(src->hosts, gfpool_host_copy(g_ptr_array_index(hosts, i)));
    } else {
        for (i = 0; i < def->source.nhost; i++)
            g_ptr_array_add(src->hosts,
                            gfpool_host_new(GFPOOL_TRANSPORT_TCP, def->source.hosts[i].name,
                                            def->source.hosts[i].port, NULL));
    }

    if (!gfpool_source_validate(src, &err)) {
        gfpoolReportError(err, _("gluster pool '%s'"), def->name);
        return NULL;
    }
    return g_steal_pointer(&src);
}


static char *
gfpoolProbeCachePath(const unsigned char *uuid)
{
    char uuidstr[VIR_UUID_STRING_BUFLEN];
    g_autofree char *dir = NULL;

    virUUIDFormat(uuid, uuidstr);
    if (geteuid() == 0)
        dir = g_build_filename(LOCALSTATEDIR, "cache", "libvirt", "gfpool", NULL);
    else
        dir = g_build_filename(g_get_user_cache_dir(), "libvirt", "gfpool", NULL);
    if (g_mkdir_with_parents(dir, 0700) < 0) {
        VIR_WARN("cannot create probe cache directory '%s': %s", dir, g_strerror(errno));
        return NULL;
    }
    return g_strdup_printf("%s/%s.probe", dir, uuidstr);
}


/*
 * The running state of a pool, connecting first if there is none: after a
 * libvirtd restart, libvirt marks pools that were active as active and
 * refreshes them without calling startPool. A state whose connection is
 * outdated (the volume's settings changed: gfpool_conn_outdated) is
 * replaced once a fresh connection works, and serves until then: between
 * an administrator's `volume set` of TLS or port options and the volume's
 * restart, the old connection works and a new one is refused; after the
 * restart it is the other way round.
 */
GfpoolPoolState *
gfpoolPoolStateGet(virStoragePoolObj *pool)
{
    virStoragePoolDef *def = virStoragePoolObjGetDef(pool);
    char uuidstr[VIR_UUID_STRING_BUFLEN];
    g_autoptr(GfpoolSource) src = NULL;
    g_autoptr(GError) err = NULL;
    GfpoolPoolState *state = NULL;
    GfpoolPoolConnect *pc;
    GfpoolConn *conn = NULL;
    gboolean outdated = FALSE;
    gboolean waited = FALSE;

    if (!(src = gfpoolSourceFromDef(def)))
        return NULL;
    virUUIDFormat(def->uuid, uuidstr);
    g_mutex_lock(&gfpoolDriver.lock);
    for (;;) {
        outdated = FALSE;
        if ((state = g_hash_table_lookup(gfpoolDriver.states, uuidstr))) {
            if (!g_atomic_int_get(&state->unreachable)) {
                /* one attempt per call: after waiting for another caller's
                 * replacement, what the table holds is the answer */
                if (waited || !gfpool_conn_outdated(state->conn)) {
                    g_atomic_int_inc(&state->refs);
                    g_mutex_unlock(&gfpoolDriver.lock);
                    return state;
                }
                outdated = TRUE;
            } else {
                /* callbacks still using it keep their reference */
                g_hash_table_remove(gfpoolDriver.states, uuidstr);
            }
            state = NULL;
        }
        if (!(pc = g_hash_table_lookup(gfpoolDriver.connects, uuidstr)))
            break;
        g_atomic_int_inc(&pc->refs);
        while (!pc->done)
            g_cond_wait(&gfpoolDriver.cond, &gfpoolDriver.lock);
        if (pc->err) {
            g_mutex_unlock(&gfpoolDriver.lock);
            gfpoolReportError(pc->err, _("cannot start gluster pool '%s'"), def->name);
            gfpoolPoolConnectUnref(pc);
            return NULL;
        }
        gfpoolPoolConnectUnref(pc);
        waited = TRUE;
    }
    pc = g_new0(GfpoolPoolConnect, 1);
    pc->refs = 2;   /* the table's and ours */
    g_hash_table_insert(gfpoolDriver.connects, g_strdup(uuidstr), pc);
    g_mutex_unlock(&gfpoolDriver.lock);

    /* Bounded by the core's deadline: a host that never answers costs
     * seconds, not libvirtd. Cached: the guests' disks on this volume use
     * the same connection. */
    if ((conn = gfpool_conn_cache_open(src, 0, &err))) {
        state = g_new0(GfpoolPoolState, 1);
        state->refs = 2;    /* the table's and the caller's */
        state->conn = conn;
        state->cache = gfpool_probe_cache_new();
        if ((state->cache_path = gfpoolProbeCachePath(def->uuid)))
            gfpool_probe_cache_load(state->cache, state->cache_path);
    }

    g_mutex_lock(&gfpoolDriver.lock);
    if (state) {
        g_hash_table_replace(gfpoolDriver.states, g_strdup(uuidstr), state);
    } else if (outdated &&
               (state = g_hash_table_lookup(gfpoolDriver.states, uuidstr)) &&
               !g_atomic_int_get(&state->unreachable)) {
        VIR_INFO("gluster pool '%s': the volume's settings changed, and a connection "
                 "with them failed (%s): the one from before serves meanwhile",
                 def->name, err->message);
        g_atomic_int_inc(&state->refs);
    } else {
        state = NULL;
        if (err)
            pc->err = g_error_copy(err);
    }
    pc->done = TRUE;
    g_hash_table_remove(gfpoolDriver.connects, uuidstr);
    g_cond_broadcast(&gfpoolDriver.cond);
    g_mutex_unlock(&gfpoolDriver.lock);
    gfpoolPoolConnectUnref(pc);

    if (!state)
        gfpoolReportError(err, _("cannot start gluster pool '%s'"), def->name);
    return state;
}


static void
gfpoolPoolStateDrop(virStoragePoolObj *pool)
{
    virStoragePoolDef *def = virStoragePoolObjGetDef(pool);
    char uuidstr[VIR_UUID_STRING_BUFLEN];

    virUUIDFormat(def->uuid, uuidstr);
    g_mutex_lock(&gfpoolDriver.lock);
    g_hash_table_remove(gfpoolDriver.states, uuidstr);
    g_mutex_unlock(&gfpoolDriver.lock);
}


/* ---- pool callbacks ------------------------------------------------- */

static int
gfpoolCheckPool(virStoragePoolObj *pool, bool *active)
{
    /* Trust the state libvirt remembered; the refresh that follows for an
     * active pool connects and fails cleanly if the servers are gone. */
    *active = virStoragePoolObjIsActive(pool);
    return 0;
}


static int
gfpoolStartPool(virStoragePoolObj *pool)
{
    /* A stale state (pool restarted with a new definition) must not be
     * reused: its connection may point at other hosts. */
    g_autoptr(GfpoolPoolState) state = NULL;

    gfpoolPoolStateDrop(pool);
    state = gfpoolPoolStateGet(pool);
    return state ? 0 : -1;
}


static int
gfpoolStopPool(virStoragePoolObj *pool)
{
    /* Returns at once: the connection goes back to the cache, which closes
     * it in the background once idle (GFPOOL_CONN_IDLE_S). */
    gfpoolPoolStateDrop(pool);
    return 0;
}


/*
 * pool-build and pool-delete run on inactive pools: a connection for the one
 * call, finalized in the background like every other.
 */
static GfpoolConn *
gfpoolConnectOnce(virStoragePoolObj *pool, unsigned int flags, const char *verb)
{
    virStoragePoolDef *def = virStoragePoolObjGetDef(pool);
    g_autoptr(GfpoolSource) src = NULL;
    g_autoptr(GError) err = NULL;
    GfpoolConn *conn;

    if (!(src = gfpoolSourceFromDef(def)))
        return NULL;
    if (!(conn = gfpool_conn_open_flags(src, 0, flags, &err))) {
        gfpoolReportError(err, _("cannot %s gluster pool '%s'"), verb, def->name);
        return NULL;
    }
    return conn;
}


static int
gfpoolBuildPool(virStoragePoolObj *pool, unsigned int flags)
{
    virStoragePoolDef *def = virStoragePoolObjGetDef(pool);
    g_autoptr(GfpoolConn) conn = NULL;
    g_autoptr(GError) err = NULL;
    guint32 mode = 0755;

    virCheckFlags(VIR_STORAGE_POOL_BUILD_OVERWRITE |
                  VIR_STORAGE_POOL_BUILD_NO_OVERWRITE, -1);
    VIR_EXCLUSIVE_FLAGS_RET(VIR_STORAGE_POOL_BUILD_OVERWRITE,
                            VIR_STORAGE_POOL_BUILD_NO_OVERWRITE, -1);

    if (def->target.perms.mode != (mode_t)-1)
        mode = def->target.perms.mode;
    if (!(conn = gfpoolConnectOnce(pool, GFPOOL_CONN_OPEN_NO_DIR, "build")))
        return -1;
    /* --overwrite would mean "format over what is there" for disk pools;
     * a directory of images is never wiped by a build. */
    if (!gfpool_pool_build(conn, mode, !!(flags & VIR_STORAGE_POOL_BUILD_NO_OVERWRITE), &err)) {
        gfpoolReportError(err, _("cannot build gluster pool '%s'"), def->name);
        return -1;
    }
    return 0;
}


static int
gfpoolDeletePool(virStoragePoolObj *pool, unsigned int flags)
{
    virStoragePoolDef *def = virStoragePoolObjGetDef(pool);
    g_autoptr(GfpoolConn) conn = NULL;
    g_autoptr(GError) err = NULL;

    virCheckFlags(0, -1);

    if (!(conn = gfpoolConnectOnce(pool, 0, "delete")))
        return -1;
    if (!gfpool_pool_delete(conn, &err)) {
        gfpoolReportError(err, _("cannot delete gluster pool '%s'"), def->name);
        return -1;
    }
    return 0;
}


static void
gfpoolVolDefSetFormat(virStorageVolDef *vol, GfpoolFormat format)
{
    switch (format) {
    case GFPOOL_FORMAT_QCOW2:
        vol->target.format = VIR_STORAGE_FILE_QCOW2;
        break;
    case GFPOOL_FORMAT_QCOW:
        vol->target.format = VIR_STORAGE_FILE_QCOW;
        break;
    case GFPOOL_FORMAT_QED:
        vol->target.format = VIR_STORAGE_FILE_QED;
        break;
    case GFPOOL_FORMAT_VMDK:
        vol->target.format = VIR_STORAGE_FILE_VMDK;
        break;
    case GFPOOL_FORMAT_VDI:
        vol->target.format = VIR_STORAGE_FILE_VDI;
        break;
    case GFPOOL_FORMAT_VPC:
        vol->target.format = VIR_STORAGE_FILE_VPC;
        break;
    case GFPOOL_FORMAT_ISO:
        vol->target.format = VIR_STORAGE_FILE_ISO;
        break;
    case GFPOOL_FORMAT_VHDX:   /* libvirt has no name for it */
    case GFPOOL_FORMAT_RAW:
    case GFPOOL_FORMAT_NONE:
    case GFPOOL_FORMAT_LAST:
        vol->target.format = VIR_STORAGE_FILE_RAW;
        break;
    }
}


static int
gfpoolVolDefSetIdentity(GfpoolConn *conn, virStorageVolDef *vol)
{
    g_free(vol->key);
    g_free(vol->target.path);
    vol->target.path = gfpool_vol_key(conn, vol->name);
    vol->key = g_strdup(vol->target.path);
    return 0;
}


static void
gfpoolVolDefFill(GfpoolConn *conn, virStorageVolDef *vol, const GfpoolVolInfo *info)
{
    if (info->kind == GFPOOL_VOL_DIR) {
        vol->type = VIR_STORAGE_VOL_NETDIR;
        vol->target.format = VIR_STORAGE_FILE_DIR;
    } else {
        vol->type = VIR_STORAGE_VOL_NETWORK;
        gfpoolVolDefSetFormat(vol, info->format);
    }
    vol->target.capacity = info->capacity;
    vol->target.allocation = info->allocation;
    vol->target.physical = info->size;

    if (!vol->target.perms)
        vol->target.perms = g_new0(virStoragePerms, 1);
    vol->target.perms->mode = info->mode;
    vol->target.perms->uid = info->uid;
    vol->target.perms->gid = info->gid;

    /* virStorageVolDefFormat prints <backingStore> only for a target
     * whose type is set. */
    vol->target.type = VIR_STORAGE_TYPE_NETWORK;
    g_clear_pointer(&vol->target.backingStore, virObjectUnref);
    if (info->backing) {
        virStorageSource *bs = virStorageSourceNew();
        bs->type = VIR_STORAGE_TYPE_NETWORK;
        bs->path = gfpool_vol_backing_key(conn, info->backing);
        bs->format = VIR_STORAGE_FILE_RAW;
        if (info->backing_format == GFPOOL_FORMAT_QCOW2)
            bs->format = VIR_STORAGE_FILE_QCOW2;
        vol->target.backingStore = bs;
    }
    gfpoolVolDefSetIdentity(conn, vol);
}


/*
 * Sweeping temp names removes files, and an unlink can wait on the bricks
 * for ever: GlusterFS 10.3's locks translator parks an unlink of a file on
 * which another client holds an inode lock (a CLI that has just published
 * that file still holds AFR's eager lock), and when that client exits
 * instead of unlocking, the disconnect cleanup releases the lock without
 * waking the parked unlink (features/locks, pl_inodelk_client_cleanup).
 * refreshPool runs with the pool locked, so such a wait held every lookup
 * of the pool. The sweep therefore runs in a thread of its own holding a
 * reference on the pool's state; the refresh waits for it only briefly
 * (a sweep normally takes milliseconds, and callers expect the leftovers
 * gone when pool-refresh returns), and while one sweep of a pool is still
 * running no other starts.
 */
#define GFPOOL_SWEEP_WAIT_MS 2000

typedef struct {
    gint refs;
    GMutex lock;
    GCond cond;
    gboolean done;
    GfpoolPoolState *state;
    GfpoolSweep *sweep;
    char *pool_name;
} GfpoolSweepJob;

static void
gfpoolSweepJobUnref(GfpoolSweepJob *job)
{
    if (!g_atomic_int_dec_and_test(&job->refs))
        return;
    gfpool_sweep_free(job->sweep);
    gfpoolPoolStateUnref(job->state);
    g_free(job->pool_name);
    g_mutex_clear(&job->lock);
    g_cond_clear(&job->cond);
    g_free(job);
}

static gpointer
gfpoolSweepThread(gpointer opaque)
{
    GfpoolSweepJob *job = opaque;

    gfpool_sweep_run(job->state->conn, job->sweep);
    g_atomic_int_set(&job->state->sweeping, 0);
    g_mutex_lock(&job->lock);
    job->done = TRUE;
    g_cond_broadcast(&job->cond);
    g_mutex_unlock(&job->lock);
    gfpoolSweepJobUnref(job);
    return NULL;
}

static void
gfpoolSweepInBackground(GfpoolPoolState *state, GfpoolSweep *sweep, const char *pool_name)
{
    gint64 deadline = g_get_monotonic_time() + GFPOOL_SWEEP_WAIT_MS * G_TIME_SPAN_MILLISECOND;
    GfpoolSweepJob *job;
    gboolean done;

    if (!g_atomic_int_compare_and_exchange(&state->sweeping, 0, 1)) {
        VIR_WARN("gluster pool '%s': temporary files not swept: the previous sweep "
                 "is still waiting for GlusterFS", pool_name);
        gfpool_sweep_free(sweep);
        return;
    }
    job = g_new0(GfpoolSweepJob, 1);
    job->refs = 2;
    g_mutex_init(&job->lock);
    g_cond_init(&job->cond);
    g_atomic_int_inc(&state->refs);
    job->state = state;
    job->sweep = sweep;
    job->pool_name = g_strdup(pool_name);
    if (!g_thread_try_new("gfpool-sweep", gfpoolSweepThread, job, NULL)) {
        VIR_WARN("gluster pool '%s': temporary files not swept: cannot start a thread",
                 pool_name);
        g_atomic_int_set(&state->sweeping, 0);
        job->refs = 1;
        gfpoolSweepJobUnref(job);
        return;
    }
    g_mutex_lock(&job->lock);
    while (!job->done && g_cond_wait_until(&job->cond, &job->lock, deadline))
        ;
    done = job->done;
    g_mutex_unlock(&job->lock);
    if (!done)
        VIR_WARN("gluster pool '%s': sweeping temporary files takes more than %d ms; "
                 "it goes on in the background", pool_name, GFPOOL_SWEEP_WAIT_MS);
    gfpoolSweepJobUnref(job);
}


static int
gfpoolRefreshPool(virStoragePoolObj *pool)
{
    virStoragePoolDef *def = virStoragePoolObjGetDef(pool);
    g_autoptr(GPtrArray) vols = NULL;
    g_autoptr(GError) err = NULL;
    g_autoptr(GfpoolPoolState) state = NULL;
    GfpoolSweep *sweep = NULL;
    guint64 capacity, allocation, available;
    guint probed = 0;

    /* libvirt refreshes after every upload, holding the pool's lock (and
     * so every pool-list) for as long as GlusterFS takes to fail us. */
    if (!gfpoolStreamUploadsSettle(def->uuid)) {
        virReportError(VIR_ERR_OPERATION_TIMEOUT,
                       _("cannot refresh gluster pool '%s': GlusterFS is not answering an upload to it"),
                       def->name);
        return -1;
    }
    if (!(state = gfpoolPoolStateGet(pool)))
        return -1;

    if (!(vols = gfpool_pool_refresh_sweep_later(state->conn, state->cache, &sweep, &err))) {
        gfpoolPoolStateNoteError(state, err);
        gfpoolReportError(err, _("cannot refresh gluster pool '%s'"), def->name);
        return -1;
    }

    if (sweep)
        gfpoolSweepInBackground(state, g_steal_pointer(&sweep), def->name);

    for (guint i = 0; i < vols->len; i++) {
        const GfpoolVolInfo *info = g_ptr_array_index(vols, i);
        g_autoptr(virStorageVolDef) vol = g_new0(virStorageVolDef, 1);

        if (info->kind == GFPOOL_VOL_FILE && !info->recorded) {
            probed++;
            VIR_DEBUG("volume '%s' of gluster pool '%s' has no format record: %s probed",
                      info->name, def->name, gfpool_format_to_string(info->format));
        }
        vol->name = g_strdup(info->name);
        gfpoolVolDefFill(state->conn, vol, info);
        if (virStoragePoolObjAddVol(pool, vol) < 0)
            return -1;
        vol = NULL;
    }
    /* libvirt's volume XML has no place to say it: the log does, when it
     * changes (not at every refresh of a pool kept by other tools too). */
    if (probed != state->probed && probed > 0)
        VIR_WARN("gluster pool '%s': %u volumes have no format record; their formats were read "
                 "from their own bytes, which guests may have written (gfpool vol-list --details "
                 "names them, gfpool vol-record records them)", def->name, probed);
    state->probed = probed;

    if (!gfpool_pool_info(state->conn, &capacity, &allocation, &available, &err)) {
        gfpoolPoolStateNoteError(state, err);
        gfpoolReportError(err, _("cannot refresh gluster pool '%s'"), def->name);
        return -1;
    }
    def->capacity = capacity;
    def->allocation = allocation;
    def->available = available;

    if (state->cache_path &&
        !gfpool_probe_cache_save(state->cache, state->cache_path, &err)) {
        VIR_WARN("cannot save probe cache '%s': %s", state->cache_path, gfpoolErrorText(err));
    }
    return 0;
}


/* ---- volume callbacks ----------------------------------------------- */

static int
gfpoolRefreshVol(virStoragePoolObj *pool, virStorageVolDef *vol)
{
    virStoragePoolDef *def = virStoragePoolObjGetDef(pool);
    g_autoptr(GfpoolVolInfo) info = NULL;
    g_autoptr(GError) err = NULL;
    g_autoptr(GfpoolPoolState) state = NULL;

    if (!(state = gfpoolPoolStateGet(pool)))
        return -1;
    if (!(info = gfpool_vol_info(state->conn, vol->name, state->cache, &err))) {
        gfpoolPoolStateNoteError(state, err);
        gfpoolReportError(err, _("cannot refresh volume '%s' of gluster pool '%s'"),
                          vol->name, def->name);
        return -1;
    }
    gfpoolVolDefFill(state->conn, vol, info);
    return 0;
}


/*
 * createVol only names the volume (libvirt then adds it to the pool as
 * "building" and calls buildVol with the pool unlocked): type, key and
 * target path must be set here, also for virt-install's <volume> that has
 * neither type nor format.
 */
static int
gfpoolCreateVol(virStoragePoolObj *pool, virStorageVolDef *vol)
{
    virStoragePoolDef *def = virStoragePoolObjGetDef(pool);
    g_autoptr(GError) err = NULL;
    g_autoptr(GfpoolPoolState) state = NULL;

    if (!gfpool_vol_name_validate(vol->name, strlen(vol->name), &err)) {
        gfpoolReportError(err, _("gluster pool '%s'"), def->name);
        return -1;
    }
    if (vol->target.encryption) {
        virReportError(VIR_ERR_CONFIG_UNSUPPORTED, "%s",
                       _("encrypted volumes are not supported by the gluster backend"));
        return -1;
    }
    if (vol->target.format == VIR_STORAGE_FILE_NONE ||
        vol->target.format == VIR_STORAGE_FILE_AUTO)
        vol->target.format = VIR_STORAGE_FILE_RAW;
    {
        g_autofree char *what = g_strdup_printf("create volume '%s' in gluster pool '%s'",
                                                vol->name, def->name);
        g_autoptr(GError) ferr = NULL;
        const char *fmt = virStorageFileFormatTypeToString(vol->target.format);

        if (!gfpool_format_writable(gfpool_format_from_string(fmt), what, &ferr)) {
            virReportError(VIR_ERR_CONFIG_UNSUPPORTED, "%s", gfpoolErrorText(ferr));
            return -1;
        }
    }
    if (!(state = gfpoolPoolStateGet(pool)))
        return -1;
    vol->type = VIR_STORAGE_VOL_NETWORK;
    return gfpoolVolDefSetIdentity(state->conn, vol);
}


/* The core's creation parameters for a libvirt volume definition. With
 * backing, the backing volume's name is resolved into *backing (the
 * caller's to free), which p->backing points at. */
static int
gfpoolCreateParamsFromDef(const GfpoolSource *src, virStorageVolDef *vol, unsigned int flags,
                          char **backing, GfpoolVolCreateParams *p)
{
    p->name = vol->name;
    p->format = vol->target.format == VIR_STORAGE_FILE_QCOW2 ?
        GFPOOL_FORMAT_QCOW2 : GFPOOL_FORMAT_RAW;
    p->capacity = vol->target.capacity;
    if (flags & VIR_STORAGE_VOL_CREATE_PREALLOC_METADATA)
        p->prealloc = GFPOOL_PREALLOC_METADATA;
    else
        p->prealloc = gfpool_prealloc_for_allocation(p->format, vol->target.capacity,
                                                     vol->target.allocation);
    if (vol->target.clusterSize) {
        if (vol->target.clusterSize > G_MAXUINT32) {
            virReportError(VIR_ERR_CONFIG_UNSUPPORTED,
                           _("volume '%s': cluster size %llu is too large"),
                           vol->name, vol->target.clusterSize);
            return -1;
        }
        p->cluster_size = vol->target.clusterSize;
    }
    if (backing && vol->target.backingStore && vol->target.backingStore->path) {
        const char *b = vol->target.backingStore->path;
        /* The backing volume's name, or its key in this pool (what
         * vol-create-as --backing-vol turns a name into). Anything else is
         * outside the pool: never taken for a pool volume of the same
         * base name. */
        if (!(p->backing = *backing = gfpool_uri_pool_volume_name(src, b))) {
            virReportError(VIR_ERR_INVALID_ARG,
                           _("backing store '%s' of volume '%s' is not a volume of this gluster pool"),
                           b, vol->name);
            return -1;
        }
        switch (vol->target.backingStore->format) {
        case VIR_STORAGE_FILE_QCOW2:
            p->backing_format = GFPOOL_FORMAT_QCOW2;
            break;
        case VIR_STORAGE_FILE_RAW:
            p->backing_format = GFPOOL_FORMAT_RAW;
            break;
        case VIR_STORAGE_FILE_NONE:
        case VIR_STORAGE_FILE_AUTO:
        case VIR_STORAGE_FILE_AUTO_SAFE:
            p->backing_format = GFPOOL_FORMAT_NONE;
            break;
        default:
            virReportError(VIR_ERR_CONFIG_UNSUPPORTED,
                           _("volume '%s': backing format '%s' is not supported "
                             "(raw or qcow2)"), vol->name,
                           virStorageFileFormatTypeToString(vol->target.backingStore->format));
            return -1;
        }
    }
    if (vol->target.perms) {
        if (vol->target.perms->mode != (mode_t)-1)
            p->mode = vol->target.perms->mode;
        if (vol->target.perms->uid != (uid_t)-1)
            p->uid = vol->target.perms->uid;
        if (vol->target.perms->gid != (gid_t)-1)
            p->gid = vol->target.perms->gid;
    }
    return 0;
}


static int
gfpoolBuildVol(virStoragePoolObj *pool, virStorageVolDef *vol, unsigned int flags)
{
    virStoragePoolDef *def = virStoragePoolObjGetDef(pool);
    GfpoolVolCreateParams params = GFPOOL_VOL_CREATE_PARAMS_INIT;
    g_autofree char *backing = NULL;
    g_autoptr(GError) err = NULL;
    g_autoptr(GfpoolPoolState) state = NULL;

    virCheckFlags(VIR_STORAGE_VOL_CREATE_PREALLOC_METADATA, -1);

    if (!(state = gfpoolPoolStateGet(pool)))
        return -1;
    if (gfpoolCreateParamsFromDef(gfpool_conn_source(state->conn), vol, flags, &backing,
                                  &params) < 0)
        return -1;
    /* On failure the core has removed whatever it wrote, as libvirt wants
     * from buildVol. */
    if (!gfpool_vol_create(state->conn, &params, &err)) {
        gfpoolPoolStateNoteError(state, err);
        gfpoolReportError(err, _("cannot create volume '%s' in gluster pool '%s'"),
                          vol->name, def->name);
        VIR_DEBUG("vol-create '%s' in pool '%s' failed", vol->name, def->name);
        return -1;
    }
    return 0;
}


/*
 * libvirt's storageVolCreateXMLFrom calls deleteVol right after a failed
 * buildVolFrom, on the same volume. The core has already removed what the
 * build wrote and never published anything, so a file of that name (if
 * any) is not ours: deleting it would lose someone's data, and failing
 * (ENOENT) would replace the build's error by ours and leave the volume
 * listed. The failed builds are remembered here, by pool UUID and name.
 */
static char *
gfpoolFailedBuildKey(virStoragePoolObj *pool, const char *name)
{
    char uuidstr[VIR_UUID_STRING_BUFLEN];

    virUUIDFormat(virStoragePoolObjGetDef(pool)->uuid, uuidstr);
    return g_strdup_printf("%s/%s", uuidstr, name);
}

static void
gfpoolFailedBuildAdd(virStoragePoolObj *pool, const char *name)
{
    g_mutex_lock(&gfpoolDriver.lock);
    g_hash_table_add(gfpoolDriver.failed_builds, gfpoolFailedBuildKey(pool, name));
    g_mutex_unlock(&gfpoolDriver.lock);
}

static bool
gfpoolFailedBuildTake(virStoragePoolObj *pool, const char *name)
{
    g_autofree char *key = gfpoolFailedBuildKey(pool, name);
    bool found;

    g_mutex_lock(&gfpoolDriver.lock);
    found = g_hash_table_remove(gfpoolDriver.failed_builds, key);
    g_mutex_unlock(&gfpoolDriver.lock);
    return found;
}


/*
 * deleteVol runs with the pool locked, and an unlink is what GlusterFS 10.3
 * can leave unanswered for ever (parked behind another client's inode lock
 * when that client exits meanwhile, see gfpoolSweepInBackground): e.g. a
 * volume deleted just as the CLI or QEMU that wrote it exits. The removal
 * runs in a thread; the callback waits for it up to this long, then fails
 * with a timeout (the removal may still happen later) and the pool is free
 * again. A healthy unlink takes milliseconds; one whose servers went away
 * fails within the ping-timeout.
 */
#define GFPOOL_DELETE_WAIT_S_DEFAULT 30

/* GFPOOL_DELETE_WAIT_S overrides (tests). */
static int
gfpoolDeleteWaitS(void)
{
    const char *env = g_getenv("GFPOOL_DELETE_WAIT_S");
    guint64 v;

    if (env && g_ascii_string_to_unsigned(env, 10, 1, 3600, &v, NULL))
        return (int)v;
    return GFPOOL_DELETE_WAIT_S_DEFAULT;
}

typedef struct {
    gint refs;
    GMutex lock;
    GCond cond;
    gboolean done;
    gboolean ok;
    GError *err;
    GfpoolPoolState *state;
    char *name;
} GfpoolDeleteJob;

static void
gfpoolDeleteJobUnref(GfpoolDeleteJob *job)
{
    if (!g_atomic_int_dec_and_test(&job->refs))
        return;
    g_clear_error(&job->err);
    gfpoolPoolStateUnref(job->state);
    g_free(job->name);
    g_mutex_clear(&job->lock);
    g_cond_clear(&job->cond);
    g_free(job);
}

static gpointer
gfpoolDeleteThread(gpointer opaque)
{
    GfpoolDeleteJob *job = opaque;
    GError *err = NULL;
    gboolean ok = gfpool_vol_delete(job->state->conn, job->name, &err);

    if (!ok)
        gfpoolPoolStateNoteError(job->state, err);
    g_mutex_lock(&job->lock);
    job->ok = ok;
    job->err = err;
    job->done = TRUE;
    g_cond_broadcast(&job->cond);
    g_mutex_unlock(&job->lock);
    gfpoolDeleteJobUnref(job);
    return NULL;
}

static int
gfpoolDeleteVol(virStoragePoolObj *pool, virStorageVolDef *vol, unsigned int flags)
{
    const char *pool_name = virStoragePoolObjGetDef(pool)->name;
    int wait_s = gfpoolDeleteWaitS();
    gint64 deadline = g_get_monotonic_time() + wait_s * G_TIME_SPAN_SECOND;
    g_autoptr(GfpoolPoolState) state = NULL;
    GfpoolDeleteJob *job;
    int ret = -1;

    virCheckFlags(0, -1);

    if (gfpoolFailedBuildTake(pool, vol->name))
        return 0;   /* nothing of ours to delete, see above */

    if (!(state = gfpoolPoolStateGet(pool)))
        return -1;
    job = g_new0(GfpoolDeleteJob, 1);
    job->refs = 2;
    g_mutex_init(&job->lock);
    g_cond_init(&job->cond);
    job->state = g_steal_pointer(&state);
    job->name = g_strdup(vol->name);
    if (!g_thread_try_new("gfpool-delete", gfpoolDeleteThread, job, NULL)) {
        /* no thread: do it here rather than not at all */
        gfpoolDeleteThread(job);
    }

    g_mutex_lock(&job->lock);
    while (!job->done && g_cond_wait_until(&job->cond, &job->lock, deadline))
        ;
    if (!job->done) {
        virReportError(VIR_ERR_OPERATION_TIMEOUT,
                       _("cannot delete volume '%s' of gluster pool '%s': GlusterFS has not "
                         "answered the removal in %d s (it may still happen)"),
                       vol->name, pool_name, wait_s);
    } else if (!job->ok) {
        gfpoolReportError(job->err, _("cannot delete volume '%s' of gluster pool '%s'"),
                          vol->name, pool_name);
    } else {
        ret = 0;
    }
    g_mutex_unlock(&job->lock);
    gfpoolDeleteJobUnref(job);
    return ret;
}


static int
gfpoolBuildVolFrom(virStoragePoolObj *pool, virStorageVolDef *vol,
                   virStorageVolDef *inputvol, unsigned int flags)
{
    GfpoolVolCreateParams params = GFPOOL_VOL_CREATE_PARAMS_INIT;
    g_autoptr(GError) err = NULL;
    g_autoptr(GfpoolPoolState) state = NULL;

    virCheckFlags(VIR_STORAGE_VOL_CREATE_PREALLOC_METADATA |
                  VIR_STORAGE_VOL_CREATE_REFLINK, -1);

    /* Every failure below is followed by libvirt's deleteVol. */
    if (!(state = gfpoolPoolStateGet(pool))) {
        gfpoolFailedBuildAdd(pool, vol->name);
        return -1;
    }
    /* A clone copies its source: a backing store in the new XML has no
     * meaning here (libvirt's own backends ignore it too). vol is libvirt's
     * shallow copy of the pool's definition: read it, never free from it. */
    if (gfpoolCreateParamsFromDef(gfpool_conn_source(state->conn), vol, 0, NULL,
                                  &params) < 0) {
        gfpoolFailedBuildAdd(pool, vol->name);
        return -1;
    }
    if (!gfpool_vol_clone(state->conn, inputvol->name, &params, NULL, &err)) {
        gfpoolPoolStateNoteError(state, err);
        gfpoolReportError(err, _("cannot create volume '%s' from '%s' in gluster pool '%s'"),
                          vol->name, inputvol->name, virStoragePoolObjGetDef(pool)->name);
        gfpoolFailedBuildAdd(pool, vol->name);
        return -1;
    }
    return 0;
}


static int
gfpoolResizeVol(virStoragePoolObj *pool, virStorageVolDef *vol,
                unsigned long long capacity, unsigned int flags)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GfpoolPoolState) state = NULL;
    unsigned int core = 0;

    /* libvirt resolved --delta into an absolute capacity already. */
    virCheckFlags(VIR_STORAGE_VOL_RESIZE_ALLOCATE |
                  VIR_STORAGE_VOL_RESIZE_SHRINK, -1);

    if (flags & VIR_STORAGE_VOL_RESIZE_ALLOCATE)
        core |= GFPOOL_RESIZE_ALLOCATE;
    if (flags & VIR_STORAGE_VOL_RESIZE_SHRINK)
        core |= GFPOOL_RESIZE_SHRINK;
    if (!(state = gfpoolPoolStateGet(pool)))
        return -1;
    if (!gfpool_vol_resize(state->conn, vol->name, capacity, core, &err)) {
        gfpoolPoolStateNoteError(state, err);
        gfpoolReportError(err, _("cannot resize volume '%s' of gluster pool '%s'"),
                          vol->name, virStoragePoolObjGetDef(pool)->name);
        return -1;
    }
    return 0;
}


static int
gfpoolWipeVol(virStoragePoolObj *pool, virStorageVolDef *vol,
              unsigned int algorithm, unsigned int flags)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GfpoolPoolState) state = NULL;
    GfpoolWipeAlgorithm alg;

    virCheckFlags(0, -1);

    switch (algorithm) {
    case VIR_STORAGE_VOL_WIPE_ALG_ZERO:
        alg = GFPOOL_WIPE_ZERO;
        break;
    case VIR_STORAGE_VOL_WIPE_ALG_TRIM:
        alg = GFPOOL_WIPE_TRIM;
        break;
    default:
        /* The multi-pass patterns are about magnetic media under a local
         * disk; on a replicated network file they buy nothing. */
        virReportError(VIR_ERR_OPERATION_UNSUPPORTED,
                       _("wipe algorithm %u is not supported for gluster volumes: "
                         "use 'zero' or 'trim'"), algorithm);
        return -1;
    }
    if (!(state = gfpoolPoolStateGet(pool)))
        return -1;
    if (!gfpool_vol_wipe(state->conn, vol->name, alg, NULL, &err)) {
        gfpoolPoolStateNoteError(state, err);
        gfpoolReportError(err, _("cannot wipe volume '%s' of gluster pool '%s'"),
                          vol->name, virStoragePoolObjGetDef(pool)->name);
        return -1;
    }
    return 0;
}


static char *
gfpoolFindPoolSources(const char *srcSpec, unsigned int flags)
{
    g_autoptr(virStoragePoolSource) source = NULL;
    g_autoptr(GPtrArray) hosts = g_ptr_array_new_with_free_func((GDestroyNotify)gfpool_host_free);
    g_autoptr(GPtrArray) found = NULL;
    g_autoptr(GError) err = NULL;
    size_t i;

    virCheckFlags(0, NULL);

    if (!srcSpec) {
        virReportError(VIR_ERR_INVALID_ARG, "%s",
                       _("a <source> with at least one <host> is required to find gluster pool sources"));
        return NULL;
    }
    if (!(source = virStoragePoolDefParseSourceString(srcSpec, VIR_STORAGE_POOL_GLUSTER)))
        return NULL;
    for (i = 0; i < source->nhost; i++)
        g_ptr_array_add(hosts, gfpool_host_new(GFPOOL_TRANSPORT_TCP, source->hosts[i].name,
                                               source->hosts[i].port, NULL));
    if (!(found = gfpool_find_pool_sources(hosts, 0, &err))) {
        gfpoolReportError(err, _("cannot find gluster pool sources"));
        return NULL;
    }
    if (found->len == 0) {
        virReportError(VIR_ERR_OPERATION_FAILED,
                       _("no gluster volumes found on host '%s'"), source->hosts[0].name);
        return NULL;
    }
    return gfpool_sources_format(found);
}


/* ---- pool XML namespace ------------------------------------------- */

/*
 * libvirt's gluster pool XML has no place for a transport: <gfpool:source>
 * lists the hosts with theirs (see gfpool_pool_xml.h). libvirt parses the
 * rest of the pool and keeps our element across define/dumpxml.
 */
static int
gfpoolNamespaceParse(xmlXPathContextPtr ctxt, void **data)
{
    g_autoptr(GError) err = NULL;
    GPtrArray *hosts;

    if (!(hosts = gfpool_pool_ns_parse(ctxt->node, &err))) {
        gfpoolReportError(err, _("gluster pool XML"));
        return -1;
    }
    if (hosts->len == 0) {
        g_ptr_array_unref(hosts);
        return 0;
    }
    *data = hosts;
    return 0;
}


static void
gfpoolNamespaceFree(void *data)
{
    if (data)
        g_ptr_array_unref(data);
}


static int
gfpoolNamespaceFormat(virBuffer *buf, void *data)
{
    g_autofree char *xml = gfpool_pool_ns_format(data, "");
    g_auto(GStrv) lines = g_strsplit(xml, "\n", -1);

    /* Line by line, so libvirt's buffer indents each one. */
    for (size_t i = 0; lines[i]; i++) {
        if (*lines[i])
            virBufferAsprintf(buf, "%s\n", lines[i]);
    }
    return 0;
}


static virXMLNamespace gfpoolXMLNamespace = {
    .parse = gfpoolNamespaceParse,
    .free = gfpoolNamespaceFree,
    .format = gfpoolNamespaceFormat,
    .prefix = GFPOOL_XML_PREFIX,
    .uri = GFPOOL_XML_NS,
};


virStorageBackend virStorageBackendGfpool = {
    .type = VIR_STORAGE_POOL_GLUSTER,

    .findPoolSources = gfpoolFindPoolSources,
    .checkPool = gfpoolCheckPool,
    .startPool = gfpoolStartPool,
    .stopPool = gfpoolStopPool,
    .buildPool = gfpoolBuildPool,
    .deletePool = gfpoolDeletePool,
    .refreshPool = gfpoolRefreshPool,

    .createVol = gfpoolCreateVol,
    .buildVol = gfpoolBuildVol,
    .refreshVol = gfpoolRefreshVol,
    .deleteVol = gfpoolDeleteVol,
    .buildVolFrom = gfpoolBuildVolFrom,
    .resizeVol = gfpoolResizeVol,
    .wipeVol = gfpoolWipeVol,
    .uploadVol = gfpoolUploadVol,
    .downloadVol = gfpoolDownloadVol,
};


/* The core logs through GLib (domain "gfpool"); inside libvirtd that
 * belongs in libvirt's log, not on the daemon's stderr. */
static void
gfpoolLogHandler(const char *domain G_GNUC_UNUSED, GLogLevelFlags level,
                 const char *message, gpointer opaque G_GNUC_UNUSED)
{
    if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING))
        VIR_WARN("%s", message);
    else if (level & (G_LOG_LEVEL_MESSAGE | G_LOG_LEVEL_INFO))
        VIR_INFO("%s", message);
    else
        VIR_DEBUG("%s", message);
}


int
gfpoolStorageBackendRegister(void)
{
    g_log_set_handler("gfpool", G_LOG_LEVEL_MASK | G_LOG_FLAG_FATAL | G_LOG_FLAG_RECURSION,
                      gfpoolLogHandler, NULL);
    g_mutex_lock(&gfpoolDriver.lock);
    if (!gfpoolDriver.states) {
        gfpoolDriver.states = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                                    (GDestroyNotify)gfpoolPoolStateUnref);
        gfpoolDriver.connects = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                                      (GDestroyNotify)gfpoolPoolConnectUnref);
        gfpoolDriver.failed_builds = g_hash_table_new_full(g_str_hash, g_str_equal,
                                                           g_free, NULL);
    }
    g_mutex_unlock(&gfpoolDriver.lock);
    gfpoolStreamInit();

    if (virStorageBackendRegister(&virStorageBackendGfpool) < 0)
        return -1;
    return virStorageBackendNamespaceInit(VIR_STORAGE_POOL_GLUSTER, &gfpoolXMLNamespace);
}
