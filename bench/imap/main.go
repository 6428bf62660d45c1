// Command imap is a benchmark for any IMAP server: it fills a mailbox with realistic
// messages through APPEND, times the commands a mail client sends on a large mailbox, and
// measures the server's memory with many idle IDLE sessions. It speaks plain IMAP4rev1
// (with LITERAL+ when offered) over its own minimal client, so the client's own parsing
// costs little and the same run works against Postern, Dovecot or anything else.
//
// Usage:
//
//	go run ./bench/imap -host 127.0.0.1 -port 30993 -tls -user demo@example.test \
//	    -password-file pw -pid $(pidof imapd) -idle 1000
//
// See bench/imap/README.md.
package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

var (
	host      = flag.String("host", "127.0.0.1", "server address")
	port      = flag.Int("port", 993, "server port")
	useTLS    = flag.Bool("tls", false, "implicit TLS (port 993); otherwise cleartext (port 143)")
	startTLS  = flag.Bool("starttls", false, "STARTTLS on the cleartext port")
	user      = flag.String("user", "", "user name")
	password  = flag.String("password", "", "password (or -password-file, or $IMAP_BENCH_PASSWORD)")
	passFile  = flag.String("password-file", "", "file whose first line is the password")
	mailbox   = flag.String("mailbox", "Bench", "mailbox to fill (deleted and created again unless -skip-fill)")
	count     = flag.Int("n", 10000, "messages to APPEND")
	fillConns = flag.Int("fill-conns", 4, "connections that APPEND in parallel")
	skipFill  = flag.Bool("skip-fill", false, "use the mailbox as it is")
	word      = flag.String("word", "xylophone", "the word put in some bodies, for SEARCH TEXT")
	repeat    = flag.Int("repeat", 3, "times each timed command runs (the first is reported apart)")
	pid       = flag.Int("pid", 0, "the server's process id, for its memory (RSS from /proc/PID/status)")
	pidTree   = flag.Bool("pid-tree", false, "sum the memory of -pid and all its descendants (for servers with a process per session, such as Dovecot)")
	seqAppend = flag.Int("seq-append", 1000, "4 KB messages to APPEND one after the other on one connection the way Python's imaplib does (0: none)")
	idle      = flag.Int("idle", 1000, "idle IDLE connections to open for the memory measurement (0: none)")
	idleBig   = flag.Int("idle-big", 0, "a second, larger IDLE measurement (for example 10000; needs ulimit -n above it)")
	idleBox   = flag.String("idle-mailbox", "INBOX", "mailbox the IDLE sessions select")
	settle    = flag.Duration("settle", 3*time.Second, "wait this long with the IDLE sessions open before reading the memory")
	insecure  = flag.Bool("insecure", true, "do not verify the server's certificate (development instances are self-signed)")
)

