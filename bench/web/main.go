// Command web measures the webmail of a running development instance (see run.sh):
// the time of the message list of a large folder (first page, then a later one), of
// opening a message with attachments, and of a search, warm, as the browser sees it on
// loopback; then httpd's memory with many logged-in sessions.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

func main() {
	base := flag.Int("base", 30000, "the instance's port base")
	user := flag.String("user", "demo@example.test", "account")
	passFile := flag.String("password-file", "", "file holding the account's password")
	n := flag.Int("n", 10000, "messages to APPEND into INBOX first")
	runs := flag.Int("runs", 20, "requests per measurement")
	sessions := flag.Int("sessions", 1000, "logged-in sessions for the memory figure")
	pid := flag.Int("pid", 0, "httpd's pid, for its memory")
	flag.Parse()
	pw, err := os.ReadFile(*passFile)
	if err != nil {
		log.Fatal(err)
	}
	password := strings.TrimSpace(string(pw))

	fill(*base, *user, password, *n)

	web := fmt.Sprintf("https://127.0.0.1:%d", *base+443)
	c := login(web, *user, password)
	list := get(c, web+"/mail?f=INBOX")
	m := regexp.MustCompile(`uid=(\d+)`).FindStringSubmatch(list)
	if m == nil {
		log.Fatal("no message in the list")
	}
	attUID := findAttachment(c, web)
	pages := (*n + 49) / 50
	fmt.Printf("webmail, %d messages in INBOX, %d runs each (median / p90):\n", *n, *runs)
	measure(c, *runs, "message list, first page", web+"/mail?f=INBOX")
	measure(c, *runs, fmt.Sprintf("message list, page %d", pages*3/4), fmt.Sprintf("%s/mail?f=INBOX&page=%d", web, pages*3/4))
	measure(c, *runs, "message list sorted by subject", web+"/mail?f=INBOX&sort=subject")
	measure(c, *runs, "open a message with attachments (page)", web+"/mail/msg?f=INBOX&uid="+attUID)
	measure(c, *runs, "open a message with attachments (body)", web+"/mail/body?f=INBOX&uid="+attUID)
	measureOpen(c, web, *runs, attUID)
	measure(c, *runs, "search (SEARCH TEXT, 1 match)", web+"/mail?f=INBOX&q=needle-4242")
	// The threaded view (the session remembers it): fill made threads of 5 messages.
	threads := get(c, web+"/mail?f=INBOX&view=threads")
	fmt.Println("threaded view (THREAD=REFERENCES, threads of 5):")
	measure(c, *runs, "threads, first page", web+"/mail?f=INBOX&view=threads")
	measure(c, *runs, fmt.Sprintf("threads, page %d", pages/5*3/4), fmt.Sprintf("%s/mail?f=INBOX&view=threads&page=%d", web, pages/5*3/4))
	if m := regexp.MustCompile(`data-thread="(\d+)"`).FindStringSubmatch(threads); m != nil {
		measure(c, *runs, "threads, first page with one open", web+"/mail?f=INBOX&view=threads&open="+m[1])
	}
	// Cold: a message APPENDed before each request changes the folder, so httpd's
	// cached order does not serve and imapd sorts or threads the whole folder again.
	fmt.Println("after a new message each time (the folder changed: imapd sorts or threads it again):")
	ic := dial(*base, *user, password)
	measureAfter(c, *runs, "threads, first page", web+"/mail?f=INBOX&view=threads", ic)
	get(c, web+"/mail?f=INBOX&view=list")
	measureAfter(c, *runs, "message list, first page", web+"/mail?f=INBOX", ic)
	measureAfter(c, *runs, "message list sorted by subject", web+"/mail?f=INBOX&sort=subject", ic)
	ic.Close()

	if *pid > 0 && *sessions > 0 {
		before := rss(*pid)
		start := time.Now()
		var clients []*http.Client
		for i := 0; i < *sessions; i++ {
			cl := login(web, *user, password)
			get(cl, web+"/mail?f=INBOX") // each session opens its IMAP connection
			clients = append(clients, cl)
		}
		fmt.Printf("httpd memory: %.1f MiB before, %.1f MiB with %d more logged-in sessions, each with an open IMAP connection (%.1f KiB per session; logins took %v)\n",
			before/1024, rss(*pid)/1024, *sessions, (rss(*pid)-before)/float64(*sessions), time.Since(start).Round(time.Second))
		_ = clients
	}
}

// dial logs in to imapd over TLS.
func dial(base int, user, password string) *imapclient.Client {
	c, err := imapclient.DialTLS(fmt.Sprintf("127.0.0.1:%d", base+993), &imapclient.Options{TLSConfig: &tls.Config{InsecureSkipVerify: true}})
	if err != nil {
		log.Fatal(err)
	}
	if err := c.Login(user, password).Wait(); err != nil {
		log.Fatal(err)
	}
	return c
}

// appendOne APPENDs a small message to INBOX.
func appendOne(c *imapclient.Client, i int) {
	msg := fmt.Sprintf("From: Late <late@other.test>\r\nSubject: Late %d\r\nMessage-ID: <late%d@other.test>\r\n\r\nlate\r\n", i, i)
	cmd := c.Append("INBOX", int64(len(msg)), nil)
	io.WriteString(cmd, msg)
	cmd.Close()
	if _, err := cmd.Wait(); err != nil {
		log.Fatal(err)
	}
}

