/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * image_testlib.c: what the image unit tests share: a scratch directory,
 * local-file and in-memory read/write callbacks, and qemu-img / qemu-io as
 * the judges of what the image code writes and reads.
 */

#include "image_testlib.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <glib/gstdio.h>

static char *tmpdir;

void
image_testlib_init(int *argc, char ***argv)
{
    g_test_init(argc, argv, NULL);
    tmpdir = g_dir_make_tmp("gfpool-image-XXXXXX", NULL);
    g_assert_nonnull(tmpdir);
}

int
image_testlib_run(void)
{
    int ret = g_test_run();
    g_autoptr(GDir) dir = g_dir_open(tmpdir, 0, NULL);
    const char *n;

    while (dir && (n = g_dir_read_name(dir))) {
        g_autofree char *path = tmp_path(n);
        g_unlink(path);
    }
    g_rmdir(tmpdir);
    g_free(tmpdir);
    return ret;
}

/* ---- local files ------------------------------------------------------- */

gboolean
fd_write(void *opaque, guint64 off, const void *buf, gsize len, GError **error)
{
    int fd = GPOINTER_TO_INT(opaque);
    const char *p = buf;

    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(errno),
                        "pwrite at %" G_GUINT64_FORMAT ": %s", off,
                        g_strerror(errno));
            return FALSE;
        }
        p += n;
        off += n;
        len -= n;
    }
    return TRUE;
}

gssize
fd_read(void *opaque, guint64 off, void *buf, gsize len, GError **error)
{
    int fd = GPOINTER_TO_INT(opaque);
    gsize done = 0;

    while (done < len) {
        ssize_t n = pread(fd, (char *)buf + done, len - done,
                          (off_t)(off + done));

        if (n < 0) {
            if (errno == EINTR)
                continue;
            g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(errno),
                        "pread: %s", g_strerror(errno));
            return -1;
        }
        if (n == 0)
            break;
        done += n;
    }
    return done;
}

guint64
div_round_up_test(guint64 a, guint64 b)
{
    return a / b + (a % b != 0);
}

char *
tmp_path(const char *name)
{
    return g_build_filename(tmpdir, name, NULL);
}

gboolean
create_qcow2(const char *path, const GfpoolQcow2Params *params, GError **error)
{
    guint64 size = 0;
    gboolean ok;
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

    g_assert_cmpint(fd, >=, 0);
    ok = gfpool_qcow2_create(params, fd_write, GINT_TO_POINTER(fd), &size,
                             error);
    if (ok)
        g_assert_cmpint(ftruncate(fd, (off_t)size), ==, 0);
    close(fd);
    return ok;
}

/* Probe a file the way the driver does: header read, then read_fn. */
void
probe_file(const char *path, GfpoolProbe *p)
{
    guint8 header[GFPOOL_PROBE_HEADER_SIZE];
    GStatBuf st;
    gssize n;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(g_stat(path, &st), ==, 0);
    n = fd_read(GINT_TO_POINTER(fd), 0, header, sizeof(header), NULL);
    g_assert_cmpint(n, >=, 0);
    gfpool_image_probe(header, n, st.st_size, fd_read, GINT_TO_POINTER(fd), p);
    close(fd);
}

/* ---- qemu-img ---------------------------------------------------------- */

