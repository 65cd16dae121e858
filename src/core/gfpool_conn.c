/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gfpool_conn.c: connect to a gluster volume with a deadline, finalize in the
 * background.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gfpool_conn.h"
#include "gfpool_record.h"

G_DEFINE_QUARK(gfpool-error-quark, gfpool_error)

struct _GfpoolConn {
    glfs_t *fs;
    GfpoolSource *src;
    gboolean server_copy_safe;
    GfpoolConn *shared;     /* a view: fs is this cached connection's */
    char *volfile;          /* the one fs was built from (not in a view) */
    gsize volfile_len;
    gboolean secure_mgmt;   /* SECURE_ACCESS existed when it connected */
};

/* GlusterFS's switch for TLS on management connections
 * (GLUSTERD_DEFAULT_WORKDIR "/secure-access", the same path on Debian 12
 * and 13; no option moves it). gfapi reads it once, in glfs_init: a client
 * made before it appeared talks plain to glusterds that restarted with
 * TLS, and cannot look up a restarted brick's port. */
#define SECURE_ACCESS "/var/lib/glusterd/secure-access"

static gboolean
secure_mgmt_now(void)
{
    return access(SECURE_ACCESS, F_OK) == 0;
}

/*
 * Why a connect fails, when TLS or the volume's auth is the reason, gfapi
 * tells only its log: glfs_init's errno is ENOTCONN or EIO, and against
 * bricks that refuse the client (a CN not in auth.ssl-allow, an
 * unprivileged port with server.allow-insecure off) glfs_init never
 * returns at all (gfapi ignores the AUTH_FAILED event and retries every
 * 3 s). So gfapi logs each connect into a memfd (or the file of
 * GFPOOL_GFAPI_LOG) that the caller reads while it waits.
 */
typedef struct {
    int fd;             /* -1: nothing to read */
    gboolean memfd;     /* ours: emptied and sealed once the wait ends */
    off_t off;          /* read so far */
    GString *partial;   /* a line not complete yet */
    char *local;        /* this host cannot use its own TLS files */
    char *tls;          /* a TLS handshake failed: OpenSSL's reason */
    char *refused;      /* a brick refused the client: its reason */
    gboolean rpc_denied;    /* ... its requests, not its credentials */
    gint64 refused_at;  /* monotonic, us */
    gboolean reset;     /* a server reset a connection it had accepted */
    gboolean getspec_dropped;   /* ... with the request for the volfile */
} GfapiLog;

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
    char *log_path;     /* where gfapi logs (GfapiLog) */
    char *verdict;      /* why the servers refused this attempt, once known */
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


const char *
gfpool_error_text(const GError *err)
{
    return err ? err->message : "internal error: the operation failed without saying why";
}


