// Command bench times `vdisk convert` against `qemu-img convert` on the same
// generated workload, in one run, interleaved, and prints for each format
// pair the median time ratio (vdisk / qemu-img), the allocated-size ratio of
// the outputs and the peak RSS of each tool.
//
// "ratio" is wall time, vdisk/qemu-img; "cpu" is the same for user+system
// CPU time (the steadier figure on a busy machine). "cp s" is the floor of
// a local copy: `cp --sparse=always` of the same source file, timed in the
// same interleaved runs; "/cp" is vdisk's wall time over it. RSS is the
// largest peak resident set (getrusage of the child) over the runs.
//
// -cold drops the page cache (sync, then echo 3 > /proc/sys/vm/drop_caches)
// before every timed run, or refuses to run when it may not. -scaling
// prints dense zlib -c throughput for -m 1, 2, 4, 8. -priority runs
// everything in a session of its own at autogroup nice -20: on a machine
// loaded by other sessions the timed commands then get most of the CPUs
// (without it, a 2-CPU machine at load 25 gave each run a fifth of one
// CPU, whatever -m). -huge 1T converts a
// sparse image of that size holding 1% data (1 MiB every 100 MiB).
//
// The workload is an ext4 file system image made with `mkfs.ext4 -d` from a
// generated tree of random, text-like and all-zero files, plus a run of
// explicitly written zeros in its free space. Sources in other formats are
// made from it by qemu-img. With -sparse it also converts a mostly-sparse
// 20 GiB raw image, to show that memory does not grow with the disk size.
//
//	go run ./bench -size 1536M -runs 3
//	go run ./bench -pairs raw:qcow2,raw:qcow2:-c -runs 5
//	go run ./bench -pairs raw:qcow2:,raw:raw: -runs 5   (those pairs alone, without their -c / -C variants)
//	go run ./bench -pairs ewf -iso=false   (E01 against ewfacquire/ewfexport alone)
//	go run ./bench -pairs luks -iso=false  (encrypted qcow2 and luks, both directions, alone)
//	go run ./bench -pairs files -iso=false (extract vs debugfs/mcopy, convert --used-only, alone)
//	go run ./bench -pairs compressed -iso=false (-c qcow2 and streamOptimized vmdk on base64 text and binaries, -m 1/2)
//	go run ./bench -pairs qcow2c:raw,qcow2z:raw,"raw:qcow2:-c -o compression_type=zstd" -iso=false (zlib and zstd qcow2, both directions)
//	go run ./bench -pairs sources -iso=false (.qcow2.xz, .raw.zst, HTTP; or sources-xz, sources-zst, sources-http)
//	go run ./bench -pairs chains -iso=false (convert -B, commit, commit-vmdk, rebase; or one of them)
//	go run ./bench -runs 5 -cold -pairs raw:raw,raw:vdi -iso=false
//	go run ./bench -runs 5 -pairs uncompressed -sparse   (every pair without compression)
//	go run ./bench -scaling -pairs none -iso=false -priority
//	go run ./bench -huge 1T -runs 1 -pairs none -iso=false
//	go run ./bench -reflink /mnt/xfs -pairs none -iso=false
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/sparse"
)

// pair is one conversion to time: from a source format to a target format
// with target options, spelled the same for both tools.
type pair struct {
	from, to string
	srcKind  string   // which source file: "" is the from format as qemu-img writes it
	args     []string // extra convert flags (-c, -o ...), the same for both tools
	name     string
}

var allPairs = []pair{
	{from: "raw", to: "raw"},
	{from: "raw", to: "raw", args: []string{"-C"}, name: "raw→raw -C"},
	{from: "raw", to: "qcow2"},
	{from: "qcow2", to: "raw"},
	{from: "raw", to: "qcow2", args: []string{"-c"}, name: "raw→qcow2 -c zlib"},
	{from: "raw", to: "qcow2", args: []string{"-c", "-o", "compression_type=zstd"}, name: "raw→qcow2 -c zstd"},
	{from: "qcow2", srcKind: "qcow2c", to: "raw", name: "qcow2 (compressed)→raw"},
	{from: "qcow2", srcKind: "qcow2z", to: "raw", name: "qcow2 (zstd)→raw"},
	{from: "raw", to: "vmdk"},
	{from: "raw", to: "vmdk", args: []string{"-o", "subformat=streamOptimized"}, name: "raw→vmdk streamOptimized"},
	{from: "vmdk", to: "raw"},
	{from: "raw", to: "vpc"},
	{from: "vpc", to: "raw"},
	{from: "raw", to: "vhdx"},
	{from: "vhdx", to: "raw"},
	{from: "raw", to: "vdi"},
	{from: "vdi", to: "raw"},
}

