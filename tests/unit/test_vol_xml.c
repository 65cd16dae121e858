/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test_vol_xml: <volume> parse/format, libvirt's size units, disk XML.
 *
 * The documents are files in vol_xml/: bad-NAME.xml is refused with an
 * error containing bad-NAME.err's line (one DO_TEST_BAD line each in
 * main()); parse-NAME.xml and domstatus-NAME.xml are read field by field
 * below.
 */
#include <string.h>

#include "gfpool_disk_xml.h"
#include "gfpool_pool_xml.h"
#include "gfpool_vol_xml.h"

/* G_TEST_SRCDIR is tests/unit under meson; fall back on the current
 * directory for hand builds run from the root. */
static char *
read_case(const char *file, gsize *len)
{
    const char *srcdir = g_getenv("G_TEST_SRCDIR");
    g_autofree char *path = srcdir ? g_build_filename(srcdir, "vol_xml", file, NULL)
                                   : g_build_filename("tests", "unit", "vol_xml", file, NULL);
    g_autoptr(GError) err = NULL;
    char *text = NULL;

    g_file_get_contents(path, &text, len, &err);
    g_assert_no_error(err);
    return text;
}

/* A file of examples/, from the repo root (two up from G_TEST_SRCDIR). */
static char *
read_example(const char *file, gsize *len)
{
    const char *srcdir = g_getenv("G_TEST_SRCDIR");
    g_autofree char *path = srcdir ? g_build_filename(srcdir, "..", "..", "examples", file, NULL)
                                   : g_build_filename("examples", file, NULL);
    g_autoptr(GError) err = NULL;
    char *text = NULL;

    g_file_get_contents(path, &text, len, &err);
    g_assert_no_error(err);
    return text;
}

/* The example without its leading comment: what gfpool prints. */
static const char *
skip_comment(const char *text)
{
    const char *end;

    if (!g_str_has_prefix(text, "<!--"))
        return text;
    end = strstr(text, "-->");
    g_assert_nonnull(end);
    end += 3;
    while (*end == '\n')
        end++;
    return end;
}

static void
test_units(void)
{
    static const struct { const char *in; guint64 out; } ok[] = {
        { "0", 0 }, { "1", 1 }, { "512b", 512 }, { "1bytes", 1 },
        { "1k", 1024 }, { "1K", 1024 }, { "1KiB", 1024 }, { "1kib", 1024 }, { "1KB", 1000 },
        { "10G", 10ULL << 30 }, { "10GiB", 10ULL << 30 }, { "10GB", 10000000000ULL },
        { "16T", 16ULL << 40 }, { "1P", 1ULL << 50 }, { "15E", 15ULL << 60 },
        { "18446744073709551615", G_MAXUINT64 },
    };
    static const char *bad[] = {
        "", "-1", "G", "1X", "1GiBB", "1 G", "16E", "18446744073709551616", "1.5G", "0x10",
    };

    for (guint i = 0; i < G_N_ELEMENTS(ok); i++) {
        g_autoptr(GError) err = NULL;
        guint64 v = 42;
        g_assert_true(gfpool_parse_scaled(ok[i].in, &v, &err));
        g_assert_no_error(err);
        g_assert_cmpuint(v, ==, ok[i].out);
    }
    for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autoptr(GError) err = NULL;
        guint64 v;
        g_assert_false(gfpool_parse_scaled(bad[i], &v, &err));
        g_assert_error(err, GFPOOL_CONF_ERROR, GFPOOL_CONF_ERROR_INVALID);
        /* The message names the value. */
        if (*bad[i] && !strstr(err->message, bad[i]))
            g_error("'%s': message '%s' does not name the value", bad[i], err->message);
    }
}

static void
test_parse_full(void)
{
    gsize len;
    g_autofree char *xml = read_case("parse-full.xml", &len);
    g_autoptr(GError) err = NULL;
    g_autoptr(GfpoolVolDef) def = gfpool_vol_def_parse(xml, len, &err);
    g_autofree char *out = NULL;
    g_autoptr(GfpoolVolDef) again = NULL;

    g_assert_no_error(err);
    g_assert_cmpstr(def->name, ==, "a.qcow2");
    g_assert_cmpuint(def->capacity, ==, 10ULL << 30);
    g_assert_true(def->has_allocation);
    g_assert_cmpuint(def->allocation, ==, 4096);
    g_assert_cmpstr(def->format, ==, "qcow2");
    g_assert_cmpuint(def->cluster_size, ==, 256 * 1024);
    g_assert_cmpint(def->mode, ==, 0640);
    g_assert_cmpint(def->uid, ==, 64055);
    g_assert_cmpint(def->gid, ==, 64055);
    g_assert_cmpstr(def->backing_path, ==, "base.img");
    g_assert_cmpstr(def->backing_format, ==, "raw");

    out = gfpool_vol_def_format(def);
    again = gfpool_vol_def_parse(out, strlen(out), &err);
    g_assert_no_error(err);
    g_assert_cmpuint(again->capacity, ==, def->capacity);
    g_assert_cmpint(again->mode, ==, 0640);
    g_assert_cmpstr(again->backing_path, ==, "base.img");
}

