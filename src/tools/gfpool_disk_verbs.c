/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gfpool_disk_verbs.c: what a guest's disk needs, read from the pool (or a
 * libvirt daemon) and changing nothing in it: disk-xml, virt-install-disk,
 * uri-parse, and nbd-grant and nbd-hook for the guests of
 * nbdkit-gfpool-plugin.
 */
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gfpool_disk_xml.h"
#include "gfpool_guest.h"
#include "gfpool_uri.h"

#include "gfpool_tools.h"

int
cmd_uri_parse(const GfpoolVerb *verb, int argc, char **argv)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GfpoolUri) uri = NULL;
    g_autofree char *canon = NULL;
    int rc = EXIT_OK;

    if (!parse_verb_args(verb, &argc, &argv, &rc))
        return rc;
    if (argc != 2)
        return usage_error("uri-parse takes one argument, the URI");
    if (!(uri = gfpool_uri_parse(argv[1], &err)))
        return fail(err);
    canon = gfpool_uri_format(uri);
    printf("transport: %s\n", gfpool_transport_to_string(uri->host->transport));
    if (uri->host->name)
        printf("server: %s\n", uri->host->name);
    if (uri->host->port)
        printf("port: %d\n", uri->host->port);
    if (uri->host->socket)
        printf("socket: %s\n", uri->host->socket);
    printf("volume: %s\npath: %s\nuri: %s\n", uri->volume, uri->path, canon);
    return EXIT_OK;
}

/*
 * Once libvirt's qemu hook, run before each guest started to write which
 * volumes it may open through nbdkit-gfpool-plugin. The plugin now reads
 * libvirt's own records, which exist before QEMU starts; a hook left
 * behind by an old package (a conffile kept by `apt-get remove`) must
 * never stop a guest from starting, so this does nothing and succeeds.
 */
int
cmd_nbd_hook(const GfpoolVerb *verb, int argc, char **argv)
{
    /* no option parsing: a guest may be called "-x" */
    if (argc == 2 && (g_str_equal(argv[1], "--help") || g_str_equal(argv[1], "--help-all")))
        printf("Usage:\n  gfpool %s %s\n\n%s\n%s\n\n"
               "Help Options:\n  -h, --help       Show help options\n",
               verb->name, verb->args, verb->summary, verb->details);
    return EXIT_OK;
}

static char *opt_state_dir;
static char *opt_grant_dir;
static gint opt_seconds = GFPOOL_NBD_GRANT_MAX_S;

/*
 * `gfpool nbd-grant DOMAIN SOCKET EXPORT... [-- COMMAND...]`: QEMU opens
 * a disk being attached, a blockcopy destination and an external
 * snapshot's overlay before libvirt writes them into the domain's status
 * (docs/nbd.md), which is what nbdkit-gfpool-plugin's guests=libvirt
 * reads. A grant lets the domain's current QEMU open those exports until
 * the status names them, at most a minute; with a COMMAND, only while it
 * runs (its exit status is ours).
 */
const GOptionEntry gfpool_nbd_grant_options[] = {
    { "seconds", 0, 0, G_OPTION_ARG_INT, &opt_seconds,
      "how long the grant lasts (1-60, default 60)", "N" },
    { "state-dir", 0, 0, G_OPTION_ARG_FILENAME, &opt_state_dir,
      "libvirt's QEMU state dir (default " GFPOOL_QEMU_STATE_DIR ")", "DIR" },
    { "grant-dir", 0, 0, G_OPTION_ARG_FILENAME, &opt_grant_dir,
      "the plugin's grant-dir (default " GFPOOL_NBD_GRANT_DIR ")", "DIR" },
    { NULL }
};

