package ewf

import (
	"container/list"
	"encoding/hex"
	"sync"

	"github.com/vdiskio/vdisk/internal/sparse"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/guid"
)

// tableCache keeps the decoded chunk locations of recently used tables,
// at most maxBytes of them (Limits.CacheBytes).
type tableCache struct {
	mu       sync.Mutex
	maxBytes int64
	bytes    int64
	order    *list.List // front: most recent; values are *cached
	byTable  map[int]*list.Element
}

type cached struct {
	table int
	locs  []chunkLoc
}

const locBytes = 32 // size of a chunkLoc in memory, for the budget

func newTableCache(maxBytes int64) *tableCache {
	return &tableCache{maxBytes: maxBytes, order: list.New(), byTable: map[int]*list.Element{}}
}

func (c *tableCache) get(t int) []chunkLoc {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byTable[t]; ok {
		c.order.MoveToFront(e)
		return e.Value.(*cached).locs
	}
	return nil
}

func (c *tableCache) put(t int, locs []chunkLoc) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.byTable[t]; ok {
		return
	}
	c.byTable[t] = c.order.PushFront(&cached{table: t, locs: locs})
	c.bytes += int64(len(locs)) * locBytes
	for c.bytes > c.maxBytes && c.order.Len() > 1 {
		old := c.order.Back().Value.(*cached)
		c.order.Remove(c.order.Back())
		delete(c.byTable, old.table)
		c.bytes -= int64(len(old.locs)) * locBytes
	}
}

// FileFormat guesses which program layout the image has, from its
// sections (as ewfinfo does, with its own rules): "EnCase 6", "linen 5",
// "FTK Imager", "SMART", "EWF-X", ...
func (img *Image) FileFormat() string {
	s := img.sections
	switch {
	case s[secXHeader] > 0 || s[secXHash] > 0:
		return "EWF-X"
	case img.vol.SmartSig:
		return "SMART"
	case img.vol.Smart:
		return "EWF"
	case img.header2 && s[secDigest] > 0:
		return "EnCase 6"
	case img.header2 && img.headerCats >= 1 && img.hasBaseOffsets():
		return "EnCase 6"
	case img.header2:
		return "EnCase 4/5"
	case img.headerCats == 3 && s[secDigest] > 0:
		return "linen 6"
	case img.headerCats == 3:
		return "linen 5"
	case img.headerCRLF:
		return "EnCase 2/3"
	case s[secSectors] > 0:
		return "FTK Imager"
	}
	return "EWF"
}

func (img *Image) hasBaseOffsets() bool {
	for _, t := range img.tables {
		if t.base != 0 {
			return true
		}
	}
	return false
}

// compressionName names the volume's compression level.
func (img *Image) compressionName() string {
	if img.vol.Smart {
		return "deflate (always)"
	}
	switch img.vol.CompressionLevel {
	case levelNone:
		return "none"
	case levelGood:
		return "good (fast)"
	case levelBest:
		return "best"
	}
	return "unknown"
}

// StoredMD5 and StoredSHA1 are the digests the image keeps (nil when absent).
func (img *Image) StoredMD5() []byte  { return img.digests.MD5 }
func (img *Image) StoredSHA1() []byte { return img.digests.SHA1 }

// Info reports the chunk size as the cluster size and, format-specific,
// the layout, segment count, geometry, case metadata and stored digests.
func (img *Image) Info() formats.Info {
	v := img.vol
	m := img.meta
	d := &Details{
		FileFormat:      img.FileFormat(),
		Segments:        int64(len(img.segs)),
		ChunkSize:       img.chunkBytes,
		SectorsPerChunk: int64(v.SectorsPerChunk),
		BytesPerSector:  int64(v.BytesPerSector),
		Sectors:         int64(v.SectorCount),
		Chunks:          int64(v.ChunkCount),
		Compression:     img.compressionName(),
		CaseNumber:      m.CaseNumber,
		EvidenceNumber:  m.EvidenceNumber,
		Description:     m.Description,
		Examiner:        m.Examiner,
		Notes:           m.Notes,
		Model:           m.Model,
		SerialNumber:    m.SerialNumber,
		AcquisitionDate: humanDate(m.AcquisitionDate),
		SystemDate:      humanDate(m.SystemDate),
		SoftwareVersion: m.SoftwareVersion,
		Platform:        m.Platform,
	}
	if v.SetID != ([16]byte{}) {
		d.SetIdentifier = guidString(v.SetID)
	}
	if img.digests.MD5 != nil {
		d.MD5 = hex.EncodeToString(img.digests.MD5)
	}
	if img.digests.SHA1 != nil {
		d.SHA1 = hex.EncodeToString(img.digests.SHA1)
	}
	var actual int64
	for _, s := range img.segs {
		n, _ := sparse.AllocatedPath(s.name)
		actual += n
	}
	return formats.Info{ClusterSize: img.chunkBytes, Details: d, ActualSize: actual}
}

// Details are what `info` reports of an EWF image under format-specific
// (qemu reads no EWF: these are vdisk's), in this order; the case
// metadata, dates and digests only when the image records them.
type Details struct {
	FileFormat      string `json:"file-format"` // "EWF-E01", "EWF-L01", "EWF2-Ex01", ...
	Segments        int64  `json:"segments"`    // segment files of the set
	ChunkSize       int64  `json:"chunk-size"`  // bytes
	SectorsPerChunk int64  `json:"sectors-per-chunk"`
	BytesPerSector  int64  `json:"bytes-per-sector"`
	Sectors         int64  `json:"sectors"`
	Chunks          int64  `json:"chunks"`
	Compression     string `json:"compression"`
	SetIdentifier   string `json:"set-identifier,omitempty"` // GUID of the segment set
	CaseNumber      string `json:"case-number,omitempty"`
	EvidenceNumber  string `json:"evidence-number,omitempty"`
	Description     string `json:"description,omitempty"`
	Examiner        string `json:"examiner,omitempty"`
	Notes           string `json:"notes,omitempty"`
	Model           string `json:"model,omitempty"`
	SerialNumber    string `json:"serial-number,omitempty"`
	AcquisitionDate string `json:"acquisition-date,omitempty"` // as ewfinfo prints it
	SystemDate      string `json:"system-date,omitempty"`
	SoftwareVersion string `json:"software-version,omitempty"`
	Platform        string `json:"platform,omitempty"`
	MD5             string `json:"md5,omitempty"`  // stored digest, hex
	SHA1            string `json:"sha1,omitempty"` // stored digest, hex
}

// guidString formats the segment file set GUID as ewfinfo does (Microsoft
// layout: the first three fields little-endian).
func guidString(g [16]byte) string { return guid.FromMixed(g[:]).String() }
