/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gfpool_xml.h: read an XML document from an untrusted buffer: no network,
 * no DTD, no entity expansion, libxml2's messages kept off stderr (inside
 * libvirtd they would land in its log unasked) and returned as a GError.
 */
#pragma once

#include <libxml/tree.h>

#include "gfpool_source.h"

#define GFPOOL_XML_MAX (1024 * 1024)

/* what names the document in errors ("pool", "volume"). The document has a
 * root element when this returns non-NULL. */
#include <libxml/parser.h>

G_DEFINE_AUTOPTR_CLEANUP_FUNC(xmlDoc, xmlFreeDoc)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(xmlParserCtxt, xmlFreeParserCtxt)

xmlDoc *gfpool_xml_read(const char *xml, gsize len, const char *what, GError **error);

/* Small helpers shared by the parsers and formatters; all NULL-safe. */

/* The first child element called name in no namespace. */
xmlNode *gfpool_xml_child(const xmlNode *parent, const char *name);
/* The node's text (whitespace stripped when strip), or NULL. */
char *gfpool_xml_text(const xmlNode *n, gboolean strip);
/* An attribute in no namespace, or NULL. */
char *gfpool_xml_prop(const xmlNode *n, const char *name);
/* " name='escaped value'" appended to s; nothing when value is NULL. */
void gfpool_xml_attr(GString *s, const char *name, const char *value);
