/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gfpool_pool_xml.c: <pool type='gluster'> parse/format and the rules a
 * gluster source must obey.
 *
 * The parser reads what libvirt's virStoragePoolDefParseXML reads for a
 * gluster pool (src/conf/storage_conf.c) and nothing it would not, so a
 * document we accept is one libvirt accepts. Where libvirt is silent
 * (duplicate elements, names gluster would refuse) we are stricter: a pool
 * defined from a bad document only fails later, inside gfapi, with a far
 * worse message.
 */
#include <string.h>
#include <limits.h>
#include <arpa/inet.h>
#include <sys/un.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>
#include <libxml/globals.h>

#include "gfpool_pool_xml.h"
#include "gfpool_xml.h"

/* glusterd's buffer for a volume name is GD_VOLUME_NAME_MAX = NAME_MAX + 1
 * bytes (rpc/protocol-common.h), NUL included. */
#define VOLUME_NAME_MAX (NAME_MAX)
/* RFC 1035 limits. */
#define HOSTNAME_MAX 253
#define HOST_LABEL_MAX 63
/* sun_path holds the socket path and its NUL. */
#define SOCKET_PATH_MAX (sizeof(((struct sockaddr_un *)NULL)->sun_path) - 1)

static void G_GNUC_PRINTF(2, 3)
conf_error(GError **error, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *msg = NULL;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error_literal(error, GFPOOL_CONF_ERROR, GFPOOL_CONF_ERROR_INVALID, msg);
}

static const char *
find_control_char(const char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return s;
    }
    return NULL;
}

/* ---------------------------------------------------------------------
 * Validation
 */

/* Names the gluster CLI refuses for a volume because they are volfile
 * keywords or CLI words (cli/src/cli-cmd-parser.c, cli_validate_volname). */
static const char *const reserved_volnames[] = {
    "volume", "type", "subvolumes", "option", "end-volume", "all",
    "volume_not_in_ring", "description", "force", "snap-max-hard-limit",
    "snap-max-soft-limit", "auto-delete", "activate-on-create", NULL
};

gboolean
gfpool_gluster_volume_name_validate(const char *volume, GError **error)
{
    gsize len;

    if (!volume || !*volume) {
        conf_error(error, "gluster volume name is missing");
        return FALSE;
    }
    len = strlen(volume);
    if (len > VOLUME_NAME_MAX) {
        conf_error(error, "gluster volume name '%.32s...' is %zu characters, at most %d allowed",
                   volume, len, VOLUME_NAME_MAX);
        return FALSE;
    }
    /* Same character set as cli_validate_volname: glusterd builds file
     * names and volfile keys from it. */
    for (const char *p = volume; *p; p++) {
        if (!g_ascii_isalnum(*p) && *p != '_' && *p != '-') {
            conf_error(error,
                       "gluster volume name '%s' contains '%c'; only letters, digits, '-' and '_' are allowed",
                       volume, *p);
            return FALSE;
        }
    }
    if (volume[0] == '-') {
        conf_error(error, "gluster volume name '%s' must not start with '-'", volume);
        return FALSE;
    }
    for (guint i = 0; reserved_volnames[i]; i++) {
        if (g_str_equal(volume, reserved_volnames[i])) {
            conf_error(error, "'%s' is reserved by gluster and cannot be a volume name",
                       volume);
            return FALSE;
        }
    }
    return TRUE;
}

gboolean
gfpool_dir_validate(const char *dir, GError **error)
{
    g_auto(GStrv) comps = NULL;
    const char *ctl;

    if (!dir || dir[0] != '/') {
        conf_error(error, "directory '%s' must be an absolute path", dir ? dir : "");
        return FALSE;
    }
    if ((ctl = find_control_char(dir))) {
        conf_error(error, "directory '%s' contains control character 0x%02x",
                   dir, (unsigned char)*ctl);
        return FALSE;
    }
    if (g_str_equal(dir, "/"))
        return TRUE;
    if (g_str_has_suffix(dir, "/")) {
        conf_error(error, "directory '%s' must not end with '/'", dir);
        return FALSE;
    }
    comps = g_strsplit(dir + 1, "/", -1);
    for (guint i = 0; comps[i]; i++) {
        if (!*comps[i]) {
            conf_error(error, "directory '%s' must not contain '//'", dir);
            return FALSE;
        }
        if (g_str_equal(comps[i], ".") || g_str_equal(comps[i], "..")) {
            conf_error(error, "directory '%s' must not contain '%s' components",
                       dir, comps[i]);
            return FALSE;
        }
    }
    return TRUE;
}