func main() {
	flag.Parse()
	if *user == "" {
		fatal(errors.New("-user is required"))
	}
	if *passFile != "" {
		b, err := os.ReadFile(*passFile)
		if err != nil {
			fatal(err)
		}
		*password = strings.TrimRight(strings.SplitN(string(b), "\n", 2)[0], "\r")
	} else if *password == "" {
		*password = os.Getenv("IMAP_BENCH_PASSWORD")
	}
	addr := net.JoinHostPort(*host, strconv.Itoa(*port))
	mode := "cleartext"
	if *useTLS {
		mode = "implicit TLS"
	} else if *startTLS {
		mode = "STARTTLS"
	}
	c, err := login(addr)
	if err != nil {
		fatal(err)
	}
	fmt.Printf("server   %s (%s)\ngreeting %s\n", addr, mode, c.greeting)
	fmt.Printf("messages %d in %q; SEARCH word %q\n\n", *count, *mailbox, *word)

	var wantMatches, wantBytes int
	if !*skipFill {
		c.simple("DELETE " + quote(*mailbox)) // may fail: not there yet
		if st, err := c.simple("CREATE " + quote(*mailbox)); err != nil || !strings.HasPrefix(st, "OK") {
			fatal(fmt.Errorf("CREATE %s: %s %v", *mailbox, st, err))
		}
		start := time.Now()
		wantMatches, wantBytes, err = fill(addr)
		if err != nil {
			fatal(err)
		}
		d := time.Since(start)
		fmt.Printf("%-44s %9s  %6.0f msg/s, %d connections, %.1f MB\n", "APPEND (fill)", round(d),
			float64(*count)/d.Seconds(), *fillConns, float64(wantBytes)/1e6)
	} else {
		wantMatches, wantBytes = -1, -1
	}

	lines, st, err := c.cmdLines("SELECT " + quote(*mailbox))
	if err != nil || !strings.HasPrefix(st, "OK") {
		fatal(fmt.Errorf("SELECT %s: %s %v", *mailbox, st, err))
	}
	exists := -1
	for _, l := range lines {
		if m := existsRe.FindStringSubmatch(l); m != nil {
			exists, _ = strconv.Atoi(m[1])
		}
	}
	if *skipFill {
		*count = exists
	} else if exists != *count {
		fatal(fmt.Errorf("SELECT %s: %d EXISTS, want %d", *mailbox, exists, *count))
	}
	fmt.Println()
	fmt.Printf("%-44s %9s %9s %9s %11s\n", "command", "first", "median", "result", "server CPU")

	timed("FETCH 1:* (FLAGS ENVELOPE RFC822.SIZE)", func() (string, error) {
		r, err := c.stream("FETCH 1:* (FLAGS ENVELOPE RFC822.SIZE)")
		if err == nil && r.untagged != exists {
			err = fmt.Errorf("%d FETCH responses, want %d", r.untagged, exists)
		}
		return fmt.Sprintf("%d msgs", r.untagged), err
	})
	timed("UID FETCH 1:* BODY.PEEK[]", func() (string, error) {
		r, err := c.stream("UID FETCH 1:* BODY.PEEK[]")
		if err == nil && wantBytes >= 0 && int(r.literalBytes) != wantBytes {
			err = fmt.Errorf("%d bytes of literals, want %d", r.literalBytes, wantBytes)
		}
		return fmt.Sprintf("%.1f MB", float64(r.literalBytes)/1e6), err
	})
	timed("SEARCH TEXT "+*word, func() (string, error) {
		lines, st, err := c.cmdLines("SEARCH TEXT " + quote(*word))
		if err != nil || !strings.HasPrefix(st, "OK") {
			return "", fmt.Errorf("%s %v", st, err)
		}
		n := 0
		for _, l := range lines {
			if rest, ok := strings.CutPrefix(l, "* SEARCH"); ok {
				n += len(strings.Fields(rest))
			}
		}
		if wantMatches >= 0 && n != wantMatches {
			return "", fmt.Errorf("%d matches, want %d", n, wantMatches)
		}
		return fmt.Sprintf("%d hits", n), nil
	})
	timedPair("STORE 1:* +FLAGS (\\Seen)", func() (string, error) {
		r, err := c.stream("STORE 1:* +FLAGS (\\Seen)")
		return fmt.Sprintf("%d FETCH", r.untagged), err
	}, func() error {
		_, err := c.stream("STORE 1:* -FLAGS.SILENT (\\Seen)")
		return err
	})
	c.simple("LOGOUT")

	if *seqAppend > 0 {
		if err := sequentialAppend(addr, *seqAppend); err != nil {
			fatal(fmt.Errorf("sequential APPEND: %w", err))
		}
	}
	if *idle > 0 {
		idleMemory(addr, *idle)
	}
	if *idleBig > 0 {
		idleMemory(addr, *idleBig)
	}
}

func round(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return d.Round(100 * time.Millisecond).String()
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	default:
		return d.Round(100 * time.Microsecond).String()
	}
}

// timed runs f -repeat times and prints the time of the first run, the median, f's
// result and, with -pid, the median CPU time the server spent (steadier than the wall
// clock on a busy machine, and the client's own work is not in it).
func timed(name string, f func() (string, error)) {
	var ds, cpus []time.Duration
	var first time.Duration
	res := ""
	for i := 0; i < *repeat; i++ {
		cpu0 := serverCPU()
		start := time.Now()
		r, err := f()
		d := time.Since(start)
		if err != nil {
			fatal(fmt.Errorf("%s: %w", name, err))
		}
		if i == 0 {
			first, res = d, r
		}
		ds = append(ds, d)
		cpus = append(cpus, serverCPU()-cpu0)
	}
	slices.Sort(ds)
	slices.Sort(cpus)
	cpu := "-"
	if *pid != 0 {
		cpu = round(cpus[len(cpus)/2])
	}
	fmt.Printf("%-44s %9s %9s %9s %11s\n", name, round(first), round(ds[len(ds)/2]), res, cpu)
}

