/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test_qcow2_header.c: gfpool_qcow2_header.c decoding the headers qemu-img
 * and our writer make, encoding them back byte for byte, and refusing each
 * rule a header can break, with the message naming the field.
 */
#include "image_testlib.h"
#include "gfpool_image_priv.h"

#include <string.h>
#include <glib/gstdio.h>

/* The header bytes encode writes for h: its version's fields, and for
 * version 3 the compression type and padding as far as header_length. */
static gsize
encoded_len(const GfpoolQcow2Header *h)
{
    return h->version == 2 ? QCOW2_V2_HEADER_LEN
                           : MIN(h->header_length, (guint32)QCOW2_HEADER_LEN_WRITTEN);
}

/* decode, encode into a buffer of 0xee bytes, compare with the original */
static void
check_round_trip(const guint8 *buf, gsize len, GfpoolQcow2Header *h)
{
    g_autoptr(GError) err = NULL;
    g_autofree guint8 *out = g_malloc(len);
    GfpoolQcow2Header again;
    gsize n;

    if (!gfpool_qcow2_header_decode(buf, len, h, &err))
        g_error("decode: %s", err->message);
    memset(out, 0xee, len);
    g_assert_true(gfpool_qcow2_header_encode(h, out, len, &err));
    g_assert_no_error(err);
    n = encoded_len(h);
    g_assert_cmpmem(out, n, buf, n);
    /* nothing past the header is touched */
    for (gsize i = n; i < len; i++)
        g_assert_cmpuint(out[i], ==, 0xee);
    g_assert_true(gfpool_qcow2_header_decode(out, n, &again, &err));
    g_assert_cmpmem(&again, sizeof(again), h, sizeof(*h));
}

static void
test_header_own(void)
{
    g_autoptr(MemFile) m = mem_qcow2();
    GfpoolQcow2Header h;

    check_round_trip(m->data, MIN(m->len, (gsize)GFPOOL_PROBE_HEADER_SIZE), &h);
    g_assert_cmphex(h.magic, ==, QCOW2_MAGIC);
    g_assert_cmpuint(h.version, ==, 3);
    g_assert_cmpuint(h.cluster_bits, ==, 12);
    g_assert_cmpuint(h.size, ==, 1 * GiB);
    g_assert_cmpuint(h.crypt_method, ==, 0);
    g_assert_cmpuint(h.l1_size, ==, 512);
    g_assert_cmpuint(h.l1_table_offset % 4096, ==, 0);
    g_assert_cmpuint(h.refcount_table_offset, ==, 4096);
    g_assert_cmpuint(h.refcount_table_clusters, ==, 1);
    g_assert_cmpuint(h.nb_snapshots, ==, 0);
    g_assert_cmpuint(h.incompatible_features, ==, 0);
    g_assert_cmpuint(h.refcount_order, ==, 4);
    g_assert_cmpuint(h.header_length, ==, QCOW2_HEADER_LEN_WRITTEN);
    g_assert_cmpuint(h.compression_type, ==, 0);
    g_assert_cmpuint(h.backing_file_size, ==, strlen("base.img"));
    g_assert_cmpmem(m->data + h.backing_file_offset, h.backing_file_size,
                    "base.img", strlen("base.img"));
}

/* What qemu-img writes, and what qemu-img info says about it. */
static void
test_header_qemu(void)
{
    static const struct {
        const char *opts;
        const char *size;
        guint32 version;
        guint32 refcount_order;
        guint64 compatible;     /* lazy refcounts: bit 0 */
    } cases[] = {
        { "compat=0.10", "3G", 2, 4, 0 },
        { "compat=1.1", "1G", 3, 4, 0 },
        { "cluster_size=2M", "100G", 3, 4, 0 },
        { "cluster_size=512,refcount_bits=1", "1G", 3, 0, 0 },
        { "refcount_bits=64", "7G", 3, 6, 0 },
        { "lazy_refcounts=on", "1G", 3, 4, 1 },
        { "preallocation=metadata,cluster_size=4096", "64M", 3, 4, 0 },
    };
    g_autofree char *path = tmp_path("header.qcow2");

    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        const char *argv[] = { "qemu-img", "create", "-q", "-f", "qcow2", "-o",
                               cases[i].opts, path, cases[i].size, NULL };
        g_autofree char *contents = NULL;
        g_autofree char *info = NULL;
        GfpoolQcow2Header h;
        gsize len = 0;

        g_test_message("header of qemu-img create -o %s", cases[i].opts);
        qemu_img(argv, NULL);
        info = qemu_info(path, "qcow2");
        g_assert_true(g_file_get_contents(path, &contents, &len, NULL));
        check_round_trip((const guint8 *)contents,
                         MIN(len, (gsize)GFPOOL_PROBE_HEADER_SIZE), &h);
        g_assert_cmpuint(h.version, ==, cases[i].version);
        g_assert_cmpuint(h.size, ==, json_uint(info, "virtual-size"));
        g_assert_cmpuint(G_GUINT64_CONSTANT(1) << h.cluster_bits, ==,
                         json_uint(info, "cluster-size"));
        g_assert_cmpuint(h.refcount_order, ==, cases[i].refcount_order);
        g_assert_cmpuint(h.compatible_features, ==, cases[i].compatible);
        g_assert_cmpuint(h.header_length, >=, h.version == 2 ? 72 : 104);
        g_assert_cmpuint(h.l1_size, >=,
                         gfpool_qcow2_l1_entries(h.cluster_bits, h.size));
        g_unlink(path);
    }
}