gboolean
gfpool_set_error_errno(GError **error, int err, GfpoolConn *conn, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *what = NULL;

    va_start(ap, fmt);
    what = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    if (conn)
        g_set_error(error, GFPOOL_ERROR, gfpool_error_from_errno(err),
                    "%s on gluster volume '%s': %s", what, conn->src->volume, g_strerror(err));
    else
        g_set_error(error, GFPOOL_ERROR, gfpool_error_from_errno(err), "%s: %s", what,
                    g_strerror(err));
    return FALSE;
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
    g_free(job->log_path);
    g_free(job->verdict);
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


/* GF_LOG_WARNING: what GfapiLog reads is logged at this level or above
 * (a brick refusing an unprivileged port is a warning on the client), so a
 * lower one is not taken. */
#define GFAPI_LOG_WARNING 5

static int
gfapi_log_level(void)
{
    const char *l = g_getenv("GFPOOL_GFAPI_LOG_LEVEL");
    gint64 v;

    if (l && g_ascii_string_to_signed(l, 10, 0, 9, &v, NULL))
        return MAX((int)v, GFAPI_LOG_WARNING);
    return GFAPI_LOG_WARNING;
}


/* Where gfapi logs one connect (*path), and the log to read it from. */
static void
gfapi_log_open(GfapiLog *log, char **path)
{
    const char *user = g_getenv("GFPOOL_GFAPI_LOG");

    memset(log, 0, sizeof(*log));
    log->fd = -1;
    log->partial = g_string_new(NULL);
    if (user && *user &&
        (log->fd = open(user, O_RDONLY | O_CREAT | O_CLOEXEC, 0644)) >= 0) {
        *path = g_strdup(user);
        log->off = lseek(log->fd, 0, SEEK_END);
        return;
    }
    /* gfapi opens the memfd by name for itself, appending */
    if ((log->fd = memfd_create("gfpool-gfapi-log", MFD_CLOEXEC | MFD_ALLOW_SEALING)) >= 0) {
        log->memfd = TRUE;
        *path = g_strdup_printf("/proc/self/fd/%d", log->fd);
        return;
    }
    *path = g_strdup("/dev/null");
}


/* Nothing more is read: a memfd is emptied and sealed against growth, so
 * what gfapi logs later (a client keeps its log until glfs_fini) fails to
 * be written instead of piling up in memory. */
static void
gfapi_log_close(GfapiLog *log)
{
    if (log->fd >= 0) {
        if (log->memfd) {
            if (ftruncate(log->fd, 0) < 0 ||
                fcntl(log->fd, F_ADD_SEALS, F_SEAL_GROW) < 0)
                g_debug("cannot seal gfapi's log: %s", g_strerror(errno));
        }
        close(log->fd);
        log->fd = -1;
    }
    g_string_free(log->partial, TRUE);
    log->partial = NULL;
    g_free(log->local);
    g_free(log->tls);
    g_free(log->refused);
}


/* A "could not load ... at PATH" of gfapi's socket transport: why. */
static char *
local_tls_failure(const char *what, const char *path)
{
    if (path && access(path, R_OK) < 0) {
        int err = errno;
        return g_strdup_printf("TLS: cannot read %s %s: %s (as uid %u)", what, path,
                               g_strerror(err), (unsigned int)geteuid());
    }
    return g_strdup_printf("TLS: cannot use %s%s%s", what, path ? " " : "", path ? path : "");
}


static char *
log_field(const char *line, const char *key)
{
    const char *p = strstr(line, key);
    size_t n;

    if (!p)
        return NULL;
    p += strlen(key);
    n = strcspn(p, "}]\n");
    return g_strstrip(g_strndup(p, n));
}


static void
gfapi_log_line(GfapiLog *log, const char *line)
{
    const char *p;

    if ((p = strstr(line, "could not load our cert at "))) {
        g_autofree char *path = g_strstrip(g_strdup(p + strlen("could not load our cert at ")));
        if (!log->local)
            log->local = local_tls_failure("this host's certificate", path);
    } else if ((p = strstr(line, "could not load private key at "))) {
        g_autofree char *path = g_strstrip(g_strdup(p + strlen("could not load private key at ")));
        if (!log->local)
            log->local = local_tls_failure("this host's private key", path);
    } else if (strstr(line, "could not load CA list")) {
        if (!log->local)
            log->local = local_tls_failure("the CA list (glusterfs.ca)", NULL);
    } else if (strstr(line, "SETVOLUME on remote-host failed")) {
        g_autofree char *why = log_field(line, "remote-error=");
        if (!log->refused) {
            log->refused = g_strdup(why && *why ? why : "refused");
            log->refused_at = g_get_monotonic_time();
        }
    } else if (strstr(line, "client_dump_version_cbk") && strstr(line, "RPC status error")) {
        /* the brick denied the handshake's first request (rpcsvc: "Request
         * received from non-privileged port") */
        if (!log->refused) {
            log->refused = g_strdup("requests denied");
            log->rpc_denied = TRUE;
            log->refused_at = g_get_monotonic_time();
        }
    } else if ((p = strstr(line, "SSL routines::"))) {
        g_free(log->tls);
        log->tls = g_strstrip(g_strdup(p + strlen("SSL routines::")));
    } else if (strstr(line, "failed (Connection reset by peer)")) {
        log->reset = TRUE;
    } else if (strstr(line, "saved_frames_unwind") && strstr(line, "GETSPEC")) {
        log->getspec_dropped = TRUE;
    }
}


/* Reads what gfapi logged since the last call. */
static void
gfapi_log_scan(GfapiLog *log)
{
    char buf[4096];
    ssize_t n;

    if (log->fd < 0)
        return;
    while ((n = pread(log->fd, buf, sizeof(buf), log->off)) > 0) {
        const char *p = buf, *end = buf + n;
        log->off += n;
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            if (!nl) {
                g_string_append_len(log->partial, p, end - p);
                break;
            }
            g_string_append_len(log->partial, p, nl - p);
            gfapi_log_line(log, log->partial->str);
            g_string_truncate(log->partial, 0);
            p = nl + 1;
        }
    }
}


