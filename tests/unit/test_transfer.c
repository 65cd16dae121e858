/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test_transfer.c: the parts of vol-upload and vol-download that need no
 * GlusterFS (gfpool_transfer.h), over callbacks on memory: how stream bytes
 * split into data and holes, read-ahead's order under reads that finish out
 * of order, write-behind's first error reaching the caller.
 */
#include "gfpool_transfer.h"

#include <string.h>

#define KiB ((gsize)1024)

/* ---- split ------------------------------------------------------------ */

/* What the split asked for, as "d<len>" and "h<len>" words. */
typedef struct {
    GString *log;
    guint fail_at;          /* fail the n-th call (1-based), 0 never */
    guint calls;
} SplitLog;

static gboolean
log_call(SplitLog *l, char kind, guint64 len, GError **error)
{
    if (l->log->len)
        g_string_append_c(l->log, ' ');
    g_string_append_printf(l->log, "%c%" G_GUINT64_FORMAT, kind, len);
    if (++l->calls == l->fail_at) {
        g_set_error(error, g_quark_from_static_string("test"), 1, "failed as asked");
        return FALSE;
    }
    return TRUE;
}

static gboolean
log_data(void *opaque, const char *buf, gsize len, GError **error)
{
    (void)buf;
    return log_call(opaque, 'd', len, error);
}

static gboolean
log_hole(void *opaque, guint64 len, GError **error)
{
    return log_call(opaque, 'h', len, error);
}

static const GfpoolSplitOps log_ops = { .data = log_data, .hole = log_hole };

static char *
split(const char *buf, gsize n, guint64 received, GfpoolHoles *holes, gboolean zeros,
      gsize block)
{
    SplitLog l = { .log = g_string_new(NULL) };
    g_autoptr(GError) err = NULL;

    g_assert_true(gfpool_upload_split(buf, n, received, holes, zeros, block, &log_ops, &l,
                                      &err));
    g_assert_no_error(err);
    return g_string_free(l.log, FALSE);
}

static void
test_split_holes(void)
{
    g_autofree char *buf = g_malloc0(100);
    GfpoolHoles *h = gfpool_holes_new();
    guint64 pos, len;
    char *r;

    /* no holes: the buffer whole */
    r = split(buf, 100, 0, h, FALSE, 16);
    g_assert_cmpstr(r, ==, "d100");
    g_free(r);

    /* a hole at the start, one inside, two back to back, one at the end;
     * positions count stream data bytes only */
    gfpool_holes_push(h, 1000, 7);
    gfpool_holes_push(h, 1030, 5);
    gfpool_holes_push(h, 1060, 1);
    gfpool_holes_push(h, 1060, 2);
    gfpool_holes_push(h, 1100, 9);
    r = split(buf, 100, 1000, h, FALSE, 16);
    g_assert_cmpstr(r, ==, "h7 d30 h5 d30 h1 h2 d40 h9");
    g_free(r);
    g_assert_false(gfpool_holes_peek(h, &pos, &len));

    /* a hole past the buffer stays queued for the next one */
    gfpool_holes_push(h, 150, 3);
    r = split(buf, 100, 0, h, FALSE, 16);
    g_assert_cmpstr(r, ==, "d100");
    g_free(r);
    g_assert_true(gfpool_holes_peek(h, &pos, &len));
    g_assert_cmpuint(pos, ==, 150);

    /* the end of the stream (no bytes) still takes the holes at its end */
    r = split(buf, 50, 100, h, FALSE, 16);
    g_assert_cmpstr(r, ==, "d50 h3");
    g_free(r);
    gfpool_holes_push(h, 150, 4);
    r = split(buf, 0, 150, h, FALSE, 16);
    g_assert_cmpstr(r, ==, "h4");
    g_free(r);
    gfpool_holes_free(h);
}

