// Package qemutest is the test oracle: it drives qemu-img and qemu-io to make
// images and to judge the ones vdisk writes, and reads the shared corpus of
// images made by other products.
//
// When qemu-img is missing, tests that need it skip, unless the environment
// sets VDISK_REQUIRE_QEMU=1 (as CI does): then they fail. Likewise the corpus
// (../shared/corpus from the repository root) skips when absent unless
// VDISK_REQUIRE_CORPUS=1.
package qemutest

import (
	"bytes"
	"compress/bzip2"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/imageinfo"
	"github.com/vdiskio/vdisk/internal/zero"
)

// Tool returns the path of a qemu tool ("qemu-img", "qemu-io") or skips the
// test (fails it under VDISK_REQUIRE_QEMU=1).
func Tool(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("VDISK_REQUIRE_QEMU") == "1" {
			t.Fatalf("%s not found and VDISK_REQUIRE_QEMU=1", name)
		}
		t.Skipf("%s not found", name)
	}
	return path
}

// Result is a finished command.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// calibrationTries bounds the runs of a qemu tool whose PBKDF calibration
// failed. qemu times PBKDF2 by the thread's CPU clock before it writes a LUKS
// header and gives up ("Unable to get accurate CPU usage") when that clock
// did not advance — which a busy or coarse-clocked machine makes happen now
// and then; it is the host's timing, not the input.
const calibrationTries = 5

// Exec runs a tool and returns its result without judging the exit code. A
// qemu tool whose PBKDF calibration failed is run again (calibrationTries).
func Exec(t testing.TB, tool string, args ...string) Result {
	t.Helper()
	for try := 1; ; try++ {
		r := execOnce(t, tool, args...)
		if r.Code == 0 || try == calibrationTries || !strings.Contains(r.Stderr, "Unable to get accurate CPU usage") {
			return r
		}
	}
}

func execOnce(t testing.TB, tool string, args ...string) Result {
	t.Helper()
	cmd := exec.Command(Tool(t, tool), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := Result{Stdout: out.String(), Stderr: errb.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.Code = exit.ExitCode()
	case err != nil:
		t.Fatalf("%s %v: %v", tool, args, err)
	}
	return r
}

// Img runs qemu-img and fails the test unless it exits 0. It returns stdout.
func Img(t testing.TB, args ...string) string {
	t.Helper()
	r := Exec(t, "qemu-img", args...)
	if r.Code != 0 {
		t.Fatalf("qemu-img %s: exit %d: %s%s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
	}
	return r.Stdout
}

// IO runs qemu-io commands on an image (each -c) and fails on error.
func IO(t testing.TB, format, path string, cmds ...string) {
	t.Helper()
	args := []string{"-f", format}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	r := Exec(t, "qemu-io", append(args, path)...)
	if r.Code != 0 || strings.Contains(r.Stdout, "failed") {
		t.Fatalf("qemu-io %v: exit %d: %s%s", args, r.Code, r.Stdout, r.Stderr)
	}
}

// Info returns `qemu-img info --output=json` parsed.
func Info(t testing.TB, format, path string) map[string]any {
	t.Helper()
	args := []string{"info", "--output=json"}
	if format != "" {
		args = append(args, "-f", format)
	}
	out := Img(t, append(args, path)...)
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("qemu-img info output: %v\n%s", err, out)
	}
	return m
}

// ToRaw converts an image to a raw file with qemu-img and returns its path.
func ToRaw(t testing.TB, format, path string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), filepath.Base(path)+".raw")
	args := []string{"convert", "-O", "raw"}
	if format != "" {
		args = append(args, "-f", format)
	}
	Img(t, append(args, path, out)...)
	return out
}

// Compare runs `qemu-img compare` and returns its exit code and output.
func Compare(t testing.TB, fmt1, path1, fmt2, path2 string) Result {
	t.Helper()
	return Exec(t, "qemu-img", "compare", "-f", fmt1, "-F", fmt2, path1, path2)
}

// RequireSame fails unless qemu-img compare says the images are identical.
func RequireSame(t testing.TB, fmt1, path1, fmt2, path2 string) {
	t.Helper()
	if r := Compare(t, fmt1, path1, fmt2, path2); r.Code != 0 {
		t.Fatalf("qemu-img compare %s %s: exit %d: %s%s", path1, path2, r.Code, r.Stdout, r.Stderr)
	}
}

// Check runs `qemu-img check --output=json` and returns the result.
func Check(t testing.TB, format, path string) Result {
	t.Helper()
	return Exec(t, "qemu-img", "check", "--output=json", "-f", format, path)
}

