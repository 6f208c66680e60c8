//go:build race

package ewf

const raceEnabled = true
