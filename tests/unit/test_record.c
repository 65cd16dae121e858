/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The header record's text (gfpool_record.c): what the encoder writes parses
 * back to the same, and anything else, hostile or merely different, is
 * refused, leaving nothing behind.
 */
#include <string.h>

#include "gfpool_record.h"

static GfpoolProbe
qcow2_probe(guint64 capacity, guint32 cluster, const char *backing, GfpoolFormat backing_format)
{
    GfpoolProbe p = { 0 };

    p.format = GFPOOL_FORMAT_QCOW2;
    p.capacity = capacity;
    p.cluster_size = cluster;
    p.backing = g_strdup(backing);
    p.backing_format = backing_format;
    return p;
}

static void
round_trip(guint64 size, gint64 mtime, GfpoolProbe *in)
{
    g_autofree char *v = gfpool_header_record_encode(size, mtime, in);
    g_auto(GfpoolProbe) out = { 0 };
    guint64 got_size = 0;
    gint64 got_mtime = 0;

    g_assert_nonnull(v);
    g_assert_cmpuint(strlen(v), <=, GFPOOL_HEADER_RECORD_MAX);
    g_assert_true(gfpool_header_record_parse(v, strlen(v), &got_size, &got_mtime, &out));
    g_assert_cmpuint(got_size, ==, size);
    g_assert_cmpint(got_mtime, ==, mtime);
    g_assert_cmpint(out.format, ==, GFPOOL_FORMAT_QCOW2);
    g_assert_true(out.recorded);
    g_assert_false(out.corrupt);
    g_assert_null(out.warning);
    g_assert_cmpuint(out.capacity, ==, in->capacity);
    g_assert_cmpuint(out.cluster_size, ==, in->cluster_size);
    g_assert_cmpstr(out.backing, ==, in->backing);
    g_assert_cmpint(out.backing_format, ==, in->backing_format);
    gfpool_probe_clear(in);
}

static void
test_round_trip(void)
{
    g_autofree char *longest = g_strnfill(1023, 'b');
    GfpoolProbe p;

    p = qcow2_probe(G_GUINT64_CONSTANT(1) << 30, 65536, NULL, GFPOOL_FORMAT_NONE);
    round_trip(196608, G_GINT64_CONSTANT(1764990000123456789), &p);
    p = qcow2_probe(10737418240, 65536, "base.qcow2", GFPOOL_FORMAT_QCOW2);
    round_trip(200704, 0, &p);
    /* spaces, '=' and UTF-8 are a name's own bytes */
    p = qcow2_probe(512, 512, "my base=1 \xc3\xa9.img", GFPOOL_FORMAT_RAW);
    round_trip(0, -1, &p);
    p = qcow2_probe(1, 2 * 1024 * 1024, "", GFPOOL_FORMAT_NONE);
    round_trip(G_MAXUINT64, G_MININT64, &p);
    p = qcow2_probe(G_GUINT64_CONSTANT(1) << 40, 4096, longest, GFPOOL_FORMAT_QCOW2);
    round_trip(G_MAXINT64, G_MAXINT64, &p);
}

static void
test_encode_refuses(void)
{
    g_autofree char *too_long = g_strnfill(1024, 'b');
    GfpoolProbe p;

    p = qcow2_probe(1 << 20, 65536, NULL, GFPOOL_FORMAT_NONE);
    p.format = GFPOOL_FORMAT_RAW;
    g_assert_null(gfpool_header_record_encode(0, 0, &p));
    p.format = GFPOOL_FORMAT_QCOW2;
    p.corrupt = TRUE;
    g_assert_null(gfpool_header_record_encode(0, 0, &p));
    p.corrupt = FALSE;
    p.warning = g_strdup("qcow2 incompatible features include unknown bits");
    g_assert_null(gfpool_header_record_encode(0, 0, &p));
    gfpool_probe_clear(&p);

    p = qcow2_probe(1 << 20, 65536, "a\nb", GFPOOL_FORMAT_NONE);
    g_assert_null(gfpool_header_record_encode(0, 0, &p));
    gfpool_probe_clear(&p);
    p = qcow2_probe(1 << 20, 65536, "a\x7f", GFPOOL_FORMAT_NONE);
    g_assert_null(gfpool_header_record_encode(0, 0, &p));
    gfpool_probe_clear(&p);
    p = qcow2_probe(1 << 20, 65536, too_long, GFPOOL_FORMAT_NONE);
    g_assert_null(gfpool_header_record_encode(0, 0, &p));
    gfpool_probe_clear(&p);
    p = qcow2_probe(1 << 20, 65537, NULL, GFPOOL_FORMAT_NONE);
    g_assert_null(gfpool_header_record_encode(0, 0, &p));
    gfpool_probe_clear(&p);
    p = qcow2_probe(G_MAXUINT64, 512, NULL, GFPOOL_FORMAT_NONE);
    g_assert_null(gfpool_header_record_encode(0, 0, &p));
    gfpool_probe_clear(&p);
}

