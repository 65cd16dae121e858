/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gfpool_volume.h: the pool and volume operations of the gfapi core, named
 * after the virsh verbs they serve. The libvirt module and the gfpool CLI
 * both call these; nothing here knows about libvirt. One header for the
 * four files behind it, by the file that defines each part.
 */
#pragma once

#include "gfpool_conn.h"
#include "gfpool_image.h"
#include "gfpool_record.h"

/* Results of header probes, remembered by what a directory listing already
 * returns (gfid, size, mtime, ctime), so an unchanged image is never read
 * again. Thread-safe. */
typedef struct _GfpoolProbeCache GfpoolProbeCache;


/* gfpool_volume.c */

/* Prefix of the hidden names images are written under before they are
 * published; refresh never lists them. */
#define GFPOOL_TEMP_PREFIX ".gfpool-tmp-"

typedef enum {
    GFPOOL_VOL_FILE,
    GFPOOL_VOL_DIR,
} GfpoolVolKind;

typedef struct {
    char *name;
    GfpoolVolKind kind;
    GfpoolFormat format;        /* NONE for directories */
    gboolean recorded;          /* format from the volume's record (else
                                 * probed from its header) */
    guint64 capacity;
    guint64 allocation;         /* bytes actually stored (st_blocks * 512) */
    guint64 size;               /* the file's size (libvirt's target.physical) */
    guint32 mode;               /* permission bits */
    guint32 uid;
    guint32 gid;
    char *backing;              /* as stored in the image, or NULL */
    GfpoolFormat backing_format;
    guint32 cluster_size;
    char *warning;              /* probe found a corrupt header */
} GfpoolVolInfo;

void gfpool_vol_info_free(GfpoolVolInfo *info);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(GfpoolVolInfo, gfpool_vol_info_free)

/* Rules for a volume name: not empty, not "." or "..", no '/', no NUL
 * (len covers the whole name), at most 255 bytes, not our temp prefix,
 * valid UTF-8 without control characters (below 0x20, and 0x7f). The
 * message names the rule broken. */
gboolean gfpool_vol_name_validate(const char *name, gsize len, GError **error);

typedef enum {
    GFPOOL_PREALLOC_OFF = 0,    /* sparse */
    GFPOOL_PREALLOC_METADATA,   /* qcow2: L2 tables and refcounts; raw: = off */
    GFPOOL_PREALLOC_FALLOC,     /* raw: glfs_fallocate */
    GFPOOL_PREALLOC_FULL,       /* raw: zeros written */
} GfpoolPrealloc;

/* libvirt's rule for raw volumes, for a volume asked for with an
 * allocation and no preallocation mode: allocation == capacity means
 * allocated (falloc), anything less sparse. */
GfpoolPrealloc gfpool_prealloc_for_allocation(GfpoolFormat format, guint64 capacity,
                                              guint64 allocation);

/* The key and target path of volume `name`, as Debian's module sets them
 * (tools that stored them see no change): gluster://HOST[:PORT]/VOL/DIR/NAME
 * through the pool's first host. */
char *gfpool_vol_key(GfpoolConn *conn, const char *name);

/* A backing file as a volume's XML shows it: a plain name is a volume of
 * this pool (QEMU resolves it in the overlay's directory), shown by its key,
 * which vol-key/vol-path and virsh's --backing-vol resolve; anything else
 * as stored. */
char *gfpool_vol_backing_key(GfpoolConn *conn, const char *backing);
/* The pool volume a backing file (as an image's header holds it) names, or
 * NULL: a plain name, or the volume by key, gluster:// URI or QEMU's json:
 * (gfpool_uri_pool_volume_name), and a valid volume name. */
char *gfpool_backing_volume_name(GfpoolConn *conn, const char *backing);

typedef struct {
    const char *name;
    GfpoolFormat format;        /* RAW or QCOW2 */
    guint64 capacity;           /* bytes; 0 with a backing file = its size */
    GfpoolPrealloc prealloc;
    guint32 cluster_size;       /* qcow2; 0 = 64 KiB */
    const char *backing;        /* qcow2: name of a volume of the pool */
    GfpoolFormat backing_format;/* NONE = probe it */
    gint64 mode;                /* -1 = 0600 */
    gint64 uid;                 /* -1 = leave as created */
    gint64 gid;                 /* -1 = leave as created */
} GfpoolVolCreateParams;

