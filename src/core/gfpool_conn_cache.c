/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gfpool_conn_cache.c: connections shared by key (volume + hosts in order)
 * for callers that open often and briefly, and closed in the background
 * once idle (see gfpool_conn.h).
 *
 * One cache per process: libvirtd loads the pool module and the
 * storage-file module as two libraries, each with its own copy of this
 * file. Both export gfpool_conn_cache_shared; dlsym(RTLD_DEFAULT) finds the
 * first one loaded (libvirt loads modules RTLD_GLOBAL), so both modules
 * use that module's cache, provided it was built from the same source
 * (the connection structures are passed between them).
 */
#include <dlfcn.h>

#include "gfpool_conn.h"

/* How long an unused connection is kept: long enough to span a guest's
 * start (one open per image of its chain, then QEMU's own), a snapshot or a
 * migration; short enough not to hold bricks' resources for nothing.
 * GFPOOL_CONN_IDLE_S overrides. */
#define CONN_IDLE_S_DEFAULT 60

/* Bumped whenever GfpoolConn, GfpoolSource or the table below change. */
#define CACHE_ABI 2

typedef struct {
    guint abi;
    const char *version;
    GfpoolConn *(*get)(const GfpoolSource *src, GError **error);
    GfpoolConn *(*open)(const GfpoolSource *src, unsigned int flags, GError **error);
    void (*put)(GfpoolConn *conn);
    void (*discard)(GfpoolConn *conn);
} GfpoolConnCacheOps;

typedef struct {
    char *key;
    GfpoolConn *conn;
    guint users;
    gint64 idle_since;      /* monotonic, when users dropped to 0 */
    gboolean discarded;     /* no longer in `cache`: closed at its last put */
} CacheEntry;

static GMutex cache_lock;
static GCond cache_cond;
static GHashTable *cache;           /* key -> CacheEntry* */
static GHashTable *cache_by_conn;   /* GfpoolConn* -> CacheEntry* */
static GThread *reaper;

static gint64
idle_usec(void)
{
    const char *env = g_getenv("GFPOOL_CONN_IDLE_S");
    guint64 v;

    if (env && g_ascii_string_to_unsigned(env, 10, 0, 86400, &v, NULL))
        return (gint64)v * G_USEC_PER_SEC;
    return (gint64)CONN_IDLE_S_DEFAULT * G_USEC_PER_SEC;
}

static void
cache_entry_free(CacheEntry *e)
{
    g_free(e->key);
    g_free(e);
}

/* Closes what has been idle long enough; sleeps until the next expiry. */
static gpointer
reaper_thread(gpointer opaque G_GNUC_UNUSED)
{
    g_mutex_lock(&cache_lock);
    for (;;) {
        gint64 now = g_get_monotonic_time();
        gint64 idle = idle_usec();
        gint64 next = now + 10 * G_USEC_PER_SEC;
        GHashTableIter it;
        CacheEntry *e;

        g_hash_table_iter_init(&it, cache);
        while (g_hash_table_iter_next(&it, NULL, (gpointer *)&e)) {
            if (e->users > 0)
                continue;
            if (now - e->idle_since >= idle) {
                g_hash_table_remove(cache_by_conn, e->conn);
                gfpool_conn_close(e->conn);
                g_hash_table_iter_remove(&it);
                continue;
            }
            next = MIN(next, e->idle_since + idle);
        }
        g_cond_wait_until(&cache_cond, &cache_lock, next);
    }
    return NULL;
}

/* A pool's XML usually leaves the port out, a disk's (as libvirt formats
 * it) names 24007: the same server. */
static char *
cache_key(const GfpoolSource *src)
{
    g_autoptr(GfpoolSource) norm = gfpool_source_copy(src);
    g_autofree char *hosts = NULL;

    for (guint i = 0; i < norm->hosts->len; i++) {
        GfpoolHost *h = g_ptr_array_index(norm->hosts, i);
        if (h->transport != GFPOOL_TRANSPORT_UNIX && h->port == 0)
            h->port = GFPOOL_DEFAULT_PORT;
    }
    hosts = gfpool_source_hosts_string(norm);
    return g_strdup_printf("%s %s", norm->volume, hosts);
}


