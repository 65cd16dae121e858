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

/* ---- the progress line ---------------------------------------------- */

/*
 * While clone, wipe, upload or download runs, one line on stderr redrawn in
 * place: bytes done of the total, the average rate, the time left. Only for
 * a person watching: not with --quiet, not when stderr is no terminal
 * (scripts, logs), not when the data itself goes to or comes from a
 * terminal. The core reports at every chunk from its copying threads; the
 * line is redrawn a few times a second at most, and a thread that finds
 * another drawing goes back to copying rather than wait for it. The first
 * draw waits as long as a redraw: early rates are noise, and a verb done by
 * then draws only its last line.
 */
#define PROGRESS_REDRAW_USEC (G_USEC_PER_SEC / 4)

typedef struct {
    GMutex lock;
    gint64 start;
    gint64 next;        /* no redraw before this, but the last one */
    guint64 done;       /* the most reported so far */
    guint64 total;
    gsize width;        /* of the line on screen, to blank what a shorter one leaves */
    gboolean drawn;
} ProgressLine;

static gboolean opt_quiet;

#define QUIET_OPTION \
    { "quiet", 'q', 0, G_OPTION_ARG_NONE, &opt_quiet, "no progress line on a terminal", NULL }

static char *
progress_duration(gint64 usec)
{
    gint64 s = usec / G_USEC_PER_SEC;

    if (s >= 3600)
        return g_strdup_printf("%" G_GINT64_FORMAT "h%02dm", s / 3600, (int)(s % 3600 / 60));
    if (s >= 60)
        return g_strdup_printf("%dm%02ds", (int)(s / 60), (int)(s % 60));
    return g_strdup_printf("%ds", (int)s);
}

static void
progress_draw(ProgressLine *pl, guint64 done, guint64 total, gint64 now)
{
    g_autoptr(GString) line = g_string_new("\r");
    g_autofree char *done_s = human_size(done);
    gint64 elapsed = now - pl->start;
    double rate = elapsed > 0 ? (double)done * G_USEC_PER_SEC / (double)elapsed : 0;
    gsize width;

    g_string_append(line, done_s);
    if (total) {
        g_autofree char *total_s = human_size(total);
        g_string_append_printf(line, " / %s  %3d%%", total_s,
                               (int)(done >= total ? 100 : done * 100 / total));
    }
    if (rate >= 1) {
        g_autofree char *rate_s = human_size((guint64)rate);
        g_string_append_printf(line, "  %s/s", rate_s);
    }
    if (total && done >= total) {
        g_autofree char *took = progress_duration(elapsed);
        g_string_append_printf(line, "  in %s", took);
    } else if (total && rate >= 1) {
        g_autofree char *left = progress_duration((gint64)((double)(total - done) / rate *
                                                           G_USEC_PER_SEC));
        g_string_append_printf(line, "  %s left", left);
    }
    width = line->len - 1;
    if (width < pl->width)
        g_string_append_printf(line, "%*s", (int)(pl->width - width), "");
    pl->width = width;
    pl->drawn = TRUE;
    fwrite(line->str, 1, line->len, stderr);
    fflush(stderr);
}

static void
progress_report(guint64 done, guint64 total, void *opaque)
{
    ProgressLine *pl = opaque;
    gint64 now;

    if (!g_mutex_trylock(&pl->lock))
        return;
    now = g_get_monotonic_time();
    pl->done = MAX(pl->done, done);
    pl->total = total;
    if (now >= pl->next) {
        progress_draw(pl, pl->done, total, now);
        pl->next = now + PROGRESS_REDRAW_USEC;
    }
    g_mutex_unlock(&pl->lock);
}

/* report set up for a verb whose data does not touch a terminal, or NULL
 * when no progress line is to be drawn. */
static const GfpoolReport *
progress_start(ProgressLine *pl, GfpoolReport *report, int data_fd)
{
    if (opt_quiet || !isatty(2) || (data_fd >= 0 && isatty(data_fd)))
        return NULL;
    g_mutex_init(&pl->lock);
    pl->start = g_get_monotonic_time();
    pl->next = pl->start + PROGRESS_REDRAW_USEC;
    report->func = progress_report;
    report->opaque = pl;
    return report;
}

/* The line ends before anything else is printed: after a success with the
 * total and the time the whole verb took (its flush included), after a
 * failure where it was. */
static void
progress_end(ProgressLine *pl, const GfpoolReport *report, gboolean ok)
{
    if (!report)
        return;
    if (ok)
        progress_draw(pl, pl->done, pl->total, g_get_monotonic_time());
    if (pl->drawn)
        fputc('\n', stderr);
    g_mutex_clear(&pl->lock);
}

/* ---- the verbs ------------------------------------------------------ */

static char *opt_format;

const GOptionEntry gfpool_vol_clone_options[] = {
    { "format", 0, 0, G_OPTION_ARG_STRING, &opt_format, "format of the clone (default: the source's)", "F" },
    QUIET_OPTION,
    { NULL }
};

int
cmd_vol_clone(const GfpoolVerb *verb, int argc, char **argv)
{
    GfpoolVolCreateParams p = GFPOOL_VOL_CREATE_PARAMS_INIT;
    g_autoptr(GError) err = NULL;
    g_autoptr(GfpoolVolInfo) info = NULL;
    ProgressLine pl = { 0 };
    GfpoolReport report;
    const GfpoolReport *rp;
    GfpoolConn *conn;
    gboolean ok;
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
    rp = progress_start(&pl, &report, -1);
    ok = gfpool_vol_clone(conn, argv[1], &p, rp, &err);
    progress_end(&pl, rp, ok);
    if (!ok)
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
    QUIET_OPTION,
    { NULL }
};

int
cmd_vol_wipe(const GfpoolVerb *verb, int argc, char **argv)
{
    g_autoptr(GError) err = NULL;
    GfpoolWipeAlgorithm alg = GFPOOL_WIPE_ZERO;
    ProgressLine pl = { 0 };
    GfpoolReport report;
    const GfpoolReport *rp;
    GfpoolConn *conn;
    gboolean ok;
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
    rp = progress_start(&pl, &report, -1);
    ok = gfpool_vol_wipe(conn, argv[1], alg, rp, &err);
    progress_end(&pl, rp, ok);
    if (!ok)
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
    QUIET_OPTION,
    { NULL }
};

static int
vol_transfer(const GfpoolVerb *verb, int argc, char **argv, gboolean upload)
{
    g_autoptr(GError) err = NULL;
    guint64 offset = 0, length = 0;
    ProgressLine pl = { 0 };
    GfpoolReport report;
    const GfpoolReport *rp;
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
    rp = progress_start(&pl, &report, fd);
    if (upload)
        ok = gfpool_vol_upload(conn, argv[1], offset, length, fd, opt_sparse, NULL, NULL, rp,
                               &err);
    else
        ok = gfpool_vol_download(conn, argv[1], offset, length, fd, opt_sparse, NULL, rp, &err);
    progress_end(&pl, rp, ok);
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