static void
refused(const char *value, gsize len)
{
    GfpoolProbe p = { 0 };
    guint64 size = 7;
    gint64 mtime = 7;

    p.backing = NULL;
    if (gfpool_header_record_parse(value, len, &size, &mtime, &p)) {
        g_autofree char *shown = g_strescape(value, NULL);
        g_error("accepted '%s'", shown);
    }
    /* nothing half-filled is left to use or to free */
    g_assert_cmpint(p.format, ==, GFPOOL_FORMAT_NONE);
    g_assert_null(p.backing);
    g_assert_false(p.recorded);
}

#define REFUSED(s) refused(s, strlen(s))

static void
test_parse_refuses(void)
{
    g_autofree char *overlong = NULL;
    g_autofree char *b1024 = g_strnfill(1024, 'b');
    g_autofree char *bmax = g_strnfill(GFPOOL_HEADER_RECORD_MAX, 'b');
    static const char nul_inside[] =
        "1 size=1 mtime=2 capacity=3 cluster=65536 backing-format=none backing=a\0b";

    REFUSED("");
    REFUSED("1");
    REFUSED("1 ");
    /* another version, or none */
    REFUSED("2 size=1 mtime=2 capacity=3 cluster=65536 backing-format=none");
    REFUSED("10 size=1 mtime=2 capacity=3 cluster=65536 backing-format=none");
    REFUSED("size=1 mtime=2 capacity=3 cluster=65536 backing-format=none");
    /* missing, reordered, repeated, extra, empty fields */
    REFUSED("1 size=1 mtime=2 capacity=3 cluster=65536");
    REFUSED("1 size=1 mtime=2 capacity=3 backing-format=none");
    REFUSED("1 mtime=2 size=1 capacity=3 cluster=65536 backing-format=none");
    REFUSED("1 size=1 size=1 mtime=2 capacity=3 cluster=65536 backing-format=none");
    REFUSED("1 size=1 mtime=2 capacity=3 cluster=65536 backing-format=none extra=1");
    REFUSED("1 size= mtime=2 capacity=3 cluster=65536 backing-format=none");
    REFUSED("1 size=1 mtime=2 capacity=3 cluster=65536 backing-format=");
    REFUSED("1 size=1 mtime=2 capacity=3 cluster=65536 backing-format=none ");
    REFUSED("1  size=1 mtime=2 capacity=3 cluster=65536 backing-format=none");
    REFUSED("1 size=1  mtime=2 capacity=3 cluster=65536 backing-format=none");
    REFUSED("1 size=1\tmtime=2 capacity=3 cluster=65536 backing-format=none");
    REFUSED("1 SIZE=1 mtime=2 capacity=3 cluster=65536 backing-format=none");
    /* numbers: not as the encoder writes them, or out of range */
    REFUSED("1 size=18446744073709551616 mtime=2 capacity=3 cluster=65536 backing-format=none");
    REFUSED("1 size=99999999999999999999999 mtime=2 capacity=3 cluster=65536 backing-format=none");
    REFUSED("1 size=1 mtime=9223372036854775808 capacity=3 cluster=65536 backing-format=none");
    REFUSED("1 size=1 mtime=-9223372036854775809 capacity=3 cluster=65536 backing-format=none");
    REFUSED("1 size=01 mtime=2 capacity=3 cluster=65536 backing-format=none");
    REFUSED("1 size=+1 mtime=2 capacity=3 cluster=65536 backing-format=none");
    REFUSED("1 size=-1 mtime=2 capacity=3 cluster=65536 backing-format=none");
    REFUSED("1 size=1 mtime=-0 capacity=3 cluster=65536 backing-format=none");
    REFUSED("1 size=1 mtime=- capacity=3 cluster=65536 backing-format=none");
    REFUSED("1 size=0x10 mtime=2 capacity=3 cluster=65536 backing-format=none");
    REFUSED("1 size=1e3 mtime=2 capacity=3 cluster=65536 backing-format=none");
    /* what no qcow2 header can say */
    REFUSED("1 size=1 mtime=2 capacity=3 cluster=65537 backing-format=none");
    REFUSED("1 size=1 mtime=2 capacity=3 cluster=256 backing-format=none");
    REFUSED("1 size=1 mtime=2 capacity=3 cluster=4194304 backing-format=none");
    REFUSED("1 size=1 mtime=2 capacity=3 cluster=0 backing-format=none");
    REFUSED("1 size=1 mtime=2 capacity=18446744073709551615 cluster=512 backing-format=none");
    REFUSED("1 size=1 mtime=2 capacity=3 cluster=65536 backing-format=luks");
    REFUSED("1 size=1 mtime=2 capacity=3 cluster=65536 backing-format=qcow2qcow2qcow2qcow2");
    /* backing names: control characters, too long, a field name only */
    REFUSED("1 size=1 mtime=2 capacity=3 cluster=65536 backing-format=none backing=a\nb");
    REFUSED("1 size=1 mtime=2 capacity=3 cluster=65536 backing-format=none backing=\x1b[31m");
    REFUSED("1 size=1 mtime=2 capacity=3 cluster=65536 backing-format=none backing=a\x7f");
    REFUSED("1 size=1 mtime=2 capacity=3 cluster=65536 backing-format=none backing");
    REFUSED("1 size=1 mtime=2 capacity=3 cluster=65536 backing-format=none backer=x");
    refused(nul_inside, sizeof(nul_inside) - 1);
    overlong = g_strdup_printf("1 size=1 mtime=2 capacity=3 cluster=65536 backing-format=none "
                               "backing=%s", b1024);
    REFUSED(overlong);
    g_free(overlong);
    overlong = g_strdup_printf("1 size=1 mtime=2 capacity=3 cluster=65536 backing-format=none "
                               "backing=%s", bmax);
    REFUSED(overlong);
}

