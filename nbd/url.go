package nbd

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// DefaultPort is the IANA port of NBD.
const DefaultPort = "10809"

// Address is where an export is: a TCP host:port or a unix socket path, the
// export name, and whether TLS is wanted.
type Address struct {
	Network string // "tcp" or "unix"
	Addr    string // host:port or socket path
	Export  string
	TLS     bool
}

// IsURL reports whether name is an NBD URL (nbd://, nbds://, nbd+unix://,
// nbds+unix://) or qemu's legacy nbd: syntax, as opposed to a file name.
func IsURL(name string) bool {
	for _, p := range []string{"nbd://", "nbds://", "nbd+unix://", "nbds+unix://", "nbd+tcp://", "nbds+tcp://", "nbd:"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// ParseURL parses an NBD URL as libnbd and qemu write them:
//
//	nbd://host[:port]/[export]            TCP (port 10809 by default)
//	nbds://host[:port]/[export]           TCP with TLS
//	nbd+unix:///[export]?socket=PATH      unix socket (nbds+unix: with TLS)
//	nbd:unix:PATH[:exportname=NAME]       qemu's legacy form
//	nbd:HOST:PORT[:exportname=NAME]
func ParseURL(name string) (Address, error) {
	if strings.HasPrefix(name, "nbd:") && !strings.HasPrefix(name, "nbd://") {
		return parseLegacy(name)
	}
	u, err := url.Parse(name)
	if err != nil {
		return Address{}, fmt.Errorf("nbd: bad URL %q: %w", name, err)
	}
	a := Address{Export: strings.TrimPrefix(u.Path, "/")}
	switch u.Scheme {
	case "nbd", "nbd+tcp":
		a.Network = "tcp"
	case "nbds", "nbds+tcp":
		a.Network, a.TLS = "tcp", true
	case "nbd+unix":
		a.Network = "unix"
	case "nbds+unix":
		a.Network, a.TLS = "unix", true
	default:
		return Address{}, fmt.Errorf("nbd: URL scheme %q is not supported (nbd, nbds, nbd+unix, nbds+unix)", u.Scheme)
	}
	q := u.Query()
	if a.Network == "unix" {
		if u.Host != "" {
			return Address{}, fmt.Errorf("nbd: %s: a unix socket URL has no host (nbd+unix:///export?socket=PATH)", name)
		}
		a.Addr = q.Get("socket")
		if a.Addr == "" {
			return Address{}, fmt.Errorf("nbd: %s: no ?socket=PATH", name)
		}
		return a, nil
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		host = "localhost"
	}
	if port == "" {
		port = DefaultPort
	}
	a.Addr = net.JoinHostPort(host, port)
	return a, nil
}

func parseLegacy(name string) (Address, error) {
	rest := strings.TrimPrefix(name, "nbd:")
	a := Address{}
	if i := strings.Index(rest, ":exportname="); i >= 0 {
		a.Export, rest = rest[i+len(":exportname="):], rest[:i]
	}
	if path, ok := strings.CutPrefix(rest, "unix:"); ok {
		if path == "" {
			return Address{}, fmt.Errorf("nbd: %s: no socket path", name)
		}
		a.Network, a.Addr = "unix", path
		return a, nil
	}
	host, port, err := net.SplitHostPort(rest)
	if err != nil {
		return Address{}, fmt.Errorf("nbd: %s: want nbd:HOST:PORT or nbd:unix:PATH: %w", name, err)
	}
	a.Network, a.Addr = "tcp", net.JoinHostPort(host, port)
	return a, nil
}

// String is the address as an nbd URL.
func (a Address) String() string {
	scheme := "nbd"
	if a.TLS {
		scheme = "nbds"
	}
	export := (&url.URL{Path: a.Export}).EscapedPath()
	if a.Network == "unix" {
		return scheme + "+unix:///" + export + "?socket=" + queryEscaper.Replace(a.Addr)
	}
	return scheme + "://" + a.Addr + "/" + export
}

// queryEscaper escapes what would end or change a query value, leaving the
// slashes of a socket path readable.
var queryEscaper = strings.NewReplacer("%", "%25", "&", "%26", "#", "%23", "+", "%2B", " ", "%20", ";", "%3B")
