/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test_qcow2_create.c: gfpool_qcow2_create.c's new images, plain,
 * preallocated and with allocated ranges, checked by qemu-img itself.
 */
#include "image_testlib.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <glib/gstdio.h>

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

    image_testlib_init(&argc, &argv);
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
    g_test_add_func("/image/create/ranges", test_create_ranges);
    g_test_add_func("/image/create/ranges-empty", test_create_ranges_empty);
    g_test_add_func("/image/create/ranges-invalid",
                    test_create_ranges_invalid);
    g_test_add_func("/image/create/ranges-streams",
                    test_create_ranges_streams);
    return image_testlib_run();
}