// fill APPENDs n small messages, every 100th with an attachment, message 4242 with the
// word the search looks for; they come in threads of 5, each replying to the one before.
func fill(base int, user, password string, n int) {
	c := dial(base, user, password)
	defer c.Close()
	start := time.Now()
	for i := 1; i <= n; i++ {
		word := "filler"
		if i == 4242 {
			word = "needle-4242"
		}
		var msg string
		head := fmt.Sprintf("From: Sender %d <s%d@other.test>\r\nTo: %s\r\nSubject: Message %d %s\r\nDate: %s\r\nMessage-ID: <m%d@other.test>\r\nMIME-Version: 1.0\r\n",
			i%97, i%97, user, i, word, time.Unix(1700000000+int64(i)*60, 0).UTC().Format(time.RFC1123Z), i)
		if root := i - (i-1)%5; root != i {
			head += fmt.Sprintf("In-Reply-To: <m%d@other.test>\r\nReferences: <m%d@other.test> <m%d@other.test>\r\n", i-1, root, i-1)
		}
		if i%100 == 0 {
			msg = head + "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Body <b>" + word + "</b></p>\r\n" +
				"--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=a.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
				strings.Repeat("QUJDRA==\r\n", 2000) + "--b\r\nContent-Type: image/png\r\nContent-Disposition: attachment; filename=b.png\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
				strings.Repeat("QUJDRA==\r\n", 2000) + "--b--\r\n"
		} else {
			msg = head + "Content-Type: text/plain; charset=utf-8\r\n\r\nHello " + word + " " + strconv.Itoa(i) + "\r\n"
		}
		cmd := c.Append("INBOX", int64(len(msg)), nil)
		io.WriteString(cmd, msg)
		cmd.Close()
		if _, err := cmd.Wait(); err != nil {
			log.Fatal(err)
		}
	}
	if n > 0 {
		fmt.Printf("appended %d messages in %v\n", n, time.Since(start).Round(time.Second))
	}
	// Warm imapd's cache of envelopes and search text.
	c.Select("INBOX", nil).Wait()
	c.Search(&imap.SearchCriteria{Text: []string{"warm"}}, nil).Wait()
}

func login(web, user, password string) *http.Client {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: time.Minute}
	page := get(c, web+"/login")
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		log.Fatal("no login form")
	}
	resp, err := c.PostForm(web+"/login", url.Values{"csrf": {m[1]}, "user": {user}, "password": {password}})
	if err != nil {
		log.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if !strings.HasSuffix(resp.Request.URL.Path, "/mail") {
		log.Fatalf("login failed: ended at %s", resp.Request.URL)
	}
	return c
}

func get(c *http.Client, u string) string {
	resp, err := c.Get(u)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		log.Fatalf("GET %s: %d", u, resp.StatusCode)
	}
	return string(b)
}

func findAttachment(c *http.Client, web string) string {
	page := get(c, web+"/mail?f=INBOX&sort=size")
	m := regexp.MustCompile(`uid=(\d+)`).FindStringSubmatch(page)
	if m == nil {
		log.Fatal("no message")
	}
	return m[1]
}

func measure(c *http.Client, runs int, what, u string) {
	get(c, u) // warm
	var ds []time.Duration
	for i := 0; i < runs; i++ {
		start := time.Now()
		get(c, u)
		ds = append(ds, time.Since(start))
	}
	slices.Sort(ds)
	fmt.Printf("  %-45s %6.1f ms / %6.1f ms\n", what, ms(ds[len(ds)/2]), ms(ds[len(ds)*9/10]))
}

// measureOpen times what a click on a message costs: its page, then the body of its
// frame, a message not opened before each time (the HTML messages with attachments,
// biggest first, up to runs of them, but skip, opened already).
func measureOpen(c *http.Client, web string, runs int, skip string) {
	page := get(c, web+"/mail?f=INBOX&sort=size")
	var uids []string
	for _, m := range regexp.MustCompile(`uid=(\d+)`).FindAllStringSubmatch(page, -1) {
		if m[1] != skip && !slices.Contains(uids, m[1]) {
			uids = append(uids, m[1])
		}
	}
	var ds []time.Duration
	for i, u := range uids {
		if i == runs {
			break
		}
		start := time.Now()
		get(c, web+"/mail/msg?f=INBOX&uid="+u)
		get(c, web+"/mail/body?f=INBOX&uid="+u)
		ds = append(ds, time.Since(start))
	}
	if len(ds) == 0 {
		log.Fatal("no message to open")
	}
	slices.Sort(ds)
	fmt.Printf("  %-45s %6.1f ms / %6.1f ms (%d messages)\n", "open a message, page + frame, first time", ms(ds[len(ds)/2]), ms(ds[len(ds)*9/10]), len(ds))
}

// measureAfter is measure with a message APPENDed (untimed) before each request.
func measureAfter(c *http.Client, runs int, what, u string, im *imapclient.Client) {
	var ds []time.Duration
	for i := 0; i < runs; i++ {
		appendOne(im, late)
		late++
		start := time.Now()
		get(c, u)
		ds = append(ds, time.Since(start))
	}
	slices.Sort(ds)
	fmt.Printf("  %-45s %6.1f ms / %6.1f ms\n", what, ms(ds[len(ds)/2]), ms(ds[len(ds)*9/10]))
}

// late numbers the messages measureAfter APPENDs.
var late int

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// rss is the resident memory of a process, in KiB.
func rss(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			f := strings.Fields(v)
			n, _ := strconv.ParseFloat(f[0], 64)
			return n
		}
	}
	return 0
}
