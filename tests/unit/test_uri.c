/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test_uri.c: QEMU's gluster URI grammar, parse/format round trips,
 * malformed input, and libvirt-identical volume keys.
 */
#include <string.h>

#include "gfpool_uri.h"
#include "gfpool_pool_xml.h"

typedef struct {
    const char *uri;
    GfpoolTransport transport;
    const char *name;
    int port;
    const char *socket;
    const char *volume;
    const char *path;
    const char *canonical;   /* NULL: same as uri */
} GoodCase;

static const GoodCase good_cases[] = {
    /* Every example in QEMU's block/gluster.c and qemu-block-drivers docs. */
    { "gluster://1.2.3.4/testvol/a.img",
      GFPOOL_TRANSPORT_TCP, "1.2.3.4", 0, NULL, "testvol", "a.img", NULL },
    { "gluster://192.0.2.1/testvol/a.img",
      GFPOOL_TRANSPORT_TCP, "192.0.2.1", 0, NULL, "testvol", "a.img", NULL },
    { "gluster+tcp://1.2.3.4/testvol/a.img",
      GFPOOL_TRANSPORT_TCP, "1.2.3.4", 0, NULL, "testvol", "a.img",
      "gluster://1.2.3.4/testvol/a.img" },
    { "gluster+tcp://1.2.3.4:24007/testvol/dir/a.img",
      GFPOOL_TRANSPORT_TCP, "1.2.3.4", 24007, NULL, "testvol", "dir/a.img",
      "gluster://1.2.3.4:24007/testvol/dir/a.img" },
    { "gluster+tcp://[1:2:3:4:5:6:7:8]/testvol/dir/a.img",
      GFPOOL_TRANSPORT_TCP, "1:2:3:4:5:6:7:8", 0, NULL, "testvol", "dir/a.img",
      "gluster://[1:2:3:4:5:6:7:8]/testvol/dir/a.img" },
    { "gluster+tcp://[1:2:3:4:5:6:7:8]:24007/testvol/dir/a.img",
      GFPOOL_TRANSPORT_TCP, "1:2:3:4:5:6:7:8", 24007, NULL, "testvol", "dir/a.img",
      "gluster://[1:2:3:4:5:6:7:8]:24007/testvol/dir/a.img" },
    { "gluster+tcp://server.domain.com:24007/testvol/dir/a.img",
      GFPOOL_TRANSPORT_TCP, "server.domain.com", 24007, NULL, "testvol", "dir/a.img",
      "gluster://server.domain.com:24007/testvol/dir/a.img" },
    { "gluster+tcp://host.domain.com:24007/testvol/dir/a.img",
      GFPOOL_TRANSPORT_TCP, "host.domain.com", 24007, NULL, "testvol", "dir/a.img",
      "gluster://host.domain.com:24007/testvol/dir/a.img" },
    { "gluster+unix:///testvol/dir/a.img?socket=/tmp/glusterd.socket",
      GFPOOL_TRANSPORT_UNIX, NULL, 0, "/tmp/glusterd.socket", "testvol", "dir/a.img", NULL },
    { "gluster+rdma://1.2.3.4:24007/testvol/a.img",
      GFPOOL_TRANSPORT_RDMA, "1.2.3.4", 24007, NULL, "testvol", "a.img", NULL },
    /* Ours. */
    { "gluster://[::1]:24007/vol/img",
      GFPOOL_TRANSPORT_TCP, "::1", 24007, NULL, "vol", "img", NULL },
    { "gluster+rdma://[fe80::1]/vol/img",
      GFPOOL_TRANSPORT_RDMA, "fe80::1", 0, NULL, "vol", "img", NULL },
    { "gluster://h/rep3/a/b/c/disk.qcow2",
      GFPOOL_TRANSPORT_TCP, "h", 0, NULL, "rep3", "a/b/c/disk.qcow2", NULL },
    { "gluster://gluster1.example.org:65535/my_vol-1/x.raw",
      GFPOOL_TRANSPORT_TCP, "gluster1.example.org", 65535, NULL, "my_vol-1", "x.raw", NULL },
    { "gluster://h:1/v/i", GFPOOL_TRANSPORT_TCP, "h", 1, NULL, "v", "i", NULL },
    /* Port 0 is "not given", as in QEMU. */
    { "gluster://h:0/v/i", GFPOOL_TRANSPORT_TCP, "h", 0, NULL, "v", "i",
      "gluster://h/v/i" },
    /* No server: QEMU uses localhost. */
    { "gluster:///v/i", GFPOOL_TRANSPORT_TCP, "localhost", 0, NULL, "v", "i",
      "gluster://localhost/v/i" },
    /* Percent-decoding, and escaping on the way out. */
    { "gluster://h/v/my%20disk.img",
      GFPOOL_TRANSPORT_TCP, "h", 0, NULL, "v", "my disk.img", NULL },
    { "gluster://h/v/%41%62c%3a%40.img",
      GFPOOL_TRANSPORT_TCP, "h", 0, NULL, "v", "Abc:@.img",
      "gluster://h/v/Abc:@.img" },
    { "gluster://h/v/100%25%23%3F%5B%5D.img",
      GFPOOL_TRANSPORT_TCP, "h", 0, NULL, "v", "100%#?[].img", NULL },
    { "gluster://h/v/caf%C3%A9.img",
      GFPOOL_TRANSPORT_TCP, "h", 0, NULL, "v", "caf\xc3\xa9.img", NULL },
    { "gluster+unix:///v/i?socket=/run/gluster%20d.sock",
      GFPOOL_TRANSPORT_UNIX, NULL, 0, "/run/gluster d.sock", "v", "i", NULL },
    { "gluster+unix:///v/i?socket=/run/a%26b%3Dc%3B.sock",
      GFPOOL_TRANSPORT_UNIX, NULL, 0, "/run/a&b=c;.sock", "v", "i", NULL },
    { "gluster://h/v/i?", GFPOOL_TRANSPORT_TCP, "h", 0, NULL, "v", "i",
      "gluster://h/v/i" },
    { "gluster://h/v/a~b!$&'()*+,;=.img",
      GFPOOL_TRANSPORT_TCP, "h", 0, NULL, "v", "a~b!$&'()*+,;=.img", NULL },
};

