package qemuopt

import "strings"

// Split splits text on single commas into its items, in order, each with
// ",," turned into a comma; text without a comma is one item (an empty
// text, one empty item).
func Split(text string) []string {
	var items []string
	var cur strings.Builder
	for i := 0; i < len(text); i++ {
		if text[i] == ',' {
			if i+1 < len(text) && text[i+1] == ',' {
				cur.WriteByte(',')
				i++
				continue
			}
			items = append(items, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteByte(text[i])
	}
	return append(items, cur.String())
}
