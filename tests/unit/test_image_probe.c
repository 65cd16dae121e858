/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test_image.c: the qcow2 writer checked by qemu-img itself, and the prober
 * checked against images qemu-img made and against corrupted headers.
 */
#include "gfpool_image.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <glib/gstdio.h>

#define KiB (G_GUINT64_CONSTANT(1024))
#define MiB (1024 * KiB)
#define GiB (1024 * MiB)
#define TiB (1024 * GiB)

static char *tmpdir;

/* ---- local file callbacks ---------------------------------------------- */

static gboolean
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

static gssize
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

static guint64
div_round_up_test(guint64 a, guint64 b)
{
    return a / b + (a % b != 0);
}

static char *
tmp_path(const char *name)
{
    return g_build_filename(tmpdir, name, NULL);
}

static gboolean
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
static void
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

/* ---- qemu-img --------------------------------------------------------- */

static gboolean
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

static void
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

static guint64
json_uint(const char *json, const char *key)
{
    const char *v = json_find(json, key);

    if (!v)
        g_error("key %s missing in %s", key, json);
    return g_ascii_strtoull(v, NULL, 10);
}

static char *
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

static char *
qemu_info(const char *path, const char *fmt)
{
    const char *argv[] = { "qemu-img", "info", "--output=json", "-f", fmt,
                           path, NULL };
    char *out = NULL;

    qemu_img(argv, &out);
    json_drop_children(out);
    return out;
}

static void
qemu_check(const char *path)
{
    const char *argv[] = { "qemu-img", "check", "-f", "qcow2", path, NULL };
    g_autofree char *out = NULL;

    /* exit 0 means no corruptions and no leaks */
    qemu_img(argv, &out);
    g_assert_nonnull(strstr(out, "No errors were found"));
}

/* ---- qcow2 creation ----------------------------------------------------- */

typedef struct {
    guint64 capacity;
    guint32 cluster_size;
    const char *backing;
    GfpoolFormat backing_format;
    bool prealloc;
} CreateCase;

static void
check_created(const CreateCase *tc)
{
    GfpoolQcow2Params params = {
        .capacity = tc->capacity,
        .cluster_size = tc->cluster_size,
        .backing = tc->backing,
        .backing_format = tc->backing_format,
        .prealloc_metadata = tc->prealloc,
    };
    guint64 want = (tc->capacity + 511) / 512 * 512;
    guint32 cs = tc->cluster_size ? tc->cluster_size : 65536;
    g_autofree char *path = tmp_path("created.qcow2");
    g_autofree char *info = NULL;
    g_autofree char *compat = NULL;
    g_autofree char *backing = NULL;
    g_autofree char *backing_fmt = NULL;
    g_autoptr(GError) err = NULL;
    g_auto(GfpoolProbe) p = { 0 };

    g_assert_true(create_qcow2(path, &params, &err));
    g_assert_no_error(err);

    qemu_check(path);
    info = qemu_info(path, "qcow2");
    g_assert_cmpuint(json_uint(info, "virtual-size"), ==, want);
    g_assert_cmpuint(json_uint(info, "cluster-size"), ==, cs);
    compat = json_str(info, "compat");
    g_assert_cmpstr(compat, ==, "1.1");
    backing = json_str(info, "backing-filename");
    g_assert_cmpstr(backing, ==, tc->backing);
    backing_fmt = json_str(info, "backing-filename-format");
    g_assert_cmpstr(backing_fmt, ==,
                    tc->backing_format
                        ? gfpool_format_to_string(tc->backing_format) : NULL);

    probe_file(path, &p);
    g_assert_null(p.warning);
    g_assert_cmpint(p.format, ==, GFPOOL_FORMAT_QCOW2);
    g_assert_cmpuint(p.capacity, ==, want);
    g_assert_cmpuint(p.cluster_size, ==, cs);
    g_assert_cmpstr(p.backing, ==, tc->backing);
    g_assert_cmpint(p.backing_format, ==, tc->backing_format);

    if (tc->prealloc) {
        /* every data cluster is allocated, none of it written */
        g_autofree char *out = NULL;
        const char *argv[] = { "qemu-img", "map", "--output=json", "-f",
                               "qcow2", path, NULL };
        GStatBuf st;

        g_assert_cmpint(g_stat(path, &st), ==, 0);
        g_assert_cmpuint(st.st_size, >=, want);
        if (want <= 64 * MiB) {
            qemu_img(argv, &out);
            g_assert_null(strstr(out, "\"data\": false"));
        }
    }
    g_unlink(path);
}

static void
test_create(gconstpointer data)
{
    check_created(data);
}

static void
test_create_max(void)
{
    const guint32 sizes[] = { 512, 4096, 65536, 2 * 1024 * 1024 };

    g_assert_cmpuint(gfpool_qcow2_max_capacity(512), ==, 128 * GiB);
    g_assert_cmpuint(gfpool_qcow2_max_capacity(4096), ==, 8 * TiB);
    g_assert_cmpuint(gfpool_qcow2_max_capacity(0), ==, 2048 * TiB);
    g_assert_cmpuint(gfpool_qcow2_max_capacity(2 * 1024 * 1024), ==,
                     G_GUINT64_CONSTANT(1) << 61);
    g_assert_cmpuint(gfpool_qcow2_max_capacity(1000), ==, 0);

    for (gsize i = 0; i < G_N_ELEMENTS(sizes); i++) {
        guint64 max = gfpool_qcow2_max_capacity(sizes[i]);
        CreateCase tc = { .capacity = max, .cluster_size = sizes[i] };
        g_autofree char *path = tmp_path("qemu-max.qcow2");
        g_autofree char *opt = g_strdup_printf("cluster_size=%u", sizes[i]);
        g_autofree char *at = g_strdup_printf("%" G_GUINT64_FORMAT, max);
        g_autofree char *over = g_strdup_printf("%" G_GUINT64_FORMAT,
                                                max + 512);
        const char *ok_argv[] = { "qemu-img", "create", "-q", "-f", "qcow2",
                                  "-o", opt, path, at, NULL };
        const char *bad_argv[] = { "qemu-img", "create", "-q", "-f", "qcow2",
                                   "-o", opt, path, over, NULL };
        GfpoolQcow2Params params = { .capacity = max + 1,
                                     .cluster_size = sizes[i] };
        g_autoptr(GError) err = NULL;
        g_autoptr(GError) qerr = NULL;

        /* our limit is qemu-img's: it takes max, refuses one sector more */
        qemu_img(ok_argv, NULL);
        g_assert_false(run(bad_argv, NULL, &qerr));
        g_unlink(path);

        check_created(&tc);

        g_assert_false(create_qcow2(path, &params, &err));
        g_assert_error(err, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_INVALID);
        g_assert_nonnull(strstr(err->message, "32 MiB L1"));
        g_unlink(path);
    }
}

static void
test_create_backing(void)
{
    g_autofree char *raw = tmp_path("base.raw");
    g_autofree char *q2 = tmp_path("base.qcow2");
    const char *argv_raw[] = { "qemu-img", "create", "-q", "-f", "raw", raw,
                               "1M", NULL };
    const char *argv_q2[] = { "qemu-img", "create", "-q", "-f", "qcow2", q2,
                              "1M", NULL };
    const CreateCase cases[] = {
        { 1 * MiB, 0, "base.raw", GFPOOL_FORMAT_RAW, false },
        { 1 * GiB, 0, "base.qcow2", GFPOOL_FORMAT_QCOW2, false },
        { 1 * MiB, 512, "base.raw", GFPOOL_FORMAT_RAW, false },
        { 1 * MiB, 2 * 1024 * 1024, "base.qcow2", GFPOOL_FORMAT_QCOW2, true },
        { 10 * MiB, 4096, "base.raw", GFPOOL_FORMAT_RAW, true },
    };

    /* qemu-img check opens the backing file, so it has to exist */
    qemu_img(argv_raw, NULL);
    qemu_img(argv_q2, NULL);
    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++)
        check_created(&cases[i]);
}

static void
test_create_backing_no_format(void)
{
    g_autofree char *raw = tmp_path("plain.raw");
    const char *argv_raw[] = { "qemu-img", "create", "-q", "-f", "raw", raw,
                               "1M", NULL };
    CreateCase tc = { 2 * MiB, 0, "plain.raw", GFPOOL_FORMAT_NONE, false };

    qemu_img(argv_raw, NULL);
    check_created(&tc);
}

/* validation happens before anything is written */
static gboolean
no_write(void *opaque G_GNUC_UNUSED, guint64 off G_GNUC_UNUSED,
         const void *buf G_GNUC_UNUSED, gsize len G_GNUC_UNUSED,
         GError **error G_GNUC_UNUSED)
{
    g_assert_not_reached();
}

typedef struct {
    GfpoolQcow2Params params;
    const char *needle;         /* must appear in the message */
} InvalidCase;

