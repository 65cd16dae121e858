/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test_image_probe.c: gfpool_image_probe.c against images qemu-img made
 * and against corrupted headers.
 */
#include "image_testlib.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <glib/gstdio.h>

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

int
main(int argc, char **argv)
{
    image_testlib_init(&argc, &argv);
    g_test_add_func("/image/format-names", test_format_names);
    g_test_add_func("/image/probe/foreign", test_probe_foreign);
    g_test_add_func("/image/probe/iso", test_probe_iso);
    g_test_add_func("/image/probe/empty", test_probe_empty);
    g_test_add_func("/image/probe/corrupt", test_probe_corrupt);
    g_test_add_func("/image/probe/as", test_probe_as);
    g_test_add_func("/image/probe/qcow2-edges", test_probe_qcow2_edges);
    g_test_add_func("/image/probe/mutations", test_probe_mutations);
    return image_testlib_run();
}
