//go:build race

package inflate

// raceBuild: the race detector makes the byte loops ten times slower, so
// the randomised tests run fewer cases (the plain run covers them all).
const raceBuild = true
