/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gfpool_vol_verbs.c: the volume verbs that read or write a volume's
 * metadata, not its data: vol-list, vol-info, vol-record, vol-dumpxml,
 * vol-path, vol-delete, vol-create-as, vol-create.
 */
#include <stdio.h>
#include <string.h>

#include "gfpool_data.h"
#include "gfpool_pool_xml.h"
#include "gfpool_uri.h"
#include "gfpool_vol_xml.h"

#include "gfpool_tools.h"

/* Where the volume's format comes from, as listings say it. */
static const char *
record_name(const GfpoolVolInfo *info)
{
    if (info->kind == GFPOOL_VOL_DIR)
        return "-";
    return info->recorded ? "recorded" : "probed";
}

static GfpoolVolDef *
vol_def_from_info(GfpoolConn *conn, const GfpoolVolInfo *info)
{
    GfpoolVolDef *def = gfpool_vol_def_new();

    def->name = g_strdup(info->name);
    def->type = g_strdup(info->kind == GFPOOL_VOL_DIR ? "netdir" : "network");
    def->path = gfpool_vol_key(conn, info->name);
    def->key = g_strdup(def->path);
    def->capacity = info->capacity;
    def->allocation = info->allocation;
    def->format = g_strdup(info->kind == GFPOOL_VOL_DIR ? "dir" : format_name(info->format));
    def->format_probed = info->kind == GFPOOL_VOL_FILE && !info->recorded;
    def->mode = info->mode;
    def->uid = info->uid;
    def->gid = info->gid;
    if (info->backing) {
        def->backing_path = gfpool_vol_backing_key(conn, info->backing);
        def->backing_format = g_strdup(info->backing_format != GFPOOL_FORMAT_NONE ?
                                       format_name(info->backing_format) : "raw");
    }
    return def;
}


static gboolean opt_details;
static char *opt_format;

const GOptionEntry gfpool_vol_list_options[] = {
    { "details", 0, 0, G_OPTION_ARG_NONE, &opt_details, "show type, format, capacity and allocation", NULL },
    { NULL }
};

int
cmd_vol_list(const GfpoolVerb *verb, int argc, char **argv)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GPtrArray) vols = NULL;
    GfpoolConn *conn;
    int rc = EXIT_OK;

    if (!parse_verb_args(verb, &argc, &argv, &rc))
        return rc;
    if (argc != 1)
        return usage_error("vol-list takes no arguments");
    if (!(conn = pool_connect(&rc)))
        return rc;
    if (!(vols = gfpool_pool_refresh(conn, NULL, 0, &err)))
        return finish(conn, fail(err));

    if (opt_details)
        printf(" %-30s %-8s %-8s %-12s %-12s %s\n", "Name", "Type", "Format", "Capacity",
               "Allocation", "Record");
    else
        printf(" %-30s %s\n", "Name", "Path");
    printf("---------------------------------------------------------------------------------\n");
    for (guint i = 0; i < vols->len; i++) {
        const GfpoolVolInfo *info = g_ptr_array_index(vols, i);
        if (opt_details) {
            g_autofree char *cap = human_size(info->capacity);
            g_autofree char *alloc = human_size(info->allocation);
            printf(" %-30s %-8s %-8s %-12s %-12s %s\n", info->name,
                   info->kind == GFPOOL_VOL_DIR ? "netdir" : "network",
                   info->kind == GFPOOL_VOL_DIR ? "dir" : format_name(info->format), cap, alloc,
                   record_name(info));
        } else {
            g_autofree char *uri = gfpool_vol_key(conn, info->name);
            printf(" %-30s %s\n", info->name, uri);
        }
    }
    return finish(conn, EXIT_OK);
}

static int
get_vol_info(const GfpoolVerb *verb, int argc, char **argv, GfpoolConn **connp,
             GfpoolVolInfo **infop)
{
    g_autoptr(GError) err = NULL;
    int rc = EXIT_OK;

    if (!parse_verb_args(verb, &argc, &argv, &rc))
        return rc;
    if (argc != 2)
        return usage_error("%s takes one argument, the volume name", verb->name);
    if (!(*connp = pool_connect(&rc)))
        return rc;
    if (!(*infop = gfpool_vol_info(*connp, argv[1], NULL, &err)))
        return finish(*connp, fail(err));
    return -1;
}

