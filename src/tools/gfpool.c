/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gfpool: GlusterFS storage pool work without a libvirt daemon.
 *
 * Verbs are virsh's, acting straight on a gluster volume through gfapi. The
 * pool is a libvirt pool XML file (--pool-xml) or options (--host, repeatable,
 * --volume, --dir, --transport, --socket). The libvirt module calls the same
 * core functions.
 *
 * This file: main, the verb table, the pool options and the errors every
 * verb shares. The verbs are in gfpool_pool_verbs.c, gfpool_vol_verbs.c,
 * gfpool_data_verbs.c and gfpool_disk_verbs.c; gfpool_tools.h says which
 * file shares what.
 *
 * Exit codes (scripts rely on them):
 *   0 success, 1 operation failed, 2 usage or invalid input,
 *   3 no such volume, 4 volume exists, 5 cannot reach the gluster volume.
 */
#include <locale.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "gfpool_pool_xml.h"

#include "gfpool_tools.h"

/* Options shared by every verb that works on a pool. */
static char *opt_pool_xml;
static char **opt_hosts;
static char *opt_volume;
static char *opt_dir;
static char *opt_transport;
static char *opt_socket;
static int opt_timeout_ms;

static const GOptionEntry pool_entries[] = {
    { "pool-xml", 'p', 0, G_OPTION_ARG_FILENAME, &opt_pool_xml,
      "libvirt pool XML (<pool type='gluster'>) describing the pool", "FILE" },
    { "host", 'H', 0, G_OPTION_ARG_STRING_ARRAY, &opt_hosts,
      "gluster server, HOST[:PORT] or [IPV6][:PORT]; repeat for every server", "HOST" },
    { "volume", 'V', 0, G_OPTION_ARG_STRING, &opt_volume, "gluster volume name", "NAME" },
    { "dir", 'd', 0, G_OPTION_ARG_STRING, &opt_dir, "directory inside the volume (default /)", "PATH" },
    { "transport", 't', 0, G_OPTION_ARG_STRING, &opt_transport,
      "tcp (default), unix or rdma", "T" },
    { "socket", 's', 0, G_OPTION_ARG_FILENAME, &opt_socket,
      "glusterd socket for --transport unix", "PATH" },
    { "timeout", 0, 0, G_OPTION_ARG_INT, &opt_timeout_ms,
      "connect deadline in ms (default 7000)", "MS" },
    { NULL }
};

static int
exit_code_for(const GError *err)
{
    if (err->domain == GFPOOL_CONF_ERROR || err->domain == G_FILE_ERROR)
        return EXIT_USAGE;
    if (err->domain == GFPOOL_IMAGE_ERROR)
        return err->code == GFPOOL_IMAGE_ERROR_INVALID ? EXIT_USAGE : EXIT_FAILED;
    if (err->domain != GFPOOL_ERROR)
        return EXIT_FAILED;
    switch ((GfpoolErrorCode)err->code) {
    case GFPOOL_ERROR_NOT_FOUND:
        return EXIT_NOT_FOUND;
    case GFPOOL_ERROR_EXISTS:
        return EXIT_EXISTS;
    case GFPOOL_ERROR_INVALID:
        return EXIT_USAGE;
    case GFPOOL_ERROR_TIMEOUT:
    case GFPOOL_ERROR_UNREACHABLE:
    case GFPOOL_ERROR_DENIED:
        return EXIT_CONNECT;
    case GFPOOL_ERROR_UNSUPPORTED:
    case GFPOOL_ERROR_NOT_EMPTY:
    case GFPOOL_ERROR_FAILED:
        break;
    }
    return EXIT_FAILED;
}

/* Every failing core call sets an error; one that did not is a bug of
 * ours, reported as such rather than crashing on the missing message. */
int
fail(GError *err)
{
    if (!err) {
        g_printerr("gfpool: error: %s\n", gfpool_error_text(err));
        return EXIT_FAILED;
    }
    g_printerr("gfpool: error: %s\n", err->message);
    return exit_code_for(err);
}

int
usage_error(const char *fmt, ...)
{
    va_list ap;
    g_autofree char *msg = NULL;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_printerr("gfpool: error: %s\n", msg);
    return EXIT_USAGE;
}