char *
gfpool_dir_sanitize(const char *dir)
{
    g_autoptr(GString) s = NULL;

    if (!dir)
        return g_strdup("/");
    s = g_string_sized_new(strlen(dir));
    for (const char *p = dir; *p; p++) {
        if (*p == '/' && s->len > 0 && s->str[s->len - 1] == '/')
            continue;
        g_string_append_c(s, *p);
    }
    if (s->len > 1 && s->str[s->len - 1] == '/')
        g_string_truncate(s, s->len - 1);
    return g_string_free(g_steal_pointer(&s), FALSE);
}

static gboolean
is_dotted_digits(const char *s)
{
    for (; *s; s++) {
        if (!g_ascii_isdigit(*s) && *s != '.')
            return FALSE;
    }
    return TRUE;
}

/* libvirt's schema takes dnsName ([a-zA-Z0-9.-]+) or an IP address for
 * <host name=>; we add RFC 1123 label rules so typos fail here. */
static gboolean
check_server_name(const char *name, GError **error)
{
    unsigned char buf[sizeof(struct in6_addr)];
    g_auto(GStrv) labels = NULL;

    if (strchr(name, ':')) {
        if (inet_pton(AF_INET6, name, buf) != 1) {
            conf_error(error, "server '%s' is not a valid IPv6 address", name);
            return FALSE;
        }
        return TRUE;
    }
    if (is_dotted_digits(name)) {
        if (inet_pton(AF_INET, name, buf) != 1) {
            conf_error(error, "server '%s' is not a valid IPv4 address", name);
            return FALSE;
        }
        return TRUE;
    }
    if (strlen(name) > HOSTNAME_MAX) {
        conf_error(error, "server name '%.32s...' is longer than %d characters",
                   name, HOSTNAME_MAX);
        return FALSE;
    }
    for (const char *p = name; *p; p++) {
        if (!g_ascii_isalnum(*p) && *p != '-' && *p != '.') {
            conf_error(error,
                       "server name '%s' contains '%c'; a hostname may hold letters, digits, '-' and '.'",
                       name, *p);
            return FALSE;
        }
    }
    labels = g_strsplit(name, ".", -1);
    for (guint i = 0; labels[i]; i++) {
        gsize len = strlen(labels[i]);

        /* A trailing dot (fully qualified) leaves one empty last label. */
        if (len == 0 && !labels[i + 1] && i > 0)
            break;
        if (len == 0 || len > HOST_LABEL_MAX) {
            conf_error(error,
                       "server name '%s' has a label of %zu characters, 1-%d allowed",
                       name, len, HOST_LABEL_MAX);
            return FALSE;
        }
        if (labels[i][0] == '-' || labels[i][len - 1] == '-') {
            conf_error(error,
                       "server name '%s' has label '%s' starting or ending with '-'",
                       name, labels[i]);
            return FALSE;
        }
    }
    return TRUE;
}

gboolean
gfpool_host_validate(const GfpoolHost *h, GError **error)
{
    const char *tname = gfpool_transport_to_string(h->transport);
    const char *ctl;

    if (!tname) {
        conf_error(error, "transport %d is not tcp, unix or rdma", (int)h->transport);
        return FALSE;
    }
    if (h->port < 0 || h->port > 65535) {
        conf_error(error, "port %d out of range 1-65535", h->port);
        return FALSE;
    }

    if (h->transport == GFPOOL_TRANSPORT_UNIX) {
        if (h->name) {
            conf_error(error, "unix transport takes a socket, not a server name ('%s')",
                       h->name);
            return FALSE;
        }
        if (h->port) {
            conf_error(error, "unix transport takes no port (got %d)", h->port);
            return FALSE;
        }
        if (!h->socket || !*h->socket) {
            conf_error(error, "unix transport requires a socket path");
            return FALSE;
        }
        if (h->socket[0] != '/') {
            conf_error(error, "socket '%s' must be an absolute path", h->socket);
            return FALSE;
        }
        if ((ctl = find_control_char(h->socket))) {
            conf_error(error, "socket '%s' contains control character 0x%02x",
                       h->socket, (unsigned char)*ctl);
            return FALSE;
        }
        if (strlen(h->socket) > SOCKET_PATH_MAX) {
            conf_error(error, "socket '%s' is longer than %zu bytes (sun_path)",
                       h->socket, SOCKET_PATH_MAX);
            return FALSE;
        }
        return TRUE;
    }

    if (h->socket) {
        conf_error(error, "socket '%s' is only allowed with the unix transport, not %s",
                   h->socket, tname);
        return FALSE;
    }
    if (!h->name || !*h->name) {
        conf_error(error, "%s transport requires a server name", tname);
        return FALSE;
    }
    return check_server_name(h->name, error);
}