static void
check_fields(const GfpoolUri *u, const GoodCase *c)
{
    g_assert_nonnull(u);
    g_assert_cmpint(u->host->transport, ==, c->transport);
    g_assert_cmpstr(u->host->name, ==, c->name);
    g_assert_cmpint(u->host->port, ==, c->port);
    g_assert_cmpstr(u->host->socket, ==, c->socket);
    g_assert_cmpstr(u->volume, ==, c->volume);
    g_assert_cmpstr(u->path, ==, c->path);
}

static void
test_good(gconstpointer data)
{
    const GoodCase *c = data;
    g_autoptr(GError) err = NULL;
    g_autoptr(GfpoolUri) u = NULL;
    g_autoptr(GfpoolUri) u2 = NULL;
    g_autofree char *s = NULL;
    g_autofree char *s2 = NULL;

    u = gfpool_uri_parse(c->uri, &err);
    g_assert_no_error(err);
    check_fields(u, c);

    s = gfpool_uri_format(u);
    g_assert_cmpstr(s, ==, c->canonical ? c->canonical : c->uri);

    u2 = gfpool_uri_parse(s, &err);
    g_assert_no_error(err);
    check_fields(u2, c);
    s2 = gfpool_uri_format(u2);
    g_assert_cmpstr(s2, ==, s);
}

typedef struct {
    const char *uri;
    const char *msg;   /* substring the error must contain */
} BadCase;