// serverCPU returns the CPU time used so far by the threads of -pid (with -pid-tree, of
// it and its descendants), from /proc/PID/task/TID/schedstat; 0 without -pid.
func serverCPU() time.Duration {
	if *pid == 0 {
		return 0
	}
	pids := []int{*pid}
	if *pidTree {
		pids = descendants(*pid)
	}
	var ns int64
	for _, p := range pids {
		tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", p))
		for _, t := range tasks {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", p, t.Name()))
			if err != nil {
				continue
			}
			if f := strings.Fields(string(b)); len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				ns += n
			}
		}
	}
	return time.Duration(ns)
}

// timedPair times f, undoing its effect with undo (not timed) between the runs.
func timedPair(name string, f func() (string, error), undo func() error) {
	calls := 0
	timed(name, func() (string, error) {
		if calls > 0 {
			if err := undo(); err != nil {
				return "", err
			}
		}
		calls++
		return f()
	})
	undo()
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "imap bench:", err)
	os.Exit(1)
}

func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// conn is a minimal IMAP client connection.
type conn struct {
	c        net.Conn
	r        *bufio.Reader
	w        *bufio.Writer
	n        int
	greeting string
	litPlus  bool
}

func dial(addr string) (*conn, error) {
	// One TLS record per write from the start, as OpenSSL (Python's ssl module) sends
	// them: Go's small first records would split an APPEND literal into several writes.
	tc := &tls.Config{InsecureSkipVerify: *insecure, ServerName: *host, DynamicRecordSizingDisabled: true}
	d := &net.Dialer{Timeout: 30 * time.Second}
	var nc net.Conn
	var err error
	if *useTLS {
		nc, err = tls.DialWithDialer(d, "tcp", addr, tc)
	} else {
		nc, err = d.Dial("tcp", addr)
	}
	if err != nil {
		return nil, err
	}
	c := &conn{c: nc, r: bufio.NewReaderSize(nc, 64<<10), w: bufio.NewWriterSize(nc, 64<<10)}
	g, err := c.line()
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("greeting: %w", err)
	}
	c.greeting = g
	if *startTLS && !*useTLS {
		if st, err := c.simple("STARTTLS"); err != nil || !strings.HasPrefix(st, "OK") {
			nc.Close()
			return nil, fmt.Errorf("STARTTLS: %s %v", st, err)
		}
		t := tls.Client(nc, tc)
		if err := t.Handshake(); err != nil {
			nc.Close()
			return nil, err
		}
		c.c = t
		c.r.Reset(t)
		c.w.Reset(t)
	}
	return c, nil
}

func login(addr string) (*conn, error) {
	c, err := dial(addr)
	if err != nil {
		return nil, err
	}
	lines, st, err := c.cmdLines("LOGIN " + quote(*user) + " " + quote(*password))
	if err != nil || !strings.HasPrefix(st, "OK") {
		c.c.Close()
		return nil, fmt.Errorf("LOGIN: %s %v", st, err)
	}
	caps := st + " " + strings.Join(lines, " ")
	if !strings.Contains(caps, "LITERAL+") {
		l, _, _ := c.cmdLines("CAPABILITY")
		caps = strings.Join(l, " ")
	}
	c.litPlus = strings.Contains(caps, "LITERAL+")
	return c, nil
}

// line reads one line without its CRLF.
func (c *conn) line() (string, error) {
	c.c.SetReadDeadline(time.Now().Add(5 * time.Minute))
	l, err := c.r.ReadString('\n')
	return strings.TrimRight(l, "\r\n"), err
}

var (
	literalRe = regexp.MustCompile(`~?\{(\d+)\+?\}$`)
	existsRe  = regexp.MustCompile(`^\* (\d+) EXISTS$`)
)

type result struct {
	untagged     int
	literalBytes int64
}

// nextTag returns the tag of the next command.
func (c *conn) nextTag() string {
	c.n++
	return "b" + strconv.Itoa(c.n)
}

func (c *conn) send(cmd string) string {
	tag := c.nextTag()
	c.w.WriteString(tag + " " + cmd + "\r\n")
	return tag
}

