/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gfpool_pool_xml.h: libvirt's <pool type='gluster'> and the <volume>
 * document, parse and format with libxml2. Pure code.
 *
 * A gluster pool as libvirt writes it:
 *   <pool type='gluster'>
 *     <name>P</name>
 *     <source>
 *       <host name='h1' port='24007'/>  (one or more)
 *       <dir path='/images'/>           (optional, default '/')
 *       <name>glustervol</name>
 *     </source>
 *   </pool>
 * Transports other than tcp come in our pool XML namespace
 * (GFPOOL_XML_NS, prefix "gfpool") because libvirt's schema has no place
 * for them; libvirt keeps it through virStorageBackendNamespaceInit:
 *   <gfpool:source>
 *     <gfpool:host name='h1' transport='rdma'/>   (same order as <host>)
 *     <gfpool:host transport='unix' socket='/run/glusterd.socket'/>
 *   </gfpool:source>
 * Every host listed in <gfpool:source> replaces the plain <host> list.
 */
#pragma once

#include <libxml/tree.h>

#include "gfpool_source.h"

#define GFPOOL_XML_NS "http://gfpool.org/schemas/storagepool/gluster/1.0"
#define GFPOOL_XML_PREFIX "gfpool"

typedef struct {
    char *name;            /* libvirt pool name */
    char *uuid;            /* as written, or NULL */
    GfpoolSource *source;
} GfpoolPoolDef;

void gfpool_pool_def_free(GfpoolPoolDef *def);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(GfpoolPoolDef, gfpool_pool_def_free)

/* Full <pool type='gluster'> document. Errors name the element/attribute. */
GfpoolPoolDef *gfpool_pool_def_parse(const char *xml, gsize len, GError **error);
/* The <pool> document, with our namespace only when a host is not tcp. */
char *gfpool_pool_def_format(const GfpoolPoolDef *def);

/* Validate one host and the source as a whole (volume name rules, dir
 * absolute and without '..', port 1..65535, unix needs socket and no name,
 * tcp/rdma need a name). Used by the parsers and by the CLI's options. */
gboolean gfpool_source_validate(const GfpoolSource *src, GError **error);

/* The pieces gfpool_source_validate checks, for callers holding one value
 * (the URI parser, CLI options). Messages name the value and the rule. */
gboolean gfpool_gluster_volume_name_validate(const char *volume, GError **error);
gboolean gfpool_dir_validate(const char *dir, GError **error);
gboolean gfpool_host_validate(const GfpoolHost *h, GError **error);

/* libvirt's virFileSanitizePath for a gluster dir: collapse runs of '/',
 * drop a trailing '/' (keeping "/" itself). NULL stays "/". */
char *gfpool_dir_sanitize(const char *dir);

/*
 * The namespace part alone, for libvirt's virXMLNamespace callbacks (libvirt
 * parses the rest of the pool): the hosts of <gfpool:source> under the
 * <pool> element, validated, in order; an empty array when there is none.
 */
GPtrArray *gfpool_pool_ns_parse(const xmlNode *pool, GError **error);
/* "<gfpool:source>...</gfpool:source>\n", each line prefixed by indent
 * (libvirt's formatter adds its own). */
char *gfpool_pool_ns_format(const GPtrArray *hosts, const char *indent);
