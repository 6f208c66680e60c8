// Package qemuopt splits qemu's option text, the syntax of qemu-img's -o,
// --object and --image-opts: items separated by single commas,
// "key=value" or a bare key, where ",," stands for one comma inside an
// item ("file.filename=a,,b.img" names a,b.img). Split keeps every item as
// written, empty ones included (a leading or trailing comma), so that each
// caller decides what an empty item means: formats.SplitOptions skips
// them, the CLI's --object and --image-opts refuse them.
package qemuopt
