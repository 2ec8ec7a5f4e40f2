/* An LD_PRELOAD shim for the guest under qemu-user 7.2, for bench/arm_instructions.sh: opening /proc/cpuinfo opens
 * the file named by SNAKEID_CPUINFO instead. qemu-user 7.2 passes the host's /proc/cpuinfo through (it emulates
 * the file for aarch64 only from qemu 8), and onnxruntime's CPU detection (the cpuinfo library) finds no ARM
 * processor in an x86 host's and dereferences a null pointer before main. Build with the aarch64 cross gcc:
 * -shared -fPIC -O2 -ldl; load with qemu's -E LD_PRELOAD=... -E SNAKEID_CPUINFO=... */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* The file to open instead of `path`: SNAKEID_CPUINFO for /proc/cpuinfo, `path` itself otherwise. */
static const char *redirect(const char *path) {
    const char *fake = getenv("SNAKEID_CPUINFO");
    return fake && path && strcmp(path, "/proc/cpuinfo") == 0 ? fake : path;
}

/* open() or open64(): the same call, on `path` redirected. */
#define FORWARD_OPEN(name)                                                                         \
    int name(const char *path, int flags, ...) {                                                   \
        va_list args;                                                                              \
        va_start(args, flags);                                                                     \
        mode_t mode = (flags & (O_CREAT | O_TMPFILE)) ? va_arg(args, mode_t) : 0;                  \
        va_end(args);                                                                              \
        int (*next)(const char *, int, ...) = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, #name); \
        return next(redirect(path), flags, mode);                                                  \
    }
FORWARD_OPEN(open)
FORWARD_OPEN(open64)

int openat(int dir, const char *path, int flags, ...) {
    va_list args;
    va_start(args, flags);
    mode_t mode = (flags & (O_CREAT | O_TMPFILE)) ? va_arg(args, mode_t) : 0;
    va_end(args);
    int (*next)(int, const char *, int, ...) = (int (*)(int, const char *, int, ...))dlsym(RTLD_NEXT, "openat");
    return next(dir, redirect(path), flags, mode);
}