gboolean
gfpool_source_validate(const GfpoolSource *src, GError **error)
{
    if (!gfpool_gluster_volume_name_validate(src->volume, error))
        return FALSE;
    if (src->dir && !gfpool_dir_validate(src->dir, error))
        return FALSE;
    if (!src->hosts || src->hosts->len == 0) {
        conf_error(error, "gluster volume '%s' needs at least one host", src->volume);
        return FALSE;
    }
    for (guint i = 0; i < src->hosts->len; i++) {
        if (!gfpool_host_validate(g_ptr_array_index(src->hosts, i), error)) {
            g_prefix_error(error, "host %u: ", i + 1);
            return FALSE;
        }
    }
    return TRUE;
}

/* ---------------------------------------------------------------------
 * Parse
 */

void
gfpool_pool_def_free(GfpoolPoolDef *def)
{
    if (!def)
        return;
    g_free(def->name);
    g_free(def->uuid);
    gfpool_source_free(def->source);
    g_free(def);
}


static gboolean
node_is(const xmlNode *n, const char *name, const char *ns)
{
    if (n->type != XML_ELEMENT_NODE || !xmlStrEqual(n->name, BAD_CAST name))
        return FALSE;
    if (!ns)
        return n->ns == NULL;
    return n->ns && xmlStrEqual(n->ns->href, BAD_CAST ns);
}

static gboolean
node_in_ns(const xmlNode *n, const char *ns)
{
    return n->type == XML_ELEMENT_NODE && n->ns &&
           xmlStrEqual(n->ns->href, BAD_CAST ns);
}

/* The one child element `name` (in `ns`, NULL for none) of parent, NULL if
 * absent; libvirt reads the first and ignores the rest, we refuse the
 * ambiguity. */
static gboolean
unique_child(const xmlNode *parent, const char *name, const char *ns,
             const char *where, xmlNode **out, GError **error)
{
    *out = NULL;
    for (xmlNode *c = parent->children; c; c = c->next) {
        if (!node_is(c, name, ns))
            continue;
        if (*out) {
            conf_error(error, "<%s> contains more than one <%s%s%s>",
                       where, ns ? GFPOOL_XML_PREFIX : "", ns ? ":" : "", name);
            return FALSE;
        }
        *out = c;
    }
    return TRUE;
}

/* libvirt parses port with virXMLPropInt (base 10); 0 means "not given". */
static gboolean
parse_port_attr(const xmlNode *n, const char *where, int *port, GError **error)
{
    g_autofree char *s = gfpool_xml_prop(n, "port");
    gint64 val;
    char *end = NULL;

    *port = 0;
    if (!s)
        return TRUE;
    if (!*s || !g_ascii_isdigit(s[0])) {
        conf_error(error, "%s: port '%s' is not a number", where, s);
        return FALSE;
    }
    val = g_ascii_strtoll(s, &end, 10);
    if (*end) {
        conf_error(error, "%s: port '%s' is not a number", where, s);
        return FALSE;
    }
    if (val > 65535) {
        conf_error(error, "%s: port %s out of range 1-65535", where, s);
        return FALSE;
    }
    *port = (int)val;
    return TRUE;
}

static gboolean
parse_plain_hosts(const xmlNode *source, GPtrArray *hosts, GError **error)
{
    for (xmlNode *c = source->children; c; c = c->next) {
        g_autofree char *name = NULL;
        int port;

        if (!node_is(c, "host", NULL))
            continue;
        if (!(name = gfpool_xml_prop(c, "name"))) {
            conf_error(error, "<source><host> is missing the 'name' attribute");
            return FALSE;
        }
        if (!parse_port_attr(c, "<source><host>", &port, error))
            return FALSE;
        g_ptr_array_add(hosts, gfpool_host_new(GFPOOL_TRANSPORT_TCP, name, port, NULL));
    }
    return TRUE;
}

