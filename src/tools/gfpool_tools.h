/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gfpool_tools.h: what the files of the gfpool CLI share, under the name of
 * the file that defines it. Private to src/tools.
 */
#pragma once

#include "gfpool_volume.h"

/* Exit codes (scripts rely on them). */
enum {
    EXIT_OK = 0,
    EXIT_FAILED = 1,
    EXIT_USAGE = 2,
    EXIT_NOT_FOUND = 3,
    EXIT_EXISTS = 4,
    EXIT_CONNECT = 5,
};

/*
 * A verb as everything that describes it reads it: "gfpool --help",
 * "gfpool VERB --help" and "gfpool --list-verbs" (which the bash completion
 * and the man page's test read) all print from the one table, verbs[] in
 * gfpool.c.
 */
typedef struct _GfpoolVerb GfpoolVerb;
struct _GfpoolVerb {
    const char *name;
    const char *options;            /* synopsis: the options part, or "" */
    const char *args;               /* synopsis: the arguments, or "" */
    const char *summary;            /* one line */
    const char *details;            /* more for "gfpool VERB --help", or NULL */
    const GOptionEntry *entries;    /* the verb's own options, or NULL */
    gboolean needs_pool;            /* takes the pool options */
    int (*run)(const GfpoolVerb *verb, int argc, char **argv);
};

/* gfpool.c: main, the verb table, the pool options every verb shares,
 * errors and exit codes, output helpers. */
gboolean parse_verb_args(const GfpoolVerb *verb, int *argc, char ***argv, int *rc);
int fail(GError *err);
int usage_error(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
gboolean pool_xml_or_host_given(void);
GfpoolSource *pool_source(GError **error);
GfpoolConn *pool_connect(int *rc);
GfpoolConn *pool_connect_flags(int *rc, unsigned int flags);
int finish(GfpoolConn *conn, int rc);
const char *format_name(GfpoolFormat f);
char *human_size(guint64 v);

/*
 * The verbs. Each gets its entry of the verb table, parses its arguments
 * with parse_verb_args() and returns the exit code; the option tables are
 * the verbs' own options, for the verb table.
 */

/* gfpool_pool_verbs.c: pool-build, pool-delete, pool-info, pool-refresh */
extern const GOptionEntry gfpool_pool_build_options[];
int cmd_pool_build(const GfpoolVerb *verb, int argc, char **argv);
int cmd_pool_delete(const GfpoolVerb *verb, int argc, char **argv);
int cmd_pool_info(const GfpoolVerb *verb, int argc, char **argv);
int cmd_pool_refresh(const GfpoolVerb *verb, int argc, char **argv);

/* gfpool_vol_verbs.c: vol-list, vol-create-as, vol-create, vol-delete,
 * vol-info, vol-record, vol-dumpxml, vol-path */
extern const GOptionEntry gfpool_vol_list_options[];
extern const GOptionEntry gfpool_vol_create_as_options[];
extern const GOptionEntry gfpool_vol_create_options[];
extern const GOptionEntry gfpool_vol_record_options[];
int cmd_vol_list(const GfpoolVerb *verb, int argc, char **argv);
int cmd_vol_create_as(const GfpoolVerb *verb, int argc, char **argv);
int cmd_vol_create(const GfpoolVerb *verb, int argc, char **argv);
int cmd_vol_delete(const GfpoolVerb *verb, int argc, char **argv);
int cmd_vol_info(const GfpoolVerb *verb, int argc, char **argv);
int cmd_vol_record(const GfpoolVerb *verb, int argc, char **argv);
int cmd_vol_dumpxml(const GfpoolVerb *verb, int argc, char **argv);
int cmd_vol_path(const GfpoolVerb *verb, int argc, char **argv);

/* gfpool_data_verbs.c: vol-clone, vol-resize, vol-wipe, vol-upload,
 * vol-download */
extern const GOptionEntry gfpool_vol_clone_options[];
extern const GOptionEntry gfpool_vol_resize_options[];
extern const GOptionEntry gfpool_vol_wipe_options[];
extern const GOptionEntry gfpool_vol_transfer_options[];   /* upload and download */
int cmd_vol_clone(const GfpoolVerb *verb, int argc, char **argv);
int cmd_vol_resize(const GfpoolVerb *verb, int argc, char **argv);
int cmd_vol_wipe(const GfpoolVerb *verb, int argc, char **argv);
int cmd_vol_upload(const GfpoolVerb *verb, int argc, char **argv);
int cmd_vol_download(const GfpoolVerb *verb, int argc, char **argv);

/* gfpool_disk_verbs.c: disk-xml, virt-install-disk, uri-parse, nbd-grant,
 * nbd-hook */
extern const GOptionEntry gfpool_disk_xml_options[];
extern const GOptionEntry gfpool_virt_install_disk_options[];
extern const GOptionEntry gfpool_nbd_grant_options[];
int cmd_disk_xml(const GfpoolVerb *verb, int argc, char **argv);
int cmd_virt_install_disk(const GfpoolVerb *verb, int argc, char **argv);
int cmd_uri_parse(const GfpoolVerb *verb, int argc, char **argv);
int cmd_nbd_grant(const GfpoolVerb *verb, int argc, char **argv);
int cmd_nbd_hook(const GfpoolVerb *verb, int argc, char **argv);

/* gfpool_libvirt.c: a volume and its backing chain as a libvirt daemon
 * reports them, remote ones too (disk-xml --connect, virt-install-disk) */
int libvirt_chain(const char *uri, const char *poolname, const char *volname,
                  GfpoolSource **srcp, GPtrArray **layersp);
