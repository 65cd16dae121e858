/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gfpool_volume.c: the volume verbs over one gfapi connection: names,
 * keys and backing chains, vol-create, the publishing every new volume goes
 * through, vol-delete. Listing is gfpool_refresh.c's, the pool verbs
 * gfpool_pool.c's.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "gfpool_record.h"
#include "gfpool_uri.h"
#include "gfpool_volume.h"
#include "gfpool_volume_priv.h"


void
gfpool_vol_info_free(GfpoolVolInfo *info)
{
    if (!info)
        return;
    g_free(info->name);
    g_free(info->backing);
    g_free(info->warning);
    g_free(info);
}


/* XML 1.0 cannot carry C0 controls other than tab, LF and CR at all, and
 * attribute normalisation turns those three into spaces ("a\nb" read back
 * from a <disk> would name the volume "a b"); DEL is no better in a name
 * shown on a terminal. */
static gboolean
name_has_control_char(const char *name, gsize len)
{
    for (gsize i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20 || c == 0x7f)
            return TRUE;
    }
    return FALSE;
}


gboolean
gfpool_vol_name_validate(const char *name, gsize len, GError **error)
{
    const char *why = NULL;

    if (!name || len == 0)
        why = "it is empty";
    else if (memchr(name, '\0', len))
        why = "it contains a NUL byte";
    else if (len > 255)
        why = "it is longer than 255 bytes";
    else if (memchr(name, '/', len))
        why = "it contains '/'";
    else if (g_str_equal(name, ".") || g_str_equal(name, ".."))
        why = "'.' and '..' are not volume names";
    else if (g_str_has_prefix(name, GFPOOL_TEMP_PREFIX))
        why = "the prefix '" GFPOOL_TEMP_PREFIX "' is reserved for images being written";
    else if (!g_utf8_validate(name, (gssize)len, NULL))
        why = "it is not valid UTF-8";
    else if (name_has_control_char(name, len))
        why = "it contains a control character";

    if (why) {
        g_autofree char *shown = g_strescape(name ? name : "", NULL);
        g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_INVALID,
                    "invalid volume name '%.300s': %s", shown, why);
        return FALSE;
    }
    return TRUE;
}


GfpoolPrealloc
gfpool_prealloc_for_allocation(GfpoolFormat format, guint64 capacity, guint64 allocation)
{
    return format == GFPOOL_FORMAT_RAW && allocation > 0 && allocation >= capacity ?
        GFPOOL_PREALLOC_FALLOC : GFPOOL_PREALLOC_OFF;
}


char *
gfpool_vol_key(GfpoolConn *conn, const char *name)
{
    const GfpoolSource *src = gfpool_conn_source(conn);

    return gfpool_uri_for_volume(g_ptr_array_index(src->hosts, 0), src->volume, src->dir, name);
}


char *
gfpool_vol_backing_key(GfpoolConn *conn, const char *backing)
{
    g_autofree char *name = gfpool_backing_volume_name(conn, backing);

    return name ? gfpool_vol_key(conn, name) : g_strdup(backing);
}

char *
gfpool_backing_volume_name(GfpoolConn *conn, const char *backing)
{
    g_autofree char *name = gfpool_uri_pool_volume_name(gfpool_conn_source(conn), backing);

    if (!name || !gfpool_vol_name_validate(name, strlen(name), NULL))
        return NULL;
    return g_steal_pointer(&name);
}


/* ---- vol-create ----------------------------------------------------- */

gboolean
gfpool_format_writable(int format, const char *what, GError **error)
{
    if (format == GFPOOL_FORMAT_RAW || format == GFPOOL_FORMAT_QCOW2)
        return TRUE;
    g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_UNSUPPORTED,
                "cannot %s of format '%s': supported formats are raw and qcow2", what,
                format > GFPOOL_FORMAT_NONE ? gfpool_format_to_string(format) : "unknown");
    return FALSE;
}

gboolean
gfpool_create_format_parse(const char *s, GfpoolFormat *format, GError **error)
{
    int f = gfpool_format_from_string(s);

    if (f < 0) {
        g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_UNSUPPORTED,
                    "cannot create volumes of format '%s': supported formats are raw and qcow2",
                    s ? s : "");
        return FALSE;
    }
    if (!gfpool_format_writable(f, "create volumes", error))
        return FALSE;
    *format = f;
    return TRUE;
}

