// Command fakedns serves, on a free loopback port, the DNS records bench/smtp's load
// needs for spamd's checks (SPF and DMARC of other.test, the sender's domain), so that
// the benchmark asks no real resolver. It prints its address ("127.0.0.1:PORT") and
// serves until it is killed.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"postern/pkg/resolver/resolvertest"
)

func main() {
	s, err := resolvertest.Start("127.0.0.1")
	if err != nil {
		fmt.Fprintln(os.Stderr, "fakedns:", err)
		os.Exit(1)
	}
	if err := s.Add(
		`other.test. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"`,
		`_dmarc.other.test. 300 IN TXT "v=DMARC1; p=reject"`,
	); err != nil {
		fmt.Fprintln(os.Stderr, "fakedns:", err)
		os.Exit(1)
	}
	s.KeepTTLs(true) // answers are cached for their TTL, as from a real resolver
	fmt.Println(s.Addr)
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
	<-ch
	s.Close()
}