static void
test_split_zeros(void)
{
    g_autofree char *buf = g_malloc0(10 * 16);
    char *r;

    /* blocks 0-1 zero, 2 data, 3-5 zero, 6 data with one byte, 7-9 zero */
    buf[2 * 16 + 5] = 1;
    buf[6 * 16 + 15] = 1;
    r = split(buf, 160, 0, NULL, TRUE, 16);
    g_assert_cmpstr(r, ==, "h32 d16 h48 d16 h48");
    g_free(r);

    /* a short tail block counts like a whole one */
    r = split(buf, 16 * 2 + 8, 0, NULL, TRUE, 16);
    g_assert_cmpstr(r, ==, "h32 d8");
    g_free(r);
    r = split(buf, 16 * 2 + 3, 0, NULL, TRUE, 16);
    g_assert_cmpstr(r, ==, "h35");
    g_free(r);

    /* without find_zeros, zeros are data */
    r = split(buf, 48, 0, NULL, FALSE, 16);
    g_assert_cmpstr(r, ==, "d48");
    g_free(r);
}

static void
test_split_error(void)
{
    g_autofree char *buf = g_malloc0(100);
    GfpoolHoles *h = gfpool_holes_new();
    SplitLog l = { .log = g_string_new(NULL), .fail_at = 2 };
    g_autoptr(GError) err = NULL;
    guint64 pos, len;

    gfpool_holes_push(h, 10, 5);
    gfpool_holes_push(h, 20, 5);
    g_assert_false(gfpool_upload_split(buf, 100, 0, h, FALSE, 16, &log_ops, &l, &err));
    g_assert_nonnull(err);
    /* stopped at the failing hole, which stays queued */
    g_assert_cmpstr(l.log->str, ==, "d10 h5");
    g_assert_true(gfpool_holes_peek(h, &pos, &len));
    g_assert_cmpuint(pos, ==, 10);
    g_string_free(l.log, TRUE);
    gfpool_holes_free(h);
}

/* ---- read-ahead ------------------------------------------------------- */

typedef struct {
    gsize size;             /* bytes the "file" has */
    guint64 fail_off;       /* a read at this offset fails (G_MAXUINT64: none) */
    gboolean fail_silently; /* ... without setting an error */
    gint reads;
} MemFile;

/* Byte i of the file is i % 251; later chunks answer first. */
static gssize
mem_read(void *opaque, guint64 off, void *buf, gsize len, GError **error)
{
    MemFile *f = opaque;
    gsize n;

    g_atomic_int_inc(&f->reads);
    g_usleep(off == 0 ? 20000 : (off % 3) * 3000);
    if (off == f->fail_off) {
        if (!f->fail_silently)
            g_set_error(error, g_quark_from_static_string("test"), 5, "read at %" G_GUINT64_FORMAT,
                        off);
        return -1;
    }
    if (off >= f->size)
        return 0;
    n = MIN(len, f->size - (gsize)off);
    for (gsize i = 0; i < n; i++)
        ((guint8 *)buf)[i] = (guint8)((off + i) % 251);
    return (gssize)n;
}

static void
read_all(MemFile *f, guint64 start, guint64 len, gsize chunk, guint slots, guint64 *got_bytes,
         GError **error)
{
    g_autoptr(GfpoolReadAhead) ra = gfpool_read_ahead_new(mem_read, f, start, len, chunk, slots,
                                                          NULL);
    guint64 o = start;

    for (;;) {
        const char *buf;
        gssize n = gfpool_read_ahead_take(ra, &buf, error);

        if (n <= 0)
            break;
        for (gssize i = 0; i < n; i++)
            g_assert_cmpuint((guint8)buf[i], ==, (o + (guint64)i) % 251);
        o += (guint64)n;
        gfpool_read_ahead_release(ra);
    }
    *got_bytes = o - start;
}