/* "host", "host:port", "[v6]", "[v6]:port" */
static GfpoolHost *
parse_host_opt(const char *s, GfpoolTransport t, GError **error)
{
    g_autofree char *name = NULL;
    const char *port_str = NULL;
    guint64 port = 0;

    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || (close[1] && close[1] != ':')) {
            g_set_error(error, GFPOOL_CONF_ERROR, GFPOOL_CONF_ERROR_INVALID,
                        "invalid --host '%s': expected [IPV6] or [IPV6]:PORT", s);
            return NULL;
        }
        name = g_strndup(s + 1, close - s - 1);
        if (close[1] == ':')
            port_str = close + 2;
    } else {
        const char *colon = strchr(s, ':');
        if (colon && strchr(colon + 1, ':')) {
            g_set_error(error, GFPOOL_CONF_ERROR, GFPOOL_CONF_ERROR_INVALID,
                        "invalid --host '%s': put IPv6 addresses in brackets", s);
            return NULL;
        }
        name = colon ? g_strndup(s, colon - s) : g_strdup(s);
        if (colon)
            port_str = colon + 1;
    }
    if (port_str && !g_ascii_string_to_unsigned(port_str, 10, 1, 65535, &port, NULL)) {
        g_set_error(error, GFPOOL_CONF_ERROR, GFPOOL_CONF_ERROR_INVALID,
                    "invalid --host '%s': port '%s' is not in 1-65535", s, port_str);
        return NULL;
    }
    return gfpool_host_new(t, name, (int)port, NULL);
}

/* Whether the pool comes from --pool-xml or --host (not from libvirt). */
gboolean
pool_xml_or_host_given(void)
{
    return opt_pool_xml || opt_hosts;
}

/* The pool from --pool-xml or the options; options override the file. */
GfpoolSource *
pool_source(GError **error)
{
    g_autoptr(GfpoolSource) src = NULL;
    int transport = GFPOOL_TRANSPORT_TCP;

    if (opt_pool_xml) {
        g_autofree char *xml = NULL;
        gsize len;
        g_autoptr(GfpoolPoolDef) def = NULL;

        if (!g_file_get_contents(opt_pool_xml, &xml, &len, error))
            return NULL;
        if (!(def = gfpool_pool_def_parse(xml, len, error))) {
            g_prefix_error(error, "%s: ", opt_pool_xml);
            return NULL;
        }
        src = g_steal_pointer(&def->source);
    } else {
        src = gfpool_source_new();
    }

    if (opt_transport && (transport = gfpool_transport_from_string(opt_transport)) < 0) {
        g_set_error(error, GFPOOL_CONF_ERROR, GFPOOL_CONF_ERROR_INVALID,
                    "invalid --transport '%s': use tcp, unix or rdma", opt_transport);
        return NULL;
    }
    if (opt_hosts || opt_socket) {
        g_ptr_array_set_size(src->hosts, 0);
        if (transport == GFPOOL_TRANSPORT_UNIX) {
            if (opt_hosts) {
                g_set_error(error, GFPOOL_CONF_ERROR, GFPOOL_CONF_ERROR_INVALID,
                            "--host cannot be used with --transport unix: give --socket");
                return NULL;
            }
            g_ptr_array_add(src->hosts, gfpool_host_new(GFPOOL_TRANSPORT_UNIX, NULL, 0, opt_socket));
        } else {
            if (opt_socket) {
                g_set_error(error, GFPOOL_CONF_ERROR, GFPOOL_CONF_ERROR_INVALID,
                            "--socket needs --transport unix");
                return NULL;
            }
            for (char **h = opt_hosts; *h; h++) {
                GfpoolHost *host = parse_host_opt(*h, transport, error);
                if (!host)
                    return NULL;
                g_ptr_array_add(src->hosts, host);
            }
        }
    }
    if (opt_volume) {
        g_free(src->volume);
        src->volume = g_strdup(opt_volume);
    }
    if (opt_dir) {
        g_free(src->dir);
        src->dir = gfpool_dir_sanitize(opt_dir);
    }
    if (!src->dir)
        src->dir = g_strdup("/");
    if (!src->volume) {
        g_set_error(error, GFPOOL_CONF_ERROR, GFPOOL_CONF_ERROR_INVALID,
                    "no gluster volume: give --pool-xml or --volume");
        return NULL;
    }
    if (src->hosts->len == 0) {
        g_set_error(error, GFPOOL_CONF_ERROR, GFPOOL_CONF_ERROR_INVALID,
                    "no gluster server: give --pool-xml, --host or --socket");
        return NULL;
    }
    if (!gfpool_source_validate(src, error))
        return NULL;
    return g_steal_pointer(&src);
}

