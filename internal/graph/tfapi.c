// tfapi.c: resolves the C API with dlopen/dlsym; see tfapi.h and capi.go.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
#include "tfapi.h"

// xp_NAME points at the library's NAME; x_NAME calls it (cgo cannot call
// through a function pointer).
#define XCEPT_DECLARE(ret, name, params, args) \
	static ret (*xp_##name) params; \
	ret x_##name params { return (ret) xp_##name args; }
XCEPT_TF_FUNCS(XCEPT_DECLARE)

static char xcept_load_error[512];

// xcept_tf_open loads the library at path (a file name or a bare soname) and
// resolves every function. quiet sends the library's load-time logs to
// /dev/null. It returns NULL, or an error message.
const char* xcept_tf_open(const char* path, int quiet) {
	int saved = -1;
	if (quiet) {
		fflush(stderr);
		saved = dup(2);
		int null = open("/dev/null", O_WRONLY);
		if (null >= 0) { dup2(null, 2); close(null); }
	}
	void* h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (saved >= 0) { fflush(stderr); dup2(saved, 2); close(saved); }
	if (h == NULL) {
		snprintf(xcept_load_error, sizeof xcept_load_error, "%s", dlerror());
		return xcept_load_error;
	}
#define XCEPT_RESOLVE(ret, name, params, args) \
	xp_##name = (ret (*) params) dlsym(h, #name); \
	if (xp_##name == NULL) { \
		snprintf(xcept_load_error, sizeof xcept_load_error, "%s: no symbol %s (not a TensorFlow C API library?)", path, #name); \
		dlclose(h); \
		return xcept_load_error; \
	}
	XCEPT_TF_FUNCS(XCEPT_RESOLVE)
	return NULL;
}

// xcept_tf_path returns the file the C API was loaded from.
const char* xcept_tf_path(void) {
	Dl_info info;
	if (dladdr((void*) xp_TF_Version, &info) && info.dli_fname) return info.dli_fname;
	return "";
}