// RequireClean fails unless qemu-img check exits 0.
func RequireClean(t testing.TB, format, path string) {
	t.Helper()
	if r := Check(t, format, path); r.Code != 0 {
		t.Fatalf("qemu-img check %s: exit %d: %s%s", path, r.Code, r.Stdout, r.Stderr)
	}
}

// blockSize is the digest block of the corpus DIGESTS file.
const blockSize = 64 << 10

// BlockSHA is the corpus digest of an image's content: sha256 over, for every
// 64 KiB block that is not all zeros, its offset (8 bytes big-endian) and its
// bytes. Ranges the image reports as zero or unallocated (through the chain)
// are not read, so huge sparse images hash quickly.
func BlockSHA(t testing.TB, img formats.Image) string {
	t.Helper()
	h := sha256.New()
	buf := make([]byte, blockSize)
	var off [8]byte
	size := img.Size()
	next := int64(0) // first block not yet hashed: extents may share a block
	for start := int64(0); start < size; {
		window := min(size-start, 1<<30)
		exts, err := formats.ChainExtents(img, start, window)
		if err != nil {
			t.Fatalf("extents at %d: %v", start, err)
		}
		for _, e := range exts {
			if e.Kind != formats.Data {
				continue
			}
			for b := max(e.Offset/blockSize*blockSize, next); b < e.End(); b += blockSize {
				n := min(blockSize, size-b)
				if _, err := img.ReadAt(buf[:n], b); err != nil && err != io.EOF {
					t.Fatalf("read at %d: %v", b, err)
				}
				next = b + blockSize
				if zero.Is(buf[:n]) {
					continue
				}
				binary.BigEndian.PutUint64(off[:], uint64(b))
				h.Write(off[:])
				h.Write(buf[:n])
			}
		}
		start += window
	}
	return hex.EncodeToString(h.Sum(nil))
}

// FileBlockSHA is BlockSHA of a raw file on disk.
func FileBlockSHA(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	buf := make([]byte, blockSize)
	var off [8]byte
	for b := int64(0); ; b += blockSize {
		n, err := io.ReadFull(f, buf)
		if n > 0 && !zero.Is(buf[:n]) {
			binary.BigEndian.PutUint64(off[:], uint64(b))
			h.Write(off[:])
			h.Write(buf[:n])
		}
		if err != nil {
			break
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// RepoRoot returns the repository root (the directory holding go.mod).
func RepoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// CorpusDigest is one line of the corpus DIGESTS file.
type CorpusDigest struct {
	SHA         string
	VirtualSize int64
}

func corpusDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(RepoRoot(t), "..", "shared", "corpus", "qemu-iotests-samples")
	if _, err := os.Stat(dir); err != nil {
		if os.Getenv("VDISK_REQUIRE_CORPUS") == "1" {
			t.Fatalf("corpus missing at %s and VDISK_REQUIRE_CORPUS=1", dir)
		}
		t.Skipf("corpus not present at %s", dir)
	}
	return dir
}

// Corpus decompresses the named corpus sample (without .bz2) into a
// temporary directory and returns its path and digest (zero when DIGESTS has
// no line for it).
func Corpus(t testing.TB, name string) (string, CorpusDigest) {
	t.Helper()
	dir := corpusDir(t)
	in, err := os.Open(filepath.Join(dir, name+".bz2"))
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	path := filepath.Join(t.TempDir(), name)
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := copySparse(out, bzip2.NewReader(in)); err != nil {
		t.Fatalf("decompressing %s: %v", name, err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return path, corpusDigest(t, dir, name)
}

// copySparse copies r to f, leaving all-zero 64 KiB blocks as holes.
func copySparse(f *os.File, r io.Reader) error {
	buf := make([]byte, blockSize)
	var off int64
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 && !zero.Is(buf[:n]) {
			if _, werr := f.WriteAt(buf[:n], off); werr != nil {
				return werr
			}
		}
		off += int64(n)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return f.Truncate(off)
		}
		if err != nil {
			return err
		}
	}
}

func corpusDigest(t testing.TB, dir, name string) CorpusDigest {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "DIGESTS"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[2] == name {
			size, _ := strconv.ParseInt(f[1], 10, 64)
			return CorpusDigest{SHA: f[0], VirtualSize: size}
		}
	}
	return CorpusDigest{}
}

// DetailsJSON is a driver's info details (formats.Info.Details) as `info`
// prints them, decoded by encoding/json, to compare with the
// format-specific data of Info.
func DetailsJSON(t testing.TB, details any) any {
	t.Helper()
	var b strings.Builder
	if err := imageinfo.WriteJSON(&b, details); err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal([]byte(b.String()), &v); err != nil {
		t.Fatalf("details JSON: %v\n%s", err, b.String())
	}
	return v
}
