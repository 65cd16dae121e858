/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test_pool_xml.c: <pool type='gluster'> parse/format, source validation,
 * and the formatted documents checked against our RelaxNG schema and
 * libvirt's own (virt-xml-validate).
 */
#include <string.h>
#include <unistd.h>
#include <glib/gstdio.h>

#include <libxml/globals.h>
#include <libxml/xmlerror.h>

#include "gfpool_pool_xml.h"

#define NS_DECL "xmlns:gfpool='" GFPOOL_XML_NS "'"

/* Repo root: G_TEST_SRCDIR is tests/unit under meson; fall back on the
 * current directory for hand builds run from the root. */
static char *
repo_path(const char *rel)
{
    const char *srcdir = g_getenv("G_TEST_SRCDIR");

    if (srcdir)
        return g_build_filename(srcdir, "..", "..", rel, NULL);
    return g_strdup(rel);
}

static GfpoolPoolDef *
parse_ok(const char *xml)
{
    g_autoptr(GError) err = NULL;
    GfpoolPoolDef *def = gfpool_pool_def_parse(xml, strlen(xml), &err);

    g_assert_no_error(err);
    g_assert_nonnull(def);
    return def;
}

static void
assert_host(const GfpoolSource *src, guint i, GfpoolTransport t,
            const char *name, int port, const char *socket)
{
    const GfpoolHost *h;

    g_assert_cmpuint(i, <, src->hosts->len);
    h = g_ptr_array_index(src->hosts, i);
    g_assert_cmpint(h->transport, ==, t);
    g_assert_cmpstr(h->name, ==, name);
    g_assert_cmpint(h->port, ==, port);
    g_assert_cmpstr(h->socket, ==, socket);
}

static void
assert_defs_equal(const GfpoolPoolDef *a, const GfpoolPoolDef *b)
{
    g_assert_cmpstr(a->name, ==, b->name);
    g_assert_cmpstr(a->uuid, ==, b->uuid);
    g_assert_cmpstr(a->source->volume, ==, b->source->volume);
    g_assert_cmpstr(a->source->dir, ==, b->source->dir);
    g_assert_cmpuint(a->source->hosts->len, ==, b->source->hosts->len);
    for (guint i = 0; i < a->source->hosts->len; i++) {
        const GfpoolHost *h = g_ptr_array_index(a->source->hosts, i);
        assert_host(b->source, i, h->transport, h->name, h->port, h->socket);
    }
}

/* ---- external validators ---- */

static gboolean
run_tool(const char *const *argv, char **output)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *out = NULL;
    g_autofree char *errout = NULL;
    int status = 0;

    if (!g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL,
                      &out, &errout, &status, &err))
        g_error("cannot run %s: %s", argv[0], err->message);
    *output = g_strconcat(out ? out : "", errout ? errout : "", NULL);
    return g_spawn_check_wait_status(status, NULL);
}

static char *
write_temp(const char *xml)
{
    g_autoptr(GError) err = NULL;
    char *path = NULL;
    int fd = g_file_open_tmp("gfpool-pool-XXXXXX.xml", &path, &err);

    g_assert_no_error(err);
    close(fd);
    g_file_set_contents(path, xml, -1, &err);
    g_assert_no_error(err);
    return path;
}

/* Returns FALSE (and marks the test skipped) when the tool is missing. */
static gboolean
validate_rng_file(const char *file)
{
    g_autofree char *schema = repo_path("schemas/gluster-pool.rng");
    g_autofree char *xmllint = g_find_program_in_path("xmllint");
    g_autofree char *out = NULL;
    const char *argv[] = { "xmllint", "--noout", "--relaxng", schema, file, NULL };

    if (!xmllint) {
        g_test_skip("xmllint not installed");
        return FALSE;
    }
    if (!run_tool(argv, &out))
        g_test_fail_printf("%s does not validate against %s:\n%s", file, schema, out);
    return TRUE;
}

static gboolean
validate_libvirt_file(const char *file)
{
    g_autofree char *tool = g_find_program_in_path("virt-xml-validate");
    g_autofree char *out = NULL;
    const char *argv[] = { "virt-xml-validate", file, "storagepool", NULL };

    if (!tool) {
        g_test_skip("virt-xml-validate not installed");
        return FALSE;
    }
    if (!run_tool(argv, &out))
        g_test_fail_printf("libvirt's schema rejects %s:\n%s", file, out);
    return TRUE;
}

