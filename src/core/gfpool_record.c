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

/* A format record's value[0..n) (n <= RECORD_MAX) as a format. */
static gboolean
record_value_parse(char *value, gsize n, GfpoolFormat *format, GError **error)
{
    int f;

    value[n] = '\0';
    if (strlen(value) != n || (f = gfpool_format_from_string(value)) <= GFPOOL_FORMAT_NONE) {
        g_autofree char *shown = g_strescape(value, NULL);
        g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_INVALID,
                    "its format record '%s' names no image format", shown);
        return FALSE;
    }
    *format = (GfpoolFormat)f;
    return TRUE;
}

gboolean
gfpool_record_read(glfs_fd_t *fd, GfpoolFormat *format, GError **error)
{
    char value[RECORD_MAX + 1];
    ssize_t n;

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
    return record_value_parse(value, (gsize)n, format, error);
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


/* ---- the header record ---------------------------------------------- */

#define HEADER_RECORD_VERSION "1"
/* A qcow2 header's limit for its backing name (QEMU's too). */
#define HEADER_BACKING_MAX 1023
#define CLUSTER_SIZE_MIN 512
#define CLUSTER_SIZE_MAX (2 * 1024 * 1024)

/* What the record can hold as a backing name: what a header can, less
 * control characters, so that the value stays one line of text. */
static gboolean
header_backing_ok(const char *name, gsize len)
{
    if (len > HEADER_BACKING_MAX)
        return FALSE;
    for (gsize i = 0; i < len; i++) {
        guchar c = (guchar)name[i];
        if (c < 0x20 || c == 0x7f)
            return FALSE;
    }
    return TRUE;
}

static gboolean
header_cluster_ok(guint64 cluster_size)
{
    return cluster_size >= CLUSTER_SIZE_MIN && cluster_size <= CLUSTER_SIZE_MAX &&
        (cluster_size & (cluster_size - 1)) == 0;
}

char *
gfpool_header_record_encode(guint64 size, gint64 mtime_ns, const GfpoolProbe *p)
{
    GString *v;

    if (p->format != GFPOOL_FORMAT_QCOW2 || p->corrupt || p->warning ||
        !header_cluster_ok(p->cluster_size) ||
        p->capacity > gfpool_qcow2_max_capacity(p->cluster_size) ||
        !gfpool_format_to_string(p->backing_format) ||
        (p->backing && !header_backing_ok(p->backing, strlen(p->backing))))
        return NULL;
    v = g_string_new(HEADER_RECORD_VERSION);
    g_string_append_printf(v, " size=%" G_GUINT64_FORMAT " mtime=%" G_GINT64_FORMAT
                           " capacity=%" G_GUINT64_FORMAT " cluster=%u backing-format=%s",
                           size, mtime_ns, p->capacity, p->cluster_size,
                           gfpool_format_to_string(p->backing_format));
    if (p->backing)
        g_string_append_printf(v, " backing=%s", p->backing);
    return g_string_free(v, FALSE);
}

/* At *cur: "key=" and its value, which runs to the next space (then
 * skipped, *more set) or to the end; with to_end, always to the end. */
static gboolean
header_field(const char **cur, const char *end, const char *key, gboolean to_end,
             const char **val, gsize *val_len, gboolean *more)
{
    gsize klen = strlen(key);
    const char *v;
    const char *stop;

    if ((gsize)(end - *cur) <= klen || memcmp(*cur, key, klen) != 0 || (*cur)[klen] != '=')
        return FALSE;
    v = *cur + klen + 1;
    stop = to_end ? NULL : memchr(v, ' ', (gsize)(end - v));
    if (!stop)
        stop = end;
    *val = v;
    *val_len = (gsize)(stop - v);
    *more = stop < end;
    *cur = *more ? stop + 1 : stop;
    return TRUE;
}

/* Decimal as the encoder writes it: digits only, no leading zero, a minus
 * sign only where allowed (and never on zero), within range. */
static gboolean
header_number(const char *val, gsize len, gboolean is_signed, guint64 max, gint64 *out_s,
              guint64 *out_u)
{
    char buf[24];
    gsize i = is_signed && len > 0 && val[0] == '-' ? 1 : 0;

    if (len == i || len >= sizeof(buf) || (val[i] == '0' && (len > i + 1 || i == 1)))
        return FALSE;
    for (gsize j = i; j < len; j++) {
        if (!g_ascii_isdigit(val[j]))
            return FALSE;
    }
    memcpy(buf, val, len);
    buf[len] = '\0';
    if (is_signed)
        return g_ascii_string_to_signed(buf, 10, G_MININT64, G_MAXINT64, out_s, NULL);
    return g_ascii_string_to_unsigned(buf, 10, 0, max, out_u, NULL);
}

gboolean
gfpool_header_record_parse(const char *value, gsize len, guint64 *size, gint64 *mtime_ns,
                           GfpoolProbe *p)
{
    const char *cur;
    const char *end = value + len;
    const char *v;
    gsize vlen;
    gboolean more = FALSE;
    guint64 capacity, cluster;
    char fmt[16];
    int backing_format;

    memset(p, 0, sizeof(*p));
    if (len < 2 || len > GFPOOL_HEADER_RECORD_MAX || memchr(value, '\0', len) ||
        memcmp(value, HEADER_RECORD_VERSION " ", 2) != 0)
        return FALSE;
    cur = value + 2;
    if (!header_field(&cur, end, "size", FALSE, &v, &vlen, &more) || !more ||
        !header_number(v, vlen, FALSE, G_MAXUINT64, NULL, size) ||
        !header_field(&cur, end, "mtime", FALSE, &v, &vlen, &more) || !more ||
        !header_number(v, vlen, TRUE, 0, mtime_ns, NULL) ||
        !header_field(&cur, end, "capacity", FALSE, &v, &vlen, &more) || !more ||
        !header_number(v, vlen, FALSE, G_MAXUINT64, NULL, &capacity) ||
        !header_field(&cur, end, "cluster", FALSE, &v, &vlen, &more) || !more ||
        !header_number(v, vlen, FALSE, CLUSTER_SIZE_MAX, NULL, &cluster) ||
        !header_cluster_ok(cluster) || capacity > gfpool_qcow2_max_capacity((guint32)cluster) ||
        !header_field(&cur, end, "backing-format", FALSE, &v, &vlen, &more) ||
        vlen == 0 || vlen >= sizeof(fmt))
        return FALSE;
    memcpy(fmt, v, vlen);
    fmt[vlen] = '\0';
    if ((backing_format = gfpool_format_from_string(fmt)) < 0)
        return FALSE;
    if (more) {
        if (!header_field(&cur, end, "backing", TRUE, &v, &vlen, &more) ||
            !header_backing_ok(v, vlen))
            return FALSE;
        p->backing = g_strndup(v, vlen);
    }
    p->format = GFPOOL_FORMAT_QCOW2;
    p->recorded = TRUE;
    p->capacity = capacity;
    p->cluster_size = (guint32)cluster;
    p->backing_format = (GfpoolFormat)backing_format;
    return TRUE;
}

gboolean
gfpool_header_record_write(glfs_fd_t *fd, const struct stat *st, const GfpoolProbe *p)
{
    g_autofree char *value = NULL;
    gint64 mtime_ns = (gint64)st->st_mtim.tv_sec * G_GINT64_CONSTANT(1000000000) +
        st->st_mtim.tv_nsec;

    if (!(value = gfpool_header_record_encode((guint64)st->st_size, mtime_ns, p))) {
        gfpool_header_record_remove(fd);
        return FALSE;
    }
    /* No chmod as for the format record: the probe cache keyed on ctime
     * is not affected, since the header did not change. */
    if (glfs_fsetxattr(fd, GFPOOL_HEADER_XATTR, value, strlen(value), 0) < 0) {
        g_debug("cannot record the qcow2 header: %s", g_strerror(errno));
        return FALSE;
    }
    return TRUE;
}

gboolean
gfpool_header_record_update(glfs_fd_t *fd)
{
    g_auto(GfpoolProbe) p = { 0 };
    g_autoptr(GError) err = NULL;
    struct stat st;

    if (glfs_fstat(fd, &st) < 0)
        return FALSE;
    if (!gfpool_probe_fd_as(fd, (guint64)st.st_size, GFPOOL_FORMAT_QCOW2, &p, &err)) {
        g_debug("cannot record the qcow2 header: %s", err->message);
        return FALSE;
    }
    return gfpool_header_record_write(fd, &st, &p);
}

void
gfpool_header_record_remove(glfs_fd_t *fd)
{
    if (glfs_fremovexattr(fd, GFPOOL_HEADER_XATTR) < 0 && errno != ENODATA)
        g_debug("cannot remove the qcow2 header record: %s", g_strerror(errno));
}

gboolean
gfpool_records_answer(glfs_t *fs, const char *path, guint64 size, gint64 mtime_ns,
                      GfpoolProbe *p)
{
    char value[GFPOOL_HEADER_RECORD_MAX + 1];
    GfpoolFormat format;
    guint64 rec_size;
    gint64 rec_mtime;
    ssize_t n;

    memset(p, 0, sizeof(*p));
    if ((n = glfs_getxattr(fs, path, GFPOOL_FORMAT_XATTR, value, RECORD_MAX)) < 0 ||
        !record_value_parse(value, (gsize)n, &format, NULL))
        return FALSE;
    if (format == GFPOOL_FORMAT_RAW) {
        gfpool_image_probe_as(format, NULL, 0, size, NULL, NULL, p);
        return TRUE;
    }
    if (format != GFPOOL_FORMAT_QCOW2 ||
        (n = glfs_getxattr(fs, path, GFPOOL_HEADER_XATTR, value, GFPOOL_HEADER_RECORD_MAX)) < 0 ||
        !gfpool_header_record_parse(value, (gsize)n, &rec_size, &rec_mtime, p))
        return FALSE;
    if (rec_size != size || rec_mtime != mtime_ns) {
        gfpool_probe_clear(p);
        return FALSE;
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
