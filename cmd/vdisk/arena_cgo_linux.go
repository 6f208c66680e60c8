//go:build cgo && linux

package main

// In a cgo-enabled build (the default wherever a C compiler is installed:
// package net brings in runtime/cgo), every thread the Go runtime starts is
// a pthread, and glibc gives each thread that touches malloc an arena that
// reserves 64 MiB or more of address space. Clients run qemu-img under an
// address-space limit (OpenStack Nova: prlimit --as=1GiB for info); with a
// few threads and the Go runtime's own reservations, thread creation then
// fails and the process aborts. vdisk allocates nothing through C malloc,
// so one arena is enough: set before the Go runtime starts any thread.

/*
#include <malloc.h>

__attribute__((constructor)) static void vdisk_one_malloc_arena(void) {
#ifdef M_ARENA_MAX
	mallopt(M_ARENA_MAX, 1);
#endif
}
*/
import "C"