static void
test_create_invalid(void)
{
    g_autofree char *long_name = g_strnfill(1024, 'a');
    g_autofree char *mid_name = g_strnfill(400, 'b');
    const InvalidCase cases[] = {
        { { .capacity = 0 }, "capacity 0 is invalid" },
        { { .capacity = 128 * GiB + 1, .cluster_size = 512 },
          "capacity 137438953473 is invalid" },
        { { .capacity = G_MAXUINT64 }, "capacity 18446744073709551615" },
        { { .capacity = 1 * MiB, .cluster_size = 1000 },
          "cluster size 1000 is invalid" },
        { { .capacity = 1 * MiB, .cluster_size = 256 },
          "cluster size 256 is invalid" },
        { { .capacity = 1 * MiB, .cluster_size = 4 * 1024 * 1024 },
          "cluster size 4194304 is invalid" },
        { { .capacity = 1 * MiB, .backing = long_name },
          "1024 bytes is invalid: must be at most 1023" },
        { { .capacity = 1 * MiB, .backing = "" }, "must not be empty" },
        /* fits the 1023 limit but not a 512-byte header cluster */
        { { .capacity = 1 * MiB, .cluster_size = 512, .backing = mid_name,
            .backing_format = GFPOOL_FORMAT_RAW }, "with 512-byte clusters" },
        { { .capacity = 1 * MiB, .backing_format = GFPOOL_FORMAT_RAW },
          "without a backing file" },
        { { .capacity = 1 * MiB, .backing = "x", .backing_format = 99 },
          "backing format 99" },
        /* the refcount table of 2^28 data clusters exceeds QEMU's 8 MiB */
        { { .capacity = 128 * GiB, .cluster_size = 512,
            .prealloc_metadata = true }, "8 MiB limit" },
    };

    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GError) err = NULL;
        guint64 size = 0;

        g_test_message("case %zu: %s", i, cases[i].needle);
        g_assert_false(gfpool_qcow2_create(&cases[i].params, no_write, NULL,
                                           &size, &err));
        g_assert_error(err, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_INVALID);
        if (!strstr(err->message, cases[i].needle))
            g_error("message \"%s\" lacks \"%s\"", err->message,
                    cases[i].needle);
    }
}

/* Memory stays bounded: count the largest single write of a big image. */
static gboolean
count_write(void *opaque, guint64 off G_GNUC_UNUSED,
            const void *buf G_GNUC_UNUSED, gsize len,
            GError **error G_GNUC_UNUSED)
{
    gsize *max = opaque;

    *max = MAX(*max, len);
    return TRUE;
}

static void
test_create_streams(void)
{
    GfpoolQcow2Params params = { .capacity = 16 * TiB,
                                 .prealloc_metadata = true };
    g_autoptr(GError) err = NULL;
    gsize max_write = 0;
    guint64 size = 0;

    /* 2 GiB of L2 tables go out in bounded pieces (no real file: 16 TiB) */
    g_assert_true(gfpool_qcow2_create(&params, count_write, &max_write, &size,
                                      &err));
    g_assert_no_error(err);
    g_assert_cmpuint(max_write, <=, 4 * MiB);
    g_assert_cmpuint(size, >, params.capacity);
}

static gboolean
fail_write(void *opaque, guint64 off, const void *buf G_GNUC_UNUSED,
           gsize len G_GNUC_UNUSED, GError **error)
{
    int *calls = opaque;

    if (++*calls < 3)
        return TRUE;
    g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_NOSPC,
                "no space at %" G_GUINT64_FORMAT, off);
    return FALSE;
}

static void
test_create_write_error(void)
{
    GfpoolQcow2Params params = { .capacity = 1 * GiB,
                                 .prealloc_metadata = true };
    g_autoptr(GError) err = NULL;
    guint64 size = 0;
    int calls = 0;

    g_assert_false(gfpool_qcow2_create(&params, fail_write, &calls, &size,
                                       &err));
    g_assert_error(err, G_FILE_ERROR, G_FILE_ERROR_NOSPC);
}

/* ---- probing images qemu-img made ------------------------------------ */

typedef struct {
    const char *fmt;            /* qemu-img -f */
    const char *opts;           /* -o, or NULL */
    const char *size;
    GfpoolFormat want;
    const char *backing;
} ForeignCase;

static void
test_probe_foreign(void)
{
    g_autofree char *base = tmp_path("foreign-base.qcow2");
    const char *argv_base[] = { "qemu-img", "create", "-q", "-f", "qcow2",
                                base, "1G", NULL };
    const ForeignCase cases[] = {
        { "qcow2", "backing_file=foreign-base.qcow2,backing_fmt=qcow2", "1G",
          GFPOOL_FORMAT_QCOW2, "foreign-base.qcow2" },
        { "qcow2", "compat=0.10", "3G", GFPOOL_FORMAT_QCOW2, NULL },
        { "qcow2", "cluster_size=2M,preallocation=metadata", "100M",
          GFPOOL_FORMAT_QCOW2, NULL },
        { "qcow", NULL, "1G", GFPOOL_FORMAT_QCOW, NULL },
        { "qed", NULL, "5G", GFPOOL_FORMAT_QED, NULL },
        { "qed", "backing_file=foreign-base.qcow2,backing_fmt=qcow2", "1G",
          GFPOOL_FORMAT_QED, "foreign-base.qcow2" },
        { "vmdk", NULL, "7G", GFPOOL_FORMAT_VMDK, NULL },
        { "vmdk", "subformat=monolithicFlat", "3M", GFPOOL_FORMAT_VMDK, NULL },
        { "vmdk", "subformat=streamOptimized", "2G", GFPOOL_FORMAT_VMDK, NULL },
        { "vdi", NULL, "1G", GFPOOL_FORMAT_VDI, NULL },
        { "vhdx", NULL, "3G", GFPOOL_FORMAT_VHDX, NULL },
        { "vpc", NULL, "1G", GFPOOL_FORMAT_VPC, NULL },
        { "vpc", "force_size=on", "1G", GFPOOL_FORMAT_VPC, NULL },
        { "raw", NULL, "1M", GFPOOL_FORMAT_RAW, NULL },
    };

    qemu_img(argv_base, NULL);
    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        const ForeignCase *tc = &cases[i];
        g_autofree char *name = g_strdup_printf("foreign%zu.%s", i, tc->fmt);
        g_autofree char *path = tmp_path(name);
        g_autofree char *info = NULL;
        g_auto(GfpoolProbe) p = { 0 };
        const char *argv[12] = { "qemu-img", "create", "-q", "-f", tc->fmt };
        int n = 5;

        if (tc->opts) {
            argv[n++] = "-o";
            argv[n++] = tc->opts;
        }
        argv[n++] = path;
        argv[n++] = tc->size;
        qemu_img(argv, NULL);

        info = qemu_info(path, tc->fmt);
        probe_file(path, &p);
        g_test_message("%s %s: format %s capacity %" G_GUINT64_FORMAT,
                       tc->fmt, tc->opts ? tc->opts : "",
                       gfpool_format_to_string(p.format), p.capacity);
        g_assert_null(p.warning);
        g_assert_cmpint(p.format, ==, tc->want);
        g_assert_cmpuint(p.capacity, ==, json_uint(info, "virtual-size"));
        g_assert_cmpstr(p.backing, ==, tc->backing);
        if (tc->backing && tc->want == GFPOOL_FORMAT_QCOW2)
            g_assert_cmpint(p.backing_format, ==, GFPOOL_FORMAT_QCOW2);
        if (tc->want == GFPOOL_FORMAT_QCOW2 || tc->want == GFPOOL_FORMAT_QED)
            g_assert_cmpuint(p.cluster_size, ==,
                             json_uint(info, "cluster-size"));
        g_unlink(path);
    }
}

static void
test_probe_iso(void)
{
    g_autofree guint8 *buf = g_malloc0(0x9000);
    g_auto(GfpoolProbe) p = { 0 };
    g_auto(GfpoolProbe) q = { 0 };

    memcpy(buf + 0x8001, "CD001", 5);
    /* the whole thing as the header: no reader needed */
    gfpool_image_probe(buf, 0x9000, 0x9000, NULL, NULL, &p);
    g_assert_cmpint(p.format, ==, GFPOOL_FORMAT_ISO);
    g_assert_cmpuint(p.capacity, ==, 0x9000);

    /* 4 KiB header and no reader: indistinguishable from raw */
    gfpool_image_probe(buf, 4096, 0x9000, NULL, NULL, &q);
    g_assert_cmpint(q.format, ==, GFPOOL_FORMAT_RAW);
    g_assert_null(q.warning);
}

static void
test_format_names(void)
{
    for (int i = 0; i < GFPOOL_FORMAT_LAST; i++)
        g_assert_cmpint(gfpool_format_from_string(gfpool_format_to_string(i)),
                        ==, i);
    g_assert_cmpint(gfpool_format_from_string("qcow3"), ==, -1);
    g_assert_cmpint(gfpool_format_from_string(NULL), ==, -1);
    g_assert_null(gfpool_format_to_string(GFPOOL_FORMAT_LAST));
}

/* ---- corrupt headers ----------------------------------------------------- */

/* A small valid qcow2 with a backing name and format, held in memory. */
typedef struct {
    guint8 *data;
    gsize len;
} MemFile;

static gboolean
mem_write(void *opaque, guint64 off, const void *buf, gsize len,
          GError **error G_GNUC_UNUSED)
{
    MemFile *m = opaque;

    g_assert_cmpuint(off + len, <=, m->len);
    memcpy(m->data + off, buf, len);
    return TRUE;
}

static gssize
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

static gssize
broken_read(void *opaque G_GNUC_UNUSED, guint64 off G_GNUC_UNUSED,
            void *buf G_GNUC_UNUSED, gsize len G_GNUC_UNUSED, GError **error)
{
    g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_IO, "disk on fire");
    return -1;
}

static MemFile *
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

static void
mem_free(MemFile *m)
{
    g_free(m->data);
    g_free(m);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MemFile, mem_free)

static void
put_be32(guint8 *b, guint32 v)
{
    b[0] = v >> 24;
    b[1] = v >> 16;
    b[2] = v >> 8;
    b[3] = v;
}

static void
put_be64(guint8 *b, guint64 v)
{
    put_be32(b, v >> 32);
    put_be32(b + 4, v & 0xffffffff);
}

typedef enum {
    MUT_NONE,
    MUT_BE32,
    MUT_BE64,
} MutKind;

typedef struct {
    const char *name;
    gsize truncate;             /* 0 = keep the length */
    MutKind kind;
    gsize off;
    guint64 value;
    const char *needle;         /* in the warning */
} CorruptCase;