int
cmd_vol_info(const GfpoolVerb *verb, int argc, char **argv)
{
    GfpoolConn *conn = NULL;
    GfpoolVolInfo *info = NULL;
    int rc;

    if ((rc = get_vol_info(verb, argc, argv, &conn, &info)) >= 0)
        return rc;
    {
        g_autofree char *cap = human_size(info->capacity);
        g_autofree char *alloc = human_size(info->allocation);
        printf("%-15s %s\n", "Name:", info->name);
        printf("%-15s %s\n", "Type:", info->kind == GFPOOL_VOL_DIR ? "netdir" : "network");
        printf("%-15s %s\n", "Format:", info->kind == GFPOOL_VOL_DIR ? "dir" : format_name(info->format));
        if (info->kind == GFPOOL_VOL_FILE)
            printf("%-15s %s\n", "Record:", info->recorded ? "recorded" :
                   "probed (no format record: the format was read from the image's header)");
        printf("%-15s %s\n", "Capacity:", cap);
        printf("%-15s %s\n", "Allocation:", alloc);
        if (info->backing)
            printf("%-15s %s (%s)\n", "Backing:", info->backing,
                   info->backing_format ? format_name(info->backing_format) : "probed");
        if (info->warning)
            printf("%-15s %s\n", "Warning:", info->warning);
    }
    gfpool_vol_info_free(info);
    return finish(conn, EXIT_OK);
}

const GOptionEntry gfpool_vol_record_options[] = {
    { "format", 0, 0, G_OPTION_ARG_STRING, &opt_format,
      "the volumes' format (required): raw, qcow2, or any format gfpool lists", "F" },
    { NULL }
};

int
cmd_vol_record(const GfpoolVerb *verb, int argc, char **argv)
{
    GfpoolConn *conn;
    GfpoolFormat format;
    int f;
    int rc = EXIT_OK;

    if (!parse_verb_args(verb, &argc, &argv, &rc))
        return rc;
    if (argc < 2)
        return usage_error("vol-record takes the names of the volumes");
    if (!opt_format)
        return usage_error("vol-record needs --format: the format is the administrator's word, "
                           "never the image's");
    if ((f = gfpool_format_from_string(opt_format)) <= GFPOOL_FORMAT_NONE)
        return usage_error("invalid --format '%s'", opt_format);
    format = (GfpoolFormat)f;
    if (!(conn = pool_connect(&rc)))
        return rc;
    for (int i = 1; i < argc; i++) {
        g_autoptr(GError) err = NULL;
        GfpoolFormat previous;

        if (!gfpool_vol_record(conn, argv[i], format, &previous, &err)) {
            int r = fail(err);
            if (rc == EXIT_OK)
                rc = r;
            continue;
        }
        if (previous == GFPOOL_FORMAT_NONE)
            printf("Volume %s recorded as %s\n", argv[i], format_name(format));
        else if (previous == format)
            printf("Volume %s was already recorded as %s\n", argv[i], format_name(format));
        else
            printf("Volume %s recorded as %s (was %s)\n", argv[i], format_name(format),
                   format_name(previous));
    }
    return finish(conn, rc);
}

int
cmd_vol_dumpxml(const GfpoolVerb *verb, int argc, char **argv)
{
    GfpoolConn *conn = NULL;
    GfpoolVolInfo *info = NULL;
    int rc;

    if ((rc = get_vol_info(verb, argc, argv, &conn, &info)) >= 0)
        return rc;
    {
        g_autoptr(GfpoolVolDef) def = vol_def_from_info(conn, info);
        g_autofree char *xml = gfpool_vol_def_format(def);
        fputs(xml, stdout);
    }
    gfpool_vol_info_free(info);
    return finish(conn, EXIT_OK);
}

int
cmd_vol_path(const GfpoolVerb *verb, int argc, char **argv)
{
    GfpoolConn *conn = NULL;
    GfpoolVolInfo *info = NULL;
    int rc;

    if ((rc = get_vol_info(verb, argc, argv, &conn, &info)) >= 0)
        return rc;
    {
        g_autofree char *uri = gfpool_vol_key(conn, info->name);
        printf("%s\n", uri);
    }
    gfpool_vol_info_free(info);
    return finish(conn, EXIT_OK);
}