GPtrArray *
gfpool_vol_backing_chain(GfpoolConn *conn, const char *name, GfpoolProbeCache *cache,
                         GError **error)
{
    g_autoptr(GPtrArray) chain = g_ptr_array_new_with_free_func((GDestroyNotify)gfpool_vol_info_free);
    g_autoptr(GHashTable) seen = g_hash_table_new(g_str_hash, g_str_equal);
    const char *next = name;

    while (next) {
        g_autofree char *cur = NULL;
        GfpoolVolInfo *info;

        if (chain->len >= GFPOOL_BACKING_DEPTH_MAX) {
            g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_INVALID,
                        "backing chain of '%s' is longer than %d images",
                        name, GFPOOL_BACKING_DEPTH_MAX);
            return NULL;
        }
        /* QEMU resolves a relative backing name against the overlay's
         * directory, the pool dir; a snapshot's overlay names its backing
         * file by URI or json: */
        if (!(cur = chain->len ? gfpool_backing_volume_name(conn, next) : g_strdup(next)) ||
            !gfpool_vol_name_validate(cur, strlen(cur), NULL)) {
            g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_INVALID,
                        "backing file '%s' in the chain of '%s' is not a volume of the pool",
                        next, name);
            return NULL;
        }
        if (g_hash_table_contains(seen, cur)) {
            g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_INVALID,
                        "backing chain of '%s' loops back to '%s'", name, cur);
            return NULL;
        }
        if (!(info = gfpool_vol_info(conn, cur, cache, error))) {
            if (chain->len > 0)
                g_prefix_error(error, "backing chain of '%s': ", name);
            return NULL;
        }
        if (info->kind != GFPOOL_VOL_FILE) {
            g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_INVALID,
                        "'%s' in the chain of '%s' is a directory", cur, name);
            gfpool_vol_info_free(info);
            return NULL;
        }
        if (chain->len > 0) {
            const GfpoolVolInfo *above = g_ptr_array_index(chain, chain->len - 1);
            if (!gfpool_backing_format_check(above->name, above->backing_format, info->name,
                                             info->format, info->recorded, error)) {
                gfpool_vol_info_free(info);
                return NULL;
            }
        }
        g_ptr_array_add(chain, info);
        g_hash_table_add(seen, info->name);
        next = info->backing;
    }
    return g_steal_pointer(&chain);
}

/*
 * A backing file must be a volume of this pool whose chain ends within
 * GFPOOL_BACKING_DEPTH_MAX without a loop, and must not lead back to the
 * image being created. Returns the backing volume's format and capacity.
 */
static gboolean
check_backing_chain(GfpoolConn *conn, const char *overlay, const char *backing,
                    GfpoolFormat *format, guint64 *capacity, GError **error)
{
    g_autoptr(GPtrArray) chain = NULL;
    const GfpoolVolInfo *top;

    if (g_str_equal(overlay, backing)) {
        g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_INVALID,
                    "volume '%s' cannot be its own backing file", overlay);
        return FALSE;
    }
    if (!(chain = gfpool_vol_backing_chain(conn, backing, NULL, error))) {
        if (g_error_matches(*error, GFPOOL_ERROR, GFPOOL_ERROR_NOT_FOUND))
            g_prefix_error(error, "backing volume of '%s': ", overlay);
        return FALSE;
    }
    for (guint i = 0; i < chain->len; i++) {
        const GfpoolVolInfo *l = g_ptr_array_index(chain, i);
        if (g_str_equal(l->name, overlay)) {
            g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_INVALID,
                        "backing chain of '%s' loops back to '%s'", backing, overlay);
            return FALSE;
        }
        /* QEMU would not open the overlay either */
        if (l->warning) {
            g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_INVALID,
                        "backing volume '%s' of '%s' cannot be used: %s", l->name, overlay,
                        l->warning);
            return FALSE;
        }
    }
    top = g_ptr_array_index(chain, 0);
    *format = top->format;
    *capacity = top->capacity;
    return TRUE;
}

static char *
temp_name(void)
{
    return g_strdup_printf(GFPOOL_TEMP_PREFIX "%08x%08x", g_random_int(), g_random_int());
}

