/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test_pool_xml.c: <pool type='gluster'> parse/format, source validation,
 * and the formatted documents checked against our RelaxNG schema and
 * libvirt's own (virt-xml-validate).
 *
 * The documents are files in pool_xml/, one case a line in main(), as
 * libvirt's storagepoolxml2xmltest keeps them:
 *   format-NAME.xml      parsed and formatted: the result is
 *                        format-NAME.out.xml, parses back to the same
 *                        definition and validates against the schemas
 *   bad-NAME.xml         refused; the error contains bad-NAME.err's line
 *   parse-NAME.xml       read field by field by a test below
 *   schema-bad-NAME.xml  refused by our schema (see test_schema_rejects)
 */
#include <string.h>

#include <libxml/globals.h>
#include <libxml/xmlerror.h>

#include "gfpool_pool_xml.h"

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

static char *
case_path(const char *file)
{
    g_autofree char *rel = g_build_filename("tests", "unit", "pool_xml", file, NULL);

    return repo_path(rel);
}

static char *
read_case(const char *file, gsize *len)
{
    g_autofree char *path = case_path(file);
    g_autoptr(GError) err = NULL;
    char *text = NULL;

    g_file_get_contents(path, &text, len, &err);
    g_assert_no_error(err);
    return text;
}

static GfpoolPoolDef *
parse_ok(const char *xml, gsize len)
{
    g_autoptr(GError) err = NULL;
    GfpoolPoolDef *def = gfpool_pool_def_parse(xml, len, &err);

    g_assert_no_error(err);
    g_assert_nonnull(def);
    return def;
}

