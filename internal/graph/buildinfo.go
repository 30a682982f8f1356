package graph

import (
	"debug/elf"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// BuildInfo is what a TensorFlow wheel says about how its library was built:
// the generated tensorflow/python/platform/build_info.py next to
// libtensorflow_cc.so.2 (the C API has no call for it). Measured on the
// 2.21.0 wheels: tensorflow-cpu says is_cuda_build False and nothing else;
// the CUDA wheel (tensorflow) says cuda_version 12.5.1, cudnn_version 9.
type BuildInfo struct {
	File      string `json:"file"`
	CUDABuild bool   `json:"is_cuda_build"`
	CUDA      string `json:"cuda_version,omitempty"`
	CuDNN     string `json:"cudnn_version,omitempty"`
}

// buildInfoFile is where a wheel keeps build_info.py, from its package folder.
var buildInfoFile = filepath.Join("python", "platform", "build_info.py")

var buildInfoEntry = regexp.MustCompile(`\('(\w+)',\s*('[^']*'|True|False)\)`)

// ReadBuildInfo reads the build information of the library at lib; nil when
// the library's folder has none (an official libtensorflow tarball).
func ReadBuildInfo(lib string) *BuildInfo {
	path := filepath.Join(filepath.Dir(lib), buildInfoFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	return parseBuildInfo(path, string(data))
}

func parseBuildInfo(path, text string) *BuildInfo {
	b := &BuildInfo{File: path}
	for _, m := range buildInfoEntry.FindAllStringSubmatch(text, -1) {
		v := strings.Trim(m[2], "'")
		switch m[1] {
		case "is_cuda_build":
			b.CUDABuild = v == "True"
		case "cuda_version":
			b.CUDA = v
		case "cudnn_version":
			b.CuDNN = v
		}
	}
	return b
}

// frameworkLib is the library that holds TensorFlow's runtime, including the
// loader that dlopens CUDA, cuDNN and the rest: its runpath is searched.
const frameworkLib = "libtensorflow_framework.so.2"

// CUDASearch is where the dynamic loader looks for the CUDA libraries that
// TensorFlow dlopens at run time (libcudart, libcublas, libcudnn, ...): the
// LD_LIBRARY_PATH the process started with, the runpaths of the C API
// library and of libtensorflow_framework.so.2, then the system's library
// cache (/etc/ld.so.cache, /lib, /usr/lib).
type CUDASearch struct {
	LDLibraryPath []string `json:"ld_library_path"`
	// Runpath: the libraries' DT_RUNPATH entries, $ORIGIN expanded, in order.
	Runpath []string `json:"runpath"`
}

// SearchCUDA reads where CUDA is looked for by the library at lib.
func SearchCUDA(lib string) CUDASearch {
	var s CUDASearch
	for _, d := range filepath.SplitList(os.Getenv("LD_LIBRARY_PATH")) {
		if d != "" {
			s.LDLibraryPath = append(s.LDLibraryPath, d)
		}
	}
	seen := map[string]bool{}
	for _, f := range []string{lib, filepath.Join(filepath.Dir(lib), frameworkLib)} {
		for _, d := range expandRunpath(readRunpath(f), filepath.Dir(f)) {
			if !seen[d] {
				seen[d] = true
				s.Runpath = append(s.Runpath, d)
			}
		}
	}
	return s
}

// Existing returns the runpath folders that exist.
func (s CUDASearch) Existing() []string {
	var out []string
	for _, d := range s.Runpath {
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			out = append(out, d)
		}
	}
	return out
}

// readRunpath returns the DT_RUNPATH (or DT_RPATH) of an ELF file, "" when it
// has none or cannot be read.
func readRunpath(path string) string {
	f, err := elf.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	for _, tag := range []elf.DynTag{elf.DT_RUNPATH, elf.DT_RPATH} {
		if v, err := f.DynString(tag); err == nil && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

// expandRunpath splits a runpath and replaces $ORIGIN (or ${ORIGIN}) with
// origin, the folder of the library that carries it, as the loader does.
func expandRunpath(runpath, origin string) []string {
	var out []string
	for _, d := range strings.Split(runpath, ":") {
		if d == "" {
			continue
		}
		d = strings.ReplaceAll(strings.ReplaceAll(d, "${ORIGIN}", origin), "$ORIGIN", origin)
		out = append(out, filepath.Clean(d))
	}
	return out
}
