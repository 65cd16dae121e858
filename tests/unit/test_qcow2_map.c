/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test_qcow2_map.c: gfpool_qcow2_map.c's extents of qemu-img's images
 * against qemu-img map, and what it refuses.
 */
#include "image_testlib.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <glib/gstdio.h>

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

int
main(int argc, char **argv)
{
    image_testlib_init(&argc, &argv);
    g_test_add_func("/image/map/qemu", test_map_qemu);
    g_test_add_func("/image/map/unsupported", test_map_unsupported);
    g_test_add_func("/image/map/corrupt", test_map_corrupt);
    return image_testlib_run();
}
