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

/* The fields of one [group], pointing into the loaded text. */
typedef struct {
    const char *name;
    const char *size, *mtime_ns, *ctime_ns, *capacity, *cluster_size;
    const char *format, *recorded, *backing, *backing_format, *warning, *version;
} CacheGroup;

static void
cache_group_set(CacheGroup *g, const char *key, const char *value)
{
    static const struct {
        const char *key;
        gsize offset;
    } fields[] = {
        { "size", G_STRUCT_OFFSET(CacheGroup, size) },
        { "mtime_ns", G_STRUCT_OFFSET(CacheGroup, mtime_ns) },
        { "ctime_ns", G_STRUCT_OFFSET(CacheGroup, ctime_ns) },
        { "capacity", G_STRUCT_OFFSET(CacheGroup, capacity) },
        { "cluster_size", G_STRUCT_OFFSET(CacheGroup, cluster_size) },
        { "format", G_STRUCT_OFFSET(CacheGroup, format) },
        { "recorded", G_STRUCT_OFFSET(CacheGroup, recorded) },
        { "backing", G_STRUCT_OFFSET(CacheGroup, backing) },
        { "backing_format", G_STRUCT_OFFSET(CacheGroup, backing_format) },
        { "warning", G_STRUCT_OFFSET(CacheGroup, warning) },
        { "version", G_STRUCT_OFFSET(CacheGroup, version) },
    };

    for (gsize i = 0; i < G_N_ELEMENTS(fields); i++) {
        if (g_str_equal(fields[i].key, key)) {
            G_STRUCT_MEMBER(const char *, g, fields[i].offset) = value;
            return;
        }
    }
}

/* A string value as cache_append_string wrote it; NULL when it is not. */
static char *
cache_parse_string(const char *value)
{
    g_autoptr(GString) out = g_string_new(NULL);

    for (const char *c = value; *c; c++) {
        if (*c != '\\') {
            g_string_append_c(out, *c);
            continue;
        }
        switch (*++c) {
        case 's': g_string_append_c(out, ' '); break;
        case 'n': g_string_append_c(out, '\n'); break;
        case 't': g_string_append_c(out, '\t'); break;
        case 'r': g_string_append_c(out, '\r'); break;
        case '\\': g_string_append_c(out, '\\'); break;
        default: return NULL;
        }
    }
    if (!g_utf8_validate(out->str, (gssize)out->len, NULL))
        return NULL;
    return g_string_free(g_steal_pointer(&out), FALSE);
}

static gboolean
cache_parse_u64(const char *s, guint64 max, guint64 *out)
{
    return s && g_ascii_string_to_unsigned(s, 10, 0, max, out, NULL);
}

static gboolean
cache_parse_i64(const char *s, gint64 *out)
{
    return s && g_ascii_string_to_signed(s, 10, G_MININT64, G_MAXINT64, out, NULL);
}

/* The entry a group describes, or NULL when it is not a sound one. */
static CacheEntry *
cache_entry_parse(const CacheGroup *g, int version)
{
    g_autoptr(GError) err = NULL;
    CacheEntry *e;
    guint64 cluster;
    int f, bf = GFPOOL_FORMAT_NONE;

    if (strlen(g->name) != 16)
        return NULL;
    e = g_new0(CacheEntry, 1);
    if (!g_ascii_string_to_unsigned(g->name, 16, 0, G_MAXUINT64, &e->stamp.ino, NULL) ||
        !cache_parse_u64(g->size, G_MAXUINT64, &e->stamp.size) ||
        !cache_parse_i64(g->mtime_ns, &e->stamp.mtime_ns) ||
        !cache_parse_i64(g->ctime_ns, &e->stamp.ctime_ns) ||
        !cache_parse_u64(g->capacity, G_MAXUINT64, &e->capacity) ||
        !cache_parse_u64(g->cluster_size, G_MAXUINT32, &cluster) ||
        !g->format || (f = gfpool_format_from_string(g->format)) <= GFPOOL_FORMAT_NONE)
        goto bad;
    e->cluster_size = (guint32)cluster;
    e->format = f;
    if (version >= 4) {
        if (g_strcmp0(g->recorded, "true") == 0 || g_strcmp0(g->recorded, "1") == 0)
            e->recorded = TRUE;
        else if (g_strcmp0(g->recorded, "false") != 0 && g_strcmp0(g->recorded, "0") != 0)
            goto bad;
    }
    if (g->backing && !(e->backing = cache_parse_string(g->backing)))
        goto bad;
    if (g->backing_format && (bf = gfpool_format_from_string(g->backing_format)) < 0)
        goto bad;
    e->backing_format = bf;
    if (g->warning && !(e->warning = cache_parse_string(g->warning)))
        goto bad;
    return e;
 bad:
    cache_entry_free(e);
    return NULL;
}

/*
 * Read line by line rather than with GKeyFile: a GKeyFile of 50,000
 * groups is half a million small allocations, whose freed memory
 * libvirtd's heap kept (1.4 KB of RSS per entry). The file is read as
 * GKeyFile would: a line that is no group, key, comment or blank makes
 * the whole file unreadable; a group that is not a sound entry is skipped
 * alone.
 */