int
cmd_vol_delete(const GfpoolVerb *verb, int argc, char **argv)
{
    g_autoptr(GError) err = NULL;
    GfpoolConn *conn;
    int rc = EXIT_OK;

    if (!parse_verb_args(verb, &argc, &argv, &rc))
        return rc;
    if (argc != 2)
        return usage_error("vol-delete takes one argument, the volume name");
    if (!gfpool_vol_name_validate(argv[1], strlen(argv[1]), &err))
        return fail(err);
    if (!(conn = pool_connect(&rc)))
        return rc;
    if (!gfpool_vol_delete(conn, argv[1], &err))
        return finish(conn, fail(err));
    printf("Vol %s deleted\n", argv[1]);
    return finish(conn, EXIT_OK);
}

static int
create_and_report(GfpoolVolCreateParams *p)
{
    g_autoptr(GError) err = NULL;
    GfpoolConn *conn;
    int rc = EXIT_OK;

    if (!gfpool_vol_name_validate(p->name, strlen(p->name), &err))
        return fail(err);
    if (!(conn = pool_connect(&rc)))
        return rc;
    if (!gfpool_vol_create(conn, p, &err))
        return finish(conn, fail(err));
    printf("Vol %s created\n", p->name);
    return finish(conn, EXIT_OK);
}

static char *opt_allocation;
static gboolean opt_prealloc_metadata;
static char *opt_backing_vol;
static char *opt_backing_vol_format;
static char *opt_cluster_size;
static char *opt_prealloc;

static gboolean
prealloc_parse(const char *s, GfpoolPrealloc *out, GError **error)
{
    static const char *names[] = { "off", "metadata", "falloc", "full" };
    for (guint i = 0; i < G_N_ELEMENTS(names); i++) {
        if (g_str_equal(s, names[i])) {
            *out = (GfpoolPrealloc)i;
            return TRUE;
        }
    }
    g_set_error(error, GFPOOL_CONF_ERROR, GFPOOL_CONF_ERROR_INVALID,
                "invalid --prealloc '%s': use off, metadata, falloc or full", s);
    return FALSE;
}

const GOptionEntry gfpool_vol_create_as_options[] = {
    { "format", 0, 0, G_OPTION_ARG_STRING, &opt_format, "raw (default) or qcow2", "F" },
    { "allocation", 0, 0, G_OPTION_ARG_STRING, &opt_allocation,
      "raw: allocate up front when equal to the capacity", "SIZE" },
    { "prealloc-metadata", 0, 0, G_OPTION_ARG_NONE, &opt_prealloc_metadata,
      "qcow2: preallocate metadata", NULL },
    { "prealloc", 0, 0, G_OPTION_ARG_STRING, &opt_prealloc,
      "off, metadata (qcow2), falloc or full (raw)", "MODE" },
    { "backing-vol", 0, 0, G_OPTION_ARG_STRING, &opt_backing_vol,
      "qcow2: backing volume (a volume of the pool)", "VOL" },
    { "backing-vol-format", 0, 0, G_OPTION_ARG_STRING, &opt_backing_vol_format,
      "format of the backing volume (default: probed)", "F" },
    { "cluster-size", 0, 0, G_OPTION_ARG_STRING, &opt_cluster_size,
      "qcow2 cluster size (default 64KiB)", "SIZE" },
    { NULL }
};