static const BadCase bad_cases[] = {
    { "", "empty string" },
    { "gluster://h/vol", "missing image path" },
    { "gluster://h/vol/", "missing image path" },
    { "gluster://h/", "missing volume name" },
    { "gluster://h//img", "missing volume name" },
    { "gluster://h", "missing /volume/image" },
    { "gluster://h?socket=/s", "missing /volume/image" },
    { "gluster://h:99999/v/i", "port 99999 out of range 1-65535" },
    { "gluster://h:65536/v/i", "port 65536 out of range 1-65535" },
    { "gluster://h:123456789012345678901234567890/v/i", "out of range 1-65535" },
    { "gluster://h:abc/v/i", "port 'abc' is not a number" },
    { "gluster://h:-1/v/i", "port '-1' is not a number" },
    { "gluster://h:/v/i", "empty port" },
    { "gluster+unix://h/v/i?socket=/s", "gluster+unix takes no server" },
    { "gluster+unix://:24007/v/i?socket=/s", "gluster+unix takes no server" },
    { "gluster+unix:///v/i", "requires a ?socket=PATH" },
    { "gluster+unix:///v/i?socket=run/s", "must be an absolute path" },
    { "gluster+unix:///v/i?socket=", "requires a socket path" },
    { "gluster+tcp://h/v/i?socket=/s", "only allowed with gluster+unix, not tcp" },
    { "gluster://h/v/i?socket=/s", "only allowed with gluster+unix" },
    { "gluster+rdma://h/v/i?socket=/s", "only allowed with gluster+unix, not rdma" },
    { "gluster+unix:///v/i?socket=/s&socket=/t", "given twice" },
    { "gluster+unix:///v/i?socket=/s&debug=9", "unknown query parameter 'debug'" },
    { "gluster://h/v/i?transport=tcp", "unknown query parameter 'transport'" },
    { "gluster+unix:///v/i?socket", "has no value" },
    { "gluster+foo://h/v/i", "unknown transport 'foo'" },
    { "gluster+://h/v/i", "unknown transport ''" },
    { "gluster+TCP://h/v/i", "unknown transport 'TCP'" },
    { "gluster://[::1/v/i", "without a closing ']'" },
    { "gluster://[::1]x/v/i", "unexpected 'x' after ']'" },
    { "gluster://::1/v/i", "must be in brackets" },
    { "gluster://::1:24007/v/i", "must be in brackets" },
    { "gluster://::1]/v/i", "without an opening '['" },
    { "gluster://h]/v/i", "without an opening '['" },
    { "gluster://[h]/v/i", "only IPv6 addresses go in brackets" },
    { "gluster://[1:2:3]/v/i", "not a valid IPv6 address" },
    { "gluster://[]/v/i", "only IPv6" },
    { "http://h/v/i", "scheme 'http' is not gluster" },
    { "GLUSTER://h/v/i", "scheme 'GLUSTER'" },
    { "nbd+unix:///v/i?socket=/s", "scheme 'nbd+unix'" },
    { "gluster:/h/v/i", "expected gluster" },
    { "gluster", "expected gluster" },
    { "/v/i", "expected gluster" },
    { "gluster://h/v/i#frag", "fragments ('#') are not allowed" },
    { "gluster://h/v/i img", "character 0x20" },
    { "gluster://h/v/i\n", "character 0x0a" },
    { "gluster://h/v/i\"", "must be %-escaped" },
    { "gluster://h/v/%00", "escaped NUL (%00)" },
    { "gluster://h/v/a%00b.img", "escaped NUL" },
    { "gluster+unix:///v/i?socket=/s%00x", "escaped NUL" },
    { "gluster://h/v/a%0Ab", "control character 0x0a" },
    { "gluster://h/v/%zz", "invalid %-escape '%zz'" },
    { "gluster://h/v/i%4", "truncated %-escape" },
    { "gluster://h/v/i%", "truncated %-escape" },
    { "gluster://h/v/../etc/passwd", "must not contain '..' components" },
    { "gluster://h/v/%2E%2E/x", "must not contain '..' components" },
    { "gluster://h/v/a/%2e%2e", "must not contain '..'" },
    { "gluster://h/v/./x", "must not contain '.' components" },
    { "gluster://h/v/a//b", "empty component" },
    { "gluster://h/v/a/", "empty component" },
    { "gluster://h/v/a%2F", "empty component" },
    { "gluster://h/v.x/i", "contains '.'" },
    { "gluster://h/-v/i", "must not start with '-'" },
    { "gluster://h/%2E%2E/i", "volume name '..' contains '.'" },
    { "gluster://h/all/i", "'all' is reserved" },
    { "gluster://user@h/v/i", "user information" },
    { "gluster://h%41/v/i", "must not be %-escaped" },
    { "gluster://h_x/v/i", "contains '_'" },
    { "gluster://-h/v/i", "starting or ending with '-'" },
    { "gluster://a..b/v/i", "label of 0 characters" },
    { "gluster://1.2.3.999/v/i", "not a valid IPv4 address" },
};

