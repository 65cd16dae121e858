/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gfpool_probe_cache.c: the probe cache (see gfpool_volume.h), in memory
 * and in its file. It only remembers what the refresh probed: no gfapi
 * call in here.
 */
#include <string.h>

#include "gfpool_volume.h"
#include "gfpool_volume_priv.h"

typedef struct {
    GfpoolFileStamp stamp;
    GfpoolFormat format;
    gboolean recorded;
    guint64 capacity;
    guint32 cluster_size;
    char *backing;
    GfpoolFormat backing_format;
    char *warning;
} CacheEntry;

struct _GfpoolProbeCache {
    GMutex lock;
    GHashTable *entries;   /* &ino (owned by the entry) -> CacheEntry */
    /* Something changed since the file was last read or written: a pool of
     * tens of thousands of unchanged images need not rewrite megabytes at
     * every refresh. */
    gboolean dirty;
};

static void
cache_entry_free(gpointer p)
{
    CacheEntry *e = p;
    g_free(e->backing);
    g_free(e->warning);
    g_free(e);
}

GfpoolProbeCache *
gfpool_probe_cache_new(void)
{
    GfpoolProbeCache *c = g_new0(GfpoolProbeCache, 1);
    g_mutex_init(&c->lock);
    c->entries = g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL, cache_entry_free);
    return c;
}

void
gfpool_probe_cache_free(GfpoolProbeCache *c)
{
    if (!c)
        return;
    g_hash_table_unref(c->entries);
    g_mutex_clear(&c->lock);
    g_free(c);
}

gboolean
gfpool_probe_cache_lookup(GfpoolProbeCache *c, const GfpoolFileStamp *stamp, GfpoolVolInfo *info)
{
    CacheEntry *e;
    gboolean hit = FALSE;

    if (!c)
        return FALSE;
    g_mutex_lock(&c->lock);
    e = g_hash_table_lookup(c->entries, &stamp->ino);
    if (e && memcmp(&e->stamp, stamp, sizeof(*stamp)) == 0) {
        info->format = e->format;
        info->recorded = e->recorded;
        info->capacity = e->capacity;
        info->cluster_size = e->cluster_size;
        info->backing = g_strdup(e->backing);
        info->backing_format = e->backing_format;
        info->warning = g_strdup(e->warning);
        hit = TRUE;
    }
    g_mutex_unlock(&c->lock);
    return hit;
}

void
gfpool_probe_cache_store(GfpoolProbeCache *c, const GfpoolFileStamp *stamp, const GfpoolVolInfo *info)
{
    CacheEntry *e;

    if (!c)
        return;
    e = g_new0(CacheEntry, 1);
    e->stamp = *stamp;
    e->format = info->format;
    e->recorded = info->recorded;
    e->capacity = info->capacity;
    e->cluster_size = info->cluster_size;
    e->backing = g_strdup(info->backing);
    e->backing_format = info->backing_format;
    e->warning = g_strdup(info->warning);
    g_mutex_lock(&c->lock);
    g_hash_table_replace(c->entries, &e->stamp.ino, e);
    c->dirty = TRUE;
    g_mutex_unlock(&c->lock);
}

void
gfpool_probe_cache_forget_missing(GfpoolProbeCache *c, GHashTable *seen)
{
    GHashTableIter it;
    gpointer key;

    if (!c)
        return;
    g_mutex_lock(&c->lock);
    g_hash_table_iter_init(&it, c->entries);
    while (g_hash_table_iter_next(&it, &key, NULL)) {
        if (!g_hash_table_contains(seen, key)) {
            g_hash_table_iter_remove(&it);
            c->dirty = TRUE;
        }
    }
    g_mutex_unlock(&c->lock);
}

/*
 * On-disk form: a GVariant "(ua(ayttxxuutsusms))"-like record list would be
 * neat but brittle to evolve; a plain key file is easy to validate entry by
 * entry and to read when debugging. One group per inode number (hex).
 * Version 3: corrupt images keep their signature's format (were raw).
 * Version 4: whether the format came from the volume's record. A version 3
 * entry is one without: a record written since (by any host) changed the
 * file's ctime, so its stamp no longer matches.
 */
#define CACHE_FILE_VERSION 4