static const char *const ns_host_attrs[] = { "name", "port", "transport", "socket", NULL };

static gboolean
parse_ns_hosts(const xmlNode *nssource, GPtrArray *hosts, GError **error)
{
    for (xmlNode *c = nssource->children; c; c = c->next) {
        g_autofree char *name = NULL;
        g_autofree char *tname = NULL;
        g_autofree char *socket = NULL;
        int transport = GFPOOL_TRANSPORT_TCP;
        int port;

        if (c->type != XML_ELEMENT_NODE)
            continue;
        if (!node_is(c, "host", GFPOOL_XML_NS)) {
            conf_error(error, "<%s:source> may only contain <%s:host>, not <%s>",
                       GFPOOL_XML_PREFIX, GFPOOL_XML_PREFIX, (const char *)c->name);
            return FALSE;
        }
        /* Our own element: an unknown attribute is a typo, say so. */
        for (xmlAttr *a = c->properties; a; a = a->next) {
            if (a->ns || !g_strv_contains(ns_host_attrs, (const char *)a->name)) {
                conf_error(error, "<%s:host> has unknown attribute '%s' (expected name, port, transport, socket)",
                           GFPOOL_XML_PREFIX, (const char *)a->name);
                return FALSE;
            }
        }
        tname = gfpool_xml_prop(c, "transport");
        if (tname && (transport = gfpool_transport_from_string(tname)) < 0) {
            conf_error(error, "<%s:host>: unknown transport '%s' (expected tcp, unix or rdma)",
                       GFPOOL_XML_PREFIX, tname);
            return FALSE;
        }
        name = gfpool_xml_prop(c, "name");
        socket = gfpool_xml_prop(c, "socket");
        if (!parse_port_attr(c, "<" GFPOOL_XML_PREFIX ":host>", &port, error))
            return FALSE;
        g_ptr_array_add(hosts, gfpool_host_new(transport, name, port, socket));
    }
    if (hosts->len == 0) {
        conf_error(error, "<%s:source> lists no <%s:host>",
                   GFPOOL_XML_PREFIX, GFPOOL_XML_PREFIX);
        return FALSE;
    }
    return TRUE;
}

GPtrArray *
gfpool_pool_ns_parse(const xmlNode *pool, GError **error)
{
    xmlNode *nssource = NULL;
    g_autoptr(GPtrArray) hosts = NULL;

    if (!unique_child(pool, "source", GFPOOL_XML_NS, "pool", &nssource, error))
        return NULL;
    for (xmlNode *c = pool->children; c; c = c->next) {
        if (node_in_ns(c, GFPOOL_XML_NS) && c != nssource) {
            conf_error(error, "unknown element <%s:%s> in <pool>",
                       GFPOOL_XML_PREFIX, (const char *)c->name);
            return NULL;
        }
    }
    hosts = g_ptr_array_new_with_free_func((GDestroyNotify)gfpool_host_free);
    if (!nssource)
        return g_steal_pointer(&hosts);
    if (!parse_ns_hosts(nssource, hosts, error))
        return NULL;
    for (guint i = 0; i < hosts->len; i++) {
        if (!gfpool_host_validate(g_ptr_array_index(hosts, i), error))
            return NULL;
    }
    return g_steal_pointer(&hosts);
}

static gboolean
check_uuid(const char *uuid, GError **error)
{
    /* libvirt's schema: 32 hex digits, bare or in the 8-4-4-4-12 form. */
    static const int groups[] = { 8, 4, 4, 4, 12 };
    gsize len = strlen(uuid);
    const char *p = uuid;

    if (len == 32) {
        for (; *p; p++) {
            if (!g_ascii_isxdigit(*p))
                goto bad;
        }
        return TRUE;
    }
    if (len != 36)
        goto bad;
    for (guint g = 0; g < G_N_ELEMENTS(groups); g++) {
        for (int i = 0; i < groups[g]; i++, p++) {
            if (!g_ascii_isxdigit(*p))
                goto bad;
        }
        if (g + 1 < G_N_ELEMENTS(groups) && *p++ != '-')
            goto bad;
    }
    return TRUE;

 bad:
    conf_error(error, "<uuid> '%s' is not a UUID (32 hex digits, optionally 8-4-4-4-12)",
               uuid);
    return FALSE;
}