/* What the servers said about TLS: the handshake's failure, with what
 * OpenSSL's two usual reasons mean here. When a server refuses this host's
 * certificate under TLS 1.3 its alert races its reset: the client reads
 * either "tlsv1 alert unknown ca" or only "Connection reset by peer", so a
 * reset of a management connection (secure_mgmt) is taken for a refused
 * handshake too. A client without management TLS meets servers with it as
 * servers that drop its request for the volfile. NULL when nothing;
 * *sure FALSE when the reason is only likely. */
static char *
tls_reason(const GfapiLog *log, gboolean secure_mgmt, gboolean *sure)
{
    const char *hint = "";

    *sure = log->tls != NULL;
    if (!log->tls && secure_mgmt && log->reset)
        return g_strdup("TLS handshake failed: the servers reset the connection "
                        "(they do not accept this host's certificate: not signed by a CA "
                        "in their glusterfs.ca; or they do not use management TLS)");
    if (!log->tls && !secure_mgmt && log->getspec_dropped)
        return g_strdup("the servers dropped the request for the volume's volfile "
                        "(if they use management TLS, this host needs "
                        SECURE_ACCESS " and its certificate)");
    if (!log->tls)
        return NULL;
    if (strstr(log->tls, "unknown ca") || strstr(log->tls, "bad certificate"))
        hint = " (the servers do not accept this host's certificate: not signed by a CA "
               "in their glusterfs.ca)";
    else if (strstr(log->tls, "certificate verify failed"))
        hint = " (this host does not accept the servers' certificates: glusterfs.ca "
               "does not hold their CA)";
    return g_strdup_printf("TLS handshake failed: %s%s", log->tls, hint);
}


/* A brick refused the client in its handshake: its port (the first
 * request denied), or its credentials (SETVOLUME: the volume's auth
 * options; which one, gfapi is not told: the likely ones). */
static char *
refusal_reason(const GfapiLog *log)
{
    uid_t uid = geteuid();

    if (log->rpc_denied && uid != 0)
        return g_strdup_printf(
            "the servers refused this client's requests: it does not run as root "
            "(uid %u), so it connects from unprivileged ports, which the volume refuses "
            "(server.allow-insecure off)", (unsigned int)uid);
    if (log->rpc_denied)
        return g_strdup(
            "the servers refused this client's requests: the volume refuses unprivileged "
            "source ports (server.allow-insecure off), and a client binds privileged ones "
            "only with the volume's client.bind-insecure off");
    if (uid != 0)
        return g_strdup_printf(
            "the servers refused this client (%s): it does not run as root (uid %u), so "
            "it connects from unprivileged ports, which a volume with "
            "server.allow-insecure off refuses; or auth.ssl-allow does not name its "
            "certificate's CN, or auth.allow its address", log->refused, (unsigned int)uid);
    return g_strdup_printf(
        "the servers refused this client (%s): the volume's auth.ssl-allow does not "
        "name this host's certificate (its CN), or auth.allow its address", log->refused);
}


/* How long a refusal may stand before the connect gives up: enough for
 * the other bricks of a replica to be the ones that answer. */
#define REFUSAL_GRACE_US (500 * 1000)

