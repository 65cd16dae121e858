/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gfpool_data_verbs.c: the volume verbs that move or change a volume's
 * data, over gfpool_data.c: vol-clone, vol-resize, vol-wipe, vol-upload,
 * vol-download. The ones that take time with the size of the volume.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "gfpool_data.h"
#include "gfpool_vol_xml.h"

#include "gfpool_tools.h"

static char *opt_format;

const GOptionEntry gfpool_vol_clone_options[] = {
    { "format", 0, 0, G_OPTION_ARG_STRING, &opt_format, "format of the clone (default: the source's)", "F" },
    { NULL }
};

int
cmd_vol_clone(const GfpoolVerb *verb, int argc, char **argv)
{
    GfpoolVolCreateParams p = GFPOOL_VOL_CREATE_PARAMS_INIT;
    g_autoptr(GError) err = NULL;
    g_autoptr(GfpoolVolInfo) info = NULL;
    GfpoolConn *conn;
    int rc = EXIT_OK;

    if (!parse_verb_args(verb, &argc, &argv, &rc))
        return rc;
    if (argc != 3)
        return usage_error("vol-clone takes two arguments, VOL and NEWNAME");
    if (!gfpool_vol_name_validate(argv[2], strlen(argv[2]), &err))
        return fail(err);
    /* checked before connecting: a bad --format is a usage error, as for
     * vol-create-as */
    if (opt_format && !gfpool_create_format_parse(opt_format, &p.format, &err))
        return usage_error("%s", err->message);
    if (!(conn = pool_connect(&rc)))
        return rc;
    if (!(info = gfpool_vol_info(conn, argv[1], NULL, &err)))
        return finish(conn, fail(err));
    p.name = argv[2];
    if (!opt_format)
        p.format = info->format;
    p.mode = info->mode;
    if (!gfpool_vol_clone(conn, argv[1], &p, &err))
        return finish(conn, fail(err));
    printf("Vol %s cloned from %s\n", argv[2], argv[1]);
    return finish(conn, EXIT_OK);
}

static gboolean opt_delta;
static gboolean opt_shrink;
static gboolean opt_allocate;

const GOptionEntry gfpool_vol_resize_options[] = {
    { "delta", 0, 0, G_OPTION_ARG_NONE, &opt_delta, "CAPACITY is added to (with --shrink: taken from) the current one", NULL },
    { "shrink", 0, 0, G_OPTION_ARG_NONE, &opt_shrink, "allow a smaller capacity (raw only)", NULL },
    { "allocate", 0, 0, G_OPTION_ARG_NONE, &opt_allocate, "allocate the new space (raw only)", NULL },
    { NULL }
};

int
cmd_vol_resize(const GfpoolVerb *verb, int argc, char **argv)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GfpoolVolInfo) info = NULL;
    guint64 cap;
    unsigned int flags = 0;
    GfpoolConn *conn;
    int rc = EXIT_OK;

    if (!parse_verb_args(verb, &argc, &argv, &rc))
        return rc;
    if (argc != 3)
        return usage_error("vol-resize takes two arguments, VOL and CAPACITY");
    if (!gfpool_parse_scaled(argv[2], &cap, &err))
        return fail(err);
    if (!(conn = pool_connect(&rc)))
        return rc;
    if (!(info = gfpool_vol_info(conn, argv[1], NULL, &err)))
        return finish(conn, fail(err));
    if (opt_delta)
        cap = opt_shrink ? info->capacity - MIN(cap, info->capacity) : info->capacity + cap;
    if (cap < info->capacity && !opt_shrink) {
        g_printerr("gfpool: error: %" G_GUINT64_FORMAT " is below the capacity of '%s' (%"
                   G_GUINT64_FORMAT "): give --shrink\n", cap, argv[1], info->capacity);
        return finish(conn, EXIT_USAGE);
    }
    if (opt_shrink)
        flags |= GFPOOL_RESIZE_SHRINK;
    if (opt_allocate)
        flags |= GFPOOL_RESIZE_ALLOCATE;
    if (!gfpool_vol_resize(conn, argv[1], cap, flags, &err))
        return finish(conn, fail(err));
    printf("Size of volume '%s' successfully changed to %" G_GUINT64_FORMAT "\n", argv[1], cap);
    return finish(conn, EXIT_OK);
}