GfpoolConn *
pool_connect_flags(int *rc, unsigned int flags)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GfpoolSource) src = NULL;
    GfpoolConn *conn;

    if (!(src = pool_source(&err))) {
        *rc = fail(err);
        return NULL;
    }
    if (!(conn = gfpool_conn_open_flags(src, opt_timeout_ms > 0 ? (guint)opt_timeout_ms : 0,
                                        flags, &err))) {
        g_printerr("gfpool: error: %s\n", err->message);
        /* Reached the volume but not the pool dir: that is "not found". */
        *rc = err->code == GFPOOL_ERROR_NOT_FOUND ? EXIT_NOT_FOUND : EXIT_CONNECT;
        return NULL;
    }
    return conn;
}

GfpoolConn *
pool_connect(int *rc)
{
    return pool_connect_flags(rc, 0);
}

/*
 * A short-lived process never waits for glfs_fini (up to 10 s): everything
 * it wrote is fsynced and closed by then, so it just leaves.
 */
int
finish(GfpoolConn *conn, int rc)
{
    fflush(stdout);
    fflush(stderr);
    gfpool_conn_abandon(conn);
    _exit(rc);
}

/* Parse argv for one verb: pool options + the verb's own. */
gboolean
parse_verb_args(const GfpoolVerb *verb, int *argc, char ***argv, int *rc)
{
    g_autoptr(GOptionContext) ctx = NULL;
    g_autoptr(GError) err = NULL;
    g_autofree char *prgname = g_strdup_printf("gfpool %s", verb->name);
    g_autofree char *summary = NULL;
    g_autofree char *usage = NULL;

    /* "Usage: gfpool vol-upload [OPTION…] VOL FILE", not argv[0] (the
     * verb) twice. */
    g_set_prgname(prgname);
    /* A required option ("--format F") stays on the usage line. */
    usage = verb->options[0] && verb->options[0] != '[' ?
        g_strdup_printf("%s %s", verb->options, verb->args) : g_strdup(verb->args);
    ctx = g_option_context_new(usage);
    summary = verb->details ? g_strdup_printf("%s\n%s", verb->summary, verb->details)
                            : g_strdup(verb->summary);
    g_option_context_set_summary(ctx, summary);
    if (verb->entries)
        g_option_context_add_main_entries(ctx, verb->entries, NULL);
    if (verb->needs_pool) {
        GOptionGroup *g = g_option_group_new("pool", "Pool options:",
                                             "Show the pool options", NULL, NULL);
        g_option_group_add_entries(g, pool_entries);
        g_option_context_add_group(ctx, g);
        g_option_context_set_description(ctx,
            "Pool options (--pool-xml FILE, or --host/--volume/--dir/--transport/--socket)\n"
            "are listed by --help-pool.\n\n"
            "Exit codes: 0 ok, 1 failed, 2 usage/invalid input, 3 no such volume,\n"
            "4 volume exists, 5 cannot reach the gluster volume.");
    }
    if (!g_option_context_parse(ctx, argc, argv, &err)) {
        *rc = usage_error("%s: %s (see 'gfpool %s --help')", verb->name, err->message, verb->name);
        return FALSE;
    }
    /* GLib keeps "--" when what follows looks like an option; it only
     * ends the options, so a volume may be called "-x.img". */
    for (int i = 1; i < *argc; i++) {
        if (g_str_equal((*argv)[i], "--")) {
            memmove(&(*argv)[i], &(*argv)[i + 1], (*argc - i) * sizeof(char *));
            (*argc)--;
            break;
        }
    }
    return TRUE;
}

const char *
format_name(GfpoolFormat f)
{
    const char *s = gfpool_format_to_string(f);
    return s ? s : "unknown";
}