/* data: the case's name without extension, "bad-NAME" */
static void
test_parse_bad(gconstpointer data)
{
    const char *name = data;
    g_autofree char *in = g_strconcat(name, ".xml", NULL);
    g_autofree char *err_file = g_strconcat(name, ".err", NULL);
    gsize len;
    g_autofree char *xml = read_case(in, &len);
    g_autofree char *msg = g_strchomp(read_case(err_file, NULL));
    g_autoptr(GError) err = NULL;
    g_autoptr(GfpoolVolDef) def = gfpool_vol_def_parse(xml, len, &err);

    g_assert_null(def);
    g_assert_error(err, GFPOOL_CONF_ERROR, GFPOOL_CONF_ERROR_INVALID);
    if (!strstr(err->message, msg))
        g_test_fail_printf("error for %s is '%s', expected it to contain '%s'",
                           in, err->message, msg);
}

static void
test_format_escapes(void)
{
    g_autoptr(GfpoolVolDef) def = gfpool_vol_def_new();
    g_autofree char *xml = NULL;
    g_autoptr(GfpoolVolDef) again = NULL;
    g_autoptr(GError) err = NULL;

    def->name = g_strdup("a<b>&'\"c");
    def->capacity = 1;
    def->format = g_strdup("raw");
    xml = gfpool_vol_def_format(def);
    again = gfpool_vol_def_parse(xml, strlen(xml), &err);
    g_assert_no_error(err);
    g_assert_cmpstr(again->name, ==, def->name);
}

static GfpoolSource *
make_source(void)
{
    GfpoolSource *src = gfpool_source_new();
    src->volume = g_strdup("rep3");
    src->dir = g_strdup("/images");
    g_ptr_array_add(src->hosts, gfpool_host_new(GFPOOL_TRANSPORT_TCP, "h1", 0, NULL));
    g_ptr_array_add(src->hosts, gfpool_host_new(GFPOOL_TRANSPORT_TCP, "::1", 24008, NULL));
    g_ptr_array_add(src->hosts, gfpool_host_new(GFPOOL_TRANSPORT_UNIX, NULL, 0, "/run/g.sock"));
    return src;
}

static void
test_disk_xml(void)
{
    g_autoptr(GfpoolSource) src = make_source();
    g_autoptr(GPtrArray) chain = g_ptr_array_new_with_free_func((GDestroyNotify)gfpool_disk_layer_free);
    g_autofree char *xml = NULL;
    g_autofree char *warn = NULL;
    GfpoolDiskParams p = { .src = src, .chain = chain, .cache = "none", .readonly = TRUE };

    g_ptr_array_add(chain, gfpool_disk_layer_new("top.qcow2", "qcow2"));
    g_ptr_array_add(chain, gfpool_disk_layer_new("base.img", "raw"));
    xml = gfpool_disk_xml(&p, &warn);
    g_assert_null(warn);
    g_assert_nonnull(strstr(xml, "<driver name='qemu' type='qcow2' cache='none'/>"));
    g_assert_nonnull(strstr(xml, "<source protocol='gluster' name='rep3/images/top.qcow2'>"));
    g_assert_nonnull(strstr(xml, "<host name='h1' port='24007' transport='tcp'/>"));
    g_assert_nonnull(strstr(xml, "<host name='::1' port='24008' transport='tcp'/>"));
    g_assert_nonnull(strstr(xml, "<host transport='unix' socket='/run/g.sock'/>"));
    g_assert_nonnull(strstr(xml, "name='rep3/images/base.img'"));
    g_assert_nonnull(strstr(xml, "<readonly/>"));
    g_assert_nonnull(strstr(xml, "<target dev='vda' bus='virtio'/>"));

    g_ptr_array_add(src->hosts, gfpool_host_new(GFPOOL_TRANSPORT_RDMA, "h2", 0, NULL));
    g_clear_pointer(&xml, g_free);
    xml = gfpool_disk_xml(&p, &warn);
    g_assert_nonnull(warn);
    g_assert_nonnull(strstr(warn, "rdma"));

    g_free(src->dir);
    src->dir = g_strdup("/");
    {
        g_autofree char *n = gfpool_disk_source_name(src, "x.img");
        g_assert_cmpstr(n, ==, "rep3/x.img");
    }
}