static void
test_probe_corrupt(void)
{
    const CorruptCase cases[] = {
        { "10 bytes", 10, MUT_NONE, 0, 0, "truncated" },
        { "100 bytes", 100, MUT_NONE, 0, 0, "truncated" },
        { "7 bytes", 7, MUT_NONE, 0, 0, "truncated" },
        { "version 4", 0, MUT_BE32, 4, 4, "version 4" },
        { "backing past EOF", 0, MUT_BE64, 8, 1 * MiB,
          "backing file name at offset 1048576" },
        { "backing huge", 0, MUT_BE32, 16, 0xffffff00u, "4294967040" },
        { "backing 1024", 0, MUT_BE32, 16, 1024, "1024" },
        { "header_length past cluster", 0, MUT_BE32, 100, 4097,
          "header_length 4097" },
        { "header_length small", 0, MUT_BE32, 100, 50, "header_length 50" },
        { "cluster_bits 0", 0, MUT_BE32, 20, 0, "cluster_bits 0" },
        { "cluster_bits 63", 0, MUT_BE32, 20, 63, "cluster_bits 63" },
        { "cluster_bits 2^32-1", 0, MUT_BE32, 20, 0xffffffffu,
          "cluster_bits 4294967295" },
        { "ext length overflow", 0, MUT_BE32, 116, 0xffffffffu,
          "length 4294967295" },
        { "ext length past cluster", 0, MUT_BE32, 116, 4000, "length 4000" },
        { "size 2^63", 0, MUT_BE64, 24, G_GUINT64_CONSTANT(1) << 63,
          "9223372036854775808" },
        { "size 2^64-1", 0, MUT_BE64, 24, G_MAXUINT64, "18446744073709551615" },
        { "l1_size too small", 0, MUT_BE32, 36, 0, "l1_size 0" },
        { "l1_size huge", 0, MUT_BE32, 36, 0xffffffffu, "l1_size 4294967295" },
        { "l1 unaligned", 0, MUT_BE64, 40, 12345, "L1 12345" },
        { "refcount_order 7", 0, MUT_BE32, 96, 7, "refcount_order 7" },
    };
    g_autoptr(MemFile) good = mem_qcow2();

    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        const CorruptCase *tc = &cases[i];
        g_autofree guint8 *buf = g_memdup2(good->data, good->len);
        MemFile m = { buf, tc->truncate ? tc->truncate : good->len };
        g_auto(GfpoolProbe) p = { 0 };
        g_auto(GfpoolProbe) q = { 0 };

        g_test_message("corrupt: %s", tc->name);
        if (tc->kind == MUT_BE32)
            put_be32(buf + tc->off, (guint32)tc->value);
        else if (tc->kind == MUT_BE64)
            put_be64(buf + tc->off, tc->value);

        /* with and without a reader, the answer is the same */
        gfpool_image_probe(buf, MIN(m.len, GFPOOL_PROBE_HEADER_SIZE), m.len,
                           mem_read, &m, &p);
        gfpool_image_probe(buf, m.len, m.len, NULL, NULL, &q);
        /* never raw: the signature's format (qcow for a version that is
         * not 2 or 3), flagged corrupt, nothing else of the header kept */
        g_assert_cmpint(p.format, ==, (tc->kind == MUT_BE32 && tc->off == 4) ||
                        m.len < 8 ? GFPOOL_FORMAT_QCOW : GFPOOL_FORMAT_QCOW2);
        g_assert_cmpuint(p.capacity, ==, m.len);
        g_assert_null(p.backing);
        g_assert_cmpuint(p.cluster_size, ==, 0);
        g_assert_nonnull(p.warning);
        g_assert_true(g_str_has_prefix(p.warning, "unusable qcow"));
        if (!strstr(p.warning, tc->needle))
            g_error("warning \"%s\" lacks \"%s\"", p.warning, tc->needle);
        g_assert_cmpint(q.format, ==, p.format);
        g_assert_nonnull(q.warning);
    }
}

/* A format given from elsewhere (the volume's record) is never overruled
 * by the bytes: what a guest writes into its raw disk stays raw data. */
static void
test_probe_as(void)
{
    g_autoptr(MemFile) q = mem_qcow2();
    /* the raw disk of a guest that wrote a qcow2 header (virtual size
     * 1 GiB, backing base.img) at its first sector */
    guint64 disk_size = 64 * MiB;
    g_auto(GfpoolProbe) p = { 0 };

    gfpool_image_probe(q->data, q->len, disk_size, mem_read, q, &p);
    g_assert_cmpint(p.format, ==, GFPOOL_FORMAT_QCOW2);
    g_assert_cmpstr(p.backing, ==, "base.img");
    g_assert_false(p.recorded);
    gfpool_probe_clear(&p);

    /* recorded raw: the file's size, no backing, no header read at all */
    gfpool_image_probe_as(GFPOOL_FORMAT_RAW, q->data, q->len, disk_size, broken_read, NULL, &p);
    g_assert_cmpint(p.format, ==, GFPOOL_FORMAT_RAW);
    g_assert_cmpuint(p.capacity, ==, disk_size);
    g_assert_null(p.backing);
    g_assert_null(p.warning);
    g_assert_false(p.corrupt);
    g_assert_true(p.recorded);
    gfpool_probe_clear(&p);

    /* recorded qcow2 and a qcow2 header: the header's fields */
    gfpool_image_probe_as(GFPOOL_FORMAT_QCOW2, q->data, q->len, q->len, mem_read, q, &p);
    g_assert_cmpint(p.format, ==, GFPOOL_FORMAT_QCOW2);
    g_assert_cmpuint(p.capacity, ==, 1 * GiB);
    g_assert_cmpstr(p.backing, ==, "base.img");
    g_assert_null(p.warning);
    g_assert_true(p.recorded);
    gfpool_probe_clear(&p);

    /* recorded qcow2, bytes that are not: corrupt qcow2, never raw */
    {
        guint8 zeros[4096] = { 0 };
        gfpool_image_probe_as(GFPOOL_FORMAT_QCOW2, zeros, sizeof(zeros), 1 * MiB, NULL, NULL, &p);
        g_assert_cmpint(p.format, ==, GFPOOL_FORMAT_QCOW2);
        g_assert_true(p.corrupt);
        g_assert_true(p.recorded);
        g_assert_cmpuint(p.capacity, ==, 1 * MiB);
        g_assert_null(p.backing);
        g_assert_nonnull(p.warning);
        g_assert_nonnull(strstr(p.warning, "not a qcow2 header (it reads as raw)"));
        gfpool_probe_clear(&p);
    }

    /* recorded vmdk, a qcow2 header: corrupt vmdk */
    gfpool_image_probe_as(GFPOOL_FORMAT_VMDK, q->data, q->len, q->len, mem_read, q, &p);
    g_assert_cmpint(p.format, ==, GFPOOL_FORMAT_VMDK);
    g_assert_true(p.corrupt);
    g_assert_null(p.backing);
    g_assert_nonnull(strstr(p.warning, "it reads as qcow2"));
}

static void
test_probe_qcow2_edges(void)
{
    g_autoptr(MemFile) good = mem_qcow2();
    g_autofree guint8 *buf = g_memdup2(good->data, good->len);
    g_auto(GfpoolProbe) p = { 0 };
    g_auto(GfpoolProbe) q = { 0 };
    g_auto(GfpoolProbe) r = { 0 };
    g_auto(GfpoolProbe) s = { 0 };
    guint64 name_off = 0;

    gfpool_image_probe(buf, good->len, good->len, NULL, NULL, &p);
    g_assert_cmpint(p.format, ==, GFPOOL_FORMAT_QCOW2);
    g_assert_cmpstr(p.backing, ==, "base.img");
    g_assert_cmpint(p.backing_format, ==, GFPOOL_FORMAT_RAW);
    g_assert_null(p.warning);

    /* unknown incompatible bit: still qcow2, as qemu-img info says */
    put_be64(buf + 72, G_GUINT64_CONSTANT(1) << 40);
    gfpool_image_probe(buf, good->len, good->len, NULL, NULL, &q);
    g_assert_cmpint(q.format, ==, GFPOOL_FORMAT_QCOW2);
    g_assert_nonnull(q.warning);
    g_assert_nonnull(strstr(q.warning, "unknown bits"));
    put_be64(buf + 72, 0);

    /* a NUL inside the backing name */
    for (int i = 0; i < 8; i++)
        name_off = (name_off << 8) | buf[8 + i];
    buf[name_off + 2] = '\0';
    gfpool_image_probe(buf, good->len, good->len, NULL, NULL, &r);
    g_assert_cmpint(r.format, ==, GFPOOL_FORMAT_QCOW2);
    g_assert_nonnull(strstr(r.warning, "NUL"));
    g_assert_null(r.backing);

    /* a reader that fails is reported, not fatal: move the name past the
     * 4 KiB header so it must be read */
    {
        g_autofree guint8 *big = g_malloc0(64 * KiB);
        g_auto(GfpoolProbe) t = { 0 };

        memcpy(big, good->data, 4096);
        put_be32(big + 20, 16);           /* 64 KiB clusters */
        put_be32(big + 36, 16);           /* L1 still maps 1 GiB */
        put_be64(big + 40, 0);
        put_be64(big + 48, 0);
        put_be64(big + 8, 8192);
        memcpy(big + 8192, "far.img", 7);
        put_be32(big + 16, 7);
        gfpool_image_probe(big, 4096, 64 * KiB, broken_read, NULL, &s);
        g_assert_cmpint(s.format, ==, GFPOOL_FORMAT_QCOW2);
        g_assert_nonnull(strstr(s.warning, "disk on fire"));

        MemFile m = { big, 64 * KiB };
        gfpool_image_probe(big, 4096, 64 * KiB, mem_read, &m, &t);
        g_assert_null(t.warning);
        g_assert_cmpint(t.format, ==, GFPOOL_FORMAT_QCOW2);
        g_assert_cmpstr(t.backing, ==, "far.img");
    }
}

