/*
 * gfpool_conn.c: connect to a gluster volume with a deadline, finalize in the
 * background.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "gfpool_conn.h"

G_DEFINE_QUARK(gfpool-error-quark, gfpool_error)

struct _GfpoolConn {
    glfs_t *fs;
    GfpoolSource *src;
    gboolean server_copy_safe;
    GfpoolConn *shared;     /* a view: fs is this cached connection's */
};

/* One connect attempt, shared by the caller and the worker thread: whoever
 * drops the last reference frees it, so an abandoned attempt cleans up after
 * itself whenever glfs_init returns. */
typedef struct {
    gint refs;
    GMutex lock;
    GCond cond;
    gboolean done;
    gboolean abandoned;
    GfpoolSource *src;
    char *key;          /* volume and hosts: what `hung` is keyed by */
    gint64 started;     /* monotonic, us */
    glfs_t *fs;         /* set by the worker once glfs_init succeeded */
    int err;            /* errno of the failing step */
    const char *step;   /* which gfapi call failed */
} ConnectJob;

/*
 * Attempts whose caller gave up at its deadline while glfs_init still
 * waits, by volume and hosts. Each keeps gfapi's threads (about five) until
 * glfs_init returns, which against a host that accepts TCP and never
 * answers is not soon: 30 pool-starts against one left 160 threads in
 * libvirtd. So while one is pending, a later connect to the same servers
 * starts no other: it waits, within its own deadline, for that one to end
 * (gfapi keeps retrying servers that refused, so with servers back it ends
 * within seconds), then connects afresh; if it does not end in time, the
 * later connect fails with the same reason.
 */
static GMutex hung_lock;
static GHashTable *hung;    /* key -> ConnectJob (a reference) */



GfpoolErrorCode
gfpool_error_from_errno(int err)
{
    switch (err) {
    case EEXIST:
        return GFPOOL_ERROR_EXISTS;
    case ENOENT:
    case ESTALE:
        return GFPOOL_ERROR_NOT_FOUND;
    case ENOTEMPTY:
        return GFPOOL_ERROR_NOT_EMPTY;
    case EINVAL:
    case ENAMETOOLONG:
        return GFPOOL_ERROR_INVALID;
    case ETIMEDOUT:
        return GFPOOL_ERROR_TIMEOUT;
    case ENOTSUP:
        return GFPOOL_ERROR_UNSUPPORTED;
    case ENOTCONN:
    case ECONNREFUSED:
    case EHOSTUNREACH:
    case ENETUNREACH:
    case ECONNRESET:
        return GFPOOL_ERROR_UNREACHABLE;
    default:
        return GFPOOL_ERROR_FAILED;
    }
}


void
gfpool_set_error_errno(GError **error, int err, GfpoolConn *conn,
                       const char *what, const char *object)
{
    g_set_error(error, GFPOOL_ERROR, gfpool_error_from_errno(err),
                "%s '%s' on gluster volume '%s': %s",
                what, object, conn->src->volume, g_strerror(err));
}


static gpointer
fini_thread(gpointer opaque)
{
    glfs_t *fs = opaque;

    /* glfs_fini returns only at the next tick of gfapi's 10 s call-bail
     * timer; nobody should wait for that. */
    glfs_fini(fs);
    return NULL;
}


static void
fini_in_background(glfs_t *fs)
{
    g_autoptr(GError) err = NULL;
    GThread *t;

    if (!fs)
        return;
    if (!(t = g_thread_try_new("gfpool-fini", fini_thread, fs, &err))) {
        /* Out of threads: leaking the connection beats blocking the caller. */
        g_warning("cannot start a thread to finalize a gluster connection: %s",
                  err->message);
        return;
    }
    g_thread_unref(t);
}


static void
connect_job_unref(ConnectJob *job)
{
    if (!g_atomic_int_dec_and_test(&job->refs))
        return;
    gfpool_source_free(job->src);
    g_free(job->key);
    g_mutex_clear(&job->lock);
    g_cond_clear(&job->cond);
    g_free(job);
}


