/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gfpool_record.c: a volume's format record, and the one place where what a
 * volume is gets decided (gfpool_probe_fd): every verb, the libvirt modules
 * and the nbdkit plugin go through it.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "gfpool_conn.h"
#include "gfpool_record.h"

/* Longer than any format name: a longer value is not one of ours. */
#define RECORD_MAX 32

gboolean
gfpool_record_read(glfs_fd_t *fd, GfpoolFormat *format, GError **error)
{
    char value[RECORD_MAX + 1];
    ssize_t n;
    int f;

    *format = GFPOOL_FORMAT_NONE;
    if ((n = glfs_fgetxattr(fd, GFPOOL_FORMAT_XATTR, value, RECORD_MAX)) < 0) {
        int err = errno;
        if (err == ENODATA)
            return TRUE;
        g_set_error(error, GFPOOL_ERROR, gfpool_error_from_errno(err),
                    "cannot read the format record: %s",
                    err == ERANGE ? "it is longer than any format name" : g_strerror(err));
        return FALSE;
    }
    value[n] = '\0';
    if (strlen(value) != (gsize)n || (f = gfpool_format_from_string(value)) <= GFPOOL_FORMAT_NONE) {
        g_autofree char *shown = g_strescape(value, NULL);
        g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_INVALID,
                    "its format record '%s' names no image format", shown);
        return FALSE;
    }
    *format = (GfpoolFormat)f;
    return TRUE;
}

gboolean
gfpool_record_write(glfs_fd_t *fd, GfpoolFormat format, GError **error)
{
    const char *name = gfpool_format_to_string(format);
    struct stat st;

    if (format <= GFPOOL_FORMAT_NONE || !name) {
        g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_INVALID,
                    "cannot record format number %d", (int)format);
        return FALSE;
    }
    /* GlusterFS's ctime translator stamps no ctime for a set attribute
     * (docs/design.md), so a probe cache keyed on the listing's stat would
     * keep serving the old answer: a chmod to the same mode stamps it. */
    if (glfs_fsetxattr(fd, GFPOOL_FORMAT_XATTR, name, strlen(name), 0) < 0 ||
        glfs_fstat(fd, &st) < 0 ||
        glfs_fchmod(fd, st.st_mode & 07777) < 0) {
        return gfpool_set_error_errno(error, errno, NULL, "cannot record the format %s", name);
    }
    return TRUE;
}

gboolean
gfpool_backing_format_check(const char *overlay, GfpoolFormat named, const char *backing,
                            GfpoolFormat format, gboolean recorded, GError **error)
{
    if (named == GFPOOL_FORMAT_NONE || named == format)
        return TRUE;
    g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_INVALID,
                "backing file '%s' of '%s' is %s image (%s), but '%s' names it as %s",
                backing, overlay, gfpool_format_to_string(format),
                recorded ? "its format record says so" : "by its header; it has no format record",
                overlay, gfpool_format_to_string(named));
    return FALSE;
}

/*
 * Headers are read with a plain open/pread/close by path. Two ways to save
 * the open were tried and dropped, each for what it did to others:
 * - gfapi's handle calls (glfs_xreaddirplus_r with handles,
 *   glfs_h_anonymous_read): glfs_free/glfs_h_close run without the
 *   connection's context and aborted libvirtd with "free(): invalid
 *   pointer" in our tests when a node was down;
 * - open-behind's anonymous reads (use-anonymous-fd=yes,
 *   read-after-open=no on our client): 2-3x faster, but on a replica volume
 *   every file read left one open fd on every brick until our client
 *   disconnected (5,000 per refresh of 5,000 images), which would run the
 *   bricks out of descriptors for every client of the volume.
 */
gboolean
gfpool_probe_fd_as(glfs_fd_t *fd, guint64 size, GfpoolFormat format, GfpoolProbe *p,
                   GError **error)
{
    guint8 header[GFPOOL_PROBE_HEADER_SIZE];
    gssize n;

    if (format == GFPOOL_FORMAT_RAW) {
        /* nothing of the file is read: its bytes cannot matter */
        gfpool_image_probe_as(format, NULL, 0, size, NULL, NULL, p);
        return TRUE;
    }
    if ((n = gfpool_glfs_fd_read(fd, 0, header, sizeof(header), error)) < 0)
        return FALSE;
    if (format == GFPOOL_FORMAT_NONE)
        gfpool_image_probe(header, (gsize)n, size, gfpool_glfs_fd_read, fd, p);
    else
        gfpool_image_probe_as(format, header, (gsize)n, size, gfpool_glfs_fd_read, fd, p);
    return TRUE;
}

gboolean
gfpool_probe_fd(glfs_fd_t *fd, guint64 size, GfpoolProbe *p, GError **error)
{
    g_autoptr(GError) record_err = NULL;
    GfpoolFormat recorded;
    GfpoolFormat signature;

    if (gfpool_record_read(fd, &recorded, &record_err))
        return gfpool_probe_fd_as(fd, size, recorded, p, error);
    if (!g_error_matches(record_err, GFPOOL_ERROR, GFPOOL_ERROR_INVALID)) {
        g_propagate_error(error, g_steal_pointer(&record_err));
        return FALSE;
    }
    /* A record that is not ours to read: the image is listed by its
     * signature, as a corrupt one is, and nothing uses it. */
    if (!gfpool_probe_fd_as(fd, size, GFPOOL_FORMAT_NONE, p, error))
        return FALSE;
    signature = p->format;
    gfpool_probe_clear(p);
    p->format = signature;
    p->capacity = size;
    p->corrupt = TRUE;
    p->recorded = TRUE;
    p->warning = g_strdup_printf("unusable image: %s", record_err->message);
    return TRUE;
}
