/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test_probe_cache.c: gfpool_probe_cache.c's file, read back from good,
 * damaged and hostile files.
 */
#include "gfpool_volume.h"
#include "gfpool_volume_priv.h"

#include <string.h>
#include <glib/gstdio.h>

static char *tmpdir;

static GfpoolProbeCache *
load(const char *text)
{
    g_autofree char *path = g_build_filename(tmpdir, "cache", NULL);
    GfpoolProbeCache *c = gfpool_probe_cache_new();

    if (text)
        g_assert_true(g_file_set_contents(path, text, -1, NULL));
    gfpool_probe_cache_load(c, path);
    return c;
}

static gboolean
lookup(GfpoolProbeCache *c, guint64 ino, GfpoolVolInfo *info)
{
    GfpoolFileStamp s = { .ino = ino, .size = 1048576, .mtime_ns = 5, .ctime_ns = 6 };

    memset(info, 0, sizeof(*info));
    return gfpool_probe_cache_lookup(c, &s, info);
}

static void
test_probe_cache_round_trip(void)
{
    g_autoptr(GfpoolProbeCache) c = gfpool_probe_cache_new();
    g_autoptr(GfpoolProbeCache) back = NULL;
    g_autofree char *path = g_build_filename(tmpdir, "cache", NULL);
    g_autoptr(GError) err = NULL;
    GfpoolFileStamp s = { .ino = G_MAXUINT64, .size = 1048576, .mtime_ns = 5, .ctime_ns = 6 };
    GfpoolVolInfo in = { 0 }, out = { 0 };

    in.format = GFPOOL_FORMAT_QCOW2;
    in.recorded = TRUE;
    in.capacity = G_GUINT64_CONSTANT(1) << 50;
    in.cluster_size = 65536;
    in.backing = (char *)"base\nwith = a [group] line";
    in.backing_format = GFPOOL_FORMAT_RAW;
    in.warning = (char *)"unusable qcow2 image: 'x'";
    gfpool_probe_cache_store(c, &s, &in);
    g_assert_true(gfpool_probe_cache_save(c, path, &err));
    g_assert_no_error(err);
    back = load(NULL);
    g_assert_true(gfpool_probe_cache_lookup(back, &s, &out));
    g_assert_cmpint(out.format, ==, in.format);
    g_assert_true(out.recorded);
    g_assert_cmpuint(out.capacity, ==, in.capacity);
    g_assert_cmpuint(out.cluster_size, ==, in.cluster_size);
    g_assert_cmpstr(out.backing, ==, in.backing);
    g_assert_cmpint(out.backing_format, ==, in.backing_format);
    g_assert_cmpstr(out.warning, ==, in.warning);
    g_free(out.backing);
    g_free(out.warning);
    /* another stamp of the same file (it changed) misses */
    s.mtime_ns++;
    g_assert_false(gfpool_probe_cache_lookup(back, &s, &out));
}

static void
test_probe_cache_damaged(void)
{
    static const char *const bad[] = {
        "",
        "\x01\x02\xff\xfe garbage\n",
        "[gfpool]\nversion=2\n[0000000000000001]\nsize=1048576\nmtime_ns=5\nctime_ns=6\n"
        "capacity=1\ncluster_size=0\nformat=raw\n",
        "[gfpool]\nversion=999999999999999999999\n",
        "[gfpool\nversion=3\n",
    };
    GfpoolVolInfo info;

    for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autoptr(GfpoolProbeCache) c = load(bad[i]);
        g_assert_false(lookup(c, 1, &info));
    }
    {
        /* a missing file is an empty cache */
        g_autofree char *path = g_build_filename(tmpdir, "cache", NULL);
        g_autoptr(GfpoolProbeCache) c = NULL;
        g_unlink(path);
        c = load(NULL);
        g_assert_false(lookup(c, 1, &info));
    }
}

/* A cache written before format records existed (version 3) holds
 * volumes without one: a record written since changed the file's ctime,
 * so its entry no longer matches. Version 4 says which entries had one,
 * and an entry that does not say is no entry. */
