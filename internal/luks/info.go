package luks

import "github.com/vdiskio/vdisk/formats"

// QemuInfo is qemu's QCryptoBlockInfoLUKS for `info`, in the key order
// qemu prints (its QDict's). withFormat adds "format": "luks", as the
// qcow2 "encrypt" object has it; the luks driver's object has none.
func (v *Volume) QemuInfo(withFormat bool) formats.Object {
	obj := formats.Object{{Key: "ivgen-alg", Value: v.Spec.IVGen}, {Key: "hash-alg", Value: v.Hash},
		{Key: "cipher-alg", Value: v.Spec.QemuAlg(v.KeyBytes)}, {Key: "uuid", Value: v.UUID}}
	if v.Spec.IVGen == IVESSIV {
		obj = append(obj, formats.Field{Key: "ivgen-hash-alg", Value: v.Spec.IVHash})
	}
	if withFormat {
		obj = append(obj, formats.Field{Key: "format", Value: "luks"})
	}
	var slots []any
	for _, s := range v.Slots {
		so := formats.Object{{Key: "active", Value: s.Active}}
		if s.Active {
			so = append(so, formats.Field{Key: "iters", Value: int64(s.KDF.Iterations)})
		}
		so = append(so, formats.Field{Key: "key-offset", Value: s.Area})
		if s.Active {
			so = append(so, formats.Field{Key: "stripes", Value: int64(s.Stripes)})
		}
		slots = append(slots, so)
	}
	return append(obj, formats.Field{Key: "cipher-mode", Value: v.Spec.Mode}, formats.Field{Key: "slots", Value: slots},
		formats.Field{Key: "payload-offset", Value: v.PayloadOffset},
		formats.Field{Key: "master-key-iters", Value: int64(v.MKIterations)})
}