int
cmd_nbd_grant(const GfpoolVerb *verb, int argc, char **argv)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GfpoolGuest) guest = NULL;
    g_autoptr(GPtrArray) files = g_ptr_array_new_with_free_func(g_free);
    char **command = NULL;
    const char *state_dir, *grant_dir;
    int rc = EXIT_OK;

    /* what follows a "--" is the command, never options of ours */
    for (int i = 1; i < argc; i++) {
        if (g_str_equal(argv[i], "--")) {
            command = i + 1 < argc ? &argv[i + 1] : NULL;
            argv[i] = NULL;
            argc = i;
            if (!command)
                return usage_error("nbd-grant: nothing after '--'");
            break;
        }
    }
    if (!parse_verb_args(verb, &argc, &argv, &rc))
        return rc;
    if (argc < 4)
        return usage_error("nbd-grant takes the domain, the server's socket and the exports");
    if (geteuid() != 0) {
        g_printerr("gfpool: error: nbd-grant: only root may grant a guest a volume\n");
        return EXIT_FAILED;
    }
    state_dir = opt_state_dir ? opt_state_dir : GFPOOL_QEMU_STATE_DIR;
    grant_dir = opt_grant_dir ? opt_grant_dir : GFPOOL_NBD_GRANT_DIR;
    for (int i = 3; i < argc; i++) {
        if (!gfpool_vol_name_validate(argv[i], strlen(argv[i]), &err))
            return usage_error("nbd-grant: export '%s': %s", argv[i], err->message);
    }
    if (!(guest = gfpool_guest_by_name(state_dir, argv[1], &err)))
        return fail(err);
    for (int i = 3; i < argc; i++) {
        char *file = gfpool_nbd_grant_write(grant_dir, guest, argv[2], argv[i],
                                            (guint)CLAMP(opt_seconds, 0, G_MAXINT), &err);
        if (!file) {
            rc = fail(err);
            command = NULL;
            break;
        }
        g_ptr_array_add(files, file);
    }
    if (command) {
        g_autoptr(GError) run_err = NULL;
        int status;

        if (!g_spawn_sync(NULL, command, NULL,
                          G_SPAWN_SEARCH_PATH | G_SPAWN_CHILD_INHERITS_STDIN,
                          NULL, NULL, NULL, NULL, &status, &run_err)) {
            g_printerr("gfpool: error: nbd-grant: %s\n", run_err->message);
            rc = EXIT_FAILED;
        } else if (WIFEXITED(status)) {
            rc = WEXITSTATUS(status);
        } else {
            rc = EXIT_FAILED;
        }
    }
    /* with a command, or after a failure: the grants end here */
    for (guint i = 0; (command || rc != EXIT_OK) && i < files->len; i++) {
        g_autoptr(GError) rm_err = NULL;

        if (!gfpool_nbd_grant_remove(grant_dir, g_ptr_array_index(files, i), &rm_err))
            g_printerr("gfpool: warning: %s\n", rm_err->message);
    }
    return rc;
}

static char *opt_target;
static char *opt_bus;
static char *opt_cache;
static char *opt_discard;
static gboolean opt_readonly;
static char *opt_output;

static char *opt_connect;
static char *opt_pool;
static char *opt_nbd;
static gint opt_reconnect_delay;

static char *opt_image_format;

/*
 * --image-format: the administrator says what the top volume is. Raw ends
 * the chain there, whatever the bytes say; another format must be the
 * volume's record or, without one, what its header reads as, and the
 * layers below it need records. *chainp is the chain to check further, or
 * NULL when the given format ended it.
 */
static gboolean
disk_chain_given(GfpoolConn *conn, const char *volname, GPtrArray *layers, GPtrArray **chainp)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GfpoolVolInfo) top = NULL;
    int given = gfpool_format_from_string(opt_image_format);

    *chainp = NULL;
    if (given <= GFPOOL_FORMAT_NONE) {
        usage_error("invalid --image-format '%s'", opt_image_format);
        return FALSE;
    }
    if (!(top = gfpool_vol_info(conn, volname, NULL, &err))) {
        fail(err);
        return FALSE;
    }
    if (top->recorded && top->format != (GfpoolFormat)given) {
        usage_error("volume '%s' is recorded as %s, not %s", volname,
                    format_name(top->format), opt_image_format);
        return FALSE;
    }
    if (given == GFPOOL_FORMAT_RAW) {
        g_ptr_array_add(layers, gfpool_disk_layer_new(volname, "raw"));
        *chainp = g_ptr_array_new_with_free_func((GDestroyNotify)gfpool_vol_info_free);
        return TRUE;
    }
    if (top->format != (GfpoolFormat)given || top->warning) {
        usage_error("volume '%s' is not a sound %s image: %s", volname, opt_image_format,
                    top->warning ? top->warning : format_name(top->format));
        return FALSE;
    }
    if (!(*chainp = gfpool_vol_backing_chain(conn, volname, NULL, &err))) {
        fail(err);
        return FALSE;
    }
    g_ptr_array_add(layers, gfpool_disk_layer_new(volname, opt_image_format));
    return TRUE;
}

