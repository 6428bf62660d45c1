package test

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/websocket"
)

// The webmail in a real browser: headless Chromium (Debian's chromium), driven through
// its DevTools protocol over a WebSocket (golang.org/x/net/websocket, already a
// dependency) — a few calls, no driver framework.

// browser is a headless Chromium and a DevTools connection to its page.
type browser struct {
	t    *testing.T
	cmd  *exec.Cmd
	ws   *websocket.Conn
	next int

	mu       sync.Mutex
	waiting  map[int]chan cdpReply
	requests []string // the URLs the page asked for (Network.requestWillBeSent)
}

type cdpReply struct {
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Message string `json:"message"`
	} `json:"error"`
}

var devtoolsURL = regexp.MustCompile(`DevTools listening on (ws://\S+)`)

// newBrowser starts Chromium; the test fails in CI without it, and is skipped
// elsewhere. A failing test leaves a screenshot of the page in the temporary directory.
func newBrowser(t *testing.T) *browser {
	t.Helper()
	bin := ""
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		need(t, "chromium", "chromium")
	}
	profile := t.TempDir()
	cmd := exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--remote-debugging-port=0", "--remote-allow-origins=*", "--user-data-dir="+profile,
		// The instance's certificate is self-signed.
		"--ignore-certificate-errors", "about:blank")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	b := &browser{t: t, cmd: cmd, waiting: map[int]chan cdpReply{}}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	})
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := devtoolsURL.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
	}()
	var browserWS string
	select {
	case browserWS = <-found:
	case <-time.After(30 * time.Second):
		t.Fatal("chromium did not start its DevTools server within 30s")
	}
	// The page target: /json/list on the same port.
	hostport := strings.SplitN(strings.TrimPrefix(browserWS, "ws://"), "/", 2)[0]
	var targets []struct {
		Type, WebSocketDebuggerURL string
	}
	resp, err := http.Get("http://" + hostport + "/json/list")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&targets)
	resp.Body.Close()
	for _, tg := range targets {
		if tg.Type == "page" {
			b.ws, err = websocket.Dial(tg.WebSocketDebuggerURL, "", "http://127.0.0.1/")
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if b.ws == nil {
		t.Fatalf("no page among chromium's targets: %+v", targets)
	}
	go b.read()
	b.call("Network.enable", nil)
	b.call("Page.enable", nil)
	t.Cleanup(func() {
		if t.Failed() {
			b.screenshot()
		}
		b.ws.Close()
	})
	return b
}

// read dispatches the replies and records the page's requests.
func (b *browser) read() {
	for {
		var msg struct {
			ID     int             `json:"id"`
			Method string          `json:"method"`
			Params json.RawMessage `json:"params"`
			cdpReply
		}
		if err := websocket.JSON.Receive(b.ws, &msg); err != nil {
			return
		}
		b.mu.Lock()
		if msg.Method == "Network.requestWillBeSent" {
			var p struct {
				Request struct{ URL string } `json:"request"`
			}
			json.Unmarshal(msg.Params, &p)
			b.requests = append(b.requests, p.Request.URL)
		}
		if ch, ok := b.waiting[msg.ID]; ok && msg.Method == "" {
			delete(b.waiting, msg.ID)
			ch <- msg.cdpReply
		}
		b.mu.Unlock()
	}
}

// call runs a DevTools method and returns its result.
func (b *browser) call(method string, params any) json.RawMessage {
	b.t.Helper()
	b.mu.Lock()
	b.next++
	id := b.next
	ch := make(chan cdpReply, 1)
	b.waiting[id] = ch
	b.mu.Unlock()
	if params == nil {
		params = struct{}{}
	}
	if err := websocket.JSON.Send(b.ws, map[string]any{"id": id, "method": method, "params": params}); err != nil {
		b.t.Fatalf("%s: %v", method, err)
	}
	select {
	case r := <-ch:
		if r.Error != nil {
			b.t.Fatalf("%s: %s", method, r.Error.Message)
		}
		return r.Result
	case <-time.After(30 * time.Second):
		b.t.Fatalf("%s: no answer within 30s", method)
	}
	return nil
}

// eval evaluates a JavaScript expression in the page and returns its value as JSON.
func (b *browser) eval(expr string) string {
	b.t.Helper()
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
	}
	json.Unmarshal(b.call("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}), &r)
	return string(r.Result.Value)
}

// navigate loads a URL and waits for the page to be complete.
func (b *browser) navigate(url string) {
	b.t.Helper()
	b.call("Page.navigate", map[string]any{"url": url})
	b.waitFor("the page "+url, `document.readyState === "complete" && location.href !== "about:blank"`)
}

// waitFor waits until the expression is true in the page.
func (b *browser) waitFor(what, expr string) {
	b.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for b.eval("!!("+expr+")") != "true" {
		if time.Now().After(deadline) {
			b.t.Fatalf("waited 20s for %s; the page is %s:\n%s", what, b.eval("location.href"), b.eval("document.body ? document.body.innerText : ''"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// screenshot saves a PNG of the page, for a failing test.
func (b *browser) screenshot() {
	done := make(chan struct{})
	go func() {
		defer close(done)
		var r struct{ Data string }
		b.mu.Lock()
		b.next++
		id := b.next
		ch := make(chan cdpReply, 1)
		b.waiting[id] = ch
		b.mu.Unlock()
		if websocket.JSON.Send(b.ws, map[string]any{"id": id, "method": "Page.captureScreenshot", "params": map[string]any{}}) != nil {
			return
		}
		select {
		case rep := <-ch:
			json.Unmarshal(rep.Result, &r)
		case <-time.After(10 * time.Second):
			return
		}
		png, err := base64.StdEncoding.DecodeString(r.Data)
		if err != nil || len(png) == 0 {
			return
		}
		path := filepath.Join(os.TempDir(), fmt.Sprintf("postern-%s-%d.png", strings.ReplaceAll(b.t.Name(), "/", "_"), time.Now().Unix()))
		if os.WriteFile(path, png, 0o644) == nil {
			b.t.Logf("screenshot of the page: %s", path)
		}
	}()
	<-done
}

// TestWebmailBrowser: in headless Chromium a user logs in and sees the message list; a
// message that arrives meanwhile shows up without a reload (server-sent events fed by
// IMAP IDLE); the thread toggle switches to conversations and back; a hostile HTML
// message runs no script (the flag its payloads set stays unset, in the page and in the
// message's frame) and loads no remote resource.
func TestWebmailBrowser(t *testing.T) {
	b := newBrowser(t)
	in := NewInstance(t, "")
	const demo = "demo@example.test"
	hostile := `<p>Hostile</p><script>window.pwned=1</script><img src="x" onerror="window.pwned=1">` +
		`<svg onload="window.pwned=1"></svg><a href="javascript:window.pwned=1" id="js">x</a>` +
		`<iframe src="javascript:parent.pwned=1"></iframe><img src="https://tracker.example/pixel.png">` +
		`<meta http-equiv="refresh" content="0;url=javascript:window.pwned=1"><base href="https://tracker.example/">` +
		`<div style="background:url(https://tracker.example/bg.png)">styled</div><form action="https://tracker.example/"><input name=q></form>`
	in.sendMail(t, "alice@other.test", demo, testMessage("Hostile page", hostile, "MIME-Version: 1.0", "Content-Type: text/html; charset=utf-8"))
	in.WaitMessages(demo, 1, 10*time.Second)
	web := "https://" + in.HTTPSAddr()
	in.newWebClient(t) // waits for httpd

	b.login(web, demo, in.Password)
	b.waitFor("the hostile message in the list", `document.getElementById("messages").textContent.includes("Hostile page")`)

	// New mail without a reload.
	b.eval(`window.sameDocument = true`)
	in.sendMail(t, "alice@other.test", demo, testMessage("Arrived later", "hello"))
	b.waitFor("the new message in the list without a reload", `document.getElementById("messages").textContent.includes("Arrived later")`)
	if b.eval(`window.sameDocument === true`) != "true" {
		t.Error("the page was reloaded")
	}

	// The thread toggle: two one-message conversations, then the flat list again.
	b.eval(`document.getElementById("threadtoggle").click(); true`)
	b.waitFor("the threaded list", `location.search.includes("view=threads") && document.querySelectorAll("#messages tr.thread").length === 2`)
	b.eval(`document.getElementById("threadtoggle").click(); true`)
	b.waitFor("the flat list again", `location.search.includes("view=list") && !document.querySelector("#messages tr.thread") && document.getElementById("messages").textContent.includes("Hostile page")`)

	// Open the hostile message in the page, then its frame's document by itself.
	b.eval(`Array.from(document.querySelectorAll("#messages a")).find(a => a.textContent.includes("Hostile page")).click(); true`)
	b.waitFor("the message page", `location.pathname === "/mail/msg" && document.getElementById("body")`)
	time.Sleep(time.Second) // let the frame load and any payload run
	if got := b.eval(`typeof window.pwned`); got != `"undefined"` {
		t.Errorf("a payload ran in the message page: window.pwned is %s", got)
	}
	body := b.eval(`document.getElementById("body").src`)
	var src string
	json.Unmarshal([]byte(body), &src)
	b.navigate(src)
	b.waitFor("the message body", `document.body && document.body.textContent.includes("Hostile")`)
	if got := b.eval(`typeof window.pwned`); got != `"undefined"` {
		t.Errorf("a payload ran in the message frame: window.pwned is %s", got)
	}
	b.mu.Lock()
	for _, u := range b.requests {
		if strings.Contains(u, "tracker.example") {
			t.Errorf("the page asked for a remote resource without consent: %s", u)
		}
	}
	b.mu.Unlock()
}