static gboolean
create_write_image(GfpoolConn *conn, glfs_fd_t *fd, const GfpoolVolCreateParams *p,
                   guint64 capacity, GfpoolFormat backing_format, GError **error)
{
    guint64 file_size = capacity;

    /* Find out now, not after minutes of writing, that the bricks' file
     * system cannot hold a file this large (fallocate finds out by itself). */
    if ((p->prealloc == GFPOOL_PREALLOC_FULL ||
         (p->format == GFPOOL_FORMAT_QCOW2 && p->prealloc == GFPOOL_PREALLOC_METADATA)) &&
        (glfs_ftruncate(fd, (off_t)capacity, NULL, NULL) < 0 ||
         glfs_ftruncate(fd, 0, NULL, NULL) < 0)) {
        return gfpool_set_error_errno(error, errno, NULL,
                                      "cannot make a file of %" G_GUINT64_FORMAT " bytes",
                                      capacity);
    }

    if (p->format == GFPOOL_FORMAT_QCOW2) {
        GfpoolQcow2Params q = {
            .capacity = capacity,
            .cluster_size = p->cluster_size,
            .backing = p->backing,
            .backing_format = backing_format,
            .prealloc_metadata = p->prealloc == GFPOOL_PREALLOC_METADATA,
        };
        if (!gfpool_qcow2_create(&q, gfpool_glfs_fd_write, fd, &file_size, error))
            return FALSE;
    } else if (p->prealloc == GFPOOL_PREALLOC_FALLOC) {
        if (glfs_fallocate(fd, 0, 0, (off_t)capacity) < 0) {
            return gfpool_set_error_errno(error, errno, NULL,
                                          "cannot allocate %" G_GUINT64_FORMAT " bytes",
                                          capacity);
        }
    } else if (p->prealloc == GFPOOL_PREALLOC_FULL) {
        if (!gfpool_glfs_fd_zero(fd, 0, capacity, error))
            return FALSE;
    }

    /* fallocate already gave the file its size: one round trip less. */
    if (!(p->format == GFPOOL_FORMAT_RAW && p->prealloc == GFPOOL_PREALLOC_FALLOC) &&
        glfs_ftruncate(fd, (off_t)file_size, NULL, NULL) < 0) {
        return gfpool_set_error_errno(error, errno, NULL,
                                      "cannot set the size to %" G_GUINT64_FORMAT " bytes",
                                      file_size);
    }
    return TRUE;
}

/* ---- publishing a new volume ---------------------------------------- */

static gboolean
apply_perms(glfs_fd_t *fd, const GfpoolNewVolume *nv, GError **error)
{
    if (nv->mode > 07777) {
        g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_INVALID,
                    "invalid mode 0%" G_GINT64_MODIFIER "o", nv->mode);
        return FALSE;
    }
    if (nv->uid >= 0 || nv->gid >= 0) {
        if (glfs_fchown(fd, nv->uid >= 0 ? (uid_t)nv->uid : (uid_t)-1,
                        nv->gid >= 0 ? (gid_t)nv->gid : (gid_t)-1) < 0) {
            return gfpool_set_error_errno(error, errno, NULL,
                                          "cannot set owner %" G_GINT64_FORMAT ":%"
                                          G_GINT64_FORMAT, nv->uid, nv->gid);
        }
    }
    /* After chown, which may clear set-id bits; the temp file was created
     * 0600, so the default needs no round trip. */
    if ((nv->mode >= 0 && nv->mode != 0600) || nv->uid >= 0 || nv->gid >= 0) {
        if (glfs_fchmod(fd, nv->mode >= 0 ? (mode_t)nv->mode : 0600) < 0) {
            return gfpool_set_error_errno(error, errno, NULL, "cannot set mode");
        }
    }
    return TRUE;
}

/*
 * Removing a temp name fails for a moment when a brick dies just then
 * (seen in the node-kill test, now and then even after 3 tries); a failed
 * create's temp file would otherwise stay until the 6-hour sweep. So the
 * name is remembered as nobody's, and the next refresh of its directory in
 * this process removes it (gfpool_sweep_run). ENOENT: a refresh removed it.
 */
static gboolean
remove_temp(GfpoolConn *conn, const char *tmp_path)
{
    int err;

    for (guint attempt = 0; attempt < 3; attempt++) {
        if (attempt > 0)
            g_usleep(200 * 1000 * attempt);
        if (glfs_unlink(gfpool_conn_glfs(conn), tmp_path) == 0 || errno == ENOENT)
            return TRUE;
    }
    /* callers report the unlink's errno, not the note's */
    err = errno;
    gfpool_sweep_note_orphan(conn, tmp_path);
    errno = err;
    return FALSE;
}

/*
 * glfs_link, once more when it says the source is missing (ENOENT, or
 * ESTALE when gfapi's cached inode of it went) while a fresh lstat finds
 * it: a source that exists is no reason to fail a create. A source that
 * is really gone stays an error: then someone removed a live creator's
 * file, and retrying would hide that.
 */