#define GFPOOL_VOL_CREATE_PARAMS_INIT { .mode = -1, .uid = -1, .gid = -1 }

/* Longest backing chain we follow (QEMU's limit is 16 too). */
#define GFPOOL_BACKING_DEPTH_MAX 16

/*
 * vol-create / vol-create-as: write the image under a hidden temporary name,
 * then publish it with glfs_link, which fails if the name exists: an image
 * is either complete and visible or absent, and nothing is overwritten.
 */
gboolean gfpool_vol_create(GfpoolConn *conn, const GfpoolVolCreateParams *params,
                           GError **error);

/* vol-delete: a file, or an empty directory. */
gboolean gfpool_vol_delete(GfpoolConn *conn, const char *name, GError **error);

/* The formats gfpool writes (creates, clones into, resizes): raw and
 * qcow2; the others are listed, downloaded, wiped and deleted only. The
 * error reads "cannot WHAT of format 'F': supported formats are ...". */
gboolean gfpool_format_writable(int format, const char *what, GError **error);

/* Parse "raw"/"qcow2"/... for creation; FALSE naming the supported ones. */
gboolean gfpool_create_format_parse(const char *s, GfpoolFormat *format,
                                    GError **error);

/* The image and its backing files, outermost first, each probed; fails on
 * a backing file outside the pool (not a plain name), a loop, or a chain
 * deeper than GFPOOL_BACKING_DEPTH_MAX. GPtrArray of GfpoolVolInfo*. */
GPtrArray *gfpool_vol_backing_chain(GfpoolConn *conn, const char *name,
                                    GfpoolProbeCache *cache, GError **error);

/* Identity of a volume being made: name, the format its maker chose (its
 * record) and the permissions it gets. */
typedef struct {
    const char *name;
    GfpoolFormat format;
    gint64 mode;                /* -1 = 0600 */
    gint64 uid;                 /* -1 = leave as created */
    gint64 gid;
    gboolean no_data;           /* the fill only sets size and allocation */
} GfpoolNewVolume;

/* Fills a fresh, empty file with the volume's bytes. */
typedef gboolean (*GfpoolFillFunc)(GfpoolConn *conn, glfs_fd_t *fd, void *opaque,
                                   GError **error);

/*
 * The one way volumes come into existence: a hidden temporary file is
 * filled, given its format record and permissions, fsynced (unless
 * no_data), then published
 * with glfs_link
 * (EEXIST if the name was taken meanwhile: never an overwrite) and its temp
 * name removed. On any failure nothing remains.
 */
gboolean gfpool_vol_publish_new(GfpoolConn *conn, const GfpoolNewVolume *nv,
                                GfpoolFillFunc fill, void *opaque, GError **error);


/* gfpool_probe_cache.c */

GfpoolProbeCache *gfpool_probe_cache_new(void);
void gfpool_probe_cache_free(GfpoolProbeCache *cache);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(GfpoolProbeCache, gfpool_probe_cache_free)
/* Persist across pool-stop/start and daemon restarts. Load ignores a
 * missing or corrupt file (entry by entry); save writes atomically. */
void gfpool_probe_cache_load(GfpoolProbeCache *cache, const char *path);
gboolean gfpool_probe_cache_save(GfpoolProbeCache *cache, const char *path,
                                 GError **error);
/* What identifies one version of a file's contents, as the listing sees it.
 * gluster derives st_ino from the file's gfid, so it names the file for as
 * long as it exists, across renames and connections. */
typedef struct {
    guint64 ino;
    guint64 size;
    gint64 mtime_ns;
    gint64 ctime_ns;
} GfpoolFileStamp;
/* A hit fills info's format, capacity, cluster size, backing and warning. */
gboolean gfpool_probe_cache_lookup(GfpoolProbeCache *cache, const GfpoolFileStamp *stamp,
                                   GfpoolVolInfo *info);
void gfpool_probe_cache_store(GfpoolProbeCache *cache, const GfpoolFileStamp *stamp,
                              const GfpoolVolInfo *info);