static const char *
gfapi_log_file(void)
{
    const char *f = g_getenv("GFPOOL_GFAPI_LOG");

    /* gfapi logs to /var/log/glusterfs/<something>.log by default, a file
     * per process that nobody cleans up; only log when asked to. */
    return f && *f ? f : "/dev/null";
}


static int
gfapi_log_level(void)
{
    const char *l = g_getenv("GFPOOL_GFAPI_LOG_LEVEL");
    gint64 v;

    if (l && g_ascii_string_to_signed(l, 10, 0, 9, &v, NULL))
        return (int)v;
    return 4;   /* GF_LOG_ERROR (GF_LOG_WARNING is 5) */
}


static gpointer
connect_thread(gpointer opaque)
{
    ConnectJob *job = opaque;
    const GfpoolSource *src = job->src;
    glfs_t *fs = NULL;
    const char *step = NULL;
    int err = 0;
    gboolean discard;

    if (!(fs = glfs_new(src->volume))) {
        step = "glfs_new";
        err = errno;
        goto out;
    }

    for (guint i = 0; i < src->hosts->len; i++) {
        const GfpoolHost *h = g_ptr_array_index(src->hosts, i);
        const char *where = h->transport == GFPOOL_TRANSPORT_UNIX ? h->socket : h->name;

        if (glfs_set_volfile_server(fs, gfpool_transport_to_string(h->transport),
                                    where, h->port) < 0) {
            step = "glfs_set_volfile_server";
            err = errno;
            goto out;
        }
    }

    glfs_set_logging(fs, gfapi_log_file(), gfapi_log_level());
    {
        const char *env = g_getenv("GFPOOL_PING_TIMEOUT");
        g_autofree char *ping = NULL;
        guint64 v;

        if (env && g_ascii_string_to_unsigned(env, 10, 1, 3600, &v, NULL))
            ping = g_strdup_printf("%" G_GUINT64_FORMAT, v);
        else
            ping = g_strdup_printf("%d", GFPOOL_PING_TIMEOUT_S);
        /* Best effort: an older gfapi without the option still works. */
        glfs_set_xlator_option(fs, "*-client-*", "ping-timeout", ping);
    }
    /* md-cache stays on (gluster's 1 s): it saves a lookup per image when a
     * refresh opens every header (1,000 images on rep3: 0.9 s with it, 1.5 s
     * without). The price: a change made by another client (QEMU, another
     * host, the CLI) may show up to a second late in vol-info. */

    if (glfs_init(fs) < 0) {
        step = "glfs_init";
        err = errno ? errno : ENOTCONN;
        goto out;
    }

 out:
    g_mutex_lock(&job->lock);
    if (job->abandoned) {
        g_mutex_lock(&hung_lock);
        if (hung && g_hash_table_lookup(hung, job->key) == job)
            g_hash_table_remove(hung, job->key);
        g_mutex_unlock(&hung_lock);
    }
    /* Nobody will use it if the caller gave up at its deadline or the
     * connect failed: it is finalized below, off any caller, after the
     * callers waiting for this attempt to end have been told. */
    discard = job->abandoned || err;
    job->fs = discard ? NULL : fs;
    job->err = err;
    job->step = step;
    job->done = TRUE;
    g_cond_broadcast(&job->cond);
    g_mutex_unlock(&job->lock);
    if (discard && fs)
        glfs_fini(fs);

    connect_job_unref(job);
    return NULL;
}


static guint
connect_timeout_ms(guint timeout_ms)
{
    const char *env = g_getenv("GFPOOL_CONNECT_TIMEOUT_MS");
    guint64 v;

    if (timeout_ms)
        return timeout_ms;
    if (env && g_ascii_string_to_unsigned(env, 10, 100, 600000, &v, NULL))
        return (guint)v;
    return GFPOOL_CONNECT_TIMEOUT_MS_DEFAULT;
}