static void
test_bad(gconstpointer data)
{
    const BadCase *c = data;
    g_autoptr(GError) err = NULL;
    g_autoptr(GfpoolUri) u = gfpool_uri_parse(c->uri, &err);

    g_assert_null(u);
    g_assert_error(err, GFPOOL_CONF_ERROR, GFPOOL_CONF_ERROR_INVALID);
    if (!strstr(err->message, c->msg)) {
        g_test_fail_printf("error for '%s' is '%s', expected it to contain '%s'",
                           c->uri, err->message, c->msg);
        return;
    }
    /* Every message names the URI it rejects. */
    if (*c->uri && !strchr(c->uri, '\n'))
        g_assert_nonnull(strstr(err->message, c->uri));
}

static void
test_error_message_format(void)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GfpoolUri) u = gfpool_uri_parse("gluster://h:99999/v/i", &err);

    g_assert_null(u);
    g_assert_cmpstr(err->message, ==,
                    "invalid gluster URI 'gluster://h:99999/v/i': port 99999 out of range 1-65535");
}

static void
test_null(void)
{
    g_autoptr(GError) err = NULL;

    g_assert_null(gfpool_uri_parse(NULL, &err));
    g_assert_error(err, GFPOOL_CONF_ERROR, GFPOOL_CONF_ERROR_INVALID);
    /* A NULL GError** must be fine too. */
    g_assert_null(gfpool_uri_parse("gluster://h/v", NULL));
}

static void
test_embedded_nul(void)
{
    /* A C string stops at the NUL: what is left must still be judged. */
    static const char raw[] = "gluster://h/v\0/i";
    g_autoptr(GError) err = NULL;
    g_autoptr(GfpoolUri) u = gfpool_uri_parse(raw, &err);

    g_assert_null(u);
    g_assert_error(err, GFPOOL_CONF_ERROR, GFPOOL_CONF_ERROR_INVALID);
    g_assert_nonnull(strstr(err->message, "missing image path"));
}

static void
test_format_built(void)
{
    /* Values built by code, not parsed: escaping must make them parse. */
    GfpoolUri u = { 0 };
    g_autoptr(GfpoolUri) back = NULL;
    g_autoptr(GError) err = NULL;
    g_autofree char *s = NULL;

    u.host = gfpool_host_new(GFPOOL_TRANSPORT_UNIX, NULL, 0, "/run/a b&c=d#e?.sock");
    u.volume = g_strdup("vol");
    u.path = g_strdup("dir/x y#z?%.img");
    s = gfpool_uri_format(&u);
    g_assert_cmpstr(s, ==,
                    "gluster+unix:///vol/dir/x%20y%23z%3F%25.img"
                    "?socket=/run/a%20b%26c%3Dd%23e%3F.sock");
    back = gfpool_uri_parse(s, &err);
    g_assert_no_error(err);
    g_assert_cmpstr(back->path, ==, u.path);
    g_assert_cmpstr(back->host->socket, ==, u.host->socket);
    gfpool_host_free(u.host);
    g_free(u.volume);
    g_free(u.path);
}