static GfpoolPoolDef *
pool_def_from_root(xmlNode *root, GError **error)
{
    g_autoptr(GfpoolPoolDef) def = g_new0(GfpoolPoolDef, 1);
    g_autofree char *type = NULL;
    g_autofree char *dir = NULL;
    xmlNode *name = NULL, *uuid = NULL, *source = NULL, *node = NULL;
    xmlNode *nssource = NULL;
    g_autoptr(GPtrArray) nshosts = NULL;

    if (!node_is(root, "pool", NULL)) {
        conf_error(error, "root element is <%s>, expected <pool>",
                   (const char *)root->name);
        return NULL;
    }
    type = gfpool_xml_prop(root, "type");
    if (!type) {
        conf_error(error, "<pool> is missing the 'type' attribute");
        return NULL;
    }
    if (!g_str_equal(type, "gluster")) {
        conf_error(error, "pool type '%s' is not 'gluster'", type);
        return NULL;
    }

    if (!unique_child(root, "name", NULL, "pool", &name, error) ||
        !unique_child(root, "uuid", NULL, "pool", &uuid, error) ||
        !unique_child(root, "source", NULL, "pool", &source, error) ||
        !unique_child(root, "source", GFPOOL_XML_NS, "pool", &nssource, error))
        return NULL;

    /* Any other element of ours under <pool> is a typo or from a newer
     * gfpool; dropping it silently could change which hosts are used. */
    for (xmlNode *c = root->children; c; c = c->next) {
        if (node_in_ns(c, GFPOOL_XML_NS) && c != nssource) {
            conf_error(error, "unknown element <%s:%s> in <pool>",
                       GFPOOL_XML_PREFIX, (const char *)c->name);
            return NULL;
        }
    }

    if (!source) {
        conf_error(error, "gluster pool has no <source>");
        return NULL;
    }

    def->source = gfpool_source_new();

    if (!unique_child(source, "name", NULL, "source", &node, error))
        return NULL;
    /* libvirt would default the volume to the pool name, but its schema
     * (sourcegluster) makes <name> mandatory and a pool aimed at the wrong
     * volume is worse than an error. */
    if (!node) {
        conf_error(error, "gluster pool <source> has no <name> (the gluster volume)");
        return NULL;
    }
    def->source->volume = gfpool_xml_text(node, FALSE);

    if (!unique_child(source, "dir", NULL, "source", &node, error))
        return NULL;
    if (node) {
        if (!(dir = gfpool_xml_prop(node, "path"))) {
            conf_error(error, "<source><dir> is missing the 'path' attribute");
            return NULL;
        }
        /* libvirt stores virFileSanitizePath(path); do the same so
         * "/images/" and "/images" name one pool. '.' and '..' still fail
         * validation below. */
        def->source->dir = gfpool_dir_sanitize(dir);
    } else {
        /* storage_conf.c: "In gluster, a missing dir defaults to /". */
        def->source->dir = g_strdup("/");
    }

    if (!parse_plain_hosts(source, def->source->hosts, error))
        return NULL;
    /* Even when <gfpool:source> replaces them, libvirt refuses a gluster
     * pool without a plain <host> ("missing storage pool source host
     * name"), so such a document could never be defined. */
    if (def->source->hosts->len == 0) {
        conf_error(error, "gluster pool <source> has no <host>");
        return NULL;
    }
    if (nssource) {
        nshosts = g_ptr_array_new_with_free_func((GDestroyNotify)gfpool_host_free);
        if (!parse_ns_hosts(nssource, nshosts, error))
            return NULL;
        g_ptr_array_unref(def->source->hosts);
        def->source->hosts = g_steal_pointer(&nshosts);
    }

    /* Before the pool name, which may be derived from the volume. */
    if (!gfpool_source_validate(def->source, error))
        return NULL;

    if (name) {
        def->name = gfpool_xml_text(name, FALSE);
    } else {
        /* storage_conf.c: a pool with a source name may omit its own. */
        def->name = g_strdup(def->source->volume);
    }
    if (!*def->name || strchr(def->name, '/') || strchr(def->name, '\n')) {
        conf_error(error, "pool name '%s' must be non-empty and contain no '/' or newline",
                   def->name);
        return NULL;
    }

    if (uuid) {
        def->uuid = g_strstrip(gfpool_xml_text(uuid, FALSE));
        if (!check_uuid(def->uuid, error))
            return NULL;
    }

    return g_steal_pointer(&def);
}