/*
 * glfs_copy_file_range in glusterfs 10.3 is only safe on a volume of one
 * brick: on replica 3 it wrote the data to one brick and left the other two
 * empty, with no pending-heal marks (seen on the test bed: the copy "succeeds",
 * the next truncate or fsync through the replicas loses the data), and
 * cluster/disperse and features/shard do not implement it either (GlusterFS
 * issue #4045 lists more xlators that don't). So: allowed only when the
 * client graph has exactly one protocol/client and none of those.
 */
static gboolean
volfile_allows_server_copy(glfs_t *fs)
{
    g_autofree char *buf = NULL;
    ssize_t need, n;
    guint clients = 0;

    /* Ask for the size first: glfs_get_volfile copies as many bytes as the
     * caller's buffer holds, past the end of its own copy when the buffer
     * is larger (api/src/glfs.c in 10.3: memcpy(buf, oldvolfile, len)). */
    need = -glfs_get_volfile(fs, NULL, 0);
    if (need <= 0 || need > 16 * 1024 * 1024)
        return FALSE;
    buf = g_malloc0((gsize)need + 1);
    if ((n = glfs_get_volfile(fs, buf, (size_t)need)) != need)
        return FALSE;
    for (const char *p = buf; (p = strstr(p, "type protocol/client")); p++)
        clients++;
    return clients == 1 &&
        !strstr(buf, "cluster/replicate") && !strstr(buf, "cluster/disperse") &&
        !strstr(buf, "features/shard");
}


gboolean
gfpool_conn_server_copy_safe(GfpoolConn *conn)
{
    return conn->server_copy_safe;
}


GfpoolConn *
gfpool_conn_open(const GfpoolSource *src, guint timeout_ms, GError **error)
{
    return gfpool_conn_open_flags(src, timeout_ms, 0, error);
}


static gboolean
conn_check_dir(GfpoolConn *conn, GError **error)
{
    const GfpoolSource *src = conn->src;
    struct stat st;

    if (glfs_stat(conn->fs, src->dir, &st) < 0) {
        int err = errno;
        g_set_error(error, GFPOOL_ERROR, gfpool_error_from_errno(err),
                    "cannot access directory '%s' of gluster volume '%s': %s",
                    src->dir, src->volume, g_strerror(err));
        return FALSE;
    }
    if (!S_ISDIR(st.st_mode)) {
        g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_INVALID,
                    "'%s' of gluster volume '%s' is not a directory",
                    src->dir, src->volume);
        return FALSE;
    }
    return TRUE;
}