static char *opt_algorithm;

const GOptionEntry gfpool_vol_wipe_options[] = {
    { "algorithm", 0, 0, G_OPTION_ARG_STRING, &opt_algorithm, "zero (default) or trim", "ALG" },
    { NULL }
};

int
cmd_vol_wipe(const GfpoolVerb *verb, int argc, char **argv)
{
    g_autoptr(GError) err = NULL;
    GfpoolWipeAlgorithm alg = GFPOOL_WIPE_ZERO;
    GfpoolConn *conn;
    int rc = EXIT_OK;

    if (!parse_verb_args(verb, &argc, &argv, &rc))
        return rc;
    if (argc != 2)
        return usage_error("vol-wipe takes one argument, the volume name");
    if (opt_algorithm && g_str_equal(opt_algorithm, "trim"))
        alg = GFPOOL_WIPE_TRIM;
    else if (opt_algorithm && !g_str_equal(opt_algorithm, "zero"))
        return usage_error("wipe algorithm '%s' is not supported: use zero or trim", opt_algorithm);
    if (!(conn = pool_connect(&rc)))
        return rc;
    if (!gfpool_vol_wipe(conn, argv[1], alg, &err))
        return finish(conn, fail(err));
    printf("Vol %s wiped\n", argv[1]);
    return finish(conn, EXIT_OK);
}

static char *opt_offset;
static char *opt_length;
static gboolean opt_sparse;

const GOptionEntry gfpool_vol_transfer_options[] = {
    { "offset", 0, 0, G_OPTION_ARG_STRING, &opt_offset, "start at this byte of the volume", "N" },
    { "length", 0, 0, G_OPTION_ARG_STRING, &opt_length, "this many bytes at most", "N" },
    { "sparse", 0, 0, G_OPTION_ARG_NONE, &opt_sparse, "keep holes", NULL },
    { NULL }
};

static int
vol_transfer(const GfpoolVerb *verb, int argc, char **argv, gboolean upload)
{
    g_autoptr(GError) err = NULL;
    guint64 offset = 0, length = 0;
    GfpoolConn *conn;
    gboolean ok;
    int rc = EXIT_OK, fd;

    if (!parse_verb_args(verb, &argc, &argv, &rc))
        return rc;
    if (argc != 3)
        return usage_error("%s takes two arguments, VOL and FILE", verb->name);
    if ((opt_offset && !gfpool_parse_scaled(opt_offset, &offset, &err)) ||
        (opt_length && !gfpool_parse_scaled(opt_length, &length, &err)))
        return fail(err);
    if (upload)
        fd = g_str_equal(argv[2], "-") ? 0 : open(argv[2], O_RDONLY | O_CLOEXEC);
    else
        fd = g_str_equal(argv[2], "-") ? 1 : open(argv[2], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return usage_error("cannot open '%s': %s", argv[2], g_strerror(errno));
    if (!(conn = pool_connect(&rc)))
        return rc;
    if (upload)
        ok = gfpool_vol_upload(conn, argv[1], offset, length, fd, opt_sparse, NULL, NULL, &err);
    else
        ok = gfpool_vol_download(conn, argv[1], offset, length, fd, opt_sparse, NULL, &err);
    if (!ok)
        return finish(conn, fail(err));
    if (!upload && fd != 1 && fsync(fd) < 0 && errno != EINVAL) {
        g_printerr("gfpool: error: cannot flush '%s': %s\n", argv[2], g_strerror(errno));
        return finish(conn, EXIT_FAILED);
    }
    return finish(conn, EXIT_OK);
}

int
cmd_vol_upload(const GfpoolVerb *verb, int argc, char **argv)
{
    return vol_transfer(verb, argc, argv, TRUE);
}

int
cmd_vol_download(const GfpoolVerb *verb, int argc, char **argv)
{
    return vol_transfer(verb, argc, argv, FALSE);
}