gboolean
run(const char *const *argv, char **out, GError **error)
{
    g_autofree char *err_out = NULL;
    int status;

    if (!g_spawn_sync(tmpdir, (char **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL,
                      NULL, out, &err_out, &status, error))
        return FALSE;
    if (!g_spawn_check_wait_status(status, error)) {
        g_prefix_error(error, "%s %s (stderr: %s): ", argv[0], argv[1],
                       err_out);
        return FALSE;
    }
    return TRUE;
}

void
qemu_img(const char *const *argv, char **out)
{
    g_autoptr(GError) err = NULL;

    if (!run(argv, out, &err))
        g_error("%s", err->message);
}

/* qemu-img's JSON is pretty-printed with unique keys at the depths we read,
 * so a key search is enough and spares a JSON dependency. */
static const char *
json_find(const char *json, const char *key)
{
    g_autofree char *needle = g_strdup_printf("\"%s\": ", key);
    const char *s = strstr(json, needle);

    return s ? s + strlen(needle) : NULL;
}

guint64
json_uint(const char *json, const char *key)
{
    const char *v = json_find(json, key);

    if (!v)
        g_error("key %s missing in %s", key, json);
    return g_ascii_strtoull(v, NULL, 10);
}

char *
json_str(const char *json, const char *key)
{
    const char *v = json_find(json, key);
    const char *end;

    if (!v)
        return NULL;
    g_assert_cmpint(*v, ==, '"');
    end = strchr(v + 1, '"');
    g_assert_nonnull(end);
    return g_strndup(v + 1, end - v - 1);
}

/* Since QEMU 8.0 `info` nests the protocol layer's own info under
 * "children", with its own "virtual-size" (the file's size) first: cut
 * that array out so json_find() sees the image's keys only. */
static void
json_drop_children(char *json)
{
    char *start = strstr(json, "\"children\": [");
    char *c;
    int depth = 0;

    if (!start)
        return;
    c = strchr(start, '[');
    do {
        if (*c == '[' || *c == '{')
            depth++;
        else if (*c == ']' || *c == '}')
            depth--;
        c++;
    } while (*c && depth > 0);
    memmove(start, c, strlen(c) + 1);
}

char *
qemu_info(const char *path, const char *fmt)
{
    const char *argv[] = { "qemu-img", "info", "--output=json", "-f", fmt,
                           path, NULL };
    char *out = NULL;

    qemu_img(argv, &out);
    json_drop_children(out);
    return out;
}

void
qemu_check(const char *path)
{
    const char *argv[] = { "qemu-img", "check", "-f", "qcow2", path, NULL };
    g_autofree char *out = NULL;

    /* exit 0 means no corruptions and no leaks */
    qemu_img(argv, &out);
    g_assert_nonnull(strstr(out, "No errors were found"));
}

/* ---- images in memory -------------------------------------------------- */

gboolean
mem_write(void *opaque, guint64 off, const void *buf, gsize len,
          GError **error G_GNUC_UNUSED)
{
    MemFile *m = opaque;

    g_assert_cmpuint(off + len, <=, m->len);
    memcpy(m->data + off, buf, len);
    return TRUE;
}

gssize
mem_read(void *opaque, guint64 off, void *buf, gsize len,
         GError **error G_GNUC_UNUSED)
{
    MemFile *m = opaque;

    if (off >= m->len)
        return 0;
    len = MIN(len, m->len - off);
    memcpy(buf, m->data + off, len);
    return len;
}

gssize
broken_read(void *opaque G_GNUC_UNUSED, guint64 off G_GNUC_UNUSED,
            void *buf G_GNUC_UNUSED, gsize len G_GNUC_UNUSED, GError **error)
{
    g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_IO, "disk on fire");
    return -1;
}

MemFile *
mem_qcow2(void)
{
    GfpoolQcow2Params params = { .capacity = 1 * GiB, .cluster_size = 4096,
                                 .backing = "base.img",
                                 .backing_format = GFPOOL_FORMAT_RAW };
    MemFile *m = g_new0(MemFile, 1);
    g_autoptr(GError) err = NULL;
    guint64 size = 0;

    m->len = 64 * KiB;
    m->data = g_malloc0(m->len);
    g_assert_true(gfpool_qcow2_create(&params, mem_write, m, &size, &err));
    g_assert_cmpuint(size, <=, m->len);
    m->len = size;
    return m;
}

void
mem_free(MemFile *m)
{
    g_free(m->data);
    g_free(m);
}