/* The wait's slice: how often the log is read. */
#define WAIT_SLICE_US (100 * 1000)


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

    glfs_set_logging(fs, job->log_path ? job->log_path : gfapi_log_file(),
                     gfapi_log_level());
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
    /* md-cache keeps only the attributes it is told to, for every graph
     * this client builds whatever the volume's options say: with our
     * records in it, a listing brings each image's records along and a
     * refresh asks them without a round trip (docs/design.md "Refresh").
     * A volume without md-cache ignores it: the records are then asked of
     * the bricks. Best effort, as the ping-timeout. */
    glfs_set_xlator_option(fs, "*-md-cache", "xattr-cache-list", GFPOOL_RECORD_XATTR_PATTERN);

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
volfile_allows_server_copy(const char *volfile)
{
    guint clients = 0;

    for (const char *p = volfile; (p = strstr(p, "type protocol/client")); p++)
        clients++;
    return clients == 1 &&
        !strstr(volfile, "cluster/replicate") && !strstr(volfile, "cluster/disperse") &&
        !strstr(volfile, "features/shard");
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

    if (glfs_stat(conn->fs, gfpool_conn_dir(conn), &st) < 0) {
        return gfpool_set_error_errno(error, errno, NULL,
                                      "cannot access directory '%s' of gluster volume '%s'",
                                      src->dir, src->volume);
    }
    if (!S_ISDIR(st.st_mode)) {
        g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_INVALID,
                    "'%s' of gluster volume '%s' is not a directory",
                    src->dir, src->volume);
        return FALSE;
    }
    return TRUE;
}


/* Leaves the attempt to its worker, which finalizes the connection if
 * glfs_init ever returns; until then later connects to the same servers
 * wait for it rather than start another (job->lock held). */
static void
connect_job_abandon_locked(ConnectJob *job)
{
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
}


/* Waits for the worker until the deadline or a verdict from gfapi's log:
 * this host cannot use its TLS files (at once: every server would see the
 * same), or a brick refused the client and none accepted it since
 * (glfs_init would wait for ever). A TLS handshake a server failed is
 * only remembered: gfapi tries the next volfile server. Returns the
 * verdict, or NULL when the worker is done or the deadline passed. With
 * job->lock held. */
static char *
connect_job_wait_locked(ConnectJob *job, GfapiLog *log, gint64 deadline)
{
    for (;;) {
        gint64 now = g_get_monotonic_time();

        if (job->done || now >= deadline)
            return NULL;
        g_cond_wait_until(&job->cond, &job->lock, MIN(deadline, now + WAIT_SLICE_US));
        if (job->done)
            return NULL;
        gfapi_log_scan(log);
        if (log->local)
            return g_strdup(log->local);
        if (log->refused && g_get_monotonic_time() - log->refused_at >= REFUSAL_GRACE_US)
            return refusal_reason(log);
    }
}


/* The volfile gfapi holds now (it changes when the volume's settings do). */
static char *
fs_volfile(glfs_t *fs, gsize *len)
{
    for (int tries = 0; tries < 3; tries++) {
        g_autofree char *buf = NULL;
        ssize_t need, n;

        /* Ask for the size first: glfs_get_volfile copies as many bytes as
         * the caller's buffer holds, past the end of its own copy when the
         * buffer is larger (api/src/glfs.c: memcpy(buf, oldvolfile, len)). */
        need = -glfs_get_volfile(fs, NULL, 0);
        if (need <= 0 || need > 16 * 1024 * 1024)
            return NULL;
        buf = g_malloc0((gsize)need + 1);
        n = glfs_get_volfile(fs, buf, (size_t)need);
        if (n == need) {
            *len = (gsize)n;
            return g_steal_pointer(&buf);
        }
        if (n >= 0)
            return NULL;
        /* it grew in between: again */
    }
    return NULL;
}


/*
 * Step 1 of a connect: an earlier attempt on the same servers that is still
 * pending (see hung) is waited for, within our deadline. TRUE once there is
 * none; FALSE, with the reason it still waits, when it outlasts us.
 */
static gboolean
connect_wait_pending(const GfpoolSource *src, const char *hosts, const char *key,
                     guint timeout_ms, gint64 deadline, GError **error)
{
    g_autofree char *verdict = NULL;
    ConnectJob *job = NULL;
    gboolean ended;
    gint64 waited;

    g_mutex_lock(&hung_lock);
    if (hung && (job = g_hash_table_lookup(hung, key)))
        g_atomic_int_inc(&job->refs);
    g_mutex_unlock(&hung_lock);
    if (!job)
        return TRUE;

    g_mutex_lock(&job->lock);
    while (!job->done && !job->verdict &&
           g_cond_wait_until(&job->cond, &job->lock, deadline))
        ;
    ended = job->done;
    verdict = g_strdup(job->verdict);
    g_mutex_unlock(&job->lock);
    waited = (g_get_monotonic_time() - job->started) / G_USEC_PER_SEC;
    connect_job_unref(job);
    if (ended)
        return TRUE;
    if (verdict) {
        /* The servers refused it: they would refuse this one too. */
        g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_DENIED,
                    "cannot connect to gluster volume '%s' via %s: %s (an attempt "
                    "started %" G_GINT64_FORMAT " s ago still waits to be accepted; "
                    "no other starts until it ends)", src->volume, hosts, verdict,
                    waited);
        return FALSE;
    }
    g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_TIMEOUT,
                "cannot connect to gluster volume '%s' via %s: no answer within "
                "%u ms (an attempt started %" G_GINT64_FORMAT " s ago still waits; "
                "no other starts until it ends)", src->volume, hosts, timeout_ms,
                waited);
    return FALSE;
}