void
gfpool_probe_cache_load(GfpoolProbeCache *c, const char *path)
{
    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_auto(GStrv) groups = NULL;
    int version;

    if (!g_key_file_load_from_file(kf, path, G_KEY_FILE_NONE, NULL))
        return;
    version = g_key_file_get_integer(kf, "gfpool", "version", NULL);
    if (version != CACHE_FILE_VERSION && version != 3)
        return;

    groups = g_key_file_get_groups(kf, NULL);
    for (gsize i = 0; groups[i]; i++) {
        const char *g = groups[i];
        g_autoptr(GError) err = NULL;
        g_autofree char *fmt = NULL;
        g_autofree char *bfmt = NULL;
        CacheEntry *e;
        int f, bf = GFPOOL_FORMAT_NONE;

        if (strlen(g) != 16)
            continue;
        e = g_new0(CacheEntry, 1);
        if (!g_ascii_string_to_unsigned(g, 16, 0, G_MAXUINT64, &e->stamp.ino, NULL))
            goto bad;
        e->stamp.size = g_key_file_get_uint64(kf, g, "size", &err);
        if (err)
            goto bad;
        e->stamp.mtime_ns = g_key_file_get_int64(kf, g, "mtime_ns", &err);
        if (err)
            goto bad;
        e->stamp.ctime_ns = g_key_file_get_int64(kf, g, "ctime_ns", &err);
        if (err)
            goto bad;
        e->capacity = g_key_file_get_uint64(kf, g, "capacity", &err);
        if (err)
            goto bad;
        e->cluster_size = (guint32)g_key_file_get_uint64(kf, g, "cluster_size", &err);
        if (err)
            goto bad;
        fmt = g_key_file_get_string(kf, g, "format", &err);
        if (err || (f = gfpool_format_from_string(fmt)) <= GFPOOL_FORMAT_NONE)
            goto bad;
        e->format = f;
        if (version >= 4) {
            e->recorded = g_key_file_get_boolean(kf, g, "recorded", &err);
            if (err)
                goto bad;
        }
        e->backing = g_key_file_get_string(kf, g, "backing", NULL);
        bfmt = g_key_file_get_string(kf, g, "backing_format", NULL);
        if (bfmt && (bf = gfpool_format_from_string(bfmt)) < 0)
            goto bad;
        e->backing_format = bf;
        e->warning = g_key_file_get_string(kf, g, "warning", NULL);
        g_mutex_lock(&c->lock);
        g_hash_table_replace(c->entries, &e->stamp.ino, e);
        g_mutex_unlock(&c->lock);
        continue;
 bad:
        cache_entry_free(e);
    }
}

gboolean
gfpool_probe_cache_save(GfpoolProbeCache *c, const char *path, GError **error)
{
    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_autofree char *data = NULL;
    GHashTableIter it;
    gpointer value;
    gsize len;

    g_mutex_lock(&c->lock);
    if (!c->dirty && g_file_test(path, G_FILE_TEST_EXISTS)) {
        g_mutex_unlock(&c->lock);
        return TRUE;
    }
    c->dirty = FALSE;
    g_key_file_set_integer(kf, "gfpool", "version", CACHE_FILE_VERSION);
    g_hash_table_iter_init(&it, c->entries);
    while (g_hash_table_iter_next(&it, NULL, &value)) {
        CacheEntry *e = value;
        char g[17];

        g_snprintf(g, sizeof(g), "%016" G_GINT64_MODIFIER "x", e->stamp.ino);
        g_key_file_set_uint64(kf, g, "size", e->stamp.size);
        g_key_file_set_int64(kf, g, "mtime_ns", e->stamp.mtime_ns);
        g_key_file_set_int64(kf, g, "ctime_ns", e->stamp.ctime_ns);
        g_key_file_set_string(kf, g, "format", gfpool_format_to_string(e->format));
        g_key_file_set_boolean(kf, g, "recorded", e->recorded);
        g_key_file_set_uint64(kf, g, "capacity", e->capacity);
        g_key_file_set_uint64(kf, g, "cluster_size", e->cluster_size);
        if (e->backing)
            g_key_file_set_string(kf, g, "backing", e->backing);
        if (e->backing_format != GFPOOL_FORMAT_NONE)
            g_key_file_set_string(kf, g, "backing_format",
                                  gfpool_format_to_string(e->backing_format));
        if (e->warning)
            g_key_file_set_string(kf, g, "warning", e->warning);
    }
    g_mutex_unlock(&c->lock);

    data = g_key_file_to_data(kf, &len, NULL);
    /* g_file_set_contents writes a temp file and renames it over. */
    if (!g_file_set_contents(path, data, len, error)) {
        g_mutex_lock(&c->lock);
        c->dirty = TRUE;
        g_mutex_unlock(&c->lock);
        return FALSE;
    }
    return TRUE;
}