/* The chain from gfapi (the pool options) or from libvirt (--connect). */
static int
disk_chain(const char *volname, GfpoolSource **srcp, GPtrArray **layersp, GfpoolConn **connp)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GPtrArray) chain = NULL;
    g_autoptr(GPtrArray) layers = NULL;
    int rc = EXIT_OK;

    if (opt_connect) {
        if (!opt_pool)
            return usage_error("--connect needs --pool NAME");
        if (opt_image_format)
            return usage_error("--image-format goes with the pool options: through --connect the "
                               "formats are the daemon's");
        return libvirt_chain(opt_connect, opt_pool, volname, srcp, layersp);
    }
    if (!(*connp = pool_connect(&rc)))
        return rc;
    layers = g_ptr_array_new_with_free_func((GDestroyNotify)gfpool_disk_layer_free);
    if (opt_image_format && !disk_chain_given(*connp, volname, layers, &chain))
        return EXIT_USAGE;
    if (!chain && !(chain = gfpool_vol_backing_chain(*connp, volname, NULL, &err)))
        return fail(err);
    for (guint i = layers->len; i < chain->len; i++) {
        const GfpoolVolInfo *info = g_ptr_array_index(chain, i);
        /* A format read from bytes a guest may have written decides
         * nothing that a guest then gets: the disk names only layers an
         * administrator's verb made (or vouched for). */
        if (!info->recorded) {
            g_printerr("gfpool: error: volume '%s' has no format record: its format (%s) was only "
                       "read from its own bytes, which a guest may have written; record it with "
                       "'gfpool vol-record --format FORMAT %s'%s\n", info->name,
                       format_name(info->format), info->name,
                       i == 0 ? " or give --image-format" : "");
            return EXIT_FAILED;
        }
        if (info->warning) {
            g_printerr("gfpool: error: volume '%s' cannot be used: %s\n", info->name, info->warning);
            return EXIT_FAILED;
        }
        g_ptr_array_add(layers, gfpool_disk_layer_new(info->name, format_name(info->format)));
    }
    *srcp = gfpool_source_copy(gfpool_conn_source(*connp));
    *layersp = g_steal_pointer(&layers);
    return EXIT_OK;
}

const GOptionEntry gfpool_disk_xml_options[] = {
    { "target", 0, 0, G_OPTION_ARG_STRING, &opt_target, "target dev (default vda)", "DEV" },
    { "bus", 0, 0, G_OPTION_ARG_STRING, &opt_bus, "target bus (default virtio)", "BUS" },
    { "cache", 0, 0, G_OPTION_ARG_STRING, &opt_cache, "driver cache mode (none, writeback, ...)", "MODE" },
    { "discard", 0, 0, G_OPTION_ARG_STRING, &opt_discard, "driver discard (unmap, ignore)", "MODE" },
    { "readonly", 0, 0, G_OPTION_ARG_NONE, &opt_readonly, "read-only disk", NULL },
    { "format", 0, 0, G_OPTION_ARG_STRING, &opt_output, "xml (default) or uri", "OUT" },
    { "connect", 'c', 0, G_OPTION_ARG_STRING, &opt_connect,
      "read the pool and volume from this libvirt (any, remote too) instead of gfapi", "URI" },
    { "pool", 0, 0, G_OPTION_ARG_STRING, &opt_pool, "the libvirt pool, with --connect", "NAME" },
    { "image-format", 0, 0, G_OPTION_ARG_STRING, &opt_image_format,
      "the volume's format, for a volume without a format record (raw names no backing chain)",
      "F" },
    { "nbd", 0, 0, G_OPTION_ARG_FILENAME, &opt_nbd,
      "the images as exports of nbdkit-gfpool-plugin on this unix socket, not through "
      "QEMU's gluster driver", "SOCKET" },
    { "reconnect-delay", 0, 0, G_OPTION_ARG_INT, &opt_reconnect_delay,
      "with --nbd: QEMU holds the guest's I/O this long while nbdkit restarts "
      "(libvirt >= 9.2)", "SECONDS" },
    { NULL }
};