static void
validate_xml(const char *xml, gboolean libvirt_too)
{
    g_autofree char *file = write_temp(xml);

    validate_rng_file(file);
    if (libvirt_too)
        validate_libvirt_file(file);
    g_unlink(file);
}

/* ---- parse ---- */

/* As `virsh pool-dumpxml` prints a gluster pool. */
static const char libvirt_dump[] =
    "<pool type='gluster'>\n"
    "  <name>gluster-pool</name>\n"
    "  <uuid>3e3fce45-4f53-4fa7-bb32-11f34168b82b</uuid>\n"
    "  <capacity unit='bytes'>10737418240</capacity>\n"
    "  <allocation unit='bytes'>1073741824</allocation>\n"
    "  <available unit='bytes'>9663676416</available>\n"
    "  <source>\n"
    "    <host name='192.0.2.10' port='24007'/>\n"
    "    <host name='2001:db8::1'/>\n"
    "    <dir path='/'/>\n"
    "    <name>rep3</name>\n"
    "  </source>\n"
    "</pool>\n";

static void
test_parse_libvirt_dump(void)
{
    g_autoptr(GfpoolPoolDef) def = parse_ok(libvirt_dump);

    g_assert_cmpstr(def->name, ==, "gluster-pool");
    g_assert_cmpstr(def->uuid, ==, "3e3fce45-4f53-4fa7-bb32-11f34168b82b");
    g_assert_cmpstr(def->source->volume, ==, "rep3");
    g_assert_cmpstr(def->source->dir, ==, "/");
    g_assert_cmpuint(def->source->hosts->len, ==, 2);
    assert_host(def->source, 0, GFPOOL_TRANSPORT_TCP, "192.0.2.10", 24007, NULL);
    assert_host(def->source, 1, GFPOOL_TRANSPORT_TCP, "2001:db8::1", 0, NULL);
}

static void
test_parse_defaults(void)
{
    /* No <dir>: "/" as in libvirt. No pool <name>: libvirt takes the
     * source name. Trailing and doubled '/' sanitised like libvirt. */
    g_autoptr(GfpoolPoolDef) a = parse_ok(
        "<pool type='gluster'><source><host name='h'/><name>vol</name></source></pool>");
    g_autoptr(GfpoolPoolDef) b = parse_ok(
        "<pool type='gluster'><name>p</name><source><host name='h'/>"
        "<dir path='//a///b/'/><name>vol</name></source></pool>");

    g_assert_cmpstr(a->name, ==, "vol");
    g_assert_cmpstr(a->source->dir, ==, "/");
    g_assert_null(a->uuid);
    g_assert_cmpstr(b->source->dir, ==, "/a/b");
}

static void
test_parse_example(void)
{
    g_autofree char *path = repo_path("examples/gluster-pool.xml");
    g_autofree char *xml = NULL;
    g_autoptr(GError) err = NULL;
    g_autoptr(GfpoolPoolDef) def = NULL;
    gsize len;

    g_file_get_contents(path, &xml, &len, &err);
    g_assert_no_error(err);
    def = gfpool_pool_def_parse(xml, len, &err);
    g_assert_no_error(err);
    g_assert_cmpstr(def->name, ==, "gluster-pool");
    g_assert_cmpstr(def->source->volume, ==, "rep3");
    g_assert_cmpstr(def->source->dir, ==, "/images");
    g_assert_cmpuint(def->source->hosts->len, ==, 3);
    assert_host(def->source, 0, GFPOOL_TRANSPORT_TCP, "gluster1.example.org", 24007, NULL);
    assert_host(def->source, 1, GFPOOL_TRANSPORT_TCP, "gluster2.example.org", 24007, NULL);
    assert_host(def->source, 2, GFPOOL_TRANSPORT_TCP, "gluster3.example.org", 24007, NULL);
}

static void
test_parse_example_transports(void)
{
    g_autofree char *path = repo_path("examples/gluster-pool-transports.xml");
    g_autofree char *xml = NULL;
    g_autoptr(GError) err = NULL;
    g_autoptr(GfpoolPoolDef) def = NULL;
    gsize len;

    g_file_get_contents(path, &xml, &len, &err);
    g_assert_no_error(err);
    def = gfpool_pool_def_parse(xml, len, &err);
    g_assert_no_error(err);
    g_assert_cmpstr(def->source->volume, ==, "rep3");
    /* <gfpool:source> replaces the plain host list. */
    g_assert_cmpuint(def->source->hosts->len, ==, 3);
    assert_host(def->source, 0, GFPOOL_TRANSPORT_UNIX, NULL, 0, "/var/run/glusterd.socket");
    assert_host(def->source, 1, GFPOOL_TRANSPORT_RDMA, "gluster1.example.org", 24007, NULL);
    assert_host(def->source, 2, GFPOOL_TRANSPORT_TCP, "gluster2.example.org", 24007, NULL);
}