typedef struct {
    GfpoolTransport transport;
    const char *name;
    int port;
    const char *socket;
    const char *dir;
    const char *image;
    const char *expect;
} VolCase;

/* Expected strings follow libvirt 9.0 virStorageBackendGlusterSetMetadata:
 * virURIFormat of gluster://SERVER[:PORT]/VOL DIR/ NAME. */
static const VolCase vol_cases[] = {
    { GFPOOL_TRANSPORT_TCP, "gluster1.example.org", 24007, NULL, "/images", "a.qcow2",
      "gluster://gluster1.example.org:24007/rep3/images/a.qcow2" },
    { GFPOOL_TRANSPORT_TCP, "gluster1.example.org", 0, NULL, "/images", "a.qcow2",
      "gluster://gluster1.example.org/rep3/images/a.qcow2" },
    { GFPOOL_TRANSPORT_TCP, "10.0.0.1", 0, NULL, "/", "a.img",
      "gluster://10.0.0.1/rep3/a.img" },
    { GFPOOL_TRANSPORT_TCP, "10.0.0.1", 0, NULL, NULL, "a.img",
      "gluster://10.0.0.1/rep3/a.img" },
    { GFPOOL_TRANSPORT_TCP, "10.0.0.1", 24007, NULL, "/a/b/", "a.img",
      "gluster://10.0.0.1:24007/rep3/a/b/a.img" },
    { GFPOOL_TRANSPORT_TCP, "::1", 24007, NULL, "/d", "a.img",
      "gluster://[::1]:24007/rep3/d/a.img" },
    /* libvirt (xmlSaveUri) escapes ':' and ' ' but not '@', '&' or ','. */
    { GFPOOL_TRANSPORT_TCP, "h", 0, NULL, "/d", "a b:c@d&e,f.img",
      "gluster://h/rep3/d/a%20b%3Ac@d&e,f.img" },
    { GFPOOL_TRANSPORT_RDMA, "h", 24008, NULL, "/d", "a.img",
      "gluster+rdma://h:24008/rep3/d/a.img" },
    { GFPOOL_TRANSPORT_UNIX, NULL, 0, "/run/glusterd.socket", "/", "a.img",
      "gluster+unix:///rep3/a.img?socket=/run/glusterd.socket" },
};

static void
test_for_volume(gconstpointer data)
{
    const VolCase *c = data;
    g_autoptr(GfpoolHost) h = gfpool_host_new(c->transport, c->name, c->port, c->socket);
    g_autofree char *s = gfpool_uri_for_volume(h, "rep3", c->dir, c->image);
    g_autoptr(GError) err = NULL;
    g_autoptr(GfpoolUri) back = NULL;

    g_assert_cmpstr(s, ==, c->expect);

    /* The key is itself a URI we (and QEMU) accept. */
    back = gfpool_uri_parse(s, &err);
    g_assert_no_error(err);
    g_assert_cmpstr(back->volume, ==, "rep3");
    g_assert_true(g_str_has_suffix(back->path, c->image));
    g_assert_cmpint(back->host->transport, ==, c->transport);
    g_assert_cmpint(back->host->port, ==, c->port);
}

