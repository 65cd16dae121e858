/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test_qcow2_refcount.c: gfpool_qcow2_refcount.c growing qemu-img's
 * images and ours, checked by qemu-img check, resize and compare; what it
 * refuses; a crash after any write leaves a usable image.
 */
#include "image_testlib.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <glib/gstdio.h>

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
    image_testlib_init(&argc, &argv);
    g_test_add_func("/image/resize/qemu", test_resize_qemu);
    g_test_add_func("/image/resize/own", test_resize_own);
    g_test_add_func("/image/resize/refused", test_resize_refused);
    g_test_add_func("/image/resize/crash", test_resize_crash);
    return image_testlib_run();
}