static void
test_parse_namespace_by_uri(void)
{
    /* libvirt matches our elements by namespace URI, not by prefix. */
    g_autoptr(GfpoolPoolDef) def = parse_ok(
        "<pool type='gluster' xmlns:x='" GFPOOL_XML_NS "'>"
        "<source><host name='h'/><name>v</name></source>"
        "<x:source><x:host transport='rdma' name='h2'/></x:source></pool>");
    g_autoptr(GfpoolPoolDef) other = parse_ok(
        "<pool type='gluster' xmlns:gfpool='http://example.org/other'>"
        "<source><host name='h'/><name>v</name></source>"
        "<gfpool:source><gfpool:host transport='rdma' name='h2'/></gfpool:source></pool>");

    g_assert_cmpuint(def->source->hosts->len, ==, 1);
    assert_host(def->source, 0, GFPOOL_TRANSPORT_RDMA, "h2", 0, NULL);
    /* Someone else's namespace is not ours: ignored, like libvirt. */
    g_assert_cmpuint(other->source->hosts->len, ==, 1);
    assert_host(other->source, 0, GFPOOL_TRANSPORT_TCP, "h", 0, NULL);
}

typedef struct {
    const char *xml;
    const char *msg;
} BadXml;

#define SRC_OK "<host name='h'/><name>v</name>"