void
put_be32(guint8 *b, guint32 v)
{
    b[0] = v >> 24;
    b[1] = v >> 16;
    b[2] = v >> 8;
    b[3] = v;
}

void
put_be64(guint8 *b, guint64 v)
{
    put_be32(b, v >> 32);
    put_be32(b + 4, v & 0xffffffff);
}

/* ---- qemu-io and maps ---------------------------------------------------- */

static void
qemu_io_check(const char *out, const char *path, const char *cmd)
{
    /* qemu-io reports failed pattern checks on stdout and still exits 0 */
    if (strstr(out, "Pattern verification failed") || strstr(out, "failed"))
        g_error("qemu-io %s on %s: %s", cmd, path, out);
}

void
qemu_io(const char *path, const char *cmd)
{
    const char *argv[] = { "qemu-io", "-f", "qcow2", "-c", cmd, path, NULL };
    g_autofree char *out = NULL;
    g_autoptr(GError) err = NULL;

    if (!run(argv, &out, &err))
        g_error("qemu-io -c '%s' %s: %s; stdout: %s", cmd, path,
                err->message, out ? out : "");
    qemu_io_check(out, path, cmd);
}

void
qemu_compare(const char *a, const char *fmt_a, const char *b,
             const char *fmt_b)
{
    const char *argv[] = { "qemu-img", "compare", "-f", fmt_a, "-F", fmt_b,
                           a, b, NULL };
    g_autofree char *out = NULL;

    qemu_img(argv, &out);
}

guint64
file_size_of(const char *path)
{
    GStatBuf st;

    g_assert_cmpint(g_stat(path, &st), ==, 0);
    return st.st_size;
}

gboolean
collect_extent(void *opaque, const GfpoolExtent *e, GError **error G_GNUC_UNUSED)
{
    g_array_append_val((GArray *)opaque, *e);
    return TRUE;
}

/* gfpool_qcow2_map on a local file, as the driver calls it. */
gboolean
map_file(const char *path, GArray **out, GError **error)
{
    guint8 header[GFPOOL_PROBE_HEADER_SIZE];
    g_autoptr(GArray) ext = g_array_new(FALSE, FALSE, sizeof(GfpoolExtent));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    gssize n;
    gboolean ok;

    g_assert_cmpint(fd, >=, 0);
    n = fd_read(GINT_TO_POINTER(fd), 0, header, sizeof(header), NULL);
    g_assert_cmpint(n, >=, 0);
    ok = gfpool_qcow2_map(header, n, file_size_of(path), fd_read,
                          GINT_TO_POINTER(fd), collect_extent, ext, error);
    close(fd);
    if (ok)
        *out = g_steal_pointer(&ext);
    return ok;
}

/* Field by field: the struct has padding. */
gboolean
same_extents(GArray *a, GArray *b)
{
    if (a->len != b->len)
        return FALSE;
    for (guint i = 0; i < a->len; i++) {
        const GfpoolExtent *x = &g_array_index(a, GfpoolExtent, i);
        const GfpoolExtent *y = &g_array_index(b, GfpoolExtent, i);

        if (x->guest_off != y->guest_off || x->len != y->len ||
            x->kind != y->kind || x->host_off != y->host_off)
            return FALSE;
    }
    return TRUE;
}

/* Merge neighbours of the same kind (DATA: contiguous in the file too). */
GArray *
canon(GArray *in)
{
    GArray *out = g_array_new(FALSE, FALSE, sizeof(GfpoolExtent));

    for (guint i = 0; i < in->len; i++) {
        GfpoolExtent e = g_array_index(in, GfpoolExtent, i);
        GfpoolExtent *last = out->len
            ? &g_array_index(out, GfpoolExtent, out->len - 1) : NULL;

        if (e.kind != GFPOOL_EXTENT_DATA)
            e.host_off = 0;
        if (last && last->kind == e.kind &&
            last->guest_off + last->len == e.guest_off &&
            (e.kind != GFPOOL_EXTENT_DATA ||
             last->host_off + last->len == e.host_off))
            last->len += e.len;
        else
            g_array_append_val(out, e);
    }
    return out;
}