// stream runs a command whose response may be large, counting untagged responses and
// the bytes of their literals without keeping them.
func (c *conn) stream(cmd string) (result, error) {
	var r result
	tag := c.send(cmd)
	if err := c.w.Flush(); err != nil {
		return r, err
	}
	for {
		l, err := c.line()
		if err != nil {
			return r, err
		}
		if strings.HasPrefix(l, tag+" ") {
			if !strings.HasPrefix(l[len(tag)+1:], "OK") {
				return r, errors.New(l)
			}
			return r, nil
		}
		if strings.HasPrefix(l, "* ") {
			r.untagged++
		}
		for {
			m := literalRe.FindStringSubmatch(l)
			if m == nil {
				break
			}
			n, _ := strconv.ParseInt(m[1], 10, 64)
			if _, err := io.CopyN(io.Discard, c.r, n); err != nil {
				return r, err
			}
			r.literalBytes += n
			if l, err = c.line(); err != nil {
				return r, err
			}
		}
	}
}

// cmdLines runs a command with a small response and returns its untagged lines and the
// tagged status (without the tag).
func (c *conn) cmdLines(cmd string) ([]string, string, error) {
	tag := c.send(cmd)
	if err := c.w.Flush(); err != nil {
		return nil, "", err
	}
	return c.readTo(tag)
}

// readTo reads the responses up to the one tagged tag, and returns the others and the
// tagged status (without the tag).
func (c *conn) readTo(tag string) ([]string, string, error) {
	var out []string
	for {
		l, err := c.line()
		if err != nil {
			return out, "", err
		}
		if rest, ok := strings.CutPrefix(l, tag+" "); ok {
			return out, rest, nil
		}
		out = append(out, l)
	}
}

func (c *conn) simple(cmd string) (string, error) {
	_, st, err := c.cmdLines(cmd)
	return st, err
}

// appendMsg APPENDs one message, with LITERAL+ when the server offers it.
func (c *conn) appendMsg(box string, flags string, msg []byte) error {
	tag := c.nextTag()
	if flags != "" {
		flags = " (" + flags + ")"
	}
	if c.litPlus {
		fmt.Fprintf(c.w, "%s APPEND %s%s {%d+}\r\n", tag, quote(box), flags, len(msg))
	} else {
		fmt.Fprintf(c.w, "%s APPEND %s%s {%d}\r\n", tag, quote(box), flags, len(msg))
		c.w.Flush()
		l, err := c.line()
		if err != nil {
			return err
		}
		if !strings.HasPrefix(l, "+") {
			return fmt.Errorf("APPEND: %s", l)
		}
	}
	c.w.Write(msg)
	c.w.WriteString("\r\n")
	if err := c.w.Flush(); err != nil {
		return err
	}
	_, st, err := c.readTo(tag)
	if err == nil && !strings.HasPrefix(st, "OK") {
		err = fmt.Errorf("APPEND: %s", st)
	}
	return err
}