static GfpoolPoolDef *
parse_case(const char *file)
{
    gsize len;
    g_autofree char *xml = read_case(file, &len);

    return parse_ok(xml, len);
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

/* ---- parse ---- */

static void
test_parse_libvirt_dump(void)
{
    /* As `virsh pool-dumpxml` prints a gluster pool. */
    g_autoptr(GfpoolPoolDef) def = parse_case("parse-libvirt-dump.xml");

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
    g_autoptr(GfpoolPoolDef) a = parse_case("parse-defaults-no-dir.xml");
    g_autoptr(GfpoolPoolDef) b = parse_case("parse-defaults-dir-slashes.xml");

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
    g_autoptr(GfpoolPoolDef) def = parse_case("parse-ns-by-uri.xml");
    g_autoptr(GfpoolPoolDef) other = parse_case("parse-ns-foreign.xml");

    g_assert_cmpuint(def->source->hosts->len, ==, 1);
    assert_host(def->source, 0, GFPOOL_TRANSPORT_RDMA, "h2", 0, NULL);
    /* Someone else's namespace is not ours: ignored, like libvirt. */
    g_assert_cmpuint(other->source->hosts->len, ==, 1);
    assert_host(other->source, 0, GFPOOL_TRANSPORT_TCP, "h", 0, NULL);
}

/* data: the case's name without extension, "bad-NAME" */
static void
test_bad(gconstpointer data)
{
    const char *name = data;
    g_autofree char *in = g_strconcat(name, ".xml", NULL);
    g_autofree char *err_file = g_strconcat(name, ".err", NULL);
    gsize len;
    g_autofree char *xml = read_case(in, &len);
    g_autofree char *msg = g_strchomp(read_case(err_file, NULL));
    g_autoptr(GError) err = NULL;
    g_autoptr(GfpoolPoolDef) def = gfpool_pool_def_parse(xml, len, &err);

    g_assert_null(def);
    g_assert_error(err, GFPOOL_CONF_ERROR, GFPOOL_CONF_ERROR_INVALID);
    if (!strstr(err->message, msg))
        g_test_fail_printf("error for %s is '%s', expected it to contain '%s'",
                           in, err->message, msg);
}

static void
test_parse_null_and_len(void)
{
    g_autoptr(GError) err = NULL;
    static const char xml[] =
        "<pool type='gluster'><source><host name='h'/><name>v</name></source></pool>GARBAGE";
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

typedef enum {
    FORMAT_LIBVIRT_SCHEMA = 1 << 0,   /* libvirt's schema accepts the output too */
} FormatFlags;

typedef struct {
    const char *name;   /* "format-NAME" */
    FormatFlags flags;
} FormatCase;

static void
test_format(gconstpointer data)
{
    const FormatCase *c = data;
    g_autofree char *in = g_strconcat(c->name, ".xml", NULL);
    g_autofree char *out = g_strconcat(c->name, ".out.xml", NULL);
    g_autofree char *out_path = case_path(out);
    g_autofree char *expect = read_case(out, NULL);
    g_autoptr(GfpoolPoolDef) def = parse_case(in);
    g_autofree char *xml = gfpool_pool_def_format(def);
    g_autoptr(GfpoolPoolDef) back = NULL;
    g_autofree char *xml2 = NULL;

    g_assert_cmpstr(xml, ==, expect);
    back = parse_ok(xml, strlen(xml));
    assert_defs_equal(def, back);
    xml2 = gfpool_pool_def_format(back);
    g_assert_cmpstr(xml2, ==, xml);

    validate_rng_file(out_path);
    if (c->flags & FORMAT_LIBVIRT_SCHEMA)
        validate_libvirt_file(out_path);
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
    g_autofree char *path = case_path("parse-libvirt-dump.xml");

    validate_rng_file(path);
    validate_libvirt_file(path);
}

static void
test_schema_rejects(void)
{
    /* Our schema must say no where the parser says no, and to the
     * trailing '/' that the parser forgives. */
    static const char *const files[] = {
        "bad-volume-dot.xml",
        "bad-dir-dotdot.xml",
        "schema-bad-dir-trailing-slash.xml",
        "bad-unix-name.xml",
        "bad-transport-sctp.xml",
        "bad-type-netfs.xml",
    };
    g_autofree char *schema = repo_path("schemas/gluster-pool.rng");
    g_autofree char *xmllint = g_find_program_in_path("xmllint");

    if (!xmllint) {
        g_test_skip("xmllint not installed");
        return;
    }
    for (guint i = 0; i < G_N_ELEMENTS(files); i++) {
        g_autofree char *file = case_path(files[i]);
        g_autofree char *out = NULL;
        const char *argv[] = { "xmllint", "--noout", "--relaxng", schema, file, NULL };

        if (run_tool(argv, &out))
            g_test_fail_printf("schema accepts %s", file);
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

#define DO_TEST_BAD(name) \
    g_test_add_data_func("/pool-xml/bad/" name, "bad-" name, test_bad)

#define DO_TEST_FORMAT(name, flags) \
    do { \
        static const FormatCase c = { "format-" name, flags }; \
        g_test_add_data_func("/pool-xml/format/" name, &c, test_format); \
    } while (0)

    g_test_add_func("/pool-xml/parse/libvirt-dump", test_parse_libvirt_dump);
    g_test_add_func("/pool-xml/parse/defaults", test_parse_defaults);
    g_test_add_func("/pool-xml/parse/example", test_parse_example);
    g_test_add_func("/pool-xml/parse/example-transports", test_parse_example_transports);
    g_test_add_func("/pool-xml/parse/namespace-by-uri", test_parse_namespace_by_uri);
    g_test_add_func("/pool-xml/parse/null-and-len", test_parse_null_and_len);
    g_test_add_func("/pool-xml/parse/error-handlers", test_parse_error_handlers);

    DO_TEST_BAD("empty");
    DO_TEST_BAD("unclosed");
    DO_TEST_BAD("mismatched-tag");
    DO_TEST_BAD("not-xml");
    DO_TEST_BAD("trailing-text");
    DO_TEST_BAD("root-volume");
    DO_TEST_BAD("root-foreign-ns");
    DO_TEST_BAD("no-type");
    DO_TEST_BAD("type-netfs");
    DO_TEST_BAD("no-source");
    DO_TEST_BAD("two-sources");
    DO_TEST_BAD("no-volume");
    DO_TEST_BAD("no-host");
    DO_TEST_BAD("host-no-name");
    DO_TEST_BAD("port-text");
    DO_TEST_BAD("port-range");
    DO_TEST_BAD("port-negative");
    DO_TEST_BAD("port-overflow");
    DO_TEST_BAD("port-suffix");
    DO_TEST_BAD("port-empty");
    DO_TEST_BAD("two-dirs");
    DO_TEST_BAD("two-volumes");
    DO_TEST_BAD("two-names");
    DO_TEST_BAD("dir-no-path");
    DO_TEST_BAD("dir-relative");
    DO_TEST_BAD("dir-dotdot");
    DO_TEST_BAD("dir-dot");
    DO_TEST_BAD("volume-dot");
    DO_TEST_BAD("volume-dash");
    DO_TEST_BAD("volume-empty");
    DO_TEST_BAD("volume-space");
    DO_TEST_BAD("host-underscore");
    DO_TEST_BAD("host-empty");
    DO_TEST_BAD("host-ipv4");
    DO_TEST_BAD("host-ipv6");
    DO_TEST_BAD("name-slash");
    DO_TEST_BAD("uuid");
    DO_TEST_BAD("transport-sctp");
    DO_TEST_BAD("unix-name");
    DO_TEST_BAD("unix-port");
    DO_TEST_BAD("unix-no-socket");
    DO_TEST_BAD("unix-socket-relative");
    DO_TEST_BAD("unix-socket-long");
    DO_TEST_BAD("tcp-socket");
    DO_TEST_BAD("rdma-no-name");
    DO_TEST_BAD("ns-port-range");
    DO_TEST_BAD("ns-no-host");
    DO_TEST_BAD("ns-server");
    DO_TEST_BAD("ns-attr-typo");
    DO_TEST_BAD("ns-two-sources");
    DO_TEST_BAD("ns-unknown-element");
    /* <gfpool:host>s do not excuse the plain <host> libvirt requires. */
    DO_TEST_BAD("ns-only-hosts");
    DO_TEST_BAD("doctype-entity");
    DO_TEST_BAD("doctype-system");
    /* libxml2 may stop it first (entity loop) or we do (DOCTYPE). */
    DO_TEST_BAD("entity-expansion");

    DO_TEST_FORMAT("tcp", FORMAT_LIBVIRT_SCHEMA);
    DO_TEST_FORMAT("root-dir", FORMAT_LIBVIRT_SCHEMA);
    /* libvirt's schema has no room for <gfpool:source>. */
    DO_TEST_FORMAT("transports", 0);
    /* The plain <host> libvirt requires comes out as localhost. */
    DO_TEST_FORMAT("unix-only", 0);
    DO_TEST_FORMAT("escaping", 0);

    g_test_add_func("/pool-xml/schema/examples", test_examples_validate);
    g_test_add_func("/pool-xml/schema/libvirt-dump", test_libvirt_dump_validates);
    g_test_add_func("/pool-xml/schema/rejects", test_schema_rejects);
    g_test_add_func("/pool-xml/validate/api", test_validate_api);
    g_test_add_func("/pool-xml/validate/dir-sanitize", test_dir_sanitize);

    return g_test_run();
}