/* qemu-img map's view in our terms: anything resolved below the top layer
 * is BACKING, data in the top layer DATA, the rest ZERO; except that QEMU
 * reports the part past a short backing file's end as zero in the top
 * layer, not present, where we leave reading the backing to the caller. */
GArray *
qemu_map(const char *path)
{
    const char *argv[] = { "qemu-img", "map", "--output=json", "-f", "qcow2",
                           path, NULL };
    g_autofree char *out = NULL;
    g_auto(GStrv) lines = NULL;
    g_autoptr(GArray) raw = g_array_new(FALSE, FALSE, sizeof(GfpoolExtent));
    g_autofree char *info = qemu_info(path, "qcow2");
    g_autofree char *backing = json_str(info, "backing-filename");

    qemu_img(argv, &out);
    lines = g_strsplit(out, "\n", -1);
    for (char **l = lines; *l; l++) {
        GfpoolExtent e = { 0 };

        if (!strstr(*l, "\"start\""))
            continue;
        e.guest_off = json_uint(*l, "start");
        e.len = json_uint(*l, "length");
        if (json_uint(*l, "depth") > 0 ||
            (backing && strstr(*l, "\"present\": false"))) {
            e.kind = GFPOOL_EXTENT_BACKING;
        } else if (strstr(*l, "\"data\": true")) {
            e.kind = GFPOOL_EXTENT_DATA;
            e.host_off = json_uint(*l, "offset");
        } else {
            e.kind = GFPOOL_EXTENT_ZERO;
        }
        g_array_append_val(raw, e);
    }
    return canon(raw);
}

/* Our map tiles the image, is already coalesced, and agrees with QEMU. */
GArray *
check_map(const char *path)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GArray) ours = NULL;
    g_autoptr(GArray) merged = NULL;
    g_autoptr(GArray) theirs = NULL;
    g_autofree char *info = qemu_info(path, "qcow2");
    guint64 size = json_uint(info, "virtual-size"), pos = 0;

    if (!map_file(path, &ours, &err))
        g_error("map %s: %s", path, err->message);
    for (guint i = 0; i < ours->len; i++) {
        const GfpoolExtent *e = &g_array_index(ours, GfpoolExtent, i);

        g_assert_cmpuint(e->guest_off, ==, pos);
        g_assert_cmpuint(e->len, >, 0);
        if (e->kind != GFPOOL_EXTENT_DATA)
            g_assert_cmpuint(e->host_off, ==, 0);
        pos += e->len;
    }
    g_assert_cmpuint(pos, ==, size);
    merged = canon(ours);
    g_assert_cmpuint(merged->len, ==, ours->len);

    theirs = qemu_map(path);
    if (!same_extents(theirs, ours)) {
        for (guint i = 0; i < MAX(ours->len, theirs->len); i++) {
            const GfpoolExtent *a = i < ours->len
                ? &g_array_index(ours, GfpoolExtent, i) : NULL;
            const GfpoolExtent *b = i < theirs->len
                ? &g_array_index(theirs, GfpoolExtent, i) : NULL;

            g_test_message("%u: ours %" G_GUINT64_FORMAT "+%" G_GUINT64_FORMAT
                           " k%d h%" G_GUINT64_FORMAT " | qemu %"
                           G_GUINT64_FORMAT "+%" G_GUINT64_FORMAT " k%d h%"
                           G_GUINT64_FORMAT, i,
                           a ? a->guest_off : 0, a ? a->len : 0,
                           a ? (int)a->kind : -1, a ? a->host_off : 0,
                           b ? b->guest_off : 0, b ? b->len : 0,
                           b ? (int)b->kind : -1, b ? b->host_off : 0);
        }
        g_error("map of %s differs from qemu-img map", path);
    }
    return g_steal_pointer(&ours);
}