typedef enum {
    SET_BE32,
    SET_BE64,
    SET_LEN,                    /* decode only value bytes */
} SetKind;

typedef struct {
    const char *name;
    SetKind kind;
    gsize off;
    guint64 value;
    const char *needle;
} RefuseCase;

/* Each rule, broken alone in our 1 GiB image with 4 KiB clusters. */
static void
test_header_refused(void)
{
    static const RefuseCase cases[] = {
        { "7 bytes", SET_LEN, 0, 7, "header truncated: 7 bytes available, the header needs 8" },
        { "v3 cut", SET_LEN, 0, 103, "103 bytes available, the header needs 104" },
        { "magic", SET_BE32, 0, 0x514649fc, "qcow2 magic 0x514649fc is invalid" },
        { "version 1", SET_BE32, 4, 1, "qcow2 version 1 is invalid: must be 2 or 3" },
        { "version 4", SET_BE32, 4, 4, "qcow2 version 4 is invalid" },
        { "cluster_bits 8", SET_BE32, 20, 8, "cluster_bits 8 is invalid: must be between 9 and 21" },
        { "cluster_bits 22", SET_BE32, 20, 22, "cluster_bits 22 is invalid" },
        { "header_length 103", SET_BE32, 100, 103,
          "header_length 103 is invalid: must be between 104 and the cluster size 4096" },
        { "header_length 4097", SET_BE32, 100, 4097, "header_length 4097" },
        { "refcount_order 7", SET_BE32, 96, 7, "refcount_order 7 is invalid: must be at most 6" },
        { "size over the L1 limit", SET_BE64, 24, 8 * TiB + 1,
          "virtual size 8796093022209 is invalid: must be at most 8796093022208 with 4096-byte clusters" },
        { "l1_size short", SET_BE32, 36, 511,
          "l1_size 511 is invalid: must be between 512 (to map 1073741824 bytes) and 4194304" },
        { "l1_size huge", SET_BE32, 36, 4194305, "l1_size 4194305" },
        { "l1 unaligned", SET_BE64, 40, 4096 + 512, "table offsets L1 4608 / refcount 4096" },
        { "refcount table unaligned", SET_BE64, 48, 100, "refcount 100 are invalid" },
        { "l1 past 2^56", SET_BE64, 40, G_GUINT64_CONSTANT(1) << 56, "below 2^56" },
        { "backing past the cluster", SET_BE64, 8, 4097,
          "backing file name at offset 4097 (8 bytes) is invalid: must lie within the first cluster (4096 bytes)" },
        { "backing name too long", SET_BE32, 16, 4000, "(4000 bytes) is invalid" },
    };
    g_autoptr(MemFile) good = mem_qcow2();

    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        const RefuseCase *tc = &cases[i];
        g_autofree guint8 *buf = g_memdup2(good->data, GFPOOL_PROBE_HEADER_SIZE);
        gsize len = GFPOOL_PROBE_HEADER_SIZE;
        g_autoptr(GError) err = NULL;
        GfpoolQcow2Header h;

        g_test_message("refused: %s", tc->name);
        if (tc->kind == SET_BE32)
            put_be32(buf + tc->off, (guint32)tc->value);
        else if (tc->kind == SET_BE64)
            put_be64(buf + tc->off, tc->value);
        else
            len = tc->value;
        g_assert_false(gfpool_qcow2_header_decode(buf, len, &h, &err));
        g_assert_error(err, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_CORRUPT);
        if (!strstr(err->message, tc->needle))
            g_error("message \"%s\" lacks \"%s\"", err->message, tc->needle);
    }
}

/* A version 2 header needs 72 bytes, decodes with QEMU's assumptions and
 * encodes as 72 bytes; the compression type is read only where
 * header_length says the header holds it. */
