/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gfpool_xml.c: reading an XML document that may come from anyone.
 */
#include <limits.h>

#include <libxml/parser.h>

#include "gfpool_xml.h"

/* libxml2 reports some errors (encoding conversion, for one) through the
 * thread's global handlers rather than the parser context, so NOERROR
 * alone does not keep them off libvirtd's stderr. Swap in a silent
 * handler for the duration of one parse and put the caller's back. */
typedef struct {
    xmlStructuredErrorFunc func;
    void *ctx;
} SavedErrorHandler;

/* Keeps the first message, for when the parser context has none. */
static void
capture_error(void *data, xmlErrorPtr err)
{
    char **first = data;

    if (!*first && err && err->message)
        *first = g_strdup(err->message);
}

static void
error_handler_push(SavedErrorHandler *saved, char **first)
{
    saved->func = xmlStructuredError;
    saved->ctx = xmlStructuredErrorContext;
    xmlSetStructuredErrorFunc(first, capture_error);
}

static void
error_handler_pop(SavedErrorHandler *saved)
{
    xmlSetStructuredErrorFunc(saved->ctx, saved->func);
}

static xmlDoc *
read_doc(xmlParserCtxt *ctxt, const char *xml, int len, char **first_error)
{
    SavedErrorHandler saved;
    xmlDoc *doc;

    error_handler_push(&saved, first_error);
    /* No NOENT (entities stay unexpanded) and no DTDLOAD: nothing outside
     * the buffer is read; NONET covers anything that slips through. */
    doc = xmlCtxtReadMemory(ctxt, xml, len, "input.xml", NULL,
                            XML_PARSE_NONET | XML_PARSE_NOERROR |
                            XML_PARSE_NOWARNING | XML_PARSE_NOCDATA);
    error_handler_pop(&saved);
    return doc;
}

xmlDoc *
gfpool_xml_read(const char *xml, gsize len, const char *what, GError **error)
{
    g_autoptr(xmlParserCtxt) ctxt = NULL;
    g_autoptr(xmlDoc) doc = NULL;
    g_autofree char *first_error = NULL;

    if (!xml || len == 0) {
        g_set_error(error, GFPOOL_CONF_ERROR, GFPOOL_CONF_ERROR_INVALID,
                    "%s XML is empty", what);
        return NULL;
    }
    if (len > GFPOOL_XML_MAX) {
        g_set_error(error, GFPOOL_CONF_ERROR, GFPOOL_CONF_ERROR_INVALID,
                    "%s XML is %" G_GSIZE_FORMAT " bytes, too large", what, len);
        return NULL;
    }

    xmlInitParser();
    if (!(ctxt = xmlNewParserCtxt()))
        g_error("xmlNewParserCtxt: out of memory");

    doc = read_doc(ctxt, xml, (int)len, &first_error);
    if (!doc || !ctxt->wellFormed) {
        const xmlError *e = xmlCtxtGetLastError(ctxt);
        g_autofree char *msg = NULL;

        if (e && e->message)
            msg = g_strdup(e->message);
        else
            msg = g_strdup(first_error ? first_error : "unknown error");
        g_set_error(error, GFPOOL_CONF_ERROR, GFPOOL_CONF_ERROR_INVALID,
                    "%s XML is not well-formed: line %d: %s",
                    what, e ? e->line : 0, g_strstrip(msg));
        return NULL;
    }
    /* Our documents never need a DTD; refusing one rules out entity
     * expansion tricks when we read text content. */
    if (doc->intSubset || doc->extSubset) {
        g_set_error(error, GFPOOL_CONF_ERROR, GFPOOL_CONF_ERROR_INVALID,
                    "%s XML must not contain a <!DOCTYPE>", what);
        return NULL;
    }
    if (!xmlDocGetRootElement(doc)) {
        g_set_error(error, GFPOOL_CONF_ERROR, GFPOOL_CONF_ERROR_INVALID,
                    "%s XML has no root element", what);
        return NULL;
    }
    return g_steal_pointer(&doc);
}


xmlNode *
gfpool_xml_child(const xmlNode *parent, const char *name)
{
    for (xmlNode *n = parent ? parent->children : NULL; n; n = n->next) {
        if (n->type == XML_ELEMENT_NODE && !n->ns &&
            xmlStrEqual(n->name, (const xmlChar *)name))
            return n;
    }
    return NULL;
}

char *
gfpool_xml_text(const xmlNode *n, gboolean strip)
{
    xmlChar *x;
    char *s;

    if (!n || !(x = xmlNodeGetContent(n)))
        return NULL;
    s = g_strdup((const char *)x);
    xmlFree(x);
    return strip ? g_strstrip(s) : s;
}

char *
gfpool_xml_prop(const xmlNode *n, const char *name)
{
    xmlChar *x;
    char *s;

    if (!n || !(x = xmlGetNoNsProp(n, (const xmlChar *)name)))
        return NULL;
    s = g_strdup((const char *)x);
    xmlFree(x);
    return s;
}

void
gfpool_xml_attr(GString *s, const char *name, const char *value)
{
    g_autofree char *esc = NULL;

    if (!value)
        return;
    esc = g_markup_escape_text(value, -1);
    g_string_append_printf(s, " %s='%s'", name, esc);
}