GfpoolPoolDef *
gfpool_pool_def_parse(const char *xml, gsize len, GError **error)
{
    g_autoptr(xmlDoc) doc = NULL;

    if (!(doc = gfpool_xml_read(xml, len, "pool", error)))
        return NULL;
    return pool_def_from_root(xmlDocGetRootElement(doc), error);
}

/* ---------------------------------------------------------------------
 * Format
 */

static gboolean
needs_namespace(const GfpoolSource *src)
{
    for (guint i = 0; i < src->hosts->len; i++) {
        const GfpoolHost *h = g_ptr_array_index(src->hosts, i);

        if (h->transport != GFPOOL_TRANSPORT_TCP)
            return TRUE;
    }
    return FALSE;
}

static void
format_element(GString *s, const char *indent, const char *name, const char *text)
{
    g_autofree char *esc = NULL;

    if (!text)
        return;
    esc = g_markup_escape_text(text, -1);
    g_string_append_printf(s, "%s<%s>%s</%s>\n", indent, name, esc, name);
}

char *
gfpool_pool_ns_format(const GPtrArray *hosts, const char *indent)
{
    g_autoptr(GString) s = g_string_new(NULL);

    g_string_append_printf(s, "%s<%s:source>\n", indent, GFPOOL_XML_PREFIX);
    for (guint i = 0; i < hosts->len; i++) {
        const GfpoolHost *h = g_ptr_array_index(hosts, i);

        g_string_append_printf(s, "%s  <%s:host", indent, GFPOOL_XML_PREFIX);
        gfpool_xml_attr(s, "name", h->name);
        if (h->port)
            g_string_append_printf(s, " port='%d'", h->port);
        gfpool_xml_attr(s, "transport", gfpool_transport_to_string(h->transport));
        gfpool_xml_attr(s, "socket", h->socket);
        g_string_append(s, "/>\n");
    }
    g_string_append_printf(s, "%s</%s:source>\n", indent, GFPOOL_XML_PREFIX);
    return g_string_free(g_steal_pointer(&s), FALSE);
}

char *
gfpool_pool_def_format(const GfpoolPoolDef *def)
{
    g_autoptr(GString) s = g_string_new("<pool type='gluster'");
    const GfpoolSource *src = def->source;
    gboolean ns = src && needs_namespace(src);
    gboolean any_plain = FALSE;

    if (ns)
        g_string_append_printf(s, " xmlns:%s='%s'", GFPOOL_XML_PREFIX, GFPOOL_XML_NS);
    g_string_append(s, ">\n");
    format_element(s, "  ", "name", def->name);
    format_element(s, "  ", "uuid", def->uuid);

    if (src) {
        g_string_append(s, "  <source>\n");
        /* libvirt insists on at least one <host name=>, and libvirt's own
         * tools read this list: every host reachable by name goes in it,
         * whatever its transport. */
        for (guint i = 0; i < src->hosts->len; i++) {
            const GfpoolHost *h = g_ptr_array_index(src->hosts, i);

            if (!h->name)
                continue;
            g_string_append(s, "    <host");
            gfpool_xml_attr(s, "name", h->name);
            if (h->port)
                g_string_append_printf(s, " port='%d'", h->port);
            g_string_append(s, "/>\n");
            any_plain = TRUE;
        }
        /* Only unix sockets: glusterd is local, and libvirt still needs
         * a name; <gfpool:source> overrides it for us. */
        if (!any_plain)
            g_string_append(s, "    <host name='localhost'/>\n");
        g_string_append(s, "    <dir");
        gfpool_xml_attr(s, "path", src->dir ? src->dir : "/");
        g_string_append(s, "/>\n");
        format_element(s, "    ", "name", src->volume);
        g_string_append(s, "  </source>\n");

        if (ns) {
            g_autofree char *nsxml = gfpool_pool_ns_format(src->hosts, "  ");
            g_string_append(s, nsxml);
        }
    }
    g_string_append(s, "</pool>\n");
    return g_string_free(g_steal_pointer(&s), FALSE);
}