static void
test_read_ahead_order(void)
{
    MemFile f = { .size = 1000 * KiB, .fail_off = G_MAXUINT64 };
    g_autoptr(GError) err = NULL;
    guint64 got;

    /* many chunks, more than slots, and a short last one */
    read_all(&f, 0, f.size, 64 * KiB, 4, &got, &err);
    g_assert_no_error(err);
    g_assert_cmpuint(got, ==, f.size);

    /* an odd start, one chunk (read by the caller itself) */
    read_all(&f, 12345, 1000, 64 * KiB, 4, &got, &err);
    g_assert_no_error(err);
    g_assert_cmpuint(got, ==, 1000);

    /* one slot */
    read_all(&f, 7, 300 * KiB, 64 * KiB, 1, &got, &err);
    g_assert_no_error(err);
    g_assert_cmpuint(got, ==, 300 * KiB);
}

static void
test_read_ahead_error(void)
{
    MemFile f = { .size = 1000 * KiB, .fail_off = 5 * 64 * KiB };
    g_autoptr(GError) err = NULL;
    guint64 got;

    /* the chunks before the failing one arrive, then its error */
    read_all(&f, 0, f.size, 64 * KiB, 4, &got, &err);
    g_assert_error(err, g_quark_from_static_string("test"), 5);
    g_assert_cmpuint(got, ==, 5 * 64 * KiB);
    g_clear_error(&err);

    /* a read that fails without a word still gives an error */
    f.fail_silently = TRUE;
    read_all(&f, 0, f.size, 64 * KiB, 4, &got, &err);
    g_assert_nonnull(err);
    g_assert_cmpuint(got, ==, 5 * 64 * KiB);
}

/* ---- write-behind ----------------------------------------------------- */

typedef struct {
    GMutex lock;
    guint8 *data;
    gsize size;
    guint64 fail_off;
    gboolean fail_silently;
    gint writes;
} MemDisk;

static gboolean
mem_write(void *opaque, guint64 off, const void *buf, gsize len, GError **error)
{
    MemDisk *d = opaque;

    g_usleep((off / 1024 % 4) * 2000);
    if (off == d->fail_off) {
        if (!d->fail_silently)
            g_set_error(error, g_quark_from_static_string("test"), 7, "write at %" G_GUINT64_FORMAT,
                        off);
        return FALSE;
    }
    g_mutex_lock(&d->lock);
    g_assert_cmpuint(off + len, <=, d->size);
    memcpy(d->data + off, buf, len);
    d->writes++;
    g_mutex_unlock(&d->lock);
    return TRUE;
}

static void
test_write_behind_order_free(void)
{
    MemDisk d = { .size = 64 * KiB, .fail_off = G_MAXUINT64 };
    g_autofree guint8 *src = g_malloc(d.size);
    g_autoptr(GError) err = NULL;
    GfpoolProgress *p = gfpool_progress_new(NULL, NULL);
    GfpoolWriteBehind *wb;

    g_mutex_init(&d.lock);
    d.data = g_malloc0(d.size);
    for (gsize i = 0; i < d.size; i++)
        src[i] = (guint8)(i * 7);
    wb = gfpool_write_behind_new(mem_write, &d, 1024, 3, p);
    /* pieces of odd sizes; each is copied, so the source may change */
    for (gsize off = 0; off < d.size;) {
        gsize n = MIN(d.size - off, (gsize)(off % 5000) + 700);
        g_autofree guint8 *copy = g_memdup2(src + off, n);
        g_assert_true(gfpool_write_behind_submit(wb, copy, n, off, &err));
        memset(copy, 0xff, n);
        off += n;
    }
    g_assert_true(gfpool_write_behind_drain(wb, &err));
    g_assert_no_error(err);
    g_assert_cmpmem(d.data, d.size, src, d.size);
    g_assert_true(gfpool_write_behind_finish(wb, &err));
    g_assert_no_error(err);
    gfpool_progress_free(p);
    g_free(d.data);
    g_mutex_clear(&d.lock);
}