static gboolean
publish_link(glfs_t *fs, const char *tmp_path, const char *path)
{
    struct stat st;
    int err;

    if (glfs_link(fs, tmp_path, path) == 0)
        return TRUE;
    err = errno;
    if ((err == ENOENT || err == ESTALE) && glfs_lstat(fs, tmp_path, &st) == 0 &&
        S_ISREG(st.st_mode)) {
        g_message("link of '%s' said %s although it exists: trying once more",
                  tmp_path, g_strerror(err));
        if (glfs_link(fs, tmp_path, path) == 0)
            return TRUE;
        err = errno;
    }
    errno = err;
    return FALSE;
}

gboolean
gfpool_vol_publish_new(GfpoolConn *conn, const GfpoolNewVolume *nv,
                       GfpoolFillFunc fill, void *opaque, GError **error)
{
    glfs_t *fs = gfpool_conn_glfs(conn);
    const char *vol = gfpool_conn_source(conn)->volume;
    g_autofree char *path = gfpool_conn_path(conn, nv->name);
    g_autofree char *tmp = temp_name();
    g_autofree char *tmp_path = gfpool_conn_path(conn, tmp);
    glfs_fd_t *fd;
    struct stat st;

    if (!gfpool_vol_name_validate(nv->name, strlen(nv->name), error))
        return FALSE;
    /* Fail early; glfs_link below is what really guards against races. */
    if (glfs_lstat(fs, path, &st) == 0) {
        g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_EXISTS,
                    "volume '%s' already exists on gluster volume '%s'", nv->name, vol);
        return FALSE;
    }
    if (!(fd = glfs_creat(fs, tmp_path, O_CREAT | O_EXCL | O_RDWR, 0600))) {
        gfpool_set_error_errno(error, errno, conn, "cannot create temporary file '%s'", tmp);
        return FALSE;
    }
    /* The record before the name: a published volume has one. */
    if (!fill(conn, fd, opaque, error) || !gfpool_record_write(fd, nv->format, error) ||
        !apply_perms(fd, nv, error))
        goto fail;
    /* after the last write of the image's bytes: the stamp must be theirs */
    if (nv->format == GFPOOL_FORMAT_QCOW2)
        gfpool_header_record_update(fd);
    /* Written bytes must be on disk before the name points at them. A file
     * that got only a size and an allocation has nothing to lose: the
     * bricks' filesystem journals those before the later link, and a raw
     * image reads as zeros either way. On rep3 that fsync was 20 ms of a
     * preallocated raw create. */
    if (!nv->no_data && glfs_fsync(fd, NULL, NULL) < 0) {
        gfpool_set_error_errno(error, errno, NULL, "cannot flush the image");
        goto fail;
    }
    if (glfs_close(fd) < 0) {
        fd = NULL;
        gfpool_set_error_errno(error, errno, NULL, "close failed");
        goto fail;
    }
    fd = NULL;

    /* The publishing step: atomic, and EEXIST if someone else won the race. */
    if (!publish_link(fs, tmp_path, path)) {
        int err = errno;
        gboolean tmp_gone = (err == ENOENT || err == ESTALE) &&
            glfs_lstat(fs, tmp_path, &st) < 0 && errno == ENOENT;

        remove_temp(conn, tmp_path);
        if (err == EEXIST) {
            g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_EXISTS,
                        "volume '%s' already exists on gluster volume '%s'", nv->name, vol);
        } else {
            /* not gfpool_set_error_errno: the reason follows strerror */
            g_set_error(error, GFPOOL_ERROR, gfpool_error_from_errno(err),
                        "cannot publish volume '%s' on gluster volume '%s': %s%s",
                        nv->name, vol, g_strerror(err),
                        tmp_gone ? " (its temporary file was removed meanwhile)" : "");
        }
        return FALSE;
    }
    /* A failure leaves it to the next refresh (see gfpool_sweep_run). */
    if (!remove_temp(conn, tmp_path))
        g_warning("cannot remove temporary name '%s' of volume '%s' (the next refresh will): %s",
                  tmp, nv->name, g_strerror(errno));
    return TRUE;

 fail:
    if (fd)
        glfs_close(fd);
    remove_temp(conn, tmp_path);
    g_prefix_error(error, "cannot create volume '%s' on gluster volume '%s': ", nv->name, vol);
    return FALSE;
}

