/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gfpool_pool.c: the pool verbs on the pool directory itself: pool-info,
 * pool-build, pool-delete.
 */
#include <errno.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "gfpool_volume.h"


/* ---- pool-info ------------------------------------------------------ */

gboolean
gfpool_pool_info(GfpoolConn *conn, guint64 *capacity, guint64 *allocation,
                 guint64 *available, GError **error)
{
    const GfpoolSource *src = gfpool_conn_source(conn);
    struct statvfs sb;

    if (glfs_statvfs(gfpool_conn_glfs(conn), src->dir, &sb) < 0) {
        gfpool_set_error_errno(error, errno, conn, "cannot get the size of pool directory '%s'",
                               src->dir);
        return FALSE;
    }
    *capacity = (guint64)sb.f_frsize * sb.f_blocks;
    *available = (guint64)sb.f_frsize * sb.f_bavail;
    *allocation = *capacity - MIN(*capacity, (guint64)sb.f_frsize * sb.f_bfree);
    return TRUE;
}


/* ---- pool-build / pool-delete -------------------------------------- */

static gboolean
dir_is_empty(GfpoolConn *conn, const char *dir, gboolean *empty, GError **error)
{
    glfs_fd_t *fd;
    struct dirent de;
    struct dirent *ent = NULL;

    if (!(fd = glfs_opendir(gfpool_conn_glfs(conn), dir))) {
        gfpool_set_error_errno(error, errno, conn, "cannot open directory '%s'", dir);
        return FALSE;
    }
    *empty = TRUE;
    for (;;) {
        if (glfs_readdir_r(fd, &de, &ent) != 0) {
            /* an unreadable directory is not an empty one */
            gfpool_set_error_errno(error, errno, conn, "cannot read directory '%s'", dir);
            glfs_closedir(fd);
            return FALSE;
        }
        if (!ent)
            break;
        if (!g_str_equal(ent->d_name, ".") && !g_str_equal(ent->d_name, "..")) {
            *empty = FALSE;
            break;
        }
    }
    glfs_closedir(fd);
    return TRUE;
}

gboolean
gfpool_pool_build(GfpoolConn *conn, guint32 mode, gboolean no_overwrite, GError **error)
{
    glfs_t *fs = gfpool_conn_glfs(conn);
    const char *dir = gfpool_conn_source(conn)->dir;
    g_auto(GStrv) parts = g_strsplit(dir, "/", -1);
    g_autoptr(GString) path = g_string_new(NULL);
    gboolean existed = TRUE;
    struct stat st;

    for (guint i = 0; parts[i]; i++) {
        if (!*parts[i])
            continue;
        g_string_append_c(path, '/');
        g_string_append(path, parts[i]);
        if (glfs_mkdir(fs, path->str, mode ? mode : 0755) == 0) {
            existed = FALSE;
            continue;
        }
        if (errno != EEXIST) {
            gfpool_set_error_errno(error, errno, conn, "cannot create directory '%s'", path->str);
            return FALSE;
        }
    }
    if (glfs_stat(fs, gfpool_conn_dir(conn), &st) < 0) {
        gfpool_set_error_errno(error, errno, conn, "cannot access pool directory '%s'", dir);
        return FALSE;
    }
    if (!S_ISDIR(st.st_mode)) {
        g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_EXISTS,
                    "cannot build pool: '%s' on gluster volume '%s' exists and is not a directory",
                    dir, gfpool_conn_source(conn)->volume);
        return FALSE;
    }
    if (existed && no_overwrite) {
        gboolean empty;
        if (!dir_is_empty(conn, gfpool_conn_dir(conn), &empty, error))
            return FALSE;
        if (!empty) {
            g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_EXISTS,
                        "pool directory '%s' on gluster volume '%s' already exists and is not empty",
                        dir, gfpool_conn_source(conn)->volume);
            return FALSE;
        }
    }
    return TRUE;
}

gboolean
gfpool_pool_delete(GfpoolConn *conn, GError **error)
{
    const char *dir = gfpool_conn_source(conn)->dir;

    if (g_str_equal(dir, "/")) {
        g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_INVALID,
                    "cannot delete the pool: its directory is the root of gluster volume '%s'",
                    gfpool_conn_source(conn)->volume);
        return FALSE;
    }
    if (glfs_rmdir(gfpool_conn_glfs(conn), dir) < 0) {
        int err = errno;
        if (err == ENOTEMPTY || err == EEXIST) {
            g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_NOT_EMPTY,
                        "cannot delete pool directory '%s' on gluster volume '%s': it is not empty "
                        "(delete its volumes first)", dir, gfpool_conn_source(conn)->volume);
            return FALSE;
        }
        gfpool_set_error_errno(error, err, conn, "cannot delete pool directory '%s'", dir);
        return FALSE;
    }
    return TRUE;
}