static void
test_parse_exact(void)
{
    const char *v = "1 size=196608 mtime=1764990000123456789 capacity=1073741824 cluster=65536 "
        "backing-format=qcow2 backing=../base image.qcow2";
    g_auto(GfpoolProbe) p = { 0 };
    guint64 size;
    gint64 mtime;

    g_assert_true(gfpool_header_record_parse(v, strlen(v), &size, &mtime, &p));
    g_assert_cmpuint(size, ==, 196608);
    g_assert_cmpint(mtime, ==, G_GINT64_CONSTANT(1764990000123456789));
    g_assert_cmpuint(p.capacity, ==, G_GUINT64_CONSTANT(1) << 30);
    g_assert_cmpuint(p.cluster_size, ==, 65536);
    g_assert_cmpint(p.backing_format, ==, GFPOOL_FORMAT_QCOW2);
    g_assert_cmpstr(p.backing, ==, "../base image.qcow2");
    gfpool_probe_clear(&p);
    /* the length given is the value, whatever follows it */
    g_assert_true(gfpool_header_record_parse(v, strlen(v) - 6, &size, &mtime, &p));
    g_assert_cmpstr(p.backing, ==, "../base image");
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/record/header/round-trip", test_round_trip);
    g_test_add_func("/record/header/encode-refuses", test_encode_refuses);
    g_test_add_func("/record/header/parse-refuses", test_parse_refuses);
    g_test_add_func("/record/header/parse-exact", test_parse_exact);
    return g_test_run();
}