char *
human_size(guint64 v)
{
    /* virsh's style, in ASCII whatever the locale: scripts split on spaces. */
    static const char *units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
    double d = (double)v;
    guint i = 0;

    while (d >= 1024.0 && i + 1 < G_N_ELEMENTS(units)) {
        d /= 1024.0;
        i++;
    }
    if (i == 0)
        return g_strdup_printf("%" G_GUINT64_FORMAT " B", v);
    return g_strdup_printf("%.2f %s", d, units[i]);
}

static const GfpoolVerb verbs[] = {
    { "pool-build", "[--no-overwrite | --overwrite]", "",
      "Create the pool directory and its parents.", NULL,
      gfpool_pool_build_options, TRUE, cmd_pool_build },
    { "pool-delete", "", "",
      "Remove the pool directory (only when empty).", NULL,
      NULL, TRUE, cmd_pool_delete },
    { "pool-info", "", "",
      "Print the pool's capacity, allocation and available space.", NULL,
      NULL, TRUE, cmd_pool_info },
    { "pool-refresh", "", "",
      "Read every volume's header and print how many volumes there are.", NULL,
      NULL, TRUE, cmd_pool_refresh },
    { "vol-list", "[--details]", "",
      "List the volumes of the pool.", NULL,
      gfpool_vol_list_options, TRUE, cmd_vol_list },
    { "vol-create-as", "[options]", "NAME CAPACITY",
      "Create a raw or qcow2 volume.",
      "CAPACITY takes libvirt's units (10G, 512MiB, 1TB).",
      gfpool_vol_create_as_options, TRUE, cmd_vol_create_as },
    { "vol-create", "[--prealloc-metadata]", "FILE.xml",
      "Create a volume from a libvirt <volume> XML file.", NULL,
      gfpool_vol_create_options, TRUE, cmd_vol_create },
    { "vol-delete", "", "VOL",
      "Delete a volume (a file, or an empty directory).", NULL,
      NULL, TRUE, cmd_vol_delete },
    { "vol-info", "", "VOL",
      "Print a volume's name, type, format, capacity and allocation.", NULL,
      NULL, TRUE, cmd_vol_info },
    { "vol-record", "--format F", "VOL...",
      "Record the format of volumes placed by other tools.",
      "Their format is otherwise probed from bytes a guest may have written.",
      gfpool_vol_record_options, TRUE, cmd_vol_record },
    { "vol-dumpxml", "", "VOL",
      "Print the volume's XML, as virsh vol-dumpxml prints it.", NULL,
      NULL, TRUE, cmd_vol_dumpxml },
    { "vol-path", "", "VOL",
      "Print the volume's gluster:// URI.", NULL,
      NULL, TRUE, cmd_vol_path },
    { "vol-clone", "[--format F] [--quiet]", "VOL NEWNAME",
      "Copy a volume into a new volume of the pool, holes kept.",
      "--format converts between raw and qcow2. The servers copy the data\n"
      "themselves only where glusterfs does that safely, on a volume of one\n"
      "brick (not replicated, dispersed or sharded); otherwise, and for a\n"
      "conversion, the data passes through gfpool.",
      gfpool_vol_clone_options, TRUE, cmd_vol_clone },
    { "vol-resize", "[options]", "VOL CAPACITY",
      "Change a volume's capacity.", NULL,
      gfpool_vol_resize_options, TRUE, cmd_vol_resize },
    { "vol-wipe", "[--algorithm ALG] [--quiet]", "VOL",
      "Wipe a volume's data; a qcow2 volume stays a valid, empty qcow2.", NULL,
      gfpool_vol_wipe_options, TRUE, cmd_vol_wipe },
    { "vol-upload", "[options]", "VOL FILE",
      "Write a local file into a volume.", NULL,
      gfpool_vol_transfer_options, TRUE, cmd_vol_upload },
    { "vol-download", "[options]", "VOL FILE",
      "Read a volume into a local file.", NULL,
      gfpool_vol_transfer_options, TRUE, cmd_vol_download },
    { "disk-xml", "[options]", "VOL",
      "Print the domain <disk> XML that makes QEMU open the volume.",
      "Through its gluster driver, every host of the pool included; with --nbd,\n"
      "through nbdkit-gfpool-plugin; with --format=uri, the URI instead.",
      gfpool_disk_xml_options, TRUE, cmd_disk_xml },
    { "virt-install-disk", "[-c URI]", "POOL VOL",
      "Print the --disk argument for virt-install.",
      "The volume with its probed format (virt-install writes driver type 'raw'\n"
      "for every network volume).",
      gfpool_virt_install_disk_options, TRUE, cmd_virt_install_disk },
    { "uri-parse", "", "URI",
      "Check a gluster:// URI and print its parts.", NULL,
      NULL, FALSE, cmd_uri_parse },
    { "nbd-grant", "[options]", "DOMAIN SOCKET EXPORT... [-- COMMAND [ARG]...]",
      "Let a running guest's QEMU open NBD exports its definition does not name yet.",
      "Exports of nbdkit-gfpool-plugin (guests=libvirt), for attach-device,\n"
      "blockcopy and external snapshots. Root only.",
      gfpool_nbd_grant_options, FALSE, cmd_nbd_grant },
    { "nbd-hook", "", "[ANY...]",
      "Does nothing and succeeds.",
      "What libvirt's qemu hook of older nbdkit-plugin-gfpool packages runs.",
      NULL, FALSE, cmd_nbd_hook },
};