/* gfpool_refresh.c */

typedef enum {
    /* pool-refresh, not vol-list: also remove temp files nobody owns any
     * more (gfpool_sweep_run), before returning */
    GFPOOL_REFRESH_SWEEP = 1 << 0,
} GfpoolRefreshFlags;

/* pool-refresh / vol-list: every file and directory of the pool dir, headers
 * probed concurrently (cache may be NULL). GPtrArray of GfpoolVolInfo*. */
GPtrArray *gfpool_pool_refresh(GfpoolConn *conn, GfpoolProbeCache *cache,
                               unsigned int flags, GError **error);

/*
 * Temp names a listing found, for a sweep that may run later and elsewhere
 * (libvirtd runs it off the pool's lock: an unlink can wait on the bricks
 * for ever, see gfpool_sweep_run). The listing's own attributes decide
 * nothing: they only name the candidates.
 */
typedef struct _GfpoolSweep GfpoolSweep;
void gfpool_sweep_free(GfpoolSweep *sweep);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(GfpoolSweep, gfpool_sweep_free)

/* As gfpool_pool_refresh without GFPOOL_REFRESH_SWEEP; *sweep (NULL when
 * there is no temp name) is the caller's, for gfpool_sweep_run. */
GPtrArray *gfpool_pool_refresh_sweep_later(GfpoolConn *conn, GfpoolProbeCache *cache,
                                           GfpoolSweep **sweep, GError **error);

/*
 * Removes the temp names of sweep whose owner is provably gone, judged by a
 * fresh lstat of each (gfpool_temp_sweep_reason). May block for as long as
 * GlusterFS makes an unlink wait. Returns how many it removed.
 */
guint gfpool_sweep_run(GfpoolConn *conn, GfpoolSweep *sweep);

/* Why a temp file may be removed, from a fresh lstat of it (never from a
 * listing's attributes): */
typedef enum {
    GFPOOL_SWEEP_KEEP = 0,      /* its creator may still be at work */
    GFPOOL_SWEEP_ORPHAN,        /* this process made it and failed to remove it */
    GFPOOL_SWEEP_PUBLISHED,     /* the same inode is a listed volume, unchanged for the grace */
    GFPOOL_SWEEP_STALE,         /* one link, not written for GFPOOL_TEMP_STALE_SECONDS */
} GfpoolSweepReason;

/* A creator that died leaves its temp file behind; one not written to for
 * this long is nobody's (creators write continuously until they publish). */
#define GFPOOL_TEMP_STALE_SECONDS (6 * 3600)
/* A published temp name is left this long to its creator, which removes it
 * itself right after the link: removing it meanwhile races the creator's
 * locks on the bricks (GlusterFS 10.3 parks such an unlink, and never wakes
 * it if that client then exits). GFPOOL_TEMP_GRACE_S overrides. */
#define GFPOOL_TEMP_GRACE_SECONDS_DEFAULT 120

/* now and the times in seconds; published_match: st's inode is the one a
 * listed volume has (checked by a fresh lstat of that volume too). */
GfpoolSweepReason gfpool_temp_sweep_reason(const struct stat *st, gboolean orphan,
                                           gboolean published_match, gint64 now,
                                           gint64 grace_s);

/* vol-info: one volume, probed afresh. */
GfpoolVolInfo *gfpool_vol_info(GfpoolConn *conn, const char *name,
                               GfpoolProbeCache *cache, GError **error);


/* gfpool_pool.c */

/* pool-info: capacity/allocation/available of the gluster volume. */
gboolean gfpool_pool_info(GfpoolConn *conn, guint64 *capacity,
                          guint64 *allocation, guint64 *available,
                          GError **error);

/* pool-build: create the pool directory and its parents (mode for the
 * ones created). With no_overwrite, fail if the directory already exists
 * and holds anything: that pool was built already. Never deletes. */
gboolean gfpool_pool_build(GfpoolConn *conn, guint32 mode, gboolean no_overwrite,
                           GError **error);

/* pool-delete: remove the pool directory, only when empty; never the
 * volume's root. */
gboolean gfpool_pool_delete(GfpoolConn *conn, GError **error);
