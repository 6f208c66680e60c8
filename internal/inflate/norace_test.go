//go:build !race

package inflate

const raceBuild = false