/* Every single-byte change of the first 512 bytes, of each format: the
 * sanitizer build turns any out-of-bounds access into a failure. */
static void
test_probe_mutations(void)
{
    g_autoptr(MemFile) good = mem_qcow2();
    const char *fmts[] = { "qed", "vmdk", "vdi", "vhdx", "vpc", "qcow" };
    g_autoptr(GPtrArray) images =
        g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);

    g_ptr_array_add(images, g_bytes_new(good->data, good->len));
    for (gsize i = 0; i < G_N_ELEMENTS(fmts); i++) {
        g_autofree char *path = tmp_path("mutate.img");
        const char *argv[] = { "qemu-img", "create", "-q", "-f", fmts[i],
                               path, "1G", NULL };
        char *contents = NULL;
        gsize len = 0;

        qemu_img(argv, NULL);
        g_assert_true(g_file_get_contents(path, &contents, &len, NULL));
        g_ptr_array_add(images, g_bytes_new_take(contents,
                                                 MIN(len, 256 * KiB)));
        g_unlink(path);
    }

    for (guint i = 0; i < images->len; i++) {
        gsize len;
        const guint8 *orig = g_bytes_get_data(images->pdata[i], &len);
        g_autofree guint8 *buf = g_memdup2(orig, len);
        MemFile m = { buf, len };

        for (gsize off = 0; off < MIN(len, (gsize)512); off++) {
            const guint8 vals[] = { 0x00, 0xff, 0x7f, 0x80, orig[off] ^ 1 };

            for (gsize v = 0; v < G_N_ELEMENTS(vals); v++) {
                g_auto(GfpoolProbe) p = { 0 };

                buf[off] = vals[v];
                gfpool_image_probe(buf,
                                   MIN(len, (gsize)GFPOOL_PROBE_HEADER_SIZE),
                                   len, mem_read, &m, &p);
                g_assert_cmpint(p.format, >, GFPOOL_FORMAT_NONE);
                g_assert_cmpint(p.format, <, GFPOOL_FORMAT_LAST);
                if (p.format == GFPOOL_FORMAT_RAW)
                    g_assert_cmpuint(p.capacity, ==, len);
            }
            buf[off] = orig[off];
        }
        /* every truncation of the header as well */
        for (gsize cut = 0; cut <= MIN(len, (gsize)600); cut++) {
            g_auto(GfpoolProbe) p = { 0 };

            gfpool_image_probe(buf, cut, cut, mem_read, &m, &p);
        }
    }
}

static void
test_probe_empty(void)
{
    g_auto(GfpoolProbe) p = { 0 };
    g_auto(GfpoolProbe) q = { 0 };

    gfpool_image_probe(NULL, 0, 0, NULL, NULL, &p);
    g_assert_cmpint(p.format, ==, GFPOOL_FORMAT_RAW);
    g_assert_cmpuint(p.capacity, ==, 0);
    /* header longer than the file claims: only the file's bytes count, so
     * the magic alone, without a version: a corrupt qcow, never raw */
    gfpool_image_probe((const guint8 *)"QFI\xfb\0\0\0\3", 8, 4, NULL, NULL, &q);
    g_assert_cmpint(q.format, ==, GFPOOL_FORMAT_QCOW);
    g_assert_cmpuint(q.capacity, ==, 4);
    g_assert_nonnull(q.warning);
}

/* ---- shared helpers for map / allocate / resize ------------------------- */

/* Exit status of a command (0 when it succeeded). */
static int
run_status(const char *const *argv, char **out)
{
    g_autoptr(GError) err = NULL;

    if (run(argv, out, &err))
        return 0;
    if (err->domain == G_SPAWN_EXIT_ERROR)
        return err->code;
    g_error("%s", err->message);
}

static void
copy_file(const char *from, const char *to)
{
    const char *argv[] = { "cp", "--sparse=always", from, to, NULL };

    qemu_img(argv, NULL);
}

static void
qemu_io_check(const char *out, const char *path, const char *cmd)
{
    /* qemu-io reports failed pattern checks on stdout and still exits 0 */
    if (strstr(out, "Pattern verification failed") || strstr(out, "failed"))
        g_error("qemu-io %s on %s: %s", cmd, path, out);
}

static void
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

static void
qemu_compare(const char *a, const char *fmt_a, const char *b,
             const char *fmt_b)
{
    const char *argv[] = { "qemu-img", "compare", "-f", fmt_a, "-F", fmt_b,
                           a, b, NULL };
    g_autofree char *out = NULL;

    qemu_img(argv, &out);
}

static guint64
file_size_of(const char *path)
{
    GStatBuf st;

    g_assert_cmpint(g_stat(path, &st), ==, 0);
    return st.st_size;
}

static gboolean
collect_extent(void *opaque, const GfpoolExtent *e, GError **error G_GNUC_UNUSED)
{
    g_array_append_val((GArray *)opaque, *e);
    return TRUE;
}

/* gfpool_qcow2_map on a local file, as the driver calls it. */
static gboolean
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
static gboolean
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
static GArray *
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
static GArray *
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
static GArray *
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

static void
expect_map_error(const char *path, int code, const char *needle)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GArray) ext = NULL;

    g_assert_false(map_file(path, &ext, &err));
    g_assert_error(err, GFPOOL_IMAGE_ERROR, code);
    if (!strstr(err->message, needle))
        g_error("message \"%s\" lacks \"%s\"", err->message, needle);
}

/* ---- map ------------------------------------------------------------------ */

static void
test_map_qemu(void)
{
    g_autofree char *base = tmp_path("map-base.raw");
    const char *base_argv[] = { "qemu-img", "create", "-q", "-f", "raw", base,
                                "1G", NULL };
    struct {
        const char *opts;
        const char *size;
        const char *cmds[6];
    } cases[] = {
        { NULL, "1G", { NULL } },
        { NULL, "1G", { "write -P 0xab 0 1M", "write -P 0x11 100M 70k",
                        "write -z 200M 128k", "write -P 0x22 1023M 1M",
                        "discard 512k 64k", NULL } },
        /* 512-byte clusters: L2 tables map 32 KiB, so writes cross them */
        { "cluster_size=512", "1G", { "write -P 0xcd 30k 10k",
                                      "write -z 64k 64k",
                                      "write -P 0xce 1000000 100000", NULL } },
        { "cluster_size=2M", "5G", { "write -P 1 3M 5M", "write -z 4G 2M",
                                     NULL } },
        { "compat=0.10", "3G", { "write -P 2 0 3M", "write -P 3 2G 64k",
                                 NULL } },
        /* not a multiple of the cluster size: the last extent is partial */
        { "cluster_size=4096", "1000000512", { "write -P 4 999999488 1024",
                                               NULL } },
        { "backing_file=map-base.raw,backing_fmt=raw", "1G",
          { "write -P 5 1M 1M", "write -z 2M 64k", NULL } },
        { "preallocation=metadata", "100M", { "write -P 6 7M 1M", NULL } },
        { "refcount_bits=1,cluster_size=1024", "100M",
          { "write -P 7 0 100k", NULL } },
    };

    qemu_img(base_argv, NULL);
    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *path = tmp_path("map.qcow2");
        g_autoptr(GArray) ext = NULL;
        const char *argv[10] = { "qemu-img", "create", "-q", "-f", "qcow2" };
        int n = 5;

        if (cases[i].opts) {
            argv[n++] = "-o";
            argv[n++] = cases[i].opts;
        }
        argv[n++] = path;
        argv[n++] = cases[i].size;
        qemu_img(argv, NULL);
        for (gsize c = 0; cases[i].cmds[c]; c++)
            qemu_io(path, cases[i].cmds[c]);
        g_test_message("map case %zu: %s", i,
                       cases[i].opts ? cases[i].opts : "");
        ext = check_map(path);
        g_unlink(path);
    }
}

/* each case's qemu-img create arguments; map must refuse the image */
static void
test_map_unsupported(void)
{
    g_autofree char *src = tmp_path("unsup-src.raw");
    g_autofree char *path = tmp_path("unsup.qcow2");
    g_autofree char *data = tmp_path("unsup-data.raw");
    g_autofree char *data_opt = g_strdup_printf("data_file=%s", data);
    const char *src_argv[] = { "qemu-img", "create", "-q", "-f", "raw", src,
                               "4M", NULL };
    const char *conv_argv[] = { "qemu-img", "convert", "-q", "-c", "-f", "raw",
                                "-O", "qcow2", src, path, NULL };
    const char *plain_argv[] = { "qemu-img", "create", "-q", "-f", "qcow2",
                                 path, "16M", NULL };
    const char *ext_argv[] = { "qemu-img", "create", "-q", "-f", "qcow2",
                               "-o", "extended_l2=on", path, "16M", NULL };
    const char *df_argv[] = { "qemu-img", "create", "-q", "-f", "qcow2",
                              "-o", data_opt, path, "16M", NULL };
    int fd;

    /* compressed data from 1M on */
    qemu_img(src_argv, NULL);
    fd = open(src, O_WRONLY);
    {
        g_autofree guint8 *buf = g_malloc(64 * KiB);

        for (gsize i = 0; i < 64 * KiB; i++)
            buf[i] = (guint8)(i % 7);
        g_assert_true(fd_write(GINT_TO_POINTER(fd), 1 * MiB, buf, 64 * KiB,
                               NULL));
    }
    close(fd);
    qemu_img(conv_argv, NULL);
    expect_map_error(path, GFPOOL_IMAGE_ERROR_UNSUPPORTED,
                     "cluster at guest offset 1048576 is compressed: "
                     "compressed clusters are not supported");
    g_unlink(path);

    /* crypt_method 2 (LUKS) set by hand: qemu-img's own LUKS create
     * calibrates PBKDF2 on CPU time and fails ("Unable to get accurate CPU
     * usage") when other processes keep both CPUs busy. */
    qemu_img(plain_argv, NULL);
    fd = open(path, O_WRONLY);
    {
        static const guint8 luks_method[4] = { 0, 0, 0, 2 };

        g_assert_true(fd_write(GINT_TO_POINTER(fd), 32, luks_method, 4, NULL));
    }
    close(fd);
    expect_map_error(path, GFPOOL_IMAGE_ERROR_UNSUPPORTED, "encrypted");
    g_unlink(path);

    qemu_img(ext_argv, NULL);
    expect_map_error(path, GFPOOL_IMAGE_ERROR_UNSUPPORTED, "extended L2");
    g_unlink(path);

    qemu_img(df_argv, NULL);
    expect_map_error(path, GFPOOL_IMAGE_ERROR_UNSUPPORTED,
                     "external data file");
    g_unlink(path);

    /* not qcow2 at all */
    expect_map_error(src, GFPOOL_IMAGE_ERROR_INVALID, "probes as raw");
}