static void
test_probe_cache_versions(void)
{
    const char *entry =
        "[0000000000000001]\nsize=1048576\nmtime_ns=5\nctime_ns=6\ncapacity=7\n"
        "cluster_size=0\nformat=qcow2\n";
    GfpoolVolInfo info;

    {
        g_autofree char *text = g_strconcat("[gfpool]\nversion=3\n", entry, NULL);
        g_autoptr(GfpoolProbeCache) c = load(text);
        g_assert_true(lookup(c, 1, &info));
        g_assert_cmpint(info.format, ==, GFPOOL_FORMAT_QCOW2);
        g_assert_false(info.recorded);
    }
    {
        g_autofree char *text = g_strconcat("[gfpool]\nversion=4\n", entry, NULL);
        g_autoptr(GfpoolProbeCache) c = load(text);
        g_assert_false(lookup(c, 1, &info));
    }
    {
        g_autofree char *text = g_strconcat("[gfpool]\nversion=4\n", entry, "recorded=true\n",
                                            NULL);
        g_autoptr(GfpoolProbeCache) c = load(text);
        g_assert_true(lookup(c, 1, &info));
        g_assert_true(info.recorded);
    }
}

static void
test_probe_cache_entries(void)
{
    /* good entries load, each bad one is skipped alone */
    const char *text =
        "[gfpool]\nversion=3\n"
        /* good */
        "[0000000000000001]\nsize=1048576\nmtime_ns=5\nctime_ns=6\ncapacity=7\n"
        "cluster_size=65536\nformat=qcow2\nbacking=b.img\nbacking_format=raw\n"
        /* unknown format */
        "[0000000000000002]\nsize=1048576\nmtime_ns=5\nctime_ns=6\ncapacity=7\n"
        "cluster_size=0\nformat=floppy\n"
        /* a number that is not one */
        "[0000000000000003]\nsize=-1\nmtime_ns=5\nctime_ns=6\ncapacity=7\n"
        "cluster_size=0\nformat=raw\n"
        /* a field missing */
        "[0000000000000004]\nsize=1048576\nmtime_ns=5\ncapacity=7\ncluster_size=0\nformat=raw\n"
        /* a group name that is no inode */
        "[zzzzzzzzzzzzzzzz]\nsize=1048576\nmtime_ns=5\nctime_ns=6\ncapacity=7\n"
        "cluster_size=0\nformat=raw\n"
        "[1]\nsize=1048576\nmtime_ns=5\nctime_ns=6\ncapacity=7\ncluster_size=0\nformat=raw\n"
        /* unknown backing format */
        "[0000000000000005]\nsize=1048576\nmtime_ns=5\nctime_ns=6\ncapacity=7\n"
        "cluster_size=0\nformat=qcow2\nbacking=x\nbacking_format=nope\n"
        /* good, after the bad ones; capacity beyond 2^63 */
        "[0000000000000006]\nsize=1048576\nmtime_ns=5\nctime_ns=6\n"
        "capacity=18446744073709551615\ncluster_size=0\nformat=raw\n";
    g_autoptr(GfpoolProbeCache) c = load(text);
    GfpoolVolInfo info;

    g_assert_true(lookup(c, 1, &info));
    g_assert_cmpint(info.format, ==, GFPOOL_FORMAT_QCOW2);
    g_assert_cmpstr(info.backing, ==, "b.img");
    g_free(info.backing);
    g_free(info.warning);
    for (guint64 ino = 2; ino <= 5; ino++)
        g_assert_false(lookup(c, ino, &info));
    g_assert_true(lookup(c, 6, &info));
    g_assert_cmpuint(info.capacity, ==, G_MAXUINT64);
    g_free(info.backing);
    g_free(info.warning);
}

