/*
 * test_module_load: load the module the way libvirtd does.
 *
 * A module with one unresolved symbol makes libvirtd exit (rc 3) at startup,
 * taking every driver with it, and the linker cannot catch that for a
 * shared_module. So: dlopen libvirt's storage driver RTLD_GLOBAL (it provides
 * virStorageBackendRegister & co. to modules), then ours with libvirtd's
 * flags, and resolve the register symbol.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

int
main(int argc, char **argv)
{
    const char *driver = argc > 2 ? argv[2] :
        "/usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_storage.so";
    void *drv, *mod, *sym;

    if (argc < 2) {
        fprintf(stderr, "usage: %s MODULE [STORAGE_DRIVER]\n", argv[0]);
        return 2;
    }
    printf("1..3\n");
    if (!(drv = dlopen(driver, RTLD_NOW | RTLD_GLOBAL | RTLD_NODELETE))) {
        printf("not ok 1 - dlopen %s: %s\n", driver, dlerror());
        return 1;
    }
    printf("ok 1 - dlopen %s\n", driver);
    if (!(mod = dlopen(argv[1], RTLD_NOW | RTLD_GLOBAL | RTLD_NODELETE))) {
        printf("not ok 2 - dlopen %s: %s\n", argv[1], dlerror());
        return 1;
    }
    printf("ok 2 - dlopen %s with RTLD_NOW\n", argv[1]);
    if (!(sym = dlsym(mod, "virStorageBackendGlusterRegister"))) {
        printf("not ok 3 - virStorageBackendGlusterRegister: %s\n", dlerror());
        return 1;
    }
    printf("ok 3 - virStorageBackendGlusterRegister resolved\n");
    return 0;
}