int
cmd_vol_create_as(const GfpoolVerb *verb, int argc, char **argv)
{
    GfpoolVolCreateParams p = GFPOOL_VOL_CREATE_PARAMS_INIT;
    g_autoptr(GError) err = NULL;
    int rc = EXIT_OK;

    if (!parse_verb_args(verb, &argc, &argv, &rc))
        return rc;
    if (argc != 3)
        return usage_error("vol-create-as takes two arguments, NAME and CAPACITY");
    p.name = argv[1];
    if (!gfpool_parse_scaled(argv[2], &p.capacity, &err))
        return fail(err);
    p.format = GFPOOL_FORMAT_RAW;
    if (opt_format && !gfpool_create_format_parse(opt_format, &p.format, &err))
        return usage_error("%s", err->message);
    if (opt_prealloc && !prealloc_parse(opt_prealloc, &p.prealloc, &err))
        return fail(err);
    if (opt_prealloc_metadata)
        p.prealloc = GFPOOL_PREALLOC_METADATA;
    if (opt_allocation) {
        guint64 alloc;
        if (!gfpool_parse_scaled(opt_allocation, &alloc, &err))
            return fail(err);
        GfpoolPrealloc by_alloc = gfpool_prealloc_for_allocation(p.format, p.capacity, alloc);
        if (by_alloc != GFPOOL_PREALLOC_OFF)
            p.prealloc = by_alloc;
    }
    if (p.format == GFPOOL_FORMAT_QCOW2 &&
        (p.prealloc == GFPOOL_PREALLOC_FALLOC || p.prealloc == GFPOOL_PREALLOC_FULL))
        return usage_error("qcow2 volumes take --prealloc off or metadata");
    if (opt_cluster_size) {
        guint64 cs;
        if (!gfpool_parse_scaled(opt_cluster_size, &cs, &err))
            return fail(err);
        if (cs > G_MAXUINT32)
            return usage_error("invalid --cluster-size '%s'", opt_cluster_size);
        p.cluster_size = (guint32)cs;
    }
    p.backing = opt_backing_vol;
    if (opt_backing_vol_format) {
        int f = gfpool_format_from_string(opt_backing_vol_format);
        if (f <= GFPOOL_FORMAT_NONE)
            return usage_error("invalid --backing-vol-format '%s'", opt_backing_vol_format);
        p.backing_format = f;
    }
    return create_and_report(&p);
}

const GOptionEntry gfpool_vol_create_options[] = {
    { "prealloc-metadata", 0, 0, G_OPTION_ARG_NONE, &opt_prealloc_metadata,
      "qcow2: preallocate metadata", NULL },
    { NULL }
};

int
cmd_vol_create(const GfpoolVerb *verb, int argc, char **argv)
{
    GfpoolVolCreateParams p = GFPOOL_VOL_CREATE_PARAMS_INIT;
    g_autoptr(GError) err = NULL;
    g_autoptr(GfpoolVolDef) def = NULL;
    g_autofree char *xml = NULL;
    g_autofree char *backing_name = NULL;
    gsize len;
    int rc = EXIT_OK;

    if (!parse_verb_args(verb, &argc, &argv, &rc))
        return rc;
    if (argc != 2)
        return usage_error("vol-create takes one argument, the XML file");
    if (!g_file_get_contents(argv[1], &xml, &len, &err))
        return usage_error("%s", err->message);
    if (!(def = gfpool_vol_def_parse(xml, len, &err))) {
        g_printerr("gfpool: error: %s: %s\n", argv[1], err->message);
        return EXIT_USAGE;
    }
    p.name = def->name;
    p.capacity = def->capacity;
    p.format = GFPOOL_FORMAT_RAW;
    if (def->format && !gfpool_create_format_parse(def->format, &p.format, &err))
        return usage_error("%s", err->message);
    if (opt_prealloc_metadata)
        p.prealloc = GFPOOL_PREALLOC_METADATA;
    else if (p.format == GFPOOL_FORMAT_RAW && def->has_allocation &&
             def->allocation >= def->capacity && def->capacity > 0)
        p.prealloc = GFPOOL_PREALLOC_FALLOC;
    p.cluster_size = def->cluster_size;
    if (def->backing_path) {
        g_autoptr(GfpoolSource) src = pool_source(&err);
        if (!src)
            return fail(err);
        if (!(p.backing = backing_name = gfpool_uri_pool_volume_name(src, def->backing_path)))
            return usage_error("backing store '%s' of volume '%s' is not a volume of this pool",
                               def->backing_path, def->name);
        if (def->backing_format) {
            int f = gfpool_format_from_string(def->backing_format);
            if (f <= GFPOOL_FORMAT_NONE)
                return usage_error("invalid backing format '%s'", def->backing_format);
            p.backing_format = f;
        }
    }
    p.mode = def->mode;
    p.uid = def->uid;
    p.gid = def->gid;
    return create_and_report(&p);
}