static void
test_disk_xml_nbd(void)
{
    g_autoptr(GfpoolSource) src = make_source();
    g_autoptr(GPtrArray) chain = g_ptr_array_new_with_free_func((GDestroyNotify)gfpool_disk_layer_free);
    g_autofree char *xml = NULL;
    GfpoolDiskParams p = { .src = src, .chain = chain, .nbd_socket = "/run/gfpool/a'b.sock" };

    g_ptr_array_add(chain, gfpool_disk_layer_new("top.qcow2", "qcow2"));
    g_ptr_array_add(chain, gfpool_disk_layer_new("base&1.img", "raw"));
    xml = gfpool_disk_xml(&p, NULL);
    g_assert_nonnull(strstr(xml, "<driver name='qemu' type='qcow2'/>"));
    g_assert_nonnull(strstr(xml, "<source protocol='nbd' name='top.qcow2'>"));
    g_assert_nonnull(strstr(xml, "<source protocol='nbd' name='base&amp;1.img'>"));
    g_assert_nonnull(strstr(xml, "<host transport='unix' socket='/run/gfpool/a&apos;b.sock'/>"));
    g_assert_nonnull(strstr(xml, "<format type='raw'/>"));
    g_assert_null(strstr(xml, "gluster"));
    g_assert_null(strstr(xml, "h1"));
    g_assert_null(strstr(xml, "reconnect"));
}

static void
test_disk_xml_nbd_reconnect(void)
{
    g_autoptr(GfpoolSource) src = make_source();
    g_autoptr(GPtrArray) chain = g_ptr_array_new_with_free_func((GDestroyNotify)gfpool_disk_layer_free);
    g_autofree char *xml = NULL;
    GfpoolDiskParams p = { .src = src, .chain = chain, .nbd_socket = "/run/a.sock",
                           .nbd_reconnect_delay = 10 };
    const char *at;
    guint n = 0;

    g_ptr_array_add(chain, gfpool_disk_layer_new("top.qcow2", "qcow2"));
    g_ptr_array_add(chain, gfpool_disk_layer_new("base.img", "raw"));
    xml = gfpool_disk_xml(&p, NULL);
    /* every layer is a connection of its own */
    for (at = xml; (at = strstr(at, "<reconnect delay='10'/>")); at++)
        n++;
    g_assert_cmpuint(n, ==, 2);
}

/* What libvirt writes into its state dir for a running domain: the NBD
 * exports on unix sockets of its disks, chains and blockcopy destination,
 * each once; TCP NBD, gluster and file disks are not looked at. */
static void
test_domstatus(void)
{
    gsize len;
    g_autofree char *xml = read_case("domstatus-running.xml", &len);
    g_autoptr(GError) err = NULL;
    g_autoptr(GfpoolDomStatus) st = gfpool_domstatus_parse(xml, len, &err);
    GPtrArray *p;

    g_assert_no_error(err);
    g_assert_cmpint(st->pid, ==, 4242);
    g_assert_cmpstr(st->name, ==, "vm1");
    g_assert_cmpstr(st->uuid, ==, "87c296b2-593c-4d08-9b75-26e58ab3bc4c");
    g_assert_cmpuint(g_hash_table_size(st->exports), ==, 2);
    p = g_hash_table_lookup(st->exports, "/run/p.sock");
    g_assert_nonnull(p);
    g_assert_cmpuint(p->len, ==, 3);
    g_assert_cmpstr(g_ptr_array_index(p, 0), ==, "a.qcow2");
    g_assert_cmpstr(g_ptr_array_index(p, 1), ==, "base.raw");
    g_assert_cmpstr(g_ptr_array_index(p, 2), ==, "copy.qcow2");
    p = g_hash_table_lookup(st->exports, "/run/q.sock");
    g_assert_cmpuint(p->len, ==, 1);
}