static const BadXml bad_xml[] = {
    { "", "empty" },
    { "<pool type='gluster'>", "not well-formed" },
    { "<pool type='gluster'><name>p</name></poo>", "not well-formed" },
    { "not xml at all", "not well-formed" },
    { "<pool type='gluster'><source>" SRC_OK "</source></pool>trailing", "not well-formed" },
    { "<volume type='gluster'/>", "root element is <volume>, expected <pool>" },
    { "<p:pool xmlns:p='urn:x' type='gluster'/>", "expected <pool>" },
    { "<pool><source>" SRC_OK "</source></pool>", "missing the 'type' attribute" },
    { "<pool type='netfs'><source>" SRC_OK "</source></pool>", "pool type 'netfs' is not 'gluster'" },
    { "<pool type='gluster'><name>p</name></pool>", "has no <source>" },
    { "<pool type='gluster'><source>" SRC_OK "</source><source>" SRC_OK "</source></pool>",
      "more than one <source>" },
    { "<pool type='gluster'><name>p</name><source><host name='h'/></source></pool>",
      "has no <name> (the gluster volume)" },
    { "<pool type='gluster'><name>p</name><source><name>v</name></source></pool>",
      "has no <host>" },
    { "<pool type='gluster'><source><host port='24007'/><name>v</name></source></pool>",
      "missing the 'name' attribute" },
    { "<pool type='gluster'><source><host name='h' port='abc'/><name>v</name></source></pool>",
      "port 'abc' is not a number" },
    { "<pool type='gluster'><source><host name='h' port='99999'/><name>v</name></source></pool>",
      "port 99999 out of range 1-65535" },
    { "<pool type='gluster'><source><host name='h' port='-1'/><name>v</name></source></pool>",
      "port '-1' is not a number" },
    { "<pool type='gluster'><source><host name='h' port='99999999999999999999999'/><name>v</name></source></pool>",
      "out of range" },
    { "<pool type='gluster'><source><host name='h' port='24007x'/><name>v</name></source></pool>",
      "not a number" },
    { "<pool type='gluster'><source><host name='h' port=''/><name>v</name></source></pool>",
      "not a number" },
    { "<pool type='gluster'><source>" SRC_OK "<dir path='/a'/><dir path='/b'/></source></pool>",
      "more than one <dir>" },
    { "<pool type='gluster'><source><host name='h'/><name>v</name><name>w</name></source></pool>",
      "more than one <name>" },
    { "<pool type='gluster'><name>a</name><name>b</name><source>" SRC_OK "</source></pool>",
      "more than one <name>" },
    { "<pool type='gluster'><source>" SRC_OK "<dir/></source></pool>", "missing the 'path'" },
    { "<pool type='gluster'><source>" SRC_OK "<dir path='images'/></source></pool>",
      "directory 'images' must be an absolute path" },
    { "<pool type='gluster'><source>" SRC_OK "<dir path='/a/../b'/></source></pool>",
      "must not contain '..' components" },
    { "<pool type='gluster'><source>" SRC_OK "<dir path='/a/./b'/></source></pool>",
      "must not contain '.' components" },
    { "<pool type='gluster'><source><host name='h'/><name>bad.vol</name></source></pool>",
      "volume name 'bad.vol' contains '.'" },
    { "<pool type='gluster'><source><host name='h'/><name>-vol</name></source></pool>",
      "must not start with '-'" },
    { "<pool type='gluster'><source><host name='h'/><name></name></source></pool>",
      "volume name is missing" },
    { "<pool type='gluster'><source><host name='h'/><name> v </name></source></pool>",
      "contains ' '" },
    { "<pool type='gluster'><source><host name='h_1'/><name>v</name></source></pool>",
      "host 1: server name 'h_1' contains '_'" },
    { "<pool type='gluster'><source><host name=''/><name>v</name></source></pool>",
      "requires a server name" },
    { "<pool type='gluster'><source><host name='1.2.3.256'/><name>v</name></source></pool>",
      "not a valid IPv4 address" },
    { "<pool type='gluster'><source><host name='fe80::1::2'/><name>v</name></source></pool>",
      "not a valid IPv6 address" },
    { "<pool type='gluster'><name>a/b</name><source>" SRC_OK "</source></pool>",
      "pool name 'a/b'" },
    { "<pool type='gluster'><uuid>not-a-uuid</uuid><source>" SRC_OK "</source></pool>",
      "<uuid> 'not-a-uuid' is not a UUID" },
    { "<pool type='gluster' " NS_DECL "><source>" SRC_OK "</source>"
      "<gfpool:source><gfpool:host name='h' transport='sctp'/></gfpool:source></pool>",
      "unknown transport 'sctp'" },
    { "<pool type='gluster' " NS_DECL "><source>" SRC_OK "</source>"
      "<gfpool:source><gfpool:host transport='unix' name='h' socket='/s'/></gfpool:source></pool>",
      "unix transport takes a socket, not a server name ('h')" },
    { "<pool type='gluster' " NS_DECL "><source>" SRC_OK "</source>"
      "<gfpool:source><gfpool:host transport='unix' port='1' socket='/s'/></gfpool:source></pool>",
      "unix transport takes no port" },
    { "<pool type='gluster' " NS_DECL "><source>" SRC_OK "</source>"
      "<gfpool:source><gfpool:host transport='unix'/></gfpool:source></pool>",
      "unix transport requires a socket path" },
    { "<pool type='gluster' " NS_DECL "><source>" SRC_OK "</source>"
      "<gfpool:source><gfpool:host transport='unix' socket='run/s'/></gfpool:source></pool>",
      "socket 'run/s' must be an absolute path" },
    { "<pool type='gluster' " NS_DECL "><source>" SRC_OK "</source>"
      "<gfpool:source><gfpool:host transport='unix' socket='/"
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
      "'/></gfpool:source></pool>",
      "longer than 107 bytes" },
    { "<pool type='gluster' " NS_DECL "><source>" SRC_OK "</source>"
      "<gfpool:source><gfpool:host name='h' socket='/s'/></gfpool:source></pool>",
      "only allowed with the unix transport, not tcp" },
    { "<pool type='gluster' " NS_DECL "><source>" SRC_OK "</source>"
      "<gfpool:source><gfpool:host transport='rdma'/></gfpool:source></pool>",
      "rdma transport requires a server name" },
    { "<pool type='gluster' " NS_DECL "><source>" SRC_OK "</source>"
      "<gfpool:source><gfpool:host name='h' port='70000'/></gfpool:source></pool>",
      "port 70000 out of range" },
    { "<pool type='gluster' " NS_DECL "><source>" SRC_OK "</source>"
      "<gfpool:source/></pool>",
      "lists no <gfpool:host>" },
    { "<pool type='gluster' " NS_DECL "><source>" SRC_OK "</source>"
      "<gfpool:source><gfpool:server name='h'/></gfpool:source></pool>",
      "may only contain <gfpool:host>, not <server>" },
    { "<pool type='gluster' " NS_DECL "><source>" SRC_OK "</source>"
      "<gfpool:source><gfpool:host name='h' tranport='rdma'/></gfpool:source></pool>",
      "unknown attribute 'tranport'" },
    { "<pool type='gluster' " NS_DECL "><source>" SRC_OK "</source>"
      "<gfpool:source><gfpool:host name='h'/></gfpool:source>"
      "<gfpool:source><gfpool:host name='h'/></gfpool:source></pool>",
      "more than one <gfpool:source>" },
    { "<pool type='gluster' " NS_DECL "><source>" SRC_OK "</source>"
      "<gfpool:mount_opts/></pool>",
      "unknown element <gfpool:mount_opts>" },
    /* ns hosts do not excuse the plain <host> libvirt requires. */
    { "<pool type='gluster' " NS_DECL "><source><name>v</name></source>"
      "<gfpool:source><gfpool:host name='h'/></gfpool:source></pool>",
      "has no <host>" },
    { "<!DOCTYPE pool [<!ENTITY v 'vol'>]>"
      "<pool type='gluster'><source><host name='h'/><name>&v;</name></source></pool>",
      "must not contain a <!DOCTYPE>" },
    { "<!DOCTYPE pool SYSTEM 'http://example.org/pool.dtd'>"
      "<pool type='gluster'><source>" SRC_OK "</source></pool>",
      "<!DOCTYPE>" },
    { "<!DOCTYPE pool [<!ENTITY a 'aaaaaaaaaa'><!ENTITY b '&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;'>"
      "<!ENTITY c '&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;'><!ENTITY d '&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;'>]>"
      "<pool type='gluster'><source><host name='h'/><name>&d;</name></source></pool>",
      /* libxml2 may stop it first (entity loop) or we do (DOCTYPE). */
      "pool XML " },
};