/* Backing files as images hold them -> the pool volume they name. */
static void
test_pool_volume_name(void)
{
    g_autoptr(GfpoolSource) src = gfpool_source_new();
    static const struct {
        const char *backing;
        const char *want;
    } cases[] = {
        { "base.qcow2", "base.qcow2" },
        { "..", NULL },
        { "/images/base.qcow2", NULL },
        { "gluster://g1/rep3/images/base.qcow2", "base.qcow2" },
        { "gluster://g2:24007/rep3/images/base.qcow2", "base.qcow2" },
        { "gluster://g1/rep3/other/base.qcow2", NULL },
        { "gluster://g1/rep3/images/sub/base.qcow2", NULL },
        { "gluster://elsewhere/rep3/images/base.qcow2", NULL },
        { "gluster://g1/other/images/base.qcow2", NULL },
        /* what libvirt writes for a snapshot's overlay on a 3-host pool */
        { "json:{\"file\":{\"driver\":\"gluster\",\"volume\":\"rep3\","
          "\"path\":\"images/base.qcow2\",\"server\":[{\"type\":\"inet\","
          "\"host\":\"g1\",\"port\":\"24007\"},{\"type\":\"inet\",\"host\":\"g2\","
          "\"port\":\"24007\"}]}}", "base.qcow2" },
        { "json:{\"driver\": \"qcow2\", \"file\": {\"driver\": \"gluster\", "
          "\"volume\": \"rep3\", \"path\": \"/images/b.img\", "
          "\"server\": [{\"type\": \"inet\", \"host\": \"g3\"}]}}", "b.img" },
        /* another cluster, volume or directory; not gluster; odd JSON */
        { "json:{\"file\":{\"driver\":\"gluster\",\"volume\":\"rep3\","
          "\"path\":\"images/base.qcow2\",\"server\":[{\"host\":\"x\"}]}}", NULL },
        { "json:{\"file\":{\"driver\":\"gluster\",\"volume\":\"rep4\","
          "\"path\":\"images/base.qcow2\"}}", NULL },
        { "json:{\"file\":{\"driver\":\"gluster\",\"volume\":\"rep3\","
          "\"path\":\"images/../base.qcow2\"}}", NULL },
        { "json:{\"file\":{\"driver\":\"file\",\"filename\":\"/images/base.qcow2\"}}",
          NULL },
        { "json:{\"file\":{\"driver\":\"gluster\",\"volume\":\"rep3\","
          "\"path\":\"images/a\",\"path\":\"images/b\"}}", NULL },
        { "json:{\"file\":{\"driver\":\"gluster\",\"volume\":\"rep3\","
          "\"path\":\"images/a\\\"b\"}}", NULL },
        { "json:{\"driver\":\"gluster\",\"volume\":\"rep3\",\"path", NULL },
        { "json:", NULL },
    };

    src->volume = g_strdup("rep3");
    src->dir = g_strdup("/images");
    g_ptr_array_add(src->hosts, gfpool_host_new(GFPOOL_TRANSPORT_TCP, "g1", 0, NULL));
    g_ptr_array_add(src->hosts, gfpool_host_new(GFPOOL_TRANSPORT_TCP, "g2", 24007, NULL));
    g_ptr_array_add(src->hosts, gfpool_host_new(GFPOOL_TRANSPORT_TCP, "g3", 0, NULL));
    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *got = gfpool_uri_pool_volume_name(src, cases[i].backing);
        g_test_message("%s", cases[i].backing);
        g_assert_cmpstr(got, ==, cases[i].want);
    }
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);

    for (gsize i = 0; i < G_N_ELEMENTS(good_cases); i++) {
        g_autofree char *name = g_strdup_printf("/uri/good/%02zu", i);
        g_test_add_data_func(name, &good_cases[i], test_good);
    }
    for (gsize i = 0; i < G_N_ELEMENTS(bad_cases); i++) {
        g_autofree char *name = g_strdup_printf("/uri/bad/%02zu", i);
        g_test_add_data_func(name, &bad_cases[i], test_bad);
    }
    for (gsize i = 0; i < G_N_ELEMENTS(vol_cases); i++) {
        g_autofree char *name = g_strdup_printf("/uri/for-volume/%02zu", i);
        g_test_add_data_func(name, &vol_cases[i], test_for_volume);
    }
    g_test_add_func("/uri/error-message", test_error_message_format);
    g_test_add_func("/uri/null", test_null);
    g_test_add_func("/uri/embedded-nul", test_embedded_nul);
    g_test_add_func("/uri/format-built", test_format_built);
    g_test_add_func("/uri/pool-volume-name", test_pool_volume_name);

    return g_test_run();
}