void
gfpool_probe_cache_load(GfpoolProbeCache *c, const char *path)
{
    g_autofree char *text = NULL;
    g_autoptr(GArray) groups = g_array_new(FALSE, TRUE, sizeof(CacheGroup));
    CacheGroup *g = NULL;
    const char *version = NULL;
    guint64 v;
    char *line;
    char *next;

    if (!g_file_get_contents(path, &text, NULL, NULL))
        return;
    for (line = text; line; line = next) {
        char *eq;
        gsize len;

        if ((next = strchr(line, '\n')))
            *next++ = '\0';
        len = strlen(line);
        if (len == 0 || line[0] == '#')
            continue;
        if (line[0] == '[') {
            if (line[len - 1] != ']' || len < 3 || memchr(line + 1, ']', len - 2))
                return;
            line[len - 1] = '\0';
            g_array_set_size(groups, groups->len + 1);
            g = &g_array_index(groups, CacheGroup, groups->len - 1);
            g->name = line + 1;
            continue;
        }
        if (!g || !(eq = strchr(line, '=')) || eq == line)
            return;
        *eq = '\0';
        cache_group_set(g, line, eq + 1);
    }
    for (guint i = 0; i < groups->len; i++) {
        if (g_str_equal(g_array_index(groups, CacheGroup, i).name, "gfpool"))
            version = g_array_index(groups, CacheGroup, i).version;
    }
    if (!cache_parse_u64(version, G_MAXINT, &v) || (v != CACHE_FILE_VERSION && v != 3))
        return;

    g_mutex_lock(&c->lock);
    for (guint i = 0; i < groups->len; i++) {
        CacheEntry *e = cache_entry_parse(&g_array_index(groups, CacheGroup, i), (int)v);

        if (e)
            g_hash_table_replace(c->entries, &e->stamp.ino, e);
    }
    g_mutex_unlock(&c->lock);
}

/* A string value as GKeyFile writes one and reads it back. */
static void
cache_append_string(GString *out, const char *key, const char *value)
{
    g_string_append_printf(out, "%s=", key);
    for (const char *c = value; *c; c++) {
        switch (*c) {
        case ' ':
            g_string_append(out, c == value ? "\\s" : " ");
            break;
        case '\n':
            g_string_append(out, "\\n");
            break;
        case '\t':
            g_string_append(out, "\\t");
            break;
        case '\r':
            g_string_append(out, "\\r");
            break;
        case '\\':
            g_string_append(out, "\\\\");
            break;
        default:
            g_string_append_c(out, *c);
        }
    }
    g_string_append_c(out, '\n');
}

/*
 * Written as text straight into one buffer, read with GKeyFile: a GKeyFile
 * built to write 50,000 entries is half a million small allocations, which
 * libvirtd's heap kept after they were freed (1.3 KB of RSS per entry).
 */
gboolean
gfpool_probe_cache_save(GfpoolProbeCache *c, const char *path, GError **error)
{
    g_autoptr(GString) out = NULL;
    GHashTableIter it;
    gpointer value;

    g_mutex_lock(&c->lock);
    if (!c->dirty && g_file_test(path, G_FILE_TEST_EXISTS)) {
        g_mutex_unlock(&c->lock);
        return TRUE;
    }
    c->dirty = FALSE;
    out = g_string_sized_new(64 + 160 * g_hash_table_size(c->entries));
    g_string_append_printf(out, "[gfpool]\nversion=%d\n", CACHE_FILE_VERSION);
    g_hash_table_iter_init(&it, c->entries);
    while (g_hash_table_iter_next(&it, NULL, &value)) {
        CacheEntry *e = value;

        g_string_append_printf(out, "\n[%016" G_GINT64_MODIFIER "x]\n"
                               "size=%" G_GUINT64_FORMAT "\n"
                               "mtime_ns=%" G_GINT64_FORMAT "\n"
                               "ctime_ns=%" G_GINT64_FORMAT "\n"
                               "format=%s\n"
                               "recorded=%s\n"
                               "capacity=%" G_GUINT64_FORMAT "\n"
                               "cluster_size=%u\n",
                               e->stamp.ino, e->stamp.size, e->stamp.mtime_ns,
                               e->stamp.ctime_ns, gfpool_format_to_string(e->format),
                               e->recorded ? "true" : "false", e->capacity, e->cluster_size);
        if (e->backing)
            cache_append_string(out, "backing", e->backing);
        if (e->backing_format != GFPOOL_FORMAT_NONE)
            g_string_append_printf(out, "backing_format=%s\n",
                                   gfpool_format_to_string(e->backing_format));
        if (e->warning)
            cache_append_string(out, "warning", e->warning);
    }
    g_mutex_unlock(&c->lock);

    /* g_file_set_contents writes a temp file and renames it over. */
    if (!g_file_set_contents(path, out->str, (gssize)out->len, error)) {
        g_mutex_lock(&c->lock);
        c->dirty = TRUE;
        g_mutex_unlock(&c->lock);
        return FALSE;
    }
    return TRUE;
}