static void
test_bad_xml(gconstpointer data)
{
    const BadXml *c = data;
    g_autoptr(GError) err = NULL;
    g_autoptr(GfpoolPoolDef) def = gfpool_pool_def_parse(c->xml, strlen(c->xml), &err);

    g_assert_null(def);
    g_assert_error(err, GFPOOL_CONF_ERROR, GFPOOL_CONF_ERROR_INVALID);
    if (!strstr(err->message, c->msg))
        g_test_fail_printf("error for %s is '%s', expected it to contain '%s'",
                           c->xml, err->message, c->msg);
}

static void
test_parse_null_and_len(void)
{
    g_autoptr(GError) err = NULL;
    static const char xml[] = "<pool type='gluster'><source>" SRC_OK "</source></pool>GARBAGE";
    g_autoptr(GfpoolPoolDef) def = NULL;

    g_assert_null(gfpool_pool_def_parse(NULL, 0, &err));
    g_assert_error(err, GFPOOL_CONF_ERROR, GFPOOL_CONF_ERROR_INVALID);
    g_clear_error(&err);

    /* Only len bytes are read: the garbage after them does not count. */
    def = gfpool_pool_def_parse(xml, strlen(xml) - strlen("GARBAGE"), &err);
    g_assert_no_error(err);
    g_assert_cmpstr(def->source->volume, ==, "v");

    /* A NULL GError** must be fine too. */
    g_assert_null(gfpool_pool_def_parse("<x/>", 4, NULL));
}

static void
count_error(void *data, xmlErrorPtr err G_GNUC_UNUSED)
{
    (*(int *)data)++;
}

static void
test_parse_error_handlers(void)
{
    /* UCS-4 bytes that fail encoding conversion: libxml2 reports those
     * through the global handler. It must neither reach the caller's
     * handler (libvirtd's) nor stay replaced after we return. */
    static const char bad_enc[] = "\0\0\0<\0\0\0\0\x01\x02";
    int calls = 0;
    g_autoptr(GError) err = NULL;

    xmlSetStructuredErrorFunc(&calls, count_error);
    g_assert_null(gfpool_pool_def_parse(bad_enc, sizeof(bad_enc) - 1, &err));
    g_assert_error(err, GFPOOL_CONF_ERROR, GFPOOL_CONF_ERROR_INVALID);
    g_assert_nonnull(strstr(err->message, "not well-formed"));
    g_clear_error(&err);
    g_assert_null(gfpool_pool_def_parse("<pool", 5, &err));
    g_assert_cmpint(calls, ==, 0);
    g_assert_true(xmlStructuredError == count_error);
    g_assert_true(xmlStructuredErrorContext == &calls);
    xmlSetStructuredErrorFunc(NULL, NULL);
}

/* ---- format ---- */

