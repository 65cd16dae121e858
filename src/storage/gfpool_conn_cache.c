/*
 * gfpool_conn_cache.c: connections shared by key (volume + hosts in order)
 * for callers that open often and briefly, and closed in the background
 * once idle (see gfpool_conn.h).
 */
#include "gfpool_conn.h"

/* How long an unused connection is kept: long enough to span a guest's
 * start (one open per image of its chain, then QEMU's own), a snapshot or a
 * migration; short enough not to hold bricks' resources for nothing.
 * GFPOOL_CONN_IDLE_S overrides. */
#define CONN_IDLE_S_DEFAULT 60

typedef struct {
    char *key;
    GfpoolConn *conn;
    guint users;
    gint64 idle_since;      /* monotonic, when users dropped to 0 */
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

static char *
cache_key(const GfpoolSource *src)
{
    g_autofree char *hosts = gfpool_source_hosts_string(src);
    return g_strdup_printf("%s %s", src->volume, hosts);
}

GfpoolConn *
gfpool_conn_cache_get(const GfpoolSource *src, GError **error)
{
    g_autofree char *key = cache_key(src);
    g_autoptr(GfpoolSource) whole = NULL;
    CacheEntry *e;
    GfpoolConn *conn;

    g_mutex_lock(&cache_lock);
    if (!cache) {
        cache = g_hash_table_new_full(g_str_hash, g_str_equal, NULL,
                                      (GDestroyNotify)cache_entry_free);
        cache_by_conn = g_hash_table_new(g_direct_hash, g_direct_equal);
    }
    if ((e = g_hash_table_lookup(cache, key))) {
        e->users++;
        g_mutex_unlock(&cache_lock);
        return e->conn;
    }
    g_mutex_unlock(&cache_lock);

    /* The whole volume: every caller names paths from its root. Connects
     * of one key that race both finish; the loser's goes. Attempts on a
     * host that never answers do not pile up (gfpool_conn_open). */
    whole = gfpool_source_copy(src);
    g_free(whole->dir);
    whole->dir = g_strdup("/");
    if (!(conn = gfpool_conn_open_flags(whole, 0, GFPOOL_CONN_OPEN_NO_DIR, error)))
        return NULL;

    g_mutex_lock(&cache_lock);
    if ((e = g_hash_table_lookup(cache, key))) {
        e->users++;
        g_mutex_unlock(&cache_lock);
        gfpool_conn_close(conn);
        return e->conn;
    }
    e = g_new0(CacheEntry, 1);
    e->key = g_steal_pointer(&key);
    e->conn = conn;
    e->users = 1;
    g_hash_table_insert(cache, e->key, e);
    g_hash_table_insert(cache_by_conn, conn, e);
    if (!reaper)
        reaper = g_thread_try_new("gfpool-conn-idle", reaper_thread, NULL, NULL);
    g_mutex_unlock(&cache_lock);
    return conn;
}

void
gfpool_conn_cache_put(GfpoolConn *conn)
{
    CacheEntry *e;

    if (!conn)
        return;
    g_mutex_lock(&cache_lock);
    if ((e = g_hash_table_lookup(cache_by_conn, conn)) && e->users > 0 && --e->users == 0) {
        e->idle_since = g_get_monotonic_time();
        g_cond_broadcast(&cache_cond);
    }
    g_mutex_unlock(&cache_lock);
}