GfpoolConn *
gfpool_conn_open_flags(const GfpoolSource *src, guint timeout_ms,
                       unsigned int flags, GError **error)
{
    g_autofree char *hosts = gfpool_source_hosts_string(src);
    g_autofree char *key = NULL;
    g_autoptr(GError) thread_err = NULL;
    ConnectJob *job = NULL;
    GfpoolConn *conn = NULL;
    GThread *t;
    gint64 deadline;

    if (src->hosts->len == 0) {
        g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_INVALID,
                    "gluster volume '%s': no host given", src->volume);
        return NULL;
    }

    timeout_ms = connect_timeout_ms(timeout_ms);
    deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
    key = g_strdup_printf("%s %s", src->volume, hosts);

    g_mutex_lock(&hung_lock);
    if (hung && (job = g_hash_table_lookup(hung, key)))
        g_atomic_int_inc(&job->refs);
    g_mutex_unlock(&hung_lock);
    if (job) {
        gboolean ended;
        gint64 waited;

        g_mutex_lock(&job->lock);
        while (!job->done && g_cond_wait_until(&job->cond, &job->lock, deadline))
            ;
        ended = job->done;
        g_mutex_unlock(&job->lock);
        waited = (g_get_monotonic_time() - job->started) / G_USEC_PER_SEC;
        connect_job_unref(job);
        if (!ended) {
            g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_TIMEOUT,
                        "cannot connect to gluster volume '%s' via %s: no answer within "
                        "%u ms (an attempt started %" G_GINT64_FORMAT " s ago still waits; "
                        "no other starts until it ends)", src->volume, hosts, timeout_ms,
                        waited);
            return NULL;
        }
    }

    job = g_new0(ConnectJob, 1);
    job->refs = 2;     /* caller + worker */
    g_mutex_init(&job->lock);
    g_cond_init(&job->cond);
    job->src = gfpool_source_copy(src);
    job->key = g_steal_pointer(&key);
    job->started = g_get_monotonic_time();

    if (!(t = g_thread_try_new("gfpool-connect", connect_thread, job, &thread_err))) {
        g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_FAILED,
                    "cannot connect to gluster volume '%s': cannot start a thread: %s",
                    src->volume, thread_err->message);
        job->refs = 1;
        connect_job_unref(job);
        return NULL;
    }
    g_thread_unref(t);

    g_mutex_lock(&job->lock);
    while (!job->done) {
        if (!g_cond_wait_until(&job->cond, &job->lock, deadline))
            break;
    }
    if (!job->done) {
        job->abandoned = TRUE;
        g_mutex_lock(&hung_lock);
        if (!hung)
            hung = g_hash_table_new_full(g_str_hash, g_str_equal, NULL,
                                         (GDestroyNotify)connect_job_unref);
        if (!g_hash_table_contains(hung, job->key)) {
            g_atomic_int_inc(&job->refs);
            g_hash_table_insert(hung, job->key, job);
        }
        g_mutex_unlock(&hung_lock);
        g_mutex_unlock(&job->lock);
        g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_TIMEOUT,
                    "cannot connect to gluster volume '%s' via %s: "
                    "no answer within %u ms",
                    src->volume, hosts, timeout_ms);
        connect_job_unref(job);
        return NULL;
    }
    g_mutex_unlock(&job->lock);

    if (!job->fs) {
        g_set_error(error, GFPOOL_ERROR, gfpool_error_from_errno(job->err),
                    "cannot connect to gluster volume '%s' via %s: %s failed: %s",
                    src->volume, hosts, job->step, g_strerror(job->err));
        connect_job_unref(job);
        return NULL;
    }

    conn = g_new0(GfpoolConn, 1);
    conn->fs = g_steal_pointer(&job->fs);
    conn->src = gfpool_source_copy(src);
    connect_job_unref(job);
    conn->server_copy_safe = volfile_allows_server_copy(conn->fs);

    if (!(flags & GFPOOL_CONN_OPEN_NO_DIR) && !conn_check_dir(conn, error)) {
        gfpool_conn_close(conn);
        return NULL;
    }
    return conn;
}


GfpoolConn *
gfpool_conn_view_new(GfpoolConn *shared, const GfpoolSource *src,
                     unsigned int flags, GError **error)
{
    GfpoolConn *view = g_new0(GfpoolConn, 1);

    view->fs = shared->fs;
    view->src = gfpool_source_copy(src);
    view->server_copy_safe = shared->server_copy_safe;
    if (!(flags & GFPOOL_CONN_OPEN_NO_DIR) && !conn_check_dir(view, error)) {
        gfpool_source_free(view->src);
        g_free(view);
        return NULL;
    }
    view->shared = shared;
    return view;
}


GfpoolConn *
gfpool_conn_view_shared(GfpoolConn *conn)
{
    return conn->shared;
}


void
gfpool_conn_close(GfpoolConn *conn)
{
    if (!conn)
        return;
    if (conn->shared)
        gfpool_conn_cache_put(conn->shared);
    else
        fini_in_background(conn->fs);
    gfpool_source_free(conn->src);
    g_free(conn);
}


void
gfpool_conn_abandon(GfpoolConn *conn)
{
    if (!conn)
        return;
    if (conn->shared)
        gfpool_conn_cache_put(conn->shared);
    gfpool_source_free(conn->src);
    g_free(conn);
}


glfs_t *
gfpool_conn_glfs(GfpoolConn *conn)
{
    return conn->fs;
}


const GfpoolSource *
gfpool_conn_source(GfpoolConn *conn)
{
    return conn->src;
}


char *
gfpool_conn_path(GfpoolConn *conn, const char *name)
{
    const char *dir = conn->src->dir;

    if (g_str_equal(dir, "/"))
        return g_strconcat("/", name, NULL);
    return g_strconcat(dir, "/", name, NULL);
}