/* An in-memory image from our creator with one allocated cluster, for
 * corrupting table entries. 1 GiB, 4 KiB clusters: 512 L1 entries. */
typedef struct {
    guint8 *data;
    gsize len;
    guint64 l1_off;
    guint64 l2_off;             /* the one L2 table */
    guint64 data_off;           /* its one data cluster (guest 0) */
} SmallImage;

static void
small_image(SmallImage *s)
{
    static const GfpoolRange r = { 0, 100 };
    GfpoolQcow2Params params = { .capacity = 1 * GiB, .cluster_size = 4096,
                                 .allocate = &r, .n_allocate = 1 };
    MemFile m = { g_malloc0(256 * KiB), 256 * KiB };
    GfpoolExtent run;
    guint64 size = 0;
    g_autoptr(GError) err = NULL;

    g_assert_true(gfpool_qcow2_create_allocated(&params, mem_write, &m, &run,
                                                &size, &err));
    g_assert_no_error(err);
    s->data = m.data;
    s->len = size;
    s->l1_off = 0;
    for (int i = 0; i < 8; i++)
        s->l1_off = (s->l1_off << 8) | s->data[40 + i];
    s->l2_off = 0;
    for (int i = 1; i < 8; i++)
        s->l2_off = (s->l2_off << 8) | s->data[s->l1_off + i];
    s->data_off = run.host_off;
}

static gboolean
mem_map(const guint8 *buf, gsize len, GArray *ext, GError **error)
{
    MemFile m = { (guint8 *)buf, len };

    return gfpool_qcow2_map(buf, MIN(len, (gsize)GFPOOL_PROBE_HEADER_SIZE),
                            len, mem_read, &m, collect_extent, ext, error);
}

static gboolean
fail_second(void *opaque, const GfpoolExtent *e G_GNUC_UNUSED, GError **error)
{
    int *calls = opaque;

    if (++*calls < 2)
        return TRUE;
    g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INTR, "enough");
    return FALSE;
}

static void
test_map_corrupt(void)
{
    SmallImage s;
    struct {
        const char *name;
        guint64 off;            /* 0 = at the L1 entry, 1 = the L2 entry */
        guint64 value;
        const char *needle;
    } cases[] = {
        { "L2 table unaligned", 0, 4096 * 3 + 512, "L1 entry 0" },
        { "L2 table past EOF", 0, 1 * GiB, "L2 table offset 1073741824" },
        { "data unaligned", 1, 4096 * 2 + 512,
          "L2 entry 0 of L1 entry 0 (guest offset 0) is invalid: host offset" },
        { "data past EOF", 1, 64 * GiB, "past the end" },
        { "compressed", 1, G_GUINT64_CONSTANT(1) << 62,
          "compressed clusters are not supported" },
        { "huge", 1, G_MAXUINT64, "compressed" },
    };
    g_autoptr(GArray) ok = g_array_new(FALSE, FALSE, sizeof(GfpoolExtent));
    g_autoptr(GError) err = NULL;

    small_image(&s);
    g_assert_true(mem_map(s.data, s.len, ok, &err));
    g_assert_no_error(err);
    g_assert_cmpuint(ok->len, ==, 2);
    g_assert_cmpint(g_array_index(ok, GfpoolExtent, 0).kind, ==,
                    GFPOOL_EXTENT_DATA);
    g_assert_cmpuint(g_array_index(ok, GfpoolExtent, 0).host_off, ==,
                     s.data_off);
    g_assert_cmpuint(g_array_index(ok, GfpoolExtent, 0).len, ==, 4096);
    g_assert_cmpint(g_array_index(ok, GfpoolExtent, 1).kind, ==,
                    GFPOOL_EXTENT_ZERO);

    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree guint8 *buf = g_memdup2(s.data, s.len);
        g_autoptr(GArray) ext = g_array_new(FALSE, FALSE,
                                            sizeof(GfpoolExtent));
        g_autoptr(GError) e = NULL;

        g_test_message("map corrupt: %s", cases[i].name);
        put_be64(buf + (cases[i].off ? s.l2_off : s.l1_off), cases[i].value);
        g_assert_false(mem_map(buf, s.len, ext, &e));
        g_assert_nonnull(e);
        g_assert_true(e->domain == GFPOOL_IMAGE_ERROR);
        if (!strstr(e->message, cases[i].needle))
            g_error("message \"%s\" lacks \"%s\"", e->message,
                    cases[i].needle);
    }

    /* every L1 entry on the one L2 table: refused before reading 512 */
    {
        g_autofree guint8 *buf = g_memdup2(s.data, s.len);
        g_autoptr(GArray) ext = g_array_new(FALSE, FALSE,
                                            sizeof(GfpoolExtent));
        g_autoptr(GError) e = NULL;

        for (int i = 0; i < 512; i++)
            put_be64(buf + s.l1_off + i * 8, s.l2_off);
        g_assert_false(mem_map(buf, s.len, ext, &e));
        g_assert_error(e, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_CORRUPT);
        g_assert_nonnull(strstr(e->message, "more L2 tables than"));
    }

    /* file cut inside the data cluster / the L1 table */
    {
        g_autoptr(GArray) ext = g_array_new(FALSE, FALSE,
                                            sizeof(GfpoolExtent));
        g_autoptr(GError) e = NULL;
        g_autoptr(GError) e2 = NULL;

        g_assert_false(mem_map(s.data, s.data_off + 50, ext, &e));
        g_assert_error(e, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_CORRUPT);
        g_assert_false(mem_map(s.data, s.l1_off + 8, ext, &e2));
        g_assert_error(e2, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_CORRUPT);
    }

    /* the callback's error stops the walk */
    {
        MemFile m = { s.data, s.len };
        g_autoptr(GError) e = NULL;
        int calls = 0;

        g_assert_false(gfpool_qcow2_map(s.data, s.len, s.len, mem_read, &m,
                                        fail_second, &calls, &e));
        g_assert_error(e, G_FILE_ERROR, G_FILE_ERROR_INTR);
        g_assert_cmpint(calls, ==, 2);
    }

    /* the reader's error too */
    {
        g_autoptr(GError) e = NULL;
        g_autoptr(GArray) ext = g_array_new(FALSE, FALSE,
                                            sizeof(GfpoolExtent));

        g_assert_false(gfpool_qcow2_map(s.data, 4096, s.len, broken_read,
                                        NULL, collect_extent, ext, &e));
        g_assert_error(e, G_FILE_ERROR, G_FILE_ERROR_IO);
    }
    g_free(s.data);
}

/* ---- create with allocated ranges --------------------------------------- */

/* the byte we store at guest offset g */
static guint8
pattern(guint64 g)
{
    return (guint8)(((g >> 9) * 131 + (g & 511) * 7 + 1) & 0xff);
}

typedef struct {
    const char *name;
    guint64 capacity;
    guint32 cluster_size;
    bool prealloc;
    const GfpoolRange *ranges;
    gsize n;
    bool big;                   /* too big for a raw reference: qemu-io */
} RangeCase;