func (p pair) String() string {
	if p.name != "" {
		return p.name
	}
	return p.from + "→" + p.to
}

// cold (-cold) drops the page cache before every timed run.
var cold bool

// sample is one timed run.
type sample struct {
	seconds   float64
	cpu       float64 // user + system seconds
	rssKiB    int64
	allocated int64
}

func main() {
	size := flag.String("size", "1536M", "size of the ext4 workload image")
	runs := flag.Int("runs", 3, "runs per tool and pair (median reported)")
	work := flag.String("work", filepath.Join(os.TempDir(), "vdisk-bench"), "working directory")
	only := flag.String("pairs", "", "comma-separated pairs to run, e.g. raw:qcow2 (all its variants), raw:qcow2: (that pair alone), raw:qcow2:-c, qcow2c:raw (default: all)")
	sparseBig := flag.Bool("sparse", false, "also convert a 20 GiB mostly-sparse raw image (raw→raw)")
	textSize := flag.String("textsize", "256M", "size of the base64 text workload of -pairs compressed")
	binSize := flag.String("binsize", "160M", "size of the binaries workload of -pairs compressed")
	isoPair := flag.Bool("iso", true, "also time `vdisk iso create -R -J` against `xorriso -as mkisofs -R -J` on the workload's tree")
	flag.BoolVar(&cold, "cold", false, "drop the page cache before every timed run (Linux, root)")
	scaling := flag.Bool("scaling", false, "also print dense zlib -c throughput with -m 1, 2, 4, 8")
	reflink := flag.String("reflink", "", "also time convert -C raw→raw in this directory (on XFS reflink=1 or btrfs)")
	huge := flag.String("huge", "", "also convert a sparse raw image of this size holding 1% data (e.g. 1T)")
	priority := flag.Bool("priority", false, "run the benchmark and every timed command in a session of their own at nice -20 (Linux, root), so other work on the machine takes less of the CPUs")
	flag.Parse()
	log.SetFlags(0)
	if *priority {
		if err := raisePriority(); err != nil {
			log.Fatal(err)
		}
	}
	if cold {
		if err := canDropCaches(); err != nil {
			log.Fatal(err)
		}
	}

	if err := os.MkdirAll(*work, 0o755); err != nil {
		log.Fatal(err)
	}
	vdisk := filepath.Join(*work, "vdisk")
	run("go", "build", "-o", vdisk, "./cmd/vdisk")
	sizeBytes, err := formats.ParseSize(*size)
	if err != nil {
		log.Fatal(err)
	}
	base := makeWorkload(*work, sizeBytes)
	pairs := selectPairs(vdisk, *only)
	cache := "warm page cache"
	if cold {
		cache = "caches dropped before every run"
	}
	if *priority {
		cache += ", at priority (own autogroup, nice -20)"
	}
	fmt.Printf("workload: %s (%s virtual, %s allocated); %d runs each, interleaved, %s; vdisk %s; load %s\n\n",
		base, *size, mib(allocated(base)), *runs, cache, strings.TrimSpace(output(vdisk, "--version")), loadAverage())
	fmt.Printf("%-28s %9s %9s %7s %7s %7s %6s %11s %11s %7s %9s %9s\n", "pair", "vdisk s", "qemu s", "ratio", "cpu", "cp s", "/cp", "vdisk out", "qemu out", "size", "vdisk RSS", "qemu RSS")
	for _, p := range pairs {
		kind := p.srcKind
		if kind == "" {
			kind = p.from
		}
		src := source(*work, base, kind)
		v, q, f := compare(vdisk, *work, src, p, *runs)
		reportFloor(p.String(), v, q, f)
	}
	if *isoPair && has(vdisk, "iso") {
		v, q := compareISO(vdisk, *work, workloadTree(*work, sizeBytes), *runs)
		report("iso create (vs xorriso)", v, q)
	}
	if ewfCase(*only) && has(vdisk, "ewf") {
		benchEWF(vdisk, *work, base, *runs)
	}
	if filesCase(*only) {
		benchFiles(vdisk, *work, base, sizeBytes, *runs)
	}
	if luksCase(*only) && has(vdisk, "luks") {
		benchLUKS(vdisk, *work, base, *runs)
	}
	if integrityCase(*only, "checksum") {
		benchChecksum(vdisk, *work, base, *runs)
	}
	if *sparseBig && (integrityCase(*only, "checksum") || integrityCase(*only, "checksum-sparse")) {
		benchChecksumSparse(vdisk, *work, *runs)
	}
	if integrityCase(*only, "hash") {
		benchHash(vdisk, *work, base, *runs)
	}
	if integrityCase(*only, "rescue") {
		benchRescue(vdisk, *work, base, *runs)
	}
	if nbdCase(*only) {
		benchNBD(vdisk, *work, base, *runs)
	}
	if sourcesCase(*only, "sources-xz") || sourcesCase(*only, "sources-zst") || sourcesCase(*only, "sources-http") {
		benchSources(vdisk, *work, base, *runs, *only)
	}
	if chainsCase(*only, "convert-B") || chainsCase(*only, "commit") || chainsCase(*only, "rebase") {
		benchChains(vdisk, *work, base, sizeBytes, *runs, *only)
	}
	if compressedCase(*only) {
		ts, err1 := formats.ParseSize(*textSize)
		bs, err2 := formats.ParseSize(*binSize)
		if err1 != nil || err2 != nil {
			log.Fatal("bad -textsize or -binsize")
		}
		benchCompressed(vdisk, *work, *runs, ts, bs)
	}
	if *sparseBig {
		src := makeSparse(*work)
		for _, p := range []pair{{from: "raw", to: "raw"}, {from: "raw", to: "qcow2"}} {
			v, q, f := compare(vdisk, *work, src, p, *runs)
			reportFloor(p.String()+" 20 GiB sparse", v, q, f)
		}
	}
	if *reflink != "" {
		benchReflink(vdisk, *reflink, base, *runs)
	}
	if *huge != "" {
		benchHuge(vdisk, *work, *huge, *runs)
	}
	if *scaling {
		benchScaling(vdisk, *work, base, sizeBytes, *runs)
	}
	fmt.Printf("\nload at the end: %s\n", loadAverage())
}