// sequentialAppend APPENDs n messages of 4 KB one after the other on one connection,
// as Python's imaplib (and OfflineIMAP, migration scripts) do: Nagle's algorithm on, a
// synchronizing literal (no LITERAL+), the message in one write and its closing CRLF in
// another. A server that delays its ACK of the message makes each APPEND wait for it.
// The messages go into a mailbox of their own, -mailbox with "-seq" appended, which is
// deleted afterwards.
func sequentialAppend(addr string, n int) error {
	c, err := login(addr)
	if err != nil {
		return err
	}
	defer c.c.Close()
	raw := c.c
	if t, ok := raw.(*tls.Conn); ok {
		raw = t.NetConn()
	}
	if tc, ok := raw.(*net.TCPConn); ok {
		if err := tc.SetNoDelay(false); err != nil {
			return err
		}
	}
	box := *mailbox + "-seq"
	c.simple("DELETE " + quote(box)) // may fail: not there
	if st, err := c.simple("CREATE " + quote(box)); err != nil || !strings.HasPrefix(st, "OK") {
		return fmt.Errorf("CREATE %s: %s %v", box, st, err)
	}
	msgs := make([][]byte, n)
	for i := range msgs {
		m := fmt.Sprintf("From: Alice <alice@example.org>\r\nTo: bench@example.test\r\nSubject: sequential %d\r\n"+
			"Date: %s\r\nMessage-ID: <seq.%d@example.org>\r\n\r\n", i, time.Now().Format(time.RFC1123Z), i)
		line := strings.Repeat("x", 72) + "\r\n"
		for len(m)+len(line) <= 4096 {
			m += line
		}
		msgs[i] = []byte(m + strings.Repeat("y", 4096-len(m)-2) + "\r\n")
	}
	write := func(b []byte) error {
		c.c.SetWriteDeadline(time.Now().Add(time.Minute))
		_, err := c.c.Write(b)
		return err
	}
	start := time.Now()
	for i, m := range msgs {
		tag := c.nextTag()
		if err := write(fmt.Appendf(nil, "%s APPEND %s {%d}\r\n", tag, quote(box), len(m))); err != nil {
			return err
		}
		l, err := c.line()
		if err != nil {
			return err
		}
		if !strings.HasPrefix(l, "+") {
			return fmt.Errorf("message %d: %s", i, l)
		}
		if err := write(m); err != nil {
			return err
		}
		if err := write([]byte("\r\n")); err != nil {
			return err
		}
		if _, st, err := c.readTo(tag); err != nil || !strings.HasPrefix(st, "OK") {
			return fmt.Errorf("message %d: %s %v", i, st, err)
		}
	}
	d := time.Since(start)
	fmt.Printf("\n%-44s %9s  %6.1f msg/s, %.2f ms each\n", fmt.Sprintf("APPEND x %d, 1 connection, imaplib-style", n), round(d),
		float64(n)/d.Seconds(), d.Seconds()*1000/float64(n))
	c.simple("DELETE " + quote(box))
	c.simple("LOGOUT")
	return nil
}