typedef struct {
    const GfpoolVolCreateParams *p;
    guint64 capacity;
    GfpoolFormat backing_format;
} CreateFill;

static gboolean
create_fill(GfpoolConn *conn, glfs_fd_t *fd, void *opaque, GError **error)
{
    CreateFill *f = opaque;
    return create_write_image(conn, fd, f->p, f->capacity, f->backing_format, error);
}


gboolean
gfpool_vol_create(GfpoolConn *conn, const GfpoolVolCreateParams *p, GError **error)
{
    glfs_t *fs = gfpool_conn_glfs(conn);
    const char *vol = gfpool_conn_source(conn)->volume;
    g_autofree char *path = NULL;
    GfpoolFormat backing_format = p->backing_format;
    guint64 capacity = p->capacity;
    struct stat st;

    if (!gfpool_vol_name_validate(p->name, strlen(p->name), error))
        return FALSE;
    {
        g_autofree char *what = g_strdup_printf("create volume '%s'", p->name);
        if (!gfpool_format_writable(p->format, what, error))
            return FALSE;
    }
    if (p->mode > 07777) {
        g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_INVALID,
                    "invalid mode 0%" G_GINT64_MODIFIER "o for volume '%s'", p->mode, p->name);
        return FALSE;
    }

    path = gfpool_conn_path(conn, p->name);
    if (glfs_lstat(fs, path, &st) == 0) {
        g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_EXISTS,
                    "volume '%s' already exists on gluster volume '%s'", p->name, vol);
        return FALSE;
    }

    if (p->backing) {
        guint64 backing_capacity = 0;
        GfpoolFormat probed = GFPOOL_FORMAT_NONE;

        if (p->format != GFPOOL_FORMAT_QCOW2) {
            g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_UNSUPPORTED,
                        "volume '%s': only qcow2 volumes can have a backing file", p->name);
            return FALSE;
        }
        if (!check_backing_chain(conn, p->name, p->backing, &probed, &backing_capacity, error))
            return FALSE;
        if (backing_format == GFPOOL_FORMAT_NONE)
            backing_format = probed;
        else if (backing_format != probed) {
            g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_INVALID,
                        "backing volume '%s' is %s, not %s", p->backing,
                        gfpool_format_to_string(probed), gfpool_format_to_string(backing_format));
            return FALSE;
        }
        if (capacity == 0)
            capacity = backing_capacity;
    }
    if (capacity == 0) {
        g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_INVALID,
                    "invalid capacity 0 for volume '%s': must be at least 1 byte", p->name);
        return FALSE;
    }
    if (capacity > (guint64)G_MAXINT64) {
        g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_INVALID,
                    "invalid capacity %" G_GUINT64_FORMAT " for volume '%s': larger than 2^63-1",
                    capacity, p->name);
        return FALSE;
    }

    {
        CreateFill f = { p, capacity, backing_format };
        GfpoolNewVolume nv = { p->name, p->format, p->mode, p->uid, p->gid,
                               p->format == GFPOOL_FORMAT_RAW &&
                               p->prealloc != GFPOOL_PREALLOC_FULL };
        return gfpool_vol_publish_new(conn, &nv, create_fill, &f, error);
    }
}


/* ---- vol-delete ----------------------------------------------------- */

gboolean
gfpool_vol_delete(GfpoolConn *conn, const char *name, GError **error)
{
    glfs_t *fs = gfpool_conn_glfs(conn);
    g_autofree char *path = NULL;
    struct stat st;

    if (!gfpool_vol_name_validate(name, strlen(name), error))
        return FALSE;
    path = gfpool_conn_path(conn, name);
    if (glfs_lstat(fs, path, &st) < 0) {
        gfpool_set_error_errno(error, errno, conn, "cannot delete volume '%s'", name);
        return FALSE;
    }
    if (S_ISDIR(st.st_mode)) {
        if (glfs_rmdir(fs, path) < 0) {
            int err = errno;
            if (err == ENOTEMPTY || err == EEXIST) {
                g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_NOT_EMPTY,
                            "cannot delete directory volume '%s' on gluster volume '%s': it is not empty",
                            name, gfpool_conn_source(conn)->volume);
                return FALSE;
            }
            gfpool_set_error_errno(error, err, conn, "cannot delete directory volume '%s'", name);
            return FALSE;
        }
        return TRUE;
    }
    if (glfs_unlink(fs, path) < 0) {
        gfpool_set_error_errno(error, errno, conn, "cannot delete volume '%s'", name);
        return FALSE;
    }
    return TRUE;
}
