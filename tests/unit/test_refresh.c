/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test_refresh.c: gfpool_refresh.c without GlusterFS: which temp files a
 * refresh may remove (gfpool_temp_sweep_reason), from the attributes of a
 * fresh lstat.
 */
#include <string.h>
#include <sys/stat.h>

#include "gfpool_volume.h"

#define NOW G_GINT64_CONSTANT(1800000000)
#define GRACE 120

static struct stat
file(nlink_t nlink, gint64 mtime, gint64 ctime)
{
    struct stat st;

    memset(&st, 0, sizeof(st));
    st.st_mode = S_IFREG | 0600;
    st.st_nlink = nlink;
    st.st_mtim.tv_sec = mtime;
    st.st_ctim.tv_sec = ctime;
    return st;
}

/* Another creator's file, just created or being written: never. */
static void
test_live_creator_kept(void)
{
    struct stat st = file(1, NOW - 1, NOW - 1);

    g_assert_cmpint(gfpool_temp_sweep_reason(&st, FALSE, FALSE, NOW, GRACE), ==, GFPOOL_SWEEP_KEEP);
    /* a long create (a big clone) writes all along: its mtime is recent */
    st = file(1, NOW - 5, NOW - 3 * 3600);
    g_assert_cmpint(gfpool_temp_sweep_reason(&st, FALSE, FALSE, NOW, GRACE), ==, GFPOOL_SWEEP_KEEP);
}

/* Times GlusterFS could not give (an empty iatt reads as 1970) never make
 * a file "old". */
static void
test_unknown_times_kept(void)
{
    struct stat st = file(1, 0, 0);

    g_assert_cmpint(gfpool_temp_sweep_reason(&st, FALSE, FALSE, NOW, GRACE), ==, GFPOOL_SWEEP_KEEP);
    st = file(1, 0, NOW);
    g_assert_cmpint(gfpool_temp_sweep_reason(&st, FALSE, FALSE, NOW, GRACE), ==, GFPOOL_SWEEP_KEEP);
    st = file(2, NOW - 3600, 0);
    g_assert_cmpint(gfpool_temp_sweep_reason(&st, FALSE, TRUE, NOW, GRACE), ==, GFPOOL_SWEEP_KEEP);
}

static void
test_stale(void)
{
    struct stat st = file(1, NOW - GFPOOL_TEMP_STALE_SECONDS, NOW);

    g_assert_cmpint(gfpool_temp_sweep_reason(&st, FALSE, FALSE, NOW, GRACE), ==, GFPOOL_SWEEP_STALE);
    st = file(1, NOW - GFPOOL_TEMP_STALE_SECONDS + 1, NOW - 10 * 3600);
    g_assert_cmpint(gfpool_temp_sweep_reason(&st, FALSE, FALSE, NOW, GRACE), ==, GFPOOL_SWEEP_KEEP);
}

/* A second link alone proves nothing: it must be a listed volume's inode,
 * and the creator gets the grace to remove the temp name itself. */
static void
test_published(void)
{
    struct stat st = file(2, NOW - 1, NOW - 1);

    g_assert_cmpint(gfpool_temp_sweep_reason(&st, FALSE, TRUE, NOW, GRACE), ==, GFPOOL_SWEEP_KEEP);
    st = file(2, NOW - GRACE - 5, NOW - GRACE);
    g_assert_cmpint(gfpool_temp_sweep_reason(&st, FALSE, TRUE, NOW, GRACE), ==, GFPOOL_SWEEP_PUBLISHED);
    g_assert_cmpint(gfpool_temp_sweep_reason(&st, FALSE, FALSE, NOW, GRACE), ==, GFPOOL_SWEEP_KEEP);
    /* the link changed ctime recently: still the creator's */
    st = file(2, NOW - 3600, NOW - 2);
    g_assert_cmpint(gfpool_temp_sweep_reason(&st, FALSE, TRUE, NOW, GRACE), ==, GFPOOL_SWEEP_KEEP);
    /* an old second link that is no listed volume is not "published" */
    st = file(2, NOW - GFPOOL_TEMP_STALE_SECONDS, NOW - GFPOOL_TEMP_STALE_SECONDS);
    g_assert_cmpint(gfpool_temp_sweep_reason(&st, FALSE, FALSE, NOW, GRACE), ==, GFPOOL_SWEEP_KEEP);
    /* grace 0 (tests): at once */
    st = file(2, NOW, NOW);
    g_assert_cmpint(gfpool_temp_sweep_reason(&st, FALSE, TRUE, NOW, 0), ==, GFPOOL_SWEEP_PUBLISHED);
}

/* This process's own failed removal: nobody writes it. */
static void
test_orphan(void)
{
    struct stat st = file(1, NOW, NOW);

    g_assert_cmpint(gfpool_temp_sweep_reason(&st, TRUE, FALSE, NOW, GRACE), ==, GFPOOL_SWEEP_ORPHAN);
    st.st_mode = S_IFDIR | 0755;
    g_assert_cmpint(gfpool_temp_sweep_reason(&st, TRUE, FALSE, NOW, GRACE), ==, GFPOOL_SWEEP_KEEP);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/sweep/live-creator", test_live_creator_kept);
    g_test_add_func("/sweep/unknown-times", test_unknown_times_kept);
    g_test_add_func("/sweep/stale", test_stale);
    g_test_add_func("/sweep/published", test_published);
    g_test_add_func("/sweep/orphan", test_orphan);
    return g_test_run();
}