/* The whole volume: every caller names paths from its root. Attempts on a
 * host that never answers do not pile up (gfpool_conn_open). */
static GfpoolConn *
connect_whole(const GfpoolSource *src, GError **error)
{
    g_autoptr(GfpoolSource) whole = gfpool_source_copy(src);

    g_free(whole->dir);
    whole->dir = g_strdup("/");
    return gfpool_conn_open_flags(whole, 0, GFPOOL_CONN_OPEN_NO_DIR, error);
}

/* With cache_lock held: conn becomes the connection of key, with one user.
 * An entry it replaces closes at its last put; returns that entry when it
 * has no user left, for the caller to drop once the lock is released. */
static CacheEntry *
insert_locked(char *key, GfpoolConn *conn)
{
    CacheEntry *old = NULL;
    CacheEntry *e;

    if (!cache) {
        cache = g_hash_table_new_full(g_str_hash, g_str_equal, NULL,
                                      (GDestroyNotify)cache_entry_free);
        cache_by_conn = g_hash_table_new(g_direct_hash, g_direct_equal);
    }
    if ((old = g_hash_table_lookup(cache, key))) {
        g_hash_table_steal(cache, old->key);
        old->discarded = TRUE;
        if (old->users > 0)
            old = NULL;
    }
    e = g_new0(CacheEntry, 1);
    e->key = key;
    e->conn = conn;
    e->users = 1;
    g_hash_table_insert(cache, e->key, e);
    g_hash_table_insert(cache_by_conn, conn, e);
    if (!reaper)
        reaper = g_thread_try_new("gfpool-conn-idle", reaper_thread, NULL, NULL);
    return old;
}


static void drop_and_unlock(CacheEntry *e);

/*
 * An outdated connection (the volume's settings changed, gfpool_conn.h) is
 * replaced as soon as a fresh connect works, and serves until then: between
 * an administrator's `volume set` and the volume's restart, a client with
 * the new settings (TLS, privileged ports) is refused by bricks that still
 * run with the old ones, while the old client goes on working.
 */
static GfpoolConn *
cache_get(const GfpoolSource *src, GError **error)
{
    g_autofree char *key = cache_key(src);
    g_autoptr(GError) err = NULL;
    CacheEntry *e;
    CacheEntry *replaced;
    GfpoolConn *conn;

    g_mutex_lock(&cache_lock);
    if (cache && (e = g_hash_table_lookup(cache, key)) && !gfpool_conn_outdated(e->conn)) {
        e->users++;
        g_mutex_unlock(&cache_lock);
        return e->conn;
    }
    g_mutex_unlock(&cache_lock);

    conn = connect_whole(src, &err);

    g_mutex_lock(&cache_lock);
    e = cache ? g_hash_table_lookup(cache, key) : NULL;
    if (!conn) {
        if (e) {
            g_debug("%s; the outdated connection to gluster volume '%s' serves meanwhile",
                    err->message, src->volume);
            e->users++;
            g_mutex_unlock(&cache_lock);
            return e->conn;
        }
        g_mutex_unlock(&cache_lock);
        g_propagate_error(error, g_steal_pointer(&err));
        return NULL;
    }
    /* Connects of one key that race both finish; the loser's goes. */
    if (e && !gfpool_conn_outdated(e->conn)) {
        e->users++;
        g_mutex_unlock(&cache_lock);
        gfpool_conn_close(conn);
        return e->conn;
    }
    replaced = insert_locked(g_steal_pointer(&key), conn);
    if (replaced)
        drop_and_unlock(replaced);
    else
        g_mutex_unlock(&cache_lock);
    return conn;
}


/* A discarded entry whose last user left: forget it, and close its
 * connection outside the lock. */
static void
drop_and_unlock(CacheEntry *e)
{
    GfpoolConn *conn = e->conn;

    g_hash_table_remove(cache_by_conn, conn);
    cache_entry_free(e);
    g_mutex_unlock(&cache_lock);
    gfpool_conn_close(conn);
}


