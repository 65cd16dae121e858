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

static char *
qemu_info(const char *path, const char *fmt)
{
    const char *argv[] = { "qemu-img", "info", "--output=json", "-f", fmt,
                           path, NULL };
    char *out = NULL;

    qemu_img(argv, &out);
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
        g_assert_cmpint(p.format, ==, GFPOOL_FORMAT_RAW);
        g_assert_cmpuint(p.capacity, ==, m.len);
        g_assert_null(p.backing);
        g_assert_nonnull(p.warning);
        if (!strstr(p.warning, tc->needle))
            g_error("warning \"%s\" lacks \"%s\"", p.warning, tc->needle);
        g_assert_cmpint(q.format, ==, GFPOOL_FORMAT_RAW);
        g_assert_nonnull(q.warning);
    }
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
    g_assert_cmpint(r.format, ==, GFPOOL_FORMAT_RAW);
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
        g_assert_cmpint(s.format, ==, GFPOOL_FORMAT_RAW);
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
    /* header longer than the file claims: only the file's bytes count */
    gfpool_image_probe((const guint8 *)"QFI\xfb\0\0\0\3", 8, 4, NULL, NULL, &q);
    g_assert_cmpint(q.format, ==, GFPOOL_FORMAT_RAW);
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
    g_test_add_func("/image/probe/qcow2-edges", test_probe_qcow2_edges);
    g_test_add_func("/image/probe/mutations", test_probe_mutations);

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