static GfpoolPoolDef *
make_def(const char *name, const char *uuid, const char *volume, const char *dir)
{
    GfpoolPoolDef *def = g_new0(GfpoolPoolDef, 1);

    def->name = g_strdup(name);
    def->uuid = g_strdup(uuid);
    def->source = gfpool_source_new();
    def->source->volume = g_strdup(volume);
    def->source->dir = g_strdup(dir);
    return def;
}

static void
add_host(GfpoolPoolDef *def, GfpoolTransport t, const char *name, int port,
         const char *socket)
{
    g_ptr_array_add(def->source->hosts, gfpool_host_new(t, name, port, socket));
}

static void
roundtrip(const GfpoolPoolDef *def, const char *expect, gboolean libvirt_too)
{
    g_autofree char *xml = gfpool_pool_def_format(def);
    g_autofree char *xml2 = NULL;
    g_autoptr(GfpoolPoolDef) back = NULL;

    if (expect)
        g_assert_cmpstr(xml, ==, expect);
    back = parse_ok(xml);
    assert_defs_equal(def, back);
    xml2 = gfpool_pool_def_format(back);
    g_assert_cmpstr(xml2, ==, xml);
    validate_xml(xml, libvirt_too);
}

static void
test_format_tcp(void)
{
    g_autoptr(GfpoolPoolDef) def = make_def("gluster-pool", "3e3fce45-4f53-4fa7-bb32-11f34168b82b",
                                            "rep3", "/images");

    add_host(def, GFPOOL_TRANSPORT_TCP, "gluster1.example.org", 24007, NULL);
    add_host(def, GFPOOL_TRANSPORT_TCP, "192.0.2.2", 0, NULL);
    add_host(def, GFPOOL_TRANSPORT_TCP, "2001:db8::3", 24008, NULL);
    roundtrip(def,
              "<pool type='gluster'>\n"
              "  <name>gluster-pool</name>\n"
              "  <uuid>3e3fce45-4f53-4fa7-bb32-11f34168b82b</uuid>\n"
              "  <source>\n"
              "    <host name='gluster1.example.org' port='24007'/>\n"
              "    <host name='192.0.2.2'/>\n"
              "    <host name='2001:db8::3' port='24008'/>\n"
              "    <dir path='/images'/>\n"
              "    <name>rep3</name>\n"
              "  </source>\n"
              "</pool>\n",
              TRUE);
}

static void
test_format_root_dir(void)
{
    g_autoptr(GfpoolPoolDef) def = make_def("p", NULL, "v", "/");

    add_host(def, GFPOOL_TRANSPORT_TCP, "h", 0, NULL);
    roundtrip(def, NULL, TRUE);
}

static void
test_format_transports(void)
{
    g_autoptr(GfpoolPoolDef) def = make_def("p", NULL, "rep3", "/a/b");

    add_host(def, GFPOOL_TRANSPORT_UNIX, NULL, 0, "/var/run/glusterd.socket");
    add_host(def, GFPOOL_TRANSPORT_RDMA, "gluster1.example.org", 24007, NULL);
    add_host(def, GFPOOL_TRANSPORT_TCP, "::1", 0, NULL);
    roundtrip(def,
              "<pool type='gluster' " NS_DECL ">\n"
              "  <name>p</name>\n"
              "  <source>\n"
              "    <host name='gluster1.example.org' port='24007'/>\n"
              "    <host name='::1'/>\n"
              "    <dir path='/a/b'/>\n"
              "    <name>rep3</name>\n"
              "  </source>\n"
              "  <gfpool:source>\n"
              "    <gfpool:host transport='unix' socket='/var/run/glusterd.socket'/>\n"
              "    <gfpool:host name='gluster1.example.org' port='24007' transport='rdma'/>\n"
              "    <gfpool:host name='::1' transport='tcp'/>\n"
              "  </gfpool:source>\n"
              "</pool>\n",
              FALSE);
}

static void
test_format_unix_only(void)
{
    g_autoptr(GfpoolPoolDef) def = make_def("p", NULL, "v", "/");
    g_autofree char *xml = NULL;

    add_host(def, GFPOOL_TRANSPORT_UNIX, NULL, 0, "/run/gluster's & <sock>");
    roundtrip(def, NULL, FALSE);

    /* libvirt still gets a named host to be happy with. */
    xml = gfpool_pool_def_format(def);
    g_assert_nonnull(strstr(xml, "<host name='localhost'/>"));
    g_assert_nonnull(strstr(xml, "socket='/run/gluster&apos;s &amp; &lt;sock&gt;'"));
}