static void
cache_put(GfpoolConn *conn)
{
    CacheEntry *e;

    g_mutex_lock(&cache_lock);
    if (!cache_by_conn || !(e = g_hash_table_lookup(cache_by_conn, conn)) ||
        e->users == 0 || --e->users > 0) {
        g_mutex_unlock(&cache_lock);
        return;
    }
    if (e->discarded) {
        drop_and_unlock(e);
        return;
    }
    e->idle_since = g_get_monotonic_time();
    g_cond_broadcast(&cache_cond);
    g_mutex_unlock(&cache_lock);
}


static void
cache_discard(GfpoolConn *conn)
{
    GfpoolConn *shared = gfpool_conn_view_shared(conn);
    CacheEntry *e;

    if (!shared)
        shared = conn;
    g_mutex_lock(&cache_lock);
    if (!cache_by_conn || !(e = g_hash_table_lookup(cache_by_conn, shared)) || e->discarded) {
        g_mutex_unlock(&cache_lock);
        return;
    }
    g_hash_table_steal(cache, e->key);
    e->discarded = TRUE;
    if (e->users == 0) {
        drop_and_unlock(e);
        return;
    }
    g_mutex_unlock(&cache_lock);
}


/*
 * A pool always gets a connection of its own, opened now: its traffic (a
 * 256 MiB upload) does not queue behind another pool's on one client, and
 * a pool started after servers went away and came back never inherits a
 * client that lived through it. That connection becomes the one of its key,
 * so libvirt's checks of the chains of the pool's guests use it.
 */
static GfpoolConn *
cache_open(const GfpoolSource *src, unsigned int flags, GError **error)
{
    g_autofree char *key = cache_key(src);
    CacheEntry *replaced;
    GfpoolConn *shared;
    GfpoolConn *view;

    if (!(shared = connect_whole(src, error)))
        return NULL;
    g_mutex_lock(&cache_lock);
    replaced = insert_locked(g_steal_pointer(&key), shared);
    if (replaced)
        drop_and_unlock(replaced);
    else
        g_mutex_unlock(&cache_lock);

    if (!(view = gfpool_conn_view_new(shared, src, flags, error)))
        cache_put(shared);
    return view;
}


/* What other gfpool modules of this process look up (see the top). */
extern const GfpoolConnCacheOps gfpool_conn_cache_shared;
const GfpoolConnCacheOps gfpool_conn_cache_shared = {
    .abi = CACHE_ABI,
    .version = GFPOOL_VERSION,
    .get = cache_get,
    .open = cache_open,
    .put = cache_put,
    .discard = cache_discard,
};

static const GfpoolConnCacheOps *
cache_ops(void)
{
    static const GfpoolConnCacheOps *ops;

    if (g_once_init_enter(&ops)) {
        const GfpoolConnCacheOps *found = dlsym(RTLD_DEFAULT, "gfpool_conn_cache_shared");
        const GfpoolConnCacheOps *use = &gfpool_conn_cache_shared;

        if (found && found != use) {
            if (found->abi == CACHE_ABI && g_str_equal(found->version, GFPOOL_VERSION))
                use = found;
            else
                g_warning("another gfpool module (version %s) is loaded: its "
                          "gluster connections are not shared with this one's (%s)",
                          found->version, GFPOOL_VERSION);
        }
        g_once_init_leave(&ops, use);
    }
    return ops;
}


GfpoolConn *
gfpool_conn_cache_get(const GfpoolSource *src, GError **error)
{
    return cache_ops()->get(src, error);
}


GfpoolConn *
gfpool_conn_cache_open(const GfpoolSource *src, unsigned int flags, GError **error)
{
    return cache_ops()->open(src, flags, error);
}


void
gfpool_conn_cache_put(GfpoolConn *conn)
{
    if (conn)
        cache_ops()->put(conn);
}


void
gfpool_conn_cache_discard(GfpoolConn *conn)
{
    if (conn)
        cache_ops()->discard(conn);
}