static void
print_usage(FILE *out)
{
    fprintf(out,
            "Usage: gfpool VERB [OPTIONS] [ARGS]\n\n"
            "GlusterFS storage pools over gfapi, without a libvirt daemon.\n"
            "The pool: --pool-xml FILE, or --host HOST[:PORT] (repeat) --volume NAME [--dir PATH]\n"
            "[--transport tcp|unix|rdma] [--socket PATH].\n\nVerbs:\n");
    for (guint i = 0; i < G_N_ELEMENTS(verbs); i++)
        fprintf(out, "  %-17s %s\n", verbs[i].name, verbs[i].summary);
    fprintf(out, "\n'gfpool VERB --help' describes a verb, 'gfpool --list-verbs' lists them\n"
            "for scripts.\n"
            "Exit codes: 0 ok, 1 failed, 2 usage/invalid input, 3 no such volume,\n"
            "4 volume exists, 5 cannot reach the gluster volume.\n");
}

static void
list_options(GString *out, const GOptionEntry *entries)
{
    for (const GOptionEntry *e = entries; e && e->long_name; e++) {
        const char *value = e->arg == G_OPTION_ARG_NONE ? "" : "=";

        if (e->short_name)
            g_string_append_printf(out, " -%c%s", e->short_name, value);
        g_string_append_printf(out, " --%s%s", e->long_name, value);
    }
}

/*
 * "gfpool --list-verbs", for the bash completion and the man page's test:
 * one line a verb, NAME TAB SYNOPSIS TAB SUMMARY TAB OPTIONS; OPTIONS are
 * every option "gfpool VERB --help-all" lists, short ones too, blank
 * separated, those taking a value followed by '='.
 */
static void
list_verbs(void)
{
    for (guint i = 0; i < G_N_ELEMENTS(verbs); i++) {
        const GfpoolVerb *v = &verbs[i];
        g_autoptr(GString) opts = g_string_new(NULL);
        const char *sep = *v->options && *v->args ? " " : "";

        list_options(opts, v->entries);
        if (v->needs_pool)
            list_options(opts, pool_entries);
        g_string_append(opts, v->needs_pool ? " -h --help --help-all --help-pool" : " -h --help");
        printf("%s\t%s%s%s\t%s\t%s\n", v->name, v->options, sep, v->args, v->summary,
               opts->str + 1);
    }
}

int
main(int argc, char **argv)
{
    setlocale(LC_ALL, "");
    if (argc < 2) {
        print_usage(stderr);
        return EXIT_USAGE;
    }
    if (g_str_equal(argv[1], "--help") || g_str_equal(argv[1], "-h") ||
        g_str_equal(argv[1], "help")) {
        print_usage(stdout);
        return EXIT_OK;
    }
    if (g_str_equal(argv[1], "--list-verbs")) {
        list_verbs();
        return EXIT_OK;
    }
    for (guint i = 0; i < G_N_ELEMENTS(verbs); i++) {
        if (g_str_equal(argv[1], verbs[i].name))
            return verbs[i].run(&verbs[i], argc - 1, argv + 1);
    }
    g_printerr("gfpool: error: unknown verb '%s'\n\n", argv[1]);
    print_usage(stderr);
    return EXIT_USAGE;
}