/* Our own attempt did not end by the deadline: it is left to end by itself
 * (noted in hung, with the verdict later callers inherit), and the error
 * says why it waits, as far as gfapi's log tells. With job->lock held;
 * releases it. */
static void
connect_report_timeout(ConnectJob *job, GfapiLog *log, char *verdict, gboolean secure_mgmt,
                       const GfpoolSource *src, const char *hosts, guint timeout_ms,
                       GError **error)
{
    g_autofree char *reason = NULL;
    gboolean sure = TRUE;

    gfapi_log_scan(log);
    reason = tls_reason(log, secure_mgmt, &sure);
    job->verdict = g_strdup(verdict ? verdict : sure ? reason : NULL);
    connect_job_abandon_locked(job);
    g_mutex_unlock(&job->lock);
    if (verdict)
        g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_DENIED,
                    "cannot connect to gluster volume '%s' via %s: %s",
                    src->volume, hosts, verdict);
    else if (reason)
        g_set_error(error, GFPOOL_ERROR, sure ? GFPOOL_ERROR_DENIED : GFPOOL_ERROR_TIMEOUT,
                    "cannot connect to gluster volume '%s' via %s: %s "
                    "(no server accepted this client within %u ms)",
                    src->volume, hosts, reason, timeout_ms);
    else
        g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_TIMEOUT,
                    "cannot connect to gluster volume '%s' via %s: "
                    "no answer within %u ms",
                    src->volume, hosts, timeout_ms);
}


/* Our own attempt ended without a connection: the failed step's errno,
 * with the reason gfapi's log gives where it gives one. */
static void
connect_report_failure(ConnectJob *job, GfapiLog *log, gboolean secure_mgmt,
                       const GfpoolSource *src, const char *hosts, GError **error)
{
    g_autofree char *reason = NULL;
    gboolean sure = TRUE;

    gfapi_log_scan(log);
    if (log->local || log->refused)
        reason = log->local ? g_strdup(log->local) : refusal_reason(log);
    else
        reason = tls_reason(log, secure_mgmt, &sure);
    if (reason)
        g_set_error(error, GFPOOL_ERROR,
                    sure ? GFPOOL_ERROR_DENIED : gfpool_error_from_errno(job->err),
                    "cannot connect to gluster volume '%s' via %s: %s (%s failed: %s)",
                    src->volume, hosts, reason, job->step, g_strerror(job->err));
    else
        g_set_error(error, GFPOOL_ERROR, gfpool_error_from_errno(job->err),
                    "cannot connect to gluster volume '%s' via %s: %s failed: %s",
                    src->volume, hosts, job->step, g_strerror(job->err));
}


/*
 * Step 2 of a connect: glfs_init in a thread of its own (it cannot be
 * interrupted), waited for until the deadline or a verdict from gfapi's
 * log. key (taken) names the servers in hung. Returns the new connection's
 * glfs_t; *secure_mgmt is the management encryption it was made with.
 */