/* gfapi takes off_t: an offset or an end past INT64_MAX (or one that wraps)
 * would become negative there. */
gboolean
gfpool_range_check(const char *what, guint64 off, guint64 len, GError **error)
{
    if (off > (guint64)G_MAXINT64 || len > (guint64)G_MAXINT64 - off) {
        g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_INVALID,
                    "%s of %" G_GUINT64_FORMAT " bytes at offset %" G_GUINT64_FORMAT
                    " is out of range (offset and end must stay below 2^63)", what, len, off);
        return FALSE;
    }
    return TRUE;
}


/* Reads until `len` bytes or the end of the file: a short count means EOF,
 * never a pread that happened to return less (gfapi splits large reads). */
gssize
gfpool_glfs_fd_read(void *fd, guint64 off, void *buf, gsize len, GError **error)
{
    gsize done = 0;

    if (!gfpool_range_check("read", off, len, error))
        return -1;
    while (done < len) {
        ssize_t n = glfs_pread(fd, (char *)buf + done, len - done, (off_t)(off + done), 0, NULL);
        if (n < 0) {
            int err = errno;
            if (err == EINTR)
                continue;
            g_set_error(error, GFPOOL_ERROR, gfpool_error_from_errno(err),
                        "read of %" G_GSIZE_FORMAT " bytes at offset %" G_GUINT64_FORMAT
                        " failed: %s", len - done, off + done, g_strerror(err));
            return -1;
        }
        if (n == 0)
            break;
        done += (gsize)n;
    }
    return (gssize)done;
}


gboolean
gfpool_glfs_fd_write(void *fd, guint64 off, const void *buf, gsize len, GError **error)
{
    const char *p = buf;

    if (!gfpool_range_check("write", off, len, error))
        return FALSE;
    while (len > 0) {
        ssize_t n = glfs_pwrite(fd, p, len, (off_t)off, 0, NULL, NULL);
        if (n <= 0) {
            int err = n < 0 ? errno : EIO;
            if (n < 0 && err == EINTR)
                continue;
            /* a write that moves nothing would loop forever */
            g_set_error(error, GFPOOL_ERROR, gfpool_error_from_errno(err),
                        "write of %" G_GSIZE_FORMAT " bytes at offset %" G_GUINT64_FORMAT
                        " failed: %s", len, off, n < 0 ? g_strerror(err) : "nothing written");
            return FALSE;
        }
        p += n;
        off += (guint64)n;
        len -= (gsize)n;
    }
    return TRUE;
}

gboolean
gfpool_glfs_fd_zero(glfs_fd_t *fd, guint64 off, guint64 len, GError **error)
{
    const gsize chunk = 1024 * 1024;
    g_autofree char *zeros = NULL;

    if (len == 0 || !gfpool_range_check("zero", off, len, error))
        return len == 0;
    if (glfs_zerofill(fd, (off_t)off, (off_t)len) == 0)
        return TRUE;
    zeros = g_malloc0(chunk);
    while (len > 0) {
        gsize n = (gsize)MIN((guint64)chunk, len);
        if (!gfpool_glfs_fd_write(fd, off, zeros, n, error))
            return FALSE;
        off += n;
        len -= n;
    }
    return TRUE;
}


gboolean
gfpool_glfs_fd_next_data(glfs_fd_t *fd, guint64 off, guint64 end, guint64 *data, guint64 *len)
{
    off_t d, h;

    if (off >= end)
        return FALSE;
    d = glfs_lseek(fd, (off_t)off, SEEK_DATA);
    if (d < 0) {
        if (errno == ENXIO)
            return FALSE;       /* only a hole up to EOF */
        *data = off;
        *len = end - off;
        return TRUE;
    }
    if ((guint64)d >= end)
        return FALSE;
    h = glfs_lseek(fd, d, SEEK_HOLE);
    if (h < 0 || (guint64)h > end)
        h = (off_t)end;
    *data = (guint64)d;
    *len = (guint64)h - (guint64)d;
    return *len > 0;
}