// fill APPENDs the messages over several connections and returns how many hold the word
// and their total size.
func fill(addr string) (matches, total int, err error) {
	msgs := make([][]byte, *count)
	flags := make([]string, *count)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range msgs {
		var has bool
		msgs[i], has = makeMessage(rng, i)
		if has {
			matches++
		}
		total += len(msgs[i])
		switch {
		case i%7 == 0:
			flags[i] = `\Seen`
		case i%31 == 0:
			flags[i] = `\Flagged $Work`
		}
	}
	// The order of the messages in the mailbox does not matter; each connection takes
	// the next one.
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, *fillConns)
	for range *fillConns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := login(addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.c.Close()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(msgs) {
					c.simple("LOGOUT")
					return
				}
				if err := c.appendMsg(*mailbox, flags[i], msgs[i]); err != nil {
					errs <- fmt.Errorf("message %d: %w", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		return 0, 0, e
	}
	return matches, total, nil
}

var (
	firstNames = []string{"Alice", "Bob", "Carol", "Dave", "Eve", "Frank", "Grace", "Heidi", "Ivan", "Judy", "Mallory", "Niaj", "Olivia", "Peggy", "Rupert", "Sybil", "Trent", "Victor", "Walter", "Zoë"}
	lastNames  = []string{"Martin", "Dupont", "Smith", "Müller", "García", "Rossi", "Nowak", "Johansson", "Novák", "Kowalski"}
	domains    = []string{"example.org", "mail.example.net", "lists.example.com", "corp.example", "uni.example.edu"}
	topics     = []string{"Quarterly report", "Meeting notes", "Re: budget", "Lunch on Friday?", "Invoice 2024-118", "Your order has shipped", "Fwd: slides", "Release 3.2 planning", "Holiday schedule", "Build failed on main", "Weekly digest", "Question about the API", "Café tomorrow", "Room booking", "Security advisory"}
	words      = strings.Fields("the of and to in is that for it as was with be by on not he this are or his from at which but have an they you were her she there one all we their has would when if more no out so what up can about into than them only other new some could time these two may then do first any like my now over such our man me even most made after also did many before must through back years where much your way well down should because each just those people how too little state good very make world still own see men work long here get both between life being under never day same another know while last might us great old year off come since against go came right used take three")
	htmlWrap   = "<html><body><p>%s</p></body></html>"
)

// makeMessage builds message i: 2–8 KB, varied headers, a fifth multipart/alternative, a
// tenth multipart/mixed with a base64 attachment, the word in one body in twenty.
func makeMessage(rng *rand.Rand, i int) ([]byte, bool) {
	person := func() (string, string) {
		f, l := firstNames[rng.IntN(len(firstNames))], lastNames[rng.IntN(len(lastNames))]
		return f + " " + l, strings.ToLower(strings.ReplaceAll(f, "ë", "e")) + "." + strings.ToLower(l[:1]) + "@" + domains[rng.IntN(len(domains))]
	}
	text := func(size int, withWord bool) string {
		var b strings.Builder
		line := 0
		for b.Len() < size {
			w := words[rng.IntN(len(words))]
			if withWord && b.Len() > size/2 {
				w, withWord = *word, false
			}
			b.WriteString(w)
			line += len(w) + 1
			if line > 70 {
				b.WriteString("\r\n")
				line = 0
			} else {
				b.WriteByte(' ')
			}
		}
		return b.String() + "\r\n"
	}
	has := i%20 == 7
	var h bytes.Buffer
	date := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * 47 * time.Minute)
	fromName, from := person()
	toName, to := person()
	fmt.Fprintf(&h, "Return-Path: <%s>\r\n", from)
	fmt.Fprintf(&h, "Received: from mx.%s (mx.%s [192.0.2.%d])\r\n\tby mail.example.test with ESMTPS id %08X\r\n\tfor <%s>; %s\r\n",
		domains[i%len(domains)], domains[i%len(domains)], i%250+1, rng.Uint32(), to, date.Format(time.RFC1123Z))
	fmt.Fprintf(&h, "From: %s <%s>\r\n", mimeWord(fromName), from)
	fmt.Fprintf(&h, "To: %s <%s>\r\n", mimeWord(toName), to)
	if rng.IntN(3) == 0 {
		_, cc := person()
		fmt.Fprintf(&h, "Cc: %s\r\n", cc)
	}
	fmt.Fprintf(&h, "Subject: %s #%d\r\n", mimeWord(topics[rng.IntN(len(topics))]), i)
	fmt.Fprintf(&h, "Date: %s\r\n", date.Format(time.RFC1123Z))
	fmt.Fprintf(&h, "Message-ID: <%d.%08x@%s>\r\n", i, rng.Uint32(), domains[rng.IntN(len(domains))])
	if i > 0 && rng.IntN(3) == 0 {
		fmt.Fprintf(&h, "In-Reply-To: <%d.parent@%s>\r\nReferences: <%d.parent@%s>\r\n", i-1, domains[0], i-1, domains[0])
	}
	if rng.IntN(4) == 0 {
		fmt.Fprintf(&h, "List-Id: <dev.%s>\r\nList-Unsubscribe: <mailto:leave@%s>\r\n", domains[2], domains[2])
	}
	if rng.IntN(2) == 0 {
		h.WriteString("X-Mailer: Postern bench 1.0\r\n")
	}
	h.WriteString("MIME-Version: 1.0\r\n")
	size := 1500 + rng.IntN(5500) // the body; headers bring the message to 2–8 KB
	switch {
	case i%10 == 3: // mixed with an attachment
		att := make([]byte, size/2)
		for k := range att {
			att[k] = byte(rng.UintN(256))
		}
		enc := base64.StdEncoding.EncodeToString(att)
		var b strings.Builder
		for len(enc) > 76 {
			b.WriteString(enc[:76] + "\r\n")
			enc = enc[76:]
		}
		b.WriteString(enc + "\r\n")
		fmt.Fprintf(&h, "Content-Type: multipart/mixed; boundary=\"b-%d\"\r\n\r\n", i)
		fmt.Fprintf(&h, "--b-%d\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n%s", i, text(size/3, has))
		fmt.Fprintf(&h, "--b-%d\r\nContent-Type: application/octet-stream; name=\"data-%d.bin\"\r\nContent-Disposition: attachment; filename=\"data-%d.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n%s", i, i, i, b.String())
		fmt.Fprintf(&h, "--b-%d--\r\n", i)
	case i%5 == 1: // alternative
		t := text(size/2, has)
		fmt.Fprintf(&h, "Content-Type: multipart/alternative; boundary=\"a-%d\"\r\n\r\n", i)
		fmt.Fprintf(&h, "--a-%d\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n%s", i, t)
		fmt.Fprintf(&h, "--a-%d\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"+htmlWrap+"\r\n", i, strings.ReplaceAll(t, "\r\n", "<br>\r\n"))
		fmt.Fprintf(&h, "--a-%d--\r\n", i)
	default:
		h.WriteString("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
		h.WriteString(text(size, has))
	}
	return h.Bytes(), has
}

// mimeWord encodes a phrase as an RFC 2047 word when it is not ASCII.
func mimeWord(s string) string {
	for _, r := range s {
		if r > 0x7e {
			return "=?UTF-8?B?" + base64.StdEncoding.EncodeToString([]byte(s)) + "?="
		}
	}
	return s
}

// memory returns the RSS (and, with -pid-tree, the PSS) of the server in KiB.
func memory() (rss, pss int64, procs int) {
	pids := []int{*pid}
	if *pidTree {
		pids = descendants(*pid)
	}
	for _, p := range pids {
		rss += procKB(p, "status", "VmRSS:")
		pss += procKB(p, "smaps_rollup", "Pss:")
	}
	return rss, pss, len(pids)
}

// procKB returns the figure in KiB on the line of /proc/PID/file that starts with key
// ("VmRSS:" of status, "Pss:" of smaps_rollup), or 0 when there is none.
func procKB(pid int, file, key string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, file))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, key); ok {
			n, _ := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			return n
		}
	}
	return 0
}