static void
test_format_escaping(void)
{
    g_autoptr(GfpoolPoolDef) def = make_def("a<b>&'\"c", NULL, "v", "/d&<x>'");

    add_host(def, GFPOOL_TRANSPORT_TCP, "h", 0, NULL);
    roundtrip(def, NULL, FALSE);
}

static void
test_examples_validate(void)
{
    const char *files[] = { "examples/gluster-pool.xml",
                            "examples/gluster-pool-transports.xml" };

    for (guint i = 0; i < G_N_ELEMENTS(files); i++) {
        g_autofree char *path = repo_path(files[i]);

        if (!validate_rng_file(path))
            return;
    }
    /* The tcp-only example is plain libvirt XML. */
    {
        g_autofree char *path = repo_path(files[0]);
        validate_libvirt_file(path);
    }
}

static void
test_libvirt_dump_validates(void)
{
    validate_xml(libvirt_dump, TRUE);
}

static void
test_schema_rejects(void)
{
    /* Our schema must say no where the parser says no. */
    const char *bad[] = {
        "<pool type='gluster'><source><host name='h'/><name>bad.vol</name></source></pool>",
        "<pool type='gluster'><source><host name='h'/><dir path='/a/../b'/><name>v</name></source></pool>",
        "<pool type='gluster'><source><host name='h'/><dir path='/a/'/><name>v</name></source></pool>",
        "<pool type='gluster' " NS_DECL "><source>" SRC_OK "</source>"
        "<gfpool:source><gfpool:host transport='unix' name='h' socket='/s'/></gfpool:source></pool>",
        "<pool type='gluster' " NS_DECL "><source>" SRC_OK "</source>"
        "<gfpool:source><gfpool:host transport='sctp' name='h'/></gfpool:source></pool>",
        "<pool type='netfs'><source>" SRC_OK "</source></pool>",
    };
    g_autofree char *schema = repo_path("schemas/gluster-pool.rng");
    g_autofree char *xmllint = g_find_program_in_path("xmllint");

    if (!xmllint) {
        g_test_skip("xmllint not installed");
        return;
    }
    for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autofree char *file = write_temp(bad[i]);
        g_autofree char *out = NULL;
        const char *argv[] = { "xmllint", "--noout", "--relaxng", schema, file, NULL };

        if (run_tool(argv, &out))
            g_test_fail_printf("schema accepts %s", bad[i]);
        g_unlink(file);
    }
}

/* ---- validation API ---- */