static void
test_domstatus_bad(void)
{
    const char *bad[] = {
        "<domain><name>x</name></domain>",
        "<domstatus><domain><name>x</name><uuid>87c296b2-593c-4d08-9b75-26e58ab3bc4c</uuid></domain></domstatus>",
        "<domstatus pid='12x'><domain><name>x</name><uuid>87c296b2-593c-4d08-9b75-26e58ab3bc4c</uuid></domain></domstatus>",
        "<domstatus pid='-1'><domain><name>x</name><uuid>87c296b2-593c-4d08-9b75-26e58ab3bc4c</uuid></domain></domstatus>",
        "<domstatus pid='1'><domain><name>x</name><uuid>not-a-uuid</uuid></domain></domstatus>",
        "<domstatus pid='1'/>",
    };

    for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autoptr(GError) err = NULL;
        g_autoptr(GfpoolDomStatus) st = gfpool_domstatus_parse(bad[i], strlen(bad[i]), &err);

        g_assert_null(st);
        g_assert_nonnull(err);
    }
}

/* examples/disk-gluster.xml and disk-nbd.xml are what `gfpool disk-xml
 * --cache none` prints for the qcow2 volume vm1.qcow2, no backing file,
 * in the example pool:
 * the README tells users to paste them. */
static void
check_disk_example(const char *file, const char *nbd_socket)
{
    gsize len;
    g_autofree char *pool_xml = read_example("gluster-pool.xml", &len);
    g_autofree char *want = NULL;
    g_autofree char *xml = NULL;
    g_autoptr(GError) err = NULL;
    g_autoptr(GfpoolPoolDef) pool = gfpool_pool_def_parse(pool_xml, len, &err);
    g_autoptr(GPtrArray) chain = g_ptr_array_new_with_free_func((GDestroyNotify)gfpool_disk_layer_free);
    GfpoolDiskParams p = { .chain = chain, .cache = "none", .nbd_socket = nbd_socket };

    g_assert_no_error(err);
    p.src = pool->source;
    g_ptr_array_add(chain, gfpool_disk_layer_new("vm1.qcow2", "qcow2"));
    xml = gfpool_disk_xml(&p, NULL);
    want = read_example(file, &len);
    g_assert_cmpstr(xml, ==, skip_comment(want));
}

static void
test_example_disk_gluster(void)
{
    check_disk_example("disk-gluster.xml", NULL);
}

static void
test_example_disk_nbd(void)
{
    check_disk_example("disk-nbd.xml", "/run/gfpool-nbd/gluster-pool.sock");
}

/* examples/volume-qcow2.xml goes through the rules vol-create applies. */
static void
test_example_volume(void)
{
    gsize len;
    g_autofree char *xml = read_example("volume-qcow2.xml", &len);
    g_autoptr(GError) err = NULL;
    g_autoptr(GfpoolVolDef) def = gfpool_vol_def_parse(xml, len, &err);

    g_assert_no_error(err);
    g_assert_cmpstr(def->name, ==, "vm1.qcow2");
    g_assert_cmpuint(def->capacity, ==, 20ULL << 30);
    g_assert_false(def->has_allocation);
    g_assert_cmpstr(def->format, ==, "qcow2");
    g_assert_cmpint(def->mode, ==, 0600);
    g_assert_cmpint(def->uid, ==, 64055);
    g_assert_cmpint(def->gid, ==, 64055);
    g_assert_null(def->backing_path);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/units/scaled", test_units);
    g_test_add_func("/vol_xml/parse_full", test_parse_full);

#define DO_TEST_BAD(name) \
    g_test_add_data_func("/vol_xml/parse_bad/" name, "bad-" name, test_parse_bad)

    DO_TEST_BAD("empty");
    DO_TEST_BAD("unclosed");
    DO_TEST_BAD("root-pool");
    DO_TEST_BAD("no-name");
    DO_TEST_BAD("capacity-negative");
    DO_TEST_BAD("capacity-unit");
    DO_TEST_BAD("capacity-overflow");
    DO_TEST_BAD("mode");
    DO_TEST_BAD("owner");
    DO_TEST_BAD("backing-no-path");
    DO_TEST_BAD("doctype-entity");

    g_test_add_func("/vol_xml/format_escapes", test_format_escapes);
    g_test_add_func("/disk_xml/chain_hosts_transports", test_disk_xml);
    g_test_add_func("/disk_xml/nbd", test_disk_xml_nbd);
    g_test_add_func("/disk_xml/nbd_reconnect", test_disk_xml_nbd_reconnect);
    g_test_add_func("/disk_xml/domstatus", test_domstatus);
    g_test_add_func("/disk_xml/domstatus_bad", test_domstatus_bad);
    g_test_add_func("/examples/disk_gluster", test_example_disk_gluster);
    g_test_add_func("/examples/disk_nbd", test_example_disk_nbd);
    g_test_add_func("/examples/volume_qcow2", test_example_volume);
    return g_test_run();
}
