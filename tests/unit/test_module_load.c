/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test_module_load: load a module the way libvirtd does.
 *
 * A module with one unresolved symbol makes libvirtd exit (rc 3) at startup,
 * taking every driver with it, and the linker cannot catch that for a
 * shared_module. So: dlopen what provides the module's libvirt symbols
 * RTLD_GLOBAL first (libvirt's storage driver for the pool backend, which
 * gets virStorageBackendRegister & co. from it; nothing for the
 * storage-file backend, which the QEMU driver loads without the storage
 * driver), then ours with libvirtd's flags, and resolve the register
 * symbol.
 *   test_module_load MODULE [DRIVER|-] [REGISTER_SYMBOL]
 */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

int
main(int argc, char **argv)
{
    const char *driver = argc > 2 ? argv[2] :
        "/usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_storage.so";
    const char *symbol = argc > 3 ? argv[3] : "virStorageBackendGlusterRegister";
    void *mod, *sym;

    if (argc < 2) {
        fprintf(stderr, "usage: %s MODULE [DRIVER|-] [REGISTER_SYMBOL]\n", argv[0]);
        return 2;
    }
    printf("1..3\n");
    if (strcmp(driver, "-") == 0) {
        printf("ok 1 - no driver loaded first # the module stands alone\n");
    } else if (!dlopen(driver, RTLD_NOW | RTLD_GLOBAL | RTLD_NODELETE)) {
        printf("not ok 1 - dlopen %s: %s\n", driver, dlerror());
        return 1;
    } else {
        printf("ok 1 - dlopen %s\n", driver);
    }
    if (!(mod = dlopen(argv[1], RTLD_NOW | RTLD_GLOBAL | RTLD_NODELETE))) {
        printf("not ok 2 - dlopen %s: %s\n", argv[1], dlerror());
        return 1;
    }
    printf("ok 2 - dlopen %s with RTLD_NOW\n", argv[1]);
    if (!(sym = dlsym(mod, symbol))) {
        printf("not ok 3 - %s: %s\n", symbol, dlerror());
        return 1;
    }
    printf("ok 3 - %s resolved\n", symbol);
    return 0;
}