static void
check_ranges(const RangeCase *tc)
{
    GfpoolQcow2Params params = { .capacity = tc->capacity,
                                 .cluster_size = tc->cluster_size,
                                 .prealloc_metadata = tc->prealloc,
                                 .allocate = tc->ranges,
                                 .n_allocate = tc->n };
    guint64 cs = tc->cluster_size ? tc->cluster_size : 65536;
    guint64 cap = (tc->capacity + 511) / 512 * 512;
    g_autofree char *path = tmp_path("ranges.qcow2");
    g_autofree char *raw = tmp_path("ranges.raw");
    g_autofree GfpoolExtent *runs = g_new0(GfpoolExtent, tc->n + 1);
    g_autoptr(GError) err = NULL;
    g_autoptr(GArray) ext = NULL;
    guint64 size = 0, pos = 0;
    int fd, rfd = -1;

    g_test_message("ranges case %s", tc->name);
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    g_assert_cmpint(fd, >=, 0);
    g_assert_true(gfpool_qcow2_create_allocated(&params, fd_write,
                                                GINT_TO_POINTER(fd), runs,
                                                &size, &err));
    g_assert_no_error(err);
    g_assert_cmpint(ftruncate(fd, (off_t)size), ==, 0);
    if (!tc->big) {
        rfd = open(raw, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        g_assert_cmpint(ftruncate(rfd, (off_t)cap), ==, 0);
    }

    for (gsize i = 0; i < tc->n; i++) {
        const GfpoolRange *r = &tc->ranges[i];
        gsize len = (gsize)r->length;
        g_autofree guint8 *buf = g_malloc(len);

        g_assert_cmpuint(runs[i].guest_off, ==, r->offset);
        g_assert_cmpuint(runs[i].len, ==, r->length);
        g_assert_cmpint(runs[i].kind, ==, GFPOOL_EXTENT_DATA);
        /* same offset within the cluster, inside the file, in guest order */
        g_assert_cmpuint(runs[i].host_off % cs, ==, r->offset % cs);
        g_assert_cmpuint(runs[i].host_off + r->length, <=, size);
        if (i > 0)
            g_assert_cmpuint(runs[i].host_off, >=,
                             runs[i - 1].host_off + runs[i - 1].len);
        for (gsize j = 0; j < len; j++)
            buf[j] = pattern(r->offset + j);
        g_assert_true(fd_write(GINT_TO_POINTER(fd), runs[i].host_off, buf,
                               len, NULL));
        if (rfd >= 0)
            g_assert_true(fd_write(GINT_TO_POINTER(rfd), r->offset, buf, len,
                                   NULL));
    }
    close(fd);
    if (rfd >= 0)
        close(rfd);

    qemu_check(path);
    ext = check_map(path);
    if (!tc->big)
        qemu_compare(path, "qcow2", raw, "raw");

    /* allocated: exactly the ranges widened to clusters (all with prealloc) */
    for (guint i = 0; i < ext->len; i++) {
        const GfpoolExtent *e = &g_array_index(ext, GfpoolExtent, i);

        for (guint64 c = e->guest_off / cs;
             c < div_round_up_test(e->guest_off + e->len, cs); c++) {
            bool want = tc->prealloc;

            for (gsize k = 0; k < tc->n && !want; k++)
                want = c >= tc->ranges[k].offset / cs &&
                       c < div_round_up_test(tc->ranges[k].offset +
                                             tc->ranges[k].length, cs);
            if (want != (e->kind == GFPOOL_EXTENT_DATA))
                g_error("cluster %" G_GUINT64_FORMAT " allocated %d, want %d",
                        c, e->kind == GFPOOL_EXTENT_DATA, want);
            /* big images: only look near the extent edges */
            if (c - e->guest_off / cs > 4 &&
                div_round_up_test(e->guest_off + e->len, cs) - c > 4)
                c = div_round_up_test(e->guest_off + e->len, cs) - 5;
        }
        pos += e->len;
    }
    g_assert_cmpuint(pos, ==, cap);

    if (tc->big) {
        for (gsize i = 0; i < tc->n; i++) {
            /* the first and last KiB of each range, byte by byte */
            const GfpoolRange *r = &tc->ranges[i];
            guint64 n = MIN(r->length, (guint64)1024);
            g_autofree char *c1 = g_strdup_printf(
                "read -P %u %" G_GUINT64_FORMAT " 1", pattern(r->offset),
                r->offset);
            g_autofree char *c2 = g_strdup_printf(
                "read -P %u %" G_GUINT64_FORMAT " 1",
                pattern(r->offset + r->length - 1),
                r->offset + r->length - 1);

            (void)n;
            qemu_io(path, c1);
            qemu_io(path, c2);
        }
    }
    g_unlink(path);
    g_unlink(raw);
}

static void
test_create_ranges(void)
{
    static const GfpoolRange r512[] = {
        { 30 * KiB, 10 * KiB },             /* crosses the 32 KiB L2 edge */
        { 100 * KiB + 3, 100 * KiB + 4 },   /* unaligned both ends */
        { 200 * KiB + 7, 1 },               /* shares a cluster with it */
        { 1 * MiB - 1, 2 },                 /* across a table edge */
        { 2 * MiB, 96 * KiB },              /* three whole tables */
        { 2 * MiB + 96 * KiB, 512 },        /* adjacent */
        { 10 * MiB - 700, 700 },            /* ends at the capacity */
    };
    static const GfpoolRange r64k[] = {
        { 0, 100 }, { 200, 100 }, { 65535, 2 },
        { 511 * MiB, 2 * MiB },             /* across an L1 entry */
        { 1 * GiB - 4096, 4096 },
    };
    static const GfpoolRange r16t[] = {
        { 0, 1 * MiB },
        { 4 * TiB - 64 * KiB, 128 * KiB },
        { 8 * TiB + 12345, 100 },
        { 16 * TiB - 512, 512 },
    };
    static const GfpoolRange rpre[] = { { 1 * MiB + 5, 3 * MiB } };
    static const GfpoolRange rodd[] = { { 1000000000, 1 } };
    static const RangeCase cases[] = {
        { "512", 10 * MiB, 512, false, r512, G_N_ELEMENTS(r512), false },
        { "64k", 1 * GiB, 0, false, r64k, G_N_ELEMENTS(r64k), false },
        { "2M", 1 * GiB, 2 * 1024 * 1024, false, r64k, G_N_ELEMENTS(r64k),
          false },
        { "16T", 16 * TiB, 0, false, r16t, G_N_ELEMENTS(r16t), true },
        { "prealloc", 64 * MiB, 4096, true, rpre, 1, false },
        { "odd capacity", 1000000001, 4096, false, rodd, 1, false },
        { "none", 1 * GiB, 0, false, NULL, 0, false },
    };

    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++)
        check_ranges(&cases[i]);
}

static gboolean
buf_write(void *opaque, guint64 off, const void *buf, gsize len,
          GError **error G_GNUC_UNUSED)
{
    GByteArray *b = opaque;

    if (b->len < off + len) {
        guint old = b->len;

        g_byte_array_set_size(b, (guint)(off + len));
        memset(b->data + old, 0, b->len - old);
    }
    memcpy(b->data + off, buf, len);
    return TRUE;
}

/* No ranges writes exactly what plain create writes. */
static void
test_create_ranges_empty(void)
{
    GfpoolQcow2Params params = { .capacity = 10 * GiB, .cluster_size = 4096,
                                 .backing = "b.img",
                                 .backing_format = GFPOOL_FORMAT_RAW };
    g_autoptr(GByteArray) a = g_byte_array_new();
    g_autoptr(GByteArray) b = g_byte_array_new();
    guint64 sa = 0, sb = 0;

    g_assert_true(gfpool_qcow2_create(&params, buf_write, a, &sa, NULL));
    g_assert_true(gfpool_qcow2_create_allocated(&params, buf_write, b, NULL,
                                                &sb, NULL));
    g_assert_cmpuint(sa, ==, sb);
    g_assert_cmpmem(a->data, a->len, b->data, b->len);
}

static void
test_create_ranges_invalid(void)
{
    static const GfpoolRange unsorted[] = { { 4096, 10 }, { 0, 10 } };
    static const GfpoolRange overlap[] = { { 0, 4097 }, { 4096, 10 } };
    static const GfpoolRange empty[] = { { 0, 0 } };
    static const GfpoolRange past[] = { { 1 * MiB - 10, 11 } };
    static const GfpoolRange huge[] = { { 10, G_MAXUINT64 } };
    const struct {
        const GfpoolRange *r;
        gsize n;
        const char *needle;
    } cases[] = {
        { unsorted, 2, "range 1 (offset 0) is invalid: ranges must be sorted" },
        { overlap, 2, "must not overlap" },
        { empty, 1, "length 0) is invalid: must be non-empty" },
        { past, 1, "end within the capacity 1048576" },
        { huge, 1, "length 18446744073709551615" },
        { NULL, 3, "3 allocate ranges are invalid without an array" },
    };

    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        GfpoolQcow2Params params = { .capacity = 1 * MiB,
                                     .allocate = cases[i].r,
                                     .n_allocate = cases[i].n };
        g_autoptr(GError) err = NULL;
        guint64 size = 0;

        g_assert_false(gfpool_qcow2_create_allocated(&params, no_write, NULL,
                                                     NULL, &size, &err));
        g_assert_error(err, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_INVALID);
        if (!strstr(err->message, cases[i].needle))
            g_error("message \"%s\" lacks \"%s\"", err->message,
                    cases[i].needle);
    }
}

/* Many ranges, one per cluster pair, over a big image: memory and write
 * count stay bounded. */
static void
test_create_ranges_streams(void)
{
    gsize n = 100000;
    g_autofree GfpoolRange *r = g_new(GfpoolRange, n);
    g_autofree GfpoolExtent *runs = g_new(GfpoolExtent, n);
    GfpoolQcow2Params params = { .capacity = 16 * TiB, .allocate = r,
                                 .n_allocate = n };
    gsize max_write = 0;
    guint64 size = 0;
    g_autoptr(GError) err = NULL;

    for (gsize i = 0; i < n; i++)
        r[i] = (GfpoolRange) { i * 160 * MiB + 3, 70000 };
    g_assert_true(gfpool_qcow2_create_allocated(&params, count_write,
                                                &max_write, runs, &size, &err));
    g_assert_no_error(err);
    g_assert_cmpuint(max_write, <=, 4 * MiB);
    /* 70000 bytes at offset 3 need two 64 KiB clusters each */
    g_assert_cmpuint(runs[n - 1].host_off + 70000, <=, size);
    g_assert_cmpuint(runs[1].host_off - runs[0].host_off, ==, 128 * KiB);
}

/* ---- resize ----------------------------------------------------------- */

typedef struct {
    int fd;
    int writes_left;            /* -1 = unlimited */
    int writes;
} ResizeIo;

static gssize
rio_read(void *opaque, guint64 off, void *buf, gsize len, GError **error)
{
    ResizeIo *io = opaque;

    return fd_read(GINT_TO_POINTER(io->fd), off, buf, len, error);
}