static void
test_write_behind_error(void)
{
    MemDisk d = { .size = 256 * KiB, .fail_off = 40 * KiB };
    g_autofree guint8 *src = g_malloc0(d.size);
    g_autoptr(GError) err = NULL;
    GfpoolWriteBehind *wb;
    gboolean refused = FALSE;
    gint writes;

    g_mutex_init(&d.lock);
    d.data = g_malloc0(d.size);
    wb = gfpool_write_behind_new(mem_write, &d, 1024, 4, NULL);
    /* the failure reaches a later submit, or at the latest the drain */
    for (gsize off = 0; off < d.size && !refused; off += 1024)
        refused = !gfpool_write_behind_submit(wb, src, 1024, off, &err);
    if (!refused)
        g_assert_false(gfpool_write_behind_drain(wb, &err));
    g_assert_error(err, g_quark_from_static_string("test"), 7);
    g_clear_error(&err);
    /* nothing is written once a write failed (the queue runs dry) */
    writes = g_atomic_int_get(&d.writes);
    g_assert_false(gfpool_write_behind_submit(wb, src, 1024, 0, &err));
    g_clear_error(&err);
    g_assert_false(gfpool_write_behind_finish(wb, &err));
    g_assert_error(err, g_quark_from_static_string("test"), 7);
    g_assert_cmpint(g_atomic_int_get(&d.writes), <=, writes + 4);
    g_clear_error(&err);

    /* a write that fails without a word still gives an error */
    d.fail_silently = TRUE;
    wb = gfpool_write_behind_new(mem_write, &d, 1024, 2, NULL);
    for (gsize off = 0; off < d.size; off += 1024)
        if (!gfpool_write_behind_submit(wb, src, 1024, off, NULL))
            break;
    g_assert_false(gfpool_write_behind_finish(wb, &err));
    g_assert_nonnull(err);
    g_free(d.data);
    g_mutex_clear(&d.lock);
}

/* ---- progress --------------------------------------------------------- */

static void
count_step(void *opaque)
{
    g_atomic_int_inc((gint *)opaque);
}

static void
test_progress(void)
{
    gint steps = 0;
    GfpoolProgress *p = gfpool_progress_new(count_step, &steps);
    const char *what = NULL;

    g_usleep(30000);
    /* waiting on GlusterFS (the start) for 30 ms */
    g_assert_true(gfpool_progress_stalled(p, 10000));
    g_assert_false(gfpool_progress_stalled(p, 1000000));
    /* waiting on the stream is never a stall */
    gfpool_progress_step(p, TRUE);
    g_usleep(30000);
    g_assert_false(gfpool_progress_stalled(p, 10000));
    /* -1 keeps what it waits on, and restarts the clock */
    gfpool_progress_step(p, FALSE);
    g_usleep(30000);
    gfpool_progress_step(p, -1);
    g_assert_false(gfpool_progress_stalled(p, 10000));
    g_assert_cmpint(steps, ==, 3);
    /* a named wait: the messages say which call is pending, and -1 keeps
     * the name */
    gfpool_progress_begin(p, "the flush");
    g_usleep(30000);
    g_assert_cmpint(gfpool_progress_pending(p, &what), >=, 30000);
    g_assert_cmpstr(what, ==, "the flush");
    gfpool_progress_step(p, -1);
    gfpool_progress_pending(p, &what);
    g_assert_cmpstr(what, ==, "the flush");
    gfpool_progress_step(p, TRUE);
    g_assert_cmpint(gfpool_progress_pending(p, &what), ==, 0);
    gfpool_progress_step(p, FALSE);
    gfpool_progress_pending(p, &what);
    g_assert_cmpstr(what, ==, "its writes");
    gfpool_progress_step(NULL, TRUE);
    gfpool_progress_free(p);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/transfer/split/holes", test_split_holes);
    g_test_add_func("/transfer/split/zeros", test_split_zeros);
    g_test_add_func("/transfer/split/error", test_split_error);
    g_test_add_func("/transfer/read-ahead/order", test_read_ahead_order);
    g_test_add_func("/transfer/read-ahead/error", test_read_ahead_error);
    g_test_add_func("/transfer/write-behind/order", test_write_behind_order_free);
    g_test_add_func("/transfer/write-behind/error", test_write_behind_error);
    g_test_add_func("/transfer/progress", test_progress);
    return g_test_run();
}