int
cmd_disk_xml(const GfpoolVerb *verb, int argc, char **argv)
{
    g_autoptr(GPtrArray) layers = NULL;
    g_autoptr(GfpoolSource) src = NULL;
    GfpoolConn *conn = NULL;
    int rc = EXIT_OK;

    if (!parse_verb_args(verb, &argc, &argv, &rc))
        return rc;
    if (argc != 2)
        return usage_error("disk-xml takes one argument, the volume name");
    if (opt_output && !g_str_equal(opt_output, "xml") && !g_str_equal(opt_output, "uri"))
        return usage_error("invalid --format '%s': use xml or uri", opt_output);
    if (opt_nbd && !g_path_is_absolute(opt_nbd))
        return usage_error("--nbd takes the socket's absolute path (QEMU opens it from its own directory)");
    if (opt_reconnect_delay && !opt_nbd)
        return usage_error("--reconnect-delay goes with --nbd (QEMU's gluster driver has no such setting)");
    if (opt_reconnect_delay < 0 || opt_reconnect_delay > GFPOOL_NBD_RECONNECT_DELAY_MAX)
        return usage_error("invalid --reconnect-delay %d: from 1 to %d seconds",
                           opt_reconnect_delay, GFPOOL_NBD_RECONNECT_DELAY_MAX);
    if ((rc = disk_chain(argv[1], &src, &layers, &conn)) != EXIT_OK)
        return conn ? finish(conn, rc) : rc;

    if (opt_output && g_str_equal(opt_output, "uri") && opt_nbd) {
        g_autofree char *esc = g_uri_escape_string(argv[1], NULL, FALSE);
        g_autofree char *sock = g_uri_escape_string(opt_nbd, "/", FALSE);
        printf("nbd+unix:///%s?socket=%s\n", esc, sock);
    } else if (opt_output && g_str_equal(opt_output, "uri")) {
        for (guint i = 0; i < src->hosts->len; i++) {
            g_autofree char *uri = gfpool_uri_for_volume(g_ptr_array_index(src->hosts, i),
                                                         src->volume, src->dir, argv[1]);
            printf("%s\n", uri);
        }
    } else {
        GfpoolDiskParams dp = {
            .src = src,
            .chain = layers,
            .target_dev = opt_target,
            .bus = opt_bus,
            .cache = opt_cache,
            .discard = opt_discard,
            .readonly = opt_readonly,
            .nbd_socket = opt_nbd,
            .nbd_reconnect_delay = (guint)opt_reconnect_delay,
        };
        g_autofree char *warn = NULL;
        g_autofree char *xml = gfpool_disk_xml(&dp, &warn);
        if (warn)
            g_printerr("gfpool: warning: %s\n", warn);
        fputs(xml, stdout);
    }
    return conn ? finish(conn, EXIT_OK) : EXIT_OK;
}

const GOptionEntry gfpool_virt_install_disk_options[] = {
    { "connect", 'c', 0, G_OPTION_ARG_STRING, &opt_connect, "libvirt URI to read the pool and volume from", "URI" },
    { NULL }
};

int
cmd_virt_install_disk(const GfpoolVerb *verb, int argc, char **argv)
{
    g_autoptr(GPtrArray) layers = NULL;
    g_autoptr(GfpoolSource) src = NULL;
    GfpoolConn *conn = NULL;
    const GfpoolDiskLayer *top;
    int rc = EXIT_OK;

    if (!parse_verb_args(verb, &argc, &argv, &rc))
        return rc;
    if (argc != 3)
        return usage_error("virt-install-disk takes two arguments, POOL and VOL");
    opt_pool = argv[1];
    if (!opt_connect && !pool_xml_or_host_given())
        opt_connect = (char *)"qemu:///system";
    if ((rc = disk_chain(argv[2], &src, &layers, &conn)) != EXIT_OK)
        return conn ? finish(conn, rc) : rc;
    top = g_ptr_array_index(layers, 0);
    /* vol= makes virt-install build the network disk from the pool XML,
     * every host included; only the format needs saying. */
    printf("vol=%s/%s,driver.type=%s\n", argv[1], argv[2], top->format);
    return conn ? finish(conn, EXIT_OK) : EXIT_OK;
}