static gboolean
rio_write(void *opaque, guint64 off, const void *buf, gsize len,
          GError **error)
{
    ResizeIo *io = opaque;

    if (io->writes_left == 0) {
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_IO, "crash");
        return FALSE;
    }
    if (io->writes_left > 0)
        io->writes_left--;
    io->writes++;
    return fd_write(GINT_TO_POINTER(io->fd), off, buf, len, error);
}

/* Resize a local file; returns the number of writes made. */
static gboolean
resize_file(const char *path, guint64 capacity, int max_writes, int *writes,
            GError **error)
{
    guint8 header[GFPOOL_PROBE_HEADER_SIZE];
    ResizeIo io = { open(path, O_RDWR | O_CLOEXEC), max_writes, 0 };
    guint64 old = file_size_of(path), new_size = 0;
    gssize n;
    gboolean ok;

    g_assert_cmpint(io.fd, >=, 0);
    n = fd_read(GINT_TO_POINTER(io.fd), 0, header, sizeof(header), NULL);
    g_assert_cmpint(n, >=, 0);
    ok = gfpool_qcow2_resize(header, n, old, rio_read, rio_write, &io,
                             capacity, &new_size, error);
    if (ok) {
        g_assert_cmpuint(new_size, >=, old);
        g_assert_cmpuint(file_size_of(path), <=, new_size);
        g_assert_cmpint(ftruncate(io.fd, (off_t)new_size), ==, 0);
    }
    close(io.fd);
    if (writes)
        *writes = io.writes;
    return ok;
}

/*
 * Resize path; the map must be the old one plus an unallocated tail. When
 * qemu-img can do the same quickly (it allocates a big L1 a refcount block
 * at a time: minutes for 100 GiB of 512-byte clusters), resize a copy with
 * it and compare.
 */
static void
check_resize(const char *path, guint64 capacity)
{
    g_autofree char *ref = tmp_path("resize-ref.qcow2");
    guint64 want = (capacity + 511) / 512 * 512;
    /* qemu-img resize wants whole sectors; we round like qemu-img create */
    g_autofree char *cap = g_strdup_printf("%" G_GUINT64_FORMAT, want);
    const char *argv[] = { "qemu-img", "resize", "-q", "-f", "qcow2", ref,
                           cap, NULL };
    g_autoptr(GError) err = NULL;
    g_autofree char *info = qemu_info(path, "qcow2");
    g_autofree char *backing = json_str(info, "backing-filename");
    guint64 cs = json_uint(info, "cluster-size");
    guint64 old = json_uint(info, "virtual-size");
    guint64 l1_clusters = div_round_up_test(
        div_round_up_test(want, cs * (cs / 8)) * 8, cs);
    g_autoptr(GArray) before = check_map(path);
    g_autoptr(GArray) after = NULL;
    g_autoptr(GArray) want_map = NULL;
    g_autofree char *new_info = NULL;
    GfpoolExtent tail = { old, want - old,
                          backing ? GFPOOL_EXTENT_BACKING : GFPOOL_EXTENT_ZERO,
                          0 };
    bool with_ref = l1_clusters <= 4096;

    g_test_message("resize %s from %" G_GUINT64_FORMAT " to %"
                   G_GUINT64_FORMAT "%s", path, old, capacity,
                   with_ref ? " (and qemu-img resize)" : "");
    if (with_ref) {
        copy_file(path, ref);
        qemu_img(argv, NULL);
    }
    if (!resize_file(path, capacity, -1, NULL, &err))
        g_error("resize %s: %s", path, err->message);
    qemu_check(path);
    new_info = qemu_info(path, "qcow2");
    g_assert_cmpuint(json_uint(new_info, "virtual-size"), ==, want);

    /* data clusters do not move: the old map, then the new tail */
    after = check_map(path);
    if (want > old)
        g_array_append_val(before, tail);
    want_map = canon(before);
    g_assert_cmpuint(after->len, ==, want_map->len);
    g_assert_true(same_extents(after, want_map));
    if (with_ref) {
        g_autoptr(GArray) ref_map = check_map(ref);

        g_assert_true(same_extents(after, ref_map));
        if (want <= 8 * GiB)
            qemu_compare(path, "qcow2", ref, "qcow2");
        g_unlink(ref);
    }
}

static void
qemu_create(const char *path, const char *opts, const char *size)
{
    const char *argv[] = { "qemu-img", "create", "-q", "-f", "qcow2",
                           "-o", opts ? opts : "compat=1.1", path, size,
                           NULL };

    qemu_img(argv, NULL);
}

static void
test_resize_qemu(void)
{
    g_autofree char *path = tmp_path("resize.qcow2");
    g_autofree char *base = tmp_path("resize-base.qcow2");
    struct {
        const char *opts;
        const char *size;
        guint64 to[3];
    } cases[] = {
        /* size only; within the L1 cluster; a new L1 */
        { NULL, "1G", { 1 * GiB + 512, 3 * GiB, 16 * TiB } },
        /* L1 growth with 512-byte clusters: 32 KiB per L1 entry */
        { "cluster_size=512", "1G", { 1 * GiB + 1, 2 * GiB, 100 * GiB } },
        { "cluster_size=512,refcount_bits=1", "100M", { 1 * GiB, 128 * GiB } },
        { "cluster_size=4096,refcount_bits=64", "100M", { 8 * TiB } },
        { "cluster_size=2M", "1G", { 1 * TiB, 2048 * TiB } },
        { "compat=0.10", "1G", { 5 * GiB, 1 * TiB } },
        { "preallocation=metadata,cluster_size=4096", "64M", { 10 * GiB } },
        { "backing_file=resize-base.qcow2,backing_fmt=qcow2", "1G",
          { 50 * GiB } },
        { "lazy_refcounts=on", "1G", { 20 * TiB } },
    };

    /* backing as long as the image: QEMU has nothing to zero either */
    qemu_create(base, NULL, "1G");
    qemu_io(base, "write -P 0x77 0 4M");
    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *rd = NULL;

        qemu_create(path, cases[i].opts, cases[i].size);
        qemu_io(path, "write -P 0xab 0 1M");
        qemu_io(path, "write -P 0xac 50M 70k");
        for (gsize t = 0; t < G_N_ELEMENTS(cases[i].to) && cases[i].to[t];
             t++) {
            check_resize(path, cases[i].to[t]);
            qemu_io(path, "read -P 0xab 0 1M");
        }
        /* the image still works: write past the old end */
        rd = g_strdup_printf("write -P 0xcd %" G_GUINT64_FORMAT " 64k",
                             cases[i].to[0] / 512 * 512 - 64 * KiB);
        qemu_io(path, rd);
        qemu_check(path);
        g_unlink(path);
    }
}

static void
test_resize_own(void)
{
    g_autofree char *path = tmp_path("resize-own.qcow2");
    static const GfpoolRange r[] = { { 0, 1 * MiB }, { 500 * MiB, 3 * MiB } };
    struct {
        GfpoolQcow2Params p;
        guint64 to[3];
    } cases[] = {
        { { .capacity = 1 * GiB, .cluster_size = 512 },
          { 1 * GiB + 1000, 100 * GiB, 128 * GiB } },
        { { .capacity = 1 * GiB, .cluster_size = 512, .allocate = r,
            .n_allocate = 2 }, { 100 * GiB } },
        { { .capacity = 1 * GiB }, { 16 * TiB } },
        { { .capacity = 1 * GiB, .allocate = r, .n_allocate = 2 },
          { 16 * TiB, 256 * TiB } },
        { { .capacity = 1 * GiB, .cluster_size = 4096,
            .prealloc_metadata = true }, { 1 * TiB } },
        { { .capacity = 1, .cluster_size = 4096 }, { 512, 513, 8 * TiB } },
    };

    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GError) err = NULL;

        g_assert_true(create_qcow2(path, &cases[i].p, &err));
        g_assert_no_error(err);
        if (cases[i].p.n_allocate)
            qemu_io(path, "write -P 0xab 0 1M");
        for (gsize t = 0; t < G_N_ELEMENTS(cases[i].to) && cases[i].to[t];
             t++)
            check_resize(path, cases[i].to[t]);
        if (cases[i].p.n_allocate)
            qemu_io(path, "read -P 0xab 0 1M");
        g_unlink(path);
    }
}

static void
expect_resize_error(const char *path, guint64 capacity, int code,
                    const char *needle)
{
    g_autoptr(GError) err = NULL;
    int writes = 0;

    g_assert_false(resize_file(path, capacity, -1, &writes, &err));
    g_assert_error(err, GFPOOL_IMAGE_ERROR, code);
    if (!strstr(err->message, needle))
        g_error("message \"%s\" lacks \"%s\"", err->message, needle);
    g_assert_cmpint(writes, ==, 0);
}

static void
set_header_be64(const char *path, gsize off, guint64 v)
{
    guint8 b[8];
    int fd = open(path, O_RDWR | O_CLOEXEC);

    put_be64(b, v);
    g_assert_true(fd_write(GINT_TO_POINTER(fd), off, b, 8, NULL));
    close(fd);
}