static void
test_header_versions(void)
{
    g_autoptr(MemFile) good = mem_qcow2();
    g_autofree guint8 *buf = g_memdup2(good->data, GFPOOL_PROBE_HEADER_SIZE);
    g_autoptr(GError) err = NULL;
    GfpoolQcow2Header h;
    guint8 out[QCOW2_V2_HEADER_LEN];

    put_be32(buf + 4, 2);
    g_assert_true(gfpool_qcow2_header_decode(buf, QCOW2_V2_HEADER_LEN, &h, &err));
    g_assert_no_error(err);
    g_assert_cmpuint(h.refcount_order, ==, 4);
    g_assert_cmpuint(h.header_length, ==, QCOW2_V2_HEADER_LEN);
    g_assert_cmpuint(h.incompatible_features, ==, 0);
    g_assert_true(gfpool_qcow2_header_encode(&h, out, sizeof(out), &err));
    g_assert_cmpmem(out, sizeof(out), buf, sizeof(out));
    g_assert_false(gfpool_qcow2_header_decode(buf, QCOW2_V2_HEADER_LEN - 1, &h, &err));
    g_assert_error(err, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_CORRUPT);
    g_clear_error(&err);

    put_be32(buf + 4, 3);
    buf[104] = 1;                       /* zstd */
    g_assert_true(gfpool_qcow2_header_decode(buf, GFPOOL_PROBE_HEADER_SIZE, &h, &err));
    g_assert_cmpuint(h.compression_type, ==, 1);
    /* the byte is there but not part of a 104-byte header */
    put_be32(buf + 100, 104);
    g_assert_true(gfpool_qcow2_header_decode(buf, GFPOOL_PROBE_HEADER_SIZE, &h, &err));
    g_assert_cmpuint(h.compression_type, ==, 0);
    /* nor of a 104-byte buffer */
    put_be32(buf + 100, 112);
    g_assert_true(gfpool_qcow2_header_decode(buf, 104, &h, &err));
    g_assert_cmpuint(h.compression_type, ==, 0);
    g_assert_no_error(err);
}

/* encode refuses what decode would, and a buffer too short. */
static void
test_header_encode_refused(void)
{
    g_autoptr(MemFile) good = mem_qcow2();
    guint8 out[QCOW2_HEADER_LEN_WRITTEN];
    GfpoolQcow2Header h, bad;
    g_autoptr(GError) err = NULL;

    g_assert_true(gfpool_qcow2_header_decode(good->data, good->len, &h, &err));

    bad = h;
    bad.cluster_bits = 30;
    g_assert_false(gfpool_qcow2_header_encode(&bad, out, sizeof(out), &err));
    g_assert_error(err, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_INVALID);
    g_assert_nonnull(strstr(err->message, "cluster_bits 30"));
    g_clear_error(&err);

    bad = h;
    bad.size = h.size * 2;              /* the L1 table no longer maps it */
    g_assert_false(gfpool_qcow2_header_encode(&bad, out, sizeof(out), &err));
    g_assert_error(err, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_INVALID);
    g_assert_nonnull(strstr(err->message, "l1_size 512"));
    g_clear_error(&err);

    bad = h;
    bad.version = 1;
    g_assert_false(gfpool_qcow2_header_encode(&bad, out, sizeof(out), &err));
    g_assert_error(err, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_INVALID);
    g_clear_error(&err);

    g_assert_false(gfpool_qcow2_header_encode(&h, out, sizeof(out) - 1, &err));
    g_assert_error(err, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_INVALID);
    g_assert_nonnull(strstr(err->message, "112 bytes"));
}

static void
test_header_l1_entries(void)
{
    g_assert_cmpuint(gfpool_qcow2_l1_entries(16, 0), ==, 0);
    g_assert_cmpuint(gfpool_qcow2_l1_entries(16, 1), ==, 1);
    /* one L1 entry maps 512 MiB with 64 KiB clusters */
    g_assert_cmpuint(gfpool_qcow2_l1_entries(16, 512 * MiB), ==, 1);
    g_assert_cmpuint(gfpool_qcow2_l1_entries(16, 512 * MiB + 1), ==, 2);
    g_assert_cmpuint(gfpool_qcow2_l1_entries(9, 1 * GiB), ==, 32768);
    g_assert_cmpuint(gfpool_qcow2_l1_entries(12, gfpool_qcow2_max_capacity(4096)), ==,
                     QCOW2_MAX_L1_BYTES / 8);
}

int
main(int argc, char **argv)
{
    image_testlib_init(&argc, &argv);
    g_test_add_func("/image/header/own", test_header_own);
    g_test_add_func("/image/header/qemu", test_header_qemu);
    g_test_add_func("/image/header/refused", test_header_refused);
    g_test_add_func("/image/header/versions", test_header_versions);
    g_test_add_func("/image/header/encode-refused", test_header_encode_refused);
    g_test_add_func("/image/header/l1-entries", test_header_l1_entries);
    return image_testlib_run();
}