/* Names as a qcow2 header may hold them come back as they went in. */
static void
test_probe_cache_strings(void)
{
    static const char *const names[] = {
        " leading space", "trailing space ", "back\\slash\\n", "tab\there",
        "cr\rlf\n", "[group]", "key=value", "#comment", "  ", "\\",
    };
    g_autofree char *path = g_build_filename(tmpdir, "cache-strings", NULL);

    for (gsize i = 0; i < G_N_ELEMENTS(names); i++) {
        g_autoptr(GfpoolProbeCache) c = gfpool_probe_cache_new();
        g_autoptr(GfpoolProbeCache) back = gfpool_probe_cache_new();
        GfpoolFileStamp s = { .ino = i + 1, .size = 1, .mtime_ns = 2, .ctime_ns = 3 };
        GfpoolVolInfo in = { .format = GFPOOL_FORMAT_QCOW2, .capacity = 1048576,
                             .cluster_size = 65536 };
        GfpoolVolInfo out = { 0 };

        in.backing = (char *)names[i];
        in.warning = (char *)names[i];
        gfpool_probe_cache_store(c, &s, &in);
        g_assert_true(gfpool_probe_cache_save(c, path, NULL));
        gfpool_probe_cache_load(back, path);
        g_assert_true(gfpool_probe_cache_lookup(back, &s, &out));
        g_assert_cmpstr(out.backing, ==, names[i]);
        g_assert_cmpstr(out.warning, ==, names[i]);
        g_free(out.backing);
        g_free(out.warning);
    }
}

/* A refresh that changed nothing leaves the file as it is; a change, a
 * forgotten image or a lost file writes it again. */
static void
test_probe_cache_save_when_changed(void)
{
    g_autoptr(GfpoolProbeCache) c = gfpool_probe_cache_new();
    g_autofree char *path = g_build_filename(tmpdir, "cache-dirty", NULL);
    g_autofree char *text = NULL;
    g_autoptr(GHashTable) seen = g_hash_table_new(g_int64_hash, g_int64_equal);
    GfpoolFileStamp s = { .ino = 7, .size = 1048576, .mtime_ns = 5, .ctime_ns = 6 };
    GfpoolVolInfo in = { .format = GFPOOL_FORMAT_RAW, .capacity = 1048576 };
    guint64 ino = 7;

    gfpool_probe_cache_store(c, &s, &in);
    g_assert_true(gfpool_probe_cache_save(c, path, NULL));
    g_assert_true(g_file_set_contents(path, "untouched", -1, NULL));
    g_hash_table_add(seen, &ino);
    gfpool_probe_cache_forget_missing(c, seen);
    g_assert_true(gfpool_probe_cache_save(c, path, NULL));
    g_assert_true(g_file_get_contents(path, &text, NULL, NULL));
    g_assert_cmpstr(text, ==, "untouched");
    g_clear_pointer(&text, g_free);

    g_assert_cmpint(g_unlink(path), ==, 0);
    g_assert_true(gfpool_probe_cache_save(c, path, NULL));
    g_assert_true(g_file_get_contents(path, &text, NULL, NULL));
    g_assert_nonnull(strstr(text, "[0000000000000007]"));
    g_clear_pointer(&text, g_free);

    g_assert_true(g_file_set_contents(path, "untouched", -1, NULL));
    g_hash_table_remove_all(seen);
    gfpool_probe_cache_forget_missing(c, seen);
    g_assert_true(gfpool_probe_cache_save(c, path, NULL));
    g_assert_true(g_file_get_contents(path, &text, NULL, NULL));
    g_assert_cmpstr(text, !=, "untouched");
}

int
main(int argc, char **argv)
{
    int rc;

    g_test_init(&argc, &argv, NULL);
    tmpdir = g_dir_make_tmp("gfpool-probe-cache-XXXXXX", NULL);
    g_test_add_func("/probe-cache/round-trip", test_probe_cache_round_trip);
    g_test_add_func("/probe-cache/damaged", test_probe_cache_damaged);
    g_test_add_func("/probe-cache/entries", test_probe_cache_entries);
    g_test_add_func("/probe-cache/versions", test_probe_cache_versions);
    g_test_add_func("/probe-cache/save-when-changed", test_probe_cache_save_when_changed);
    g_test_add_func("/probe-cache/strings", test_probe_cache_strings);
    rc = g_test_run();
    {
        g_autofree char *path = g_build_filename(tmpdir, "cache", NULL);
        g_unlink(path);
        g_rmdir(tmpdir);
    }
    return rc;
}