static glfs_t *
connect_run(const GfpoolSource *src, const char *hosts, char *key, guint timeout_ms,
            gint64 deadline, gboolean *secure_mgmt, GError **error)
{
    g_autoptr(GError) thread_err = NULL;
    g_autofree char *verdict = NULL;
    ConnectJob *job;
    GfapiLog log;
    GThread *t;
    glfs_t *fs;

    job = g_new0(ConnectJob, 1);
    job->refs = 2;     /* caller + worker */
    g_mutex_init(&job->lock);
    g_cond_init(&job->cond);
    job->src = gfpool_source_copy(src);
    job->key = key;
    job->started = g_get_monotonic_time();
    *secure_mgmt = secure_mgmt_now();
    gfapi_log_open(&log, &job->log_path);

    if (!(t = g_thread_try_new("gfpool-connect", connect_thread, job, &thread_err))) {
        g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_FAILED,
                    "cannot connect to gluster volume '%s': cannot start a thread: %s",
                    src->volume, thread_err->message);
        gfapi_log_close(&log);
        job->refs = 1;
        connect_job_unref(job);
        return NULL;
    }
    g_thread_unref(t);

    g_mutex_lock(&job->lock);
    verdict = connect_job_wait_locked(job, &log, deadline);
    if (!job->done) {
        connect_report_timeout(job, &log, verdict, *secure_mgmt, src, hosts, timeout_ms,
                               error);
        gfapi_log_close(&log);
        connect_job_unref(job);
        return NULL;
    }
    g_mutex_unlock(&job->lock);

    if (!job->fs)
        connect_report_failure(job, &log, *secure_mgmt, src, hosts, error);
    gfapi_log_close(&log);
    fs = g_steal_pointer(&job->fs);
    connect_job_unref(job);
    return fs;
}


GfpoolConn *
gfpool_conn_open_flags(const GfpoolSource *src, guint timeout_ms,
                       unsigned int flags, GError **error)
{
    g_autofree char *hosts = gfpool_source_hosts_string(src);
    g_autofree char *key = NULL;
    GfpoolConn *conn = NULL;
    gint64 deadline;
    gboolean secure_mgmt;
    glfs_t *fs;

    if (src->hosts->len == 0) {
        g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_INVALID,
                    "gluster volume '%s': no host given", src->volume);
        return NULL;
    }

    timeout_ms = connect_timeout_ms(timeout_ms);
    deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
    key = g_strdup_printf("%s %s", src->volume, hosts);

    if (!connect_wait_pending(src, hosts, key, timeout_ms, deadline, error) ||
        !(fs = connect_run(src, hosts, g_steal_pointer(&key), timeout_ms, deadline,
                           &secure_mgmt, error)))
        return NULL;

    conn = g_new0(GfpoolConn, 1);
    conn->fs = fs;
    conn->src = gfpool_source_copy(src);
    conn->volfile = fs_volfile(conn->fs, &conn->volfile_len);
    conn->secure_mgmt = secure_mgmt;
    conn->server_copy_safe = conn->volfile && volfile_allows_server_copy(conn->volfile);

    if (!(flags & GFPOOL_CONN_OPEN_NO_DIR) && !conn_check_dir(conn, error)) {
        gfpool_conn_close(conn);
        return NULL;
    }
    return conn;
}


gboolean
gfpool_conn_outdated(GfpoolConn *conn)
{
    GfpoolConn *base = conn->shared ? conn->shared : conn;
    g_autofree char *now = NULL;
    gsize len = 0;

    if (secure_mgmt_now() != base->secure_mgmt)
        return TRUE;
    if (!base->volfile || !(now = fs_volfile(base->fs, &len)))
        return FALSE;
    return len != base->volfile_len || memcmp(now, base->volfile, len) != 0;
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
    g_free(conn->volfile);
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
    g_free(conn->volfile);
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


const char *
gfpool_conn_dir(GfpoolConn *conn)
{
    return g_str_equal(conn->src->dir, "/") ? "/." : conn->src->dir;
}


char *
gfpool_conn_path(GfpoolConn *conn, const char *name)
{
    const char *dir = conn->src->dir;

    if (g_str_equal(dir, "/"))
        return g_strconcat("/", name, NULL);
    return g_strconcat(dir, "/", name, NULL);
}


glfs_fd_t *
gfpool_conn_open_file(GfpoolConn *conn, const char *path, int flags)
{
    glfs_fd_t *fd = glfs_open(conn->fs, path, flags);

    /* ESTALE: our cached inode was deleted behind our back; a second
     * open resolves the name afresh (to the new file, or to ENOENT). */
    if (!fd && errno == ESTALE)
        fd = glfs_open(conn->fs, path, flags);
    return fd;
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
            gfpool_set_error_errno(error, err, NULL,
                                   "read of %" G_GSIZE_FORMAT " bytes at offset %"
                                   G_GUINT64_FORMAT " failed", len - done, off + done);
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