static void
test_resize_refused(void)
{
    g_autofree char *path = tmp_path("refuse.qcow2");
    const char *snap[] = { "qemu-img", "snapshot", "-c", "s1", path, NULL };
    const char *bitmap[] = { "qemu-img", "bitmap", "--add", path, "b0", NULL };
    g_autoptr(GError) err = NULL;

    qemu_create(path, "cluster_size=512", "1G");
    expect_resize_error(path, 1 * GiB - 512, GFPOOL_IMAGE_ERROR_UNSUPPORTED,
                        "qcow2 volumes can only grow");
    expect_resize_error(path, 128 * GiB + 512, GFPOOL_IMAGE_ERROR_INVALID,
                        "must be at most 137438953472 bytes with 512-byte");
    expect_resize_error(path, G_MAXUINT64, GFPOOL_IMAGE_ERROR_INVALID,
                        "capacity 18446744073709551615 is invalid");
    /* the maximum itself is fine */
    check_resize(path, 128 * GiB);
    /* same size: nothing to do */
    g_assert_true(resize_file(path, 128 * GiB - 100, -1, NULL, &err));
    g_assert_no_error(err);
    g_unlink(path);

    qemu_create(path, NULL, "1G");
    qemu_img(snap, NULL);
    expect_resize_error(path, 2 * GiB, GFPOOL_IMAGE_ERROR_UNSUPPORTED,
                        "1 internal snapshots");
    g_unlink(path);

    qemu_create(path, NULL, "1G");
    qemu_img(bitmap, NULL);
    expect_resize_error(path, 2 * GiB, GFPOOL_IMAGE_ERROR_UNSUPPORTED,
                        "bitmaps");
    g_unlink(path);

    qemu_create(path, NULL, "1G");
    set_header_be64(path, 72, 1);           /* dirty */
    expect_resize_error(path, 2 * GiB, GFPOOL_IMAGE_ERROR_UNSUPPORTED,
                        "dirty");
    set_header_be64(path, 72, 2);           /* corrupt */
    expect_resize_error(path, 2 * GiB, GFPOOL_IMAGE_ERROR_CORRUPT,
                        "marked corrupt");
    set_header_be64(path, 72, 0x10);        /* extended L2 */
    expect_resize_error(path, 2 * GiB, GFPOOL_IMAGE_ERROR_UNSUPPORTED,
                        "extended L2");
    set_header_be64(path, 72, 1 << 20);     /* unknown */
    expect_resize_error(path, 2 * GiB, GFPOOL_IMAGE_ERROR_UNSUPPORTED,
                        "unknown bits");
    set_header_be64(path, 72, 0);
    set_header_be64(path, 24, 1000);        /* l1 would not cover: prober */
    set_header_be64(path, 36, 0xffffffff00000000ull);
    expect_resize_error(path, 2 * GiB, GFPOOL_IMAGE_ERROR_CORRUPT,
                        "l1_size 4294967295");
    g_unlink(path);

    /* L1 past the end of the file */
    qemu_create(path, "cluster_size=512", "1G");
    set_header_be64(path, 40, 512 * MiB);
    expect_resize_error(path, 2 * GiB, GFPOOL_IMAGE_ERROR_CORRUPT,
                        "L1 table at offset 536870912");
    g_unlink(path);

    /* refcount table past the end of the file */
    qemu_create(path, "cluster_size=512", "1G");
    set_header_be64(path, 48, 512 * MiB);
    expect_resize_error(path, 2 * GiB, GFPOOL_IMAGE_ERROR_CORRUPT,
                        "refcount table at offset 536870912");
    g_unlink(path);
}

/* A crash (failed write) at every point leaves an image qemu-img check
 * finds no corruption in, with the old or the new size. */
static void
test_resize_crash(void)
{
    g_autofree char *orig = tmp_path("crash-orig.qcow2");
    g_autofree char *path = tmp_path("crash.qcow2");
    const char *check[] = { "qemu-img", "check", "-q", "-f", "qcow2", path,
                            NULL };
    struct {
        const char *opts;
        const char *size;
        guint64 to;
    } cases[] = {
        /* new refcount blocks, refcount table moved */
        { "cluster_size=512", "64M", 100 * GiB },
        /* new L1 only */
        { NULL, "1G", 16 * TiB },
        { "cluster_size=4096,refcount_bits=1", "1G", 1 * TiB },
    };

    for (gsize c = 0; c < G_N_ELEMENTS(cases); c++) {
        int total = 0;
        g_autofree char *orig_info = NULL;
        guint64 old_size;

        qemu_create(orig, cases[c].opts, cases[c].size);
        orig_info = qemu_info(orig, "qcow2");
        old_size = json_uint(orig_info, "virtual-size");
        qemu_io(orig, "write -P 0xab 0 1M");
        copy_file(orig, path);
        g_assert_true(resize_file(path, cases[c].to, -1, &total, NULL));
        g_test_message("resize crash case %zu: %d writes", c, total);
        for (int k = 0; k < total; k++) {
            g_autoptr(GError) err = NULL;
            g_autofree char *info = NULL;
            guint64 vs;
            int st;

            /* every write near the start and the switch, a sample between */
            if (k >= 20 && k < total - 20 && k % MAX(1, total / 40))
                continue;

            g_unlink(path);
            copy_file(orig, path);
            g_assert_false(resize_file(path, cases[c].to, k, NULL, &err));
            g_assert_error(err, G_FILE_ERROR, G_FILE_ERROR_IO);
            /* 0: clean, 3: leaked clusters only */
            st = run_status(check, NULL);
            if (st != 0 && st != 3)
                g_error("crash after %d writes: qemu-img check exit %d", k,
                        st);
            info = qemu_info(path, "qcow2");
            vs = json_uint(info, "virtual-size");
            g_assert_true(vs == cases[c].to || vs == old_size);
            qemu_io(path, "read -P 0xab 0 1M");
        }
        g_unlink(path);
        g_unlink(orig);
    }
}

int
main(int argc, char **argv)
{
#define CS_2M (2 * 1024 * 1024)
#define PLAIN(cap, cs) { .capacity = (cap), .cluster_size = (cs) }
#define PREALLOC(cap, cs) { .capacity = (cap), .cluster_size = (cs), \
                            .prealloc = true }
    /* cluster size 0 is the 64 KiB default; 1000000001 is not sector
     * aligned and must come back as 1000000512, as qemu-img does */
    static const CreateCase creates[] = {
        PLAIN(1 * MiB, 512), PLAIN(1 * MiB, 4096), PLAIN(1 * MiB, 0),
        PLAIN(1 * MiB, CS_2M),
        PLAIN(1000000001, 512), PLAIN(1000000001, 4096), PLAIN(1000000001, 0),
        PLAIN(1000000001, CS_2M),
        PLAIN(10 * GiB, 512), PLAIN(10 * GiB, 4096), PLAIN(10 * GiB, 0),
        PLAIN(10 * GiB, CS_2M),
        PLAIN(2 * TiB, 4096), PLAIN(2 * TiB, 0), PLAIN(2 * TiB, CS_2M),
        PLAIN(16 * TiB, 0), PLAIN(16 * TiB, CS_2M),
        PLAIN(1, 0), PLAIN(511, 512), PLAIN(513, 4096),
        PREALLOC(1 * MiB, 512), PREALLOC(1 * MiB, 4096), PREALLOC(1 * MiB, 0),
        PREALLOC(1 * MiB, CS_2M), PREALLOC(1000000001, 4096),
        PREALLOC(1 * GiB, 512), PREALLOC(1 * GiB, 0), PREALLOC(1 * GiB, CS_2M),
        PREALLOC(64 * GiB, 0),
    };
    int ret;

    g_test_init(&argc, &argv, NULL);

    tmpdir = g_dir_make_tmp("gfpool-image-XXXXXX", NULL);
    g_assert_nonnull(tmpdir);

    for (gsize i = 0; i < G_N_ELEMENTS(creates); i++) {
        const CreateCase *tc = &creates[i];
        g_autofree char *name = g_strdup_printf(
            "/image/create/%" G_GUINT64_FORMAT "/cluster-%u%s", tc->capacity,
            tc->cluster_size ? tc->cluster_size : 65536,
            tc->prealloc ? "/prealloc" : "");

        g_test_add_data_func(name, tc, test_create);
    }
    g_test_add_func("/image/create/max", test_create_max);
    g_test_add_func("/image/create/backing", test_create_backing);
    g_test_add_func("/image/create/backing-no-format",
                    test_create_backing_no_format);
    g_test_add_func("/image/create/invalid", test_create_invalid);
    g_test_add_func("/image/create/streams", test_create_streams);
    g_test_add_func("/image/create/write-error", test_create_write_error);
    g_test_add_func("/image/format-names", test_format_names);
    g_test_add_func("/image/probe/foreign", test_probe_foreign);
    g_test_add_func("/image/probe/iso", test_probe_iso);
    g_test_add_func("/image/probe/empty", test_probe_empty);
    g_test_add_func("/image/probe/corrupt", test_probe_corrupt);
    g_test_add_func("/image/probe/as", test_probe_as);
    g_test_add_func("/image/probe/qcow2-edges", test_probe_qcow2_edges);
    g_test_add_func("/image/probe/mutations", test_probe_mutations);
    g_test_add_func("/image/map/qemu", test_map_qemu);
    g_test_add_func("/image/map/unsupported", test_map_unsupported);
    g_test_add_func("/image/map/corrupt", test_map_corrupt);
    g_test_add_func("/image/create/ranges", test_create_ranges);
    g_test_add_func("/image/create/ranges-empty", test_create_ranges_empty);
    g_test_add_func("/image/create/ranges-invalid",
                    test_create_ranges_invalid);
    g_test_add_func("/image/create/ranges-streams",
                    test_create_ranges_streams);
    g_test_add_func("/image/resize/qemu", test_resize_qemu);
    g_test_add_func("/image/resize/own", test_resize_own);
    g_test_add_func("/image/resize/refused", test_resize_refused);
    g_test_add_func("/image/resize/crash", test_resize_crash);

    ret = g_test_run();

    {
        g_autoptr(GDir) dir = g_dir_open(tmpdir, 0, NULL);
        const char *n;

        while (dir && (n = g_dir_read_name(dir))) {
            g_autofree char *path = tmp_path(n);
            g_unlink(path);
        }
        g_rmdir(tmpdir);
        g_free(tmpdir);
    }
    return ret;
}
