/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gfpool_uri.c: QEMU's gluster URI grammar (block/gluster.c,
 * qemu_gluster_parse_uri), parse and format.
 *
 * QEMU hands the string to a generic URI parser and then picks it apart;
 * we parse only what that grammar can produce and reject the rest, so a
 * URI we accept is one QEMU and libvirt accept too.
 */
#include <string.h>

#include <libxml/uri.h>

#include "gfpool_uri.h"
#include "gfpool_pool_xml.h"

/* Longest decimal port we bother converting; anything longer is out of
 * range anyway and must not overflow. */
#define PORT_MAX_DIGITS 5

/* RFC 3986 sub-delims plus ':' '@' '/' may stay raw in a path. */
#define PATH_RAW_CHARS "!$&'()*+,;=:@/"
/* In the query '&', ';' and '=' separate parameters, so they are escaped
 * inside a value. */
#define QUERY_RAW_CHARS "!$'()*+,:@/"

void
gfpool_uri_free(GfpoolUri *uri)
{
    if (!uri)
        return;
    gfpool_host_free(uri->host);
    g_free(uri->volume);
    g_free(uri->path);
    g_free(uri);
}

static void G_GNUC_PRINTF(3, 4)
uri_error(GError **error, const char *str, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *msg = NULL;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error(error, GFPOOL_CONF_ERROR, GFPOOL_CONF_ERROR_INVALID,
                "invalid gluster URI '%s': %s", str, msg);
}