// descendants returns pid and every process below it.
func descendants(root int) []int {
	parent := map[int]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		rest := b[bytes.LastIndexByte(b, ')')+2:]
		f := strings.Fields(string(rest))
		if len(f) > 1 {
			pp, _ := strconv.Atoi(f[1])
			parent[p] = pp
		}
	}
	out := []int{root}
	for p := range parent {
		for q := p; q != 0 && q != 1; q = parent[q] {
			if q == root && p != root {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

// idleMemory opens n sessions in IDLE and reports the server's memory before and after.
func idleMemory(addr string, n int) {
	fmt.Println()
	if *pid == 0 {
		fmt.Printf("IDLE x %d: no -pid, memory not measured\n", n)
	}
	rss0, pss0, procs0 := memory()
	start := time.Now()
	conns := make([]*conn, n)
	var opened atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 32)
	for i := range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := login(addr)
			if err != nil {
				errs <- err
				return
			}
			if st, err := c.simple("SELECT " + quote(*idleBox)); err != nil || !strings.HasPrefix(st, "OK") {
				errs <- fmt.Errorf("SELECT: %s %v", st, err)
				c.c.Close()
				return
			}
			c.send("IDLE")
			c.w.Flush()
			l, err := c.line()
			if err != nil || !strings.HasPrefix(l, "+") {
				errs <- fmt.Errorf("IDLE: %q %v", l, err)
				c.c.Close()
				return
			}
			conns[i] = c
			opened.Add(1)
		}()
	}
	wg.Wait()
	close(errs)
	setup := time.Since(start)
	nerr := 0
	var firstErr error
	for e := range errs {
		if firstErr == nil {
			firstErr = e
		}
		nerr++
	}
	time.Sleep(*settle) // let the server settle (GC, returning freed memory)
	rss1, pss1, procs1 := memory()
	fmt.Printf("IDLE x %d: %d sessions in IDLE (%d failed%s), set up in %s\n", n, opened.Load(), nerr, errText(firstErr), round(setup))
	if *pid != 0 {
		per := float64(rss1-rss0) / float64(max(opened.Load(), 1))
		fmt.Printf("  server RSS %7.1f MiB before, %7.1f MiB with the sessions: +%.1f MiB, %.1f KiB per session (%d → %d processes)\n",
			float64(rss0)/1024, float64(rss1)/1024, float64(rss1-rss0)/1024, per, procs0, procs1)
		if pss1 > 0 {
			fmt.Printf("  server PSS %7.1f MiB before, %7.1f MiB with the sessions: +%.1f MiB, %.1f KiB per session\n",
				float64(pss0)/1024, float64(pss1)/1024, float64(pss1-pss0)/1024, float64(pss1-pss0)/float64(max(opened.Load(), 1)))
		}
	}
	for _, c := range conns {
		if c != nil {
			c.w.WriteString("DONE\r\n")
			c.w.Flush()
			c.c.Close()
		}
	}
	time.Sleep(2 * time.Second)
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return ", first: " + err.Error()
}
