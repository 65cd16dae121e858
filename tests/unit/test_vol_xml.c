/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test_vol_xml: <volume> parse/format, libvirt's size units, disk XML.
 */
#include <string.h>

#include "gfpool_disk_xml.h"
#include "gfpool_vol_xml.h"

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
    const char *xml =
        "<volume>\n"
        "  <name>a.qcow2</name>\n"
        "  <capacity unit='G'>10</capacity>\n"
        "  <allocation unit='KiB'>4</allocation>\n"
        "  <target>\n"
        "    <format type='qcow2'/>\n"
        "    <clusterSize unit='KiB'>256</clusterSize>\n"
        "    <permissions><mode>0640</mode><owner>64055</owner><group>64055</group></permissions>\n"
        "  </target>\n"
        "  <backingStore><path>base.img</path><format type='raw'/></backingStore>\n"
        "</volume>\n";
    g_autoptr(GError) err = NULL;
    g_autoptr(GfpoolVolDef) def = gfpool_vol_def_parse(xml, strlen(xml), &err);
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

static void
test_parse_bad(void)
{
    static const struct { const char *xml; const char *msg; } bad[] = {
        { "", "empty" },
        { "<volume>", "not well-formed" },
        { "<pool><name>x</name></pool>", "<volume>" },
        { "<volume><capacity>1</capacity></volume>", "<name>" },
        { "<volume><name>a</name><capacity>-1</capacity></volume>", "-1" },
        { "<volume><name>a</name><capacity unit='X'>1</capacity></volume>", "unit" },
        { "<volume><name>a</name><capacity unit='E'>100</capacity></volume>", "2^64" },
        { "<volume><name>a</name><target><permissions><mode>999</mode></permissions></target></volume>", "mode" },
        { "<volume><name>a</name><target><permissions><owner>x</owner></permissions></target></volume>", "owner" },
        { "<volume><name>a</name><backingStore><format type='raw'/></backingStore></volume>", "<path>" },
        { "<!DOCTYPE v [<!ENTITY e SYSTEM 'file:///etc/passwd'>]><volume><name>&e;</name></volume>", "DOCTYPE" },
    };

    for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autoptr(GError) err = NULL;
        g_autoptr(GfpoolVolDef) def = gfpool_vol_def_parse(bad[i].xml, strlen(bad[i].xml), &err);
        g_assert_null(def);
        g_assert_error(err, GFPOOL_CONF_ERROR, GFPOOL_CONF_ERROR_INVALID);
        if (!strstr(err->message, bad[i].msg))
            g_error("'%s': message '%s' lacks '%s'", bad[i].xml, err->message, bad[i].msg);
    }
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
    const char *xml =
        "<domstatus state='running' reason='booted' pid='4242'>"
        "<monitor path='/x' type='unix'/>"
        "<domain type='qemu' id='3'><name>vm1</name>"
        "<uuid>87c296b2-593c-4d08-9b75-26e58ab3bc4c</uuid><devices>"
        "<disk type='network' device='disk'>"
        "<source protocol='nbd' name='a.qcow2' index='1'><host transport='unix' socket='/run/p.sock'/></source>"
        "<backingStore type='network' index='2'>"
        "<source protocol='nbd' name='base.raw'><host transport='unix' socket='/run/p.sock'/></source>"
        "<backingStore/></backingStore>"
        "<mirror type='network' job='copy'><source protocol='nbd' name='copy.qcow2'>"
        "<host transport='unix' socket='/run/p.sock'/></source>"
        "<backingStore type='network'><source protocol='nbd' name='base.raw'>"
        "<host transport='unix' socket='/run/p.sock'/></source></backingStore></mirror>"
        "<target dev='vda' bus='virtio'/></disk>"
        "<disk type='network' device='disk'><source protocol='nbd' name='tcp.raw'>"
        "<host name='h' port='10809'/></source></disk>"
        "<disk type='network' device='disk'><source protocol='gluster' name='v/g.raw'>"
        "<host name='h'/></source></disk>"
        "<disk type='file' device='disk'><source file='/x.img'/></disk>"
        "<disk type='network' device='disk'><source protocol='nbd' name='other.raw'>"
        "<host transport='unix' socket='/run/q.sock'/></source></disk>"
        "</devices></domain></domstatus>";
    g_autoptr(GError) err = NULL;
    g_autoptr(GfpoolDomStatus) st = gfpool_domstatus_parse(xml, strlen(xml), &err);
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

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/units/scaled", test_units);
    g_test_add_func("/vol_xml/parse_full", test_parse_full);
    g_test_add_func("/vol_xml/parse_bad", test_parse_bad);
    g_test_add_func("/vol_xml/format_escapes", test_format_escapes);
    g_test_add_func("/disk_xml/chain_hosts_transports", test_disk_xml);
    g_test_add_func("/disk_xml/nbd", test_disk_xml_nbd);
    g_test_add_func("/disk_xml/nbd_reconnect", test_disk_xml_nbd_reconnect);
    g_test_add_func("/disk_xml/domstatus", test_domstatus);
    g_test_add_func("/disk_xml/domstatus_bad", test_domstatus_bad);
    return g_test_run();
}
