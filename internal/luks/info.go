package luks

// Details are qemu's QCryptoBlockInfoLUKS for `info`, in the key order qemu
// prints (its QDict's): the format-specific details of a luks image, and the
// "encrypt" object of a LUKS-encrypted qcow2 (which has Format "luks").
type Details struct {
	IVGenAlg       string        `json:"ivgen-alg"`
	HashAlg        string        `json:"hash-alg"`
	CipherAlg      string        `json:"cipher-alg"` // qemu's name: "aes-256", ...
	UUID           string        `json:"uuid"`
	IVGenHashAlg   string        `json:"ivgen-hash-alg,omitempty"` // essiv only
	Format         string        `json:"format,omitempty"`         // "luks" inside qcow2
	CipherMode     string        `json:"cipher-mode"`
	Slots          []SlotDetails `json:"slots"`
	PayloadOffset  int64         `json:"payload-offset"` // bytes
	MasterKeyIters int64         `json:"master-key-iters"`
}

// SlotDetails describe one key slot; iterations and stripes only for an
// active slot.
type SlotDetails struct {
	Active    bool  `json:"active"`
	Iters     int64 `json:"iters,omitempty"`
	KeyOffset int64 `json:"key-offset"` // bytes
	Stripes   int64 `json:"stripes,omitempty"`
}

// Details describes v for `info`. withFormat sets Format to "luks", as the
// qcow2 "encrypt" object has it; the luks driver's details have none.
func (v *Volume) Details(withFormat bool) *Details {
	d := &Details{IVGenAlg: v.Spec.IVGen, HashAlg: v.Hash, CipherAlg: v.Spec.QemuAlg(v.KeyBytes), UUID: v.UUID,
		CipherMode: v.Spec.Mode, Slots: make([]SlotDetails, 0, len(v.Slots)),
		PayloadOffset: v.PayloadOffset, MasterKeyIters: int64(v.MKIterations)}
	if v.Spec.IVGen == IVESSIV {
		d.IVGenHashAlg = v.Spec.IVHash
	}
	if withFormat {
		d.Format = "luks"
	}
	for _, s := range v.Slots {
		sd := SlotDetails{Active: s.Active, KeyOffset: s.Area}
		if s.Active {
			sd.Iters, sd.Stripes = int64(s.KDF.Iterations), int64(s.Stripes)
		}
		d.Slots = append(d.Slots, sd)
	}
	return d
}
