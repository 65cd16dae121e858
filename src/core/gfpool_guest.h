/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gfpool_guest.h: which running libvirt guest a local process is, from
 * libvirt's own records (never from what the process says about itself),
 * and the grants that let a guest's QEMU open an NBD export before libvirt
 * records it. Shared by nbdkit-gfpool-plugin and `gfpool nbd-grant`
 * (docs/security.md, "Which guest an NBD client is").
 */
#pragma once

#include <glib.h>

#include "gfpool_disk_xml.h"

/* libvirt's QEMU driver state dir (system daemon): NAME.pid, NAME.xml */
#define GFPOOL_QEMU_STATE_DIR "/run/libvirt/qemu"
/* where `gfpool nbd-grant` writes and the plugin reads grants */
#define GFPOOL_NBD_GRANT_DIR "/run/gfpool-nbd/grants"
/* the longest a grant lives: QEMU opens the export within the libvirt
 * call it was made for, and the status names it once the call returns */
#define GFPOOL_NBD_GRANT_MAX_S 60

typedef struct {
    char *name;
    char *uuid;
    gint64 pid;
    guint64 start;      /* the QEMU process's start, ns after boot (CLOCK_BOOTTIME) */
    GHashTable *exports;/* socket -> GPtrArray of export names, from the live definition */
} GfpoolGuest;

void gfpool_guest_free(GfpoolGuest *g);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(GfpoolGuest, gfpool_guest_free)

/*
 * The running domain whose QEMU is process `pid`, from libvirt's records
 * in state_dir: its pid file and its status (<domstatus pid=...>) name
 * pid; both are root's regular files (no symlinks, not group- or
 * world-writable) in a directory only root writes to (and so is every
 * directory above it, or sticky); and the process started no later than
 * the pid file was written (or holds its lock, as libvirt's QEMU does)
 * and than `before` (CLOCK_BOOTTIME ns; 0: now), so a process that got
 * the pid of a QEMU that is gone is not taken for it. GFPOOL_ERROR_NOT_FOUND when no running domain has that pid.
 */
GfpoolGuest *gfpool_guest_by_pid(const char *state_dir, gint64 pid, guint64 before,
                                 GError **error);

/* The same for the running domain called `name`. */
GfpoolGuest *gfpool_guest_by_name(const char *state_dir, const char *name, GError **error);

/* Does the guest's live definition name `export` on one of `sockets`? */
gboolean gfpool_guest_names(const GfpoolGuest *g, const char *const *sockets,
                            const char *export);

/* Adds (as keys) every export the live definition names on `sockets`. */
void gfpool_guest_add_exports(const GfpoolGuest *g, const char *const *sockets, GHashTable *set);

/* The socket path as the plugin and the domain XML are compared: absolute,
 * lexically canonical; NULL for a relative path. */
char *gfpool_nbd_socket_canonical(const char *path);

/*
 * A grant: guest `g` (its uuid and this QEMU process) may open `export`
 * on the NBD server at `socket` for `seconds` (1..GFPOOL_NBD_GRANT_MAX_S),
 * written as a root-only file in grant_dir (created, mode 0700, if its
 * parent exists). Returns the grant's file name within grant_dir.
 */
char *gfpool_nbd_grant_write(const char *grant_dir, const GfpoolGuest *g, const char *socket,
                             const char *export, guint seconds, GError **error);

/* Removes a grant by the name gfpool_nbd_grant_write returned. */
gboolean gfpool_nbd_grant_remove(const char *grant_dir, const char *file, GError **error);

/* Is there a grant, unexpired, for this very QEMU of g to open export on
 * one of sockets? Grants whose export the status names by now are
 * superseded: removed, and do not count. */
gboolean gfpool_nbd_grant_check(const char *grant_dir, const GfpoolGuest *g,
                                const char *const *sockets, const char *export);

/* Adds (as keys) every export g holds a valid grant for on sockets. */
void gfpool_nbd_grant_add_exports(const char *grant_dir, const GfpoolGuest *g,
                                  const char *const *sockets, GHashTable *set);