static void
test_validate_api(void)
{
    g_autoptr(GfpoolSource) src = gfpool_source_new();
    g_autoptr(GError) err = NULL;
    g_autofree char *longname = g_strnfill(256, 'a');
    g_autofree char *maxname = g_strnfill(255, 'a');

    g_assert_false(gfpool_source_validate(src, &err));
    g_assert_error(err, GFPOOL_CONF_ERROR, GFPOOL_CONF_ERROR_INVALID);
    g_clear_error(&err);

    src->volume = g_strdup("vol");
    src->dir = g_strdup("/");
    g_assert_false(gfpool_source_validate(src, &err));
    g_assert_nonnull(strstr(err->message, "at least one host"));
    g_clear_error(&err);

    g_ptr_array_add(src->hosts, gfpool_host_new(GFPOOL_TRANSPORT_TCP, "h", 24007, NULL));
    g_assert_true(gfpool_source_validate(src, &err));
    g_assert_no_error(err);

    g_ptr_array_add(src->hosts, gfpool_host_new(GFPOOL_TRANSPORT_TCP, "h", 65536, NULL));
    g_assert_false(gfpool_source_validate(src, &err));
    g_assert_cmpstr(err->message, ==, "host 2: port 65536 out of range 1-65535");
    g_clear_error(&err);
    g_ptr_array_remove_index(src->hosts, 1);

    g_ptr_array_add(src->hosts, gfpool_host_new(GFPOOL_TRANSPORT_LAST, "h", 0, NULL));
    g_assert_false(gfpool_source_validate(src, &err));
    g_assert_nonnull(strstr(err->message, "not tcp, unix or rdma"));
    g_clear_error(&err);
    g_ptr_array_remove_index(src->hosts, 1);

    g_assert_true(gfpool_gluster_volume_name_validate(maxname, NULL));
    g_assert_false(gfpool_gluster_volume_name_validate(longname, &err));
    g_assert_nonnull(strstr(err->message, "at most 255"));
    g_clear_error(&err);
    g_assert_true(gfpool_gluster_volume_name_validate("My_Vol-2", NULL));
    g_assert_false(gfpool_gluster_volume_name_validate("volume", NULL));
    g_assert_false(gfpool_gluster_volume_name_validate("a/b", NULL));
    g_assert_false(gfpool_gluster_volume_name_validate(NULL, NULL));

    g_assert_true(gfpool_dir_validate("/", NULL));
    g_assert_true(gfpool_dir_validate("/a/b.c/..d/.e", NULL));
    g_assert_false(gfpool_dir_validate("", NULL));
    g_assert_false(gfpool_dir_validate(NULL, NULL));
    g_assert_false(gfpool_dir_validate("//", NULL));
    g_assert_false(gfpool_dir_validate("/a//b", NULL));
    g_assert_false(gfpool_dir_validate("/a/", NULL));
    g_assert_false(gfpool_dir_validate("/..", NULL));
    g_assert_false(gfpool_dir_validate("/a\nb", NULL));

    {
        g_autoptr(GfpoolHost) h1 = gfpool_host_new(GFPOOL_TRANSPORT_TCP, "host.example.org.", 0, NULL);
        g_autoptr(GfpoolHost) h2 = gfpool_host_new(GFPOOL_TRANSPORT_TCP, "a.-b", 0, NULL);
        g_autofree char *label = g_strnfill(64, 'x');
        g_autoptr(GfpoolHost) h3 = gfpool_host_new(GFPOOL_TRANSPORT_TCP, label, 0, NULL);
        g_autoptr(GfpoolHost) h4 = gfpool_host_new(GFPOOL_TRANSPORT_RDMA, "::ffff:192.0.2.1", 1, NULL);
        g_autoptr(GfpoolHost) h5 = gfpool_host_new(GFPOOL_TRANSPORT_TCP, "h", -5, NULL);

        g_assert_true(gfpool_host_validate(h1, NULL));
        g_assert_false(gfpool_host_validate(h2, NULL));
        g_assert_false(gfpool_host_validate(h3, NULL));
        g_assert_true(gfpool_host_validate(h4, NULL));
        g_assert_false(gfpool_host_validate(h5, NULL));
    }
}

static void
test_dir_sanitize(void)
{
    static const char *const cases[][2] = {
        { "/", "/" }, { "//", "/" }, { "///", "/" }, { "/a/", "/a" },
        { "//a//b//", "/a/b" }, { "/a/./b", "/a/./b" }, { "a/", "a" }, { "", "" },
    };
    g_autofree char *null_dir = gfpool_dir_sanitize(NULL);

    g_assert_cmpstr(null_dir, ==, "/");
    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *s = gfpool_dir_sanitize(cases[i][0]);
        g_assert_cmpstr(s, ==, cases[i][1]);
    }
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);

    g_test_add_func("/pool-xml/parse/libvirt-dump", test_parse_libvirt_dump);
    g_test_add_func("/pool-xml/parse/defaults", test_parse_defaults);
    g_test_add_func("/pool-xml/parse/example", test_parse_example);
    g_test_add_func("/pool-xml/parse/example-transports", test_parse_example_transports);
    g_test_add_func("/pool-xml/parse/namespace-by-uri", test_parse_namespace_by_uri);
    g_test_add_func("/pool-xml/parse/null-and-len", test_parse_null_and_len);
    g_test_add_func("/pool-xml/parse/error-handlers", test_parse_error_handlers);
    for (gsize i = 0; i < G_N_ELEMENTS(bad_xml); i++) {
        g_autofree char *name = g_strdup_printf("/pool-xml/bad/%02zu", i);
        g_test_add_data_func(name, &bad_xml[i], test_bad_xml);
    }
    g_test_add_func("/pool-xml/format/tcp", test_format_tcp);
    g_test_add_func("/pool-xml/format/root-dir", test_format_root_dir);
    g_test_add_func("/pool-xml/format/transports", test_format_transports);
    g_test_add_func("/pool-xml/format/unix-only", test_format_unix_only);
    g_test_add_func("/pool-xml/format/escaping", test_format_escaping);
    g_test_add_func("/pool-xml/schema/examples", test_examples_validate);
    g_test_add_func("/pool-xml/schema/libvirt-dump", test_libvirt_dump_validates);
    g_test_add_func("/pool-xml/schema/rejects", test_schema_rejects);
    g_test_add_func("/pool-xml/validate/api", test_validate_api);
    g_test_add_func("/pool-xml/validate/dir-sanitize", test_dir_sanitize);

    return g_test_run();
}
