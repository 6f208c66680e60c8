//go:build race

package main

// raceEnabled: the race detector reserves terabytes of address space, so
// tests that limit it do not run.
const raceEnabled = true
