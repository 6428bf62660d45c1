package main

import "postern/pkg/resolver"

// netDNS is pkg/resolver seen as blitiri.com.ar/go/spf and pkg/dmarc ask the DNS.
type netDNS = resolver.NetDNS