func report(name string, v, q []sample) { reportFloor(name, v, q, nil) }

// reportFloor prints a row; f, when not empty, are the cp floor's runs.
func reportFloor(name string, v, q, f []sample) {
	mv, mq := median(v), median(q)
	cp, perCp := "-", "-"
	if len(f) > 0 {
		mf := median(f)
		cp, perCp = fmt.Sprintf("%.3f", mf.seconds), fmt.Sprintf("%.2f", mv.seconds/max(mf.seconds, 0.001))
	}
	fmt.Printf("%-28s %9.3f %9.3f %7.3f %7.3f %7s %6s %11s %11s %7.3f %8.1fM %8.1fM\n", name, mv.seconds, mq.seconds,
		mv.seconds/mq.seconds, mv.cpu/max(mq.cpu, 0.001), cp, perCp, mib(mv.allocated), mib(mq.allocated),
		float64(mv.allocated)/float64(max(mq.allocated, 1)), float64(peakRSS(v))/1024, float64(peakRSS(q))/1024)
}

// peakRSS is the largest peak resident set of the runs, in KiB.
func peakRSS(s []sample) int64 {
	var m int64
	for _, x := range s {
		m = max(m, x.rssKiB)
	}
	return m
}

// loadAverage is /proc/loadavg's first three fields, or "?".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// selectPairs keeps the pairs whose formats vdisk has (or those asked for).
func selectPairs(vdisk, only string) []pair {
	var out []pair
	for _, p := range allPairs {
		if only != "" && !wanted(p, only) {
			continue
		}
		if !has(vdisk, p.to) || !has(vdisk, p.from) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// key names a pair for -pairs: from:to, then the extra flags if any
// ("raw:qcow2:-c"); a compressed-qcow2 source is "qcow2c" (zlib) or
// "qcow2z" (zstd).
func (p pair) key() string {
	from := p.from
	if p.srcKind != "" {
		from = p.srcKind
	}
	k := from + ":" + p.to
	if len(p.args) > 0 {
		k += ":" + strings.Join(p.args, " ")
	}
	return k
}

// wanted reports whether -pairs names p exactly, or names its from:to
// (which selects every variant of that pair); from:to: with a trailing
// colon is the pair without extra flags alone (raw:qcow2: is raw→qcow2
// without its -c variants).
func wanted(p pair, only string) bool {
	for _, w := range strings.Split(only, ",") {
		if w == p.key() || w == p.key()+":" && len(p.args) == 0 || !strings.HasSuffix(w, ":") && strings.HasPrefix(p.key(), w+":") ||
			w == "uncompressed" && !p.compressed() {
			return true
		}
	}
	return false
}

// compressed says whether the pair writes or reads compressed data (-c,
// streamOptimized, a compressed qcow2 source); "-pairs uncompressed"
// selects every other pair.
func (p pair) compressed() bool {
	return p.srcKind == "qcow2c" || p.srcKind == "qcow2z" || slices.Contains(p.args, "-c") || slices.Contains(p.args, "subformat=streamOptimized")
}

func has(vdisk, format string) bool {
	return exec.Command(vdisk, "create", "-f", format, "-o", "help").Run() == nil
}

// compare runs vdisk, qemu-img and the floor (cp --sparse=always of the
// source) alternately runs times each.
func compare(vdisk, work, src string, p pair, runs int) (v, q, f []sample) {
	for i := 0; i < runs; i++ {
		out := filepath.Join(work, "out."+p.to)
		args := append(append([]string{"convert", "-f", p.from, "-O", p.to}, p.args...), src, out)
		alternately(i, func() { v = append(v, timed(out, vdisk, args...)) },
			func() { q = append(q, timed(out, "qemu-img", args...)) })
		floor := filepath.Join(work, "floor.copy")
		f = append(f, timed(floor, "cp", "--sparse=always", src, floor))
	}
	return v, q, f
}

// compareISO times building an ISO of tree with vdisk and with xorriso.
func compareISO(vdisk, work, tree string, runs int) (v, q []sample) {
	out := filepath.Join(work, "out.iso")
	return timedPair(runs, cmd(out, vdisk, "iso", "create", "-o", out, "--rock-ridge", "--joliet", tree),
		cmd(out, "xorriso", "-as", "mkisofs", "-quiet", "-R", "-J", "-o", out, tree))
}

// command is a command line to time and the output it writes (which
// timed removes before and after).
type command struct {
	out  string
	argv []string
}

func cmd(out string, argv ...string) command { return command{out, argv} }

func (c command) time() sample { return timed(c.out, c.argv[0], c.argv[1:]...) }

// timedPair times a and b runs times each, taking turns at going first
// (alternately).
func timedPair(runs int, a, b command) (va, vb []sample) {
	for i := range runs {
		alternately(i, func() { va = append(va, a.time()) }, func() { vb = append(vb, b.time()) })
	}
	return va, vb
}

// alternately runs a then b in even rounds, b then a in odd ones: on a VM
// a run's time depends on the run before it (what it freed, and whether
// the host has taken that memory back yet), so neither tool keeps one
// place. Measured with -cold: the same vdisk binary run first, second
// and third in each of 7 rounds took 0.97, 0.77 and 0.72 s (medians).
func alternately(round int, a, b func()) {
	if round%2 == 1 {
		a, b = b, a
	}
	a()
	b()
}

// timed runs a command, returning its wall time, peak RSS and the
// allocated size of out (which it then removes, with any extent files).
func timed(out, name string, args ...string) sample {
	allocatedGlob(out) // removes a previous output and its extent files
	syncAll()          // the previous run's dirty pages are not this run's cost
	if cold {
		if err := dropCaches(); err != nil {
			log.Fatal(err)
		}
	}
	cmd := exec.Command(name, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr // xorriso prints a banner even with -quiet
	start := time.Now()
	if err := cmd.Run(); err != nil {
		log.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	s := sample{seconds: time.Since(start).Seconds()}
	s.rssKiB = peakRSSKiB(cmd.ProcessState)
	s.cpu = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	s.allocated = allocatedGlob(out)
	return s
}

func allocatedGlob(out string) int64 {
	matches, _ := filepath.Glob(strings.TrimSuffix(out, filepath.Ext(out)) + "*")
	var total int64
	for _, m := range matches {
		total += allocated(m)
		os.Remove(m)
	}
	return total
}

func median(s []sample) sample {
	pick := func(get func(sample) float64) float64 {
		vals := make([]float64, len(s))
		for i, x := range s {
			vals[i] = get(x)
		}
		sort.Float64s(vals)
		return vals[len(vals)/2]
	}
	return sample{
		seconds:   pick(func(x sample) float64 { return x.seconds }),
		cpu:       pick(func(x sample) float64 { return x.cpu }),
		rssKiB:    int64(pick(func(x sample) float64 { return float64(x.rssKiB) })),
		allocated: int64(pick(func(x sample) float64 { return float64(x.allocated) })),
	}
}

func allocated(path string) int64 {
	n, err := sparse.AllocatedPath(path)
	if err != nil {
		return 0
	}
	return n
}

func mib(n int64) string { return fmt.Sprintf("%.1fM", float64(n)/(1<<20)) }

func run(name string, args ...string) {
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		log.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
}

func output(name string, args ...string) string {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		log.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return string(out)
}

// source returns the workload in the given format, made by qemu-img once.
func source(work, base, format string) string {
	if format == "raw" {
		return base
	}
	path := filepath.Join(work, "src."+format)
	if _, err := os.Stat(path); err == nil {
		return path
	}
	switch format {
	case "qcow2c":
		run("qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", base, path)
	case "qcow2z":
		run("qemu-img", "convert", "-c", "-o", "compression_type=zstd", "-f", "raw", "-O", "qcow2", base, path)
	default:
		run("qemu-img", "convert", "-f", "raw", "-O", format, base, path)
	}
	return path
}