static gboolean
is_unreserved(char c)
{
    return g_ascii_isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

/* Characters RFC 3986 allows unescaped in a path or query; anything else
 * (space, '"', '<', '\\', '^', '`', '{', '|', '}', '[', ']', controls,
 * non-ASCII) must have come %-escaped, as QEMU's parser expects. */
static gboolean
is_uri_char(char c)
{
    return is_unreserved(c) || (c && strchr(PATH_RAW_CHARS "?", c));
}

/* Percent-decode [s, s+len). Decoded NUL and control characters are
 * refused: a NUL would silently truncate the name gfapi sees, and
 * controls cannot be written into libvirt's XML. */
static char *
uri_unescape(const char *str, const char *what, const char *s, gsize len,
             GError **error)
{
    g_autoptr(GString) out = g_string_sized_new(len);

    for (gsize i = 0; i < len; i++) {
        char c = s[i];

        if (c == '%') {
            int hi, lo;

            if (i + 2 >= len) {
                uri_error(error, str, "truncated %%-escape in %s", what);
                return NULL;
            }
            hi = g_ascii_xdigit_value(s[i + 1]);
            lo = g_ascii_xdigit_value(s[i + 2]);
            if (hi < 0 || lo < 0) {
                uri_error(error, str, "invalid %%-escape '%%%c%c' in %s",
                          s[i + 1], s[i + 2], what);
                return NULL;
            }
            c = (char)(hi * 16 + lo);
            i += 2;
            if (c == '\0') {
                uri_error(error, str, "%s contains an escaped NUL (%%00)", what);
                return NULL;
            }
        } else if (!is_uri_char(c)) {
            uri_error(error, str, "character 0x%02x in %s must be %%-escaped",
                      (unsigned char)c, what);
            return NULL;
        }
        if ((unsigned char)c < 0x20 || c == 0x7f) {
            uri_error(error, str, "%s contains control character 0x%02x",
                      what, (unsigned char)c);
            return NULL;
        }
        g_string_append_c(out, c);
    }
    return g_string_free(g_steal_pointer(&out), FALSE);
}

/* Image path rules: QEMU would take "dir//a.img" or "../x" and let gfapi
 * resolve it; we refuse them so one image has exactly one URI (volume
 * keys are compared as strings) and a URI cannot climb out of the volume. */
static gboolean
check_image_path(const char *str, const char *path, GError **error)
{
    g_auto(GStrv) comps = NULL;

    if (!*path) {
        uri_error(error, str, "missing image path after the volume name");
        return FALSE;
    }
    comps = g_strsplit(path, "/", -1);
    for (guint i = 0; comps[i]; i++) {
        if (!*comps[i]) {
            uri_error(error, str,
                      "image path '%s' has an empty component ('//' or trailing '/')",
                      path);
            return FALSE;
        }
        if (g_str_equal(comps[i], ".") || g_str_equal(comps[i], "..")) {
            uri_error(error, str,
                      "image path '%s' must not contain '%s' components",
                      path, comps[i]);
            return FALSE;
        }
    }
    return TRUE;
}

static gboolean
parse_port(const char *str, const char *p, gsize len, int *port, GError **error)
{
    int val = 0;

    if (len == 0) {
        uri_error(error, str, "empty port after ':'");
        return FALSE;
    }
    for (gsize i = 0; i < len; i++) {
        if (!g_ascii_isdigit(p[i])) {
            uri_error(error, str, "port '%.*s' is not a number",
                      (int)len, p);
            return FALSE;
        }
    }
    if (len > PORT_MAX_DIGITS) {
        uri_error(error, str, "port %.*s out of range 1-65535", (int)len, p);
        return FALSE;
    }
    for (gsize i = 0; i < len; i++)
        val = val * 10 + (p[i] - '0');
    if (val > 65535) {
        uri_error(error, str, "port %d out of range 1-65535", val);
        return FALSE;
    }
    *port = val;
    return TRUE;
}

/* [s, s+len) is the authority: "", "host", "host:port", "[v6]", "[v6]:port". */
static gboolean
parse_authority(const char *str, const char *s, gsize len,
                char **name, int *port, GError **error)
{
    const char *colon;
    g_autofree char *host = NULL;

    *port = 0;
    if (memchr(s, '@', len)) {
        uri_error(error, str, "user information ('@') is not allowed");
        return FALSE;
    }

    if (len > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', len);
        gsize rest;

        if (!close) {
            uri_error(error, str, "'[' without a closing ']'");
            return FALSE;
        }
        host = g_strndup(s + 1, close - s - 1);
        if (!strchr(host, ':')) {
            uri_error(error, str,
                      "'[%s]': only IPv6 addresses go in brackets", host);
            return FALSE;
        }
        rest = len - (close + 1 - s);
        if (rest > 0) {
            if (close[1] != ':') {
                uri_error(error, str, "unexpected '%.*s' after ']'",
                          (int)rest, close + 1);
                return FALSE;
            }
            if (!parse_port(str, close + 2, rest - 1, port, error))
                return FALSE;
        }
    } else {
        if (memchr(s, ']', len)) {
            uri_error(error, str, "']' without an opening '['");
            return FALSE;
        }
        colon = memchr(s, ':', len);
        if (colon && memchr(colon + 1, ':', len - (colon + 1 - s))) {
            uri_error(error, str,
                      "server '%.*s' has several ':'; an IPv6 address must be in brackets",
                      (int)len, s);
            return FALSE;
        }
        host = g_strndup(s, colon ? (gsize)(colon - s) : len);
        if (colon &&
            !parse_port(str, colon + 1, len - (colon + 1 - s), port, error))
            return FALSE;
        if (strchr(host, '%')) {
            uri_error(error, str, "server '%s' must not be %%-escaped", host);
            return FALSE;
        }
    }

    *name = *host ? g_steal_pointer(&host) : NULL;
    return TRUE;
}

/* The query: only "socket=PATH", at most once, '&' or ';' separated as
 * QEMU's query_params_parse splits it. An empty query has no parameter. */
static gboolean
parse_query(const char *str, const char *q, char **socket, GError **error)
{
    g_auto(GStrv) params = NULL;

    *socket = NULL;
    if (!*q)
        return TRUE;
    params = g_strsplit_set(q, "&;", -1);
    for (guint i = 0; params[i]; i++) {
        const char *eq = strchr(params[i], '=');
        g_autofree char *pname = NULL;

        if (!eq) {
            uri_error(error, str, "query parameter '%s' has no value", params[i]);
            return FALSE;
        }
        pname = g_strndup(params[i], eq - params[i]);
        if (!g_str_equal(pname, "socket")) {
            uri_error(error, str,
                      "unknown query parameter '%s' (only 'socket' is allowed)",
                      pname);
            return FALSE;
        }
        if (*socket) {
            uri_error(error, str, "query parameter 'socket' given twice");
            return FALSE;
        }
        if (!(*socket = uri_unescape(str, "socket", eq + 1, strlen(eq + 1), error)))
            return FALSE;
    }
    return TRUE;
}

GfpoolUri *
gfpool_uri_parse(const char *str, GError **error)
{
    g_autoptr(GfpoolUri) uri = NULL;
    g_autofree char *scheme = NULL;
    g_autofree char *name = NULL;
    g_autofree char *socket = NULL;
    g_autofree char *path = NULL;
    const char *sep, *auth, *auth_end, *path_end, *slash;
    int transport;
    int port = 0;

    if (!str || !*str) {
        g_set_error(error, GFPOOL_CONF_ERROR, GFPOOL_CONF_ERROR_INVALID,
                    "invalid gluster URI '': empty string");
        return NULL;
    }

    if (!(sep = strstr(str, "://"))) {
        uri_error(error, str,
                  "expected gluster[+tcp|+unix|+rdma]://[server[:port]]/volume/image");
        return NULL;
    }
    scheme = g_strndup(str, sep - str);
    if (g_str_equal(scheme, "gluster")) {
        transport = GFPOOL_TRANSPORT_TCP;
    } else if (g_str_has_prefix(scheme, "gluster+")) {
        transport = gfpool_transport_from_string(scheme + strlen("gluster+"));
        if (transport < 0) {
            uri_error(error, str,
                      "unknown transport '%s' (expected tcp, unix or rdma)",
                      scheme + strlen("gluster+"));
            return NULL;
        }
    } else {
        uri_error(error, str,
                  "scheme '%s' is not gluster, gluster+tcp, gluster+unix or gluster+rdma",
                  scheme);
        return NULL;
    }

    if (strchr(str, '#')) {
        uri_error(error, str, "fragments ('#') are not allowed");
        return NULL;
    }

    auth = sep + 3;
    auth_end = auth + strcspn(auth, "/?");
    if (!parse_authority(str, auth, auth_end - auth, &name, &port, error))
        return NULL;

    if (*auth_end != '/') {
        uri_error(error, str, "missing /volume/image path");
        return NULL;
    }
    path_end = auth_end + strcspn(auth_end, "?");
    if (!(path = uri_unescape(str, "path", auth_end, path_end - auth_end, error)))
        return NULL;
    if (*path_end == '?' &&
        !parse_query(str, path_end + 1, &socket, error))
        return NULL;

    uri = g_new0(GfpoolUri, 1);

    /* path is "/volume/image..." */
    slash = strchr(path + 1, '/');
    uri->volume = g_strndup(path + 1, slash ? (gsize)(slash - path - 1) : strlen(path + 1));
    if (!*uri->volume) {
        uri_error(error, str, "missing volume name");
        return NULL;
    }
    if (!slash) {
        uri_error(error, str, "missing image path after volume '%s'", uri->volume);
        return NULL;
    }
    uri->path = g_strdup(slash + 1);
    if (!check_image_path(str, uri->path, error))
        return NULL;

    if (transport == GFPOOL_TRANSPORT_UNIX) {
        if (name || port) {
            uri_error(error, str,
                      "gluster+unix takes no server or port, the socket= parameter names the glusterd socket");
            return NULL;
        }
        if (!socket) {
            uri_error(error, str, "gluster+unix requires a ?socket=PATH parameter");
            return NULL;
        }
    } else {
        if (socket) {
            uri_error(error, str,
                      "socket= is only allowed with gluster+unix, not %s",
                      gfpool_transport_to_string(transport));
            return NULL;
        }
        /* QEMU connects to localhost when the server is left out. */
        if (!name)
            name = g_strdup("localhost");
    }

    uri->host = gfpool_host_new(transport, name, port, socket);

    {
        GError *local = NULL;

        if (!gfpool_gluster_volume_name_validate(uri->volume, &local) ||
            !gfpool_host_validate(uri->host, &local)) {
            uri_error(error, str, "%s", local->message);
            g_error_free(local);
            return NULL;
        }
    }

    return g_steal_pointer(&uri);
}

static void
append_server(GString *s, const GfpoolHost *h)
{
    if (h->transport == GFPOOL_TRANSPORT_UNIX || !h->name)
        return;
    if (strchr(h->name, ':'))
        g_string_append_printf(s, "[%s]", h->name);
    else
        g_string_append(s, h->name);
    if (h->port > 0)
        g_string_append_printf(s, ":%d", h->port);
}

static const char *
scheme_for(GfpoolTransport t)
{
    switch (t) {
    case GFPOOL_TRANSPORT_UNIX:
        return "gluster+unix";
    case GFPOOL_TRANSPORT_RDMA:
        return "gluster+rdma";
    case GFPOOL_TRANSPORT_TCP:
    case GFPOOL_TRANSPORT_LAST:
        break;
    }
    return "gluster";
}

char *
gfpool_uri_format(const GfpoolUri *uri)
{
    g_autoptr(GString) s = g_string_new(scheme_for(uri->host->transport));
    g_autofree char *vol = g_uri_escape_string(uri->volume, PATH_RAW_CHARS, FALSE);
    g_autofree char *path = g_uri_escape_string(uri->path, PATH_RAW_CHARS, FALSE);

    g_string_append(s, "://");
    append_server(s, uri->host);
    g_string_append_printf(s, "/%s/%s", vol, path);
    if (uri->host->transport == GFPOOL_TRANSPORT_UNIX && uri->host->socket) {
        g_autofree char *sock = g_uri_escape_string(uri->host->socket,
                                                    QUERY_RAW_CHARS, FALSE);
        g_string_append_printf(s, "?socket=%s", sock);
    }
    return g_string_free(g_steal_pointer(&s), FALSE);
}

/* libvirt's gluster backend (virStorageBackendGlusterSetMetadata) builds
 * the key as a virURI with path "/VOL" DIR "/" NAME, DIR given a trailing
 * '/', and prints it with virURIFormat, i.e. libxml2's xmlSaveUri with an
 * IPv6 server bracketed. Calling xmlSaveUri the same way keeps our keys
 * byte-identical to libvirt's, escaping included (it escapes ':' in the
 * path where gfpool_uri_format would not). */
char *
gfpool_uri_for_volume(const GfpoolHost *h, const char *volume,
                      const char *dir, const char *name)
{
    xmlURI xuri;
    g_autofree char *server = NULL;
    g_autofree char *path = NULL;
    g_autofree char *query = NULL;
    xmlChar *out;
    char *ret;

    if (!dir || !*dir)
        dir = "/";
    path = g_strdup_printf("/%s%s%s%s", volume, dir,
                           g_str_has_suffix(dir, "/") ? "" : "/", name);

    memset(&xuri, 0, sizeof(xuri));
    xuri.scheme = (char *)scheme_for(h->transport);
    xuri.path = path;
    if (h->transport == GFPOOL_TRANSPORT_UNIX) {
        g_autofree char *sock = g_uri_escape_string(h->socket ? h->socket : "",
                                                    QUERY_RAW_CHARS, FALSE);
        query = g_strdup_printf("socket=%s", sock);
        xuri.query_raw = query;
        /* virURIFormat's trick for "scheme:///path": no server, port -1. */
        xuri.port = -1;
    } else {
        if (h->name && strchr(h->name, ':'))
            server = g_strdup_printf("[%s]", h->name);
        else
            server = g_strdup(h->name);
        xuri.server = server;
        xuri.port = h->port;
        if (!server && !h->port)
            xuri.port = -1;
    }

    if (!(out = xmlSaveUri(&xuri)))
        g_error("xmlSaveUri: out of memory");
    ret = g_strdup((const char *)out);
    xmlFree(out);
    return ret;
}


/* A path inside the volume ("dir/name", leading '/' or not) as the name of
 * a volume of the pool: its directory must be the pool's. */
static char *
pool_relative_name(const GfpoolSource *src, const char *p)
{
    const char *dir = src->dir;
    const char *base;

    while (*p == '/')
        p++;
    while (*dir == '/')
        dir++;
    if (*dir) {
        gsize n = strlen(dir);
        if (strncmp(p, dir, n) != 0 || p[n] != '/')
            return NULL;
        p += n + 1;
    }
    base = p;
    if (!*base || strchr(base, '/') || g_str_equal(base, ".") || g_str_equal(base, ".."))
        return NULL;
    return g_strdup(base);
}

static gboolean
pool_has_host(const GfpoolSource *src, const char *name)
{
    for (guint i = 0; i < src->hosts->len; i++) {
        const GfpoolHost *h = g_ptr_array_index(src->hosts, i);
        if (h->name && g_str_equal(h->name, name))
            return TRUE;
    }
    return FALSE;
}

/*
 * "json:{...}", as QEMU and libvirt name a gluster image reached through
 * several servers: its "volume", "path" and servers' "host" values. FALSE
 * for anything else and anything unusual (no gluster driver, a key twice,
 * an escape in a string): such a backing file is shown as it is.
 */
static gboolean
json_gluster_backing(const char *s, char **volume, char **path, GPtrArray *hosts)
{
    g_autofree char *vol = NULL;
    g_autofree char *pth = NULL;
    gboolean gluster = FALSE;
    g_autofree char *key = NULL;

    if (!g_str_has_prefix(s, "json:") || strlen(s) > 65536)
        return FALSE;
    for (s += 5; *s; s++) {
        const char *end;
        g_autofree char *str = NULL;

        if (*s != '"')
            continue;
        if (!(end = strchr(s + 1, '"')))
            return FALSE;
        str = g_strndup(s + 1, (gsize)(end - s - 1));
        if (strchr(str, '\\'))
            return FALSE;
        s = end + 1;
        while (g_ascii_isspace(*s))
            s++;
        if (*s == ':') {
            g_free(key);
            key = g_steal_pointer(&str);
            continue;
        }
        s--;
        if (!key)
            continue;
        if (g_str_equal(key, "driver") && g_str_equal(str, "gluster"))
            gluster = TRUE;
        else if (g_str_equal(key, "volume") && !vol)
            vol = g_steal_pointer(&str);
        else if (g_str_equal(key, "path") && !pth)
            pth = g_steal_pointer(&str);
        else if (g_str_equal(key, "volume") || g_str_equal(key, "path"))
            return FALSE;
        else if (g_str_equal(key, "host"))
            g_ptr_array_add(hosts, g_steal_pointer(&str));
        g_clear_pointer(&key, g_free);
    }
    if (!gluster || !vol || !pth)
        return FALSE;
    *volume = g_steal_pointer(&vol);
    *path = g_steal_pointer(&pth);
    return TRUE;
}

char *
gfpool_uri_pool_volume_name(const GfpoolSource *src, const char *path)
{
    const char *base;

    if (!path || !*path)
        return NULL;
    if (g_str_has_prefix(path, "json:")) {
        g_autoptr(GPtrArray) hosts = g_ptr_array_new_with_free_func(g_free);
        g_autofree char *volume = NULL;
        g_autofree char *vpath = NULL;
        gboolean known = FALSE;

        if (!json_gluster_backing(path, &volume, &vpath, hosts) ||
            !g_str_equal(volume, src->volume))
            return NULL;
        /* one of its servers must be one of ours: same volume name, same
         * cluster */
        for (guint i = 0; i < hosts->len && !known; i++)
            known = pool_has_host(src, g_ptr_array_index(hosts, i));
        return known || hosts->len == 0 ? pool_relative_name(src, vpath) : NULL;
    }
    if (g_str_has_prefix(path, "gluster")) {
        g_autoptr(GfpoolUri) uri = gfpool_uri_parse(path, NULL);

        if (!uri || !g_str_equal(uri->volume, src->volume) ||
            (uri->host->name && !pool_has_host(src, uri->host->name)))
            return NULL;
        return pool_relative_name(src, uri->path);
    }
    if (!strchr(path, '/'))
        return g_str_equal(path, ".") || g_str_equal(path, "..") ? NULL : g_strdup(path);
    base = strrchr(path, '/') + 1;
    if (!*base)
        return NULL;
    /* Compare whole keys rather than parse: the key is what we hand out. */
    for (guint i = 0; i < src->hosts->len; i++) {
        g_autofree char *key = gfpool_uri_for_volume(g_ptr_array_index(src->hosts, i),
                                                     src->volume, src->dir, base);
        if (g_str_equal(key, path))
            return g_strdup(base);
    }
    return NULL;
}
